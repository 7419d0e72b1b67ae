"""Mutex.revision as a fencing token, and Election.resume (Go's ResumeElection), sync and async."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from etcd_layers import AsyncClient, Client, Op, namespace
from etcd_layers.base.protocols import KVWatcherLease
from etcd_layers.concurrency import (
    AsyncElection,
    AsyncMutex,
    AsyncSession,
    Election,
    ElectionNotLeaderError,
    LockNotHeldError,
    Mutex,
    Session,
)

TTL = 2  # etcd's smallest lease TTL with the default election timeout
LONG_TTL = 10
WAIT = 20.0


@pytest.fixture(params=["plain", "namespace"])
def space(
    request: pytest.FixtureRequest, etcd_client: Client, etcd_key_prefix: bytes
) -> tuple[KVWatcherLease, bytes]:
    """The client, or a namespace on it, and the prefix of the test's keys as that one sees them."""
    if request.param == "namespace":
        return namespace.wrap(etcd_client, etcd_key_prefix), b""
    return etcd_client, etcd_key_prefix


@pytest.fixture
def kv(space: tuple[KVWatcherLease, bytes]) -> KVWatcherLease:
    return space[0]


@pytest.fixture
def name(space: tuple[KVWatcherLease, bytes]) -> bytes:
    """The lock or election name of the test."""
    return space[1] + b"lock"


@pytest.fixture
def data(space: tuple[KVWatcherLease, bytes]) -> bytes:
    """A key the test's lock guards."""
    return space[1] + b"data"


@pytest.fixture
def sessions(kv: KVWatcherLease) -> Iterator[list[Session]]:
    made: list[Session] = []
    yield made
    for session in made:
        session.close()


def guarded_write(kv: KVWatcherLease, mutex: Mutex, key: bytes, value: bytes) -> bool:
    """The README's fenced write: put `key` only while `mutex` holds, tagged with its token."""
    response = kv.txn(
        compare=[mutex.owner_compare()],
        success=[Op.put(key, value), Op.put(key + b"-token", str(mutex.revision))],
    )
    return response.succeeded


# --- Mutex.revision ------------------------------------------------------------------------------


def test_mutex_revision_is_the_create_revision_and_increases(
    kv: KVWatcherLease, name: bytes, sessions: list[Session]
) -> None:
    """Successive holders get strictly increasing tokens, each its key's create revision."""
    tokens = []
    for _ in range(3):
        session = Session(kv, ttl=LONG_TTL)
        sessions.append(session)
        mutex = Mutex(session, name)
        mutex.lock(timeout=WAIT)
        tokens.append(mutex.revision)
        assert kv.get(mutex.key).kvs[0].create_revision == mutex.revision
        mutex.unlock()
    assert tokens == sorted(set(tokens))


def test_mutex_revision_increases_past_a_holder_whose_session_expired(
    kv: KVWatcherLease, name: bytes, data: bytes, sessions: list[Session]
) -> None:
    """A holder's lease expires: the next holder has a higher token; the old one is fenced."""
    lost_session = Session(kv, ttl=TTL)
    sessions.append(lost_session)
    lost = Mutex(lost_session, name)
    lost.lock(timeout=WAIT)
    lost_token = lost.revision
    assert guarded_write(kv, lost, data, b"from the first holder")

    waiter_session = Session(kv, ttl=LONG_TTL)
    sessions.append(waiter_session)
    waiter = Mutex(waiter_session, name)
    acquired = threading.Event()

    def take() -> None:
        waiter.lock(timeout=WAIT)
        acquired.set()

    thread = threading.Thread(target=take)
    thread.start()
    lost_session.orphan()  # the holder stops renewing: its lease runs out within the TTL
    thread.join(timeout=WAIT + 5)
    assert acquired.is_set()
    assert waiter.revision > lost_token
    assert not guarded_write(kv, lost, data, b"late write of the lost holder")
    assert guarded_write(kv, waiter, data, b"from the second holder")
    assert kv.get(data).kvs[0].value == b"from the second holder"
    assert kv.get(data + b"-token").kvs[0].value == str(waiter.revision).encode()
    waiter.unlock()


def test_mutex_revision_needs_the_lock(
    kv: KVWatcherLease, name: bytes, sessions: list[Session]
) -> None:
    session = Session(kv, ttl=LONG_TTL)
    sessions.append(session)
    mutex = Mutex(session, name)
    with pytest.raises(LockNotHeldError):
        _ = mutex.revision
    with mutex:
        assert mutex.revision > 0
    with pytest.raises(LockNotHeldError):
        _ = mutex.revision


# --- Election.resume -------------------------------------------------------------------------


