"""The asyncio client, layers and concurrency types on MemoryEtcd, on the test's own loop."""

from __future__ import annotations

import asyncio

import pytest

from etcd_layers import AsyncClient, errors, namespace, ordering
from etcd_layers import leasing as leasing_layer
from etcd_layers.concurrency import AsyncElection, AsyncMutex, AsyncSession
from etcd_layers.testing import MemoryEtcd

pytestmark = pytest.mark.asyncio


async def test_memory_async_watch_delivers_from_another_thread(
    etcd_memory: MemoryEtcd, etcd_memory_async_client: AsyncClient
) -> None:
    """A write by a sync client on another thread reaches an async watch on this loop."""
    watch = await etcd_memory_async_client.watch("k", prev_kv=True)
    with etcd_memory.client() as sync_client:
        await asyncio.to_thread(sync_client.put, "k", "1")
        await asyncio.to_thread(sync_client.put, "k", "2")
    first, second = await watch.next(timeout=5), await watch.next(timeout=5)
    assert [e.kv.value for e in (*first.events, *second.events)] == [b"1", b"2"]
    assert second.events[0].prev_kv is not None
    assert second.events[0].prev_kv.value == b"1"
    await watch.cancel()


async def test_memory_async_namespace_and_leasing(etcd_memory_async_client: AsyncClient) -> None:
    """namespace.wrap and leasing.wrap of an AsyncClient work on MemoryEtcd."""
    ns = namespace.wrap(etcd_memory_async_client, "/a/")
    await ns.put("k", "v")
    assert (await etcd_memory_async_client.get("/a/k")).kvs[0].value == b"v"
    leased = await leasing_layer.wrap(ns, "lease/", ttl=30)
    try:
        assert (await leased.get("k")).kvs[0].value == b"v"
        await leased.put("k", "w")
        assert (await leased.get("k")).kvs[0].value == b"w"
    finally:
        await leased.close()


async def test_memory_async_ordering_sees_no_violation(
    etcd_memory_async_client: AsyncClient,
) -> None:
    """ordering.wrap of an AsyncClient on MemoryEtcd reports nothing: revisions only go up."""
    violations: list[object] = []
    checked = ordering.wrap(etcd_memory_async_client, on_violation=lambda *a: violations.append(a))
    for index in range(20):
        await checked.put("k", str(index))
        assert (await checked.get("k")).kvs[0].value == str(index).encode()
    assert violations == []


async def test_memory_async_mutex_and_election(
    etcd_memory: MemoryEtcd, etcd_memory_async_client: AsyncClient
) -> None:
    """AsyncMutex excludes a second session; AsyncElection hands leadership over on resign."""
    other_client = etcd_memory.async_client(timeout=10)
    try:
        async with (
            AsyncSession(etcd_memory_async_client, ttl=30) as first,
            AsyncSession(other_client, ttl=30) as second,
        ):
            holder, waiter = AsyncMutex(first, "locks/x"), AsyncMutex(second, "locks/x")
            await holder.lock(timeout=5)
            assert not await waiter.try_lock()
            waiting = asyncio.ensure_future(waiter.lock(timeout=10))
            await asyncio.sleep(0)
            assert not waiting.done()
            await holder.unlock()
            await asyncio.wait_for(waiting, 10)
            await waiter.unlock()
            leader, follower = AsyncElection(first, "elect/x"), AsyncElection(second, "elect/x")
            await leader.campaign("one", timeout=5)
            campaign = asyncio.ensure_future(follower.campaign("two", timeout=10))
            await leader.resign()
            await asyncio.wait_for(campaign, 10)
            assert (await follower.leader()).value == b"two"
    finally:
        await other_client.close()


async def test_memory_async_session_survives_advances_until_orphaned(
    etcd_memory: MemoryEtcd, etcd_memory_async_client: AsyncClient
) -> None:
    """An AsyncSession's keep-alive renews on clock time; orphaned, its lease runs out."""
    assert etcd_memory.clock is not None
    session = await AsyncSession(etcd_memory_async_client, ttl=10)
    etcd_memory.clock.advance(3600)
    assert (await etcd_memory_async_client.time_to_live(session.lease_id)).ttl == 10
    await session.orphan()
    etcd_memory.clock.advance(10)
    assert (await etcd_memory_async_client.time_to_live(session.lease_id)).ttl == -1
    await session.close()


async def test_memory_close_closes_the_async_clients_on_their_loop() -> None:
    """MemoryEtcd.close() from the client's own loop ends its watches: the client closes."""
    etcd = MemoryEtcd()
    client = etcd.async_client(timeout=5)
    watch = await client.watch("k")
    etcd.close()
    with pytest.raises(errors.EtcdError):
        await watch.next(timeout=5)
    with pytest.raises(errors.ClosedError):
        await client.get("k")


async def test_memory_close_closes_an_async_client_that_only_made_unary_calls() -> None:
    """An AsyncClient with no stream open is closed by MemoryEtcd.close() too."""
    etcd = MemoryEtcd()
    client = etcd.async_client(timeout=5)
    await client.put("k", "v")
    etcd.close()  # the client's close() runs as a task on this loop
    for _ in range(200):  # bounded: 2 s
        try:
            await client.get("k")
        except errors.ClosedError:
            break
        except errors.UnavailableError:
            pass  # the store is closed; the client's own close() has not run yet
        await asyncio.sleep(0.01)
    else:
        pytest.fail("the client was not closed")
