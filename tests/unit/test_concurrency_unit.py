"""Concurrency without a server: the pure key protocol, and the shells over recording fakes."""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Iterator
from types import TracebackType
from typing import cast

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from etcd_layers.base.compare import Compare, CompareResult, CompareTarget
from etcd_layers.base.deadline import Deadline
from etcd_layers.base.ops import Op, SortOrder, SortTarget
from etcd_layers.base.responses import (
    DeleteResponse,
    Event,
    EventType,
    GetResponse,
    KeyValue,
    LeaseGrantResponse,
    LeaseKeepAliveResponse,
    LeaseRevokeResponse,
    LeaseTimeToLiveResponse,
    PutResponse,
    Response,
    ResponseHeader,
    TxnResponse,
    WatchResponse,
)
from etcd_layers.base.waiting import WAIT_SLICE, has_delete, next_response
from etcd_layers.concurrency import (
    Election,
    ElectionNotLeaderError,
    LockNotHeldError,
    Mutex,
    NoElectionLeaderError,
    Session,
    SessionClient,
    SessionExpiredError,
)
from etcd_layers.concurrency._protocol import (
    AwaitDelete,
    Queued,
    Turn,
    check_turn,
    contenders_prefix,
    enqueue,
    first_created,
    first_put,
    guarded_delete,
    guarded_put,
    last_created_before,
    leader_updates,
    lease_key,
    read_enqueue,
    read_turn,
    still_queued,
    wait_turn,
)
from etcd_layers.errors import (
    CanceledError,
    DeadlineExceededError,
    EtcdError,
    LeaseNotFoundError,
    UnavailableError,
)

LEASE = 0x694D_7A1B_2C3D_4E5F
WAIT: float = 5.0  # bound on every Event.wait in this module; nothing here really waits


def header(revision: int) -> ResponseHeader:
    return ResponseHeader(cluster_id=1, member_id=2, revision=revision, raft_term=3)


def kv(key: bytes, create_revision: int, value: bytes = b"", mod_revision: int = 0) -> KeyValue:
    return KeyValue(key, value, create_revision, mod_revision or create_revision, 1, LEASE)


def gets(*kvs: KeyValue | None, revision: int = 10) -> list[Response]:
    return [
        GetResponse(header(revision), [] if item is None else [item], count=int(item is not None))
        for item in kvs
    ]


# --- the pure key protocol ------------------------------------------------------------------


def test_lease_key_uses_go_layout() -> None:
    """A contender's key is the prefix, "/", and the lease id in lower-case hex."""
    assert lease_key(contenders_prefix(b"lock"), LEASE) == b"lock/694d7a1b2c3d4e5f"


@given(prefix=st.binary(min_size=1, max_size=8), lease_id=st.integers(1, 2**63 - 1))
@example(prefix=b"\xff", lease_id=1)
def test_lease_key_round_trips_the_lease_id(prefix: bytes, lease_id: int) -> None:
    """The key starts with the contenders' prefix and its tail parses back to the lease id."""
    contenders = contenders_prefix(prefix)
    key = lease_key(contenders, lease_id)
    assert key.startswith(contenders)
    assert int(key[len(contenders) :], 16) == lease_id


def test_first_created_reads_the_oldest_contender() -> None:
    """The holder query is Go's WithFirstCreate: the prefix by create revision, first only."""
    op = first_created(b"lock/")
    assert (op.key, op.range_end, op.limit) == (b"lock/", b"lock0", 1)
    assert (op.sort_target, op.sort_order) == (SortTarget.CREATE, SortOrder.ASCEND)


@pytest.mark.parametrize(("revision", "max_create"), [(10, 9), (2, 1), (1, 1)])
def test_last_created_before_reads_the_immediate_predecessor(
    revision: int, max_create: int
) -> None:
    """The predecessor query is the youngest key created before the revision, never unbounded."""
    op = last_created_before(b"lock/", revision)
    assert (op.key, op.range_end, op.limit) == (b"lock/", b"lock0", 1)
    assert (op.sort_target, op.sort_order) == (SortTarget.CREATE, SortOrder.DESCEND)
    assert op.max_create_revision == max_create


