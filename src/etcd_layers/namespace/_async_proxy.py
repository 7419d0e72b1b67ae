"""The asyncio namespace proxies: the same translation as the sync ones, around awaited calls."""

from __future__ import annotations

from collections.abc import AsyncIterator, Generator
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, overload

import wrapt

from etcd_layers._compat import Self
from etcd_layers.base.checks import key_range
from etcd_layers.base.forwarding import Forwarded
from etcd_layers.base.keys import StrOrBytes, plain_get_key, plain_put_items
from etcd_layers.base.ops import DeleteOp, GetOp, Op, PutOp, TxnOp
from etcd_layers.base.protocols import (
    AsyncKV,
    AsyncKVWatcherLease,
    AsyncLease,
    AsyncWatch,
    AsyncWatcher,
    AsyncWatchStart,
)
from etcd_layers.base.responses import (
    DeleteResponse,
    GetResponse,
    LeaseTimeToLiveResponse,
    PutResponse,
    Response,
    TxnResponse,
    WatchResponse,
)
from etcd_layers.namespace._proxy import (
    KV_METHODS,
    LEASE_METHODS,
    NEVER_TRANSLATED,
    WATCHER_METHODS,
    NamespaceBase,
)
from etcd_layers.namespace._translate import (
    prefix_op,
    prefix_range,
    unprefix_get,
    unprefix_put,
    unprefix_response,
    unprefix_time_to_live,
    unprefix_watch_response,
)

_InnerT = TypeVar("_InnerT")
_AsyncKVT = TypeVar("_AsyncKVT", bound=AsyncKV)
_AsyncWatcherT = TypeVar("_AsyncWatcherT", bound=AsyncWatcher)
_AsyncLeaseT = TypeVar("_AsyncLeaseT", bound=AsyncLease)


class _AsyncNamespaceProxy(NamespaceBase[_InnerT]):
    """An async namespace proxy: an async context manager that closes the object it wraps."""

    async def __aenter__(self) -> Self:
        return self  # wrapt forwards __aenter__, so `async with` would hand out the inner object

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()


class AsyncNamespaceKV(_AsyncNamespaceProxy[_AsyncKVT]):
    """An AsyncKV in which every key lives under one prefix."""

    _refused = WATCHER_METHODS | LEASE_METHODS | NEVER_TRANSLATED
    _made_by = "namespace.wrap_kv"

    # Keyless, so forwarded as they are; named for Protocol checks (see NamespaceKV).
    compact = Forwarded()
    close = Forwarded()

    # The KV calls, written once over `await do()` (base.async_protocols.AsyncKV).
    delete, txn = AsyncKV.delete, AsyncKV.txn

    async def _get_plain(self, key: StrOrBytes, **options: Any) -> GetResponse:
        # The fast path, as NamespaceKV's: a plain get of one key builds its Op once, translated.
        raw = plain_get_key(key, options)
        if raw is None:
            timeout = options.pop("timeout", None)  # as NamespaceKV's: the Op AsyncKV.get builds
            return await self.do(Op.get(key, **options), timeout=timeout)
        prefix = self._self_prefix
        response: GetResponse = await self.__wrapped__.do(GetOp(prefix + raw))
        return unprefix_get(prefix, response)

    async def _put_plain(self, key: StrOrBytes, value: StrOrBytes, **options: Any) -> PutResponse:
        # The same fast path for a put with no option, as NamespaceKV's.
        items = plain_put_items(key, value, options)
        if items is None:
            timeout = options.pop("timeout", None)
            return await self.do(Op.put(key, value, **options), timeout=timeout)
        prefix = self._self_prefix
        response: PutResponse = await self.__wrapped__.do(PutOp(prefix + items[0], items[1]))
        return unprefix_put(prefix, response)

    if TYPE_CHECKING:  # what callers are checked against: the Protocol's keywords
        get, put = AsyncKV.get, AsyncKV.put
    else:
        get, put = _get_plain, _put_plain

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
        prefix = self._self_prefix
        translated = prefix_op(prefix, op)  # raises TypeError for a foreign op, before any I/O
        return unprefix_response(prefix, await self.__wrapped__.do(translated, timeout=timeout))


