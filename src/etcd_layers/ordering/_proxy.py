"""OrderingKV: a KV proxy that checks every response's revision against the highest one seen."""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeAlias, cast, overload

import wrapt

from etcd_layers._compat import Self
from etcd_layers.base.checks import check_timeout
from etcd_layers.base.deadline import Deadline
from etcd_layers.base.forwarding import Forwarded
from etcd_layers.base.keys import StrOrBytes, plain_get_key
from etcd_layers.base.ops import DeleteOp, GetOp, Op, PutOp, TxnOp
from etcd_layers.base.protocols import KV
from etcd_layers.base.responses import (
    DeleteResponse,
    GetResponse,
    PutResponse,
    Response,
    TxnResponse,
)
from etcd_layers.ordering._floor import RevisionFloor
from etcd_layers.ordering._report import report_violation
from etcd_layers.ordering._rule import stale_write_error

OnViolation: TypeAlias = Callable[[Op, Response, int], object]
"""`on_violation(op, response, prev_revision)`: return to send `op` again, raise to fail."""

# How many stale responses the call now calling `on_violation` has had, this one included.
# A ContextVar rather than an argument: the callback's signature is Go's (op, resp, prevRev),
# and each thread (or task) has its own value, so concurrent calls never share a count.
VIOLATIONS: ContextVar[int] = ContextVar("etcd_layers.ordering.violations", default=0)


def call_violations() -> int:
    """Return how many stale responses the call running `on_violation` has had (0 outside one)."""
    return VIOLATIONS.get()


class OrderingKV(wrapt.BaseObjectProxy[KV]):
    """A KV whose responses never go back in revision; everything else reaches `kv` unchanged.

    Get, put, delete, txn and do are checked (compact, watches, leases and the rest are
    forwarded as they are). Every attribute kept on the proxy is `_self_`-prefixed, so none
    can hide a method of the object it wraps.
    """

    # Unchecked (it carries no response revision to order), and named so that a KV Protocol check
    # finds it on the proxy itself on every Python: 3.12+ never reach wrapt's forwarding.
    compact = Forwarded()

    def __init__(
        self, kv: KV, on_violation: OnViolation, floor: RevisionFloor | None = None
    ) -> None:
        """Check `kv`'s responses against `floor` (a new one, at 0, by default).

        Several wrappers given one floor check against the highest revision any of them saw.
        """
        super().__init__(kv)
        self._self_floor = RevisionFloor() if floor is None else floor
        self._self_on_violation = on_violation
        # What a plain get calls, looked up once and kept in one attribute: over another layer
        # (a wrapt proxy too) each lookup costs a third of a leasing cache hit.
        self._self_plain_get = (self._self_floor.get, kv.get)

    def _get_checked(self, key: StrOrBytes, **options: Any) -> GetResponse:
        # The fast path (bench/bench_ordering.py): a plain get of one key is sent as the same
        # plain get, so that the layer below may take its own fast path (leasing's cache hit
        # builds no Op); its Op is built only if on_violation needs it. Everything else,
        # `timeout` included, goes through KV.get, which checks every argument.
        raw = key if type(key) is bytes and key and not options else plain_get_key(key, options)
        if raw is None:
            # The Op KV.get builds (Op.get checks every argument), without KV.get's frame.
            timeout = options.pop("timeout", None)  # the call's own dict
            return self.do(Op.get(key, **options), timeout=timeout)
        floor_get, inner_get = self._self_plain_get
        seen = floor_get()  # read once, before sending: other threads may raise it
        response: GetResponse = inner_get(raw)
        revision = response.header.revision
        if revision >= seen:
            if revision > seen:  # equal: the floor is there already, as it only rises
                self._self_floor.raise_to(revision)
            return response
        return cast(GetResponse, self._resend(GetOp(raw), response, seen, None))

    # The KV calls, written once over do() (base.protocols.KV): do() checks them all, and the
    # Op a call builds there is the one `on_violation` is given.
    put, delete, txn = KV.put, KV.delete, KV.txn
    if TYPE_CHECKING:  # what callers are checked against: the Protocol's keywords
        get = KV.get
    else:
        get = _get_checked

    @overload
    def do(self, op: GetOp, *, timeout: float | None = None) -> GetResponse: ...
    @overload
    def do(self, op: PutOp, *, timeout: float | None = None) -> PutResponse: ...
    @overload
    def do(self, op: DeleteOp, *, timeout: float | None = None) -> DeleteResponse: ...
    @overload
    def do(self, op: TxnOp, *, timeout: float | None = None) -> TxnResponse: ...
    @overload
    def do(self, op: Op, *, timeout: float | None = None) -> Response: ...
    def do(self, op: Op, *, timeout: float | None = None) -> Response:
        if not isinstance(op, Op):
            raise TypeError(f"op must be an Op, not {type(op).__name__}")
        # One deadline for every attempt; none to keep when the call has no timeout.
        deadline = None if timeout is None else Deadline(check_timeout(timeout))
        seen = self._self_floor.get()  # read once, before sending: other threads may raise it
        left = None if deadline is None else deadline.remaining()
        response = self.__wrapped__.do(op, timeout=left)
        revision = response.header.revision
        if revision >= seen:
            if revision > seen:  # equal: the floor is there already, as it only rises
                self._self_floor.raise_to(revision)
            return response
        return self._resend(op, response, seen, deadline)

    def _resend(self, op: Op, response: Response, seen: int, deadline: Deadline | None) -> Response:
        """Handle `response`, older than `seen`: ask on_violation, send again until one is not."""
        violations = 0
        while True:
            revision = response.header.revision
            if revision >= seen:
                self._self_floor.raise_to(revision)
                return response
            report_violation(revision, seen)
            error = stale_write_error(op, response, seen)
            if error is not None:
                raise error  # a request that may have written is never sent twice
            violations += 1
            token = VIOLATIONS.set(violations)
            try:
                self._self_on_violation(op, response, seen)  # returns: send again; raises: fail
            finally:
                VIOLATIONS.reset(token)
            left = None if deadline is None else deadline.remaining()
            response = self.__wrapped__.do(op, timeout=left)

    def __enter__(self) -> Self:
        return self  # wrapt forwards __enter__, so `with` would hand out the *inner* object

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<OrderingKV floor={self._self_floor.get()} over {self.__wrapped__!r}>"
