"""The server's compare and range rules, as leasing/_evaluate.py re-implements them."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from etcd_layers.base.compare import Compare, CompareOperand
from etcd_layers.base.ops import Op, SortOrder, SortTarget
from etcd_layers.base.responses import GetResponse, KeyValue, ResponseHeader, TxnResponse
from etcd_layers.leasing._evaluate import (
    answer_get,
    answerable,
    evaluate_compare,
    evaluate_txn,
    txn_keys,
)

HEADER = ResponseHeader(cluster_id=1, member_id=2, revision=50, raft_term=3)
KV = KeyValue(b"k", b"mid", create_revision=10, mod_revision=20, version=3, lease=0)

TARGETS: dict[
    str, tuple[Callable[[bytes], CompareOperand], bytes | int, bytes | int, bytes | int]
] = {
    "value": (Compare.value, b"mid", b"a", b"z"),
    "version": (Compare.version, 3, 2, 4),
    "create": (Compare.create_revision, 10, 9, 11),
    "mod": (Compare.mod_revision, 20, 19, 21),
    "lease": (Compare.lease, 0, 0, 1),
}


def build(operand: CompareOperand, operator: str, value: bytes | int) -> Compare:
    if operator == "==":
        return operand == value
    if operator == "!=":
        return operand != value
    if operator == "<":
        return operand < value
    return operand > value


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_evaluate_compare_matches_equal_lower_and_higher_values(target: str) -> None:
    """Each operator holds exactly when the stored field relates to the value as it says."""
    make, same, lower, higher = TARGETS[target]
    operand = make(b"k")
    assert evaluate_compare(build(operand, "==", same), KV)
    assert not evaluate_compare(build(operand, "!=", same), KV)
    assert evaluate_compare(build(operand, ">", higher), KV) is False
    assert evaluate_compare(build(operand, "<", higher), KV)
    if lower != same:
        assert evaluate_compare(build(operand, ">", lower), KV)
        assert not evaluate_compare(build(operand, "<", lower), KV)


@pytest.mark.parametrize("operator", ["==", "!=", "<", ">"])
def test_evaluate_compare_fails_every_value_comparison_on_a_missing_key(operator: str) -> None:
    """As etcd: comparing the value of a key that does not exist is always false."""
    for value in (b"", b"x"):
        assert not evaluate_compare(build(Compare.value(b"k"), operator, value), None)


@pytest.mark.parametrize(
    ("compare", "expected"),
    [
        (Compare.version(b"k") == 0, True),
        (Compare.create_revision(b"k") == 0, True),
        (Compare.mod_revision(b"k") > 0, False),
        (Compare.lease(b"k") == 0, True),
        (Compare.version(b"k") < 1, True),
        (Compare.create_revision(b"k") != 0, False),
    ],
)
def test_evaluate_compare_reads_zero_fields_for_a_missing_key(
    compare: Compare, expected: bool
) -> None:
    """As etcd: every other target of a missing key compares as zero."""
    assert evaluate_compare(compare, None) is expected


def test_evaluate_compare_refuses_a_range() -> None:
    """A range comparison needs every key of the range, which one state cannot give."""
    with pytest.raises(ValueError, match="single-key"):
        evaluate_compare(Compare.version(b"k", prefix=True) == 1, KV)


EDGE = st.lists(st.sampled_from(b"\x00\x01a\xfe\xff"), max_size=3).map(bytes)


@given(stored=EDGE, compared=EDGE)
@example(stored=b"", compared=b"")
@example(stored=b"a", compared=b"a\x00")
def test_evaluate_compare_orders_values_bytewise(stored: bytes, compared: bytes) -> None:
    """Values compare as unsigned bytes, shorter prefix first, as Go's bytes.Compare."""
    kv = KeyValue(b"k", stored, 1, 1, 1)
    assert evaluate_compare(Compare.value(b"k") < compared, kv) is (stored < compared)
    assert evaluate_compare(Compare.value(b"k") > compared, kv) is (stored > compared)
    assert evaluate_compare(Compare.value(b"k") == compared, kv) is (stored == compared)


# --- answer_get -------------------------------------------------------------------------------


def test_answer_get_returns_the_key_with_count_one() -> None:
    """A plain get of an existing key returns it, count 1, nothing more."""
    assert answer_get(Op.get(b"k"), KV, HEADER) == GetResponse(HEADER, [KV], 1, False)


def test_answer_get_of_a_missing_key_is_empty() -> None:
    """A missing key gives no kvs and count 0."""
    assert answer_get(Op.get(b"k"), None, HEADER) == GetResponse(HEADER, [], 0, False)


def test_answer_get_keys_only_empties_the_value() -> None:
    """keys_only keeps every field but the value."""
    response = answer_get(Op.get(b"k", keys_only=True), KV, HEADER)
    assert response.kvs == [KeyValue(b"k", b"", 10, 20, 3, 0)]


