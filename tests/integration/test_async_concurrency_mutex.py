"""AsyncMutex against a real etcd, alone and sharing one lock with Mutex."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable

import pytest
from layer_kinds import Backend

from etcd_layers import AsyncClient, Client, Op, SortOrder, SortTarget, errors, namespace
from etcd_layers.base import AsyncKV
from etcd_layers.concurrency import (
    AsyncMutex,
    AsyncSession,
    LockNotHeldError,
    Mutex,
    Session,
    SessionExpiredError,
)

pytestmark = pytest.mark.asyncio

TTL = 2  # etcd's smallest lease TTL with the default election timeout
LONG_TTL = 5  # sessions that must outlive the test (kept alive all along)
REVOKED_TTL = 3  # renewed every second, so a session notices a revoke within about one
WAIT = 20.0  # bound on every blocking step of a test


@pytest.fixture
def etcd_async_client(backend_async_client: AsyncClient) -> AsyncClient:
    """An AsyncClient on the test's backend: the session's etcd, then a MemoryEtcd."""
    return backend_async_client


@pytest.fixture
def etcd_client(backend: Backend) -> Client:
    """A sync client on the same backend."""
    return backend.client()


async def contenders(client: AsyncKV, prefix: bytes) -> list[bytes]:
    """The keys queued on the lock, oldest first."""
    oldest_first = Op.get(
        prefix + b"/", prefix=True, sort_target=SortTarget.CREATE, sort_order=SortOrder.ASCEND
    )
    return [kv.key for kv in (await client.do(oldest_first)).kvs]


async def until(check: Callable[[], Awaitable[bool]], message: str) -> None:
    """Wait until `check()` holds, polling, for at most WAIT seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while not await check():
        assert loop.time() < deadline, f"timed out waiting until {message}"
        await asyncio.sleep(0.02)


async def queued_more(client: AsyncKV, lock_name: bytes, before: int) -> None:
    async def more() -> bool:
        return len(await contenders(client, lock_name)) > before

    await until(more, "the waiter queued")


# --- AsyncMutex ------------------------------------------------------------------------------


async def test_async_mutex_50_tasks_exclude_each_other(
    etcd_async_client: AsyncClient, etcd_key_prefix: bytes
) -> None:
    """50 tasks, each with its own session on one client, increment a counter under the lock."""
    acli = etcd_async_client
    lock_name, counter = etcd_key_prefix + b"lock", etcd_key_prefix + b"counter"
    await acli.put(counter, b"0")
    inside = threading.Lock()
    overlaps: list[int] = []

    async def work(index: int) -> None:
        async with AsyncSession(acli, ttl=LONG_TTL) as session:
            mutex = AsyncMutex(session, lock_name)
            async with mutex:
                if not inside.acquire(blocking=False):
                    overlaps.append(index)
                    return
                try:
                    value = int((await acli.get(counter)).kvs[0].value)
                    await asyncio.sleep(0)  # let the others run while held
                    await acli.put(counter, str(value + 1))
                finally:
                    inside.release()

    await asyncio.wait_for(asyncio.gather(*(work(index) for index in range(50))), 120)
    assert overlaps == []
    assert (await acli.get(counter)).kvs[0].value == b"50"
    assert await contenders(acli, lock_name) == []


async def test_async_and_sync_mutexes_exclude_each_other(
    etcd_async_client: AsyncClient, etcd_client: Client, etcd_key_prefix: bytes
) -> None:
    """Threads with Mutex and tasks with AsyncMutex share one lock: no increment is lost."""
    acli = etcd_async_client
    lock_name, counter = etcd_key_prefix + b"lock", etcd_key_prefix + b"counter"
    await acli.put(counter, b"0")
    inside = threading.Lock()
    overlaps: list[str] = []
    rounds = 5

    def sync_work() -> None:
        with Session(etcd_client, ttl=LONG_TTL) as session:
            mutex = Mutex(session, lock_name)
            for _ in range(rounds):
                with mutex:
                    if not inside.acquire(blocking=False):
                        overlaps.append("sync")
                        continue
                    value = int(etcd_client.get(counter).kvs[0].value)
                    etcd_client.put(counter, str(value + 1))
                    inside.release()

    async def async_work() -> None:
        async with AsyncSession(acli, ttl=LONG_TTL) as session:
            mutex = AsyncMutex(session, lock_name)
            for _ in range(rounds):
                async with mutex:
                    if not inside.acquire(blocking=False):
                        overlaps.append("async")
                        continue
                    value = int((await acli.get(counter)).kvs[0].value)
                    await acli.put(counter, str(value + 1))
                    inside.release()

    work = [asyncio.to_thread(sync_work) for _ in range(3)] + [async_work() for _ in range(3)]
    await asyncio.wait_for(asyncio.gather(*work), 120)
    assert overlaps == []
    assert (await acli.get(counter)).kvs[0].value == str(6 * rounds).encode()
    assert await contenders(acli, lock_name) == []


