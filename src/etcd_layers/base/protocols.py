"""The Protocols every client and layer speaks: KV (its calls written over do()), Watcher, Lease.

`KV.put`, `get`, `delete` and `txn` are the only spelling of those calls' keywords (besides the
`Op` builders): each builds its Op and hands it to `self.do`. The Client and every layer take
them as they are (`put, get, delete, txn = KV.put, KV.get, KV.delete, KV.txn`) and override
`do` alone, so a new range option is an edit of `Op.get` and its conversion, nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Protocol, overload, runtime_checkable

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


@runtime_checkable
class KV(Protocol, metaclass=KindedProtocolMeta):
    """Reads and writes of keys, single or in transactions."""

    def put(
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
        """Set `key` to `value`.

        Args:
            key: the key (str is UTF-8 encoded).
            value: the value.
            lease: attach the key to this lease (0: none).
            prev_kv: return the key-value pair as it was before.
            ignore_value: keep the current value (the key must exist).
            ignore_lease: keep the current lease (the key must exist).
            timeout: seconds for the whole call; None for the client's default.
        """
        op = Op.put(
            key,
            value,
            lease=lease,
            prev_kv=prev_kv,
            ignore_value=ignore_value,
            ignore_lease=ignore_lease,
        )
        return self.do(op, timeout=timeout)

    def get(
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
        """Read `key`, or the range [key, range_end), every key under `key` (`prefix`) or >= it.

        Args:
            key: the key or the start of the range.
            range_end: the end of the range (exclusive).
            prefix: every key that starts with `key` (all keys if `key` is empty).
            from_key: every key >= `key` (all keys if `key` is empty).
            limit: at most this many keys (0: no limit).
            revision: read the store as of this revision (0: the newest).
            sort_order: the order of the result.
            sort_target: what the result is ordered by.
            serializable: answer from the member's local data, without a quorum read.
            keys_only: leave values out.
            count_only: return only the count.
            min_mod_revision: leave out keys modified before this revision.
            max_mod_revision: leave out keys modified after this revision.
            min_create_revision: leave out keys created before this revision.
            max_create_revision: leave out keys created after this revision.
            timeout: seconds for the whole call; None for the client's default.
        """
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
        return self.do(op, timeout=timeout)

    def delete(
        self,
        key: StrOrBytes,
        *,
        range_end: StrOrBytes | None = None,
        prefix: bool = False,
        from_key: bool = False,
        prev_kv: bool = False,
        timeout: float | None = None,
    ) -> DeleteResponse:
        """Delete `key` or a range of keys (range options as `get`); `prev_kv` returns them."""
        op = Op.delete(key, range_end=range_end, prefix=prefix, from_key=from_key, prev_kv=prev_kv)
        return self.do(op, timeout=timeout)

    def txn(
        self,
        compare: Iterable[Compare] = (),
        success: Iterable[Op] = (),
        failure: Iterable[Op] = (),
        *,
        timeout: float | None = None,
    ) -> TxnResponse:
        """Atomically run `success` if every comparison holds, else `failure`."""
        return self.do(Op.txn(compare, success, failure), timeout=timeout)

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
        """Run one Op and return its response.

        The one KV call a client or layer implements: put, get, delete and txn above build
        their Op and come here.
        """
        ...

    def compact(
        self, revision: int, *, physical: bool = False, timeout: float | None = None
    ) -> CompactResponse:
        """Discard history before `revision`; `physical` waits until it is removed from disk."""
        ...


@runtime_checkable
class Watch(Protocol):
    """A running watch: iterate it for WatchResponses; cancel() ends it."""

    def __iter__(self) -> Iterator[WatchResponse]:
        """Yield responses as they arrive; stop after cancel() or close()."""
        ...

    def next(self, timeout: float | None = None) -> WatchResponse:
        """Return the next response.

        Raises:
            TimeoutError: nothing arrived within `timeout` (the builtin).
            CanceledError: the watch has ended.
        """
        ...

    def cancel(self) -> None:
        """End the watch (idempotent)."""
        ...

    def __enter__(self) -> Watch: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...


@runtime_checkable
class Watcher(Protocol, metaclass=KindedProtocolMeta):
    """Streams of changes to keys."""

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
    ) -> Watch:
        """Watch `key` (range options as `KV.get`); returns once the server confirmed it.

        Args:
            key: the key or the start of the range.
            range_end: the end of the range (exclusive).
            prefix: every key that starts with `key`.
            from_key: every key >= `key`.
            start_revision: replay history from this revision (0: from now on).
            prev_kv: events carry the key-value pair as it was before.
            filter_put: leave put events out.
            filter_delete: leave delete events out.
            progress_notify: receive periodic progress notifications.
            fragment: let the server split large responses (joined again here).
            created_notify: yield the server's confirmation as the first response.
            timeout: seconds to wait for the confirmation.
        """
        ...

    def request_progress(self, *, timeout: float | None = None) -> None:
        """Ask the server for a progress notification on every watch of this client."""
        ...


@runtime_checkable
class KeepAlive(Protocol):
    """A running keep-alive: iterate it for renewals; cancel() stops renewing."""

    def __iter__(self) -> Iterator[LeaseKeepAliveResponse]:
        """Yield renewals as they arrive; stop after cancel() or close()."""
        ...

    def next(self, timeout: float | None = None) -> LeaseKeepAliveResponse:
        """Return the next renewal (as Watch.next)."""
        ...

    def cancel(self) -> None:
        """Stop renewing the lease (idempotent); the lease lives on until its TTL runs out."""
        ...

    def __enter__(self) -> KeepAlive: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...


@runtime_checkable
class Lease(Protocol, metaclass=KindedProtocolMeta):
    """Leases: TTLs that keys can be attached to."""

    def grant(
        self, ttl: int, *, lease_id: int = 0, timeout: float | None = None
    ) -> LeaseGrantResponse:
        """Create a lease of `ttl` seconds (with `lease_id`, or one the server picks)."""
        ...

    def revoke(self, lease_id: int, *, timeout: float | None = None) -> LeaseRevokeResponse:
        """Revoke a lease, deleting every key attached to it."""
        ...

    def time_to_live(
        self, lease_id: int, *, keys: bool = False, timeout: float | None = None
    ) -> LeaseTimeToLiveResponse:
        """Return a lease's remaining TTL (-1 if it does not exist), and its keys if asked."""
        ...

    def leases(self, *, timeout: float | None = None) -> LeaseLeasesResponse:
        """List every lease."""
        ...

    def keep_alive_once(
        self, lease_id: int, *, timeout: float | None = None
    ) -> LeaseKeepAliveResponse:
        """Renew a lease once."""
        ...

    def keep_alive(self, lease_id: int, *, timeout: float | None = None) -> KeepAlive:
        """Keep a lease alive in the background until the returned handle is canceled."""
        ...


