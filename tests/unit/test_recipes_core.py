"""The recipes' pure core without a server: Go's key layouts, the Ops, and the flows, stepwise."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from etcd_layers.base.compare import CompareResult, CompareTarget
from etcd_layers.base.ops import DeleteOp, GetOp, PutOp, SortOrder, SortTarget, TxnOp
from etcd_layers.base.responses import (
    Event,
    EventType,
    GetResponse,
    KeyValue,
    ResponseHeader,
    TxnResponse,
    WatchResponse,
)
from etcd_layers.concurrency import KeyExistsError, SessionExpiredError, TooManyClientsError
from etcd_layers.concurrency._recipe_keys import (
    Claim,
    Create,
    Now,
    WaitDelete,
    WaitPut,
    Withdraw,
    checked_key,
    claim,
    create_sequential,
    create_unique,
    created_revision,
    guarded_withdraw,
    next_sequence,
    put_event,
    put_new,
    put_sequential,
    restore,
    sequential_key,
    unique_key,
)
from etcd_layers.concurrency._recipes import (
    DEQUEUE_BATCH,
    barrier_hold,
    barrier_wait,
    blocker_check,
    dequeue,
    enter,
    entered,
    first_item,
    leave,
    leave_step,
    oldest_item,
    priority_prefix,
    rw_lock,
)


def header(revision: int) -> ResponseHeader:
    return ResponseHeader(cluster_id=1, member_id=2, revision=revision, raft_term=3)


def got(revision: int, *kvs: KeyValue, more: bool = False) -> GetResponse:
    return GetResponse(header(revision), list(kvs), count=len(kvs), more=more)


def key_of(op: object) -> bytes:
    assert isinstance(op, GetOp | PutOp | DeleteOp)
    return op.key


def kv(key: bytes, revision: int, value: bytes = b"") -> KeyValue:
    return KeyValue(key, value, create_revision=revision, mod_revision=revision, version=1)


class Script:
    """Drive a flow: check each step it yields and answer it; return the flow's result."""

    def __init__(self, flow: Generator[Any, Any, Any]) -> None:
        self.flow = flow
        self.step = next(flow)
        self.result: Any = None
        self.done = False

    def answer(self, response: Any) -> Any:
        """Send `response`; return the next step (None once the flow returned)."""
        try:
            self.step = self.flow.send(response)
        except StopIteration as finished:
            self.done, self.result, self.step = True, finished.value, None
        return self.step


# --- key layouts -----------------------------------------------------------------------------


def test_unique_key_is_prefix_slash_decimal_nanoseconds() -> None:
    """Go's `fmt.Sprintf("%s/%v", prefix, time.Now().UnixNano())`."""
    assert unique_key(b"q", 1_700_000_000_123_456_789) == b"q/1700000000123456789"


@given(number=st.integers(min_value=0, max_value=10**16 - 1))
@example(number=0)
def test_sequential_key_is_sixteen_digits_and_reads_back(number: int) -> None:
    """`%016d` keys sort as their numbers do, and the next number is read from the last key."""
    key = sequential_key(b"p/00003", number)
    assert key == b"p/00003/" + str(number).zfill(16).encode()
    assert next_sequence([kv(key, 5)]) == number + 1


@pytest.mark.parametrize(
    ("last", "expected"),
    [(None, 0), (b"p/00001/0000000000000009", 10), (b"p/00001/12abc", 13), (b"p/00001/+4", 5)],
)
def test_next_sequence_reads_like_gos_sscanf(last: bytes | None, expected: int) -> None:
    """Leading digits of the last field, as `fmt.Sscanf("%d")`; 0 on an empty prefix."""
    assert next_sequence([] if last is None else [kv(last, 3)]) == expected


def test_next_sequence_refuses_a_key_without_a_number() -> None:
    """A last key ending in no number is no sequential key: ValueError (Go's Sscanf fails)."""
    with pytest.raises(ValueError, match="sequence number"):
        next_sequence([kv(b"p/00001/abc", 3)])


def test_priority_prefix_is_five_digits() -> None:
    """Go's `fmt.Sprintf("%s%05d", key + "/", priority)`."""
    assert priority_prefix(b"prq", 7) == b"prq/00007"
    assert priority_prefix(b"prq", 65535) == b"prq/65535"


# --- Ops -------------------------------------------------------------------------------------