def test_enqueue_puts_unless_the_key_exists() -> None:
    """Enqueueing creates the key on the lease unless it exists; both branches read the holder."""
    txn = enqueue(b"lock/", b"lock/1", b"v", 1)
    (compare,) = txn.compare
    assert (compare.key, compare.target, compare.result, compare.target_value) == (
        b"lock/1",
        CompareTarget.CREATE,
        CompareResult.EQUAL,
        0,
    )
    put, holder = txn.success
    assert put == Op.put(b"lock/1", b"v", lease=1)
    assert holder == first_created(b"lock/")
    assert txn.failure == (Op.get(b"lock/1"), first_created(b"lock/"))


def test_read_enqueue_created_key_takes_the_txn_revision() -> None:
    """A key created by the txn has the txn's revision as its create revision."""
    holder = kv(b"lock/0a", 5)
    response = TxnResponse(header(12), True, [PutResponse(header(12)), *gets(holder)])
    assert read_enqueue(response) == Queued(12, True, b"", holder, header(12))


def test_read_enqueue_existing_key_keeps_its_place_and_value() -> None:
    """A key that existed keeps its create revision (reentrancy) and reports its value."""
    own = kv(b"lock/1", 7, b"old")
    response = TxnResponse(header(12), False, gets(own, own))
    queued = read_enqueue(response)
    assert (queued.revision, queued.created, queued.value) == (7, False, b"old")
    assert queued.holds


def test_read_enqueue_refuses_a_failed_txn_without_the_key() -> None:
    """A failed txn that found no key is not an enqueue answer."""
    with pytest.raises(LookupError):
        read_enqueue(TxnResponse(header(3), False, gets(None, None)))


@pytest.mark.parametrize(
    ("holder", "holds"),
    [(None, True), (kv(b"lock/1", 7), True), (kv(b"lock/2", 6), False)],
)
def test_queued_holds_only_when_first(holder: KeyValue | None, holds: bool) -> None:
    """A contender holds when the queue is empty or its own key is the oldest."""
    assert Queued(7, True, b"", holder, header(7)).holds is holds


def test_check_turn_reads_predecessor_and_own_key_at_one_revision() -> None:
    """The turn check is one read-only txn of the predecessor and the contender's own key."""
    txn = check_turn(b"lock/", b"lock/1", 9)
    assert txn.compare == ()
    assert txn.success == (last_created_before(b"lock/", 9), Op.get(b"lock/1"))
    assert not txn.is_write


def test_wait_turn_waits_for_each_predecessor_then_returns_the_turn() -> None:
    """The flow reads the queue, waits for the key ahead to go, and reads again."""
    before, own = kv(b"lock/2", 4), kv(b"lock/1", 9)
    queued = Queued(9, True, b"", before, header(9))
    flow = wait_turn(b"lock/", b"lock/1", queued)
    assert next(flow) == check_turn(b"lock/", b"lock/1", 9)
    assert flow.send(TxnResponse(header(11), True, gets(before, own))) == AwaitDelete(b"lock/2", 11)
    assert flow.send(None) == check_turn(b"lock/", b"lock/1", 9)
    with pytest.raises(StopIteration) as done:
        flow.send(TxnResponse(header(13), True, gets(None, own)))
    assert done.value.value == Turn(None, own, header(13))


def test_wait_turn_own_key_gone_raises_session_expired() -> None:
    """A contender whose own key vanished can never get its turn."""
    queued = Queued(9, True, b"", None, header(9))
    flow = wait_turn(b"lock/", b"lock/1", queued)
    next(flow)
    with pytest.raises(SessionExpiredError):
        flow.send(TxnResponse(header(11), True, gets(kv(b"lock/2", 4), None)))


