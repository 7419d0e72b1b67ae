"""Go clientv3's namespace, ordering and concurrency integration tests, ported to our layers.

Ported: namespace_test.go, ordering_kv_test.go, ordering_util_test.go, concurrency's
mutex/election/session tests, experimental/recipes/v3_lock_test.go (the Mutex parts) and
tests/integration/v3_election_test.go. Where Go stops members to make one fall behind, these
tests cut a follower off from its peers instead (the same staleness, without restarts).
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial

import pytest
from conftest import BACKENDS, memory_backend, skip_real_only

from etcd_layers import Client, Compare, EventType, Op, errors, namespace, ordering
from etcd_layers.base import Event, Response
from etcd_layers.base.protocols import Watch
from etcd_layers.concurrency import (
    Election,
    Mutex,
    Observation,
    Session,
    SessionExpiredError,
)
from etcd_layers.testing import EtcdCluster, Member, wait_until

TIMEOUT = 10.0  # for anything that should happen; a fault fails the test instead of hanging it
TRANSIENT = (errors.UnavailableError, errors.DeadlineExceededError, errors.RequestTimeoutError)
TTL = 5  # seconds: sessions that tests close explicitly


@pytest.fixture(scope="module", params=BACKENDS)
def shared(request: pytest.FixtureRequest) -> Iterator[Client]:
    """A client on every member (tests share it); then a client of a MemoryEtcd."""
    if request.param == "memory":
        with memory_backend() as backend:
            yield backend.client(timeout=TIMEOUT)
        return
    etcd_cluster: EtcdCluster = request.getfixturevalue("etcd_cluster")
    with Client(etcd_cluster.endpoints, timeout=TIMEOUT) as client:
        yield client


@pytest.fixture
def cli(request: pytest.FixtureRequest, shared: Client) -> Client:
    """The shared client (a test marked real_only is skipped on MemoryEtcd)."""
    skip_real_only(request, request.node.callspec.params["shared"])
    return shared


@pytest.fixture(scope="module")
def member_clients(etcd_cluster: EtcdCluster) -> Iterator[list[Client]]:
    """One client per member, each on that member only."""
    with contextlib.ExitStack() as stack:
        yield [
            stack.enter_context(Client([m.endpoint], timeout=TIMEOUT)) for m in etcd_cluster.members
        ]


@pytest.fixture
def prefix(etcd_key_prefix: bytes) -> bytes:
    """The test's own key prefix."""
    return etcd_key_prefix


# --- namespace (namespace_test.go, namespace/kv.go semantics) ----------------------------------


def test_namespace_put_then_get_sees_the_key_without_the_prefix(cli: Client, prefix: bytes) -> None:
    """A put through the namespace lands under the prefix; a get through it cuts the prefix."""
    ns = namespace.wrap_kv(cli, prefix + b"foo/")
    ns.put("abc", "bar")
    assert [kv.key for kv in ns.get("abc").kvs] == [b"abc"]
    assert cli.get(prefix + b"foo/abc").kvs[0].value == b"bar"


def test_namespace_watch_reports_keys_without_the_prefix(cli: Client, prefix: bytes) -> None:
    """A namespaced watch replays the put with the key cut; a plain watch sees the full key."""
    ns = prefix + b"foo/"
    revision = namespace.wrap_kv(cli, ns).put("abc", "bar").header.revision
    with namespace.wrap_watcher(cli, ns).watch("abc", start_revision=revision) as watch:
        [event] = watch.next(timeout=TIMEOUT).events
    kv = event.kv
    assert (kv.key, kv.value, kv.version) == (b"abc", b"bar", 1)
    assert kv.create_revision == kv.mod_revision == revision
    with cli.watch(ns + b"abc", start_revision=revision) as raw:
        assert raw.next(timeout=TIMEOUT).events[0].kv.key == ns + b"abc"