def test_put_new_puts_only_a_key_without_a_version() -> None:
    """Go's putNewKV: If(Version(key) = 0).Then(Put(key, val, lease))."""
    txn = put_new(Create(b"k", b"v", 7))
    (compare,) = txn.compare
    assert (compare.target, compare.result, compare.target_value) == (
        CompareTarget.VERSION,
        CompareResult.EQUAL,
        0,
    )
    (put,) = txn.success
    assert isinstance(put, PutOp)
    assert (put.key, put.value, put.lease) == (b"k", b"v", 7)
    assert not txn.failure
    assert created_revision(TxnResponse(header(9), succeeded=True)) == 9
    assert created_revision(TxnResponse(header(9), succeeded=False)) is None


def test_put_sequential_guards_on_the_base_key() -> None:
    """Go's newSequentialKV: If(ModRevision("__" + prefix) < read + 1).Then(base, key)."""
    txn = put_sequential(b"p/00001", b"p/00001/0000000000000000", b"v", 41)
    (compare,) = txn.compare
    assert compare.key == b"__p/00001"
    assert (compare.target, compare.result, compare.target_value) == (
        CompareTarget.MOD,
        CompareResult.LESS,
        42,
    )
    assert [(op.key, op.value) for op in txn.success if isinstance(op, PutOp)] == [
        (b"__p/00001", b""),
        (b"p/00001/0000000000000000", b"v"),
    ]


def test_claim_deletes_only_the_unchanged_item_and_restore_puts_it_back() -> None:
    """Go's deleteRevKey: If(ModRevision(key) = rev).Then(Delete(key)); restore is put-if-absent."""
    item = KeyValue(b"q/1", b"v", create_revision=4, mod_revision=5, version=2)
    txn = claim(Claim(item))
    (compare,) = txn.compare
    assert (compare.key, compare.target, compare.target_value) == (b"q/1", CompareTarget.MOD, 5)
    assert isinstance(txn.success[0], DeleteOp)
    back = restore(Claim(item))
    assert back.compare[0].target == CompareTarget.VERSION
    put = back.success[0]
    assert isinstance(put, PutOp)
    assert (put.key, put.value, put.lease) == (b"q/1", b"v", 0)


def test_guarded_withdraw_deletes_only_the_same_incarnation() -> None:
    """A withdraw deletes the key only while it is the one created at that revision."""
    txn = guarded_withdraw(b"k", 12)
    assert (txn.compare[0].target, txn.compare[0].target_value) == (CompareTarget.CREATE, 12)


def test_queue_reads_are_gos_first_rev_and_first_key_under_the_slash() -> None:
    """Queue: oldest mod revision first; PriorityQueue: first key; both under `prefix/`."""
    oldest, first = oldest_item(b"q"), first_item(b"q")
    assert (oldest.key, oldest.sort_target, oldest.sort_order, oldest.limit) == (
        b"q/",
        SortTarget.MOD,
        SortOrder.ASCEND,
        DEQUEUE_BATCH,
    )
    # Key order ascending is etcd's default: Op.get spells it as no sort at all.
    assert (first.key, first.sort_target, first.limit) == (b"q/", SortTarget.KEY, DEQUEUE_BATCH)
    assert first.sort_order in (SortOrder.NONE, SortOrder.ASCEND)


def test_blocker_check_reads_the_last_key_before_the_waiter_and_the_waiter() -> None:
    """Go's waitOnLastRev: WithLastRev, WithMaxModRev(rev - 1); plus the waiter's own key."""
    txn = blocker_check(b"rw/write/", b"rw/read/5", 30)
    blocker, own = txn.success
    assert isinstance(blocker, GetOp)
    assert (blocker.sort_target, blocker.sort_order, blocker.limit) == (
        SortTarget.MOD,
        SortOrder.DESCEND,
        1,
    )
    assert blocker.max_mod_revision == 29
    assert isinstance(own, GetOp)
    assert own.key == b"rw/read/5"


def test_put_event_finds_the_first_put() -> None:
    """The first put of a watch response is the one a WaitPut returns; deletes are skipped."""
    deleted = Event(EventType.DELETE, KeyValue(b"a"))
    put = Event(EventType.PUT, kv(b"b", 4))
    assert put_event(WatchResponse(header(4), [deleted, put])) == put.kv
    assert put_event(WatchResponse(header(4), [deleted])) is None


