"""The leasing protocol's txns and flows (leasing/_protocol.py), driven with canned answers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from etcd_layers.base.compare import Compare, CompareResult, CompareTarget
from etcd_layers.base.keys import KEYSPACE_END, prefix_end
from etcd_layers.base.ops import Op, PutOp, TxnOp
from etcd_layers.base.responses import (
    DeleteResponse,
    GetResponse,
    KeyValue,
    PutResponse,
    Response,
    ResponseHeader,
    TxnResponse,
)
from etcd_layers.leasing._protocol import (
    REVOKE,
    Flow,
    Step,
    WaitForDeletes,
    acquire,
    acquire_txn,
    guarded_write,
    in_range,
    leasing_key,
    leasing_range,
    probe_ops,
    read_acquired,
    read_probe,
    release_txn,
    written_keys,
)

T = TypeVar("T")
P = b"lease/"
OURS = 7
THEIRS = 9


def header(revision: int) -> ResponseHeader:
    return ResponseHeader(1, 2, revision, 3)


def got(revision: int, *kvs: KeyValue) -> GetResponse:
    return GetResponse(header(revision), list(kvs), len(kvs))


def run(flow: Flow[T], answers: Sequence[Response | None]) -> tuple[list[Step], T]:
    """Drive a flow with canned answers; return its steps and result (all answers used)."""
    steps: list[Step] = []
    replies = iter(answers)
    try:
        step = next(flow)
        while True:
            steps.append(step)
            step = flow.send(next(replies))
    except StopIteration as done:
        assert next(replies, "unused") == "unused", "the flow stopped before every answer"
        return steps, done.value


def txn_step(step: Step) -> TxnOp:
    assert isinstance(step, TxnOp)
    return step


# --- keys -------------------------------------------------------------------------------------


def test_leasing_key_appends_the_key_to_the_prefix() -> None:
    """The owner of `key` holds `prefix + key`, as clientv3 does."""
    assert leasing_key(P, b"k") == b"lease/k"


def test_leasing_range_maps_single_keys_and_ranges() -> None:
    """A key and a bounded range move under the prefix."""
    assert leasing_range(P, b"a", b"") == (b"lease/a", b"")
    assert leasing_range(P, b"a", b"c") == (b"lease/a", b"lease/c")


def test_leasing_range_of_a_from_key_range_stops_at_the_prefix_end() -> None:
    """clientv3 maps a from_key range to [prefix+key, prefix+"\\x00"), which holds nothing."""
    begin, end = leasing_range(P, b"kd", KEYSPACE_END)
    assert (begin, end) == (b"lease/kd", prefix_end(P))
    assert in_range(b"lease/ke", begin, end)
    assert in_range(b"lease/z", begin, end)


EDGE = st.lists(st.sampled_from(b"\x00\x01a\xfe\xff"), max_size=3).map(bytes)


@given(prefix=EDGE.filter(bool), begin=EDGE.filter(bool), end=EDGE, key=EDGE.filter(bool))
@example(prefix=b"a\xff", begin=b"\x00", end=KEYSPACE_END, key=b"\xff")
def test_leasing_range_holds_exactly_the_leasing_keys_of_the_user_range(
    prefix: bytes, begin: bytes, end: bytes, key: bytes
) -> None:
    """A user key is in the range iff its leasing key is in the mapped range."""
    lbegin, lend = leasing_range(prefix, begin, end)
    assert in_range(key, begin, end) == in_range(prefix + key, lbegin, lend)


def test_in_range_follows_etcd_range_rules() -> None:
    """b"" means one key, KEYSPACE_END means up to the end, otherwise half-open."""
    assert in_range(b"a", b"a", b"")
    assert not in_range(b"ab", b"a", b"")
    assert in_range(b"\xff", b"a", KEYSPACE_END)
    assert in_range(b"a", b"a", b"b")
    assert not in_range(b"b", b"a", b"b")


def test_written_keys_gathers_both_branches_at_every_depth() -> None:
    """Puts, single deletes and range deletes anywhere in a txn count; gets do not."""
    op = Op.txn(
        [],
        [Op.put(b"a", b"1"), Op.get(b"x"), Op.txn([], [Op.delete(b"b")], [Op.put(b"c", b"")])],
        [Op.delete(b"d", prefix=True), Op.delete(b"d", prefix=True)],
    )
    keys, ranges = written_keys(op)
    assert keys == frozenset({b"a", b"b", b"c"})
    assert ranges == ((b"d", b"e"),)


# --- acquire ----------------------------------------------------------------------------------


def test_acquire_txn_creates_the_leasing_key_only_when_free_and_the_key_has_no_lease() -> None:
    """The guards and branches are clientv3's."""
    txn = acquire_txn(P, b"k", OURS)
    assert txn.compare == (
        Compare.create_revision(b"lease/k") == 0,
        Compare.lease(b"k") == 0,
    )
    assert txn.success == (Op.get(b"k"), Op.put(b"lease/k", b"", lease=OURS))
    assert txn.failure == (Op.get(b"k"), Op.get(b"lease/k"))


