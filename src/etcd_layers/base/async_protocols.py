"""The asyncio Protocols: AsyncKV (its calls written over `await do()`), AsyncWatcher, AsyncLease.

The coroutine twins of base.protocols (which re-exports them): `AsyncKV.put`, `get`, `delete`
and `txn` build their Op, checking every argument before any I/O, and await `self.do`. The
AsyncClient and every async layer take them as they are and override `do` alone.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Generator, Iterable
from types import TracebackType
from typing import Any, Protocol, overload, runtime_checkable

from etcd_layers._compat import Self
from etcd_layers.base.compare import Compare
from etcd_layers.base.keys import StrOrBytes
from etcd_layers.base.kinds import KindedProtocolMeta
from etcd_layers.base.ops import DeleteOp, GetOp, Op, PutOp, SortOrder, SortTarget, TxnOp
from etcd_layers.base.responses import (
    CompactResponse,
    DeleteResponse,
    GetResponse,
    LeaseGrantResponse,
    LeaseKeepAliveResponse,
    LeaseLeasesResponse,
    LeaseRevokeResponse,
    LeaseTimeToLiveResponse,
    PutResponse,
    Response,
    TxnResponse,
    WatchResponse,
)

__all__ = [
    "AsyncKV",
    "AsyncKVWatcherLease",
    "AsyncKeepAlive",
    "AsyncLease",
    "AsyncWatch",
    "AsyncWatchStart",
    "AsyncWatcher",
]


@runtime_checkable
class AsyncKV(Protocol, metaclass=KindedProtocolMeta):
    """Reads and writes of keys, as coroutines (the arguments are KV's)."""

    async def put(
        self,
        key: StrOrBytes,
        value: StrOrBytes,
        *,
        lease: int = 0,
        prev_kv: bool = False,
        ignore_value: bool = False,
        ignore_lease: bool = False,
        timeout: float | None = None,
    ) -> PutResponse:
        """Set `key` to `value` (see KV.put)."""
        op = Op.put(
            key,
            value,
            lease=lease,
            prev_kv=prev_kv,
            ignore_value=ignore_value,
            ignore_lease=ignore_lease,
        )
        return await self.do(op, timeout=timeout)

    async def get(
        self,
        key: StrOrBytes,
        *,
        range_end: StrOrBytes | None = None,
        prefix: bool = False,
        from_key: bool = False,
        limit: int = 0,
        revision: int = 0,
        sort_order: SortOrder | None = None,
        sort_target: SortTarget | None = None,
        serializable: bool = False,
        keys_only: bool = False,
        count_only: bool = False,
        min_mod_revision: int = 0,
        max_mod_revision: int = 0,
        min_create_revision: int = 0,
        max_create_revision: int = 0,
        timeout: float | None = None,
    ) -> GetResponse:
        """Read `key` or a range of keys (see KV.get)."""
        op = Op.get(  # checks every argument before any I/O, in every layer alike
            key,
            range_end=range_end,
            prefix=prefix,
            from_key=from_key,
            limit=limit,
            revision=revision,
            sort_order=sort_order,
            sort_target=sort_target,
            serializable=serializable,
            keys_only=keys_only,
            count_only=count_only,
            min_mod_revision=min_mod_revision,
            max_mod_revision=max_mod_revision,
            min_create_revision=min_create_revision,
            max_create_revision=max_create_revision,
        )
        return await self.do(op, timeout=timeout)

    async def delete(
        self,
        key: StrOrBytes,
        *,
        range_end: StrOrBytes | None = None,
        prefix: bool = False,
        from_key: bool = False,
        prev_kv: bool = False,
        timeout: float | None = None,
    ) -> DeleteResponse:
        """Delete `key` or a range of keys (see KV.delete)."""
        op = Op.delete(key, range_end=range_end, prefix=prefix, from_key=from_key, prev_kv=prev_kv)
        return await self.do(op, timeout=timeout)

    async def txn(
        self,
        compare: Iterable[Compare] = (),
        success: Iterable[Op] = (),
        failure: Iterable[Op] = (),
        *,
        timeout: float | None = None,
    ) -> TxnResponse:
        """Atomically run `success` if every comparison holds, else `failure` (see KV.txn)."""
        return await self.do(Op.txn(compare, success, failure), timeout=timeout)

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
        """Run one Op and return its response: the one KV call a speaker implements."""
        ...

    async def compact(
        self, revision: int, *, physical: bool = False, timeout: float | None = None
    ) -> CompactResponse:
        """Discard history before `revision` (see KV.compact)."""
        ...


@runtime_checkable
class AsyncWatch(Protocol):
    """A running watch: `async for` it for WatchResponses; `await cancel()` ends it."""

    def __aiter__(self) -> AsyncIterator[WatchResponse]:
        """Yield responses as they arrive; stop after cancel() or close()."""
        ...

    async def next(self, timeout: float | None = None) -> WatchResponse:
        """Return the next response (as Watch.next); cancelling it cancels only this wait."""
        ...

    async def cancel(self) -> None:
        """End the watch (idempotent)."""
        ...

    async def __aenter__(self) -> AsyncWatch: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...


@runtime_checkable
class AsyncWatchStart(Protocol):
    """What `watch()` returns: awaited, or entered with `async with`, it gives the AsyncWatch."""

    def __await__(self) -> Generator[Any, None, AsyncWatch]: ...

    async def __aenter__(self) -> AsyncWatch: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...


@runtime_checkable
class AsyncWatcher(Protocol, metaclass=KindedProtocolMeta):
    """Streams of changes to keys, for asyncio (the arguments are Watcher's)."""

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
    ) -> AsyncWatchStart:
        """Watch `key` (see Watcher.watch): `w = await cli.watch(...)` or `async with`."""
        ...

    async def request_progress(self, *, timeout: float | None = None) -> None:
        """Ask the server for a progress notification on every watch of this client."""
        ...


