"""Our writes in flight: the keys and ranges they cover, so memory does not answer for them."""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from etcd_layers.leasing._entry import Entry
from etcd_layers.leasing._protocol import Written, in_range


@dataclass(frozen=True, slots=True)
class WriteTicket:
    """Our writes in flight: the keys and ranges they cover and the owned entries they hold."""

    lease_id: int
    keys: frozenset[bytes]
    ranges: tuple[tuple[bytes, bytes], ...]
    entries: Mapping[bytes, Entry]

    @property
    def owned(self) -> dict[bytes, int]:
        """The written single keys we own, with their leasing keys' create revisions."""
        return {key: e.incarnation for key, e in self.entries.items() if key in self.keys}

    @property
    def refresh(self) -> tuple[bytes, ...]:
        """The owned keys to read right after the write."""
        return tuple(self.entries)


class WritesInFlight:
    """The single keys (counted) and ranges that writes of ours in flight cover.

    Not thread-safe: the leasing cache calls it under its lock.
    """

    __slots__ = ("_keys", "_ranges")

    def __init__(self) -> None:
        self._keys: Counter[bytes] = Counter()
        self._ranges: list[tuple[bytes, bytes]] = []

    def begin(self, keys: frozenset[bytes], ranges: tuple[tuple[bytes, bytes], ...]) -> None:
        """Note writes about to be sent."""
        for key in keys:
            self._keys[key] += 1
        self._ranges.extend(ranges)

    def end(self, keys: frozenset[bytes], ranges: tuple[tuple[bytes, bytes], ...]) -> None:
        """Note that the writes noted by `begin(keys, ranges)` are answered."""
        for key in keys:
            self._keys[key] -= 1
            if not self._keys[key]:
                del self._keys[key]
        for span in ranges:
            self._ranges.remove(span)

    def covers(self, key: bytes) -> bool:
        """Whether a write in flight may change `key`."""
        return key in self._keys or any(in_range(key, begin, end) for begin, end in self._ranges)


def covered_entries(
    entries: Mapping[bytes, Entry],
    keys: Iterable[bytes],
    ranges: Iterable[tuple[bytes, bytes]],
) -> dict[bytes, Entry]:
    """Return the owned entries that writes to `keys` and `ranges` may change."""
    held = {key: entry for key in keys if (entry := entries.get(key)) is not None}
    for begin, end in ranges:
        for key in list(entries):  # reading an entry marks it used: only those in the range
            if key not in held and in_range(key, begin, end):
                held[key] = entries[key]
    return held


class Settle(enum.Enum):
    """What the outcome of a write of ours does to an owned key it covered."""

    KEEP = "keep"  # the cached state is still true
    UPDATE = "update"  # cache the state the write left
    DROP = "drop"  # forget the key: our leasing key is gone already
    RELEASE = "release"  # forget the key and give its leasing key back


def settle(key: bytes, entry: Entry, written: Written | None) -> Settle:
    """Decide what a write of ours (`written`; None: outcome unknown) means for `key`'s entry."""
    if written is None:  # the write may or may not have applied: we cannot know the state
        return Settle.RELEASE
    if key in written.lost:
        return Settle.DROP
    if key not in written.states:
        return Settle.KEEP
    state = written.states[key]
    if state is not None and state.lease:
        # The write gave the key a lease of its own: it can now vanish without a write.
        return Settle.RELEASE
    if written.revision > entry.revision:
        return Settle.UPDATE
    return Settle.KEEP
