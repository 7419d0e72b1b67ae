"""Time for MemoryEtcd: a ManualClock that tests move by hand, and the real monotonic clock."""

from __future__ import annotations

import math
import threading
import time
from typing import Protocol, runtime_checkable


@runtime_checkable
class Timed(Protocol):
    """What runs on a ManualClock: it says when it next has work and does it when told."""

    def next_due(self) -> float | None:
        """When the next timed work is due, on the clock (None: nothing is)."""

    def run_due(self, now: float) -> None:
        """Do the work due by `now`."""


class ManualClock:
    """Virtual time in seconds, moved only by `advance()`.

    Args:
        start: the time it shows first.
    """

    def __init__(self, start: float = 0.0) -> None:
        # Whole nanoseconds, so that steps add up exactly (ten advance(0.1) make 1.0).
        self._nanos = _nanoseconds(_check_seconds(start, "start"))
        self._now = self._nanos / 1e9
        self._lock = threading.Lock()  # one advance() at a time; guards _now and _users
        self._users: list[Timed] = []

    def now(self) -> float:
        """The current time, in seconds."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by `seconds`; what falls due on the way runs now, in time order.

        Each lease whose TTL runs out on the way expires at its own deadline (the clock shows
        that time while it does), so expiries happen in the order a real clock would show them.

        Raises:
            TypeError: `seconds` is not a number.
            ValueError: `seconds` is negative or not finite.
        """
        step = _nanoseconds(_check_seconds(seconds, "seconds"))
        with self._lock:
            target_nanos = self._nanos + step
            target = target_nanos / 1e9
            for _ in range(1_000_000):  # bounded: each step does the earliest due work
                due = [
                    (when, user)
                    for user in list(self._users)
                    if (when := user.next_due()) is not None
                ]
                due = [(when, user) for when, user in due if when <= target]
                if not due:
                    break
                when, user = min(due, key=lambda item: item[0])
                self._now = max(self._now, when)
                user.run_due(self._now)
            self._nanos, self._now = target_nanos, target
            for user in list(self._users):
                user.run_due(target)

    def attach(self, user: Timed) -> None:
        """Let `user` run its timed work on this clock (MemoryEtcd does)."""
        with self._lock:
            self._users.append(user)

    def detach(self, user: Timed) -> None:
        """Stop running `user`'s timed work."""
        with self._lock:
            if user in self._users:
                self._users.remove(user)

    def __repr__(self) -> str:
        return f"ManualClock(now={self._now:g})"


def _check_seconds(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, not {type(value).__name__}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def _nanoseconds(seconds: float) -> int:
    return round(seconds * 1_000_000_000)


def monotonic() -> float:
    """The real clock MemoryEtcd follows without a ManualClock."""
    return time.monotonic()
