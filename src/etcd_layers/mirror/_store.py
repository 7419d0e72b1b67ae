"""The mirror's local copy and what a watch batch, a proof of quiet or a reload does to it (pure).

One writer (the follower thread or task) changes a Store; readers look keys up in its
`values` without a lock, as a dict's single-key operations are atomic. The shells add the
lock that makes a batch, the revision and the subscribers' view change together.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from typing import Final

from etcd_layers.base.ops import Op, TxnOp
from etcd_layers.base.responses import Event, EventType, GetResponse, KeyValue, TxnResponse
from etcd_layers.errors import CanceledError, CompactedError, EtcdError

__all__ = [
    "Recovery",
    "Store",
    "diff",
    "is_quiet",
    "mod_revision_of",
    "pack",
    "quiet_check",
    "recovery_for",
    "unpack",
]

_PUT = EventType.PUT


_WIDTH: Final = 64
_MASK: Final = (1 << _WIDTH) - 1


def pack(kv: KeyValue) -> int:
    """Return a key's revisions, version and lease packed into one int.

    The copy keeps no KeyValue objects: an int (like the bytes beside it) is not tracked by
    the cyclic garbage collector, which would otherwise walk every key of a large copy on
    each full collection (a third more time to load 100k keys).
    """
    return (
        kv.create_revision
        | kv.mod_revision << _WIDTH
        | kv.version << 2 * _WIDTH
        | kv.lease << 3 * _WIDTH
    )


def mod_revision_of(packed: int) -> int:
    """Return the mod revision in a `pack`ed int."""
    return packed >> _WIDTH & _MASK


def unpack(key: bytes, value: bytes, packed: int) -> KeyValue:
    """Return the KeyValue that `pack` packed (with its key and value)."""
    return KeyValue(
        key,
        value,
        create_revision=packed & _MASK,
        mod_revision=packed >> _WIDTH & _MASK,
        version=packed >> 2 * _WIDTH & _MASK,
        lease=packed >> 3 * _WIDTH,
    )


class Store:
    """A copy of a prefix: each key's value (`values`), revisions, version and lease (`meta`).

    `applied` is the revision of the last change taken in (or of the load): the watch
    restarts after it, and events at or below it are duplicates. `revision` is the store
    revision the copy is known to reflect: `applied`, or later once `confirm` has proven
    that nothing under the prefix changed in between.
    """

    __slots__ = ("applied", "meta", "revision", "values")

    def __init__(self) -> None:
        self.values: dict[bytes, bytes] = {}
        self.meta: dict[bytes, int] = {}  # see pack()
        self.applied = 0
        self.revision = 0

    def kv(self, key: bytes) -> KeyValue | None:
        """Return the KeyValue of `key` in the copy, or None."""
        packed = self.meta.get(key)
        return None if packed is None else unpack(key, self.values[key], packed)

    def kvs(self) -> dict[bytes, KeyValue]:
        """Return every KeyValue of the copy, by key."""
        values = self.values
        return {key: unpack(key, values[key], packed) for key, packed in self.meta.items()}

    def add_page(self, page: GetResponse) -> None:
        """Take in one page of a load (every page of one snapshot, in any order)."""
        self.applied = self.revision = self.revision or page.header.revision
        meta, values = self.meta, self.values
        for kv in page.kvs:  # a plain loop: twice as fast as dict.update over generators
            key = kv.key
            meta[key] = pack(kv)
            values[key] = kv.value

    def apply(self, events: Sequence[Event]) -> Sequence[Event]:
        """Apply a watch batch; return its events that were new to this copy.

        An event at or below `applied` is already in the copy (a resumed or restarted watch
        may deliver it again) and is skipped, so no change is ever applied twice. Events come
        in revision order, and all events of a revision in one batch.
        """
        revision = self.applied
        if not events:
            return events
        if events[0].kv.mod_revision <= revision:
            events = [event for event in events if event.kv.mod_revision > revision]
            if not events:
                return events
        self._change(events)
        self.applied = applied = events[-1].kv.mod_revision
        self.revision = max(self.revision, applied)
        return events

    def _change(self, events: Iterable[Event]) -> None:
        values, meta = self.values, self.meta
        for event in events:
            kv = event.kv
            key = kv.key
            if event.type is _PUT:
                meta[key] = (
                    kv.create_revision
                    | kv.mod_revision << _WIDTH
                    | kv.version << 2 * _WIDTH
                    | kv.lease << 3 * _WIDTH
                )  # pack(kv), inlined: this loop is the per-event cost
                values[key] = kv.value
            else:
                meta.pop(key, None)
                values.pop(key, None)

    def confirm(self, revision: int) -> bool:
        """Note that the copy reflects `revision` too (proven by `is_quiet`).

        `applied` stays: events up to `revision` that the watch still delivers (a key made
        and removed in between leaves no trace in the proof) are applied, not skipped.
        etcd's progress notifications are no such proof: before 3.5.8 a requested one can
        run ahead of events not yet sent (etcd issue #15220).

        Returns whether `revision` was new.
        """
        if revision <= self.revision:
            return False
        self.revision = revision
        return True

    def replace(self, events: Iterable[Event], revision: int) -> None:
        """Apply a reload's `diff` and move to its snapshot's `revision`."""
        self._change(events)
        self.applied = max(self.applied, revision)
        self.revision = max(self.revision, revision)


def diff(old: Store, new: Store) -> list[Event]:
    """Return the events that turn the copy `old` into the snapshot `new`, in key order.

    A PUT (with `prev_kv`, the old pair if any) for each key that is new or changed (another
    mod revision), a DELETE for each key that is gone (its `kv` carries the key and the
    snapshot's revision, as etcd's delete events carry the deleting revision; `prev_kv` is the
    old pair), nothing for a key that is unchanged.
    """
    events: list[Event] = []
    for key, packed in new.meta.items():
        before = old.meta.get(key)
        if before is None or mod_revision_of(before) != mod_revision_of(packed):
            events.append(Event(EventType.PUT, unpack(key, new.values[key], packed), old.kv(key)))
    events += [
        Event(EventType.DELETE, KeyValue(key, mod_revision=new.revision), old.kv(key))
        for key in old.meta
        if key not in new.meta
    ]
    events.sort(key=lambda event: event.kv.key)
    return events


def quiet_check(prefix: bytes, applied: int, revision: int) -> TxnOp:
    """Return the read that proves nothing under `prefix` changed in (applied, revision].

    Two counts at `revision`: every key, and the keys modified after `applied`.
    """
    return Op.txn(
        success=[
            Op.get(prefix, prefix=True, count_only=True, revision=revision),
            Op.get(
                prefix,
                prefix=True,
                count_only=True,
                revision=revision,
                min_mod_revision=applied + 1,
            ),
        ]
    )


def is_quiet(response: TxnResponse, count: int) -> bool:
    """Whether `quiet_check`'s answer proves the copy (of `count` keys at `applied`) current.

    At `revision` no key was modified after `applied`, so every key then existed at
    `applied` unchanged; with as many keys as the copy, the state is the same.
    """
    total, modified = response.responses
    return (
        isinstance(total, GetResponse)
        and isinstance(modified, GetResponse)
        and modified.count == 0
        and total.count == count
    )


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
