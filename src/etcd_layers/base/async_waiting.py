"""Waiting on an async watch within a deadline, until a key is deleted: waiting.py's asyncio twin.

The decisions (where the watch starts, which responses end the wait) are waiting.py's pure
`delete_watch_start` and `has_delete`; this module only awaits.
"""

from __future__ import annotations

from etcd_layers.base.async_protocols import AsyncWatch, AsyncWatcher
from etcd_layers.base.deadline import Deadline
from etcd_layers.base.responses import WatchResponse
from etcd_layers.base.waiting import WAIT_SLICE, delete_watch_start, has_delete
from etcd_layers.errors import CompactedError, DeadlineExceededError

__all__ = ["async_next_response", "async_wait_deleted"]


async def async_next_response(watch: AsyncWatch, deadline: Deadline) -> WatchResponse:
    """Return the next response of `watch`, waiting until `deadline` (see `next_response`).

    Raises:
        DeadlineExceededError: nothing arrived by `deadline` (a TimeoutError).
        CanceledError: the watch ended.
    """
    while True:
        left = deadline.remaining()
        try:
            return await watch.next(timeout=WAIT_SLICE if left is None else left)
        except DeadlineExceededError:
            raise
        except TimeoutError as err:  # the builtin: this slice, or the whole deadline, passed
            if deadline.expired():
                raise DeadlineExceededError("deadline exceeded waiting for a watch") from err


async def async_wait_deleted(
    watcher: AsyncWatcher, key: bytes, revision: int, deadline: Deadline
) -> bool:
    """Return once `key`, which existed at `revision`, has been deleted after it.

    Returns:
        True once the delete was seen; False if the history after `revision` is compacted,
        so the caller must look at the key again.

    Raises:
        DeadlineExceededError: `deadline` passed first.
        CanceledError: the watch ended (the client closed).
    """
    start = watcher.watch(
        key,
        start_revision=delete_watch_start(revision),
        filter_put=True,  # only deletes matter
        timeout=deadline.remaining(),
    )
    async with start as watch:
        while True:
            try:
                response = await async_next_response(watch, deadline)
            except CompactedError:
                return False  # too old to tell
            if has_delete(response):
                return True
