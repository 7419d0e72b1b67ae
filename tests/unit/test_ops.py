"""Op and Compare: resolved ranges, argument checks at build time, and txn write detection."""

from __future__ import annotations

import copy
import dataclasses
import pickle

import pytest

from etcd_layers import Compare, Op, SortOrder, SortTarget, errors
from etcd_layers.base.checks import check_timeout
from etcd_layers.base.compare import CompareResult, CompareTarget
from etcd_layers.base.keys import KEYSPACE_END
from etcd_layers.base.ops import DeleteOp, GetOp, TxnOp, op_writes


@pytest.mark.parametrize(
    ("kwargs", "key", "range_end"),
    [
        ({}, b"k", b""),
        ({"prefix": True}, b"k", b"l"),
        ({"from_key": True}, b"k", KEYSPACE_END),
        ({"range_end": "m"}, b"k", b"m"),
    ],
)
def test_op_get_resolves_ranges(kwargs: dict[str, object], key: bytes, range_end: bytes) -> None:
    """Range options resolve into etcd's key and range_end when the Op is built."""
    op = Op.get("k", **kwargs)  # type: ignore[arg-type]  # table of keyword sets
    assert (op.key, op.range_end) == (key, range_end)


@pytest.mark.parametrize("kwargs", [{"prefix": True}, {"from_key": True}])
def test_op_get_empty_key_with_range_means_all_keys(kwargs: dict[str, bool]) -> None:
    """An empty key with prefix or from_key names the whole keyspace, as clientv3 does."""
    op = Op.get("", **kwargs)  # type: ignore[arg-type]  # table of keyword sets
    assert (op.key, op.range_end) == (KEYSPACE_END, KEYSPACE_END)


def test_op_get_sort_key_ascend_is_sent_as_no_sort() -> None:
    """Sorting by key ascending is the server's natural order, so no sort is requested."""
    op = Op.get("k", prefix=True, sort_order=SortOrder.ASCEND, sort_target=SortTarget.KEY)
    assert op.sort_order == SortOrder.NONE


def test_op_get_accepts_plain_ints_for_sort_options() -> None:
    """Sort options given as the enum's int values are accepted and normalised."""
    op = Op.get("k", sort_order=2, sort_target=4)  # type: ignore[arg-type]  # ints allowed
    assert (op.sort_order, op.sort_target) == (SortOrder.DESCEND, SortTarget.VALUE)


HOSTILE_OPS = [
    (lambda: Op.get(""), errors.EmptyKeyError),
    (lambda: Op.put("", "v"), errors.EmptyKeyError),
    (lambda: Op.delete(""), errors.EmptyKeyError),
    (lambda: Op.get(1), TypeError),  # type: ignore[arg-type]
    (lambda: Op.get(None), TypeError),  # type: ignore[arg-type]
    (lambda: Op.put("k", 1), TypeError),  # type: ignore[arg-type]
    (lambda: Op.get("k", limit=-1), ValueError),
    (lambda: Op.get("k", limit="1"), TypeError),  # type: ignore[arg-type]
    (lambda: Op.get("k", limit=True), TypeError),
    (lambda: Op.get("k", revision=-1), ValueError),
    (lambda: Op.get("k", min_mod_revision=-1), ValueError),
    (lambda: Op.get("k", max_create_revision=-2), ValueError),
    (lambda: Op.get("k", prefix=True, range_end="z"), ValueError),
    (lambda: Op.get("k", prefix=True, from_key=True), ValueError),
    (lambda: Op.get("k", from_key=True, range_end="z"), ValueError),
    (lambda: Op.delete("k", prefix=True, range_end="z"), ValueError),
    (lambda: Op.get("k", prefix=1), TypeError),  # type: ignore[arg-type]
    (lambda: Op.get("k", serializable="yes"), TypeError),  # type: ignore[arg-type]
    (lambda: Op.get("k", sort_order=7), errors.InvalidSortOptionError),  # type: ignore[arg-type]
    (lambda: Op.get("k", sort_target=99), errors.InvalidSortOptionError),  # type: ignore[arg-type]
    (lambda: Op.get("k", sort_target=-1), errors.InvalidSortOptionError),  # type: ignore[arg-type]
    (lambda: Op.get("k", sort_order="asc"), errors.InvalidSortOptionError),  # type: ignore[arg-type]
    (lambda: Op.put("k", "v", lease=-1), ValueError),
    (lambda: Op.put("k", "v", ignore_value=True), errors.ValueProvidedError),
    (lambda: Op.put("k", "", lease=5, ignore_lease=True), errors.LeaseProvidedError),
    (lambda: Op.txn([Op.get("k")]), TypeError),  # type: ignore[list-item]
    (lambda: Op.txn([], ["not an op"]), TypeError),  # type: ignore[list-item]
    (lambda: Op.txn([], [], 5), TypeError),  # type: ignore[arg-type]
    (lambda: Compare.value("k") == 5, TypeError),
    (lambda: Compare.version("k") == b"x", TypeError),
    (lambda: Compare.mod_revision("k") < -1, ValueError),
    (lambda: Compare.value(""), errors.EmptyKeyError),
    (lambda: Compare.value("k", prefix=True, range_end="z"), ValueError),
    (lambda: check_timeout(0), ValueError),
    (lambda: check_timeout(-1.0), ValueError),
    (lambda: check_timeout("1"), TypeError),
]


