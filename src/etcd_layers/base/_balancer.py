"""Endpoint choice: round robin or a pinned endpoint, skipping ones that failed just now.

A pure core over any hashable items (the sync shell gives it its Endpoint objects): no grpc, no
threads, and the clock is injected. It is read only after some endpoint has failed, so picking
among healthy endpoints costs no clock read. Reads (`pick`) take no lock; the owner serializes
the changes (`replace`, `switch`, `clear`) and publishes each as one attribute assignment.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Final, Generic, TypeVar

from etcd_layers.errors import ClosedError

T = TypeVar("T")

# How long an endpoint that failed at the transport level is skipped.
FAILED_ENDPOINT_PENALTY: Final = 1.0


class Balancer(Generic[T]):
    """Which endpoint the next request goes to.

    Round robin by default. `switch()` pins requests to the next endpoint in the order given
    instead (ordering.switch_endpoints leaves a member that is behind that way); a pinned
    endpoint that failed just now is still skipped, like any other.
    """

    __slots__ = ("_clock", "_counter", "_failed_at", "_items", "_penalty", "_pinned")

    def __init__(
        self,
        items: Sequence[T],
        *,
        clock: Callable[[], float],
        penalty: float = FAILED_ENDPOINT_PENALTY,
    ) -> None:
        self._clock = clock
        self._penalty = penalty
        self._counter = itertools.count()
        self._items: list[T] = list(items)
        self._failed_at: dict[T, float] = {}
        # Index of the item pick() starts from, set by switch(); None: round robin.
        self._pinned: int | None = None

    @property
    def items(self) -> list[T]:
        """The items, in the order given."""
        return list(self._items)

    @property
    def pinned(self) -> T | None:
        """The pinned item (None: round robin)."""
        pinned, items = self._pinned, self._items
        if pinned is None or not items:
            return None
        return items[pinned % len(items)]

    def pick(self) -> T:
        """Return the next item (round robin, or the pinned one), skipping recent failures.

        Raises:
            ClosedError: there is no item (the client is closed).
        """
        items = self._items
        count = len(items)
        if not count:
            raise ClosedError("the client is closed")
        pinned = self._pinned
        start = next(self._counter) if pinned is None else pinned
        item = items[start % count]
        failed_at = self._failed_at
        if not failed_at or item not in failed_at:  # the hot path: no clock read
            return item
        now = self._clock()
        for offset in range(count):
            item = items[(start + offset) % count]
            at = failed_at.get(item)
            if at is None or now - at > self._penalty:
                return item
        return min(items, key=lambda item: failed_at.get(item, 0.0))

    def mark_failed(self, item: T) -> bool:
        """Skip `item` for the penalty's length after a transport failure.

        Returns whether this failure is news: the item was not already being skipped.
        """
        now = self._clock()
        at = self._failed_at.get(item)
        self._failed_at[item] = now
        return at is None or now - at > self._penalty

    def switch(self) -> T:
        """Pin to the next item (in the order given) and return it.

        Raises:
            ClosedError: there is no item (the client is closed).
        """
        count = len(self._items)
        if not count:
            raise ClosedError("the client is closed")
        if self._pinned is None:
            # The balancer's next choice: with one caller, not the endpoint it just used.
            self._pinned = next(self._counter) % count
        else:
            self._pinned = (self._pinned + 1) % count
        return self._items[self._pinned]

    def replace(self, items: Sequence[T]) -> None:
        """Balance over `items` from now on; a pin survives if its item is among them."""
        pinned = self.pinned
        fresh = list(items)
        self._failed_at = {item: at for item, at in self._failed_at.items() if item in fresh}
        self._pinned = fresh.index(pinned) if pinned is not None and pinned in fresh else None
        self._items = fresh

    def clear(self) -> list[T]:
        """Remove every item and return them (pick() raises ClosedError afterwards)."""
        items, self._items = self._items, []
        return items