def test_namespace_range_end_and_from_key_stay_inside(cli: Client, prefix: bytes) -> None:
    """range_end and from_key are translated into the namespace; keys beyond it stay out."""
    ns = namespace.wrap(cli, prefix + b"ns/")
    for key in (b"a", b"b", b"c"):
        ns.put(key, key)
    cli.put(prefix + b"nt", b"sibling")  # just after the namespace
    assert [kv.key for kv in ns.get("a", range_end="c").kvs] == [b"a", b"b"]
    assert [kv.key for kv in ns.get("b", from_key=True).kvs] == [b"b", b"c"]
    assert ns.get("", from_key=True).count == 3


def test_namespace_txn_compares_and_ops_are_translated(cli: Client, prefix: bytes) -> None:
    """A txn's comparisons and ops, nested ones included, act on the namespaced keys."""
    ns = namespace.wrap(cli, prefix + b"ns/")
    cli.put(prefix + b"ns/k", b"v")
    response = ns.txn(
        [Compare.value("k") == "v", Compare.version("missing") == 0],
        [Op.txn(success=[Op.put("k", "w", prev_kv=True)]), Op.get("k")],
    )
    assert response.succeeded
    assert cli.get(prefix + b"ns/k").kvs[0].value == b"w"
    assert [kv.key for kv in ns.get("", prefix=True).kvs] == [b"k"]


def test_namespace_delete_prefix_returns_cut_prev_kvs(cli: Client, prefix: bytes) -> None:
    """A namespaced prefix delete removes only namespace keys and reports them cut."""
    ns = namespace.wrap(cli, prefix + b"ns/")
    ns.put("a1", "1")
    ns.put("a2", "2")
    cli.put(prefix + b"a1", b"outside")
    response = ns.delete("a", prefix=True, prev_kv=True)
    assert [kv.key for kv in response.prev_kvs] == [b"a1", b"a2"]
    assert cli.get(prefix + b"a1").count == 1


def test_namespace_empty_key_raises_empty_key_error(cli: Client, prefix: bytes) -> None:
    """An empty key through the namespace is EmptyKeyError, as clientv3's namespace says."""
    ns = namespace.wrap(cli, prefix + b"ns/")
    with pytest.raises(errors.EmptyKeyError):
        ns.put("", "v")
    with pytest.raises(errors.EmptyKeyError):
        ns.get("")


def test_namespace_time_to_live_lists_only_namespace_keys(cli: Client, prefix: bytes) -> None:
    """A lease's keys, listed through a namespaced Lease, are the namespace's, cut."""
    lease = cli.grant(10).id
    cli.put(prefix + b"ns/a", b"", lease=lease)
    cli.put(prefix + b"other", b"", lease=lease)
    assert namespace.wrap_lease(cli, prefix + b"ns/").time_to_live(lease, keys=True).keys == [b"a"]
    cli.revoke(lease)


def test_namespace_kv_wrapper_refuses_watch(cli: Client, prefix: bytes) -> None:
    """wrap_kv does not translate watches, so it refuses them instead of forwarding."""
    ns = namespace.wrap_kv(cli, prefix + b"ns/")
    with pytest.raises(AttributeError):
        ns.watch("k")  # type: ignore[attr-defined]  # refused on purpose


# --- ordering (ordering_kv_test.go, ordering_util_test.go) -------------------------------------


class DetectedOrderViolationError(Exception):
    """What the test's on_violation raises (Go's errOrderViolation)."""


def detect(op: Op, response: Response, prev_revision: int) -> None:
    """An on_violation policy that fails the call at once."""
    raise DetectedOrderViolationError(f"{response.header.revision} < {prev_revision}")


@dataclass
class Split:
    """A follower cut off from its peers after missing a write of `key`."""

    stale: Member
    fresh: list[Member]
    key: bytes
    revision: int  # of the write the stale member missed (value b"buzz")


def pin(client: Client, member: Member) -> None:
    """Send every unary request of `client` to `member` first."""
    for _ in client.endpoints:
        if client.switch_endpoint() == member.endpoint:
            return
    raise AssertionError(f"{member.endpoint} is not an endpoint of the client")