def test_read_turn_and_still_queued() -> None:
    """A turn reports the predecessor; the own key counts only with the queued revision."""
    before, own = kv(b"lock/2", 4), kv(b"lock/1", 9)
    turn = read_turn(TxnResponse(header(11), True, gets(before, own)))
    assert turn == Turn(before, own, header(11))
    assert still_queued(turn, 9)
    assert not still_queued(turn, 8)  # the key was created again: a new place in the queue
    assert not still_queued(read_turn(TxnResponse(header(11), True, gets(None, None))), 9)


def test_guarded_writes_compare_the_create_revision() -> None:
    """Proclaim and resign only touch the key created at the given revision."""
    put = guarded_put(b"e/1", 7, b"v", 1)
    delete = guarded_delete(b"e/1", 7)
    for txn in (put, delete):
        (compare,) = txn.compare
        assert (compare.target, compare.result, compare.target_value) == (
            CompareTarget.CREATE,
            CompareResult.EQUAL,
            7,
        )
        assert txn.failure == ()
    assert put.success == (Op.put(b"e/1", b"v", lease=1),)
    assert delete.success == (Op.delete(b"e/1"),)


def watch_response(revision: int, *events: tuple[EventType, KeyValue]) -> WatchResponse:
    return WatchResponse(header(revision), [Event(kind, item) for kind, item in events])


def test_has_delete_spots_delete_events() -> None:
    """Only a delete event ends a wait for a predecessor."""
    item = kv(b"k", 3)
    assert has_delete(watch_response(9, (EventType.PUT, item), (EventType.DELETE, item)))
    assert not has_delete(watch_response(9, (EventType.PUT, item)))
    assert not has_delete(watch_response(9))


def test_first_put_sets_the_header_revision_to_the_put() -> None:
    """The first put of a batch is the new leader, dated at its own revision."""
    first, second = kv(b"e/1", 5, b"a", 5), kv(b"e/2", 6, b"b", 6)
    change = first_put(
        watch_response(
            6, (EventType.DELETE, first), (EventType.PUT, first), (EventType.PUT, second)
        )
    )
    assert change is not None
    assert change.kvs == [first]
    assert change.header.revision == 5
    assert first_put(watch_response(6, (EventType.DELETE, first))) is None


def test_leader_updates_stop_at_the_delete() -> None:
    """Puts before the leader's delete are new values; events after it are not read."""
    one, two = kv(b"e/1", 5, b"a", 7), kv(b"e/1", 5, b"b", 8)
    updates, deleted = leader_updates(
        watch_response(9, (EventType.PUT, one), (EventType.DELETE, two), (EventType.PUT, two))
    )
    assert [update.kvs for update in updates] == [[one]]
    assert deleted
    assert leader_updates(watch_response(9, (EventType.PUT, two)))[1] is False


# --- recording fakes -------------------------------------------------------------------------


class FakeKeepAlive:
    """A keep-alive whose iteration blocks until it is canceled or told to fail."""

    def __init__(self) -> None:
        self.canceled = threading.Event()
        self.error: EtcdError | None = None

    def fail(self, error: EtcdError) -> None:
        self.error = error
        self.canceled.set()

    def __iter__(self) -> Iterator[LeaseKeepAliveResponse]:
        self.canceled.wait(WAIT)
        if self.error is not None:
            raise self.error
        return iter(())

    def next(self, timeout: float | None = None) -> LeaseKeepAliveResponse:
        raise NotImplementedError

    def cancel(self) -> None:
        self.canceled.set()

    def __enter__(self) -> FakeKeepAlive:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.cancel()


class FakeWatch:
    """A watch that hands out canned responses (a builtin TimeoutError is raised), then ends."""

    def __init__(self, *responses: WatchResponse | TimeoutError) -> None:
        self.responses = deque(responses)
        self.canceled = False
        self.timeouts: list[float | None] = []

    def __iter__(self) -> Iterator[WatchResponse]:
        raise NotImplementedError

    def next(self, timeout: float | None = None) -> WatchResponse:
        self.timeouts.append(timeout)
        if self.canceled or not self.responses:
            raise CanceledError("watch canceled")
        response = self.responses.popleft()
        if isinstance(response, TimeoutError):
            raise response
        return response

    def cancel(self) -> None:
        self.canceled = True

    def __enter__(self) -> FakeWatch:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.cancel()


