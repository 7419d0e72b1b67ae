"""Queue and PriorityQueue: Go's queue recipes, on Go's keys, shared by threads and processes.

Layouts (shared with Go's `experimental/recipes`, so Go and Python processes can share a
queue):

- `Queue(cli, prefix)`: each item is a key `prefix/<Unix time in ns>` (no lease) holding the
  value; the item with the lowest mod revision is served first.
- `PriorityQueue(cli, prefix)`: each item is a key `prefix/<priority %05d>/<sequence %016d>`
  (no lease); items are served in key order, so the lowest priority first, and in the order
  they came within a priority. Enqueuing also writes the empty key `__prefix/<priority %05d>`.

A reader takes an item by deleting it only if it is unchanged since it read it, so each item
goes to exactly one reader. Items have no lease: they outlive the processes that put them.
"""

from __future__ import annotations

from etcd_layers.base.checks import check_int
from etcd_layers.base.keys import StrOrBytes, to_bytes
from etcd_layers.concurrency._recipe_driver import RecipeClient, checked_client, run_recipe
from etcd_layers.concurrency._recipe_keys import checked_key, create_sequential, create_unique
from etcd_layers.concurrency._recipes import (
    MAX_PRIORITY,
    dequeue,
    first_item,
    oldest_item,
    priority_prefix,
)


def checked_priority(priority: object) -> int:
    """Return a PriorityQueue priority: an int in 0..65535 (Go's uint16)."""
    number = check_int(priority, "priority")
    if number > MAX_PRIORITY:
        raise ValueError(f"priority must be at most {MAX_PRIORITY}, got {number}")
    return number


class Queue:
    """A first-in first-out queue in etcd (Go's `recipe.Queue`).

    Args:
        client: a Client, or any layer on one (a namespace, say).
        prefix: the queue's name (str or bytes, not empty); items live under `prefix + "/"`.

    Raises:
        TypeError: `client` is not a sync KV and Watcher, or `prefix` is not str or bytes.
        ValueError: `prefix` is empty.
    """

    def __init__(self, client: RecipeClient, prefix: StrOrBytes) -> None:
        self._client = checked_client(client, "Queue")
        self._prefix = checked_key(prefix, "prefix")

    @property
    def prefix(self) -> bytes:
        """The queue's name: items live under `prefix + b"/"`."""
        return self._prefix

    def enqueue(self, value: StrOrBytes, *, timeout: float | None = None) -> None:
        """Add `value` at the end of the queue.

        Raises:
            TypeError: `value` is not str or bytes.
        """
        raw = to_bytes(value, name="value")
        run_recipe(create_unique(self._prefix, raw, 0), self._client, timeout, "enqueue")

    def dequeue(self, timeout: float | None = None) -> bytes:
        """Take the oldest item, waiting until there is one.

        Raises:
            DeadlineExceededError: the queue stayed empty for `timeout` seconds.
        """
        return run_recipe(
            dequeue(oldest_item(self._prefix)),
            self._client,
            timeout,
            f"dequeue from {self._prefix!r}",
        )

    def __repr__(self) -> str:
        return f"<Queue prefix={self._prefix!r}>"


class PriorityQueue:
    """A queue served lowest priority first, first-in first-out within a priority (Go's recipe).

    Args:
        client: a Client, or any layer on one (a namespace, say).
        prefix: the queue's name (str or bytes, not empty); items live under `prefix + "/"`.

    Raises:
        TypeError: `client` is not a sync KV and Watcher, or `prefix` is not str or bytes.
        ValueError: `prefix` is empty.
    """

    def __init__(self, client: RecipeClient, prefix: StrOrBytes) -> None:
        self._client = checked_client(client, "PriorityQueue")
        self._prefix = checked_key(prefix, "prefix")

    @property
    def prefix(self) -> bytes:
        """The queue's name: items live under `prefix + b"/"`."""
        return self._prefix

    def enqueue(self, value: StrOrBytes, priority: int, *, timeout: float | None = None) -> None:
        """Add `value` with `priority` (0..65535; lower is served first).

        Raises:
            TypeError: `value` is not str or bytes, or `priority` is not an int.
            ValueError: `priority` is out of range.
        """
        raw = to_bytes(value, name="value")
        flow = create_sequential(priority_prefix(self._prefix, checked_priority(priority)), raw)
        run_recipe(flow, self._client, timeout, "enqueue")

    def dequeue(self, timeout: float | None = None) -> bytes:
        """Take the item of the lowest priority that came first, waiting until there is one.

        Raises:
            DeadlineExceededError: the queue stayed empty for `timeout` seconds.
        """
        return run_recipe(
            dequeue(first_item(self._prefix)),
            self._client,
            timeout,
            f"dequeue from {self._prefix!r}",
        )

    def __repr__(self) -> str:
        return f"<PriorityQueue prefix={self._prefix!r}>"