def serializable_revision(member: Member, key: bytes) -> int:
    """The revision `member` answers a serializable read with."""
    with Client([member.endpoint], timeout=2.0) as client:
        return client.get(key, serializable=True).header.revision


@pytest.fixture
def split(etcd_cluster: EtcdCluster, prefix: bytes) -> Iterator[Split]:
    """Put foo=bar everywhere, cut a follower off, put foo=buzz without it; heal afterwards."""
    key = prefix + b"foo"
    etcd_cluster.wait_healthy()
    leader = wait_until(etcd_cluster.leader, timeout=TIMEOUT, message="a leader")
    stale = next(m for m in etcd_cluster.members if m is not leader)
    fresh = [m for m in etcd_cluster.members if m is not stale]
    with Client([m.endpoint for m in fresh], timeout=TIMEOUT) as writer:
        before = writer.put(key, b"bar").header.revision
        wait_until(
            lambda: serializable_revision(stale, key) >= before, timeout=TIMEOUT, ignore=TRANSIENT
        )
        etcd_cluster.isolate(stale)
        try:
            revision = wait_until(
                lambda: writer.put(key, b"buzz").header.revision, timeout=TIMEOUT, ignore=TRANSIENT
            )
            assert serializable_revision(stale, key) < revision
            yield Split(stale, fresh, key, revision)
        finally:
            etcd_cluster.heal()
        latest = writer.get(key).header.revision
    wait_until(
        lambda: all(serializable_revision(m, key) >= latest for m in etcd_cluster.members),
        timeout=3 * TIMEOUT,
        ignore=TRANSIENT,
    )


def test_ordering_detects_a_stale_serializable_get(etcd_cluster: EtcdCluster, split: Split) -> None:
    """A serializable get from a member behind the revision already seen is a violation."""
    with Client(etcd_cluster.endpoints, timeout=TIMEOUT) as client:
        checked = ordering.wrap(client, on_violation=detect)
        pin(client, split.fresh[0])
        assert checked.get(split.key).kvs[0].value == b"buzz"
        pin(client, split.stale)
        with pytest.raises(DetectedOrderViolationError):
            checked.get(split.key, serializable=True)


def test_ordering_detects_a_stale_read_only_txn(etcd_cluster: EtcdCluster, split: Split) -> None:
    """A serializable read-only txn from a member behind is a violation too."""
    with Client(etcd_cluster.endpoints, timeout=TIMEOUT) as client:
        checked = ordering.wrap(client, on_violation=detect)
        pin(client, split.fresh[0])
        checked.txn([Compare.value(split.key + b"-b") > b"a"], [Op.get(split.key)])
        pin(client, split.stale)
        with pytest.raises(DetectedOrderViolationError):
            checked.txn(
                [Compare.value(split.key + b"-b") > b"a"],
                [Op.get(split.key, serializable=True)],
            )


def test_ordering_switch_endpoints_gives_up_with_only_stale_members(
    etcd_cluster: EtcdCluster, split: Split
) -> None:
    """With only a stale member left, the default policy raises NoGreaterRevisionError."""
    with Client(etcd_cluster.endpoints, timeout=TIMEOUT) as client:
        checked = ordering.wrap(client, on_violation=ordering.switch_endpoints(client))
        pin(client, split.fresh[0])
        checked.get(split.key)
        client.set_endpoints(split.stale.endpoint)
        with pytest.raises(errors.NoGreaterRevisionError):
            checked.get(split.key, serializable=True)


def test_ordering_switch_endpoints_moves_to_an_up_to_date_member(
    etcd_cluster: EtcdCluster, split: Split
) -> None:
    """A violation on the stale member moves the client on; the answer is at least as new."""
    with Client(etcd_cluster.endpoints, timeout=TIMEOUT) as client:
        checked = ordering.wrap(client)
        pin(client, split.fresh[0])
        seen = checked.get(split.key).header.revision
        pin(client, split.stale)
        response = checked.get(split.key, serializable=True)
        assert response.header.revision >= seen
        assert response.kvs[0].value == b"buzz"


