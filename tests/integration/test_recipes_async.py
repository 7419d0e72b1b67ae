"""The asyncio recipes on their own event loop: cancellation, and sharing with the sync ones.

What the kind-parametrised modules cannot show: a task cancelled while it waits withdraws the
key its recipe put (RWMutex, DoubleBarrier), a cancelled dequeue loses no item, and sync and
async recipes on one name are one recipe.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import pytest

from etcd_layers import AsyncClient, Client, leasing, namespace, ordering
from etcd_layers.concurrency import (
    AsyncBarrier,
    AsyncDoubleBarrier,
    AsyncPriorityQueue,
    AsyncQueue,
    AsyncRWMutex,
    AsyncSession,
    Barrier,
    PriorityQueue,
    Queue,
    RWMutex,
    Session,
)

pytestmark = pytest.mark.asyncio

LONG_TTL = 5  # sessions that must outlive the test (kept alive all along)
WAIT = 20.0  # bound on every blocking step of a test


async def keys(client: AsyncClient, prefix: bytes) -> list[bytes]:
    return [kv.key for kv in (await client.get(prefix, prefix=True)).kvs]


async def until(check: Callable[[], Awaitable[bool]], message: str) -> None:
    """Wait until `check()` holds, polling, for at most WAIT seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while not await check():
        assert loop.time() < deadline, f"timed out waiting until {message}"
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("when", ["queued", "at_once"])
async def test_cancelling_rwmutex_lock_withdraws_the_waiter_key(
    etcd_async_client: AsyncClient, etcd_key_prefix: bytes, when: str
) -> None:
    """Cancelling the task in `await rw.lock()`, waiting or mid-request, leaves no key behind."""
    acli = etcd_async_client
    name = etcd_key_prefix + b"rw"
    async with AsyncSession(acli, ttl=LONG_TTL) as first, AsyncSession(acli, ttl=LONG_TTL) as two:
        reader = AsyncRWMutex(first, name)
        await reader.rlock(WAIT)
        task = asyncio.ensure_future(AsyncRWMutex(two, name).lock())
        if when == "queued":

            async def queued() -> bool:
                return await keys(acli, name + b"/write/") != []

            await until(queued, "the writer queued")
        else:
            await asyncio.sleep(0)  # the create txn is on its way
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

        async def only_the_reader() -> bool:
            return await keys(acli, name + b"/") == [reader.holding.key]  # type: ignore[union-attr]

        await until(only_the_reader, "the cancelled writer's key is gone")
        await asyncio.sleep(0.2)  # a late create would show up by now
        assert await keys(acli, name + b"/write/") == []
        await reader.runlock()


async def test_cancelling_double_barrier_enter_withdraws_the_participant(
    etcd_async_client: AsyncClient, etcd_key_prefix: bytes
) -> None:
    """A participant cancelled in enter() does not count: the next two complete the count."""
    acli = etcd_async_client
    name = etcd_key_prefix + b"db"
    async with AsyncSession(acli, ttl=LONG_TTL) as session:
        task = asyncio.ensure_future(AsyncDoubleBarrier(session, name, 2).enter())

        async def joined() -> bool:
            return len(await keys(acli, name + b"/waiters/")) == 1

        await until(joined, "the participant joined")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

        async def empty() -> bool:
            return await keys(acli, name + b"/waiters/") == []

        await until(empty, "the cancelled participant's key is gone")
        first, second = AsyncDoubleBarrier(session, name, 2), AsyncDoubleBarrier(session, name, 2)
        entering = asyncio.ensure_future(first.enter(WAIT))
        await until(joined, "the first participant joined")
        assert not entering.done()
        await second.enter(WAIT)
        await entering
        await asyncio.gather(first.leave(WAIT), second.leave(WAIT))
        assert await keys(acli, name + b"/") == []


async def test_cancelled_dequeue_loses_no_item(
    etcd_async_client: AsyncClient, etcd_key_prefix: bytes
) -> None:
    """Dequeuers cancelled at every point of their request still leave every item to be read."""
    acli = etcd_async_client
    name = etcd_key_prefix + b"q"
    queue = AsyncQueue(acli, name)
    items = [f"item-{index}".encode() for index in range(20)]
    for item in items:
        await queue.enqueue(item)
    taken: list[bytes] = []
    for round_index in range(20):  # cancel after 0, 1, 2, ... loop passes: mid-request
        task = asyncio.ensure_future(queue.dequeue(WAIT))
        for _ in range(round_index % 6):
            await asyncio.sleep(0)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            taken.append(await task)
    left: list[bytes] = []
    while len(taken) + len(left) < len(items):
        left.append(await queue.dequeue(WAIT))
    assert sorted(taken + left) == sorted(items)
    assert await keys(acli, name + b"/") == []


async def test_cancelled_barrier_wait_leaves_the_barrier_held(
    etcd_async_client: AsyncClient, etcd_key_prefix: bytes
) -> None:
    """Cancelling a waiter changes nothing; a held barrier stays held for the others."""
    acli = etcd_async_client
    name = etcd_key_prefix + b"b"
    await AsyncBarrier(acli, name).hold()
    task = asyncio.ensure_future(AsyncBarrier(acli, name).wait())
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await keys(acli, name) == [name]
    other = asyncio.ensure_future(AsyncBarrier(acli, name).wait(WAIT))
    await asyncio.sleep(0.2)
    assert not other.done()
    await AsyncBarrier(acli, name).release()
    await other


