r"""Key namespaces: a client that sees, and can touch, only the keys under one prefix.

Wrap a client, and every key, range, comparison and watch goes through the prefix, while
every key that comes back has it cut off. Nothing outside the prefix can be read, written,
watched or listed through the wrapper:

>>> from etcd_layers import Client, Compare, Op, namespace
>>> cli = Client(endpoints=["127.0.0.1:2379"])
>>> tenant = namespace.wrap(cli, "/tenant-a/")
>>> tenant.put("config", "v1").header.revision > 0
True
>>> cli.get("/tenant-a/config").kvs[0].value          # where it really lives
b'v1'
>>> [kv.key for kv in tenant.get("", prefix=True).kvs]  # "all keys" means the tenant's
[b'config']

Transactions, their comparisons (over ranges too) and nested ops are translated alike:

>>> response = tenant.txn(
...     compare=[Compare.version("config") == 1],
...     success=[Op.put("config", "v2", prev_kv=True), Op.get("", prefix=True)],
... )
>>> response.succeeded, response.responses[0].prev_kv.key, response.responses[1].kvs[0].value
(True, b'config', b'v2')

Watches report the tenant's keys, with `prev_kv` translated too:

>>> with tenant.watch("config", prev_kv=True) as watch:
...     _ = tenant.delete("config")
...     event = watch.next(timeout=5).events[0]
>>> event.type.name, event.kv.key, event.prev_kv.value
('DELETE', b'config', b'v2')

Leases are shared, but a lease's key listing only shows the tenant's keys:

>>> lease = tenant.grant(60).id
>>> _ = tenant.put("session", "", lease=lease)
>>> _ = cli.put("/tenant-b/session", "", lease=lease)
>>> tenant.time_to_live(lease, keys=True).keys
[b'session']
>>> _ = tenant.revoke(lease)

Layers stack. A namespace inside a namespace is the concatenated prefix, and the other
layers wrap a namespace like any other client (put `ordering` outermost, so that it checks
what the layers below return); calls that carry no key (`close`, `endpoints`, `grant`,
`compact`, ...) pass through every layer to the client:

>>> from etcd_layers import ordering
>>> team = ordering.wrap(namespace.wrap(tenant, "team-1/"))
>>> _ = team.put("job", "run")
>>> tenant.get("team-1/job").kvs[0].value, cli.get("/tenant-a/team-1/job").kvs[0].value
(b'run', b'run')
>>> team.get("", prefix=True).kvs[0].key
b'job'
>>> team.endpoints == cli.endpoints
True
>>> with team:          # closes the client underneath
...     _ = team.delete("", prefix=True)

`wrap_kv`, `wrap_watcher` and `wrap_lease` translate one Protocol each, as clientv3's
`namespace.NewKV`, `NewWatcher` and `NewLease` do, and refuse (AttributeError) the key-bearing
calls of the others instead of forwarding them untranslated. Every wrapper also refuses
`role_grant_permission`, `role_revoke_permission`, `role_get` and `snapshot`, which name or
hand out keys of every namespace; the other administration calls pass through.

Unlike clientv3, a prefix ending in 0xff bytes never lets a range carry past the namespace:
the keys under b"a\xff" end at b"b", where clientv3 would admit key b"b" itself.

An AsyncClient, or any async layer (whose Protocol methods are coroutine functions), gets an
async namespace with the same translation: `namespace.wrap(acli, "/tenant-a/")` is an
`AsyncNamespaceClient`, whose calls are awaited (`await tenant.get("config")`) and whose
watches give translated responses in `async for` and `await watch.next()`.
"""

from __future__ import annotations

from typing import cast, overload

from etcd_layers.base.keys import StrOrBytes, to_bytes
from etcd_layers.base.kinds import speaks_asyncio
from etcd_layers.base.protocols import (
    KV,
    AsyncKV,
    AsyncKVWatcherLease,
    AsyncLease,
    AsyncWatcher,
    KVWatcherLease,
    Lease,
    Watcher,
)
from etcd_layers.namespace._async_proxy import (
    AsyncNamespaceClient,
    AsyncNamespaceKV,
    AsyncNamespaceLease,
    AsyncNamespaceWatch,
    AsyncNamespaceWatcher,
    AsyncNamespaceWatchStart,
)
from etcd_layers.namespace._proxy import (
    NamespaceClient,
    NamespaceKV,
    NamespaceLease,
    NamespaceWatch,
    NamespaceWatcher,
)

__all__ = [
    "AsyncNamespaceClient",
    "AsyncNamespaceKV",
    "AsyncNamespaceLease",
    "AsyncNamespaceWatch",
    "AsyncNamespaceWatchStart",
    "AsyncNamespaceWatcher",
    "KVWatcherLease",
    "NamespaceClient",
    "NamespaceKV",
    "NamespaceLease",
    "NamespaceWatch",
    "NamespaceWatcher",
    "wrap",
    "wrap_kv",
    "wrap_lease",
    "wrap_watcher",
]


def _checked_prefix(prefix: object) -> bytes:
    raw = to_bytes(prefix, name="prefix")
    if not raw:
        raise ValueError("prefix must not be empty (an empty namespace is the whole keyspace)")
    return raw


