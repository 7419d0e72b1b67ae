"""etcd's checks of KV requests before they apply (v3rpc/key.go), on the request messages (pure)."""

from __future__ import annotations

from typing import Final

from etcd_layers.base.transport import rpc_pb2
from etcd_layers.testing.memory._errors import (
    DUPLICATE_KEY,
    EMPTY_KEY,
    INVALID_SORT_OPTION,
    KEY_NOT_FOUND,
    LEASE_PROVIDED,
    TOO_MANY_OPS,
    VALUE_PROVIDED,
    store_error,
)

MAX_TXN_OPS: Final = 128  # etcd's --max-txn-ops default
_SORT_ORDERS: Final = frozenset(rpc_pb2.RangeRequest.SortOrder.values())
_SORT_TARGETS: Final = frozenset(rpc_pb2.RangeRequest.SortTarget.values())


def check_range(request: rpc_pb2.RangeRequest) -> None:
    """Refuse a range request as etcd's checkRangeRequest does."""
    if not request.key:
        raise store_error(EMPTY_KEY)
    if request.sort_order not in _SORT_ORDERS or request.sort_target not in _SORT_TARGETS:
        raise store_error(INVALID_SORT_OPTION)


def check_put(request: rpc_pb2.PutRequest) -> None:
    """Refuse a put request as etcd's checkPutRequest does."""
    if not request.key:
        raise store_error(EMPTY_KEY)
    if request.ignore_value and request.value:
        raise store_error(VALUE_PROVIDED)
    if request.ignore_lease and request.lease:
        raise store_error(LEASE_PROVIDED)


def check_delete(request: rpc_pb2.DeleteRangeRequest) -> None:
    """Refuse a delete request as etcd's checkDeleteRequest does."""
    if not request.key:
        raise store_error(EMPTY_KEY)


def check_txn(request: rpc_pb2.TxnRequest, max_ops: int = MAX_TXN_OPS) -> None:
    """Refuse a txn as etcd's checkTxnRequest then checkIntervals (on both branches) do."""
    _check_txn_ops(request, max_ops)
    _check_intervals(request.success)
    _check_intervals(request.failure)


def _check_txn_ops(request: rpc_pb2.TxnRequest, max_ops: int) -> None:
    ops = max(len(request.compare), len(request.success), len(request.failure))
    if ops > max_ops:
        raise store_error(TOO_MANY_OPS)
    for compare in request.compare:
        if not compare.key:
            raise store_error(EMPTY_KEY)
    for op in (*request.success, *request.failure):
        _check_op(op, max_ops - ops)


def _check_op(op: rpc_pb2.RequestOp, max_ops: int) -> None:
    kind = op.WhichOneof("request")
    if kind == "request_range":
        check_range(op.request_range)
    elif kind == "request_put":
        check_put(op.request_put)
    elif kind == "request_delete_range":
        check_delete(op.request_delete_range)
    elif kind == "request_txn":
        _check_txn_ops(op.request_txn, max_ops)
    else:  # an empty RequestOp
        raise store_error(KEY_NOT_FOUND)


class _Intervals:
    """The deleted ranges of a txn level, as etcd's adt.IntervalTree of string intervals."""

    __slots__ = ("items",)

    def __init__(self) -> None:
        self.items: list[tuple[bytes, bytes]] = []

    def add(self, key: bytes, range_end: bytes) -> None:
        # A single key is the point [key, key + "\0"); etcd's affine strings treat only ""
        # as infinite, so a range end of "\0" makes an empty interval that contains nothing.
        self.items.append((key, range_end if range_end else key + b"\x00"))

    def contains(self, key: bytes) -> bool:
        return any(begin <= key < end for begin, end in self.items)


def _check_intervals(ops: object) -> tuple[set[bytes], _Intervals]:
    """Check as etcd's checkIntervals: no put may meet another put or a delete of the same txn."""
    requests: list[rpc_pb2.RequestOp] = list(ops)  # type: ignore[call-overload]  # a repeated field
    deletes = _Intervals()
    for op in requests:
        if op.WhichOneof("request") == "request_delete_range":
            deletes.add(op.request_delete_range.key, op.request_delete_range.range_end)
    puts: set[bytes] = set()
    for op in requests:
        if op.WhichOneof("request") != "request_txn":
            continue
        then_puts, then_deletes = _check_intervals(op.request_txn.success)
        else_puts, else_deletes = _check_intervals(op.request_txn.failure)
        for key in then_puts:
            if key in puts or deletes.contains(key):
                raise store_error(DUPLICATE_KEY)
            puts.add(key)
        for key in else_puts:
            if (key in puts and key not in then_puts) or deletes.contains(key):
                raise store_error(DUPLICATE_KEY)
            puts.add(key)
        deletes.items.extend(then_deletes.items)
        deletes.items.extend(else_deletes.items)
    for op in requests:
        if op.WhichOneof("request") != "request_put":
            continue
        key = op.request_put.key
        if key in puts or deletes.contains(key):
            raise store_error(DUPLICATE_KEY)
        puts.add(key)
    return puts, deletes
