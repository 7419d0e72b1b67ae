"""The pure pieces the sync and async concurrency shells share, and base.async_waiting, offline."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import cast

import pytest

from etcd_layers.base.async_protocols import AsyncWatch, AsyncWatcher
from etcd_layers.base.async_waiting import next_response, wait_deleted
from etcd_layers.base.deadline import Deadline
from etcd_layers.base.responses import (
    Event,
    EventType,
    GetResponse,
    KeyValue,
    ResponseHeader,
    WatchResponse,
)
from etcd_layers.base.waiting import WAIT_SLICE, watch_slice
from etcd_layers.concurrency._observe import LeaderFollower, WatchFrom
from etcd_layers.concurrency._protocol import (
    Queued,
    first_created,
    holds_first,
    needs_value,
)
from etcd_layers.errors import CanceledError, CompactedError, DeadlineExceededError

CONTENDERS = b"election/"


def header(revision: int) -> ResponseHeader:
    return ResponseHeader(1, 2, revision, 3)


def kv(key: bytes, create_revision: int, value: bytes = b"", mod_revision: int = 0) -> KeyValue:
    return KeyValue(key, value, create_revision, mod_revision or create_revision, 1)


def watched(revision: int, *events: tuple[EventType, KeyValue]) -> WatchResponse:
    return WatchResponse(header(revision), [Event(kind, item) for kind, item in events])


# --- small pure decisions -------------------------------------------------------------------


def test_watch_slice_bounds_an_unbounded_wait() -> None:
    assert watch_slice(None) == WAIT_SLICE
    assert watch_slice(1.5) == 1.5


@pytest.mark.parametrize(
    ("created", "old", "new", "needed"),
    [(True, b"", b"v", False), (False, b"v", b"v", False), (False, b"v", b"w", True)],
)
def test_needs_value_only_for_an_existing_key_with_another_value(
    created: bool, old: bytes, new: bytes, needed: bool
) -> None:
    queued = Queued(5, created, old, None, header(5))
    assert needs_value(queued, new) is needed


def test_holds_first_compares_the_oldest_key() -> None:
    assert holds_first(GetResponse(header(3), [kv(b"l/a", 2)], count=1), b"l/a")
    assert not holds_first(GetResponse(header(3), [kv(b"l/b", 2)], count=1), b"l/a")
    assert not holds_first(GetResponse(header(3), [], count=0), b"l/a")


# --- LeaderFollower -------------------------------------------------------------------------


def test_follower_without_a_leader_watches_the_prefix_after_the_read() -> None:
    follower = LeaderFollower(CONTENDERS)
    assert follower.read() == first_created(CONTENDERS)
    start = follower.on_read(GetResponse(header(7), [], count=0))
    assert start == WatchFrom(CONTENDERS, True, 8)
    assert not follower.pending
    assert follower.on_watch(watched(8, (EventType.DELETE, kv(b"election/x", 3)))) == (
        False,
        None,
    )
    leader = kv(b"election/a", 9, b"v1")
    stop, then = follower.on_watch(watched(10, (EventType.PUT, leader)))
    assert (stop, then) == (True, WatchFrom(b"election/a", False, 10))
    (change,) = follower.pending
    assert change.kvs == [leader]
    assert change.header.revision == 9  # the put's revision, not the batch's


def test_follower_queues_new_values_and_reads_again_after_the_delete() -> None:
    follower = LeaderFollower(CONTENDERS)
    leader = kv(b"election/a", 4, b"v1", 5)
    assert follower.on_read(GetResponse(header(6), [leader], count=1)) == WatchFrom(
        b"election/a", False, 7
    )
    updated = kv(b"election/a", 4, b"v2", 8)
    gone = kv(b"election/a", 4, b"", 9)
    stop, then = follower.on_watch(
        watched(9, (EventType.PUT, updated), (EventType.DELETE, gone), (EventType.PUT, updated))
    )
    assert (stop, then) == (True, None)  # read the leader afresh
    assert [change.kvs[0].value for change in follower.pending] == [b"v1", b"v2"]


def test_follower_does_not_repeat_a_change_read_again() -> None:
    """A leader read again (after a compaction) with the same mod_revision is not re-queued."""
    follower = LeaderFollower(CONTENDERS)
    leader = kv(b"election/a", 4, b"v1", 5)
    follower.on_read(GetResponse(header(6), [leader], count=1))
    follower.pending.clear()
    follower.on_read(GetResponse(header(12), [leader], count=1))
    assert not follower.pending


# --- base.async_waiting ---------------------------------------------------------------------


class FakeAsyncWatch:
    """Hands out canned responses (an exception is raised), then waits until canceled."""

    def __init__(self, *items: WatchResponse | Exception) -> None:
        self.items = deque(items)
        self.canceled = asyncio.Event()
        self.timeouts: list[float | None] = []

    async def next(self, timeout: float | None = None) -> WatchResponse:
        self.timeouts.append(timeout)
        if not self.items:
            await self.canceled.wait()
        if self.canceled.is_set():
            raise CanceledError("watch canceled")
        item = self.items.popleft()
        if isinstance(item, Exception):
            raise item
        return item

    async def cancel(self) -> None:
        self.canceled.set()

    async def __aenter__(self) -> FakeAsyncWatch:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.cancel()


class FakeAsyncWatcher:
    def __init__(self, watch: FakeAsyncWatch) -> None:
        self.made = watch
        self.asked: list[tuple[bytes, dict[str, object]]] = []

    def watch(self, key: bytes, **options: object) -> FakeAsyncWatch:
        self.asked.append((key, options))
        return self.made


def wait_on(watch: FakeAsyncWatch, **options: object) -> tuple[bool, FakeAsyncWatcher]:
    watcher = FakeAsyncWatcher(watch)
    done = asyncio.run(
        wait_deleted(cast(AsyncWatcher, watcher), b"lock/older", 14, Deadline(None), **options)  # type: ignore[arg-type]
    )
    return done, watcher


def test_async_wait_deleted_watches_deletes_from_the_next_revision() -> None:
    watch = FakeAsyncWatch(
        watched(15, (EventType.PUT, kv(b"lock/older", 3))),
        watched(16, (EventType.DELETE, kv(b"lock/older", 3))),
    )
    done, watcher = wait_on(watch)
    assert done is True
    ((key, options),) = watcher.asked
    assert (key, options["start_revision"], options["filter_put"]) == (b"lock/older", 15, True)
    assert watch.timeouts == [WAIT_SLICE, WAIT_SLICE]


def test_async_wait_deleted_compacted_history_returns_false() -> None:
    assert wait_on(FakeAsyncWatch(CompactedError("compacted", compact_revision=20)))[0] is False


def test_async_wait_deleted_cancel_hook_ends_the_wait_and_is_undone() -> None:
    hooks: list[Callable[[], None]] = []
    undone: list[bool] = []

    def cancel_on(callback: Callable[[], None]) -> Callable[[], None]:
        hooks.append(callback)
        asyncio.get_running_loop().call_soon(callback)  # the session ends while waiting
        return lambda: undone.append(True)

    with pytest.raises(CanceledError):
        wait_on(FakeAsyncWatch(), cancel_on=cancel_on)
    assert len(hooks) == 1
    assert undone == [True]


class PassingDeadline(Deadline):
    """A deadline with time left when asked, and passed once the watch has timed out."""

    def remaining(self) -> float | None:
        return 1.0

    def expired(self) -> bool:
        return True


def test_async_next_response_outlasts_slices_and_raises_at_the_deadline() -> None:
    response = watched(4)
    watch = FakeAsyncWatch(TimeoutError("client default"), response)
    assert asyncio.run(next_response(cast(AsyncWatch, watch), Deadline(None))) is response
    passing = FakeAsyncWatch(TimeoutError("nothing"), response)
    with pytest.raises(DeadlineExceededError) as raised:
        asyncio.run(next_response(cast(AsyncWatch, passing), PassingDeadline(None)))
    assert isinstance(raised.value, TimeoutError)
    assert passing.timeouts == [1.0]