class FakeClient:
    """Records every request and answers with canned responses, in order."""

    def __init__(self, *responses: Response) -> None:
        self.responses: deque[Response] = deque(responses)
        self.watches: deque[FakeWatch] = deque()
        self.calls: list[tuple[str, object]] = []
        self.keep_alives: list[FakeKeepAlive] = []
        self.keep_alive_error: EtcdError | None = None
        self.revoke_error: EtcdError | None = None
        self.ttl_left = 5

    def do(self, op: Op, *, timeout: float | None = None) -> Response:
        self.calls.append(("do", op))
        return self.responses.popleft()

    def delete(self, key: bytes, **options: object) -> DeleteResponse:
        self.calls.append(("delete", key))
        return DeleteResponse(header(99), deleted=1)

    def watch(self, key: bytes, **options: object) -> FakeWatch:
        self.calls.append(("watch", (key, options.get("start_revision"))))
        return self.watches.popleft()

    def grant(self, ttl: int, **options: object) -> LeaseGrantResponse:
        self.calls.append(("grant", ttl))
        return LeaseGrantResponse(header(1), LEASE, ttl)

    def revoke(self, lease_id: int, *, timeout: float | None = None) -> LeaseRevokeResponse:
        self.calls.append(("revoke", (lease_id, timeout)))
        if self.revoke_error is not None:
            raise self.revoke_error
        return LeaseRevokeResponse(header(1))

    def time_to_live(self, lease_id: int, **options: object) -> LeaseTimeToLiveResponse:
        self.calls.append(("time_to_live", lease_id))
        return LeaseTimeToLiveResponse(header(1), lease_id, self.ttl_left, granted_ttl=7)

    def keep_alive(self, lease_id: int, **options: object) -> FakeKeepAlive:
        self.calls.append(("keep_alive", lease_id))
        if self.keep_alive_error is not None:
            raise self.keep_alive_error
        handle = FakeKeepAlive()
        self.keep_alives.append(handle)
        return handle

    def _unused(self, *args: object, **options: object) -> None:
        raise NotImplementedError

    # Present so that the runtime Protocol check passes; never called here.
    put = get = txn = compact = request_progress = leases = keep_alive_once = _unused


def session_on(fake: FakeClient, **options: int) -> Session:
    return Session(cast(SessionClient, fake), **options)


@pytest.fixture
def fake() -> FakeClient:
    return FakeClient()


@pytest.fixture
def session(fake: FakeClient) -> Iterator[Session]:
    session = session_on(fake, ttl=3)
    fake.calls.clear()
    yield session
    session.orphan()


def ops_sent(fake: FakeClient) -> list[object]:
    return [request for kind, request in fake.calls if kind == "do"]


# --- Session ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("client", "options", "error"),
    [
        (object(), {}, TypeError),
        (None, {"ttl": 0}, ValueError),
        (None, {"ttl": -1}, ValueError),
        (None, {"ttl": 1.5}, TypeError),
        (None, {"ttl": True}, TypeError),
        (None, {"lease_id": -1}, ValueError),
        (None, {"lease_id": "1"}, TypeError),
        (None, {"timeout": 0}, ValueError),
    ],
)
def test_session_refuses_bad_arguments_before_any_io(
    fake: FakeClient, client: object, options: dict[str, object], error: type[Exception]
) -> None:
    """Bad arguments raise TypeError/ValueError before any request is sent."""
    with pytest.raises(error):
        Session(cast(SessionClient, client or fake), **options)  # type: ignore[arg-type]  # hostile
    assert fake.calls == []