def test_ordering_reads_from_the_member_again_once_it_caught_up(
    etcd_cluster: EtcdCluster, split: Split
) -> None:
    """After the partition heals, the once-stale member answers without a violation."""
    with Client(etcd_cluster.endpoints, timeout=TIMEOUT) as client:
        checked = ordering.wrap(client, on_violation=detect)
        pin(client, split.fresh[0])
        checked.get(split.key)
        client.set_endpoints(split.stale.endpoint)
        etcd_cluster.heal()
        wait_until(
            lambda: serializable_revision(split.stale, split.key) >= split.revision,
            timeout=3 * TIMEOUT,
            ignore=TRANSIENT,
        )
        assert checked.get(split.key).kvs[0].value == b"buzz"
        assert checked.get(split.key, serializable=True).kvs[0].value == b"buzz"


# --- sessions (session_test.go) ----------------------------------------------------------------


def test_session_adopts_an_existing_lease_and_orphan_ends_it(cli: Client) -> None:
    """A session on a granted lease uses that lease; orphan() sets done at once."""
    lease = cli.grant(100).id
    session = Session(cli, lease_id=lease)
    assert session.lease_id == lease
    session.orphan()
    assert session.done.is_set()
    assert cli.time_to_live(lease).ttl > 0  # orphaned, not revoked
    cli.revoke(lease)


def test_session_uses_the_ttl_asked_for(cli: Client) -> None:
    """A session's lease has the TTL given, not the default of 60 s."""
    with Session(cli, ttl=90) as session:
        ttl = cli.time_to_live(session.lease_id).ttl
        assert 70 <= ttl <= 90


@pytest.mark.real_only  # MemoryEtcd answers in-process within the 1 ms deadline
def test_session_with_a_spent_deadline_raises_deadline_exceeded(cli: Client) -> None:
    """A session that cannot be set up within its timeout raises DeadlineExceededError at once
    (TestNewSessionLeaseGrantTimeout)."""
    before = {status.id for status in cli.leases().leases}
    started = time.monotonic()
    with pytest.raises(errors.DeadlineExceededError):
        Session(cli, ttl=5, timeout=0.001)
    assert time.monotonic() - started < 1.0
    # A grant whose deadline passed may still have been applied: its 5 s lease then expires.
    wait_until(lambda: {status.id for status in cli.leases().leases} <= before, timeout=12)


def test_session_of_one_second_closes_quickly(cli: Client) -> None:
    """Closing a session with a 1 s TTL revokes its lease within that bound."""
    session = Session(cli, ttl=1)
    started = time.monotonic()
    session.close()
    assert time.monotonic() - started < 3.0
    assert cli.time_to_live(session.lease_id).ttl == -1


def moved_on(cluster: EtcdCluster, old: Member) -> bool:
    """Whether the cluster names a leader other than `old`."""
    return cluster.leader() not in (None, old)


