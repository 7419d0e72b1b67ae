"""AsyncElection against a real etcd, alone and in one election with sync candidates."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from layer_kinds import Backend

from etcd_layers import AsyncClient, Client, errors, namespace
from etcd_layers.base import AsyncKV
from etcd_layers.concurrency import (
    AsyncElection,
    AsyncObservation,
    AsyncSession,
    Election,
    ElectionNotLeaderError,
    NoElectionLeaderError,
    Session,
    SessionExpiredError,
)

pytestmark = pytest.mark.asyncio

LONG_TTL = 5  # sessions that must outlive the test (kept alive all along)
REVOKED_TTL = 3  # renewed every second, so a session notices a revoke within about one
WAIT = 20.0  # bound on every blocking step of a test


@pytest.fixture
def etcd_async_client(backend_async_client: AsyncClient) -> AsyncClient:
    """An AsyncClient on the test's backend: the session's etcd, then a MemoryEtcd."""
    return backend_async_client


@pytest.fixture
def etcd_client(backend: Backend) -> Client:
    """A sync client on the same backend."""
    return backend.client()


async def candidates(client: AsyncKV, name: bytes) -> int:
    return (await client.get(name + b"/", prefix=True, count_only=True)).count


async def until(check: Callable[[], Awaitable[bool]], message: str) -> None:
    """Wait until `check()` holds, polling, for at most WAIT seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while not await check():
        assert loop.time() < deadline, f"timed out waiting until {message}"
        await asyncio.sleep(0.02)


async def queued_more(client: AsyncKV, name: bytes, before: int) -> None:
    async def more() -> bool:
        return await candidates(client, name) > before

    await until(more, "the candidate queued")


async def collect(observation: AsyncObservation, values: list[bytes], last: bytes) -> None:
    """Record the leader values observed until `last` shows up (bounded in count)."""
    for _ in range(50):
        change = await observation.next(timeout=WAIT)
        values.append(change.kvs[0].value)
        if values[-1] == last:
            return


async def test_async_and_sync_candidates_share_one_election(
    etcd_async_client: AsyncClient, etcd_client: Client, etcd_key_prefix: bytes
) -> None:
    """An async and a sync candidate take turns leading one election; observe() sees both."""
    acli = etcd_async_client
    name = etcd_key_prefix + b"election"
    async with AsyncSession(acli, ttl=LONG_TTL) as session, AsyncSession(acli, ttl=LONG_TTL) as w:
        observed: list[bytes] = []
        async with AsyncElection(w, name).observe() as observation:
            observer = asyncio.ensure_future(collect(observation, observed, b"async-again"))
            first = AsyncElection(session, name)
            await first.campaign("async", timeout=WAIT)
            assert (await first.leader()).value == b"async"
            assert first.revision == first.rev > 0
            assert first.header is not None
            sync_session = await asyncio.to_thread(Session, etcd_client, ttl=LONG_TTL)
            second = Election(sync_session, name)
            sync_campaign = asyncio.ensure_future(
                asyncio.to_thread(second.campaign, b"sync", timeout=WAIT)
            )
            await queued_more(acli, name, 1)
            assert not sync_campaign.done()
            await first.proclaim("async-2")
            async_campaign = asyncio.ensure_future(first.campaign("ignored", timeout=WAIT))
            await asyncio.wait_for(async_campaign, WAIT)  # already leader: at once
            await first.resign()
            await asyncio.wait_for(sync_campaign, WAIT)
            assert (await first.leader()).value == b"sync"
            assert (await first.leader()).key == second.key

            async def observed_sync() -> bool:
                return b"sync" in observed

            # Go's Observe may skip a leader that came and went before it looked again ("it
            # will always post the most recent leader value"): let it see this one first.
            await until(observed_sync, "the observer saw the sync leader")
            again = asyncio.ensure_future(first.campaign("async-again", timeout=WAIT))
            await queued_more(acli, name, 1)
            await asyncio.to_thread(second.resign)
            await asyncio.wait_for(again, WAIT)
            assert await asyncio.to_thread(lambda: second.leader().value) == b"async-again"
            await asyncio.wait_for(observer, WAIT)
        await asyncio.to_thread(sync_session.close)
    assert observed[0] == b"async"
    assert observed[-2:] == [b"sync", b"async-again"]
    assert b"async-2" in observed


async def test_async_election_errors(
    etcd_async_client: AsyncClient, etcd_key_prefix: bytes
) -> None:
    """proclaim() without a won campaign, after a lost key, and leader() with nobody raise."""
    acli = etcd_async_client
    async with AsyncSession(acli, ttl=LONG_TTL) as session:
        election = AsyncElection(session, etcd_key_prefix + b"election")
        with pytest.raises(NoElectionLeaderError):
            await election.leader()
        with pytest.raises(ElectionNotLeaderError):
            await election.proclaim("v")
        await election.campaign("v", timeout=WAIT)
        await acli.delete(election.key)
        with pytest.raises(ElectionNotLeaderError):
            await election.proclaim("w")
        assert (await acli.get(election.key)).count == 0  # the guard kept it from re-creating
        await election.resign()  # not leader any more: nothing happens


