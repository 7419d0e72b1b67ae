"""Waiting on a watch within a deadline: for its next response, or until a key is deleted.

Mutex and Election wait for the key ahead of theirs to go, and a leasing writer waits for an
owner to let go of its leasing key; all three call `wait_deleted`. The decisions (where the
watch starts, which responses end the wait) are `delete_watch_start` and `has_delete`, pure,
so the asyncio twin of `wait_deleted` (base.async_waiting) shares them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, TypeAlias

from etcd_layers.base.deadline import Deadline
from etcd_layers.base.protocols import Watch, Watcher
from etcd_layers.base.responses import EventType, WatchResponse
from etcd_layers.errors import CompactedError, DeadlineExceededError

WAIT_SLICE: Final = 60.0  # seconds an unbounded wait on a watch asks for at a time

# Registers a callback that must end the wait (Session.on_done, say); returns its unregister.
CancelHook: TypeAlias = Callable[[Callable[[], None]], Callable[[], None]]


def delete_watch_start(revision: int) -> int:
    """Return where to watch for a delete of a key that existed at `revision`.

    One revision on: the key existed then, so its delete comes later, and a watch from a
    revision not yet past goes straight into etcd's synced group (a past one waits for the
    next 100 ms sync pass).
    """
    return revision + 1


def has_delete(response: WatchResponse) -> bool:
    """Whether a watch response carries a delete event."""
    return any(event.type == EventType.DELETE for event in response.events)


def watch_slice(left: float | None) -> float:
    """Return how long one wait on a watch may ask for, with `left` seconds to go (None: for ever).

    A watch's `next(None)` would stop at the client's default timeout, so an unbounded wait
    asks again after each slice instead.
    """
    return WAIT_SLICE if left is None else left


def next_response(watch: Watch, deadline: Deadline) -> WatchResponse:
    """Return the next response of `watch`, waiting until `deadline` (unbounded: for ever).

    Raises:
        DeadlineExceededError: nothing arrived by `deadline` (a TimeoutError).
        CanceledError: the watch ended.
    """
    while True:
        left = deadline.remaining()
        try:
            return watch.next(timeout=watch_slice(left))
        except DeadlineExceededError:
            raise
        except TimeoutError as err:  # the builtin: this slice, or the whole deadline, passed
            if deadline.expired():
                raise DeadlineExceededError("deadline exceeded waiting for a watch") from err


def wait_deleted(
    watcher: Watcher,
    key: bytes,
    revision: int,
    deadline: Deadline,
    *,
    cancel_on: CancelHook | None = None,
) -> bool:
    """Return once `key`, which existed at `revision`, has been deleted after it.

    A delete that already happened is replayed by the watch, so this returns at once. Go's
    `waitDelete` (concurrency) and `waitForDeletes` (leasing) do the same.

    Args:
        watcher: what to watch through (a Client, or a layer on one).
        key: the key to wait for.
        revision: a revision at which `key` existed (the read or write that saw it).
        deadline: when to give up; unbounded waits for ever.
        cancel_on: registers the watch's cancel with whatever must end the wait early (a
            session's end, say); the registration is undone when the wait returns.

    Returns:
        True once the delete was seen; False if the history after `revision` is compacted,
        so the caller must look at the key again.

    Raises:
        DeadlineExceededError: `deadline` passed first.
        CanceledError: the watch ended (canceled through `cancel_on`, or the client closed).
    """
    watch = watcher.watch(
        key,
        start_revision=delete_watch_start(revision),
        filter_put=True,  # only deletes matter
        timeout=deadline.remaining(),
    )
    with watch:
        unregister = None if cancel_on is None else cancel_on(watch.cancel)
        try:
            while True:
                try:
                    response = next_response(watch, deadline)
                except CompactedError:
                    return False  # too old to tell
                if has_delete(response):
                    return True
        finally:
            if unregister is not None:
                unregister()
