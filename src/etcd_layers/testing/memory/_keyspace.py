"""The MVCC keyspace: every key's history by revision, the change log, and compaction (pure)."""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterator

from etcd_layers.base.transport import kv_pb2
from etcd_layers.testing.memory._errors import COMPACTED, FUTURE_REVISION, store_error

KeyValue = kv_pb2.KeyValue
# One change of a revision: the key and its new KeyValue, or None for a deletion.
Change = tuple[bytes, "kv_pb2.KeyValue | None"]


def frame(field: int, payload: bytes) -> bytes:
    """`payload` as a length-delimited protobuf field: tag, varint length, bytes."""
    head = bytearray((field << 3 | 2,))
    size = len(payload)
    while size >= 0x80:
        head.append(size & 0x7F | 0x80)
        size >>= 7
    head.append(size)
    return bytes(head) + payload


def varint_field(field: int, number: int) -> bytes:
    """A non-negative int as a varint protobuf field: tag, then the number."""
    out = bytearray((field << 3,))
    while number >= 0x80:
        out.append(number & 0x7F | 0x80)
        number >>= 7
    out.append(number)
    return bytes(out)


class _History:
    """One key's versions, oldest first: main revisions and values (None: deleted there).

    `framed` caches the newest value as a RangeResponse's `kvs` field on the wire, made on the
    first range that reads it: ranges at the current revision are parsed from these bytes,
    three times faster than copying the messages (its memory follows the live keys).
    """

    __slots__ = ("framed", "revisions", "values")

    def __init__(self) -> None:
        self.revisions: list[int] = []
        self.values: list[KeyValue | None] = []
        self.framed: bytes | None = None

    def newest_framed(self) -> bytes:
        """The newest value (live), framed as field 2 (`kvs`) of a RangeResponse."""
        framed = self.framed
        if framed is None:
            value = self.values[-1]
            assert value is not None  # only live keys are framed
            framed = self.framed = frame(2, value.SerializeToString())
        return framed

    def at(self, revision: int) -> KeyValue | None:
        """The key's value at `revision` (None: absent)."""
        if self.revisions[-1] <= revision:
            return self.values[-1]
        index = bisect_right(self.revisions, revision) - 1
        return self.values[index] if index >= 0 else None

    def compact(self, revision: int) -> bool:
        """Forget what no read at `revision` or later can see; True if nothing is left.

        As etcd's keyIndex.compact: the newest version at or before `revision` stays, unless
        it is a deletion, which goes with everything before it.
        """
        index = bisect_right(self.revisions, revision) - 1
        if index < 0:
            return False
        if self.values[index] is None:
            index += 1
        del self.revisions[:index], self.values[:index]
        return not self.revisions


