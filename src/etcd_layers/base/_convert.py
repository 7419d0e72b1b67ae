"""Pure conversions between Ops/responses and the generated protobuf messages."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Final

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
    _range_options(request, op)
    return request


def _range_options(request: rpc_pb2.RangeRequest, op: GetOp) -> None:
    """Set a RangeRequest's fields beyond its key (its non-default ones only)."""
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


def put_request(op: PutOp) -> rpc_pb2.PutRequest:
    """Return the PutRequest for a put."""
    return _put_fields(rpc_pb2.PutRequest(key=op.key, value=op.value), op)


def _put_fields(request: rpc_pb2.PutRequest, op: PutOp) -> rpc_pb2.PutRequest:
    """Set a PutRequest's fields beyond its key and value (non-default ones only)."""
    if op.lease:
        request.lease = op.lease
    if op.prev_kv:
        request.prev_kv = True
    if op.ignore_value:
        request.ignore_value = True
    if op.ignore_lease:
        request.ignore_lease = True
    return request


def delete_request(op: DeleteOp) -> rpc_pb2.DeleteRangeRequest:
    """Return the DeleteRangeRequest for a delete."""
    return rpc_pb2.DeleteRangeRequest(key=op.key, range_end=op.range_end, prev_kv=op.prev_kv)


def compare_message(compare: Compare) -> rpc_pb2.Compare:
    """Return the protobuf Compare for a Compare."""
    message = rpc_pb2.Compare()
    _compare_fields(message, compare)
    return message


def _compare_fields(message: rpc_pb2.Compare, compare: Compare) -> None:
    message.result = compare.result  # type: ignore[assignment]  # IntEnum = wire value
    message.target = compare.target  # type: ignore[assignment]  # likewise
    message.key = compare.key
    if compare.range_end:
        message.range_end = compare.range_end
    setattr(message, _TARGET_FIELDS[compare.target], compare.target_value)


_TARGET_FIELDS: Final = ("version", "create_revision", "mod_revision", "value", "lease")


def txn_request(op: TxnOp) -> rpc_pb2.TxnRequest:
    """Return the TxnRequest for a txn (nested txns included).

    Every part is filled in place in the request's repeated fields: building sub-messages
    and handing them over would copy each one.
    """
    request = rpc_pb2.TxnRequest()
    _fill_txn(request, op)
    return request


def _fill_txn(request: rpc_pb2.TxnRequest, op: TxnOp) -> None:
    add = request.compare.add
    for compare in op.compare:
        _compare_fields(add(), compare)
    _fill_ops(request.success, op.success)
    _fill_ops(request.failure, op.failure)


def _fill_ops(messages: Any, ops: Iterable[Op]) -> None:
    add = messages.add
    for op in ops:
        kind = type(op)
        if kind is GetOp:
            get = add().request_range
            get.key = op.key  # type: ignore[attr-defined]  # a GetOp
            _range_options(get, op)  # type: ignore[arg-type]  # a GetOp
        elif kind is PutOp:
            put = add().request_put
            put.key = op.key  # type: ignore[attr-defined]  # a PutOp
            put.value = op.value  # type: ignore[attr-defined]  # a PutOp
            _put_fields(put, op)  # type: ignore[arg-type]  # a PutOp
        else:
            add().CopyFrom(request_op(op))


def request_op(op: Op) -> rpc_pb2.RequestOp:
    """Return the RequestOp that carries `op` inside a txn."""
    if isinstance(op, GetOp):
        return rpc_pb2.RequestOp(request_range=range_request(op))
    if isinstance(op, PutOp):
        return rpc_pb2.RequestOp(request_put=put_request(op))
    if isinstance(op, DeleteOp):
        return rpc_pb2.RequestOp(request_delete_range=delete_request(op))
    if isinstance(op, TxnOp):
        message = rpc_pb2.RequestOp()
        message.request_txn.SetInParent()  # an empty txn is still the oneof's member
        _fill_txn(message.request_txn, op)
        return message
    raise TypeError(f"not an Op: {type(op).__name__}")


# --- responses ----------------------------------------------------------------------------


# The hot conversions fill drafts (plain classes with the very slots of the value class) by
# ordinary attribute stores, then give them the real class, as base._frozen's generated
# constructors do, without a call per value: a thousand KeyValues cost about a sixth less.


class _KeyValueDraft:
    __slots__ = KeyValue.__slots__
    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int


class _HeaderDraft:
    __slots__ = ResponseHeader.__slots__
    cluster_id: int
    member_id: int
    revision: int
    raft_term: int


_new: Final = object.__new__
# Up to this many KeyValues are built at once; more are built on first use (base.lazy).
EAGER_KVS: Final = 8


def header(m: rpc_pb2.ResponseHeader) -> ResponseHeader:
    """Return a ResponseHeader."""
    h = _new(_HeaderDraft)
    h.cluster_id = m.cluster_id
    h.member_id = m.member_id
    h.revision = m.revision
    h.raft_term = m.raft_term
    h.__class__ = ResponseHeader  # type: ignore[assignment]  # the draft becomes the value
    return h  # type: ignore[return-value]  # it is a ResponseHeader now