def test_session_grants_and_keeps_alive(fake: FakeClient) -> None:
    """A new session grants a lease of its TTL and starts a keep-alive on it."""
    with session_on(fake, ttl=3) as session:
        assert (session.lease_id, session.ttl) == (LEASE, 3)
        assert fake.calls == [("grant", 3), ("keep_alive", LEASE)]
        assert not session.done.is_set()


def test_session_adopts_an_existing_lease_with_its_granted_ttl(fake: FakeClient) -> None:
    """A session given lease_id reads that lease's granted TTL and grants nothing."""
    with session_on(fake, lease_id=42) as session:
        assert (session.lease_id, session.ttl) == (42, 7)
        assert fake.calls[:2] == [("time_to_live", 42), ("keep_alive", 42)]


def test_session_adopting_a_missing_lease_raises_lease_not_found(fake: FakeClient) -> None:
    """Adopting a lease that does not exist raises LeaseNotFoundError and starts nothing."""
    fake.ttl_left = -1
    with pytest.raises(LeaseNotFoundError):
        session_on(fake, lease_id=42)
    assert fake.calls == [("time_to_live", 42)]


def test_session_revokes_its_lease_when_keep_alive_fails_to_start(fake: FakeClient) -> None:
    """A lease granted for a session that cannot start is revoked at once."""
    fake.keep_alive_error = UnavailableError("down")
    with pytest.raises(UnavailableError):
        session_on(fake)
    assert fake.calls[-1][0] == "revoke"


def test_session_close_stops_keep_alive_revokes_and_sets_done(fake: FakeClient) -> None:
    """close() cancels the keep-alive, revokes with the TTL as bound, and sets done."""
    session = session_on(fake, ttl=3)
    session.close()
    assert fake.keep_alives[0].canceled.is_set()
    assert fake.calls[-1] == ("revoke", (LEASE, 3.0))
    assert session.done.is_set()
    assert session.error is None
    session.close()  # idempotent: nothing more is sent
    assert [kind for kind, _ in fake.calls].count("revoke") == 1


def test_session_close_is_best_effort(fake: FakeClient, caplog: pytest.LogCaptureFixture) -> None:
    """A failed revoke is logged, not raised: the lease expires within its TTL anyway."""
    session = session_on(fake)
    fake.revoke_error = UnavailableError("down")
    with caplog.at_level(logging.WARNING):
        session.close(timeout=0.5)
    assert fake.calls[-1] == ("revoke", (LEASE, 0.5))
    assert "revoking session lease" in caplog.text


def test_session_done_fires_when_the_keep_alive_loses_the_lease(session: Session) -> None:
    """A keep-alive that raises LeaseNotFoundError ends the session with that error."""
    lost = LeaseNotFoundError("lease expired")
    fired = threading.Event()
    session.on_done(fired.set)
    cast(FakeClient, session.client).keep_alives[0].fail(lost)
    assert session.done.wait(WAIT)
    assert fired.wait(WAIT)
    assert session.error is lost


def test_session_on_done_after_done_runs_at_once(session: Session) -> None:
    """A callback registered after the end runs immediately, on the caller's thread."""
    session.orphan()
    ran: list[str] = []
    session.on_done(lambda: ran.append(threading.current_thread().name))
    assert ran == [threading.current_thread().name]


def test_session_on_done_unregister_prevents_the_call(session: Session) -> None:
    """An unregistered callback is not called when the session ends."""
    ran: list[str] = []
    unregister = session.on_done(lambda: ran.append("unregistered"))
    session.on_done(lambda: ran.append("kept"))
    unregister()
    session.orphan()
    assert ran == ["kept"]


