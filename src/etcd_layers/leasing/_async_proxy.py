"""AsyncLeasingKV: the asyncio shell of a leasing client, on the same flows, evaluation and cache.

Every decision is the sync shell's: the flows of `_protocol` (driven here with `await do()`),
`_evaluate` and the cache. The cache's lock is only taken inside its calls, none of which
awaits, so it is never held across an await.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar, overload, runtime_checkable

import wrapt

from etcd_layers._compat import Self
from etcd_layers.base.async_protocols import AsyncKV, AsyncKVWatcherLease
from etcd_layers.base.async_waiting import wait_deleted as async_wait_deleted
from etcd_layers.base.checks import check_timeout
from etcd_layers.base.deadline import Deadline
from etcd_layers.base.forwarding import Forwarded
from etcd_layers.base.keys import StrOrBytes
from etcd_layers.base.ops import DeleteOp, GetOp, Op, PutOp, TxnOp
from etcd_layers.base.responses import (
    DeleteResponse,
    GetResponse,
    PutResponse,
    Response,
    TxnResponse,
)
from etcd_layers.errors import LeaseNotFoundError, UnavailableError
from etcd_layers.leasing._async_session import AsyncLeasingBackend, AsyncOwnership
from etcd_layers.leasing._cache import LeaseCache
from etcd_layers.leasing._entry import Lookup
from etcd_layers.leasing._evaluate import answer_get, answerable, evaluate_txn, txn_keys
from etcd_layers.leasing._protocol import (
    Acquired,
    Flow,
    WaitForDeletes,
    acquire,
    guarded_write,
    probe_ops,
    read_probe,
    written_keys,
)
from etcd_layers.leasing._served import op_view, options_view
from etcd_layers.leasing._stats import LeasingStats

__all__ = ["AsyncLeasingClient", "AsyncLeasingKV"]

_T = TypeVar("_T")
_R = TypeVar("_R", bound=Response)

_ASYNC_KV_GET: Final[Callable[..., Coroutine[Any, Any, GetResponse]]] = AsyncKV.get


@runtime_checkable
class AsyncLeasingClient(AsyncKVWatcherLease, Protocol):
    """What `await leasing.wrap(acli, ...)` returns: an AsyncKV that forwards Watcher and Lease."""

    @property
    def stats(self) -> LeasingStats:
        """A snapshot of the leasing client's counters."""
        ...

    @property
    def session_lease_id(self) -> int:
        """The session lease the leasing keys are attached to (0 while there is none)."""
        ...

    async def close(self) -> None:
        """Give up every leasing key and end the session; the client underneath stays open."""
        ...