class AsyncNamespaceWatch(wrapt.BaseObjectProxy[AsyncWatch]):
    """A running async watch whose responses have the namespace's prefix cut from every key.

    As NamespaceWatch, an event of a key outside the prefix is dropped.
    """

    def __init__(self, watch: AsyncWatch, prefix: bytes) -> None:
        super().__init__(watch)
        self._self_prefix = prefix

    cancel = Forwarded()

    async def __aiter__(self) -> AsyncIterator[WatchResponse]:
        prefix = self._self_prefix
        async for response in self.__wrapped__:
            yield unprefix_watch_response(prefix, response)

    async def next(self, timeout: float | None = None) -> WatchResponse:
        return unprefix_watch_response(self._self_prefix, await self.__wrapped__.next(timeout))

    async def __aenter__(self) -> Self:
        return self  # not the inner watch, whose responses are untranslated

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.cancel()


class AsyncNamespaceWatchStart:
    """What `AsyncNamespaceWatcher.watch()` returns: awaited or entered, an AsyncNamespaceWatch."""

    __slots__ = ("_prefix", "_start")

    def __init__(self, start: AsyncWatchStart, prefix: bytes) -> None:
        self._start = start
        self._prefix = prefix

    async def _started(self) -> AsyncNamespaceWatch:
        return AsyncNamespaceWatch(await self._start, self._prefix)

    def __await__(self) -> Generator[Any, None, AsyncNamespaceWatch]:
        return self._started().__await__()

    async def __aenter__(self) -> AsyncNamespaceWatch:
        return AsyncNamespaceWatch(await self._start.__aenter__(), self._prefix)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._start.__aexit__(exc_type, exc, traceback)


class AsyncNamespaceWatcher(_AsyncNamespaceProxy[_AsyncWatcherT]):
    """An AsyncWatcher that watches keys under one prefix and reports them without it."""

    _refused = KV_METHODS | LEASE_METHODS | NEVER_TRANSLATED
    _made_by = "namespace.wrap_watcher"

    request_progress = Forwarded()  # keyless; named for Protocol checks, as in NamespaceKV
    close = Forwarded()

    def watch(
        self,
        key: StrOrBytes,
        *,
        range_end: StrOrBytes | None = None,
        prefix: bool = False,
        from_key: bool = False,
        start_revision: int = 0,
        prev_kv: bool = False,
        filter_put: bool = False,
        filter_delete: bool = False,
        progress_notify: bool = False,
        fragment: bool = False,
        created_notify: bool = False,
        timeout: float | None = None,
    ) -> AsyncNamespaceWatchStart:
        # The range is resolved and translated here, when watch() is called, as
        # NamespaceWatcher.watch does: bad arguments raise before anything is awaited.
        begin, end = prefix_range(self._self_prefix, *key_range(key, range_end, prefix, from_key))
        start = self.__wrapped__.watch(
            begin,
            range_end=end or None,
            start_revision=start_revision,
            prev_kv=prev_kv,
            filter_put=filter_put,
            filter_delete=filter_delete,
            progress_notify=progress_notify,
            fragment=fragment,
            created_notify=created_notify,
            timeout=timeout,
        )
        return AsyncNamespaceWatchStart(start, self._self_prefix)


class AsyncNamespaceLease(_AsyncNamespaceProxy[_AsyncLeaseT]):
    """An AsyncLease whose key listings only show keys under one prefix."""

    _refused = KV_METHODS | WATCHER_METHODS | NEVER_TRANSLATED
    _made_by = "namespace.wrap_lease"

    # Keyless; named for Protocol checks, as in NamespaceKV.
    grant = Forwarded()
    revoke = Forwarded()
    leases = Forwarded()
    keep_alive_once = Forwarded()
    keep_alive = Forwarded()
    close = Forwarded()

    async def time_to_live(
        self, lease_id: int, *, keys: bool = False, timeout: float | None = None
    ) -> LeaseTimeToLiveResponse:
        response = await self.__wrapped__.time_to_live(lease_id, keys=keys, timeout=timeout)
        return unprefix_time_to_live(self._self_prefix, response)


class AsyncNamespaceClient(
    AsyncNamespaceKV[AsyncKVWatcherLease],
    AsyncNamespaceWatcher[AsyncKVWatcherLease],
    AsyncNamespaceLease[AsyncKVWatcherLease],
):
    """An AsyncKV, AsyncWatcher and AsyncLease in which every key lives under one prefix."""

    _refused = NEVER_TRANSLATED
    _made_by = "namespace.wrap"
