"""Waiting on an async watch within a deadline: the asyncio twin of base.waiting.

The decisions (where a delete watch starts, which responses end the wait, how long one wait
asks for) are base.waiting's pure functions; this module only awaits.
"""

from __future__ import annotations

import asyncio

from etcd_layers.base.async_protocols import AsyncWatch, AsyncWatcher
from etcd_layers.base.deadline import Deadline
from etcd_layers.base.responses import WatchResponse
from etcd_layers.base.waiting import CancelHook, delete_watch_start, has_delete, watch_slice
from etcd_layers.errors import CompactedError, DeadlineExceededError

__all__ = ["next_response", "wait_deleted"]


async def next_response(watch: AsyncWatch, deadline: Deadline) -> WatchResponse:
    """Return the next response of `watch`, waiting until `deadline` (see waiting.next_response).

    Raises:
        DeadlineExceededError: nothing arrived by `deadline` (a TimeoutError).
        CanceledError: the watch ended.
    """
    while True:
        left = deadline.remaining()
        try:
            return await watch.next(timeout=watch_slice(left))
        except DeadlineExceededError:
            raise
        except TimeoutError as err:  # the builtin: this slice, or the whole deadline, passed
            if deadline.expired():
                raise DeadlineExceededError("deadline exceeded waiting for a watch") from err


async def wait_deleted(
    watcher: AsyncWatcher,
    key: bytes,
    revision: int,
    deadline: Deadline,
    *,
    cancel_on: CancelHook | None = None,
) -> bool:
    """Return once `key`, which existed at `revision`, has been deleted after it.

    As waiting.wait_deleted; `cancel_on` registers a plain callback, called on the event
    loop, that cancels the watch (an AsyncSession's `on_done`, say).

    Returns:
        True once the delete was seen; False if the history after `revision` is compacted.

    Raises:
        DeadlineExceededError: `deadline` passed first.
        CanceledError: the watch ended (canceled through `cancel_on`, or the client closed).
    """
    async with watcher.watch(
        key,
        start_revision=delete_watch_start(revision),
        filter_put=True,  # only deletes matter
        timeout=deadline.remaining(),
    ) as watch:
        cancels: set[asyncio.Task[None]] = set()

        def cancel() -> None:
            task = asyncio.ensure_future(watch.cancel())
            cancels.add(task)  # a reference until it ran
            task.add_done_callback(cancels.discard)

        unregister = None if cancel_on is None else cancel_on(cancel)
        try:
            while True:
                try:
                    response = await next_response(watch, deadline)
                except CompactedError:
                    return False  # too old to tell
                if has_delete(response):
                    return True
        finally:
            if unregister is not None:
                unregister()
