"""The release queue: the leasing keys of ours to give back, each once, in order."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Release:
    """A leasing key of ours to delete (only that incarnation of it)."""

    key: bytes
    incarnation: int


class ReleaseQueue:
    """An ordered set of releases.

    Not thread-safe: the leasing cache calls it under its lock (and wakes the release worker).
    """

    __slots__ = ("_queue",)

    def __init__(self) -> None:
        self._queue: dict[Release, None] = {}  # an ordered set

    def push(self, release: Release) -> bool:
        """Queue `release` unless it is queued already; return whether it was added."""
        if release in self._queue:
            return False
        self._queue[release] = None
        return True

    def pop(self) -> Release | None:
        """Take the oldest release (None when the queue is empty)."""
        if not self._queue:
            return None
        release = next(iter(self._queue))
        del self._queue[release]
        return release

    def clear(self) -> None:
        """Drop every queued release."""
        self._queue.clear()

    def __len__(self) -> int:
        return len(self._queue)