# --- flows -----------------------------------------------------------------------------------


def test_create_unique_tries_a_new_time_when_the_key_exists() -> None:
    """Go's newUniqueKV: a taken key is tried again with a new time."""
    script = Script(create_unique(b"q", b"v", 0))
    assert script.step == Now()
    assert script.answer(5) == Create(b"q/5", b"v", 0)
    assert script.answer(None) == Now()  # taken: Go loops with a new time
    assert script.answer(6) == Create(b"q/6", b"v", 0)
    script.answer(10)
    assert script.result == (b"q/6", 10)


def test_create_sequential_reads_again_when_another_writer_got_in() -> None:
    """Go's newSequentialKV: a failed base-key compare reads the last key again."""
    script = Script(create_sequential(b"p/00001", b"v"))
    assert isinstance(script.step, GetOp)
    assert script.step.key == b"p/00001/"
    step = script.answer(got(20, kv(b"p/00001/0000000000000003", 8)))
    assert isinstance(step, TxnOp)
    assert key_of(step.success[1]) == b"p/00001/0000000000000004"
    assert isinstance(script.answer(TxnResponse(header(21), succeeded=False)), GetOp)
    script.answer(got(22, kv(b"p/00001/0000000000000004", 21)))
    script.answer(TxnResponse(header(23), succeeded=True))
    assert script.result == (b"p/00001/0000000000000005", 23)


def test_barrier_hold_raises_key_exists_when_held() -> None:
    """Holding a held barrier raises KeyExistsError (Go's ErrKeyExists)."""
    script = Script(barrier_hold(b"b"))
    assert script.step == Create(b"b", b"", 0)
    with pytest.raises(KeyExistsError):
        script.answer(None)


def test_barrier_wait_reads_again_only_after_a_compaction() -> None:
    """A delete seen ends the wait; only a compacted history reads the key again."""
    script = Script(barrier_wait(b"b"))
    assert script.answer(got(7, kv(b"b", 3))) == WaitDelete(b"b", 7)
    assert isinstance(script.answer(False), GetOp)  # compacted: look again
    script.answer(got(9, kv(b"b", 8)))  # held again: wait for that one
    script.answer(True)
    assert script.done


def test_enter_refuses_a_full_barrier_before_creating_a_key() -> None:
    """A full double barrier refuses before any key is put (Go's first enteredClients)."""
    script = Script(enter(b"db", 2, 5))
    assert script.step == entered(b"db")
    with pytest.raises(TooManyClientsError):
        script.answer(got(3, kv(b"db/waiters/1", 2), kv(b"db/waiters/2", 3)))


def test_enter_withdraws_a_key_that_came_too_late() -> None:
    """A participant created after the count-th withdraws its key and raises TooManyClientsError."""
    script = Script(enter(b"db", 1, 5))
    script.answer(got(3))
    script.answer(11)  # Now
    script.answer(8)  # created at 8, but another came first at 7
    step = script.answer(got(8, kv(b"db/waiters/10", 7), kv(b"db/waiters/11", 8)))
    assert step == Withdraw(b"db/waiters/11")
    with pytest.raises(TooManyClientsError):
        script.answer(None)


def test_enter_by_the_last_participant_puts_ready() -> None:
    """The participant that completes the count puts key/ready and returns."""
    script = Script(enter(b"db", 2, 5))
    script.answer(got(3, kv(b"db/waiters/10", 3)))
    script.answer(11)
    script.answer(4)
    step = script.answer(got(4, kv(b"db/waiters/10", 3), kv(b"db/waiters/11", 4)))
    assert isinstance(step, PutOp)
    assert step.key == b"db/ready"
    script.answer(None)
    assert script.result == (b"db/waiters/11", 4)


def test_enter_waits_for_ready_and_looks_at_it_after_a_compaction() -> None:
    """Others wait for the ready put; after a compaction they read the ready key."""
    script = Script(enter(b"db", 3, 5))
    script.answer(got(3))
    script.answer(11)
    script.answer(4)
    assert script.answer(got(4, kv(b"db/waiters/11", 4))) == WaitPut(b"db/ready", False, 5)
    assert isinstance(script.answer(None), GetOp)  # compacted: is ready there now?
    assert script.answer(got(30)) == WaitPut(b"db/ready", False, 31)
    script.answer(kv(b"db/ready", 32))
    assert script.result == (b"db/waiters/11", 4)


