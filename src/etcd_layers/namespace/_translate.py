"""Pure translation of requests into a key prefix and of responses back out of it."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterable
from typing import Any, Final, overload

from etcd_layers.base.compare import Compare
from etcd_layers.base.keys import KEYSPACE_END, prefix_end
from etcd_layers.base.lazy import LazyKeyValues, LazyList
from etcd_layers.base.ops import DeleteOp, GetOp, Op, PutOp, TxnOp
from etcd_layers.base.responses import (
    DeleteResponse,
    Event,
    GetResponse,
    KeyValue,
    LeaseTimeToLiveResponse,
    PutResponse,
    Response,
    TxnResponse,
    WatchResponse,
)

# --- requests -----------------------------------------------------------------------------


def prefix_range(prefix: bytes, key: bytes, range_end: bytes) -> tuple[bytes, bytes]:
    """Map the user's resolved [key, range_end) onto the same range inside `prefix`.

    `key` and `range_end` are as an Op holds them: `range_end` is b"" for a single key and
    `KEYSPACE_END` for "up to the end of the keyspace" (`from_key`, or `prefix=True` on a key
    whose prefix has no end), which here means "up to the end of the namespace".

    Returns:
        The translated (key, range_end); every key in it starts with `prefix`.
    """
    if not range_end:
        return prefix + key, b""
    if range_end == KEYSPACE_END:
        # clientv3's prefixInterval carries into b"b\x00" for prefix b"a\xff", which admits
        # key b"b"; prefix_end truncates instead, and an all-0xff prefix has no end at all.
        # "All keys" starts at prefix + b"\x00" (the Op's key, see ops.key_range), as in
        # clientv3: the key equal to the prefix, whose user key would be empty, stays out.
        return prefix + key, prefix_end(prefix)
    # Every key below prefix + range_end that is >= prefix + key starts with prefix: no key
    # outside the namespace sorts between prefix and any extension of it.
    return prefix + key, prefix + range_end


# The copies below are made with the values' `_with_key`: a copy with only the key and range
# end replaced, the other fields carried over without checking them again (the value was checked
# when built). It is the cheapest copy there is (base._frozen); a unit test checks every field.


def prefix_compare(prefix: bytes, compare: Compare) -> Compare:
    """Return `compare` with its key, or its range of keys, moved inside `prefix`."""
    range_end = compare.range_end
    if not range_end:  # a single key, the usual comparison: no range to translate
        return compare._with_key(prefix + compare.key, b"")
    return compare._with_key(*prefix_range(prefix, compare.key, range_end))


def prefix_get(prefix: bytes, op: GetOp) -> GetOp:
    """Return the get `op` reading the same keys inside `prefix`."""
    range_end = op.range_end
    if not range_end:
        return op._with_key(prefix + op.key, b"")
    return op._with_key(*prefix_range(prefix, op.key, range_end))


def prefix_put(prefix: bytes, op: PutOp) -> PutOp:
    """Return the put `op` writing the same key inside `prefix`."""
    return op._with_key(prefix + op.key)


def prefix_delete(prefix: bytes, op: DeleteOp) -> DeleteOp:
    """Return the delete `op` deleting the same keys inside `prefix`."""
    return op._with_key(*prefix_range(prefix, op.key, op.range_end))


def prefix_txn(prefix: bytes, op: TxnOp) -> TxnOp:
    """Return the txn `op` with every comparison and op, at any depth, inside `prefix`."""
    # Written out, not as calls of prefix_compare and prefix_op: a txn pays these per item.
    compares = tuple(
        [
            compare._with_key(*prefix_range(prefix, compare.key, compare.range_end))
            if compare.range_end
            else compare._with_key(prefix + compare.key, b"")
            for compare in op.compare
        ]
    )
    return TxnOp(compares, _prefix_ops(prefix, op.success), _prefix_ops(prefix, op.failure))


def _prefix_ops(prefix: bytes, ops: tuple[Op, ...]) -> tuple[Op, ...]:
    if not ops:
        return ()
    translate = _PREFIXERS.get
    return tuple(
        [
            # A single-key get, the usual op of a txn, copied here without a call per item.
            inner._with_key(prefix + inner.key, b"")
            if type(inner) is GetOp and not inner.range_end
            else (translate(type(inner)) or prefix_op)(prefix, inner)
            for inner in ops
        ]
    )


# Dispatch on the exact class first: one dict lookup instead of a chain of isinstance checks.
_PREFIXERS: Final[dict[type, Callable[[bytes, Any], Op]]] = {
    GetOp: prefix_get,
    PutOp: prefix_put,
    DeleteOp: prefix_delete,
    TxnOp: prefix_txn,
}


@overload
def prefix_op(prefix: bytes, op: GetOp) -> GetOp: ...
@overload
def prefix_op(prefix: bytes, op: PutOp) -> PutOp: ...
@overload
def prefix_op(prefix: bytes, op: DeleteOp) -> DeleteOp: ...
@overload
def prefix_op(prefix: bytes, op: TxnOp) -> TxnOp: ...
@overload
def prefix_op(prefix: bytes, op: Op) -> Op: ...
def prefix_op(prefix: bytes, op: Op) -> Op:
    """Return `op` with every key, range, comparison and nested op moved inside `prefix`.

    The Op was checked when it was built, so the copy is made without checking it again.

    Raises:
        TypeError: `op` is not one of the Ops built by Op.get/put/delete/txn.
    """
    translate = _PREFIXERS.get(type(op))
    if translate is not None:
        return translate(prefix, op)
    if isinstance(op, GetOp):  # a subclass
        return prefix_get(prefix, op)
    if isinstance(op, PutOp):
        return prefix_put(prefix, op)
    if isinstance(op, DeleteOp):
        return prefix_delete(prefix, op)
    if isinstance(op, TxnOp):
        return prefix_txn(prefix, op)
    raise TypeError(f"op must be an Op built by Op.get/put/delete/txn, not {type(op).__name__}")


# --- responses ----------------------------------------------------------------------------


def unprefix_kv(prefix: bytes, kv: KeyValue) -> KeyValue:
    """Return a copy of `kv` with `prefix` cut from its key (which must start with it)."""
    # KeyValue is a plain value; building it directly costs half of dataclasses.replace,
    # which adds up on large ranges.
    return KeyValue(
        kv.key[len(prefix) :], kv.value, kv.create_revision, kv.mod_revision, kv.version, kv.lease
    )


def unprefix_kvs(prefix: bytes, kvs: Iterable[KeyValue]) -> list[KeyValue]:
    """Return copies of `kvs` with `prefix` cut from each key, leaving out keys outside it.

    A translated range never reaches outside the prefix, so nothing is left out in practice;
    the check keeps a key of another tenant from ever being returned with a mangled name.
    """
    cut = len(prefix)
    return [
        KeyValue(kv.key[cut:], kv.value, kv.create_revision, kv.mod_revision, kv.version, kv.lease)
        for kv in kvs
        if kv.key.startswith(prefix)
    ]


def unprefix_keys(prefix: bytes, keys: Iterable[bytes]) -> list[bytes]:
    """Return the keys that start with `prefix`, with it cut off; the others are dropped."""
    # As clientv3's leasePrefix.TimeToLive: a lease may hold keys of other namespaces.
    cut = len(prefix)
    return [key[cut:] for key in keys if key.startswith(prefix)]


def _unprefix_prev_kv(prefix: bytes, kv: KeyValue | None) -> KeyValue | None:
    if kv is None or not kv.key.startswith(prefix):
        return None
    return unprefix_kv(prefix, kv)


def unprefix_get(prefix: bytes, response: GetResponse) -> GetResponse:
    """Return a copy of a get's response with `prefix` cut from its kvs."""
    # Cut lazily: the client decodes a range only when it is used, and so does this layer.
    kvs = LazyKeyValues(response.kvs, _cutters(prefix)[0])
    return GetResponse(response.header, kvs, response.count, response.more)


