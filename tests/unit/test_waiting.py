"""base.waiting without a server: where a delete is watched from, and what ends the wait."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import cast

import pytest

from etcd_layers.base.deadline import Deadline
from etcd_layers.base.protocols import Watcher
from etcd_layers.base.responses import Event, EventType, KeyValue, ResponseHeader, WatchResponse
from etcd_layers.base.waiting import delete_watch_start, wait_deleted
from etcd_layers.errors import CanceledError, CompactedError

KEY = b"lock/older"


def response(revision: int, *kinds: EventType) -> WatchResponse:
    item = KeyValue(KEY, b"", 3, revision, 1)
    return WatchResponse(ResponseHeader(1, 2, revision, 3), [Event(kind, item) for kind in kinds])


class FakeWatch:
    """Hands out canned responses (an exception is raised), then reports the watch ended."""

    def __init__(self, *items: WatchResponse | Exception) -> None:
        self.items = deque(items)
        self.canceled = False

    def next(self, timeout: float | None = None) -> WatchResponse:
        if self.canceled or not self.items:
            raise CanceledError("watch canceled")
        item = self.items.popleft()
        if isinstance(item, Exception):
            raise item
        return item

    def cancel(self) -> None:
        self.canceled = True

    def __enter__(self) -> FakeWatch:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.cancel()


class FakeWatcher:
    """Records the watches asked for and returns one canned watch."""

    def __init__(self, watch: FakeWatch) -> None:
        self.watch_made = watch
        self.asked: list[tuple[bytes, dict[str, object]]] = []

    def watch(self, key: bytes, **options: object) -> FakeWatch:
        self.asked.append((key, options))
        return self.watch_made


def wait(watch: FakeWatch, **options: Callable[[Callable[[], None]], Callable[[], None]]) -> bool:
    watcher = FakeWatcher(watch)
    done = wait_deleted(cast(Watcher, watcher), KEY, 14, Deadline(None), **options)
    assert watcher.asked == [
        (KEY, {"start_revision": 15, "filter_put": True, "timeout": None}),
    ]
    return done


def test_delete_watch_start_is_one_after_the_revision_the_key_was_seen_at() -> None:
    """The key existed at the revision, so its delete comes at a later one."""
    assert delete_watch_start(14) == 15


def test_wait_deleted_returns_on_a_delete_and_ignores_other_events() -> None:
    """Only a delete of the key ends the wait, and the watch is closed after it."""
    watch = FakeWatch(response(15, EventType.PUT), response(16, EventType.PUT, EventType.DELETE))
    assert wait(watch)
    assert watch.canceled


def test_wait_deleted_compacted_history_returns_false() -> None:
    """A compacted history cannot tell: the caller is told to look at the key again."""
    assert not wait(FakeWatch(CompactedError("compacted", 20)))


def test_wait_deleted_cancel_hook_ends_the_wait_and_is_undone() -> None:
    """The watch's cancel is registered through cancel_on, and unregistered on return."""
    registered: list[Callable[[], None]] = []
    unregistered: list[bool] = []

    def cancel_on(callback: Callable[[], None]) -> Callable[[], None]:
        registered.append(callback)
        callback()  # the session is over already: the callback runs at once
        return lambda: unregistered.append(True)

    with pytest.raises(CanceledError):
        wait(FakeWatch(response(15, EventType.DELETE)), cancel_on=cancel_on)
    assert len(registered) == 1
    assert unregistered == [True]
