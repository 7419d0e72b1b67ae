"""How KV requests change the keyspace: etcd 3.5's apply.go for range, put, delete, txn (pure)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Final

from etcd_layers.base.transport import kv_pb2, rpc_pb2
from etcd_layers.testing.memory._errors import (
    COMPACTED,
    FUTURE_REVISION,
    KEY_NOT_FOUND,
    LEASE_NOT_FOUND,
    store_error,
)
from etcd_layers.testing.memory._gosort import go_sorted
from etcd_layers.testing.memory._keyspace import Keyspace, frame, varint_field
from etcd_layers.testing.memory._leases import Leases

KeyValue = kv_pb2.KeyValue
Header = Callable[[int], rpc_pb2.ResponseHeader]

_NONE: Final = rpc_pb2.RangeRequest.NONE
_ASCEND: Final = rpc_pb2.RangeRequest.ASCEND
_DESCEND: Final = rpc_pb2.RangeRequest.DESCEND
_KEY: Final = rpc_pb2.RangeRequest.KEY
_SORT_KEYS: Final[dict[int, Callable[[KeyValue], Any]]] = {
    rpc_pb2.RangeRequest.KEY: lambda kv: kv.key,
    rpc_pb2.RangeRequest.VERSION: lambda kv: kv.version,
    rpc_pb2.RangeRequest.CREATE: lambda kv: kv.create_revision,
    rpc_pb2.RangeRequest.MOD: lambda kv: kv.mod_revision,
    rpc_pb2.RangeRequest.VALUE: lambda kv: kv.value,
}
_COMPARE_FIELDS: Final = {
    rpc_pb2.Compare.VERSION: "version",
    rpc_pb2.Compare.CREATE: "create_revision",
    rpc_pb2.Compare.MOD: "mod_revision",
    rpc_pb2.Compare.VALUE: "value",
    rpc_pb2.Compare.LEASE: "lease",
}


def range_end(raw: bytes) -> bytes | None:
    """Map a range end as etcd's mkGteRange: None for one key, b"" for all keys from `key` on."""
    if not raw:
        return None
    return b"" if raw == b"\x00" else raw


