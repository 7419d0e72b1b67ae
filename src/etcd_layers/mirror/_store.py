"""The mirror's local copy and what a watch batch, a progress note or a reload does to it (pure).

One writer (the follower thread or task) changes a Store; readers look keys up in its
`values` without a lock, as a dict's single-key operations are atomic. The shells add the
lock that makes a batch, the revision and the subscribers' view change together.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence

from etcd_layers.base.responses import Event, EventType, GetResponse, KeyValue
from etcd_layers.errors import CanceledError, CompactedError, EtcdError

__all__ = ["Recovery", "Store", "diff", "recovery_for"]

_PUT = EventType.PUT


class Store:
    """A copy of a prefix at `revision`: each key's value (`values`) and KeyValue (`kvs`)."""

    __slots__ = ("kvs", "revision", "values")

    def __init__(self) -> None:
        self.values: dict[bytes, bytes] = {}
        self.kvs: dict[bytes, KeyValue] = {}
        self.revision = 0

    def add_page(self, page: GetResponse) -> None:
        """Take in one page of a load (every page of one snapshot, in any order)."""
        self.revision = self.revision or page.header.revision
        kvs = page.kvs
        self.kvs.update((kv.key, kv) for kv in kvs)
        self.values.update((kv.key, kv.value) for kv in kvs)

    def apply(self, events: Sequence[Event]) -> Sequence[Event]:
        """Apply a watch batch; return its events that were new to this copy.

        An event at or below `revision` is already in the copy (a resumed or restarted watch
        may deliver it again) and is skipped, so no change is ever applied twice. Events come
        in revision order, and all events of a revision in one batch.
        """
        revision = self.revision
        if not events:
            return events
        if events[0].kv.mod_revision <= revision:
            events = [event for event in events if event.kv.mod_revision > revision]
            if not events:
                return events
        values, kvs = self.values, self.kvs
        for event in events:
            kv = event.kv
            key = kv.key
            if event.type is _PUT:
                kvs[key] = kv
                values[key] = kv.value
            else:
                kvs.pop(key, None)
                values.pop(key, None)
        self.revision = events[-1].kv.mod_revision
        return events

    def advance(self, revision: int) -> bool:
        """Note that every change up to `revision` is in (a progress notification).

        Returns whether `revision` was new.
        """
        if revision <= self.revision:
            return False
        self.revision = revision
        return True

    def replace(self, events: Iterable[Event], revision: int) -> None:
        """Apply a reload's `diff` and move to its snapshot's `revision`."""
        values, kvs = self.values, self.kvs
        for event in events:
            key = event.kv.key
            if event.type is _PUT:
                kvs[key] = event.kv
                values[key] = event.kv.value
            else:
                kvs.pop(key, None)
                values.pop(key, None)
        self.revision = max(self.revision, revision)


def diff(old: dict[bytes, KeyValue], new: Store) -> list[Event]:
    """Return the events that turn `old` into the snapshot `new`, in key order.

    A PUT (with `prev_kv`, the old pair if any) for each key that is new or changed (another
    mod revision), a DELETE for each key that is gone (its `kv` carries the key and the
    snapshot's revision, as etcd's delete events carry the deleting revision; `prev_kv` is the
    old pair), nothing for a key that is unchanged.
    """
    events: list[Event] = []
    for key, kv in new.kvs.items():
        before = old.get(key)
        if before is None or before.mod_revision != kv.mod_revision:
            events.append(Event(EventType.PUT, kv, before))
    events += [
        Event(EventType.DELETE, KeyValue(key, mod_revision=new.revision), before)
        for key, before in old.items()
        if key not in new.kvs
    ]
    events.sort(key=lambda event: event.kv.key)
    return events


class Recovery(enum.Enum):
    """What a follower does when its watch ends other than by close()."""

    RELOAD = "reload"  # its revision is compacted away: load again, report the difference
    RESTART = "restart"  # watch again from the copy's revision + 1, after a back-off
    STOP = "stop"  # the client is closed: nothing more will come


def recovery_for(error: EtcdError, *, starting: bool = False) -> Recovery:
    """Return what to do about `error`, raised by the watch, or by its (re)start if `starting`.

    A compaction past the copy's revision loses the history in between: only a reload can
    catch up. A running watch that ends otherwise (the client's watch already resumes across
    reconnects and failover; this one ended anyway) is restarted where the copy stands. A
    start refused as canceled means the client is closed: the follower stops.
    """
    if isinstance(error, CompactedError):
        return Recovery.RELOAD
    if starting and isinstance(error, CanceledError):
        return Recovery.STOP
    return Recovery.RESTART
