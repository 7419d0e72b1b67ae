"""Pure conversions between Ops/responses and the generated protobuf messages."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from etcd_layers.base._proto import kv_pb2, rpc_pb2
from etcd_layers.base.compare import Compare
from etcd_layers.base.lazy import LazyKeyValues
from etcd_layers.base.ops import DeleteOp, GetOp, Op, PutOp, TxnOp
from etcd_layers.base.responses import (
    CompactResponse,
    DeleteResponse,
    Event,
    EventType,
    GetResponse,
    KeyValue,
    PutResponse,
    Response,
    ResponseHeader,
    TxnResponse,
    WatchResponse,
)

# --- requests -----------------------------------------------------------------------------


def range_request(op: GetOp) -> rpc_pb2.RangeRequest:
    """Return the RangeRequest for a get (only non-default fields are set: the hot path)."""
    request = rpc_pb2.RangeRequest(key=op.key)
    if op.range_end:
        request.range_end = op.range_end
    if op.limit:
        request.limit = op.limit
    if op.revision:
        request.revision = op.revision
    if op.sort_order:
        request.sort_order = op.sort_order  # type: ignore[assignment]  # IntEnum = wire value
    if op.sort_target:
        request.sort_target = op.sort_target  # type: ignore[assignment]  # likewise
    if op.serializable:
        request.serializable = True
    if op.keys_only:
        request.keys_only = True
    if op.count_only:
        request.count_only = True
    if op.min_mod_revision:
        request.min_mod_revision = op.min_mod_revision
    if op.max_mod_revision:
        request.max_mod_revision = op.max_mod_revision
    if op.min_create_revision:
        request.min_create_revision = op.min_create_revision
    if op.max_create_revision:
        request.max_create_revision = op.max_create_revision
    return request


def put_request(op: PutOp) -> rpc_pb2.PutRequest:
    """Return the PutRequest for a put."""
    return rpc_pb2.PutRequest(
        key=op.key,
        value=op.value,
        lease=op.lease,
        prev_kv=op.prev_kv,
        ignore_value=op.ignore_value,
        ignore_lease=op.ignore_lease,
    )


def delete_request(op: DeleteOp) -> rpc_pb2.DeleteRangeRequest:
    """Return the DeleteRangeRequest for a delete."""
    return rpc_pb2.DeleteRangeRequest(key=op.key, range_end=op.range_end, prev_kv=op.prev_kv)


def compare_message(compare: Compare) -> rpc_pb2.Compare:
    """Return the protobuf Compare for a Compare."""
    message = rpc_pb2.Compare(
        result=compare.result,  # type: ignore[arg-type]  # IntEnum values are the wire values
        target=compare.target,  # type: ignore[arg-type]  # likewise
        key=compare.key,
        range_end=compare.range_end,
    )
    setattr(message, _TARGET_FIELDS[compare.target], compare.target_value)
    return message


_TARGET_FIELDS: Final = ("version", "create_revision", "mod_revision", "value", "lease")


def txn_request(op: TxnOp) -> rpc_pb2.TxnRequest:
    """Return the TxnRequest for a txn (nested txns included)."""
    return rpc_pb2.TxnRequest(
        compare=[compare_message(c) for c in op.compare],
        success=[request_op(o) for o in op.success],
        failure=[request_op(o) for o in op.failure],
    )


def request_op(op: Op) -> rpc_pb2.RequestOp:
    """Return the RequestOp that carries `op` inside a txn."""
    if isinstance(op, GetOp):
        return rpc_pb2.RequestOp(request_range=range_request(op))
    if isinstance(op, PutOp):
        return rpc_pb2.RequestOp(request_put=put_request(op))
    if isinstance(op, DeleteOp):
        return rpc_pb2.RequestOp(request_delete_range=delete_request(op))
    if isinstance(op, TxnOp):
        return rpc_pb2.RequestOp(request_txn=txn_request(op))
    raise TypeError(f"not an Op: {type(op).__name__}")


# --- responses ----------------------------------------------------------------------------


def header(message: rpc_pb2.ResponseHeader) -> ResponseHeader:
    """Return a ResponseHeader."""
    return ResponseHeader(
        message.cluster_id, message.member_id, message.revision, message.raft_term
    )


def key_value(message: kv_pb2.KeyValue) -> KeyValue:
    """Return a KeyValue."""
    return KeyValue(
        message.key,
        message.value,
        message.create_revision,
        message.mod_revision,
        message.version,
        message.lease,
    )


def key_values(messages: Iterable[kv_pb2.KeyValue]) -> list[KeyValue]:
    """Return KeyValues for a repeated field, in order."""
    return [
        KeyValue(m.key, m.value, m.create_revision, m.mod_revision, m.version, m.lease)
        for m in messages
    ]


def get_response(message: rpc_pb2.RangeResponse) -> GetResponse:
    """Return a GetResponse whose kvs are converted on first use (see base.lazy)."""
    return GetResponse(
        header(message.header),
        LazyKeyValues(message.kvs, key_values),
        message.count,
        message.more,
    )


def put_response(message: rpc_pb2.PutResponse) -> PutResponse:
    """Return a PutResponse (prev_kv None unless the server sent one)."""
    prev = key_value(message.prev_kv) if message.HasField("prev_kv") else None
    return PutResponse(header(message.header), prev)


def delete_response(message: rpc_pb2.DeleteRangeResponse) -> DeleteResponse:
    """Return a DeleteResponse."""
    return DeleteResponse(header(message.header), message.deleted, key_values(message.prev_kvs))


def txn_response(message: rpc_pb2.TxnResponse, outer: ResponseHeader | None = None) -> TxnResponse:
    """Return a TxnResponse with one typed response per op that ran.

    etcd leaves the headers of a txn's inner responses mostly empty; every inner response
    (nested txns included) gets the outermost txn's header, so layers can rely on it.
    """
    top = outer if outer is not None else header(message.header)
    return TxnResponse(top, message.succeeded, [_inner_response(r, top) for r in message.responses])


def _inner_response(message: rpc_pb2.ResponseOp, top: ResponseHeader) -> Response:
    kind = message.WhichOneof("response")
    if kind == "response_range":
        inner = message.response_range
        return GetResponse(top, LazyKeyValues(inner.kvs, key_values), inner.count, inner.more)
    if kind == "response_put":
        put = message.response_put
        return PutResponse(top, key_value(put.prev_kv) if put.HasField("prev_kv") else None)
    if kind == "response_delete_range":
        deleted = message.response_delete_range
        return DeleteResponse(top, deleted.deleted, key_values(deleted.prev_kvs))
    if kind == "response_txn":
        return txn_response(message.response_txn, top)
    raise ValueError(f"unknown txn response kind {kind!r}")


def compact_response(message: rpc_pb2.CompactionResponse) -> CompactResponse:
    """Return a CompactResponse."""
    return CompactResponse(header(message.header))


_EVENT_TYPES: Final = (EventType.PUT, EventType.DELETE)  # indexed by the wire value: no lookup


def event(message: kv_pb2.Event) -> Event:
    """Return an Event (prev_kv None unless the server sent one)."""
    kv = message.kv
    prev = None
    if message.HasField("prev_kv"):
        p = message.prev_kv
        prev = KeyValue(p.key, p.value, p.create_revision, p.mod_revision, p.version, p.lease)
    return Event(
        _EVENT_TYPES[message.type],
        KeyValue(kv.key, kv.value, kv.create_revision, kv.mod_revision, kv.version, kv.lease),
        prev,
    )


def events(messages: Iterable[kv_pb2.Event], *, prev_kv: bool) -> list[Event]:
    """Return the Events of a watch response, in order.

    The watch hot path: without `prev_kv` the server sends none, so protobuf is not asked
    about it, and each KeyValue is built inline (a call per event costs as much as the rest).
    """
    if prev_kv:
        return [event(m) for m in messages]
    return [
        Event(
            _EVENT_TYPES[m.type],
            KeyValue(
                (kv := m.kv).key,
                kv.value,
                kv.create_revision,
                kv.mod_revision,
                kv.version,
                kv.lease,
            ),
            None,
        )
        for m in messages
    ]


def events_response(message: rpc_pb2.WatchResponse, events: list[Event]) -> WatchResponse:
    """Return the WatchResponse that carries `events` (joined and converted) to its watch."""
    h = message.header
    return WatchResponse(
        ResponseHeader(h.cluster_id, h.member_id, h.revision, h.raft_term),
        events,
        0,
        False,
        False,
        False,
        message.watch_id,
    )
