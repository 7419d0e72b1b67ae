"""RevisionFloor: the highest store revision an ordering wrapper has seen, and its lock."""

from __future__ import annotations

import threading

from etcd_layers.base.checks import check_int


class RevisionFloor:
    """The highest revision seen so far; it only ever rises, and is safe to share between threads.

    Only this class touches its lock. `get()` reads without it: the floor is one int attribute,
    replaced whole, so a reader sees either the old or the new value, and a reader that sees the
    old one merely checks against a floor a moment out of date, as if it had started earlier.
    The lock makes `raise_to`'s compare-and-set atomic, so a lower revision never overwrites a
    higher one that another thread stored in between.
    """

    __slots__ = ("_lock", "_revision")

    def __init__(self, revision: int = 0) -> None:
        self._lock = threading.Lock()
        self._revision = check_int(revision, "revision")

    def get(self) -> int:
        """Return the highest revision seen so far."""
        return self._revision

    def raise_to(self, revision: int) -> int:
        """Raise the floor to `revision` if it is higher; return the floor afterwards."""
        if revision <= self._revision:  # the common case, decided without the lock: it only rises
            return self._revision
        with self._lock:
            self._revision = max(self._revision, revision)
            return self._revision

    def __repr__(self) -> str:
        return f"RevisionFloor({self._revision})"
