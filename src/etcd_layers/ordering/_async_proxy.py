"""AsyncOrderingKV: the asyncio twin of OrderingKV, checking each awaited response's revision."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, cast, overload

import wrapt

from etcd_layers._compat import Self
from etcd_layers.base.checks import check_timeout
from etcd_layers.base.deadline import Deadline
from etcd_layers.base.forwarding import Forwarded
from etcd_layers.base.keys import StrOrBytes, plain_get_key
from etcd_layers.base.ops import DeleteOp, GetOp, Op, PutOp, TxnOp
from etcd_layers.base.protocols import AsyncKV
from etcd_layers.base.responses import (
    DeleteResponse,
    GetResponse,
    PutResponse,
    Response,
    TxnResponse,
)
from etcd_layers.ordering._floor import RevisionFloor
from etcd_layers.ordering._proxy import VIOLATIONS, OnViolation
from etcd_layers.ordering._report import report_violation
from etcd_layers.ordering._rule import stale_write_error

# The funnel's get, which checks every keyword, for what the fast path does not take.


class AsyncOrderingKV(wrapt.BaseObjectProxy[AsyncKV]):
    """An AsyncKV whose responses never go back in revision; everything else is forwarded.

    As OrderingKV: get, put, delete, txn and do are checked, a request that may write is never
    sent again, and `on_violation` (a plain or an async callable, awaited when it returns an
    awaitable) decides whether a stale read is. The per-call violation count that
    `call_violations()` reports lives in a ContextVar, so each task has its own.
    """

    compact = Forwarded()  # unchecked, and named for Protocol checks (see OrderingKV)

    def __init__(
        self, kv: AsyncKV, on_violation: OnViolation, floor: RevisionFloor | None = None
    ) -> None:
        """Check `kv`'s responses against `floor` (a new one, at 0, by default).

        A floor may be shared with other wrappers, sync or async, on any thread.
        """
        super().__init__(kv)
        self._self_floor = RevisionFloor() if floor is None else floor
        self._self_on_violation = on_violation
        self._self_plain_get = (self._self_floor.get, kv.get)  # looked up once, as OrderingKV's

    async def _get_checked(self, key: StrOrBytes, **options: Any) -> GetResponse:
        # The fast path, as OrderingKV's: a plain get is sent as the same plain get (the layer
        # below may serve it from its cache), and its Op is built only for on_violation.
        raw = key if type(key) is bytes and key and not options else plain_get_key(key, options)
        if raw is None:
            timeout = options.pop("timeout", None)  # the Op AsyncKV.get builds, as OrderingKV's
            return await self.do(Op.get(key, **options), timeout=timeout)
        floor_get, inner_get = self._self_plain_get
        seen = floor_get()  # read once, before sending: other tasks may raise it
        response: GetResponse = await inner_get(raw)
        revision = response.header.revision
        if revision >= seen:
            if revision > seen:  # equal: the floor is there already, as it only rises
                self._self_floor.raise_to(revision)
            return response
        return cast(GetResponse, await self._resend(GetOp(raw), response, seen, None))

    # The KV calls, written once over `await do()` (base.async_protocols.AsyncKV): do() checks
    # them all, and the Op a call builds there is the one `on_violation` is given.
    put, delete, txn = AsyncKV.put, AsyncKV.delete, AsyncKV.txn
    if TYPE_CHECKING:  # what callers are checked against: the Protocol's keywords
        get = AsyncKV.get
    else:
        get = _get_checked

    @overload
    async def do(self, op: GetOp, *, timeout: float | None = None) -> GetResponse: ...
    @overload
    async def do(self, op: PutOp, *, timeout: float | None = None) -> PutResponse: ...
    @overload
    async def do(self, op: DeleteOp, *, timeout: float | None = None) -> DeleteResponse: ...
    @overload
    async def do(self, op: TxnOp, *, timeout: float | None = None) -> TxnResponse: ...
    @overload
    async def do(self, op: Op, *, timeout: float | None = None) -> Response: ...
    async def do(self, op: Op, *, timeout: float | None = None) -> Response:
        if not isinstance(op, Op):
            raise TypeError(f"op must be an Op, not {type(op).__name__}")
        # One deadline for every attempt; none to keep when the call has no timeout.
        deadline = None if timeout is None else Deadline(check_timeout(timeout))
        seen = self._self_floor.get()  # read once, before sending: other tasks may raise it
        left = None if deadline is None else deadline.remaining()
        response = await self.__wrapped__.do(op, timeout=left)
        revision = response.header.revision
        if revision >= seen:
            if revision > seen:  # equal: the floor is there already, as it only rises
                self._self_floor.raise_to(revision)
            return response
        return await self._resend(op, response, seen, deadline)

    async def _resend(
        self, op: Op, response: Response, seen: int, deadline: Deadline | None
    ) -> Response:
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
                verdict = self._self_on_violation(op, response, seen)  # returns: send again
                if inspect.isawaitable(verdict):  # an async policy; raising fails the call
                    await verdict
            finally:
                VIOLATIONS.reset(token)
            left = None if deadline is None else deadline.remaining()
            response = await self.__wrapped__.do(op, timeout=left)

    async def __aenter__(self) -> Self:
        return self  # wrapt forwards __aenter__, so `async with` would hand out the inner object

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<AsyncOrderingKV floor={self._self_floor.get()} over {self.__wrapped__!r}>"