def _check_speaks(wrapped: object, name: str, methods: tuple[str, ...]) -> None:
    for method in methods:
        if not callable(getattr(wrapped, method, None)):
            raise TypeError(
                f"{name} must provide {method}() to be namespaced, "
                f"but {type(wrapped).__name__} does not"
            )


@overload
def wrap(client: AsyncKVWatcherLease, prefix: StrOrBytes) -> AsyncKVWatcherLease: ...
@overload
def wrap(client: KVWatcherLease, prefix: StrOrBytes) -> KVWatcherLease: ...
def wrap(
    client: KVWatcherLease | AsyncKVWatcherLease, prefix: StrOrBytes
) -> KVWatcherLease | AsyncKVWatcherLease:
    """Return `client` as a KV, Watcher and Lease that live under `prefix`.

    Args:
        client: the Client, another layer, or anything speaking the three Protocols; an
            AsyncClient or async layer (whose Protocol methods are coroutine functions) gets
            an `AsyncNamespaceClient`, an AsyncKV, AsyncWatcher and AsyncLease.
        prefix: the namespace (str is UTF-8 encoded); must not be empty.

    Returns:
        A `NamespaceClient`, typed as the Protocols it speaks. As for every layer's `wrap`,
        `isinstance` answers what the type says: the result is a KV, Watcher, Lease and
        KVWatcherLease, but not an instance of `client`'s class, some of whose calls it
        refuses (`wrap_kv`'s result is a KV and nothing more). Only `ordering.wrap`, typed as
        what it wraps, is also an instance of the wrapped class.

    Raises:
        TypeError: `prefix` is not str or bytes, or `client` lacks do, watch or time_to_live.
        ValueError: `prefix` is empty.
    """
    raw = _checked_prefix(prefix)
    _check_speaks(client, "client", ("do", "watch", "time_to_live"))
    if speaks_asyncio(client):
        return AsyncNamespaceClient(cast(AsyncKVWatcherLease, client), raw)
    return NamespaceClient(cast(KVWatcherLease, client), raw)


@overload
def wrap_kv(kv: AsyncKV, prefix: StrOrBytes) -> AsyncKV: ...
@overload
def wrap_kv(kv: KV, prefix: StrOrBytes) -> KV: ...
def wrap_kv(kv: KV | AsyncKV, prefix: StrOrBytes) -> KV | AsyncKV:
    """Return `kv` as a KV under `prefix` (clientv3's `namespace.NewKV`); async for an AsyncKV.

    The result refuses `watch` and `time_to_live`: use `wrap` or `wrap_watcher`/`wrap_lease`.
    It is typed KV, and `isinstance` agrees: a KV (and a `NamespaceKV`), not a Watcher or Lease.

    Raises:
        TypeError: `prefix` is not str or bytes, or `kv` has no do().
        ValueError: `prefix` is empty.
    """
    raw = _checked_prefix(prefix)
    _check_speaks(kv, "kv", ("do",))
    if speaks_asyncio(kv):
        return AsyncNamespaceKV(cast(AsyncKV, kv), raw)
    return NamespaceKV(cast(KV, kv), raw)


@overload
def wrap_watcher(watcher: AsyncWatcher, prefix: StrOrBytes) -> AsyncWatcher: ...
@overload
def wrap_watcher(watcher: Watcher, prefix: StrOrBytes) -> Watcher: ...
def wrap_watcher(watcher: Watcher | AsyncWatcher, prefix: StrOrBytes) -> Watcher | AsyncWatcher:
    """Return `watcher` as a Watcher of the keys under `prefix` (clientv3's `NewWatcher`).

    An AsyncWatcher gets an `AsyncNamespaceWatcher`, whose watches give translated responses
    in `async for` and `await next()`.

    Typed Watcher, and `isinstance` agrees: a Watcher (and a `NamespaceWatcher`), not a KV.

    Raises:
        TypeError: `prefix` is not str or bytes, or `watcher` has no watch().
        ValueError: `prefix` is empty.
    """
    raw = _checked_prefix(prefix)
    _check_speaks(watcher, "watcher", ("watch",))
    if speaks_asyncio(watcher):
        return AsyncNamespaceWatcher(cast(AsyncWatcher, watcher), raw)
    return NamespaceWatcher(cast(Watcher, watcher), raw)


@overload
def wrap_lease(lease: AsyncLease, prefix: StrOrBytes) -> AsyncLease: ...
@overload
def wrap_lease(lease: Lease, prefix: StrOrBytes) -> Lease: ...
def wrap_lease(lease: Lease | AsyncLease, prefix: StrOrBytes) -> Lease | AsyncLease:
    """Return `lease` as a Lease whose key listings show only keys under `prefix`.

    As clientv3's `namespace.NewLease`: `time_to_live(keys=True)` drops the keys of other
    namespaces and cuts the prefix from the rest; the other calls carry no key. Typed Lease,
    and `isinstance` agrees: a Lease (and a `NamespaceLease`), not a KV or Watcher.

    Raises:
        TypeError: `prefix` is not str or bytes, or `lease` has no time_to_live().
        ValueError: `prefix` is empty.
    """
    raw = _checked_prefix(prefix)
    _check_speaks(lease, "lease", ("time_to_live",))
    if speaks_asyncio(lease):
        return AsyncNamespaceLease(cast(AsyncLease, lease), raw)
    return NamespaceLease(cast(Lease, lease), raw)