def unprefix_put(prefix: bytes, response: PutResponse) -> PutResponse:
    """Return a put's response with `prefix` cut from its prev_kv (as it is without one)."""
    if response.prev_kv is None:
        return response  # nothing to translate: a frozen value without a list to share
    return PutResponse(response.header, _unprefix_prev_kv(prefix, response.prev_kv))


def unprefix_delete(prefix: bytes, response: DeleteResponse) -> DeleteResponse:
    """Return a copy of a delete's response with `prefix` cut from its prev_kvs."""
    return DeleteResponse(
        response.header, response.deleted, unprefix_kvs(prefix, response.prev_kvs)
    )


def unprefix_responses(prefix: bytes, responses: Iterable[Response]) -> list[Response]:
    """Return copies of a txn's `responses` with `prefix` cut from every key in them."""
    return [unprefix_response(prefix, inner) for inner in responses]


@functools.lru_cache(maxsize=256)
def _cutters(
    prefix: bytes,
) -> tuple[
    Callable[[Iterable[KeyValue]], list[KeyValue]], Callable[[Iterable[Response]], list[Response]]
]:
    # The converters handed to the lazy lists, one pair per prefix: a dict lookup instead of
    # two new partial objects on every call.
    return functools.partial(unprefix_kvs, prefix), functools.partial(unprefix_responses, prefix)


