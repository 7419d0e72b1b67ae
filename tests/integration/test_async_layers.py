"""namespace and ordering over an AsyncClient against real etcd, compared with the sync layers.

The namespace answers are differential: one script of KV and txn calls runs through
`namespace.wrap(cli, p1)` and through `namespace.wrap(acli, p2)`, and every answer must be
the same but for revisions. The split-cluster tests of test_ordering run over both kinds
of client; the one here gives the async layer an async policy.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, cast

import pytest
from layer_kinds import ASYNC_CLIENT, HAS_WATCH, Backend
from test_ordering import StaleReadError, Violation, split

from etcd_layers import AsyncClient, Client, Compare, Op, errors, namespace, ordering
from etcd_layers.base import (
    AsyncKV,
    AsyncKVWatcherLease,
    AsyncLease,
    DeleteResponse,
    GetResponse,
    KeyValue,
    PutResponse,
    Response,
    TxnResponse,
    WatchResponse,
)
from etcd_layers.namespace import AsyncNamespaceClient
from etcd_layers.ordering import AsyncOrderingKV
from etcd_layers.testing import EtcdCluster, EtcdServer, Member

pytestmark = pytest.mark.asyncio

TIMEOUT = 10.0


@pytest.fixture
def acli(backend_async_client: AsyncClient) -> AsyncKVWatcherLease:
    """An AsyncClient on the test's backend and loop: the session's etcd, then a MemoryEtcd."""
    return cast(AsyncKVWatcherLease, backend_async_client)


@pytest.fixture
def etcd_client(backend: Backend) -> Client:
    """A sync client on the same backend."""
    return backend.client()


# --- namespace: the same answers as the sync layer ------------------------------------------


def shape(response: object) -> object:
    """`response` without what differs between two runs of one script: revisions and headers."""
    if isinstance(response, KeyValue):
        return (response.key, response.value, response.version, response.lease)
    if isinstance(response, GetResponse):
        return ("get", [shape(kv) for kv in response.kvs], response.count, response.more)
    if isinstance(response, PutResponse):
        return ("put", shape(response.prev_kv) if response.prev_kv else None)
    if isinstance(response, DeleteResponse):
        return ("delete", response.deleted, [shape(kv) for kv in response.prev_kvs])
    if isinstance(response, TxnResponse):
        return ("txn", response.succeeded, [shape(r) for r in response.responses])
    raise AssertionError(f"unexpected {response!r}")


# Each step is called with the layer; a coroutine it returns is awaited.
SCRIPT: list[Callable[[Any], object]] = [
    lambda kv: kv.put("a", "1"),
    lambda kv: kv.put("a/b", "2", prev_kv=True),
    lambda kv: kv.put("a/b", "3", prev_kv=True),
    lambda kv: kv.put("c", "\xff"),
    lambda kv: kv.get("a"),
    lambda kv: kv.get("", prefix=True),
    lambda kv: kv.get("a", prefix=True, keys_only=True),
    lambda kv: kv.get("", from_key=True, limit=2),
    lambda kv: kv.get("a", range_end="c", count_only=True),
    lambda kv: kv.get("missing"),
    lambda kv: kv.txn(
        [Compare.value("a") == "1", Compare.version("", prefix=True) > 0],
        [Op.get("a", prefix=True), Op.put("d", "4", prev_kv=True)],
        [Op.delete("a")],
    ),
    lambda kv: kv.txn(
        [Compare.value("a") == "nope"],
        [],
        [Op.txn([], [Op.get("", from_key=True)], []), Op.delete("d", prev_kv=True)],
    ),
    lambda kv: kv.do(Op.get("c")),
    lambda kv: kv.do(Op.put("e", "5", prev_kv=True)),
    lambda kv: kv.delete("a", prefix=True, prev_kv=True),
    lambda kv: kv.get("", prefix=True),
    lambda kv: kv.delete("", from_key=True),
]


async def run(step: Callable[[Any], object], layer: object) -> object:
    result = step(layer)
    return await cast(Awaitable[object], result) if inspect.isawaitable(result) else result


async def test_async_namespace_answers_as_the_sync_namespace(
    etcd_client: Client, acli: AsyncKVWatcherLease, etcd_key_prefix: bytes
) -> None:
    """Every KV and txn answer of the async namespace equals the sync one's, revisions aside."""
    sync_ns = namespace.wrap(etcd_client, etcd_key_prefix + b"sync/")
    async_ns = namespace.wrap(acli, etcd_key_prefix + b"async/")
    assert isinstance(async_ns, AsyncNamespaceClient)
    for number, step in enumerate(SCRIPT):
        expected = shape(await run(step, sync_ns))
        assert shape(await run(step, async_ns)) == expected, number
    assert etcd_client.get(etcd_key_prefix, prefix=True).count == 0


async def test_async_namespace_stores_under_the_prefix_and_spares_siblings(
    etcd_client: Client, acli: AsyncKVWatcherLease, etcd_key_prefix: bytes
) -> None:
    """Writes land under the prefix; "all keys" and from_key stop at the namespace's end."""
    prefix = etcd_key_prefix + b"a\xff"  # its end is b"b": key b"b" itself is outside
    outside = etcd_key_prefix + b"b"
    etcd_client.put(outside, "outside")
    ns = namespace.wrap_kv(acli, prefix)
    await ns.put("k", "v")
    assert etcd_client.get(prefix + b"k").kvs[0].value == b"v"
    assert [kv.key for kv in (await ns.get("", prefix=True)).kvs] == [b"k"]
    assert (await ns.delete("", from_key=True)).deleted == 1
    assert etcd_client.get(outside).kvs[0].value == b"outside"