def test_linearizable_reads_never_go_back_while_the_leader_is_partitioned(
    etcd_cluster: EtcdCluster, prefix: bytes
) -> None:
    """Gets through every member see revisions that never decrease, while puts go on and the
    leader is cut off twice (TestRevisionMonotonicWithLeaderPartitions, shortened)."""
    key = prefix + b"foo"
    stop = threading.Event()
    failures: list[BaseException] = []

    def put_worker(client: Client) -> None:
        for i in range(10_000):  # bounded; stop ends it long before
            if stop.is_set():
                return
            with contextlib.suppress(*TRANSIENT):
                client.put(key, b"%d" % i, timeout=2.0)

    def get_worker(client: Client) -> None:
        previous = 0
        for _ in range(10_000):
            if stop.is_set():
                return
            try:
                revision = client.get(key, timeout=2.0).header.revision
            except TRANSIENT:
                continue
            if revision < previous:
                failures.append(AssertionError(f"revision {revision} after {previous}"))
                return
            previous = revision

    with contextlib.ExitStack() as stack:
        clients = [
            stack.enter_context(Client([m.endpoint], timeout=TIMEOUT)) for m in etcd_cluster.members
        ]
        threads = [start(put_worker, c) for c in clients] + [start(get_worker, c) for c in clients]
        try:
            for _ in range(2):
                leader = wait_until(etcd_cluster.leader, timeout=TIMEOUT, message="a leader")
                etcd_cluster.isolate(leader)
                wait_until(partial(moved_on, etcd_cluster, leader), timeout=TIMEOUT)
                etcd_cluster.heal()
        finally:
            etcd_cluster.heal()
            stop.set()
            for thread in threads:
                thread.join(TIMEOUT)
    assert not failures, failures
    etcd_cluster.wait_healthy()


# --- mutex (mutex_test.go, example_mutex_test.go, v3_lock_test.go) -----------------------------


def start(target: object, *args: object) -> threading.Thread:
    """Start a daemon thread running target(*args)."""
    thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
    thread.start()
    return thread


def test_mutex_waiter_whose_session_closes_raises_session_expired(
    cli: Client, prefix: bytes
) -> None:
    """A lock() waiting behind a holder fails with SessionExpiredError once its session closes."""
    lock = prefix + b"my-lock"
    with Session(cli, ttl=TTL) as first:
        holder = Mutex(first, lock)
        holder.lock(timeout=TIMEOUT)
        second = Session(cli, ttl=TTL)
        outcome: queue.Queue[BaseException | None] = queue.Queue()

        def wait_for_lock() -> None:
            try:
                Mutex(second, lock).lock(timeout=TIMEOUT)
                outcome.put(None)
            except BaseException as err:  # noqa: BLE001  # handed to the test thread
                outcome.put(err)

        thread = start(wait_for_lock)
        wait_until(lambda: cli.get(lock + b"/", prefix=True).count == 2, timeout=TIMEOUT)
        second.close()
        holder.unlock()
        thread.join(TIMEOUT)
        assert isinstance(outcome.get(timeout=TIMEOUT), SessionExpiredError)


def test_mutex_try_lock_fails_while_held_and_succeeds_after_unlock(
    cli: Client, prefix: bytes
) -> None:
    """try_lock of a lock held by another session is False, and True once it is unlocked."""
    lock = prefix + b"my-lock"
    with Session(cli, ttl=TTL) as first, Session(cli, ttl=TTL) as second:
        holder, other = Mutex(first, lock), Mutex(second, lock)
        holder.lock(timeout=TIMEOUT)
        assert not other.try_lock(timeout=TIMEOUT)
        assert cli.get(lock + b"/", prefix=True).count == 1  # the failed try left no key
        holder.unlock()
        assert other.try_lock(timeout=TIMEOUT)
        assert other.is_owner()


def test_mutex_lock_waits_until_the_holder_unlocks(cli: Client, prefix: bytes) -> None:
    """A second session's lock() returns only after the first unlocks."""
    lock = prefix + b"my-lock"
    with Session(cli, ttl=TTL) as first, Session(cli, ttl=TTL) as second:
        holder = Mutex(first, lock)
        holder.lock(timeout=TIMEOUT)
        locked = threading.Event()

        def lock_then_flag() -> None:
            Mutex(second, lock).lock(timeout=TIMEOUT)
            locked.set()

        thread = start(lock_then_flag)
        wait_until(lambda: cli.get(lock + b"/", prefix=True).count == 2, timeout=TIMEOUT)
        assert not locked.is_set()
        holder.unlock()
        thread.join(TIMEOUT)
        assert locked.is_set()