@pytest.mark.parametrize(
    ("options", "kept"),
    [
        ({"min_mod_revision": 20}, True),
        ({"min_mod_revision": 21}, False),
        ({"max_mod_revision": 20}, True),
        ({"max_mod_revision": 19}, False),
        ({"min_create_revision": 10}, True),
        ({"min_create_revision": 11}, False),
        ({"max_create_revision": 10}, True),
        ({"max_create_revision": 9}, False),
    ],
)
def test_answer_get_filters_by_revision_but_still_counts(
    options: dict[str, int], kept: bool
) -> None:
    """As etcd: the filters prune kvs after counting, so a pruned key still counts 1."""
    response = answer_get(Op.get(b"k", **options), KV, HEADER)  # type: ignore[arg-type]  # ints
    assert response.kvs == ([KV] if kept else [])
    assert response.count == 1


def test_answer_get_ignores_sort_and_limit_on_one_key() -> None:
    """Sorting one key changes nothing and a limit of one never cuts it."""
    op = Op.get(b"k", limit=1, sort_order=SortOrder.DESCEND, sort_target=SortTarget.VALUE)
    assert answer_get(op, KV, HEADER) == GetResponse(HEADER, [KV], 1, False)


@pytest.mark.parametrize(
    "op",
    [Op.get(b"k", prefix=True), Op.get(b"k", revision=3), Op.get(b"k", count_only=True)],
)
def test_answer_get_refuses_what_memory_cannot_answer(op: object) -> None:
    """Ranges, past revisions and counts are left to the server."""
    assert isinstance(op, type(Op.get(b"k")))
    assert not answerable(op)
    with pytest.raises(ValueError, match="single-key"):
        answer_get(op, KV, HEADER)


# --- txns -------------------------------------------------------------------------------------


def test_txn_keys_collects_compared_and_read_keys_at_every_depth() -> None:
    """Both branches and nested txns count; ranges, writes and past revisions do not."""
    txn = Op.txn(
        [Compare.version(b"a") == 1, Compare.version(b"r", prefix=True) == 1],
        [Op.get(b"b"), Op.txn([Compare.value(b"c") == b"x"], [Op.get(b"d")], [])],
        [Op.get(b"e", keys_only=True), Op.put(b"w", b"v"), Op.get(b"old", revision=2)],
    )
    assert txn_keys(txn) == frozenset({b"a", b"b", b"c", b"d", b"e"})


@pytest.mark.parametrize(
    "txn",
    [
        Op.txn([], [Op.put(b"a", b"v")], []),
        Op.txn([Compare.version(b"a") == 0], [], [Op.delete(b"a")]),
        Op.txn([], [Op.txn([], [Op.put(b"a", b"v")], [])], []),
        Op.txn([Compare.version(b"a", prefix=True) == 1], [], []),
        Op.txn([], [Op.get(b"a", prefix=True)], []),
        Op.txn([], [Op.get(b"a", revision=2)], []),
        Op.txn([], [Op.get(b"a", count_only=True)], []),
    ],
)
def test_evaluate_txn_leaves_writes_and_ranges_that_run_to_the_server(txn: object) -> None:
    """A branch that runs a write, a range or a read memory cannot answer gives None."""
    assert isinstance(txn, type(Op.txn()))
    assert evaluate_txn(txn, {b"a": KV}, HEADER) is None


def test_evaluate_txn_answers_a_failed_compare_and_set() -> None:
    """Writes in the branch that does not run need no server: the answer is a read."""
    txn = Op.txn([Compare.version(b"a") == 9], [Op.put(b"a", b"new")], [Op.get(b"a")])
    assert evaluate_txn(txn, {b"a": KV}, HEADER) == TxnResponse(
        HEADER, False, [GetResponse(HEADER, [KV], 1, False)]
    )


def test_evaluate_txn_runs_the_branch_the_compares_choose() -> None:
    """All compares true: success; any false: failure; every response carries the header."""
    states = {b"a": KV, b"b": None}
    txn = Op.txn([Compare.version(b"a") == 3], [Op.get(b"a")], [Op.get(b"b")])
    assert evaluate_txn(txn, states, HEADER) == TxnResponse(
        HEADER, True, [GetResponse(HEADER, [KV], 1, False)]
    )
    txn = Op.txn(
        [Compare.version(b"a") == 3, Compare.value(b"b") == b""], [Op.get(b"a")], [Op.get(b"b")]
    )
    assert evaluate_txn(txn, states, HEADER) == TxnResponse(
        HEADER, False, [GetResponse(HEADER, [], 0, False)]
    )


def test_evaluate_txn_answers_nested_txns() -> None:
    """A nested txn is evaluated with the same states and header."""
    inner = Op.txn([Compare.mod_revision(b"a") < 5], [Op.get(b"a")], [Op.get(b"a", keys_only=True)])
    response = evaluate_txn(Op.txn([], [inner], []), {b"a": KV}, HEADER)
    assert response is not None
    assert response.responses == [
        TxnResponse(HEADER, False, [GetResponse(HEADER, [KeyValue(b"k", b"", 10, 20, 3)], 1)])
    ]


def test_evaluate_txn_needs_every_key_of_the_running_branch() -> None:
    """A key the running branch needs but the states lack is a caller's error."""
    with pytest.raises(KeyError):
        evaluate_txn(Op.txn([], [Op.get(b"b")], []), {b"a": KV}, HEADER)