class AsyncLeasingKV(wrapt.BaseObjectProxy[AsyncLeasingBackend]):
    """An AsyncKV that serves the keys it owns from memory (see `leasing.wrap`).

    Made by `open()` (which `leasing.wrap` awaits for an async speaker), not by the
    constructor alone: the session must exist before memory may answer.
    """

    __getattribute__ = object.__getattribute__  # a third of wrapt's cost (see LeasingKV)

    # Forwarded as they are; named for Protocol checks (see LeasingKV).
    compact = Forwarded()
    watch = Forwarded()
    request_progress = Forwarded()
    grant = Forwarded()
    revoke = Forwarded()
    time_to_live = Forwarded()
    leases = Forwarded()
    keep_alive_once = Forwarded()
    keep_alive = Forwarded()

    def __init__(
        self, backend: AsyncLeasingBackend, prefix: bytes, *, ttl: int, max_keys: int | None
    ) -> None:
        super().__init__(backend)
        self._self_backend = backend  # the same object as __wrapped__, typed
        self._self_prefix = prefix
        ready = asyncio.Event()
        # Only ever called on the event loop (every cache call is made there), so setting an
        # asyncio.Event, which is not thread-safe, is safe.
        self._self_cache = LeaseCache(max_keys, on_release=ready.set)
        self._self_plain = self._self_cache.published.plain  # the lock-free reads of a hit
        self._self_view = self._self_cache.published.view
        self._self_ownership = AsyncOwnership(backend, self._self_cache, ready, prefix, ttl)

    async def open(self, timeout: float | None) -> Self:
        """Set up the session lease and the watch of the leasing prefix; return self."""
        try:
            await self._self_ownership.start(timeout)
        except BaseException:
            await self._self_ownership.stop(revoke=True)
            raise
        return self

    @property  # type: ignore[misc]  # wrapt's __class__ can be assigned; ours cannot
    def __class__(self) -> type[Self]:
        return type(self)  # as LeasingKV: not an instance of the wrapped client's class

    # --- lifecycle -----------------------------------------------------------------------

    @property
    def stats(self) -> LeasingStats:
        """A snapshot of this client's counters (hits, misses, acquisitions, revocations ...)."""
        return self._self_cache.stats()

    @property
    def session_lease_id(self) -> int:
        """The session lease our leasing keys are attached to (0 while there is none)."""
        return self._self_ownership.lease_id

    async def close(self) -> None:
        """Give up every leasing key and stop caching (see LeasingKV.close); idempotent."""
        await self._self_ownership.stop(revoke=True)

    async def __aenter__(self) -> Self:
        return self  # wrapt forwards __aenter__, so `async with` would hand out the inner client

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    # --- KV ------------------------------------------------------------------------------

    # The KV calls, written once over `await do()` (base.async_protocols.AsyncKV).
    put, delete, txn = AsyncKV.put, AsyncKV.delete, AsyncKV.txn

    async def _get_served(self, key: StrOrBytes, **options: object) -> GetResponse:
        # The fast path, as LeasingKV's: a get of an owned key with no option, or only
        # serializable, keys_only and timeout, is one lock-free lookup of a published answer.
        raw = key if type(key) is bytes else key.encode() if type(key) is str else b""
        if not options:
            response = self._self_plain(raw)
            keys_only: bool | None = False
        else:
            keys_only = options_view(options)
            response = None if keys_only is None else self._self_view(raw, keys_only)
        if response is None and keys_only is not None and raw:
            response = self._self_cache.lookup(raw, keys_only)  # unpublished: under the lock
        if response is not None:
            return response
        return await _ASYNC_KV_GET(self, key, **options)

    if TYPE_CHECKING:
        get = AsyncKV.get  # what callers are checked against: the Protocol's keywords
    else:
        get = _get_served

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
        if timeout is not None:
            timeout = check_timeout(timeout)
        if type(op) is GetOp and (keys_only := op_view(op)) is not None:
            # The shared answers first, as in get(): published, else under the lock.
            response = self._self_view(op.key, keys_only)
            if response is None:
                response = self._self_cache.lookup(op.key, keys_only)
            if response is not None:
                return response
        if isinstance(op, GetOp):
            return await self._get(op, timeout)
        if isinstance(op, TxnOp):
            return await self._txn(op, timeout)
        if isinstance(op, (PutOp, DeleteOp)):
            return await self._write(op, timeout)
        raise TypeError(f"op must be an Op built by Op.get/put/delete/txn, not {type(op).__name__}")

    # --- reads (LeasingKV's decisions, awaited) ------------------------------------------

    async def _get(self, op: GetOp, timeout: float | None) -> GetResponse:
        deadline = Deadline(timeout)
        cache = self._self_cache
        if not answerable(op):  # ranges, past revisions and counts are the server's
            cache.count_miss()
            return _expect(await self._send(op, deadline), GetResponse)
        found, answer = cache.answer(op)
        if answer is not None:
            return answer
        if found is Lookup.HELD or op.serializable:
            return _expect(await self._send(op, deadline), GetResponse)
        lease_id = cache.may_acquire(op.key)
        if not lease_id:
            return _expect(await self._send(op, deadline), GetResponse)
        acquired = await self._acquire(op.key, lease_id, deadline)
        return answer_get(op, acquired.kv, acquired.response.header)

    async def _acquire(self, key: bytes, lease_id: int, deadline: Deadline) -> Acquired:
        cache = self._self_cache
        try:
            acquired = await self._drive(acquire(self._self_prefix, key, lease_id), deadline)
        except LeaseNotFoundError:
            self._self_ownership.lost(lease_id)
            acquired = await self._probe(key, 0, deadline)
        except UnavailableError:
            # Never sent twice (it writes): a read tells whether we hold the key after all.
            acquired = await self._probe(key, lease_id, deadline)
        if acquired.acquired:
            cache.add(key, acquired, lease_id)  # refused means released, and answered anyway
        elif acquired.held:
            cache.release_unless_cached(key, acquired.incarnation)
        return acquired

    async def _probe(self, key: bytes, lease_id: int, deadline: Deadline) -> Acquired:
        read_key, read_holder = probe_ops(self._self_prefix, key)
        got = _expect(await self._send(read_key, deadline), GetResponse)
        holder = _expect(await self._send(read_holder, deadline), GetResponse)
        return read_probe(got, holder, lease_id)

    async def _txn(self, op: TxnOp, timeout: float | None) -> TxnResponse:
        cache = self._self_cache
        keys = txn_keys(op)
        snapshot = cache.snapshot(keys) if keys else None
        if snapshot is not None:
            answer = evaluate_txn(op, *snapshot)
            if answer is not None:
                cache.count_hit()
                return answer
        if op.is_write:
            return _expect(await self._write(op, timeout), TxnResponse)
        cache.count_miss()
        return _expect(await self._send(op, Deadline(timeout)), TxnResponse)

    # --- writes --------------------------------------------------------------------------

    async def _write(self, op: PutOp | DeleteOp | TxnOp, timeout: float | None) -> Response:
        deadline = Deadline(timeout)
        cache = self._self_cache
        keys, ranges = written_keys(op)
        ticket = cache.begin_writes(keys, ranges)
        flow = guarded_write(self._self_prefix, ticket.lease_id, op, ticket.owned, ticket.refresh)
        try:
            written = await self._drive(flow, deadline)
        except BaseException:
            # Unknown outcome (a cancelled task included): the keys it covered are given back.
            cache.end_writes(ticket, None)
            raise
        cache.end_writes(ticket, written)
        return written.response

    # --- driving flows -------------------------------------------------------------------

    async def _send(self, op: Op, deadline: Deadline) -> Response:
        response = await self._self_backend.do(op, timeout=deadline.remaining())
        self._self_cache.raise_floor(response.header.revision)
        return response

    async def _drive(self, flow: Flow[_T], deadline: Deadline) -> _T:
        try:
            step = next(flow)
            while True:
                if isinstance(step, WaitForDeletes):
                    for key in sorted(step.keys):
                        # False (compacted) needs nothing: the flow looks at the key again.
                        await async_wait_deleted(self._self_backend, key, step.revision, deadline)
                    step = flow.send(None)
                else:
                    step = flow.send(await self._send(step, deadline))
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]  # the flow's declared result


def _expect(response: Response, kind: type[_R]) -> _R:
    if not isinstance(response, kind):
        raise TypeError(f"expected a {kind.__name__}, got a {type(response).__name__}")
    return response