@pytest.mark.parametrize("spread", [False, True], ids=["single-node", "multi-node"])
def test_mutex_waiters_hold_the_lock_one_at_a_time(
    member_clients: list[Client], prefix: bytes, spread: bool
) -> None:
    """Waiters on one member or on every member each get the lock, never two at once."""
    waiters = 5
    lock = prefix + b"test-mutex"
    locked: queue.Queue[Mutex] = queue.Queue()
    failures: list[BaseException] = []
    sessions = [Session(member_clients[i % 3 if spread else 0], ttl=TTL) for i in range(waiters)]

    def wait_for_lock(session: Session) -> None:
        try:
            mutex = Mutex(session, lock)
            mutex.lock(timeout=3 * TIMEOUT)
            locked.put(mutex)
        except BaseException as err:  # noqa: BLE001  # handed to the test thread
            failures.append(err)

    threads = [start(wait_for_lock, session) for session in sessions]
    try:
        for _ in range(waiters):
            mutex = locked.get(timeout=TIMEOUT)
            assert locked.empty(), "a waiter got the lock while it was held"
            assert mutex.is_owner()
            mutex.unlock()
        for thread in threads:
            thread.join(TIMEOUT)
        assert not failures, failures
    finally:
        for session in sessions:
            session.close()


@pytest.mark.parametrize("spread", [False, True], ids=["single-node", "multi-node"])
def test_mutex_try_lock_from_many_sessions_lets_exactly_one_win(
    member_clients: list[Client], prefix: bytes, spread: bool
) -> None:
    """Concurrent try_lock calls of several sessions: one wins, every other one is refused."""
    lockers = 5
    lock = prefix + b"test-mutex-try-lock"
    sessions = [Session(member_clients[i % 3 if spread else 0], ttl=TTL) for i in range(lockers)]
    results: queue.Queue[bool | BaseException] = queue.Queue()
    barrier = threading.Barrier(lockers, timeout=TIMEOUT)

    def try_lock(session: Session) -> None:
        try:
            barrier.wait()
            results.put(Mutex(session, lock).try_lock(timeout=TIMEOUT))
        except BaseException as err:  # noqa: BLE001  # handed to the test thread
            results.put(err)

    threads = [start(try_lock, session) for session in sessions]
    try:
        outcomes = [results.get(timeout=2 * TIMEOUT) for _ in range(lockers)]
        assert sorted(outcomes, key=str) == [False] * (lockers - 1) + [True]
        for thread in threads:
            thread.join(TIMEOUT)
    finally:
        for session in sessions:
            session.close()


def test_mutex_same_session_locks_again_without_deadlock(cli: Client, prefix: bytes) -> None:
    """A second Mutex on the same session and prefix locks at once (the lock is the session's)."""
    with Session(cli, ttl=TTL) as session:
        Mutex(session, prefix + b"test-mutex").lock(timeout=TIMEOUT)
        again = Mutex(session, prefix + b"test-mutex")
        again.lock(timeout=2.0)
        assert again.is_owner()


def test_mutex_new_waiter_still_waits_for_the_holder_when_the_waiter_ahead_leaves(
    cli: Client, prefix: bytes
) -> None:
    """When the waiter queued ahead of a new one goes away, the new one keeps waiting for the
    holder, and gets the lock only after the holder unlocks (TestMutexWaitsOnCurrentHolder)."""
    lock = prefix + b"test-mutex"
    first = Session(cli, ttl=TTL)
    victim = Session(cli, ttl=TTL)
    newcomer = Session(cli, ttl=TTL)
    try:
        start_revision = cli.get(lock).header.revision + 1
        owner = Mutex(first, lock)
        owner.lock(timeout=TIMEOUT)
        with cli.watch(lock, prefix=True, start_revision=start_revision) as watch:
            victim_done = threading.Event()
            newcomer_done = threading.Event()

            def lock_and_flag(session: Session, done: threading.Event) -> None:
                with contextlib.suppress(errors.EtcdError):  # the victim's lock fails
                    Mutex(session, lock).lock(timeout=TIMEOUT)
                done.set()

            start(lock_and_flag, victim, victim_done)
            puts = [e for e in _events(watch, 2) if e.type == EventType.PUT]
            assert len(puts) == 2  # the owner's key and the victim's
            start(lock_and_flag, newcomer, newcomer_done)
            assert _events(watch, 1)[0].type == EventType.PUT  # the newcomer queued
            victim.close()
            assert _events(watch, 1)[0].type == EventType.DELETE  # the victim's key is gone
            assert not newcomer_done.wait(0.3), "the newcomer got the lock before the owner left"
            owner.unlock()
            assert newcomer_done.wait(TIMEOUT)
            assert victim_done.wait(TIMEOUT)
    finally:
        for session in (first, victim, newcomer):
            session.close()