@runtime_checkable
class KVWatcherLease(KV, Watcher, Lease, Protocol):
    """All three Protocols and `close`: what the Client and every full layer speak.

    Leasing, `Session` and the recipes take one below them; `namespace.wrap` returns one.
    """

    def close(self) -> None:
        """Release the connections, watches and keep-alives (idempotent)."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...


def speaks_kv_watcher_lease(obj: object) -> bool:
    """Return whether `obj` speaks the KV, Watcher and Lease Protocols (`close` not needed).

    What a layer that uses, but never closes, the object below it checks before any I/O.
    """
    return isinstance(obj, KV) and isinstance(obj, Watcher) and isinstance(obj, Lease)


# The asyncio twins live beside these, in base.async_protocols (this module is at its size
# limit); imported here so that `protocols.AsyncKV` names them too.
from etcd_layers.base.async_protocols import (  # noqa: E402
    AsyncKeepAlive,
    AsyncKV,
    AsyncKVWatcherLease,
    AsyncLease,
    AsyncWatch,
    AsyncWatcher,
    AsyncWatchStart,
)

__all__ = [
    "KV",
    "AsyncKV",
    "AsyncKVWatcherLease",
    "AsyncKeepAlive",
    "AsyncLease",
    "AsyncWatch",
    "AsyncWatchStart",
    "AsyncWatcher",
    "KVWatcherLease",
    "KeepAlive",
    "Lease",
    "Watch",
    "Watcher",
    "speaks_kv_watcher_lease",
]