def sync_waiter(mutex: Mutex, order: list[str], name: str) -> None:
    """Take the lock, note `name`, release it and end the session."""
    with mutex:
        order.append(name)
    mutex.session.close()


async def async_waiter(mutex: AsyncMutex, order: list[str], name: str) -> None:
    async with mutex:
        order.append(name)
    await mutex.session.close()


async def test_async_and_sync_waiters_are_served_in_queue_order(
    etcd_async_client: AsyncClient, etcd_client: Client, etcd_key_prefix: bytes
) -> None:
    """Sync and async waiters queued alternately get the lock in the order they queued."""
    acli = etcd_async_client
    lock_name = etcd_key_prefix + b"lock"
    order: list[str] = []
    waiters: list[asyncio.Future[None]] = []
    async with AsyncSession(acli, ttl=LONG_TTL) as holder_session:
        holder = AsyncMutex(holder_session, lock_name)
        await holder.lock(timeout=WAIT)
        for index, kind in enumerate(["sync", "async", "sync", "async"]):
            name = f"{index}-{kind}"
            before = len(await contenders(acli, lock_name))
            if kind == "sync":
                session = await asyncio.to_thread(Session, etcd_client, ttl=LONG_TTL)
                waiter = asyncio.to_thread(sync_waiter, Mutex(session, lock_name), order, name)
            else:
                async_session = await AsyncSession(acli, ttl=LONG_TTL)
                waiter = async_waiter(AsyncMutex(async_session, lock_name), order, name)
            waiters.append(asyncio.ensure_future(waiter))
            await queued_more(acli, lock_name, before)
        assert order == []
        await holder.unlock()
        await asyncio.wait_for(asyncio.gather(*waiters), WAIT)
    assert order == ["0-sync", "1-async", "2-sync", "3-async"]


async def test_async_mutex_try_lock_reentrancy_and_owner_compare(
    etcd_async_client: AsyncClient, etcd_key_prefix: bytes
) -> None:
    acli = etcd_async_client
    lock_name, data = etcd_key_prefix + b"lock", etcd_key_prefix + b"data"
    async with AsyncSession(acli, ttl=LONG_TTL) as first, AsyncSession(acli, ttl=LONG_TTL) as two:
        holder, other = AsyncMutex(first, lock_name), AsyncMutex(two, lock_name)
        with pytest.raises(LockNotHeldError):
            holder.owner_compare()
        assert await holder.try_lock() is True
        assert await other.try_lock() is False
        assert await contenders(acli, lock_name) == [holder.key]
        again = AsyncMutex(first, lock_name)
        await again.lock(timeout=1)  # the same session: at once, on the one key
        assert await again.is_owner()
        assert holder.header is not None
        guard = holder.owner_compare()
        assert (await acli.txn([guard], [Op.put(data, b"held")])).succeeded
        await holder.unlock()
        assert not (await acli.txn([guard], [Op.put(data, b"stale")])).succeeded
        assert await other.try_lock() is True
        assert await other.is_owner()
        assert not await holder.is_owner()


async def test_async_mutex_lock_timeout_leaves_no_waiter_key(
    etcd_async_client: AsyncClient, etcd_key_prefix: bytes
) -> None:
    acli = etcd_async_client
    lock_name = etcd_key_prefix + b"lock"
    async with AsyncSession(acli, ttl=LONG_TTL) as first, AsyncSession(acli, ttl=LONG_TTL) as two:
        holder, waiter = AsyncMutex(first, lock_name), AsyncMutex(two, lock_name)
        await holder.lock(timeout=WAIT)
        with pytest.raises(errors.DeadlineExceededError) as raised:
            await waiter.lock(timeout=0.5)
        assert isinstance(raised.value, TimeoutError)
        assert await contenders(acli, lock_name) == [holder.key]


@pytest.mark.parametrize("when", ["queued", "at_once"])
async def test_cancelling_lock_withdraws_the_waiter_key(
    etcd_async_client: AsyncClient, etcd_key_prefix: bytes, when: str
) -> None:
    """Cancelling the task in `await m.lock()`, waiting or mid-request, leaves no key behind."""
    acli = etcd_async_client
    lock_name = etcd_key_prefix + b"lock"
    async with AsyncSession(acli, ttl=LONG_TTL) as first, AsyncSession(acli, ttl=LONG_TTL) as two:
        holder, waiter = AsyncMutex(first, lock_name), AsyncMutex(two, lock_name)
        await holder.lock(timeout=WAIT)
        task = asyncio.ensure_future(waiter.lock())
        if when == "queued":
            await queued_more(acli, lock_name, 1)
        else:
            await asyncio.sleep(0)  # the enqueue txn is on its way
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

        async def only_the_holder() -> bool:
            return await contenders(acli, lock_name) == [holder.key]

        await until(only_the_holder, "the canceled waiter's key is gone")
        await asyncio.sleep(0.2)  # a late enqueue would show up by now
        assert await contenders(acli, lock_name) == [holder.key]
        await holder.unlock()
        assert await waiter.try_lock() is True  # the session is still usable