def test_acquire_reports_an_acquisition_at_the_txn_revision() -> None:
    """A successful acquire owns the key; the leasing key was created at the header revision."""
    kv = KeyValue(b"k", b"v", 3, 4, 1)
    answer = TxnResponse(header(12), True, [got(12, kv), PutResponse(header(12))])
    steps, result = run(acquire(P, b"k", OURS), [answer])
    assert steps == [acquire_txn(P, b"k", OURS)]
    assert result.acquired
    assert result.incarnation == 12
    assert result.kv == kv
    assert result.response.header.revision == 12


def test_read_acquired_sees_a_leasing_key_of_ours_as_held_not_acquired() -> None:
    """clientv3 caches in that case; we release it instead (it may be REVOKE already)."""
    ours = KeyValue(b"lease/k", REVOKE, 5, 9, 2, OURS)
    result = read_acquired(TxnResponse(header(12), False, [got(12), got(12, ours)]), OURS)
    assert not result.acquired
    assert result.held
    assert result.incarnation == 5


def test_read_acquired_sees_another_owner_as_neither() -> None:
    """Someone else's leasing key: answer from the server's read, cache nothing."""
    theirs = KeyValue(b"lease/k", b"", 5, 5, 1, THEIRS)
    result = read_acquired(TxnResponse(header(12), False, [got(12), got(12, theirs)]), OURS)
    assert (result.acquired, result.held, result.incarnation) == (False, False, 0)


def test_probe_reads_the_key_and_its_leasing_key_with_plain_gets() -> None:
    """After an unknown acquire, two reads (no txn: etcd issue 14110) tell what happened."""
    assert probe_ops(P, b"k") == (Op.get(b"k"), Op.get(b"lease/k"))
    ours = KeyValue(b"lease/k", b"", 5, 5, 1, OURS)
    result = read_probe(got(12), got(12, ours), OURS)
    assert (result.acquired, result.held, result.incarnation) == (False, True, 5)
    theirs = KeyValue(b"lease/k", b"", 5, 5, 1, THEIRS)
    assert not read_probe(got(12), got(12, theirs), OURS).held


def test_release_txn_deletes_only_that_incarnation() -> None:
    """Guarded by the create revision, a release never deletes a later acquisition."""
    txn = release_txn(P, b"k", 5)
    assert txn.compare == (Compare.create_revision(b"lease/k") == 5,)
    assert txn.success == (Op.delete(b"lease/k"),)
    assert txn.failure == ()


# --- guarded writes ---------------------------------------------------------------------------


def test_guarded_write_by_the_owner_is_one_txn_that_refreshes_the_key() -> None:
    """Guarded on our leasing key's incarnation and lease; reads the key back in the same txn."""
    put = Op.put(b"k", b"v", prev_kv=True)
    after = KeyValue(b"k", b"v", 3, 20, 2)
    previous = KeyValue(b"k", b"old", 3, 4, 1)
    answer = TxnResponse(header(20), True, [PutResponse(header(20), previous), got(20, after)])
    steps, result = run(guarded_write(P, OURS, put, {b"k": 5}, [b"k"]), [answer])
    txn = txn_step(steps[0])
    assert txn.compare == (
        Compare.create_revision(b"lease/k") == 5,
        Compare.lease(b"lease/k") == OURS,
    )
    assert txn.success == (put, Op.get(b"k"))
    assert result.response == PutResponse(header(20), previous)
    assert result.states == {b"k": after}
    assert result.revision == 20
    assert result.lost == frozenset()


def test_guarded_write_by_a_non_owner_revokes_waits_and_then_writes_once() -> None:
    """The put rides only in success branches: it applies once, when nobody owns the key."""
    put = Op.put(b"k", b"v")
    refused = TxnResponse(
        header(30), False, [TxnResponse(header(30), True, [PutResponse(header(30))])]
    )
    applied = TxnResponse(header(32), True, [PutResponse(header(32))])
    steps, result = run(guarded_write(P, OURS, put, {}), [refused, None, applied])
    first = txn_step(steps[0])
    assert first.compare == (Compare.create_revision(b"lease/k") == 0,)
    assert first.success == (put,)
    revoke = first.failure[0]
    assert isinstance(revoke, TxnOp)
    assert revoke.success == (Op.put(b"lease/k", REVOKE, ignore_lease=True),)
    assert steps[1] == WaitForDeletes(frozenset({b"lease/k"}), 30)
    assert steps[2] == first
    assert sum(isinstance(op, PutOp) and op.key == b"k" for op in first.failure) == 0
    assert result.response == PutResponse(header(32))