class Applier:
    """Applies KV requests to a keyspace and its leases, building etcd's response messages.

    The caller checks the requests (`_checks`) and ends each write (`Keyspace.commit`).
    """

    def __init__(self, keyspace: Keyspace, leases: Leases, header: Header) -> None:
        self.keyspace = keyspace
        self.leases = leases
        self.header = header

    # --- range -----------------------------------------------------------------------------

    def range(self, request: rpc_pb2.RangeRequest) -> rpc_pb2.RangeResponse:
        """Answer a range request (checked already) as etcd's applierV3backend.Range."""
        keyspace = self.keyspace
        if _in_key_order(request) and request.revision in (0, keyspace.write_revision):
            return self._range_framed(request)
        if is_plain_get(request):
            return self.plain_get(request.key)
        revision = keyspace.check_read(request.revision)
        found = keyspace.range(request.key, range_end(request.range_end), revision)
        response = rpc_pb2.RangeResponse(header=self.header(keyspace.write_revision))
        limit = request.limit
        fetch_all = request.sort_order != _NONE or bool(
            request.min_mod_revision
            or request.max_mod_revision
            or request.min_create_revision
            or request.max_create_revision
        )
        if request.count_only:
            response.count = len(found)
            return response
        count = len(found)  # before the filters, as etcd's mvcc counts
        kvs = found
        if fetch_all:
            kvs = _pruned(kvs, request)
        elif limit > 0:
            kvs = kvs[: limit + 1]  # one more than asked, for `more`
        if request.sort_target != _KEY or request.sort_order != _NONE:
            kvs = _sorted(kvs, request)
        response.count = count
        if limit > 0 and len(kvs) > limit:
            del kvs[limit:]
            response.more = True
        if request.keys_only:
            kvs = [_without_value(kv) for kv in kvs]
        response.kvs.extend(kvs)
        return response

    def plain_get(self, key: bytes) -> rpc_pb2.RangeResponse:
        """The usual read, on a short path: one key at the current revision, no option."""
        keyspace = self.keyspace
        found = keyspace.get(key, keyspace.write_revision)
        response = rpc_pb2.RangeResponse()
        response.header.CopyFrom(self.header(keyspace.write_revision))
        if found is not None:
            response.kvs.append(found)
            response.count = 1
        return response

    def _range_framed(self, request: rpc_pb2.RangeRequest) -> rpc_pb2.RangeResponse:
        """A range of the newest values in key order, parsed from their cached wire form."""
        keyspace = self.keyspace
        framed = keyspace.range_framed(request.key, range_end(request.range_end))
        count = len(framed)
        parts = [frame(1, self.header(keyspace.write_revision).SerializeToString())]
        if 0 < request.limit < count:
            parts.extend(framed[: request.limit])
            parts.append(b"\x18\x01")  # more
        else:
            parts.extend(framed)
        if count:
            parts.append(varint_field(4, count))
        return rpc_pb2.RangeResponse.FromString(b"".join(parts))

    # --- put -------------------------------------------------------------------------------

    def put(self, request: rpc_pb2.PutRequest, *, in_txn: bool = False) -> rpc_pb2.PutResponse:
        """Apply a put (checked already) as etcd's applierV3backend.Put."""
        keyspace, leases = self.keyspace, self.leases
        lease = request.lease
        if not in_txn and lease and leases.get(lease) is None:  # a txn checked it first
            raise store_error(LEASE_NOT_FOUND)
        previous = keyspace.get(request.key, keyspace.write_revision)
        if (request.ignore_value or request.ignore_lease) and previous is None:
            raise store_error(KEY_NOT_FOUND)
        value = request.value
        if previous is not None:
            if request.ignore_value:
                value = previous.value
            if request.ignore_lease:
                lease = previous.lease
            if previous.lease:
                leases.detach(previous.lease, request.key)
        keyspace.put(request.key, value, lease)
        if lease:
            leases.attach(lease, request.key)
        response = rpc_pb2.PutResponse(header=self.header(keyspace.revision + 1))
        if request.prev_kv and previous is not None:
            response.prev_kv.CopyFrom(previous)
        return response

    # --- delete ----------------------------------------------------------------------------

    def delete(self, request: rpc_pb2.DeleteRangeRequest) -> rpc_pb2.DeleteRangeResponse:
        """Apply a delete (checked already) as etcd's applierV3backend.DeleteRange."""
        keyspace, leases = self.keyspace, self.leases
        end = range_end(request.range_end)
        kvs = list(keyspace.range(request.key, end, keyspace.write_revision))
        for kv in kvs:
            keyspace.delete(kv.key)
            if kv.lease:
                leases.detach(kv.lease, kv.key)
        response = rpc_pb2.DeleteRangeResponse(
            header=self.header(keyspace.write_revision), deleted=len(kvs)
        )
        if request.prev_kv:
            response.prev_kvs.extend(kvs)
        return response

    def delete_keys(self, keys: list[bytes]) -> None:
        """Delete the live ones of `keys` in the write in progress (a lease's revocation)."""
        keyspace = self.keyspace
        for key in sorted(keys):
            if keyspace.get(key, keyspace.write_revision) is not None:
                keyspace.delete(key)

    # --- txn -------------------------------------------------------------------------------

    def txn(self, request: rpc_pb2.TxnRequest) -> rpc_pb2.TxnResponse:
        """Apply a txn (checked already) as etcd's applierV3backend.Txn; the caller commits."""
        path = list(self._compare_path(request))  # every compare sees the state before the txn
        if not _read_only(request):
            self._check_branch(request, iter(path), self._check_put)
        self._check_branch(request, iter(path), self._check_range)
        return self._apply_txn(request, iter(path))

    def _compare_path(self, request: rpc_pb2.TxnRequest) -> Iterator[bool]:
        succeeded = all(self._compare(compare) for compare in request.compare)
        yield succeeded
        for op in request.success if succeeded else request.failure:
            if op.WhichOneof("request") == "request_txn":
                yield from self._compare_path(op.request_txn)

    def _compare(self, compare: rpc_pb2.Compare) -> bool:
        keyspace = self.keyspace
        kvs = list(keyspace.range(compare.key, range_end(compare.range_end), keyspace.revision))
        if not kvs:
            if compare.target == rpc_pb2.Compare.VALUE:
                return False  # a missing key has no value to compare, so this always fails
            return _compare_kv(compare, KeyValue())
        return all(_compare_kv(compare, kv) for kv in kvs)

    def _check_branch(
        self,
        request: rpc_pb2.TxnRequest,
        path: Iterator[bool],
        check: Callable[[rpc_pb2.RequestOp], None],
    ) -> None:
        for op in request.success if next(path) else request.failure:
            if op.WhichOneof("request") == "request_txn":
                self._check_branch(op.request_txn, path, check)
            else:
                check(op)

    def _check_put(self, op: rpc_pb2.RequestOp) -> None:
        if op.WhichOneof("request") != "request_put":
            return
        request = op.request_put
        keyspace = self.keyspace
        if (request.ignore_value or request.ignore_lease) and keyspace.get(
            request.key, keyspace.revision
        ) is None:
            raise store_error(KEY_NOT_FOUND)
        if request.lease and self.leases.get(request.lease) is None:
            raise store_error(LEASE_NOT_FOUND)

    def _check_range(self, op: rpc_pb2.RequestOp) -> None:
        if op.WhichOneof("request") != "request_range" or not op.request_range.revision:
            return
        revision = op.request_range.revision
        if revision > self.keyspace.revision:
            raise store_error(FUTURE_REVISION)
        if revision < self.keyspace.compact_revision:
            raise store_error(COMPACTED)

    def _apply_txn(self, request: rpc_pb2.TxnRequest, path: Iterator[bool]) -> rpc_pb2.TxnResponse:
        succeeded = next(path)
        response = rpc_pb2.TxnResponse(header=rpc_pb2.ResponseHeader(), succeeded=succeeded)
        for op in request.success if succeeded else request.failure:
            kind = op.WhichOneof("request")
            if kind == "request_range":
                response.responses.add(response_range=self.range(op.request_range))
            elif kind == "request_put":
                response.responses.add(response_put=self.put(op.request_put, in_txn=True))
            elif kind == "request_delete_range":
                response.responses.add(response_delete_range=self.delete(op.request_delete_range))
            else:
                response.responses.add(response_txn=self._apply_txn(op.request_txn, path))
        return response