@pytest.mark.parametrize(
    ("own", "expected"),
    [
        (b"a", (False, b"c")),  # lowest: wait for the highest
        (b"b", (True, b"a")),  # others: delete own, wait for the lowest
        (b"gone", (True, b"a")),  # already out: wait for the lowest
    ],
)
def test_leave_step_follows_gos_lowest_and_highest(
    own: bytes, expected: tuple[bool, bytes]
) -> None:
    """Leave waits as Go's: the lowest for the highest, the others for the lowest."""
    participants = [kv(b"b", 6), kv(b"a", 5), kv(b"c", 9)]
    delete_own, wait_for = leave_step(own, participants)
    assert wait_for is not None
    assert (delete_own, wait_for.key) == expected


def test_leave_by_the_last_one_deletes_ready_and_its_key() -> None:
    """The last participant out deletes key/ready, then its own key."""
    script = Script(leave(b"db", b"db/waiters/1"))
    step = script.answer(got(9, kv(b"db/waiters/1", 5)))
    assert isinstance(step, DeleteOp)
    assert step.key == b"db/ready"
    assert script.answer(None) == Withdraw(b"db/waiters/1")
    script.answer(None)
    assert script.done


def test_dequeue_waits_for_a_put_when_the_queue_is_empty() -> None:
    """An empty queue is watched from the read's next revision; the put seen is claimed."""
    script = Script(dequeue(oldest_item(b"q")))
    assert script.answer(got(12)) == WaitPut(b"q/", True, 13)
    item = kv(b"q/99", 14, b"job")
    assert script.answer(item) == Claim(item)
    script.answer(True)
    assert script.result == b"job"


def test_dequeue_reads_again_when_it_lost_an_item_and_more_remain() -> None:
    """Items lost to other readers, with more left, send the dequeue back to read."""
    script = Script(dequeue(oldest_item(b"q")))
    first = kv(b"q/1", 4, b"a")
    assert script.answer(got(12, first, more=True)) == Claim(first)
    assert isinstance(script.answer(False), GetOp)  # Go: `resp.More`: read again
    script.answer(got(13))
    assert script.step == WaitPut(b"q/", True, 14)


def test_dequeue_tries_the_next_item_read_when_it_loses_one() -> None:
    """An item lost to another reader sends the dequeue on to the next item read."""
    script = Script(dequeue(oldest_item(b"q")))
    first, second = kv(b"q/1", 4, b"a"), kv(b"q/2", 5, b"b")
    assert script.answer(got(12, first, second)) == Claim(first)
    assert script.answer(False) == Claim(second)  # no second read
    script.answer(True)
    assert script.result == b"b"


def test_rw_lock_reader_waits_for_writers_only_and_fails_without_its_key() -> None:
    """A reader waits for earlier writers only, and stops once its own key is gone."""
    script = Script(rw_lock(b"rw", False, 7))
    script.answer(1)
    assert script.step == Create(b"rw/read/1", b"", 7)
    step = script.answer(20)
    assert isinstance(step, TxnOp)
    assert key_of(step.success[0]) == b"rw/write/"
    writer = kv(b"rw/write/0", 19)
    answer = TxnResponse(header(21), True, [got(21, writer), got(21, kv(b"rw/read/1", 20))])
    assert script.answer(answer) == WaitDelete(b"rw/write/0", 21)
    script.answer(True)
    with pytest.raises(SessionExpiredError):
        script.answer(TxnResponse(header(22), True, [got(22), got(22)]))


def test_rw_lock_writer_waits_for_every_key_before_it() -> None:
    """A writer waits for every key before its own, readers included."""
    script = Script(rw_lock(b"rw", True, 7))
    script.answer(1)
    step = script.answer(20)
    assert isinstance(step, TxnOp)
    assert key_of(step.success[0]) == b"rw/"
    script.answer(TxnResponse(header(21), True, [got(21), got(21, kv(b"rw/write/1", 20))]))
    assert script.result == (b"rw/write/1", 20)


def test_checked_key_refuses_empty_and_non_bytes_before_io() -> None:
    """Recipe names are str or bytes and not empty."""
    assert checked_key("q") == b"q"
    with pytest.raises(ValueError, match="prefix must not be empty"):
        checked_key(b"", "prefix")
    with pytest.raises(TypeError, match="key"):
        checked_key(5)
