"""One deadline per public call, spent by every retry and step of that call."""

from __future__ import annotations

import time
from typing import Final

from etcd_layers.errors import DeadlineExceededError

_NO_DEADLINE: Final = float("inf")


class Deadline:
    """A point on the monotonic clock after which a call has failed.

    `Deadline(None)` never expires; `remaining()` then returns None, which gRPC reads as
    "no timeout".
    """

    __slots__ = ("_at",)

    def __init__(self, timeout: float | None) -> None:
        self._at = _NO_DEADLINE if timeout is None else time.monotonic() + timeout

    @property
    def bounded(self) -> bool:
        """Whether this deadline ever expires."""
        return self._at != _NO_DEADLINE

    def remaining(self) -> float | None:
        """Return the seconds left (None if unbounded).

        Raises:
            DeadlineExceededError: the time is spent.
        """
        if self._at == _NO_DEADLINE:
            return None
        left = self._at - time.monotonic()
        if left <= 0:
            raise DeadlineExceededError("deadline exceeded")
        return left

    def left_or(self, cap: float) -> float:
        """Return the seconds left, at most `cap` (0 when spent; `cap` when unbounded)."""
        if self._at == _NO_DEADLINE:
            return cap
        return max(0.0, min(cap, self._at - time.monotonic()))

    def expired(self) -> bool:
        """Whether the time is spent."""
        return self._at != _NO_DEADLINE and time.monotonic() >= self._at


UNBOUNDED: Final = Deadline(None)  # immutable: every call without a deadline shares it