def _in_key_order(request: rpc_pb2.RangeRequest) -> bool:
    """Whether a range asks for whole values in key order with no filter (any limit).

    A single key is left to the plain-get path, which is faster for one value.
    """
    return bool(request.range_end) and not (
        request.sort_target
        or request.sort_order == _DESCEND
        or request.keys_only
        or request.count_only
        or request.min_mod_revision
        or request.max_mod_revision
        or request.min_create_revision
        or request.max_create_revision
    )


def is_plain_get(request: rpc_pb2.RangeRequest) -> bool:
    """Whether a range request is one key at the current revision, with no option."""
    size = len(request.key)
    if size < 128:  # then only the key field makes it 2 + size bytes long on the wire
        return request.ByteSize() == size + 2
    return not (
        request.range_end
        or request.revision
        or request.limit
        or request.sort_order
        or request.sort_target
        or request.keys_only
        or request.count_only
        or request.min_mod_revision
        or request.max_mod_revision
        or request.min_create_revision
        or request.max_create_revision
    )


def _read_only(request: rpc_pb2.TxnRequest) -> bool:
    """As etcd's isTxnReadonly: only range ops in both branches (a nested txn counts as a write)."""
    return all(
        op.WhichOneof("request") == "request_range" for op in (*request.success, *request.failure)
    )


def _compare_kv(compare: rpc_pb2.Compare, kv: KeyValue) -> bool:
    name = _COMPARE_FIELDS.get(compare.target)
    if name is None:
        return True  # an unknown target: etcd's compareKV falls through to true
    given = compare.WhichOneof("target_union") == name  # else etcd compares with zero
    order: int
    if name == "value":
        theirs = compare.value if given else b""
        order = (kv.value > theirs) - (kv.value < theirs)
    else:
        mine_number: int = getattr(kv, name)
        their_number: int = getattr(compare, name) if given else 0
        order = (mine_number > their_number) - (mine_number < their_number)
    result = compare.result
    if result == rpc_pb2.Compare.EQUAL:
        return order == 0
    if result == rpc_pb2.Compare.NOT_EQUAL:
        return order != 0
    if result == rpc_pb2.Compare.GREATER:
        return order > 0
    if result == rpc_pb2.Compare.LESS:
        return order < 0
    return True


def _pruned(kvs: list[KeyValue], request: rpc_pb2.RangeRequest) -> list[KeyValue]:
    if request.max_mod_revision:
        kvs = [kv for kv in kvs if kv.mod_revision <= request.max_mod_revision]
    if request.min_mod_revision:
        kvs = [kv for kv in kvs if kv.mod_revision >= request.min_mod_revision]
    if request.min_create_revision:
        kvs = [kv for kv in kvs if kv.create_revision >= request.min_create_revision]
    if request.max_create_revision:
        kvs = [kv for kv in kvs if kv.create_revision <= request.max_create_revision]
    return kvs


def _sorted(kvs: list[KeyValue], request: rpc_pb2.RangeRequest) -> list[KeyValue]:
    order, target = request.sort_order, request.sort_target
    if target != _KEY and order == _NONE:
        order = _ASCEND  # etcd sorts ascending when only a target is given
    elif target == _KEY and order == _ASCEND:
        order = _NONE  # already in key order
    if order == _NONE:
        return kvs
    # As etcd: Go's sort.Sort, whose order among equal sort values is not the keys' order.
    return go_sorted(kvs, _SORT_KEYS[target], reverse=order != _ASCEND)


def _without_value(kv: KeyValue) -> KeyValue:
    return KeyValue(
        key=kv.key,
        create_revision=kv.create_revision,
        mod_revision=kv.mod_revision,
        version=kv.version,
        lease=kv.lease,
    )