async def test_async_waiter_gets_the_lock_when_the_sync_holder_session_is_revoked(
    etcd_async_client: AsyncClient, etcd_client: Client, etcd_key_prefix: bytes
) -> None:
    """A holder whose lease is revoked loses the lock; the waiter on the other kind gets it."""
    acli = etcd_async_client
    lock_name = etcd_key_prefix + b"lock"
    doomed_session = await asyncio.to_thread(Session, etcd_client, ttl=REVOKED_TTL)
    await asyncio.to_thread(Mutex(doomed_session, lock_name).lock, timeout=WAIT)
    async with AsyncSession(acli, ttl=LONG_TTL) as session:
        waiter = AsyncMutex(session, lock_name)
        task = asyncio.ensure_future(waiter.lock(timeout=WAIT))
        await queued_more(acli, lock_name, 1)
        assert not task.done()
        await acli.revoke(doomed_session.lease_id)
        await asyncio.wait_for(task, 5)
        assert await waiter.is_owner()
        assert await asyncio.to_thread(doomed_session.done.wait, 5)
        await waiter.unlock()
    await asyncio.to_thread(doomed_session.close)


async def test_sync_waiter_gets_the_lock_when_the_async_holder_session_is_revoked(
    etcd_async_client: AsyncClient, etcd_client: Client, etcd_key_prefix: bytes
) -> None:
    acli = etcd_async_client
    lock_name = etcd_key_prefix + b"lock"
    doomed_session = await AsyncSession(acli, ttl=REVOKED_TTL)
    await AsyncMutex(doomed_session, lock_name).lock(timeout=WAIT)
    session = await asyncio.to_thread(Session, etcd_client, ttl=LONG_TTL)
    waiter = Mutex(session, lock_name)
    task = asyncio.ensure_future(asyncio.to_thread(waiter.lock, timeout=WAIT))
    await queued_more(acli, lock_name, 1)
    await acli.revoke(doomed_session.lease_id)
    await asyncio.wait_for(task, 5)
    await asyncio.wait_for(doomed_session.done.wait(), 5)
    assert isinstance(doomed_session.error, errors.LeaseNotFoundError)
    assert await asyncio.to_thread(waiter.is_owner)
    await asyncio.to_thread(session.close)
    await doomed_session.close()


async def test_async_waiter_fails_when_its_own_session_ends(
    etcd_async_client: AsyncClient, etcd_key_prefix: bytes
) -> None:
    acli = etcd_async_client
    lock_name = etcd_key_prefix + b"lock"
    async with AsyncSession(acli, ttl=LONG_TTL) as holder_session:
        holder = AsyncMutex(holder_session, lock_name)
        await holder.lock(timeout=WAIT)
        session = await AsyncSession(acli, ttl=REVOKED_TTL)
        task = asyncio.ensure_future(AsyncMutex(session, lock_name).lock(timeout=WAIT))
        await queued_more(acli, lock_name, 1)
        await acli.revoke(session.lease_id)
        with pytest.raises(SessionExpiredError):
            await asyncio.wait_for(task, 10)
        await asyncio.wait_for(session.done.wait(), 5)
        assert await contenders(acli, lock_name) == [holder.key]
        await session.close()


async def test_async_mutex_through_a_namespace_contends_with_the_raw_prefix(
    etcd_async_client: AsyncClient, etcd_client: Client, etcd_key_prefix: bytes
) -> None:
    """An AsyncMutex on `namespace.wrap(acli, p)` is the same lock as a Mutex on p + name."""
    tenant = namespace.wrap(etcd_async_client, etcd_key_prefix)
    async with AsyncSession(tenant, ttl=LONG_TTL) as inner:
        namespaced = AsyncMutex(inner, "lock")
        with Session(etcd_client, ttl=LONG_TTL) as outer:
            raw = Mutex(outer, etcd_key_prefix + b"lock")
            await namespaced.lock(timeout=WAIT)
            assert await asyncio.to_thread(raw.try_lock) is False
            assert await contenders(etcd_async_client, etcd_key_prefix + b"lock") == [
                etcd_key_prefix + namespaced.key
            ]
            waiting = asyncio.ensure_future(asyncio.to_thread(raw.lock, timeout=WAIT))
            await queued_more(etcd_async_client, etcd_key_prefix + b"lock", 1)
            await namespaced.unlock()
            await asyncio.wait_for(waiting, WAIT)
            assert await namespaced.try_lock() is False
            task = asyncio.ensure_future(namespaced.lock(timeout=WAIT))
            await queued_more(etcd_async_client, etcd_key_prefix + b"lock", 1)
            await asyncio.to_thread(raw.unlock)
            await asyncio.wait_for(task, WAIT)
            assert await namespaced.is_owner()
    assert (await etcd_async_client.get(etcd_key_prefix, prefix=True)).count == 0