def key_value(m: kv_pb2.KeyValue) -> KeyValue:
    """Return a KeyValue."""
    kv = _new(_KeyValueDraft)
    kv.key = m.key
    kv.value = m.value
    kv.create_revision = m.create_revision
    kv.mod_revision = m.mod_revision
    kv.version = m.version
    kv.lease = m.lease
    kv.__class__ = KeyValue  # type: ignore[assignment]  # the draft becomes the value
    return kv  # type: ignore[return-value]  # it is a KeyValue now


def key_values(messages: Iterable[kv_pb2.KeyValue]) -> list[KeyValue]:
    """Return KeyValues for a repeated field, in order.

    key_value's body inline: a call per item would cost a sixth more on a large range.
    """
    out: list[Any] = []
    append = out.append
    kv_class, new, draft = KeyValue, _new, _KeyValueDraft
    for m in messages:
        kv = new(draft)
        kv.key = m.key
        kv.value = m.value
        kv.create_revision = m.create_revision
        kv.mod_revision = m.mod_revision
        kv.version = m.version
        kv.lease = m.lease
        kv.__class__ = kv_class  # type: ignore[assignment]  # the draft becomes the value
        append(kv)
    return out


def kvs_of(messages: Sequence[kv_pb2.KeyValue]) -> list[KeyValue]:
    """Return a range's KeyValues: built now when few, else converted on first use."""
    count = len(messages)
    if count == 1:  # a single-key get: indexing the repeated field is cheaper than iterating it
        return [key_value(messages[0])]
    if count == 0:
        return []
    if count <= EAGER_KVS:
        return key_values(messages)
    return LazyKeyValues(messages, key_values)


def get_response(message: rpc_pb2.RangeResponse) -> GetResponse:
    """Return a GetResponse (a large range's kvs are converted on first use: base.lazy)."""
    return GetResponse(header(message.header), kvs_of(message.kvs), message.count, message.more)


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
    answers = [_inner_response(r, top) for r in message.responses]
    return TxnResponse(top, message.succeeded, answers)


def _inner_response(message: rpc_pb2.ResponseOp, top: ResponseHeader) -> Response:
    kind = message.WhichOneof("response")
    if kind == "response_range":
        inner = message.response_range
        return GetResponse(top, kvs_of(inner.kvs), inner.count, inner.more)
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

# --- watch events: the hot path -----------------------------------------------------------
# A watch replaying history converts a thousand events per response. Event and WatchResponse
# are built as drafts too, as above (the KeyValue of each event inline: no call per event).
# What comes out is an ordinary Event or WatchResponse: equal, hashed and printed as any other.


class _EventDraft:
    __slots__ = Event.__slots__
    type: EventType
    kv: KeyValue
    prev_kv: KeyValue | None


class _WatchResponseDraft:
    __slots__ = WatchResponse.__slots__
    header: ResponseHeader
    events: list[Event]
    compact_revision: int
    created: bool
    canceled: bool
    is_progress_notify: bool
    watch_id: int
    cancel_reason: str


_draft: Final = object.__new__


def event(message: kv_pb2.Event) -> Event:
    """Return an Event (prev_kv None unless the server sent one)."""
    e = _draft(_EventDraft)
    e.type = _EVENT_TYPES[message.type]
    e.kv = key_value(message.kv)
    e.prev_kv = key_value(message.prev_kv) if message.HasField("prev_kv") else None
    e.__class__ = Event  # type: ignore[assignment]  # the draft becomes the value
    return e  # type: ignore[return-value]  # it is an Event now


def events(messages: Iterable[kv_pb2.Event], *, prev_kv: bool) -> list[Event]:
    """Return the Events of a watch response, in order.

    The watch hot path: without `prev_kv` the server sends none, so protobuf is not asked
    about it, and each Event is drafted inline (a call per event costs as much as a third of
    the rest).
    """
    if prev_kv:
        return [event(m) for m in messages]
    out: list[Any] = []
    append = out.append
    kv_class, event_class, types = KeyValue, Event, _EVENT_TYPES
    for m in messages:
        p = m.kv
        kv = _new(_KeyValueDraft)
        kv.key = p.key
        kv.value = p.value
        kv.create_revision = p.create_revision
        kv.mod_revision = p.mod_revision
        kv.version = p.version
        kv.lease = p.lease
        kv.__class__ = kv_class  # type: ignore[assignment]  # the draft becomes the value
        e = _draft(_EventDraft)
        e.type = types[m.type]
        e.kv = kv  # type: ignore[assignment]  # a KeyValue now
        e.prev_kv = None
        e.__class__ = event_class  # type: ignore[assignment]  # the draft becomes the value
        append(e)
    return out


def events_response(message: rpc_pb2.WatchResponse, events: list[Event]) -> WatchResponse:
    """Return the WatchResponse that carries `events` (joined and converted) to its watch."""
    response = _draft(_WatchResponseDraft)
    response.header = header(message.header)
    response.events = events
    response.compact_revision = 0
    response.created = False
    response.canceled = False
    response.is_progress_notify = False
    response.watch_id = message.watch_id
    response.cancel_reason = ""
    response.__class__ = WatchResponse  # type: ignore[assignment]  # the draft becomes the value
    return response  # type: ignore[return-value]  # it is a WatchResponse now
