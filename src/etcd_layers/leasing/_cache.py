"""The leasing cache: owned keys in an LRU, the session's validity, and the one lock over both.

Every decision that must be atomic with the cache's contents lives here: whether memory may
answer now (the key is owned, no write of ours to it is in flight, the session lease is known
to be alive), whether an acquisition may still be cached (no revocation or release of that
leasing key overtook it), and which leasing keys must be given back. Only this module takes
the lock; callers never hold it.
"""

from __future__ import annotations

import dataclasses
import enum
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Final, NoReturn, SupportsIndex

from cachetools import LRUCache

from etcd_layers.base.ops import GetOp
from etcd_layers.base.responses import GetResponse, KeyValue, ResponseHeader
from etcd_layers.leasing._evaluate import answer_get
from etcd_layers.leasing._protocol import Acquired, Written, in_range

REVOKE_BACKOFF: Final = 2.0  # seconds before a revoked key is acquired again (clientv3's value)


class _FrozenList(list[KeyValue]):
    """A list that refuses to change: cached responses are shared by every caller."""

    def __reduce__(self) -> tuple[type[list[KeyValue]], tuple[list[KeyValue]]]:
        return list, (list(self),)  # copies and pickles are plain, mutable lists

    def __eq__(self, other: object) -> bool:
        if type(other) is list or type(other) is _FrozenList:
            return list.__eq__(self, other)
        # Another kind of list (the client's lazily converted one, say) compares itself:
        # list's own __eq__ would read its storage directly and skip its loading.
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    __hash__ = None  # a list: unhashable

    def _refuse(self, *args: object, **kwargs: object) -> NoReturn:
        raise TypeError("a response served from the leasing cache is shared and read-only")

    def __setitem__(self, index: SupportsIndex | slice, value: object) -> NoReturn:
        self._refuse()

    def __delitem__(self, index: SupportsIndex | slice) -> NoReturn:
        self._refuse()

    def __iadd__(self, other: Iterable[KeyValue]) -> NoReturn:  # type: ignore[misc,override]  # refuses
        self._refuse()

    def __imul__(self, count: SupportsIndex) -> NoReturn:
        self._refuse()

    append = extend = insert = pop = remove = clear = sort = reverse = _refuse


@dataclass(eq=False, slots=True)
class _Entry:
    """One owned key: its state as of `revision`, and our leasing key's create revision."""

    incarnation: int
    kv: KeyValue | None
    revision: int
    header: ResponseHeader
    response: GetResponse
    pending: int = 0  # writes of ours in flight: memory must not answer meanwhile


@dataclass(eq=False, slots=True)
class _Tombstone:
    """No acquisition of a key at or below `revision` may be cached any more."""

    revision: int
    touched: float  # when last raised: forgotten `backoff` seconds later
    revoked_at: float | None  # when another writer last revoked it (for the back-off)


@dataclass(frozen=True, slots=True)
class LeasingStats:
    """Counters of one leasing client, as a snapshot.

    Attributes:
        hits: reads answered from memory (gets and txns).
        misses: reads of single keys (and txns) that memory could not answer.
        acquisitions: leasing keys this client created.
        revocations: leasing keys of ours that other writers revoked.
        evictions: keys dropped to stay within `max_keys`.
        releases: leasing keys handed back to the server.
        session_losses: sessions lost (the cache was cleared each time).
        cached_keys: keys cached now.
    """

    hits: int = 0
    misses: int = 0
    acquisitions: int = 0
    revocations: int = 0
    evictions: int = 0
    releases: int = 0
    session_losses: int = 0
    cached_keys: int = 0


@dataclass(frozen=True, slots=True)
class Release:
    """A leasing key of ours to delete (only that incarnation of it)."""

    key: bytes
    incarnation: int


class Lookup(enum.Enum):
    """What memory could do for a single-key read."""

    HIT = "hit"  # answered
    HELD = "held"  # owned, but not answerable now: ask the server, do not acquire
    ABSENT = "absent"  # not owned


@dataclass(frozen=True, slots=True)
class WriteTicket:
    """Our writes in flight: the keys and ranges they cover and the owned entries they hold."""

    lease_id: int
    keys: frozenset[bytes]
    ranges: tuple[tuple[bytes, bytes], ...]
    entries: Mapping[bytes, _Entry]

    @property
    def owned(self) -> dict[bytes, int]:
        """The written single keys we own, with their leasing keys' create revisions."""
        return {key: e.incarnation for key, e in self.entries.items() if key in self.keys}

    @property
    def refresh(self) -> tuple[bytes, ...]:
        """The owned keys to read right after the write."""
        return tuple(self.entries)


