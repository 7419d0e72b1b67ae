"""AsyncQueue and AsyncPriorityQueue: the queue recipes with coroutines, on the same keys.

The keys are Queue's and PriorityQueue's (see etcd_layers.concurrency.queue), so sync, async
and Go processes share one queue. A task cancelled in `dequeue()` takes no item: one it had
claimed in that instant is put back (a PriorityQueue item in its place, a Queue item last). A
task cancelled in `Queue.enqueue()` withdraws the item if its put went through and nobody has
taken it yet.
"""

from __future__ import annotations

from etcd_layers.base.keys import StrOrBytes, to_bytes
from etcd_layers.concurrency._async_recipe_driver import (
    AsyncRecipeClient,
    checked_client,
    run_recipe,
)
from etcd_layers.concurrency._recipe_keys import checked_key, create_sequential, create_unique
from etcd_layers.concurrency._recipes import dequeue, first_item, oldest_item, priority_prefix
from etcd_layers.concurrency.queue import checked_priority


class AsyncQueue:
    """A first-in first-out queue in etcd (see Queue), with coroutines.

    Args:
        client: an AsyncClient, or any async layer on one.
        prefix: the queue's name (str or bytes, not empty); items live under `prefix + "/"`.
    """

    def __init__(self, client: AsyncRecipeClient, prefix: StrOrBytes) -> None:
        self._client = checked_client(client, "Queue")
        self._prefix = checked_key(prefix, "prefix")

    @property
    def prefix(self) -> bytes:
        """The queue's name: items live under `prefix + b"/"`."""
        return self._prefix

    async def enqueue(self, value: StrOrBytes, *, timeout: float | None = None) -> None:
        """Add `value` at the end of the queue."""
        raw = to_bytes(value, name="value")
        await run_recipe(create_unique(self._prefix, raw, 0), self._client, timeout, "enqueue")

    async def dequeue(self, timeout: float | None = None) -> bytes:
        """Take the oldest item, waiting until there is one (DeadlineExceededError: `timeout`)."""
        return await run_recipe(
            dequeue(oldest_item(self._prefix)),
            self._client,
            timeout,
            f"dequeue from {self._prefix!r}",
        )

    def __repr__(self) -> str:
        return f"<AsyncQueue prefix={self._prefix!r}>"


class AsyncPriorityQueue:
    """A queue served lowest priority first, FIFO within a priority (see PriorityQueue).

    Args:
        client: an AsyncClient, or any async layer on one.
        prefix: the queue's name (str or bytes, not empty); items live under `prefix + "/"`.
    """

    def __init__(self, client: AsyncRecipeClient, prefix: StrOrBytes) -> None:
        self._client = checked_client(client, "PriorityQueue")
        self._prefix = checked_key(prefix, "prefix")

    @property
    def prefix(self) -> bytes:
        """The queue's name: items live under `prefix + b"/"`."""
        return self._prefix

    async def enqueue(
        self, value: StrOrBytes, priority: int, *, timeout: float | None = None
    ) -> None:
        """Add `value` with `priority` (0..65535; lower is served first)."""
        raw = to_bytes(value, name="value")
        flow = create_sequential(priority_prefix(self._prefix, checked_priority(priority)), raw)
        await run_recipe(flow, self._client, timeout, "enqueue")

    async def dequeue(self, timeout: float | None = None) -> bytes:
        """Take the first item of the lowest priority, waiting until there is one."""
        return await run_recipe(
            dequeue(first_item(self._prefix)),
            self._client,
            timeout,
            f"dequeue from {self._prefix!r}",
        )

    def __repr__(self) -> str:
        return f"<AsyncPriorityQueue prefix={self._prefix!r}>"
