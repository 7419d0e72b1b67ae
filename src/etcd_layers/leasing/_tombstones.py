"""Tombstones: which acquisitions of a key may no longer be cached, and which keys back off."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(eq=False, slots=True)
class _Tombstone:
    """No acquisition of a key at or below `revision` may be cached any more."""

    revision: int
    touched: float  # when last raised: forgotten `backoff` seconds later
    revoked_at: float | None  # when another writer last revoked it (for the back-off)


class Tombstones:
    """The revocations and releases seen per key, forgotten `backoff` seconds after the last.

    An acquisition whose answer is overtaken by a revocation or release of the same leasing
    key must not be cached. Forgotten tombstones leave their revision in one floor, for every
    key: an answer that slow is refused rather than risked.

    Not thread-safe: the leasing cache calls it under its lock, with its clock's `now`.

    Args:
        backoff: seconds a revoked key is left alone, and a tombstone is kept.
        now: the clock's reading at creation.
    """

    __slots__ = ("_backoff", "_by_key", "_floor", "_last_prune")

    def __init__(self, backoff: float, now: float) -> None:
        self._backoff = backoff
        self._by_key: dict[bytes, _Tombstone] = {}
        self._floor = 0
        self._last_prune = now

    def overtaken(self, key: bytes, incarnation: int) -> bool:
        """Whether a revocation or release of `key` at or after `incarnation` was seen."""
        if incarnation <= self._floor:
            return True
        tombstone = self._by_key.get(key)
        return tombstone is not None and incarnation <= tombstone.revision

    def backing_off(self, key: bytes, now: float) -> bool:
        """Whether another writer revoked `key` less than `backoff` seconds ago."""
        tombstone = self._by_key.get(key)
        revoked_at = None if tombstone is None else tombstone.revoked_at
        return revoked_at is not None and now - revoked_at < self._backoff

    def mark(self, key: bytes, revision: int, now: float, *, revoked: bool) -> None:
        """Refuse acquisitions of `key` at or below `revision`; `revoked` starts the back-off."""
        old = self._by_key.get(key)
        if old is None:
            self._by_key[key] = _Tombstone(revision, now, now if revoked else None)
        else:
            old.revision = max(old.revision, revision)
            old.touched = now
            if revoked:
                old.revoked_at = now
        if now - self._last_prune >= self._backoff:
            self._last_prune = now
            for stale, tombstone in list(self._by_key.items()):
                if now - tombstone.touched >= self._backoff:
                    del self._by_key[stale]
                    self._floor = max(self._floor, tombstone.revision)