class Keyspace:
    """Keys with their histories, the current and compacted revisions, and the change log.

    A write runs between `begin()` and `commit()`: its changes take revision
    `revision + 1`, reads inside it see them, and `commit()` makes that the current revision
    if anything changed (a write that changed nothing takes no revision, as in etcd).
    """

    def __init__(self) -> None:
        self.revision = 1  # a fresh etcd is at revision 1 with no keys
        self.compact_revision = -1  # etcd's compactMainRev before any compaction
        self._keys: list[bytes] = []  # sorted: every key with a remembered version
        self._histories: dict[bytes, _History] = {}
        self._log: list[list[Change]] = []  # the changes of revisions log_start, log_start + 1 …
        self._log_start = 2
        self._changes: list[Change] = []  # the write in progress

    # --- reads -----------------------------------------------------------------------------

    def check_read(self, revision: int) -> int:
        """Return the revision a read at `revision` (0: the current one) sees.

        Raises:
            StoreError: the revision is in the future or compacted (mvcc's rangeKeys).
        """
        current = self.write_revision
        if revision > current:
            raise store_error(FUTURE_REVISION)
        if revision <= 0:
            return current
        if revision < self.compact_revision:
            raise store_error(COMPACTED)
        return revision

    @property
    def write_revision(self) -> int:
        """The revision reads see: the current one, or the write's own once it changed a key."""
        return self.revision + 1 if self._changes else self.revision

    def get(self, key: bytes, revision: int) -> KeyValue | None:
        """The value of `key` at `revision` (already checked), or None."""
        history = self._histories.get(key)
        return None if history is None else history.at(revision)

    def range_framed(self, key: bytes, range_end: bytes | None) -> list[bytes]:
        """The live keys of [key, range_end) at the current revision, framed (see _History)."""
        if range_end is None:
            history = self._histories.get(key)
            if history is None or history.values[-1] is None:
                return []
            return [history.newest_framed()]
        keys = self._keys
        low = bisect_left(keys, key)
        high = len(keys) if not range_end else bisect_left(keys, range_end, low)
        histories = self._histories
        return [
            history.newest_framed()
            for name in keys[low:high]
            if (history := histories[name]).values[-1] is not None
        ]

    def range(self, key: bytes, range_end: bytes | None, revision: int) -> list[KeyValue]:
        """The live keys of [key, range_end) at `revision`, in key order.

        `range_end` None is the single key; b"" is every key from `key` on (etcd's NUL end).
        """
        if range_end is None:
            found = self.get(key, revision)
            return [] if found is None else [found]
        keys = self._keys
        low = bisect_left(keys, key)
        high = len(keys) if not range_end else bisect_left(keys, range_end, low)
        histories = self._histories
        if revision == self.write_revision:  # the usual read: every key's newest version
            return [
                value
                for name in keys[low:high]
                if (value := histories[name].values[-1]) is not None
            ]
        return [
            value for name in keys[low:high] if (value := histories[name].at(revision)) is not None
        ]

    # --- writes ----------------------------------------------------------------------------

    def put(self, key: bytes, value: bytes, lease: int) -> KeyValue:
        """Write `key` in the write in progress; return its new KeyValue."""
        revision = self.revision + 1
        history = self._histories.get(key)
        previous = None if history is None else history.values[-1]
        if previous is None:
            created, version = revision, 1
        else:
            created, version = previous.create_revision, previous.version + 1
        kv = KeyValue(
            key=key,
            value=value,
            create_revision=created,
            mod_revision=revision,
            version=version,
            lease=lease,
        )
        self._record(key, kv, history)
        return kv

    def delete(self, key: bytes) -> None:
        """Delete the live `key` in the write in progress."""
        self._record(key, None, self._histories[key])

    def _record(self, key: bytes, value: KeyValue | None, history: _History | None) -> None:
        revision = self.revision + 1
        if history is None:
            history = self._histories[key] = _History()
            insort(self._keys, key)
        history.framed = None
        if history.revisions and history.revisions[-1] == revision:  # again in one write
            history.values[-1] = value
        else:
            history.revisions.append(revision)
            history.values.append(value)
        self._changes.append((key, value))

    def commit(self) -> list[Change]:
        """End the write in progress; return its changes (empty: no new revision)."""
        changes, self._changes = self._changes, []
        if changes:
            self.revision += 1
            self._log.append(changes)
        return changes

    # --- history ---------------------------------------------------------------------------

    def changes_since(self, revision: int) -> Iterator[tuple[int, list[Change]]]:
        """Yield (revision, changes) for every remembered revision from `revision` on."""
        start = max(revision, self._log_start) - self._log_start
        for index in range(start, len(self._log)):
            yield self._log_start + index, self._log[index]

    def compact(self, revision: int) -> None:
        """Forget every version no read at `revision` or later can see (checked already)."""
        self.compact_revision = revision
        drop = revision - self._log_start
        if drop > 0:
            del self._log[:drop]
            self._log_start = revision
        if self._log and self._log_start == revision:
            # A deletion at exactly `revision` is gone with the rest of the key's history.
            self._log[0] = [change for change in self._log[0] if change[1] is not None]
        dead = {key for key, history in self._histories.items() if history.compact(revision)}
        if dead:
            # Rebuilt rather than deleted from: a dict never shrinks, and the memory should
            # follow the keys that are left.
            self._histories = {
                key: history for key, history in self._histories.items() if key not in dead
            }
            self._keys = [key for key in self._keys if key not in dead]

    @property
    def key_count(self) -> int:
        """How many keys have a remembered version (live or not)."""
        return len(self._keys)