def test_guarded_write_that_finds_no_leasing_key_after_all_just_retries() -> None:
    """A guard that failed for a key nobody holds any more revokes nothing and waits for nothing."""
    delete = Op.delete(b"k")
    refused = TxnResponse(header(30), False, [TxnResponse(header(30), False, [])])
    applied = TxnResponse(header(31), True, [DeleteResponse(header(31), 1)])
    steps, result = run(guarded_write(P, OURS, delete, {}), [refused, applied])
    assert len(steps) == 2
    assert result.response == DeleteResponse(header(31), 1)


def test_guarded_write_of_a_lost_key_treats_it_as_anyone_elses() -> None:
    """When our leasing key is gone, the key is reported lost and guarded like any other."""
    put = Op.put(b"k", b"v")
    refused = TxnResponse(header(40), False, [got(40)])  # our leasing key no longer exists
    applied = TxnResponse(header(41), True, [PutResponse(header(41)), got(41)])
    steps, result = run(guarded_write(P, OURS, put, {b"k": 5}, [b"k"]), [refused, applied])
    second = txn_step(steps[1])
    assert second.compare == (Compare.create_revision(b"lease/k") == 0,)
    assert result.lost == frozenset({b"k"})


def test_guarded_range_delete_revokes_other_owners_then_guards_the_range() -> None:
    """A prefix delete revokes each foreign owner in it, waits, then deletes under a range guard."""
    delete = Op.delete(b"key/", prefix=True)
    scan = got(
        50,
        KeyValue(b"lease/key/1", b"", 44, 44, 1, THEIRS),
        KeyValue(b"lease/key/2", b"", 46, 46, 1, OURS),
    )
    revoked = TxnResponse(
        header(51), True, [TxnResponse(header(51), True, [PutResponse(header(51))])]
    )
    applied = TxnResponse(header(53), True, [DeleteResponse(header(53), 2), got(53)])
    steps, result = run(
        guarded_write(P, OURS, delete, {}, [b"key/2"]), [scan, revoked, None, applied]
    )
    assert steps[0] == Op.get(b"lease/key/", range_end=b"lease/key0")
    revoke = txn_step(steps[1])
    assert len(revoke.success) == 1  # our own leasing key is not revoked
    assert steps[2] == WaitForDeletes(frozenset({b"lease/key/1"}), 51)
    guard = txn_step(steps[3]).compare
    assert guard == (
        Compare(b"lease/key/", b"lease/key0", CompareTarget.CREATE, CompareResult.LESS, 47),
    )
    assert result.response == DeleteResponse(header(53), 2)
    assert result.states == {b"key/2": None}


def test_guarded_from_key_delete_scans_to_the_end_of_the_leasing_prefix() -> None:
    """clientv3 revokes no owner for a from_key delete; we scan the whole tail of the prefix."""
    delete = Op.delete(b"kd", from_key=True)
    applied = TxnResponse(header(9), True, [DeleteResponse(header(9), 0)])
    steps, _ = run(guarded_write(P, OURS, delete, {}), [got(8), applied])
    assert steps[0] == Op.get(b"lease/kd", range_end=prefix_end(P))


def test_guarded_write_of_a_txn_wraps_it_whole_and_unwraps_the_answer() -> None:
    """The user's txn rides as one nested op; its answer gets the outer header."""
    user = Op.txn([Compare.version(b"a") == 0], [Op.put(b"a", b"1")], [Op.get(b"a")])
    inner = TxnResponse(header(0), True, [PutResponse(header(0))])
    applied = TxnResponse(header(61), True, [inner])
    steps, result = run(guarded_write(P, OURS, user, {}), [applied])
    assert txn_step(steps[0]).success == (user,)
    assert result.response == TxnResponse(header(61), True, [PutResponse(header(0))])


def test_guarded_write_refreshes_after_the_write_in_the_same_txn() -> None:
    """Refresh reads follow the user's op, so they see its effect."""
    put = Op.put(b"k", b"v")
    steps, _ = run(
        guarded_write(P, OURS, put, {b"k": 5}, [b"k", b"other"]),
        [TxnResponse(header(3), True, [PutResponse(header(3)), got(3), got(3)])],
    )
    assert txn_step(steps[0]).success == (put, Op.get(b"k"), Op.get(b"other"))


@pytest.mark.parametrize("owned", [{}, {b"k": 5}])
def test_guarded_write_never_sends_the_user_op_outside_a_success_branch(
    owned: dict[bytes, int],
) -> None:
    """Failed attempts revoke or read; the write itself is only in success branches."""
    put = Op.put(b"k", b"v")
    refused = TxnResponse(
        header(30), False, [TxnResponse(header(30), True, [])] if not owned else [got(30)]
    )
    applied = TxnResponse(
        header(32), True, [PutResponse(header(32)), got(32)] if owned else [PutResponse(header(32))]
    )
    answers: list[Response | None] = [refused, None, applied] if not owned else [refused, applied]
    steps, _ = run(guarded_write(P, OURS, put, owned, [b"k"] if owned else []), answers)
    for step in steps:
        if isinstance(step, TxnOp):
            assert put not in step.failure
