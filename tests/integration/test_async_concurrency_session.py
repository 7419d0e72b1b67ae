"""AsyncSession against a real etcd: its lease lives while it runs, and its end is announced."""

from __future__ import annotations

import asyncio

import pytest
from layer_kinds import Backend

from etcd_layers import AsyncClient, Client, errors
from etcd_layers.concurrency import AsyncElection, AsyncMutex, AsyncSession, Mutex, Session
from etcd_layers.testing.plugin import EtcdClusterFactory

pytestmark = pytest.mark.asyncio

TTL = 2  # etcd's smallest lease TTL with the default election timeout
LONG_TTL = 5  # sessions that must outlive the test (kept alive all along)
REVOKED_TTL = 3  # renewed every second, so a session notices a revoke within about one


@pytest.fixture
def etcd_async_client(backend_async_client: AsyncClient) -> AsyncClient:
    """An AsyncClient on the test's backend: the session's etcd, then a MemoryEtcd."""
    return backend_async_client


@pytest.fixture
def etcd_client(backend: Backend) -> Client:
    """A sync client on the same backend."""
    return backend.client()


async def test_async_session_keeps_its_lease_alive_and_close_revokes_it(
    etcd_async_client: AsyncClient, etcd_key_prefix: bytes
) -> None:
    """The lease outlives its TTL while the session runs; close() revokes it and its keys."""
    acli = etcd_async_client
    async with AsyncSession(acli, ttl=TTL) as session:
        await acli.put(etcd_key_prefix + b"owned", b"", lease=session.lease_id)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(session.done.wait(), TTL * 1.5)
        status = await acli.time_to_live(session.lease_id)
        assert (status.granted_ttl, session.ttl) == (TTL, TTL)
        assert status.ttl > 0
    assert session.done.is_set()
    assert session.error is None
    assert (await acli.time_to_live(session.lease_id)).ttl == -1
    assert (await acli.get(etcd_key_prefix + b"owned")).count == 0
    await session.close()  # idempotent


async def test_async_session_done_fires_on_revoke(etcd_async_client: AsyncClient) -> None:
    """A lease revoked by someone else ends the session: done, callbacks, LeaseNotFoundError."""
    session = await AsyncSession(etcd_async_client, ttl=REVOKED_TTL)
    fired = asyncio.Event()
    session.on_done(fired.set)
    unregistered: list[str] = []
    session.on_done(lambda: unregistered.append("ran"))()  # unregistered at once: never runs
    await etcd_async_client.revoke(session.lease_id)
    await asyncio.wait_for(session.done.wait(), 5)
    await asyncio.wait_for(fired.wait(), 5)
    assert isinstance(session.error, errors.LeaseNotFoundError)
    assert unregistered == []
    late: list[str] = []
    session.on_done(lambda: late.append("ran"))  # already done: runs here, at once
    assert late == ["ran"]
    await session.close()  # the lease is gone already: nothing is raised


async def test_async_session_done_fires_when_the_client_closes(
    backend_async_client: AsyncClient,
) -> None:
    """Closing the client ends the keep-alive, so the session is done."""
    client = backend_async_client
    session = await AsyncSession(client, ttl=30)
    await client.close()
    await asyncio.wait_for(session.done.wait(), 5)
    await session.close(timeout=1)  # the client is closed: best effort, nothing raised


async def test_async_session_done_fires_on_expiry(
    etcd_cluster_factory: EtcdClusterFactory,
) -> None:
    """A session cut off from the server sees its lease expire within about the TTL."""
    server = etcd_cluster_factory(1)  # its own server: the black hole must not hit other tests
    (member,) = server.members
    async with AsyncClient(endpoints=server.endpoints, **server.client_options()) as client:
        session = await AsyncSession(client, ttl=TTL)
        loop = asyncio.get_running_loop()
        started = loop.time()
        member.client_proxy.blackhole()
        try:
            await asyncio.wait_for(session.done.wait(), TTL + 5)
        finally:
            member.client_proxy.unblackhole()
        assert loop.time() - started < TTL + 4
        assert isinstance(session.error, errors.LeaseNotFoundError)
        await session.close(timeout=1)


async def test_async_session_adopts_an_existing_lease(etcd_async_client: AsyncClient) -> None:
    lease_id = (await etcd_async_client.grant(TTL)).id
    async with AsyncSession(etcd_async_client, lease_id=lease_id) as session:
        assert (session.lease_id, session.ttl) == (lease_id, TTL)
    assert (await etcd_async_client.time_to_live(lease_id)).ttl == -1
    with pytest.raises(errors.LeaseNotFoundError):
        await AsyncSession(etcd_async_client, lease_id=0x7E57_0000_0000_0C0C)


async def test_kinds_are_not_mixed(etcd_async_client: AsyncClient, etcd_client: Client) -> None:
    """Async types refuse a sync client or session, and the sync ones an async client."""
    with pytest.raises(TypeError, match="Session"):
        AsyncSession(etcd_client)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Session(etcd_async_client)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ttl"):
        AsyncSession(etcd_async_client, ttl=0)
    unopened = AsyncSession(etcd_async_client)
    with pytest.raises(ValueError, match="not open"):
        AsyncMutex(unopened, "lock")
    async with AsyncSession(etcd_async_client, ttl=LONG_TTL) as session:
        with pytest.raises(TypeError):
            Mutex(session, "lock")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="empty"):
            AsyncMutex(session, "")
        with Session(etcd_client, ttl=LONG_TTL) as sync_session:
            with pytest.raises(TypeError):
                AsyncMutex(sync_session, "lock")  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                AsyncElection(sync_session, "election")  # type: ignore[arg-type]