async def test_async_namespace_errors_pass_through_unchanged(
    acli: AsyncKVWatcherLease, etcd_key_prefix: bytes
) -> None:
    """A server error keeps its class through the async namespace."""
    ns = namespace.wrap_kv(acli, etcd_key_prefix)
    latest = (await ns.put("k", "1")).header.revision
    with pytest.raises(errors.FutureRevisionError):
        await ns.get("k", revision=latest + 1000)
    with pytest.raises(errors.KeyNotFoundError):
        await ns.put("missing", "", ignore_value=True)


async def test_async_namespace_time_to_live_lists_only_namespace_keys(
    etcd_client: Client, acli: AsyncKVWatcherLease, etcd_key_prefix: bytes
) -> None:
    """A lease's key listing through the async namespace shows only its keys, prefix cut."""
    leases = cast(AsyncLease, acli)
    tenant = namespace.wrap(acli, etcd_key_prefix + b"t/")
    lease = (await leases.grant(60)).id
    try:
        await tenant.put("mine", "", lease=lease)
        etcd_client.put(etcd_key_prefix + b"other", "", lease=lease)
        assert (await tenant.time_to_live(lease, keys=True)).keys == [b"mine"]
        lease_only = namespace.wrap_lease(leases, etcd_key_prefix + b"t/")
        assert (await lease_only.time_to_live(lease, keys=True)).keys == [b"mine"]
    finally:
        await tenant.revoke(lease)


async def test_async_namespace_async_with_closes_the_client(
    etcd_server: EtcdServer, etcd_key_prefix: bytes
) -> None:
    """`async with namespace.wrap(acli, p)` yields the namespace and closes the client after."""
    client = ASYNC_CLIENT(etcd_server.endpoints, timeout=TIMEOUT, **etcd_server.client_options())
    async with namespace.wrap(cast(AsyncKVWatcherLease, client), etcd_key_prefix) as ns:
        assert ns is not cast(object, client)
        assert (await ns.put("k", "v")).header.revision > 0
    with pytest.raises(errors.CanceledError):
        await client.get("k")


@pytest.mark.skipif(not HAS_WATCH, reason="AsyncClient.watch comes in another phase of issue 14")
async def test_async_namespace_watch_reports_namespace_keys(
    acli: AsyncKVWatcherLease, etcd_key_prefix: bytes
) -> None:
    """A watch through the async namespace sees its keys, cut, and no sibling's."""
    ns = namespace.wrap(acli, etcd_key_prefix + b"t/")
    async with ns.watch("", prefix=True, prev_kv=True, created_notify=True) as watch:
        await watch.next(TIMEOUT)  # created
        await acli.put(etcd_key_prefix + b"t0", "sibling")
        await ns.put("k", "1")
        await ns.delete("k")
        seen: list[WatchResponse] = [await watch.next(TIMEOUT), await watch.next(TIMEOUT)]
    events = [event for response in seen for event in response.events]
    assert [(e.type.name, e.kv.key) for e in events] == [("PUT", b"k"), ("DELETE", b"k")]
    assert events[1].prev_kv is not None
    assert events[1].prev_kv.key == b"k"


# --- ordering over an AsyncClient ---------------------------------------------------------


async def test_async_ordering_stack_reads_and_writes_under_the_prefix(
    etcd_client: Client, acli: AsyncKVWatcherLease, etcd_key_prefix: bytes
) -> None:
    """ordering.wrap(namespace.wrap(acli, p)) is an async layer that learns every revision."""
    stack = ordering.wrap(namespace.wrap(acli, etcd_key_prefix))
    assert isinstance(stack, AsyncOrderingKV)
    put = await stack.put("k", "v")
    response = await stack.get("k", serializable=True)
    assert response.kvs[0].key == b"k"
    assert response.header.revision >= put.header.revision
    txn = await stack.txn([Compare.value("k") == "v"], [Op.get("k")], [])
    assert txn.succeeded
    assert etcd_client.get(etcd_key_prefix + b"k").kvs[0].value == b"v"
    assert stack.endpoints == acli.endpoints  # type: ignore[attr-defined]  # forwarded to the client


def async_client_on(cluster: EtcdCluster, members: list[Member]) -> AsyncClient:
    """An AsyncClient on `members`, in that order, with a deadline on every call."""
    endpoints = [m.endpoint for m in members]
    return AsyncClient(endpoints, timeout=TIMEOUT, **cluster.client_options())


async def test_async_ordering_detects_a_stale_read_with_an_async_policy(
    etcd_cluster: EtcdCluster, etcd_key_prefix: bytes
) -> None:
    """A serializable get from a cut-off member is reported to an async policy with its Op."""
    violations: list[Violation] = []

    async def policy(op: Op, response: Response, prev_revision: int) -> None:
        violations.append(Violation(op, response, prev_revision))
        raise StaleReadError(prev_revision)

    with split(etcd_cluster, 1, etcd_key_prefix + b"k") as cut:
        async with async_client_on(etcd_cluster, cut.fresh) as cli:
            kv = ordering.wrap(cast(AsyncKV, cli), on_violation=policy)
            seen = (await kv.get(cut.key)).header.revision
            await cli.set_endpoints(cut.stale[0].endpoint)
            with pytest.raises(StaleReadError):
                await kv.get(cut.key, serializable=True)
    [violation] = violations
    assert violation.op == Op.get(cut.key, serializable=True)
    assert violation.prev_revision == seen
    assert isinstance(violation.response, GetResponse)
    assert violation.response.kvs[0].value == b"before"  # what the stale member holds
