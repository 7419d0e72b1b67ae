"""Leasing: linearizable reads served from a local cache, for the keys this client owns.

A leasing client takes ownership of a key when it first reads it, by creating the leasing key
`prefix + key` under its session lease; later reads of that key are answered from memory,
without a round trip:

>>> from etcd_layers import Client, leasing, ordering
>>> cli = Client(endpoints=["127.0.0.1:2379"])
>>> kv = leasing.wrap(cli, "/leasing-example/", ttl=10)  # waits for the session lease
>>> _ = kv.put("greeting", "hello")  # nobody owns the key: written at once
>>> kv.get("greeting").kvs[0].value  # takes ownership: one round trip
b'hello'
>>> kv.get("greeting").kvs[0].value  # answered from memory
b'hello'
>>> kv.stats.acquisitions, kv.stats.hits
(1, 1)

A write through any other leasing client on the same prefix (in this process or another, Go's
`clientv3/leasing` included: the protocol is the same) first revokes the owner: it marks the
leasing key REVOKE, the owner forgets the key and lets go, and only then is the write applied.
So no leasing client ever reads a stale value. Writes that bypass leasing (through a plain
client) are not coordinated.

>>> other_cli = Client(endpoints=["127.0.0.1:2379"])
>>> other = leasing.wrap(other_cli, "/leasing-example/")
>>> _ = other.put("greeting", "bonjour")  # waits until `kv` has let go of the key
>>> kv.get("greeting").kvs[0].value
b'bonjour'
>>> kv.stats.revocations
1
>>> other.close()  # gives up its leasing keys; its client stays open
>>> other_cli.close()

Keys with their own lease, ranges, gets at a past revision and `count_only` reads are served
by the server; a serializable get of a key not owned goes to the server without acquiring it.
Memory answers only while the session lease is known to be alive on the server, and the cache
is cleared the moment it is lost. Every write is applied at most once and answers exactly what
etcd would. An answer from memory never carries a header revision below one this client has
returned, so layers stack, ordering outermost:

>>> checked = ordering.wrap(kv)
>>> checked.delete("greeting").header.revision <= checked.get("greeting").header.revision
True
>>> with checked:  # gives up every leasing key; the client underneath stays open
...     checked.get("greeting").count
0
>>> cli.close()

As with clientv3's leasing, `close()` (or leaving a `with` block) ends the leasing session and
gives up every leasing key, but does not close the client it was given.

For an AsyncClient (or an async layer on one), `wrap` returns a coroutine: `lkv = await
leasing.wrap(acli, prefix)` is an `AsyncLeasingKV` on the same protocol, flows and cache, so
sync and async leasing clients on one prefix coordinate; `await lkv.close()`, `async with lkv`.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, Final, cast, overload

from etcd_layers.base.checks import check_int, check_timeout
from etcd_layers.base.keys import StrOrBytes, to_bytes
from etcd_layers.base.kinds import speaks_asyncio
from etcd_layers.base.protocols import (
    KV,
    AsyncKV,
    AsyncLease,
    AsyncWatcher,
    speaks_kv_watcher_lease,
)
from etcd_layers.leasing._async_proxy import AsyncLeasingClient, AsyncLeasingKV
from etcd_layers.leasing._async_session import AsyncLeasingBackend
from etcd_layers.leasing._cache import REVOKE_BACKOFF
from etcd_layers.leasing._protocol import REVOKE
from etcd_layers.leasing._proxy import LeasingClient, LeasingKV
from etcd_layers.leasing._session import LeasingBackend
from etcd_layers.leasing._stats import LeasingStats

__all__ = [
    "DEFAULT_TTL",
    "REVOKE",
    "REVOKE_BACKOFF",
    "AsyncLeasingBackend",
    "AsyncLeasingClient",
    "AsyncLeasingKV",
    "LeasingBackend",
    "LeasingClient",
    "LeasingKV",
    "LeasingStats",
    "stats",
    "wrap",
]

DEFAULT_TTL: Final = 60  # seconds, as clientv3's default session TTL


@overload
def wrap(
    client: AsyncLeasingBackend,
    prefix: StrOrBytes,
    *,
    ttl: int = DEFAULT_TTL,
    max_keys: int | None = None,
    timeout: float | None = None,
) -> Coroutine[Any, Any, AsyncLeasingClient]: ...
@overload
def wrap(
    client: LeasingBackend,
    prefix: StrOrBytes,
    *,
    ttl: int = DEFAULT_TTL,
    max_keys: int | None = None,
    timeout: float | None = None,
) -> LeasingClient: ...
def wrap(
    client: LeasingBackend | AsyncLeasingBackend,
    prefix: StrOrBytes,
    *,
    ttl: int = DEFAULT_TTL,
    max_keys: int | None = None,
    timeout: float | None = None,
) -> LeasingClient | Coroutine[Any, Any, AsyncLeasingClient]:
    """Return a KV over `client` that serves the keys it owns from memory.

    Blocks until the session lease exists and the leasing prefix is watched. For an async
    speaker (an AsyncClient or an async layer), returns a coroutine instead, which sets up
    the session and gives an `AsyncLeasingKV`: `lkv = await leasing.wrap(acli, prefix)`.
    Arguments are checked when `wrap` is called, before anything is awaited.

    Args:
        client: a Client, or any layer speaking the KV, Watcher and Lease Protocols (or their
            async twins).
        prefix: where leasing keys live (`prefix + key` records who owns `key`); every leasing
            client that shares keys must use the same prefix.
        ttl: the session lease's TTL in seconds; memory answers only while it is known alive.
        max_keys: the most keys cached (None: no limit); the least recently used key is given
            back first.
        timeout: seconds to wait for the session; None for the client's default.

    Returns:
        The leasing KV (a `LeasingKV` proxy), which also forwards Watcher and Lease calls,
        and has `stats`, `session_lease_id`, `close()` and `with`. As for every layer's
        `wrap`, `isinstance` answers what the type says: the result is a `LeasingClient`
        (so a KV, Watcher and Lease) and a `LeasingKV`, but not an instance of `client`'s
        class. Only `ordering.wrap`, typed as what it wraps, is also an instance of that.
        For an async speaker: a coroutine giving an `AsyncLeasingKV` (an
        `AsyncLeasingClient`: AsyncKV, AsyncWatcher and AsyncLease, with `stats`,
        `session_lease_id`, `await close()` and `async with`).

    Raises:
        TypeError: `client` lacks the KV, Watcher or Lease methods, or an argument has the
            wrong type (before any I/O).
        ValueError: an empty prefix, a `ttl` below 1 or a `max_keys` below 1 (before any I/O).
        DeadlineExceededError: the session was not set up within `timeout`.
    """
    raw = to_bytes(prefix, name="prefix")
    if not raw:
        raise ValueError("prefix must not be empty")
    if check_int(ttl, "ttl") < 1:
        raise ValueError(f"ttl must be at least 1 second, got {ttl}")
    if max_keys is not None and check_int(max_keys, "max_keys") < 1:
        raise ValueError(f"max_keys must be at least 1 (or None), got {max_keys}")
    timeout = check_timeout(timeout)
    speaker: object = client
    if speaks_asyncio(speaker):
        if not (
            isinstance(speaker, AsyncKV)
            and isinstance(speaker, AsyncWatcher)
            and isinstance(speaker, AsyncLease)
        ):
            raise TypeError(
                "client must speak the AsyncKV, AsyncWatcher and AsyncLease Protocols (an"
                f" AsyncClient or an async layer on one), not {type(client).__name__}"
            )
        return _open_async(cast(AsyncLeasingBackend, speaker), raw, ttl, max_keys, timeout)
    if not speaks_kv_watcher_lease(client):
        raise TypeError(
            "client must speak the KV, Watcher and Lease Protocols (a Client or a layer on one),"
            f" not {type(client).__name__}"
        )
    proxy = LeasingKV(
        cast(LeasingBackend, client), raw, ttl=ttl, max_keys=max_keys, timeout=timeout
    )
    # wrapt forwards the Watcher and Lease calls at run time, which mypy cannot see.
    return cast(LeasingClient, proxy)


async def _open_async(
    client: AsyncLeasingBackend,
    prefix: bytes,
    ttl: int,
    max_keys: int | None,
    timeout: float | None,
) -> AsyncLeasingClient:
    proxy = AsyncLeasingKV(client, prefix, ttl=ttl, max_keys=max_keys)
    await proxy.open(timeout)
    # wrapt forwards the Watcher and Lease calls at run time, which mypy cannot see.
    return cast(AsyncLeasingClient, proxy)


def stats(kv: KV | AsyncKV) -> LeasingStats:
    """Return the counters of a leasing client, or of a layer stacked on one.

    Raises:
        TypeError: there is no leasing client in `kv`.
    """
    found = getattr(kv, "stats", None)
    if not isinstance(found, LeasingStats):
        raise TypeError(f"{type(kv).__name__} is not a leasing client (or a layer on one)")
    return found