def test_session_failing_callback_is_logged_and_others_run(
    session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    """A callback that raises does not keep the other callbacks from running."""
    ran: list[str] = []

    def broken() -> None:
        raise RuntimeError("callback bug")

    session.on_done(broken)
    session.on_done(lambda: ran.append("second"))
    with caplog.at_level(logging.ERROR):
        session.orphan()
    assert ran == ["second"]
    assert "callback bug" in caplog.text


def test_session_on_done_refuses_non_callables(session: Session) -> None:
    """on_done checks its argument."""
    with pytest.raises(TypeError):
        session.on_done("not callable")  # type: ignore[arg-type]  # hostile argument


# --- Mutex -----------------------------------------------------------------------------------


def test_mutex_refuses_bad_arguments(session: Session, fake: FakeClient) -> None:
    """A Mutex needs a Session and a non-empty str or bytes prefix; nothing is sent."""
    with pytest.raises(TypeError):
        Mutex(fake, "lock")  # type: ignore[arg-type]  # hostile argument
    with pytest.raises(TypeError):
        Mutex(session, 7)  # type: ignore[arg-type]  # hostile argument
    with pytest.raises(ValueError, match="prefix"):
        Mutex(session, "")
    with pytest.raises(ValueError, match="timeout"):
        Mutex(session, "lock").lock(timeout=-1)
    assert fake.calls == []


def test_mutex_key_is_prefix_slash_lease_hex(session: Session) -> None:
    """The Mutex's key is Go's: prefix, "/", the session's lease id in hex."""
    assert Mutex(session, "lock").key == b"lock/694d7a1b2c3d4e5f"


def enqueue_answer(created: bool, revision: int, holder_revision: int | None) -> TxnResponse:
    own = kv(b"lock/694d7a1b2c3d4e5f", revision)
    holder = None if holder_revision is None else kv(b"lock/other", holder_revision)
    first: Response = PutResponse(header(revision)) if created else gets(own)[0]
    return TxnResponse(header(revision if created else 20), created, [first, *gets(holder)])


def test_mutex_uncontended_lock_is_one_round_trip(session: Session, fake: FakeClient) -> None:
    """A free lock is taken with the single enqueue txn."""
    fake.responses.append(enqueue_answer(True, 12, None))
    mutex = Mutex(session, "lock")
    mutex.lock()
    assert len(ops_sent(fake)) == 1
    assert mutex.header == header(12)
    assert mutex.owner_compare() == (Compare.create_revision(mutex.key) == 12)


def test_mutex_try_lock_taken_withdraws_its_key(session: Session, fake: FakeClient) -> None:
    """try_lock on a held lock returns False and deletes the key it just created."""
    fake.responses.extend([enqueue_answer(True, 12, 5), TxnResponse(header(13), True)])
    mutex = Mutex(session, "lock")
    assert mutex.try_lock() is False
    assert ops_sent(fake)[1] == guarded_delete(mutex.key, 12)


def test_mutex_try_lock_keeps_a_key_it_did_not_create(session: Session, fake: FakeClient) -> None:
    """A key queued earlier by the same session is another call's place; try_lock leaves it."""
    fake.responses.append(enqueue_answer(False, 9, 5))
    assert Mutex(session, "lock").try_lock() is False
    assert len(ops_sent(fake)) == 1


def test_mutex_try_lock_free_or_reentrant_returns_true(session: Session, fake: FakeClient) -> None:
    """try_lock succeeds on a free lock and on one this session already holds."""
    fake.responses.extend([enqueue_answer(True, 12, None), enqueue_answer(False, 12, 12)])
    mutex = Mutex(session, "lock")
    assert mutex.try_lock() is True
    assert mutex.try_lock() is True
    assert len(ops_sent(fake)) == 2


def test_mutex_owner_compare_needs_the_lock(session: Session) -> None:
    """owner_compare() of a Mutex that does not hold the lock raises LockNotHeldError."""
    with pytest.raises(LockNotHeldError):
        Mutex(session, "lock").owner_compare()


def test_mutex_waits_for_the_predecessor_delete_then_holds(
    session: Session, fake: FakeClient
) -> None:
    """A waiter watches only its predecessor's key, from after the read, then re-checks."""
    mutex = Mutex(session, "lock")
    own, before = kv(mutex.key, 12), kv(b"lock/older", 8)
    fake.responses.extend(
        [
            enqueue_answer(True, 12, 5),
            TxnResponse(header(14), True, gets(before, own)),
            TxnResponse(header(16), True, gets(None, own)),
        ]
    )
    fake.watches.append(FakeWatch(watch_response(15, (EventType.DELETE, before))))
    mutex.lock(timeout=WAIT)
    assert ("watch", (b"lock/older", 15)) in fake.calls
    assert mutex.header == header(16)


def test_mutex_waiter_whose_key_vanished_raises_session_expired(
    session: Session, fake: FakeClient
) -> None:
    """A waiter whose own key is gone fails with SessionExpiredError and cleans up."""
    mutex = Mutex(session, "lock")
    fake.responses.extend(
        [
            enqueue_answer(True, 12, 5),
            TxnResponse(header(14), True, gets(kv(b"lock/older", 8), None)),
            TxnResponse(header(15), False),
        ]
    )
    with pytest.raises(SessionExpiredError):
        mutex.lock(timeout=WAIT)
    assert ops_sent(fake)[-1] == guarded_delete(mutex.key, 12)


def test_mutex_waiter_fails_when_the_session_ends(session: Session, fake: FakeClient) -> None:
    """The session's end cancels the waiter's watch, and lock() raises SessionExpiredError."""
    mutex = Mutex(session, "lock")
    fake.responses.extend(
        [
            enqueue_answer(True, 12, 5),
            TxnResponse(header(14), True, gets(kv(b"lock/older", 8), kv(mutex.key, 12))),
            TxnResponse(header(15), False),
        ]
    )
    session.orphan()  # done: the callback cancels the watch as soon as it is registered
    fake.watches.append(FakeWatch(watch_response(15, (EventType.PUT, kv(b"lock/older", 8)))))
    with pytest.raises(SessionExpiredError):
        mutex.lock(timeout=WAIT)
    assert ops_sent(fake)[-1] == guarded_delete(mutex.key, 12)


def test_next_response_unbounded_outlasts_the_watch_timeout() -> None:
    """Without a deadline, a watch's own timeout (the client default) does not end the wait."""
    response = watch_response(4)
    watch = FakeWatch(TimeoutError("client default"), response)
    assert next_response(watch, Deadline(None)) is response
    assert watch.timeouts == [WAIT_SLICE, WAIT_SLICE]


class PassingDeadline(Deadline):
    """A deadline with time left when asked, and passed once the watch has timed out."""

    def remaining(self) -> float | None:
        return 1.0

    def expired(self) -> bool:
        return True


def test_next_response_passed_deadline_raises_deadline_exceeded() -> None:
    """A deadline that passes while waiting raises DeadlineExceededError, a TimeoutError."""
    watch = FakeWatch(TimeoutError("nothing"), watch_response(4))
    with pytest.raises(DeadlineExceededError) as raised:
        next_response(watch, PassingDeadline(None))
    assert isinstance(raised.value, TimeoutError)
    assert watch.timeouts == [1.0]


def test_mutex_unlock_deletes_the_key(session: Session, fake: FakeClient) -> None:
    """unlock() deletes the session's key and forgets the holding."""
    fake.responses.append(enqueue_answer(True, 12, None))
    mutex = Mutex(session, "lock")
    mutex.lock()
    mutex.unlock()
    assert fake.calls[-1] == ("delete", mutex.key)
    assert mutex.header is None


# --- Election --------------------------------------------------------------------------------


def test_election_proclaim_before_campaign_raises_not_leader(
    session: Session, fake: FakeClient
) -> None:
    """proclaim() without a won campaign raises ElectionNotLeaderError before any I/O."""
    with pytest.raises(ElectionNotLeaderError):
        Election(session, "e").proclaim("v")
    assert fake.calls == []


def test_election_resign_without_leadership_sends_nothing(
    session: Session, fake: FakeClient
) -> None:
    """resign() by a candidate that never won is a no-op."""
    Election(session, "e").resign()
    assert fake.calls == []


def test_election_leader_of_empty_election_raises(session: Session, fake: FakeClient) -> None:
    """leader() with no candidate raises NoElectionLeaderError."""
    fake.responses.extend(gets(None))
    with pytest.raises(NoElectionLeaderError):
        Election(session, "e").leader()
    assert ops_sent(fake) == [first_created(b"e/")]


def test_election_campaign_again_with_new_value_proclaims_it(
    session: Session, fake: FakeClient
) -> None:
    """Campaigning again with another value rewrites the existing key, guarded by revision."""
    election = Election(session, "e")
    own = kv(election.key, 12, b"old")
    fake.responses.extend(
        [
            TxnResponse(header(20), False, gets(own, own)),
            TxnResponse(header(21), True, [PutResponse(header(21))]),
            TxnResponse(header(21), True, gets(None, own)),
        ]
    )
    election.campaign("new")
    assert ops_sent(fake)[1] == guarded_put(election.key, 12, b"new", LEASE)
    assert (election.revision, election.rev) == (12, 12)


def test_election_proclaim_after_losing_raises_not_leader(
    session: Session, fake: FakeClient
) -> None:
    """A proclaim whose guard fails (the key is gone) raises and drops the leadership."""
    election = Election(session, "e")
    fake.responses.extend(
        [
            TxnResponse(header(12), True, [PutResponse(header(12)), *gets(None)]),
            TxnResponse(header(13)),
        ]
    )
    election.campaign("v")
    with pytest.raises(ElectionNotLeaderError):
        election.proclaim("w")
    assert election.header is None


def test_election_observe_follows_leaders_and_values(session: Session, fake: FakeClient) -> None:
    """observe() yields the leader, its new values, and the next leader after a delete."""
    first_v1, first_v2 = kv(b"e/1", 5, b"a", 5), kv(b"e/1", 5, b"b", 9)
    second = kv(b"e/2", 6, b"c", 6)
    fake.responses.extend([*gets(first_v1, revision=8), *gets(second, revision=11)])
    fake.watches.extend(
        [
            FakeWatch(watch_response(10, (EventType.PUT, first_v2), (EventType.DELETE, first_v2))),
            FakeWatch(),
        ]
    )
    observation = Election(session, "e").observe()
    seen = [observation.next(timeout=WAIT).kvs[0] for _ in range(3)]
    assert seen == [first_v1, first_v2, second]
    assert [call for call in fake.calls if call[0] == "watch"] == [
        ("watch", (b"e/1", 9)),
        ("watch", (b"e/2", 12)),
    ]
    observation.cancel()
    assert list(observation) == []


def test_election_observe_waits_for_a_first_leader(session: Session, fake: FakeClient) -> None:
    """With no leader, observe() watches the prefix after the read; the first put leads."""
    leader = kv(b"e/1", 7, b"a", 7)
    fake.responses.extend(gets(None, revision=6))
    fake.watches.extend([FakeWatch(watch_response(8, (EventType.PUT, leader))), FakeWatch()])
    with Election(session, "e").observe() as observation:
        change = observation.next(timeout=WAIT)
    assert change.kvs == [leader]
    assert change.header.revision == 7
    assert [call for call in fake.calls if call[0] == "watch"] == [
        ("watch", (b"e/", 7)),
        ("watch", (b"e/1", 8)),
    ]
    with pytest.raises(CanceledError):
        observation.next()


def test_election_refuses_bad_arguments(session: Session, fake: FakeClient) -> None:
    """An Election needs a Session and a non-empty prefix; campaign checks value and timeout."""
    with pytest.raises(ValueError, match="prefix"):
        Election(session, b"")
    with pytest.raises(TypeError):
        Election(session, "e").campaign(3)  # type: ignore[arg-type]  # hostile argument
    with pytest.raises(ValueError, match="timeout"):
        Election(session, "e").campaign("v", timeout=0)
    assert fake.calls == []