def test_resume_election_go_port(
    kv: KVWatcherLease, name: bytes, data: bytes, sessions: list[Session]
) -> None:
    """Go's TestResumeElection: a resumed election resigns and campaigns; observe sees it."""
    session = Session(kv, ttl=LONG_TTL)
    sessions.append(session)
    election = Election(session, name)
    election.campaign(b"candidate1", timeout=WAIT)
    leader = election.leader()
    resumed = Election.resume(session, name, leader.key, leader.create_revision)
    seen: list[bytes] = []
    with resumed.observe() as observation:
        first = observation.next(timeout=WAIT)
        assert first.kvs[0].value == b"candidate1"
        kv.put(data, b"bar")  # outside the election: not observed
        resumed.resign(timeout=WAIT)
        resumed.campaign(b"candidate2", timeout=WAIT)
        for _ in range(5):  # bounded: the resign may show as no event at all
            change = observation.next(timeout=WAIT)
            if change.kvs[0].value != b"candidate1":
                seen.append(change.kvs[0].value)
                assert change.kvs[0].key == resumed.key
                break
    assert seen == [b"candidate2"]
    resumed.resign()


def test_restarted_process_resumes_its_leadership(kv: KVWatcherLease, name: bytes) -> None:
    """A new Session adopting the old lease, with Election.resume, can proclaim and resign."""
    first = Session(kv, ttl=LONG_TTL)
    election = Election(first, name)
    election.campaign(b"v1", timeout=WAIT)
    lease_id, key, revision = first.lease_id, election.key, election.revision
    first.orphan()  # the process "crashes": its lease lives on for the TTL

    with Session(kv, ttl=LONG_TTL, lease_id=lease_id) as again:
        resumed = Election.resume(again, name, key, revision)
        assert resumed.revision == revision
        resumed.proclaim(b"v2", timeout=WAIT)
        assert resumed.leader().value == b"v2"
        assert kv.get(key).kvs[0].create_revision == revision
        resumed.resign(timeout=WAIT)
        assert kv.get(key).kvs == []


def test_resumed_election_whose_key_is_gone_cannot_proclaim(
    kv: KVWatcherLease, name: bytes, sessions: list[Session]
) -> None:
    session = Session(kv, ttl=LONG_TTL)
    sessions.append(session)
    election = Election(session, name)
    election.campaign(b"v1", timeout=WAIT)
    key, revision = election.key, election.revision
    election.resign()
    resumed = Election.resume(session, name, key, revision)
    with pytest.raises(ElectionNotLeaderError):
        resumed.proclaim(b"v2", timeout=WAIT)
    assert kv.get(key).kvs == []


def test_resume_checks_its_arguments(
    kv: KVWatcherLease, name: bytes, sessions: list[Session]
) -> None:
    session = Session(kv, ttl=LONG_TTL)
    sessions.append(session)
    key = Election(session, name).key
    with pytest.raises(ValueError, match="not this session's key"):
        Election.resume(session, name, key + b"0", 5)
    with pytest.raises(ValueError, match="not 0"):
        Election.resume(session, name, key, 0)
    with pytest.raises(TypeError, match="leader_revision"):
        Election.resume(session, name, key, "5")  # type: ignore[arg-type]  # wrong on purpose
    with pytest.raises(TypeError, match="leader_key"):
        Election.resume(session, name, 5, 5)  # type: ignore[arg-type]  # wrong on purpose


# --- the asyncio forms -----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_async_mutex_revision_increases_past_an_expired_holder(
    etcd_async_client: AsyncClient, etcd_key_prefix: bytes
) -> None:
    """AsyncMutex: the same tokens, and the same fencing of a holder whose lease expired."""
    acli = namespace.wrap(etcd_async_client, etcd_key_prefix)
    lost_session = await AsyncSession(acli, ttl=TTL)
    lost = AsyncMutex(lost_session, "lock")
    await lost.lock(timeout=WAIT)
    lost_token = lost.revision
    async with AsyncSession(acli, ttl=LONG_TTL) as waiter_session:
        waiter = AsyncMutex(waiter_session, "lock")
        waiting = asyncio.ensure_future(waiter.lock(timeout=WAIT))
        await lost_session.orphan()
        await asyncio.wait_for(waiting, WAIT + 5)
        assert waiter.revision > lost_token
        stale = await acli.txn(compare=[lost.owner_compare()], success=[Op.put("data", "x")])
        assert not stale.succeeded
        fresh = await acli.txn(compare=[waiter.owner_compare()], success=[Op.put("data", "y")])
        assert fresh.succeeded
        await waiter.unlock()
        with pytest.raises(LockNotHeldError):
            _ = waiter.revision
    await lost_session.close()


@pytest.mark.asyncio
async def test_async_election_resume_proclaims_and_resigns(
    etcd_async_client: AsyncClient, etcd_key_prefix: bytes
) -> None:
    """AsyncElection.resume on a session adopting the old lease takes the leadership back."""
    acli = namespace.wrap(etcd_async_client, etcd_key_prefix)
    first = await AsyncSession(acli, ttl=LONG_TTL)
    election = AsyncElection(first, "election")
    await election.campaign("v1", timeout=WAIT)
    key, revision = election.key, election.revision
    await first.orphan()
    async with AsyncSession(acli, ttl=LONG_TTL, lease_id=first.lease_id) as again:
        resumed = AsyncElection.resume(again, "election", key, revision)
        await resumed.proclaim("v2", timeout=WAIT)
        assert (await resumed.leader()).value == b"v2"
        await resumed.resign(timeout=WAIT)
        assert (await acli.get(key)).kvs == []