async def test_sync_and_async_queues_share_items(
    etcd_async_client: AsyncClient, etcd_client: Client, etcd_key_prefix: bytes
) -> None:
    """A Queue and an AsyncQueue on one prefix are one queue, FIFO across both."""
    name = etcd_key_prefix + b"q"
    sync_queue, async_queue = Queue(etcd_client, name), AsyncQueue(etcd_async_client, name)
    await asyncio.to_thread(sync_queue.enqueue, b"from-sync")
    await async_queue.enqueue(b"from-async")
    assert await async_queue.dequeue(WAIT) == b"from-sync"
    assert await asyncio.to_thread(sync_queue.dequeue, WAIT) == b"from-async"
    waiting = asyncio.ensure_future(asyncio.to_thread(sync_queue.dequeue, WAIT))
    await asyncio.sleep(0.2)
    await async_queue.enqueue(b"late")
    assert await waiting == b"late"


async def test_sync_and_async_priority_queues_share_items(
    etcd_async_client: AsyncClient, etcd_client: Client, etcd_key_prefix: bytes
) -> None:
    """A PriorityQueue and an AsyncPriorityQueue on one prefix number one sequence."""
    name = etcd_key_prefix + b"prq"
    sync_queue = PriorityQueue(etcd_client, name)
    async_queue = AsyncPriorityQueue(namespace.wrap(etcd_async_client, etcd_key_prefix), b"prq")
    await asyncio.to_thread(sync_queue.enqueue, b"sync-2", 2)
    await async_queue.enqueue(b"async-2", 2)
    await async_queue.enqueue(b"async-1", 1)
    got = [await async_queue.dequeue(WAIT), await asyncio.to_thread(sync_queue.dequeue, WAIT)]
    assert got == [b"async-1", b"sync-2"]
    assert await async_queue.dequeue(WAIT) == b"async-2"


async def test_sync_writer_excludes_async_readers(
    etcd_async_client: AsyncClient, etcd_client: Client, etcd_key_prefix: bytes
) -> None:
    """An RWMutex writer and AsyncRWMutex readers on one prefix exclude each other."""
    name = etcd_key_prefix + b"rw"
    with Session(etcd_client, ttl=LONG_TTL) as sync_session:
        writer = RWMutex(sync_session, name)
        await asyncio.to_thread(writer.lock, WAIT)
        async with AsyncSession(etcd_async_client, ttl=LONG_TTL) as session:
            readers = [AsyncRWMutex(session, name) for _ in range(3)]
            reading = asyncio.ensure_future(asyncio.gather(*(r.rlock(WAIT) for r in readers)))
            await asyncio.sleep(0.3)
            assert not reading.done()
            await asyncio.to_thread(writer.unlock)
            await reading  # all three readers at once
            for reader in readers:
                await reader.runlock()


async def test_async_barrier_released_by_a_sync_holder(
    etcd_async_client: AsyncClient, etcd_client: Client, etcd_key_prefix: bytes
) -> None:
    """AsyncBarrier.wait returns when a sync Barrier on the same key is released."""
    name = etcd_key_prefix + b"b"
    holder = Barrier(etcd_client, name)
    await asyncio.to_thread(holder.hold)
    waiting = asyncio.ensure_future(AsyncBarrier(etcd_async_client, name).wait(WAIT))
    await asyncio.sleep(0.2)
    assert not waiting.done()
    await asyncio.to_thread(holder.release)
    await waiting


async def test_async_recipes_refuse_the_wrong_kind(
    etcd_async_client: AsyncClient, etcd_client: Client, etcd_key_prefix: bytes
) -> None:
    """A sync client or session given to an async recipe (and back) is a TypeError, before I/O."""
    with pytest.raises(TypeError, match="AsyncKV"):
        AsyncQueue(etcd_client, b"q")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="KV"):
        Queue(etcd_async_client, b"q")  # type: ignore[arg-type]
    with (
        Session(etcd_client, ttl=LONG_TTL) as session,
        pytest.raises(TypeError, match="AsyncSession"),
    ):
        AsyncRWMutex(session, b"rw")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not open"):
        AsyncDoubleBarrier(AsyncSession(etcd_async_client), b"db", 2)


async def test_async_recipes_work_through_a_full_layer_stack(
    etcd_async_client: AsyncClient, etcd_key_prefix: bytes
) -> None:
    """AsyncQueue and AsyncRWMutex through ordering over leasing over a namespace."""
    stack = ordering.wrap(
        await leasing.wrap(namespace.wrap(etcd_async_client, etcd_key_prefix), "lease/")
    )
    try:
        queue = AsyncQueue(stack, "q")
        waiting = asyncio.ensure_future(queue.dequeue(WAIT))
        await asyncio.sleep(0.2)
        await queue.enqueue(b"a")
        assert await waiting == b"a"
        async with AsyncSession(stack, ttl=LONG_TTL) as session:
            reader, writer = AsyncRWMutex(session, "rw"), AsyncRWMutex(session, "rw")
            await reader.rlock(WAIT)
            writing = asyncio.ensure_future(writer.lock(WAIT))
            await asyncio.sleep(0.3)
            assert not writing.done()
            await reader.runlock()
            await writing
            await writer.unlock()
        assert await keys(etcd_async_client, etcd_key_prefix + b"rw/") == []
    finally:
        await stack.close()


async def test_cancelled_enqueue_leaves_no_item(
    etcd_async_client: AsyncClient, etcd_key_prefix: bytes
) -> None:
    """Enqueuers cancelled at every point of their request leave only the items they reported."""
    acli = etcd_async_client
    name = etcd_key_prefix + b"q"
    queue = AsyncQueue(acli, name)
    finished = 0
    for round_index in range(20):
        task = asyncio.ensure_future(queue.enqueue(b"item"))
        for _ in range(round_index % 6):
            await asyncio.sleep(0)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
            finished += 1
    assert len(await keys(acli, name + b"/")) == finished