class _LRU(LRUCache[bytes, _Entry]):
    """cachetools' LRU that remembers what it evicted, so the leasing keys can be released."""

    def __init__(self, maxsize: int, evicted: list[tuple[bytes, _Entry]]) -> None:
        super().__init__(maxsize)
        self._evicted = evicted

    def popitem(self) -> tuple[bytes, _Entry]:
        key, entry = super().popitem()
        self._evicted.append((key, entry))
        return key, entry


class LeaseCache:
    """Owned keys, the session's validity and the release queue, under one lock.

    Args:
        max_keys: the most keys kept (None: no limit); the least recently used goes first.
        clock: the monotonic clock (injected by tests).
        backoff: seconds during which a revoked key is not acquired again.
    """

    def __init__(
        self,
        max_keys: int | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        backoff: float = REVOKE_BACKOFF,
    ) -> None:
        self._lock = threading.Lock()
        self._wakeup = threading.Condition(self._lock)
        self._evicted: list[tuple[bytes, _Entry]] = []
        self._entries = _LRU(sys.maxsize if max_keys is None else max_keys, self._evicted)
        self._clock = clock
        self._backoff = backoff
        self._lease_id = 0
        self._valid_until = 0.0
        self._floor = 0
        self._closed = False
        self._watching = False  # revocations reach us: without that, nothing may be cached
        self._tombstones: dict[bytes, _Tombstone] = {}
        # Forgotten tombstones leave their revision here, for every key: an answer that slow
        # is refused rather than risked.
        self._tombstone_floor = 0
        self._last_prune = clock()
        self._writing_keys: Counter[bytes] = Counter()
        self._writing_ranges: list[tuple[bytes, bytes]] = []
        self._releases: dict[Release, None] = {}  # an ordered set
        self._hits = self._misses = self._acquisitions = self._revocations = 0
        self._evictions = self._released = self._session_losses = 0

    # --- reads ---------------------------------------------------------------------------

    def lookup(self, key: bytes) -> GetResponse | None:
        """Return the shared answer to a plain get of `key`, or None if memory cannot answer."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry.pending or self._clock() >= self._valid_until:
                return None
            response = entry.response
            if response.header.revision < self._floor:
                response = entry.response = self._build(entry)
            self._hits += 1
            return response

    def answer(self, op: GetOp) -> tuple[Lookup, GetResponse | None]:
        """Answer a single-key get of the current revision from memory if possible."""
        with self._lock:
            entry = self._entries.get(op.key)
            if entry is None:
                self._misses += 1
                return Lookup.ABSENT, None
            if entry.pending or self._clock() >= self._valid_until:
                self._misses += 1
                return Lookup.HELD, None
            self._hits += 1
            kv, header = entry.kv, self._header(entry)
        return Lookup.HIT, answer_get(op, kv, header)

    def snapshot(
        self, keys: Iterable[bytes]
    ) -> tuple[dict[bytes, KeyValue | None], ResponseHeader] | None:
        """Return the states of `keys` at one revision, or None unless memory owns them all.

        Counts nothing: the caller counts a hit or a miss once it knows whether the states
        were enough (`count_hit`, `count_miss`).
        """
        with self._lock:
            if self._clock() >= self._valid_until:
                return None
            states: dict[bytes, KeyValue | None] = {}
            newest: _Entry | None = None
            for key in keys:
                entry = self._entries.get(key)
                if entry is None or entry.pending:
                    return None
                states[key] = entry.kv
                if newest is None or entry.revision > newest.revision:
                    newest = entry
            if newest is None:
                return None
            return states, self._header(newest)

    def raise_floor(self, revision: int) -> None:
        """Note a revision this client has returned: memory never answers below it."""
        with self._lock:
            self._floor = max(self._floor, revision)

    # --- acquisitions --------------------------------------------------------------------

    def may_acquire(self, key: bytes) -> int:
        """Return the session lease to acquire `key` under, or 0 if it must not be acquired now."""
        with self._lock:
            now = self._clock()
            if self._closed or not self._watching or not self._lease_id or now >= self._valid_until:
                return 0
            if self._in_flight(key):
                return 0
            tombstone = self._tombstones.get(key)
            revoked_at = None if tombstone is None else tombstone.revoked_at
            if revoked_at is not None and now - revoked_at < self._backoff:
                return 0  # as clientv3: a revoked key is left alone for a while
            return self._lease_id

    def add(self, key: bytes, acquired: Acquired, lease_id: int) -> bool:
        """Cache a key just acquired under `lease_id`; False if it must be released instead.

        Refused when the session changed, a write of ours to the key is in flight, or a
        revocation or release of that leasing key overtook the acquisition's answer.
        """
        with self._lock:
            self._acquisitions += 1
            self._raise(acquired.response.header.revision)
            incarnation = acquired.incarnation
            tombstone = self._tombstones.get(key)
            if (
                self._closed
                or not self._watching
                or lease_id != self._lease_id
                or self._clock() >= self._valid_until
                or self._in_flight(key)
                or incarnation <= self._tombstone_floor
                or (tombstone is not None and incarnation <= tombstone.revision)
                or key in self._entries
            ):
                self._queue_release(key, incarnation)
                return False
            entry = _Entry(
                incarnation,
                acquired.kv,
                acquired.response.header.revision,
                acquired.response.header,
                acquired.response,
            )
            entry.response = self._build(entry)
            self._entries[key] = entry
            self._drain_evicted()
            return True

    def release_unless_cached(self, key: bytes, incarnation: int) -> None:
        """Give back a leasing key of ours that another attempt found, unless it is cached."""
        with self._lock:
            self._queue_release(key, incarnation)

    # --- revocations and session ---------------------------------------------------------

    def revoke(self, key: bytes, incarnation: int, revision: int) -> None:
        """A writer marked our leasing key REVOKE at `revision`: forget the key, release it."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry.incarnation <= incarnation:
                del self._entries[key]
            self._revocations += 1
            self._tombstone(key, revision, backoff=True)
            self._queue_release(key, incarnation)

    def forget(self, key: bytes, revision: int) -> None:
        """The leasing key of `key` was deleted or taken by someone else at `revision`."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry.incarnation < revision:
                del self._entries[key]
            self._tombstone(key, revision - 1, backoff=False)

    def start_session(self, lease_id: int, valid_until: float) -> None:
        """Use a new session lease, known alive until `valid_until` (monotonic seconds)."""
        with self._lock:
            if not self._closed:
                self._lease_id, self._valid_until = lease_id, valid_until

    def renewed(self, lease_id: int, valid_until: float) -> None:
        """The session lease was renewed: memory may answer until `valid_until`."""
        with self._lock:
            if lease_id == self._lease_id and valid_until > self._valid_until:
                self._valid_until = valid_until

    def end_session(self, lease_id: int) -> bool:
        """The session lease is (or may be) gone: forget everything at once.

        Returns:
            Whether `lease_id` was the current session.
        """
        with self._lock:
            if lease_id != self._lease_id or not lease_id:
                return False
            self._lease_id, self._valid_until = 0, 0.0
            self._entries.clear()
            self._evicted.clear()
            self._session_losses += 1
            return True

    def set_watching(self, *, watching: bool) -> None:
        """Say whether the revocation watch runs; when it stops, give back everything cached.

        A watch that failed may have missed a REVOKE, so nothing cached can be trusted, and
        nothing may be cached until a new watch runs.
        """
        with self._lock:
            self._watching = watching
            if not watching:
                for key in list(self._entries):
                    entry = self._entries.pop(key)
                    self._queue_release(key, entry.incarnation)

    @property
    def closed(self) -> bool:
        """Whether `close()` was called."""
        with self._lock:
            return self._closed

    @property
    def lease_id(self) -> int:
        """The current session lease (0: none)."""
        with self._lock:
            return self._lease_id

    def close(self) -> None:
        """Forget everything and stop answering; wakes the release worker."""
        with self._wakeup:
            self._closed = True
            self._lease_id, self._valid_until = 0, 0.0
            self._entries.clear()
            self._evicted.clear()
            self._releases.clear()
            self._wakeup.notify_all()

    # --- writes --------------------------------------------------------------------------

    def begin_writes(
        self, keys: frozenset[bytes], ranges: tuple[tuple[bytes, bytes], ...]
    ) -> WriteTicket:
        """Note writes about to be sent; memory stops answering for the keys they cover."""
        with self._lock:
            held: dict[bytes, _Entry] = {}
            for key in keys:
                self._writing_keys[key] += 1
                entry = self._entries.get(key)
                if entry is not None:
                    held[key] = entry
            for begin, end in ranges:
                self._writing_ranges.append((begin, end))
                for key in list(self._entries):
                    if key not in held and in_range(key, begin, end):
                        held[key] = self._entries[key]
            for entry in held.values():
                entry.pending += 1
            return WriteTicket(self._lease_id, keys, ranges, held)

    def end_writes(self, ticket: WriteTicket, written: Written | None) -> None:
        """Apply the outcome of the writes of `ticket` (None: unknown) to memory."""
        with self._lock:
            for key in ticket.keys:
                self._writing_keys[key] -= 1
                if not self._writing_keys[key]:
                    del self._writing_keys[key]
            for span in ticket.ranges:
                self._writing_ranges.remove(span)
            if written is not None:
                self._raise(written.revision)
            for key, entry in ticket.entries.items():
                entry.pending -= 1
                if self._entries.get(key) is not entry:
                    continue  # revoked, evicted or the session ended meanwhile
                self._settle(key, entry, written)

    def _settle(self, key: bytes, entry: _Entry, written: Written | None) -> None:
        if written is None:  # the write may or may not have applied: we cannot know the state
            del self._entries[key]
            self._queue_release(key, entry.incarnation)
            return
        if key in written.lost:
            del self._entries[key]
            return
        if key not in written.states:
            return
        state = written.states[key]
        if state is not None and state.lease:
            # The write gave the key a lease of its own: it can now vanish without a write.
            del self._entries[key]
            self._queue_release(key, entry.incarnation)
            return
        if written.revision > entry.revision:
            entry.kv, entry.revision = state, written.revision
            entry.header = written.response.header
            entry.response = self._build(entry)

    # --- releases ------------------------------------------------------------------------

    def next_release(self, timeout: float) -> Release | None:
        """Return the next leasing key to give back, waiting up to `timeout` for one."""
        with self._wakeup:
            if not self._releases and not self._closed:
                self._wakeup.wait(timeout)
            if not self._releases:
                return None
            release = next(iter(self._releases))
            del self._releases[release]
            return release

    def retry_release(self, release: Release) -> None:
        """Queue a release again after a failed attempt."""
        with self._wakeup:
            if not self._closed:
                self._releases[release] = None
                self._wakeup.notify()

    def pending_releases(self) -> int:
        """How many releases wait to be sent."""
        with self._lock:
            return len(self._releases)

    # --- stats ---------------------------------------------------------------------------

    def stats(self) -> LeasingStats:
        """Return a snapshot of the counters."""
        with self._lock:
            return LeasingStats(
                hits=self._hits,
                misses=self._misses,
                acquisitions=self._acquisitions,
                revocations=self._revocations,
                evictions=self._evictions,
                releases=self._released,
                session_losses=self._session_losses,
                cached_keys=len(self._entries),
            )

    def count_hit(self) -> None:
        """Count a read answered from memory outside `lookup`/`answer` (a txn)."""
        with self._lock:
            self._hits += 1

    def count_miss(self) -> None:
        """Count a read that memory could not answer without looking (ranges and the like)."""
        with self._lock:
            self._misses += 1

    # --- under the lock ------------------------------------------------------------------

    def _header(self, entry: _Entry) -> ResponseHeader:
        revision = max(entry.revision, self._floor)
        if revision == entry.header.revision:
            return entry.header
        return dataclasses.replace(entry.header, revision=revision)

    def _build(self, entry: _Entry) -> GetResponse:
        kv = entry.kv
        kvs = _FrozenList(() if kv is None else (kv,))
        return GetResponse(self._header(entry), kvs, 0 if kv is None else 1, False)

    def _raise(self, revision: int) -> None:
        self._floor = max(self._floor, revision)

    def _in_flight(self, key: bytes) -> bool:
        return key in self._writing_keys or any(
            in_range(key, begin, end) for begin, end in self._writing_ranges
        )

    def _queue_release(self, key: bytes, incarnation: int) -> None:
        entry = self._entries.get(key)
        if entry is not None and entry.incarnation == incarnation:
            return  # another attempt cached this very acquisition: keep it
        # Whatever answer is still in flight for this incarnation must not be cached.
        self._tombstone(key, incarnation, backoff=False)
        release = Release(key, incarnation)
        if not self._closed and release not in self._releases:
            self._releases[release] = None
            self._released += 1
            self._wakeup.notify()

    def _drain_evicted(self) -> None:
        while self._evicted:
            key, entry = self._evicted.pop()
            self._evictions += 1
            self._queue_release(key, entry.incarnation)

    def _tombstone(self, key: bytes, revision: int, *, backoff: bool) -> None:
        now = self._clock()
        old = self._tombstones.get(key)
        if old is None:
            self._tombstones[key] = _Tombstone(revision, now, now if backoff else None)
        else:
            old.revision = max(old.revision, revision)
            old.touched = now
            if backoff:
                old.revoked_at = now
        if now - self._last_prune >= self._backoff:
            self._last_prune = now
            for stale, tombstone in list(self._tombstones.items()):
                if now - tombstone.touched >= self._backoff:
                    del self._tombstones[stale]
                    self._tombstone_floor = max(self._tombstone_floor, tombstone.revision)