def unprefix_txn(prefix: bytes, response: TxnResponse) -> TxnResponse:
    """Return a copy of a txn's response with `prefix` cut from every response in it.

    The responses are cut when the list is first used (many callers read only `succeeded`);
    the kvs of each get in it, when they are.
    """
    responses = LazyList(response.responses, _cutters(prefix)[1])
    return TxnResponse(response.header, response.succeeded, responses)


@overload
def unprefix_response(prefix: bytes, response: GetResponse) -> GetResponse: ...
@overload
def unprefix_response(prefix: bytes, response: PutResponse) -> PutResponse: ...
@overload
def unprefix_response(prefix: bytes, response: DeleteResponse) -> DeleteResponse: ...
@overload
def unprefix_response(prefix: bytes, response: TxnResponse) -> TxnResponse: ...
@overload
def unprefix_response(prefix: bytes, response: Response) -> Response: ...
def unprefix_response(prefix: bytes, response: Response) -> Response:
    """Return a copy of a KV response with `prefix` cut from every key in it.

    Covers the kvs of a get, the prev_kv of a put, the prev_kvs of a delete and, recursively,
    every response of a txn. The response given is left as it was.

    Raises:
        TypeError: `response` is not a KV response.
    """
    translate = _UNPREFIXERS.get(type(response))
    if translate is not None:
        return translate(prefix, response)
    if isinstance(response, GetResponse):  # a subclass
        return unprefix_get(prefix, response)
    if isinstance(response, PutResponse):
        return unprefix_put(prefix, response)
    if isinstance(response, DeleteResponse):
        return unprefix_delete(prefix, response)
    if isinstance(response, TxnResponse):
        return unprefix_txn(prefix, response)
    raise TypeError(f"not a KV response: {type(response).__name__}")


# As _PREFIXERS: the exact class picks the translation in one lookup.
_UNPREFIXERS: Final[dict[type, Callable[[bytes, Any], Response]]] = {
    GetResponse: unprefix_get,
    PutResponse: unprefix_put,
    DeleteResponse: unprefix_delete,
    TxnResponse: unprefix_txn,
}


def unprefix_event(prefix: bytes, event: Event) -> Event:
    """Return a copy of a watch event with `prefix` cut from its kv and prev_kv keys."""
    return Event(
        event.type, unprefix_kv(prefix, event.kv), _unprefix_prev_kv(prefix, event.prev_kv)
    )


def unprefix_watch_response(prefix: bytes, response: WatchResponse) -> WatchResponse:
    """Return a copy of `response` whose events have `prefix` cut from their keys.

    An event of a key outside the prefix (which a translated watch never receives) is left
    out rather than delivered under a mangled name.
    """
    return WatchResponse(
        response.header,
        [
            unprefix_event(prefix, event)
            for event in response.events
            if event.kv.key.startswith(prefix)
        ],
        response.compact_revision,
        response.created,
        response.canceled,
        response.is_progress_notify,
        response.watch_id,
        response.cancel_reason,
    )


def unprefix_time_to_live(
    prefix: bytes, response: LeaseTimeToLiveResponse
) -> LeaseTimeToLiveResponse:
    """Return a copy of `response` listing only the lease's keys inside `prefix`, cut."""
    return dataclasses.replace(response, keys=unprefix_keys(prefix, response.keys))
