"""The asyncio leasing shell (AsyncLeasingKV, AsyncOwnership, async_wait_deleted), no server.

The fakes record and answer from a script, as test_leasing_proxy.py's: `AsyncOver` gives the
sync recording fake coroutine calls, and the watch is a queue the test feeds.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Generator
from typing import Any, cast

import pytest
import pytest_asyncio
from async_kinds import AsyncOver
from test_leasing_proxy import LEASE, FakeBackend, P, acquire_answer, header

from etcd_layers import Op, leasing, ordering
from etcd_layers.base.async_waiting import wait_deleted as async_wait_deleted
from etcd_layers.base.deadline import Deadline
from etcd_layers.base.protocols import KV, AsyncKV, AsyncKVWatcherLease
from etcd_layers.base.responses import (
    Event,
    EventType,
    KeyValue,
    LeaseKeepAliveResponse,
    WatchResponse,
)
from etcd_layers.errors import (
    CompactedError,
    DeadlineExceededError,
    LeaseNotFoundError,
    UnavailableError,
)
from etcd_layers.leasing import AsyncLeasingClient, AsyncLeasingKV
from etcd_layers.leasing._async_session import AsyncOwnership
from etcd_layers.leasing._cache import LeaseCache
from etcd_layers.leasing._ownership import serving_window
from etcd_layers.leasing._protocol import REVOKE

pytestmark = pytest.mark.asyncio


class QueueWatch:
    """An async watch that yields what the test feeds it (None ends it) and records cancel()."""

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        self.queue: asyncio.Queue[WatchResponse | Exception | None] = asyncio.Queue()
        self.canceled = False

    def feed(self, item: WatchResponse | Exception | None) -> None:
        self.queue.put_nowait(item)

    def __aiter__(self) -> QueueWatch:
        return self

    async def __anext__(self) -> WatchResponse:
        return await self.next()

    async def next(self, timeout: float | None = None) -> WatchResponse:
        try:
            item = await asyncio.wait_for(self.queue.get(), timeout)
        except asyncio.TimeoutError:  # the builtin on 3.11+, a class of its own on 3.10
            raise TimeoutError("no watch response in time") from None
        if item is None:
            raise StopAsyncIteration
        if isinstance(item, Exception):
            raise item
        return item

    async def cancel(self) -> None:
        self.canceled = True
        self.feed(None)

    async def __aenter__(self) -> QueueWatch:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.cancel()


class QueueWatchStart:
    def __init__(self, watch: QueueWatch) -> None:
        self.watch = watch

    async def _started(self) -> QueueWatch:
        return self.watch

    def __await__(self) -> Generator[Any, None, QueueWatch]:
        return self._started().__await__()

    async def __aenter__(self) -> QueueWatch:
        return self.watch

    async def __aexit__(self, *exc_info: object) -> None:
        await self.watch.cancel()


class AsyncFake(AsyncOver):
    """The recording FakeBackend, spoken to with coroutines; its watches are QueueWatches."""

    def __init__(self, fake: FakeBackend) -> None:
        super().__init__(fake)
        self.queue_watches: list[QueueWatch] = []
        self.fill: list[WatchResponse | Exception | None] = []  # fed to each new watch

    def watch(self, key: bytes, **options: Any) -> QueueWatchStart:  # type: ignore[override]
        self.wrapped_fake.calls.append(("watch", key))
        watch = QueueWatch({"key": key, **options})
        for item in self.fill:
            watch.feed(item)
        self.queue_watches.append(watch)
        return QueueWatchStart(watch)


def as_async(fake: AsyncFake) -> AsyncKVWatcherLease:
    return cast(AsyncKVWatcherLease, fake)


async def eventually(condition: Callable[[], bool]) -> None:
    for _ in range(500):  # bounded: 5 s
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met")


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend()


@pytest.fixture
def speaker(backend: FakeBackend) -> AsyncFake:
    return AsyncFake(backend)


@pytest_asyncio.fixture
async def lkv(speaker: AsyncFake) -> AsyncIterator[AsyncLeasingClient]:
    wrapped = await leasing.wrap(as_async(speaker), P, ttl=60)
    yield wrapped
    await wrapped.close()


# --- wrap -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "error"),
    [({"prefix": ""}, ValueError), ({"ttl": 0}, ValueError), ({"max_keys": 0}, ValueError)],
)
async def test_async_wrap_checks_arguments_before_making_a_coroutine(
    backend: FakeBackend, speaker: AsyncFake, arguments: dict[str, Any], error: type[Exception]
) -> None:
    options: dict[str, Any] = {"prefix": P, **arguments}
    with pytest.raises(error):
        leasing.wrap(as_async(speaker), **options)  # type: ignore[unused-coroutine]
    assert backend.calls == []


async def test_async_wrap_refuses_a_speaker_without_watch_and_lease_calls() -> None:
    class OnlyDo:
        async def do(self, op: object, *, timeout: float | None = None) -> None: ...

    with pytest.raises(TypeError, match="AsyncKV"):
        leasing.wrap(OnlyDo(), P)  # type: ignore[call-overload]  # refused on purpose


async def test_async_wrap_is_a_coroutine_that_grants_and_watches(
    backend: FakeBackend, speaker: AsyncFake
) -> None:
    opening = leasing.wrap(as_async(speaker), P, ttl=30)
    assert asyncio.iscoroutine(opening)
    assert backend.calls == []  # nothing before it is awaited
    kv = await opening
    try:
        assert backend.calls == [("grant", 30), ("watch", P)]
        assert speaker.queue_watches[0].options["prefix"] is True
        assert isinstance(kv, AsyncLeasingKV)
        assert isinstance(kv, AsyncLeasingClient)
        assert isinstance(kv, AsyncKV)
        speaking: object = kv
        assert not isinstance(speaking, KV)
        assert kv.session_lease_id == LEASE
    finally:
        await kv.close()


async def test_async_close_revokes_the_session_and_leaves_the_client_open(
    backend: FakeBackend, speaker: AsyncFake
) -> None:
    async with await leasing.wrap(as_async(speaker), P) as kv:
        assert isinstance(kv, AsyncLeasingKV)
    assert ("revoke", LEASE) in backend.calls
    assert speaker.queue_watches[0].canceled
    assert not backend.closed
    assert kv.session_lease_id == 0
    await kv.close()  # idempotent
    assert backend.calls.count(("revoke", LEASE)) == 1


async def test_async_wrap_that_fails_to_watch_revokes_its_lease(
    backend: FakeBackend, speaker: AsyncFake
) -> None:
    def no_watch(key: bytes, **options: Any) -> QueueWatchStart:
        raise UnavailableError("unreachable")

    speaker.watch = no_watch  # type: ignore[method-assign]  # the watch cannot start
    with pytest.raises(UnavailableError):
        await leasing.wrap(as_async(speaker), P)
    assert ("revoke", LEASE) in backend.calls


# --- KV ---------------------------------------------------------------------------------------


async def test_async_get_acquires_once_then_answers_from_memory(
    backend: FakeBackend, lkv: AsyncLeasingClient
) -> None:
    backend.script.append(acquire_answer(5))
    first = await lkv.get("k")
    assert first.kvs[0].value == b"v"
    assert len(backend.ops()) == 1
    second = await lkv.get(b"k")
    assert second.kvs == first.kvs
    assert (await lkv.do(Op.get(b"k"))).kvs == first.kvs
    assert len(backend.ops()) == 1
    assert leasing.stats(ordering.wrap(lkv)).hits == 2


async def test_async_every_hit_path_gives_one_shared_answer(
    backend: FakeBackend, lkv: AsyncLeasingClient
) -> None:
    """As the sync shell: no option, serializable, timeout, keys_only and do(Op.get) hit."""
    backend.script.append(acquire_answer(5))
    await lkv.get("k")
    plain = await lkv.get(b"k")
    assert await lkv.get("k", serializable=True, timeout=5) is plain
    assert await lkv.do(Op.get("k", limit=1)) is plain
    bare = await lkv.get("k", keys_only=True)
    assert bare.kvs == [KeyValue(b"k", b"", 2, 2, 1)]
    assert await lkv.do(Op.get("k", keys_only=True), timeout=1) is bare
    with pytest.raises(ValueError, match="timeout"):
        await lkv.get("k", timeout=0)
    assert len(backend.ops()) == 1
    assert lkv.stats.hits == 5


async def test_async_forwards_watcher_and_lease_calls(
    backend: FakeBackend, lkv: AsyncLeasingClient
) -> None:
    await lkv.time_to_live(3)
    await lkv.leases()
    compacted: object = await lkv.compact(4)
    assert compacted == "compacted"
    assert ("time_to_live", 3) in backend.calls
    assert ("leases", None) in backend.calls


async def test_async_revoke_event_forgets_the_key_and_sends_its_release(
    backend: FakeBackend, speaker: AsyncFake, lkv: AsyncLeasingClient
) -> None:
    """The watch task applies the REVOKE; the release task, woken by the cache, deletes."""
    backend.script.append(acquire_answer(5))
    await lkv.get("k")
    revoke = KeyValue(P + b"k", REVOKE, 5, 9, 2, LEASE)
    speaker.queue_watches[0].feed(WatchResponse(header(9), events=[Event(EventType.PUT, revoke)]))
    await eventually(lambda: ("release", P + b"k") in backend.calls)
    assert lkv.stats.revocations == 1
    assert lkv.stats.cached_keys == 0


async def test_async_failed_watch_gives_back_everything_and_watches_again(
    backend: FakeBackend, speaker: AsyncFake, lkv: AsyncLeasingClient
) -> None:
    backend.script.append(acquire_answer(5))
    await lkv.get("k")
    speaker.queue_watches[0].feed(CompactedError("compacted", compact_revision=3))
    await eventually(lambda: len(speaker.queue_watches) == 2)
    await eventually(lambda: ("release", P + b"k") in backend.calls)
    assert lkv.stats.cached_keys == 0


# --- ownership --------------------------------------------------------------------------------


async def started_ownership(
    backend: FakeBackend, clock: Callable[[], float]
) -> tuple[AsyncOwnership, LeaseCache]:
    cache = LeaseCache(clock=clock)
    owner = AsyncOwnership(as_async(AsyncFake(backend)), cache, asyncio.Event(), P, 60, clock=clock)
    await owner.grant(1.0)
    cache.set_watching(watching=True)
    return owner, cache


async def test_async_renewal_extends_serving_from_when_it_was_sent(backend: FakeBackend) -> None:
    now = [10.0]
    owner, cache = await started_ownership(backend, lambda: now[0])
    now[0] = 70.0
    assert cache.may_acquire(b"k") == 0
    assert await owner.renew()
    assert ("keep_alive_once", LEASE) in backend.calls
    assert cache.may_acquire(b"k") == LEASE
    now[0] = 70.0 + serving_window(60)
    assert cache.may_acquire(b"k") == 0


async def test_async_lost_lease_clears_the_cache(backend: FakeBackend) -> None:
    owner, cache = await started_ownership(backend, lambda: 10.0)

    def gone(lease_id: int, **options: Any) -> LeaseKeepAliveResponse:
        raise LeaseNotFoundError("requested lease not found")

    backend.keep_alive_once = gone  # type: ignore[method-assign]  # a failing renewal
    assert await owner.renew()
    assert owner.lease_id == 0
    assert cache.stats().session_losses == 1


async def test_async_unconfirmed_renewals_end_the_session_after_the_ttl(
    backend: FakeBackend,
) -> None:
    now = [10.0]
    owner, cache = await started_ownership(backend, lambda: now[0])

    def unreachable(lease_id: int, **options: Any) -> LeaseKeepAliveResponse:
        raise UnavailableError("unreachable")

    backend.keep_alive_once = unreachable  # type: ignore[method-assign]  # a failing renewal
    now[0] = 30.0
    assert not await owner.renew()
    assert cache.lease_id == LEASE
    now[0] = 70.0
    assert await owner.renew()
    assert cache.lease_id == 0


# --- waiting for a delete ---------------------------------------------------------------------


async def test_async_wait_deleted_watches_from_the_next_revision_for_deletes(
    speaker: AsyncFake,
) -> None:
    gone = Event(EventType.DELETE, KeyValue(b"k", b"", 0, 8, 0))
    speaker.fill = [WatchResponse(header(7)), WatchResponse(header(8), events=[gone])]
    assert await async_wait_deleted(as_async(speaker), b"k", 6, Deadline(5.0))
    watch = speaker.queue_watches[0]
    assert watch.options["start_revision"] == 7
    assert watch.options["filter_put"] is True
    assert watch.canceled


async def test_async_wait_deleted_answers_false_when_compacted(speaker: AsyncFake) -> None:
    speaker.fill = [CompactedError("compacted", compact_revision=9)]
    assert not await async_wait_deleted(as_async(speaker), b"k", 6, Deadline(5.0))


async def test_async_wait_deleted_raises_at_its_deadline(speaker: AsyncFake) -> None:
    with pytest.raises(DeadlineExceededError):
        await async_wait_deleted(as_async(speaker), b"k", 6, Deadline(0.05))
    assert speaker.queue_watches[0].canceled