def _events(watch: Watch, count: int) -> list[Event]:
    """Read `count` events from a watch (each response within TIMEOUT)."""
    found: list[Event] = []
    while len(found) < count:
        found += watch.next(timeout=TIMEOUT).events
    return found


# --- election (v3_election_test.go, election_test.go, election_resign_test.go) ----------------


def test_election_followers_observe_each_leader_in_turn(
    member_clients: list[Client], prefix: bytes
) -> None:
    """Observers on every member see each elected leader's value, one leader after another."""
    name = prefix + b"test-election"
    rounds = 2
    observed: list[queue.Queue[bytes]] = [queue.Queue() for _ in member_clients]
    observers = [Session(c, ttl=TTL) for c in member_clients]
    candidates = [Session(member_clients[i % 3], ttl=TTL) for i in range(rounds)]
    observations = [Election(s, name).observe() for s in observers]

    def follow(observation: Observation, out: queue.Queue[bytes]) -> None:
        with contextlib.suppress(errors.CanceledError):
            for response in observation:
                out.put(response.kvs[0].value)

    threads = [start(follow, o, q) for o, q in zip(observations, observed, strict=True)]
    try:
        for i, session in enumerate(candidates):
            election = Election(session, name)
            value = b"electval-%d" % i
            election.campaign(value, timeout=TIMEOUT)
            for out in observed:
                assert out.get(timeout=TIMEOUT) == value
            election.resign()
    finally:
        for observation in observations:
            observation.cancel()
        for thread in threads:
            thread.join(TIMEOUT)
        for session in observers + candidates:
            session.close()


def test_election_failover_elects_the_next_candidate(
    member_clients: list[Client], prefix: bytes
) -> None:
    """When the leader's session closes, the waiting candidate becomes leader."""
    name = prefix + b"test-election"
    sessions = [Session(c, ttl=TTL) for c in member_clients]
    try:
        first = Election(sessions[0], name)
        first.campaign("foo", timeout=TIMEOUT)
        with Election(sessions[2], name).observe() as observation:
            assert observation.next(timeout=TIMEOUT).kvs[0].value == b"foo"
        outcome: queue.Queue[BaseException | None] = queue.Queue()

        def campaign() -> None:
            try:
                Election(sessions[1], name).campaign("bar", timeout=TIMEOUT)
                outcome.put(None)
            except BaseException as err:  # noqa: BLE001  # handed to the test thread
                outcome.put(err)

        start(campaign)
        wait_until(lambda: member_clients[0].get(name + b"/", prefix=True).count == 2)
        sessions[0].close()
        with Election(sessions[2], name).observe() as observation:
            assert observation.next(timeout=TIMEOUT).kvs[0].value == b"bar"
        assert outcome.get(timeout=TIMEOUT) is None
    finally:
        for session in sessions:
            session.close()


def test_election_campaign_again_on_the_same_session_proclaims(cli: Client, prefix: bytes) -> None:
    """A second campaign through the same session does not deadlock; it sets the new value."""
    with Session(cli, ttl=TTL) as session:
        Election(session, prefix + b"test-elect").campaign("abc", timeout=TIMEOUT)
        Election(session, prefix + b"test-elect").campaign("def", timeout=TIMEOUT)
        with Election(session, prefix + b"test-elect").observe() as observation:
            assert observation.next(timeout=TIMEOUT).kvs[0].value == b"def"


