"""What only the async layers do: their kind, awaited policies, per-task counts, async watches."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from async_kinds import AsyncOver
from test_namespace_proxy import HEADER, FakeWatch, RecordingClient, kv, watch_response
from test_ordering_unit import FakeClient, FakeKV, Recorder, respond

from etcd_layers import Op, errors, namespace, ordering
from etcd_layers.base import (
    KV,
    AsyncKV,
    AsyncKVWatcherLease,
    AsyncLease,
    AsyncWatcher,
    GetOp,
    GetResponse,
    KVWatcherLease,
    Lease,
    Response,
    Watcher,
)
from etcd_layers.base.kinds import speaks_asyncio
from etcd_layers.namespace import AsyncNamespaceClient, AsyncNamespaceKV
from etcd_layers.ordering import AsyncOrderingKV, OrderingKV, RevisionFloor
from etcd_layers.ordering._proxy import call_violations

SYNC_PROTOCOLS: tuple[type, ...] = (KV, Watcher, Lease, KVWatcherLease)
ASYNC_PROTOCOLS: tuple[type, ...] = (AsyncKV, AsyncWatcher, AsyncLease, AsyncKVWatcherLease)


def instance_of(speaker: object, protocols: tuple[type, ...]) -> set[type]:
    """The Protocols among `protocols` that `speaker` passes the isinstance check of."""
    return {protocol for protocol in protocols if isinstance(speaker, protocol)}


def async_client(fake: Any) -> AsyncKVWatcherLease:
    """The fake's async twin, typed as the async Protocols it speaks."""
    return cast(AsyncKVWatcherLease, AsyncOver(fake))


# --- which kind a speaker is --------------------------------------------------------------


def test_speaks_asyncio_tells_the_kinds_apart() -> None:
    """Coroutine-function Protocol methods make an async speaker; layers keep their kind."""
    fake = RecordingClient()
    assert not speaks_asyncio(fake)
    assert not speaks_asyncio(object())
    assert speaks_asyncio(AsyncOver(fake))
    assert speaks_asyncio(namespace.wrap(async_client(fake), "t/"))
    assert speaks_asyncio(namespace.wrap_watcher(async_client(fake), "t/"))  # do is refused
    assert speaks_asyncio(ordering.wrap(namespace.wrap_kv(async_client(fake), "t/")))
    assert not speaks_asyncio(ordering.wrap(namespace.wrap_kv(cast(KV, fake), "t/")))


@pytest.mark.parametrize(
    ("wrapper", "protocols"),
    [
        (namespace.wrap, (AsyncKV, AsyncWatcher, AsyncLease, AsyncKVWatcherLease)),
        (namespace.wrap_kv, (AsyncKV,)),
        (namespace.wrap_watcher, (AsyncWatcher,)),
        (namespace.wrap_lease, (AsyncLease,)),
    ],
    ids=["wrap", "wrap_kv", "wrap_watcher", "wrap_lease"],
)
def test_async_layer_is_an_instance_of_the_async_protocols_only(
    wrapper: Any, protocols: tuple[type, ...]
) -> None:
    """An async layer passes its async Protocol checks and fails every sync one."""
    layer = wrapper(AsyncOver(RecordingClient()), "t/")
    assert instance_of(layer, ASYNC_PROTOCOLS) == set(protocols)
    assert instance_of(layer, SYNC_PROTOCOLS) == set()


@pytest.mark.parametrize(
    "wrapper",
    [ordering.wrap, lambda inner: ordering.wrap(namespace.wrap(inner, "t/"))],
    ids=["ordering", "ordering-namespace"],
)
def test_async_ordering_is_an_async_kv_and_no_sync_protocol(wrapper: Any) -> None:
    """ordering.wrap over an async speaker is an AsyncKV (and forwards the rest), never a KV."""
    layer = wrapper(AsyncOver(RecordingClient()))
    assert isinstance(layer, AsyncKV)
    assert instance_of(layer, SYNC_PROTOCOLS) == set()


def test_sync_layer_is_not_an_instance_of_the_async_protocols() -> None:
    """The reverse: a sync speaker and its layers fail every async Protocol check."""
    fake = RecordingClient()
    for speaker in (fake, namespace.wrap(cast(KVWatcherLease, fake), "t/")):
        assert isinstance(speaker, KV)
        assert instance_of(speaker, ASYNC_PROTOCOLS) == set()


