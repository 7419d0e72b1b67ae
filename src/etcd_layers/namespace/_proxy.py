"""The namespace proxies: wrapt shells that translate each call through a key prefix."""

from __future__ import annotations

from collections.abc import Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Final, TypeVar, overload

import wrapt

from etcd_layers._compat import Self
from etcd_layers.base.checks import key_range
from etcd_layers.base.forwarding import Forwarded
from etcd_layers.base.keys import StrOrBytes, plain_get_key, plain_put_items
from etcd_layers.base.ops import DeleteOp, GetOp, Op, PutOp, TxnOp
from etcd_layers.base.protocols import KV, KVWatcherLease, Lease, Watch, Watcher
from etcd_layers.base.responses import (
    DeleteResponse,
    GetResponse,
    LeaseTimeToLiveResponse,
    PutResponse,
    Response,
    TxnResponse,
    WatchResponse,
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

# Methods that carry keys, by the Protocol they belong to. A proxy translates the ones of its
# own Protocols and refuses the others: forwarded, they would reach etcd untranslated.
KV_METHODS: Final = frozenset({"put", "get", "delete", "txn", "do"})
WATCHER_METHODS: Final = frozenset({"watch"})
LEASE_METHODS: Final = frozenset({"time_to_live"})
# Calls outside the Protocols that name keys (role permissions) or hand out keys of every
# namespace (a role's permissions, a snapshot of the whole store). clientv3/namespace never
# wraps the Auth or Maintenance clients; a wrapper forwards everything else, so it refuses these.
NEVER_TRANSLATED: Final = frozenset(
    {"role_grant_permission", "role_revoke_permission", "role_get", "snapshot"}
)


_InnerT = TypeVar("_InnerT")
_KVT = TypeVar("_KVT", bound=KV)
_WatcherT = TypeVar("_WatcherT", bound=Watcher)
_LeaseT = TypeVar("_LeaseT", bound=Lease)


class NamespaceBase(wrapt.BaseObjectProxy[_InnerT]):
    """What every namespace proxy, sync or async, shares: the prefix and the refusals."""

    _refused: ClassVar[frozenset[str]] = NEVER_TRANSLATED
    _made_by: ClassVar[str] = "namespace.wrap"

    def __init__(self, wrapped: _InnerT, prefix: bytes) -> None:
        super().__init__(wrapped)
        self._self_prefix = prefix  # `_self_`: kept on the proxy (`self.prefix` would land on it)

    @property  # type: ignore[misc]  # wrapt's __class__ can be assigned; ours cannot
    def __class__(self) -> type[Self]:
        # wrapt reports the wrapped object's class, which would make `wrap_kv(cli, p)` pass
        # `isinstance(..., Watcher)` while refusing watch(); report the proxy's own class.
        return type(self)

    def __getattr__(self, name: str) -> Any:
        # Only called for names the proxy does not define: everything else is forwarded.
        if name in self._refused:
            raise AttributeError(f"{self._made_by} does not translate {name}")
        return super().__getattr__(name)


class _NamespaceProxy(NamespaceBase[_InnerT]):
    """A sync namespace proxy: a context manager that closes the object it wraps."""

    def __enter__(self) -> Self:
        return self  # wrapt forwards __enter__, so `with` would hand out the *inner* object

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class NamespaceKV(_NamespaceProxy[_KVT]):
    """A KV in which every key lives under one prefix."""

    _refused = WATCHER_METHODS | LEASE_METHODS | NEVER_TRANSLATED
    _made_by = "namespace.wrap_kv"

    # Keyless, so forwarded as they are; named here so that Protocol checks see them (Python
    # 3.12+ look members up statically and never reach wrapt's forwarding __getattr__).
    compact = Forwarded()
    close = Forwarded()

    # The KV calls, written once over do() (base.protocols.KV): do() translates them all.
    delete, txn = KV.delete, KV.txn

    def _get_plain(self, key: StrOrBytes, **options: Any) -> GetResponse:
        # The fast path (bench/bench_namespace.py): a plain get of one key builds its Op once,
        # already translated, instead of the caller's Op and then a translated copy of it.
        raw = plain_get_key(key, options)
        if raw is None:
            # The Op KV.get builds (Op.get checks every argument), without KV.get's frame,
            # which passes all fifteen keywords on: most of what one option costs a layer.
            timeout = options.pop("timeout", None)  # the call's own dict
            return self.do(Op.get(key, **options), timeout=timeout)
        prefix = self._self_prefix
        response: GetResponse = self.__wrapped__.do(GetOp(prefix + raw))
        return unprefix_get(prefix, response)

    def _put_plain(self, key: StrOrBytes, value: StrOrBytes, **options: Any) -> PutResponse:
        # The same fast path for a put with no option (bench/bench_namespace.py).
        items = plain_put_items(key, value, options)
        if items is None:
            timeout = options.pop("timeout", None)  # as in _get_plain
            return self.do(Op.put(key, value, **options), timeout=timeout)
        prefix = self._self_prefix
        response: PutResponse = self.__wrapped__.do(PutOp(prefix + items[0], items[1]))
        return unprefix_put(prefix, response)

    if TYPE_CHECKING:  # what callers are checked against: the Protocol's keywords
        get, put = KV.get, KV.put
    else:
        get, put = _get_plain, _put_plain

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
        prefix = self._self_prefix
        translated = prefix_op(prefix, op)  # raises TypeError for a foreign op, before any I/O
        return unprefix_response(prefix, self.__wrapped__.do(translated, timeout=timeout))


class NamespaceWatch(wrapt.BaseObjectProxy[Watch]):
    """A running watch whose responses have the namespace's prefix cut from every key.

    Unlike clientv3's watcherPrefix, an event of a key outside the prefix is dropped instead of
    being cut blindly (a translated watch never receives one).
    """

    def __init__(self, watch: Watch, prefix: bytes) -> None:
        super().__init__(watch)
        self._self_prefix = prefix

    cancel = Forwarded()

    def __iter__(self) -> Iterator[WatchResponse]:
        prefix = self._self_prefix
        for response in self.__wrapped__:
            yield unprefix_watch_response(prefix, response)

    def next(self, timeout: float | None = None) -> WatchResponse:
        return unprefix_watch_response(self._self_prefix, self.__wrapped__.next(timeout))

    def __enter__(self) -> Self:
        return self  # not the inner watch, whose responses are untranslated

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.cancel()


class NamespaceWatcher(_NamespaceProxy[_WatcherT]):
    """A Watcher that watches keys under one prefix and reports them without it."""

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
    ) -> Watch:
        # Resolved as Op.get resolves a range, so the same arguments are refused the same way;
        # the inner watcher checks the remaining options before any I/O. "All keys" starts at
        # prefix + b"\x00" as the KV calls do (clientv3's watcherPrefix starts it at the prefix).
        begin, end = prefix_range(self._self_prefix, *key_range(key, range_end, prefix, from_key))
        watch = self.__wrapped__.watch(
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
        return NamespaceWatch(watch, self._self_prefix)


class NamespaceLease(_NamespaceProxy[_LeaseT]):
    """A Lease whose key listings (`time_to_live(keys=True)`) only show keys under one prefix."""

    _refused = KV_METHODS | WATCHER_METHODS | NEVER_TRANSLATED
    _made_by = "namespace.wrap_lease"

    # Keyless; named for Protocol checks, as in NamespaceKV.
    grant = Forwarded()
    revoke = Forwarded()
    leases = Forwarded()
    keep_alive_once = Forwarded()
    keep_alive = Forwarded()
    close = Forwarded()

    def time_to_live(
        self, lease_id: int, *, keys: bool = False, timeout: float | None = None
    ) -> LeaseTimeToLiveResponse:
        response = self.__wrapped__.time_to_live(lease_id, keys=keys, timeout=timeout)
        return unprefix_time_to_live(self._self_prefix, response)


class NamespaceClient(
    NamespaceKV[KVWatcherLease],
    NamespaceWatcher[KVWatcherLease],
    NamespaceLease[KVWatcherLease],
):
    """A KV, Watcher and Lease in which every key lives under one prefix."""

    _refused = NEVER_TRANSLATED
    _made_by = "namespace.wrap"