def test_election_on_a_prefix_of_an_existing_key_is_won(cli: Client, prefix: bytes) -> None:
    """An election named "test" is won at once although key "testa" exists (etcd #6278)."""
    cli.put(prefix + b"testa", b"value")
    with Session(cli, ttl=TTL) as session:
        election = Election(session, prefix + b"test")
        election.campaign("abc", timeout=5.0)
        assert election.leader().value == b"abc"


def test_election_leader_keeps_leading_when_its_session_restarts_on_the_same_lease(
    cli: Client, prefix: bytes
) -> None:
    """A new session on the leader's lease campaigns as the same leader; a waiting candidate
    does not win meanwhile (TestElectionOnSessionRestart)."""
    name = prefix + b"test-elect"
    session = Session(cli, ttl=TTL)
    waiter = Session(cli, ttl=TTL)
    try:
        Election(session, name).campaign("abc", timeout=TIMEOUT)
        outcome: queue.Queue[BaseException | None] = queue.Queue()

        def campaign() -> None:
            try:
                Election(waiter, name).campaign("123", timeout=2.0)
                outcome.put(None)
            except BaseException as err:  # noqa: BLE001  # handed to the test thread
                outcome.put(err)

        start(campaign)
        restarted = Session(cli, lease_id=session.lease_id)
        election = Election(restarted, name)
        election.campaign("def", timeout=TIMEOUT)
        with election.observe() as observation:
            assert observation.next(timeout=TIMEOUT).kvs[0].value == b"def"
        assert isinstance(outcome.get(timeout=TIMEOUT), errors.DeadlineExceededError)
        restarted.orphan()
    finally:
        session.close()
        waiter.close()


def test_election_observe_tolerates_a_compacted_leader_revision(cli: Client, prefix: bytes) -> None:
    """observe() reports the leader even when the leader key's revision was compacted."""
    with Session(cli, ttl=TTL) as session:
        Election(session, prefix + b"test-elect").campaign("abc", timeout=TIMEOUT)
        revision = cli.put(prefix + b"foo", b"bar").header.revision
        cli.compact(revision)
        with Election(session, prefix + b"test-elect").observe() as observation:
            assert observation.next(timeout=TIMEOUT).kvs[0].value == b"abc"


def test_election_resign_that_failed_can_be_retried(cli: Client, prefix: bytes) -> None:
    """A resign that fails (its deadline already spent) keeps the leader key; a retry deletes
    it (TestElectionResignCanRetryAfterError)."""
    with Session(cli, ttl=TTL) as session:
        election = Election(session, prefix + b"resign-retry")
        election.campaign("candidate", timeout=TIMEOUT)
        key = election.key
        with pytest.raises(errors.DeadlineExceededError):
            election.resign(timeout=1e-9)
        assert election.key == key
        assert cli.get(key).count == 1
        election.resign(timeout=TIMEOUT)
        assert cli.get(key).count == 0


def test_election_observe_reports_the_next_leader_after_a_resign(
    cli: Client, prefix: bytes
) -> None:
    """Observing through a session's election skips unrelated writes and reports the next
    candidate after the leader resigns (TestResumeElection)."""
    name = prefix + b"resume-election"
    with Session(cli, ttl=TTL) as session:
        election = Election(session, name)
        election.campaign("candidate1", timeout=TIMEOUT)
        with election.observe() as observation:
            assert observation.next(timeout=TIMEOUT).kvs[0].value == b"candidate1"
            cli.put(prefix + b"foo", b"bar")  # not under the election's prefix
            election.resign()
            election.campaign("candidate2", timeout=TIMEOUT)
            kv = observation.next(timeout=TIMEOUT).kvs[0]
    assert kv.key.startswith(name + b"/")
    assert kv.value == b"candidate2"