def test_async_client_is_an_async_kv_and_not_a_kv() -> None:
    """The AsyncClient (not connected: no I/O) speaks AsyncKV, and the sync KV check refuses it."""
    from etcd_layers import AsyncClient

    client = AsyncClient(endpoints=["127.0.0.1:1"])
    assert instance_of(client, (KV, AsyncKV)) == {AsyncKV}
    assert isinstance(namespace.wrap_kv(client, "t/"), AsyncNamespaceKV)
    assert isinstance(ordering.wrap(client, on_violation=Recorder()), AsyncOrderingKV)


def test_async_layer_over_a_sync_ordering_is_refused_nowhere_and_stays_sync() -> None:
    """A layer over a sync layer is sync: a plain ordering over a plain namespace."""
    layer = ordering.wrap(namespace.wrap_kv(cast(KV, FakeKV()), "t/"))
    assert isinstance(layer, OrderingKV)


# --- ordering -----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_async_ordering_awaits_an_async_policy_and_sends_again() -> None:
    """An async on_violation is awaited, with the call's Op and count, and the read re-sent."""
    fake = FakeKV(10, 3, 4, 12)
    seen: list[tuple[Op, int, int, int]] = []

    async def policy(op: Op, response: Response, prev_revision: int) -> None:
        await asyncio.sleep(0)
        seen.append((op, response.header.revision, prev_revision, call_violations()))

    layer = ordering.wrap(cast(AsyncKV, AsyncOver(fake)), on_violation=policy)
    await layer.put("k", "v")
    response = await layer.get("k", serializable=True)
    assert response.header.revision == 12
    op = Op.get("k", serializable=True)
    assert seen == [(op, 3, 10, 1), (op, 4, 10, 2)]
    assert fake.sent[1:] == [op, op, op]


@pytest.mark.asyncio
async def test_async_ordering_async_policy_exception_propagates() -> None:
    """What an async policy raises fails the call unchanged, and nothing is re-sent."""

    class MineError(Exception):
        pass

    async def refuse(op: Op, response: Response, prev_revision: int) -> None:
        raise MineError(prev_revision)

    fake = FakeKV(10, 2)
    layer = ordering.wrap(cast(AsyncKV, AsyncOver(fake)), on_violation=refuse)
    await layer.get("k")
    with pytest.raises(MineError):
        await layer.get("k")
    assert len(fake.sent) == 2


def test_sync_ordering_refuses_an_async_policy() -> None:
    """A coroutine-function policy over a sync KV would never be awaited: TypeError."""

    async def policy(op: Op, response: Response, prev_revision: int) -> None:
        return None

    with pytest.raises(TypeError, match="async on_violation"):
        ordering.wrap(cast(KV, FakeKV()), on_violation=policy)


@pytest.mark.asyncio
async def test_async_switch_endpoints_counts_each_task_separately() -> None:
    """Concurrent tasks with stale answers each get the whole budget of retries."""
    limit = 5 * 3
    scripts: dict[str, list[int]] = {}

    class PerTask(FakeClient):
        def do(self, op: Op, *, timeout: float | None = None) -> Any:
            task = asyncio.current_task()
            assert task is not None
            script = scripts.setdefault(task.get_name(), [*[1] * (limit - 1), 10])
            self.sent.append(op)
            return respond(op, script.pop(0) if len(script) > 1 else script[0])

    class Interleaving(AsyncOver):
        async def do(self, op: Op, *, timeout: float | None = None) -> Any:
            await asyncio.sleep(0)  # let the other tasks' calls run in between
            return self.wrapped_fake.do(op, timeout=timeout)

    fake = PerTask(endpoints=3)
    inner = cast(AsyncKV, Interleaving(fake))
    layer = AsyncOrderingKV(inner, ordering.switch_endpoints(fake), RevisionFloor(5))
    results = await asyncio.gather(*(layer.get("k") for _ in range(4)))
    assert [r.header.revision for r in results] == [10] * 4
    assert fake.switches == 4 * (limit - 1)


