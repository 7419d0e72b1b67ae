"""Mutex against a real 3-member etcd: exclusion, queue order, timeouts and lost holders."""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import pytest
from conftest import BACKENDS, memory_backend, skip_real_only

from etcd_layers import Client, Op, SortOrder, SortTarget, errors, namespace
from etcd_layers.concurrency import LockNotHeldError, Mutex, Session, SessionExpiredError
from etcd_layers.testing import EtcdCluster, wait_until

TTL = 2  # etcd's smallest lease TTL with the default election timeout
LONG_TTL = 5  # sessions that must outlive the test (kept alive all along)
REVOKED_TTL = 3  # renewed every second, so a session notices a revoke within about one
WAIT = 20.0  # bound on every blocking step of a test


@pytest.fixture(params=BACKENDS)
def clients(request: pytest.FixtureRequest) -> Iterator[list[Client]]:
    """One client per member of `etcd_cluster`, so contenders reach the lock through different
    servers; then three clients of a MemoryEtcd."""
    skip_real_only(request, request.param)
    if request.param == "memory":
        with memory_backend() as backend:
            yield [backend.client() for _ in range(3)]
        return
    etcd_cluster: EtcdCluster = request.getfixturevalue("etcd_cluster")
    with contextlib.ExitStack() as stack:
        yield [
            stack.enter_context(
                Client(endpoints=[member.endpoint], **etcd_cluster.client_options())
            )
            for member in etcd_cluster.members
        ]


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=8, thread_name_prefix="test-mutex") as executor:
        yield executor


def contenders(client: Client, prefix: bytes) -> list[bytes]:
    """The keys queued on the lock, oldest first."""
    oldest_first = Op.get(
        prefix + b"/", prefix=True, sort_target=SortTarget.CREATE, sort_order=SortOrder.ASCEND
    )
    return [kv.key for kv in client.do(oldest_first).kvs]


def test_mutex_excludes_threads_on_several_clients(
    clients: list[Client], etcd_key_prefix: bytes, pool: ThreadPoolExecutor
) -> None:
    """4 threads on each of 2 clients increment a counter in etcd; no increment is lost."""
    lock_name, counter = etcd_key_prefix + b"lock", etcd_key_prefix + b"counter"
    clients[0].put(counter, b"0")
    inside = threading.Semaphore(1)  # a second holder at once would find it taken
    overlaps: list[str] = []
    per_thread = 10

    def work(client: Client) -> None:
        with Session(client, ttl=LONG_TTL) as session:
            mutex = Mutex(session, lock_name)
            for _ in range(per_thread):
                mutex.lock(timeout=WAIT)
                try:
                    if not inside.acquire(blocking=False):
                        overlaps.append(threading.current_thread().name)
                        continue
                    value = int(client.get(counter).kvs[0].value)
                    client.put(counter, str(value + 1))
                    inside.release()
                finally:
                    mutex.unlock()

    futures = [pool.submit(work, client) for client in clients[:2] for _ in range(4)]
    for future in futures:
        future.result(timeout=120)
    assert overlaps == []
    assert clients[0].get(counter).kvs[0].value == str(8 * per_thread).encode()
    assert contenders(clients[0], lock_name) == []


def queue_waiter(
    pool: ThreadPoolExecutor,
    client: Client,
    lock_name: bytes,
    on_acquire: Callable[[], None],
    ttl: int = LONG_TTL,
) -> tuple[Session, Future[None]]:
    """Start a thread that waits for the lock, runs `on_acquire`, unlocks; return once queued."""
    session = Session(client, ttl=ttl)
    mutex = Mutex(session, lock_name)
    before = len(contenders(client, lock_name))

    def wait() -> None:
        mutex.lock(timeout=WAIT)
        try:
            on_acquire()
        finally:
            mutex.unlock()

    future = pool.submit(wait)
    wait_until(
        lambda: len(contenders(client, lock_name)) > before or future.done(),
        timeout=WAIT,
        message="the waiter queued",
    )
    return session, future


def test_mutex_serves_waiters_in_queue_order(
    clients: list[Client], etcd_key_prefix: bytes, pool: ThreadPoolExecutor
) -> None:
    """Waiters get the lock in the order they queued, whichever client they use."""
    lock_name = etcd_key_prefix + b"lock"
    order: list[str] = []
    with Session(clients[0], ttl=LONG_TTL) as holder_session:
        holder = Mutex(holder_session, lock_name)
        holder.lock(timeout=WAIT)
        waiters = [
            queue_waiter(pool, clients[index % 3], lock_name, functools.partial(order.append, name))
            for index, name in enumerate(["first", "second", "third", "fourth"])
        ]
        assert order == []
        holder.unlock()
        for session, future in waiters:
            future.result(timeout=WAIT)
            session.close()
    assert order == ["first", "second", "third", "fourth"]


def test_mutex_try_lock_reports_a_taken_lock_without_queueing(
    clients: list[Client], etcd_key_prefix: bytes
) -> None:
    """try_lock() returns False while another session holds the lock, and leaves no key."""
    lock_name = etcd_key_prefix + b"lock"
    with Session(clients[0], ttl=LONG_TTL) as first, Session(clients[1], ttl=LONG_TTL) as second:
        holder, other = Mutex(first, lock_name), Mutex(second, lock_name)
        assert holder.try_lock() is True
        assert other.try_lock() is False
        assert contenders(clients[1], lock_name) == [holder.key]
        holder.unlock()
        assert other.try_lock() is True
        assert other.is_owner()