@pytest.mark.parametrize(("build", "error"), HOSTILE_OPS)
def test_op_refuses_bad_arguments_when_built(build: object, error: type[Exception]) -> None:
    """Every bad argument raises its typed error while the request is being built."""
    assert callable(build)
    with pytest.raises(error):
        build()


def test_errors_sort_and_empty_key_are_value_errors() -> None:
    """EmptyKeyError and InvalidSortOptionError are ValueErrors, as the contract says."""
    assert issubclass(errors.EmptyKeyError, ValueError)
    assert issubclass(errors.InvalidSortOptionError, ValueError)


@pytest.mark.parametrize(
    ("compare", "target", "result", "value"),
    [
        (Compare.value("k") == b"v", CompareTarget.VALUE, CompareResult.EQUAL, b"v"),
        (Compare.value("k") != "v", CompareTarget.VALUE, CompareResult.NOT_EQUAL, b"v"),
        (Compare.version("k") > 0, CompareTarget.VERSION, CompareResult.GREATER, 0),
        (Compare.create_revision("k") == 0, CompareTarget.CREATE, CompareResult.EQUAL, 0),
        (Compare.mod_revision("k") < 7, CompareTarget.MOD, CompareResult.LESS, 7),
        (Compare.lease("k") == 42, CompareTarget.LEASE, CompareResult.EQUAL, 42),
    ],
)
def test_compare_operators_build_compares(
    compare: Compare, target: CompareTarget, result: CompareResult, value: bytes | int
) -> None:
    """Each operator on a compare operand yields the matching frozen Compare."""
    assert (compare.key, compare.target, compare.result, compare.target_value) == (
        b"k",
        target,
        result,
        value,
    )


def test_compare_over_prefix_sets_range_end() -> None:
    """A compare with prefix=True covers every key under the key."""
    compare = Compare.version("a/", prefix=True) > 0
    assert (compare.key, compare.range_end) == (b"a/", b"a0")


def test_txn_is_write_looks_into_both_branches_and_nested_txns() -> None:
    """A txn is a write if any op in either branch, at any depth, may write."""
    read_only = Op.txn([], [Op.get("a")], [Op.txn([], [Op.get("b")])])
    nested_write = Op.txn([], [Op.get("a")], [Op.txn([], [], [Op.delete("b")])])
    assert not read_only.is_write
    assert nested_write.is_write
    assert op_writes(Op.put("a", "b"))
    assert not op_writes(Op.get("a"))


def test_ops_are_frozen_and_typed() -> None:
    """Ops are immutable values of a kind-specific class."""
    op = Op.get("k")
    assert isinstance(op, GetOp)
    assert isinstance(Op.delete("k"), DeleteOp)
    assert isinstance(Op.txn(), TxnOp)
    with pytest.raises(dataclasses.FrozenInstanceError):
        op.key = b"x"  # type: ignore[misc]  # checking immutability


def test_errors_with_data_survive_pickle_and_copy() -> None:
    """Errors that carry data keep it through pickle and copy."""
    compacted = errors.CompactedError("compacted", 17)
    for clone in (pickle.loads(pickle.dumps(compacted)), copy.copy(compacted)):
        assert isinstance(clone, errors.CompactedError)
        assert clone.compact_revision == 17
        assert str(clone) == "compacted"
    violation = errors.NoGreaterRevisionError("stale", None, 9)
    assert pickle.loads(pickle.dumps(violation)).prev_revision == 9


def test_deadline_exceeded_is_a_timeout_error() -> None:
    """DeadlineExceededError can be caught as the builtin TimeoutError."""
    assert issubclass(errors.DeadlineExceededError, TimeoutError)
