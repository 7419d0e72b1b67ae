"""The server's rules for single-key reads and comparisons, to answer gets and txns from memory.

Everything here mirrors etcd's apply code (`applyCompare`/`compareKV` and `Range`), so that an
answer built from a cached KeyValue is the one the server would have sent. clientv3/leasing
departs from the server in two places that we do not copy: it lets a VALUE comparison on a
missing key succeed, and it ignores LEASE comparisons.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from operator import attrgetter
from typing import Final

from etcd_layers.base.compare import Compare, CompareResult, CompareTarget
from etcd_layers.base.ops import GetOp, TxnOp
from etcd_layers.base.responses import GetResponse, KeyValue, Response, ResponseHeader, TxnResponse

_ABSENT_FIELDS: Final = KeyValue(key=b"")  # what etcd compares a missing key's fields against

_RELATIONS: Final[dict[CompareResult, Callable[[int], bool]]] = {
    CompareResult.EQUAL: lambda result: result == 0,
    CompareResult.NOT_EQUAL: lambda result: result != 0,
    CompareResult.GREATER: lambda result: result > 0,
    CompareResult.LESS: lambda result: result < 0,
}


def _order(left: bytes | int, right: bytes | int) -> int:
    # etcd's bytes.Compare / compareInt64: -1, 0 or 1.
    if isinstance(left, bytes) and isinstance(right, bytes):
        return (left > right) - (left < right)
    if isinstance(left, int) and isinstance(right, int):
        return (left > right) - (left < right)
    raise TypeError(f"cannot compare {type(left).__name__} with {type(right).__name__}")


_FIELDS: Final[dict[CompareTarget, Callable[[KeyValue], bytes | int]]] = {
    CompareTarget.VALUE: attrgetter("value"),
    CompareTarget.CREATE: attrgetter("create_revision"),
    CompareTarget.MOD: attrgetter("mod_revision"),
    CompareTarget.VERSION: attrgetter("version"),
    CompareTarget.LEASE: attrgetter("lease"),
}


def evaluate_compare(compare: Compare, kv: KeyValue | None) -> bool:
    """Return whether `compare` holds for a single key whose state is `kv` (None: absent).

    As etcd: a VALUE comparison on a missing key fails whatever the operator; any other
    target compares the fields of an empty KeyValue (all zero).

    Raises:
        ValueError: `compare` covers a range, which a single state cannot answer.
    """
    if compare.range_end:
        raise ValueError("evaluate_compare answers single-key comparisons only")
    if kv is None:
        if compare.target == CompareTarget.VALUE:
            return False
        kv = _ABSENT_FIELDS
    result = _order(_FIELDS[compare.target](kv), compare.target_value)
    return _RELATIONS[compare.result](result)


def answerable(op: GetOp) -> bool:
    """Whether `op` reads one key as of now, so one KeyValue can answer it."""
    return not op.range_end and not op.revision and not op.count_only


def answer_get(op: GetOp, kv: KeyValue | None, header: ResponseHeader) -> GetResponse:
    """Return what etcd answers to `op` when the key's current state is `kv`.

    As etcd's Range: `count` counts the key before the revision filters prune it; `keys_only`
    empties the value; sorting one key is a no-op and a limit of 1 or more never cuts it.

    Raises:
        ValueError: `op` is not `answerable`.
    """
    if not answerable(op):
        raise ValueError("answer_get answers single-key reads of the current revision only")
    if kv is None:
        return GetResponse(header, [], 0, False)
    kept = _passes_filters(op, kv)
    if kept and op.keys_only and kv.value:
        kv = dataclasses.replace(kv, value=b"")
    return GetResponse(header, [kv] if kept else [], 1, False)


def _passes_filters(op: GetOp, kv: KeyValue) -> bool:
    if op.max_mod_revision and kv.mod_revision > op.max_mod_revision:
        return False
    if op.min_mod_revision and kv.mod_revision < op.min_mod_revision:
        return False
    if op.max_create_revision and kv.create_revision > op.max_create_revision:
        return False
    return not (op.min_create_revision and kv.create_revision < op.min_create_revision)


def txn_keys(txn: TxnOp) -> frozenset[bytes]:
    """Return every single key `txn` compares or reads, in both branches at every depth.

    Range comparisons, reads memory cannot answer and writes are left out: they only matter
    if the branch holding them runs, which `evaluate_txn` finds out.
    """
    keys: set[bytes] = set()
    pending = [txn]
    while pending:
        item = pending.pop()
        for compare in item.compare:
            if not compare.range_end:
                keys.add(compare.key)
        for branch in (item.success, item.failure):
            for op in branch:
                if isinstance(op, GetOp):
                    if answerable(op):
                        keys.add(op.key)
                elif isinstance(op, TxnOp):
                    pending.append(op)
    return frozenset(keys)


def evaluate_txn(
    txn: TxnOp, states: Mapping[bytes, KeyValue | None], header: ResponseHeader
) -> TxnResponse | None:
    """Return what etcd answers to `txn` when the keys are in `states`, or None.

    None means memory cannot answer: a branch that runs writes, compares a range or reads
    what `answer_get` cannot answer. A txn whose writes sit in a branch that does not run is
    answered (a failed compare-and-set of owned keys needs no round trip). Every response,
    nested ones included, carries `header`, as the client's own conversion of a txn does.

    Raises:
        KeyError: a key the running branches need is missing from `states`.
    """
    succeeded = True
    for compare in txn.compare:
        if compare.range_end:
            return None
        if succeeded and not evaluate_compare(compare, states[compare.key]):
            succeeded = False  # as all(): the later comparisons need not be evaluated
    responses: list[Response] = []
    for op in txn.success if succeeded else txn.failure:
        if isinstance(op, TxnOp):
            nested = evaluate_txn(op, states, header)
            if nested is None:
                return None
            responses.append(nested)
        elif isinstance(op, GetOp) and answerable(op):
            responses.append(answer_get(op, states[op.key], header))
        else:
            return None
    return TxnResponse(header, succeeded, responses)