@runtime_checkable
class AsyncKeepAlive(Protocol):
    """A running keep-alive: `async for` it for renewals; `await cancel()` stops renewing."""

    def __aiter__(self) -> AsyncIterator[LeaseKeepAliveResponse]:
        """Yield renewals as they arrive; stop after cancel() or close()."""
        ...

    async def next(self, timeout: float | None = None) -> LeaseKeepAliveResponse:
        """Return the next renewal (as Watch.next)."""
        ...

    async def cancel(self) -> None:
        """Stop renewing the lease (idempotent)."""
        ...

    async def __aenter__(self) -> AsyncKeepAlive: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...


@runtime_checkable
class AsyncLease(Protocol, metaclass=KindedProtocolMeta):
    """Leases, as coroutines (the arguments are Lease's)."""

    async def grant(
        self, ttl: int, *, lease_id: int = 0, timeout: float | None = None
    ) -> LeaseGrantResponse:
        """Create a lease of `ttl` seconds (see Lease.grant)."""
        ...

    async def revoke(self, lease_id: int, *, timeout: float | None = None) -> LeaseRevokeResponse:
        """Revoke a lease, deleting every key attached to it."""
        ...

    async def time_to_live(
        self, lease_id: int, *, keys: bool = False, timeout: float | None = None
    ) -> LeaseTimeToLiveResponse:
        """Return a lease's remaining TTL (-1 if it does not exist), and its keys if asked."""
        ...

    async def leases(self, *, timeout: float | None = None) -> LeaseLeasesResponse:
        """List every lease."""
        ...

    async def keep_alive_once(
        self, lease_id: int, *, timeout: float | None = None
    ) -> LeaseKeepAliveResponse:
        """Renew a lease once."""
        ...

    async def keep_alive(self, lease_id: int, *, timeout: float | None = None) -> AsyncKeepAlive:
        """Keep a lease alive in the background until the returned handle is canceled."""
        ...


@runtime_checkable
class AsyncKVWatcherLease(AsyncKV, AsyncWatcher, AsyncLease, Protocol):
    """All three async Protocols and `close`: what the AsyncClient and every full async layer speak.

    `namespace.wrap(acli, prefix)` returns one.
    """

    async def close(self) -> None:
        """Release the connections, watches and keep-alives (idempotent)."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...