@pytest.mark.asyncio
async def test_async_ordering_stale_write_raises_without_resending() -> None:
    """As the sync layer: a stale put raises OrderViolationError and is sent once."""
    fake = FakeKV(10, 4)
    recorder = Recorder()
    layer = ordering.wrap(cast(AsyncKV, AsyncOver(fake)), on_violation=recorder)
    await layer.get("k")
    with pytest.raises(errors.OrderViolationError):
        await layer.put("k", "v")
    assert len(fake.sent) == 2
    assert recorder.calls == []


@pytest.mark.asyncio
async def test_async_ordering_with_returns_the_proxy_and_closes() -> None:
    """`async with` hands out the wrapper itself and awaits the inner close on exit."""
    fake = FakeKV(4)
    layer = ordering.wrap(cast(AsyncKV, AsyncOver(fake)), on_violation=Recorder())
    async with cast(AsyncOrderingKV, layer) as entered:
        assert entered is layer
        await entered.get("k")
    assert fake.closed == 1
    assert repr(layer).startswith("<AsyncOrderingKV floor=4 over ")


# --- namespace ----------------------------------------------------------------------------


@pytest.fixture
def fake() -> RecordingClient:
    return RecordingClient()


@pytest.fixture
def ns(fake: RecordingClient) -> AsyncKVWatcherLease:
    layer = namespace.wrap(async_client(fake), "t/")
    assert isinstance(layer, AsyncNamespaceClient)
    return layer


@pytest.mark.asyncio
async def test_async_namespace_watch_entered_strips_keys_and_cancels(
    fake: RecordingClient, ns: AsyncKVWatcherLease
) -> None:
    """`async with ns.watch(...)` gives a watch whose next() and `async for` strip the prefix."""
    fake.watch_responses = [watch_response(b"t/a"), watch_response(b"t/b", b"t/c")]
    async with ns.watch("", prefix=True, prev_kv=True) as watch:
        assert await watch.next(timeout=0.5) == watch_response(b"a")
        assert [response async for response in watch] == [watch_response(b"b", b"c")]
    assert fake.calls[0][:2] == ("watch", (b"t/\x00",))
    inner = cast(Any, watch).__wrapped__.wrapped_fake
    assert isinstance(inner, FakeWatch)
    assert inner.canceled


@pytest.mark.asyncio
async def test_async_namespace_watch_awaited_strips_keys(
    fake: RecordingClient, ns: AsyncKVWatcherLease
) -> None:
    """`await ns.watch(...)` gives the translating watch; its own `async with` cancels it."""
    fake.watch_responses = [watch_response(b"t/k")]
    watch = await ns.watch("k")
    async with watch as entered:
        assert entered is watch
        assert [response async for response in watch] == [watch_response(b"k")]
    assert cast(Any, watch).__wrapped__.wrapped_fake.canceled


def test_async_namespace_watch_refuses_bad_arguments_when_called(
    fake: RecordingClient, ns: AsyncKVWatcherLease
) -> None:
    """A bad range raises when watch() is called, before anything is awaited."""
    with pytest.raises(errors.EmptyKeyError):
        ns.watch("")
    with pytest.raises(ValueError, match="prefix"):
        ns.watch("k", prefix=True, from_key=True)
    assert fake.calls == []


@pytest.mark.asyncio
async def test_async_namespace_with_returns_the_proxy_and_closes(
    fake: RecordingClient, ns: AsyncKVWatcherLease
) -> None:
    """`async with` hands out the namespaced client and awaits the inner close."""
    fake.answer = GetResponse(HEADER, [kv(b"t/k")], 1)
    async with ns as entered:
        assert entered is ns
        assert (await entered.get("k")).kvs == [kv(b"k")]
    assert fake.calls == [("do", (GetOp(key=b"t/k"),), {"timeout": None}), ("close", (), {})]


@pytest.mark.asyncio
async def test_async_stack_orders_what_the_namespace_translates(fake: RecordingClient) -> None:
    """ordering.wrap(namespace.wrap(async)) sends translated Ops and checks their revisions."""
    fake.answer = GetResponse(HEADER, [kv(b"t/k")], 1)
    stack = ordering.wrap(namespace.wrap(async_client(fake), "t/"), on_violation=Recorder())
    assert isinstance(stack, AsyncOrderingKV)
    response = await stack.get("k", prefix=True)
    assert response.kvs == [kv(b"k")]
    assert fake.calls == [("do", (GetOp(key=b"t/k", range_end=b"t/l"),), {"timeout": None})]