def test_mutex_lock_is_reentrant_for_its_session(
    clients: list[Client], etcd_key_prefix: bytes
) -> None:
    """A second lock() through the same session returns at once and shares the one key."""
    lock_name = etcd_key_prefix + b"lock"
    with Session(clients[0], ttl=LONG_TTL) as session:
        first, again = Mutex(session, lock_name), Mutex(session, lock_name)
        first.lock(timeout=WAIT)
        again.lock(timeout=1)
        assert contenders(clients[0], lock_name) == [first.key]
        assert again.is_owner()
        again.unlock()
        assert not first.is_owner()


def test_mutex_lock_timeout_leaves_no_waiter_key(
    clients: list[Client], etcd_key_prefix: bytes
) -> None:
    """A lock() that times out raises DeadlineExceededError and removes its own key."""
    lock_name = etcd_key_prefix + b"lock"
    with Session(clients[0], ttl=LONG_TTL) as first, Session(clients[1], ttl=LONG_TTL) as second:
        holder, waiter = Mutex(first, lock_name), Mutex(second, lock_name)
        holder.lock(timeout=WAIT)
        started = time.monotonic()
        with pytest.raises(errors.DeadlineExceededError) as raised:
            waiter.lock(timeout=0.5)
        assert isinstance(raised.value, TimeoutError)
        assert time.monotonic() - started < 5
        assert contenders(clients[0], lock_name) == [holder.key]


@pytest.mark.parametrize("failure", ["orphan", "close_client", "partition"])
@pytest.mark.real_only  # black-holes a member's traffic
def test_mutex_lost_holder_hands_the_lock_to_the_next_waiter(
    etcd_cluster: EtcdCluster,
    clients: list[Client],
    etcd_key_prefix: bytes,
    pool: ThreadPoolExecutor,
    failure: str,
) -> None:
    """A holder whose keep-alive stops loses the lock when its lease expires, within ~the TTL."""
    lock_name = etcd_key_prefix + b"lock"
    proxy = etcd_cluster.members[0].client_proxy
    doomed_client = Client(endpoints=[proxy.endpoint], **etcd_cluster.client_options())
    doomed_session = Session(doomed_client, ttl=TTL)
    doomed = Mutex(doomed_session, lock_name)
    doomed.lock(timeout=WAIT)
    acquired = threading.Event()
    session, future = queue_waiter(pool, clients[1], lock_name, acquired.set)
    started = time.monotonic()
    if failure == "orphan":
        doomed_session.orphan()  # the keep-alive stops; the lease runs out
    elif failure == "close_client":
        doomed_client.close()  # as a crashed process: its keep-alive ends with it
    else:
        proxy.blackhole()  # the holder is cut off from its only member; the others go on
    try:
        assert acquired.wait(TTL + 5)
        elapsed = time.monotonic() - started
        future.result(timeout=WAIT)
        if failure == "partition":  # the cut-off holder learns it lost, without polling
            assert doomed_session.done.wait(TTL + 5)
            assert isinstance(doomed_session.error, errors.LeaseNotFoundError)
    finally:
        proxy.unblackhole()
    session.close()
    doomed_client.close()
    assert elapsed < TTL + 3
    assert clients[2].time_to_live(doomed_session.lease_id).ttl == -1


def test_mutex_waiter_fails_when_its_own_session_ends(
    clients: list[Client], etcd_key_prefix: bytes, pool: ThreadPoolExecutor
) -> None:
    """A waiter whose session is revoked stops waiting with SessionExpiredError."""
    lock_name = etcd_key_prefix + b"lock"
    with Session(clients[0], ttl=LONG_TTL) as holder_session:
        Mutex(holder_session, lock_name).lock(timeout=WAIT)
        session, future = queue_waiter(pool, clients[1], lock_name, lambda: None, REVOKED_TTL)
        clients[2].revoke(session.lease_id)
        with pytest.raises(SessionExpiredError):
            future.result(timeout=10)
        assert session.done.wait(5)  # the key may vanish before the keep-alive notices
        assert contenders(clients[0], lock_name) == [Mutex(holder_session, lock_name).key]


def test_mutex_owner_compare_fences_a_lost_holder(
    clients: list[Client], etcd_key_prefix: bytes
) -> None:
    """Writes guarded by owner_compare() succeed while held and fail once the lock is lost."""
    lock_name, data = etcd_key_prefix + b"lock", etcd_key_prefix + b"data"
    session = Session(clients[0], ttl=REVOKED_TTL)
    mutex = Mutex(session, lock_name)
    with pytest.raises(LockNotHeldError):
        mutex.owner_compare()
    mutex.lock(timeout=WAIT)
    guard = mutex.owner_compare()
    assert clients[0].txn([guard], [Op.put(data, b"held")]).succeeded
    clients[1].revoke(session.lease_id)  # the holder's lease is gone: so is its key
    assert not clients[0].txn([guard], [Op.put(data, b"stale")]).succeeded
    assert clients[0].get(data).kvs[0].value == b"held"
    assert session.done.wait(5)
    session.close()


def test_mutex_through_a_namespace_contends_with_the_raw_prefix(
    clients: list[Client], etcd_key_prefix: bytes
) -> None:
    """A Mutex on `namespace.wrap(cli, p)` is the same lock as one on p + name through cli."""
    tenant = namespace.wrap(clients[0], etcd_key_prefix)
    with Session(tenant, ttl=LONG_TTL) as inner, Session(clients[1], ttl=LONG_TTL) as outer:
        namespaced = Mutex(inner, "lock")
        raw = Mutex(outer, etcd_key_prefix + b"lock")
        namespaced.lock(timeout=WAIT)
        assert raw.try_lock() is False
        assert contenders(clients[1], etcd_key_prefix + b"lock") == [
            etcd_key_prefix + namespaced.key
        ]
        namespaced.unlock()
        assert raw.try_lock() is True
        assert namespaced.try_lock() is False