@pytest.mark.parametrize("failure", ["timeout", "cancel", "session_end"])
async def test_async_failed_campaign_withdraws_the_candidate(
    etcd_async_client: AsyncClient, etcd_client: Client, etcd_key_prefix: bytes, failure: str
) -> None:
    """A campaign that times out, is canceled or loses its session leaves no key behind."""
    acli = etcd_async_client
    name = etcd_key_prefix + b"election"
    with Session(etcd_client, ttl=LONG_TTL) as leader_session:
        await asyncio.to_thread(Election(leader_session, name).campaign, "one", timeout=WAIT)
        session = await AsyncSession(acli, ttl=REVOKED_TTL)
        election = AsyncElection(session, name)
        if failure == "timeout":
            with pytest.raises(errors.DeadlineExceededError):
                await election.campaign("two", timeout=0.5)
        else:
            task = asyncio.ensure_future(election.campaign("two", timeout=WAIT))
            await queued_more(acli, name, 1)
            if failure == "cancel":
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
            else:
                await session.close()
                with pytest.raises(SessionExpiredError):
                    await asyncio.wait_for(task, 10)
        assert await candidates(acli, name) == 1
        await session.close()


async def test_async_observe_ends_on_cancel(
    etcd_async_client: AsyncClient, etcd_key_prefix: bytes
) -> None:
    """`async for` over observe() stops once cancel() is awaited; next() then raises."""
    name = etcd_key_prefix + b"election"
    async with AsyncSession(etcd_async_client, ttl=LONG_TTL) as session:
        election = AsyncElection(session, name)
        observation = election.observe()
        seen: list[bytes] = []

        async def iterate() -> None:
            async for change in observation:
                seen.append(change.kvs[0].value)

        iterating = asyncio.ensure_future(iterate())
        await election.campaign("v1", timeout=WAIT)

        async def saw_it() -> bool:
            return seen == [b"v1"]

        await until(saw_it, "the leader was observed")
        await observation.cancel()
        await asyncio.wait_for(iterating, WAIT)
        with pytest.raises(errors.CanceledError):
            await observation.next(timeout=1)


async def test_async_election_through_a_namespace(
    etcd_async_client: AsyncClient, etcd_client: Client, etcd_key_prefix: bytes
) -> None:
    """An AsyncElection on `namespace.wrap(acli, p)` is the Election on p + name."""
    tenant = namespace.wrap(etcd_async_client, etcd_key_prefix)
    async with AsyncSession(tenant, ttl=LONG_TTL) as inner:
        namespaced = AsyncElection(inner, "election")
        await namespaced.campaign("inside", timeout=WAIT)
        with Session(etcd_client, ttl=LONG_TTL) as outer:
            seen = Election(outer, etcd_key_prefix + b"election").leader()
        assert (seen.key, seen.value) == (etcd_key_prefix + namespaced.key, b"inside")
        assert (await namespaced.leader()).key == namespaced.key
        observation = namespaced.observe()
        first = await observation.next(timeout=WAIT)
        assert first.kvs[0].key == namespaced.key
        await observation.cancel()


async def test_async_leader_failure_elects_the_sync_candidate_and_observe_sees_it(
    etcd_async_client: AsyncClient, etcd_client: Client, etcd_key_prefix: bytes
) -> None:
    """An async leader whose lease is revoked loses; the waiting sync candidate leads."""
    acli = etcd_async_client
    name = etcd_key_prefix + b"election"
    doomed_session = await AsyncSession(acli, ttl=REVOKED_TTL)
    await AsyncElection(doomed_session, name).campaign("doomed", timeout=WAIT)
    async with AsyncSession(acli, ttl=LONG_TTL) as watcher:
        observed: list[bytes] = []
        async with AsyncElection(watcher, name).observe() as observation:
            observer = asyncio.ensure_future(collect(observation, observed, b"next"))
            session = await asyncio.to_thread(Session, etcd_client, ttl=LONG_TTL)
            successor = Election(session, name)
            campaign = asyncio.ensure_future(
                asyncio.to_thread(successor.campaign, b"next", timeout=WAIT)
            )
            await queued_more(acli, name, 1)
            await acli.revoke(doomed_session.lease_id)
            await asyncio.wait_for(campaign, 5)
            await asyncio.wait_for(observer, WAIT)
        await asyncio.wait_for(doomed_session.done.wait(), 5)
        await asyncio.to_thread(session.close)
    assert observed == [b"doomed", b"next"]
    await doomed_session.close()
