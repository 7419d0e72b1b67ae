"""The leasing cache: owned keys in an LRU, the session's validity, and the one lock over both.

Every decision that must be atomic with the cache's contents lives here: whether memory may
answer now (the key is owned, no write of ours to it is in flight, the session lease is known
to be alive), whether an acquisition may still be cached (no revocation or release of that
leasing key overtook it), and which leasing keys must be given back. Only this module takes
the lock; callers never hold it. The state it guards lives in small lock-free parts, each
with one job: `_tombstones`, `_releases`, `_writes` and `_stats`. Answers memory may give
are also published in `_served`, for reads that take no lock at all (`published`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, MutableMapping
from typing import Final

from etcd_layers.base.ops import GetOp
from etcd_layers.base.responses import GetResponse, KeyValue, ResponseHeader
from etcd_layers.leasing._entry import Entry, EntryLRU, Lookup, build_response, header_at
from etcd_layers.leasing._evaluate import answer_get
from etcd_layers.leasing._protocol import Acquired, Written
from etcd_layers.leasing._releases import Release, ReleaseQueue
from etcd_layers.leasing._served import Published, keys_only_view
from etcd_layers.leasing._stats import Counters, LeasingStats, retire
from etcd_layers.leasing._tombstones import Tombstones
from etcd_layers.leasing._writes import (
    Settle,
    WritesInFlight,
    WriteTicket,
    covered_entries,
    settle,
)

REVOKE_BACKOFF: Final = 2.0  # seconds before a revoked key is acquired again (clientv3's value)


class LeaseCache:
    """Owned keys, the session's validity and the release queue, under one lock.

    Args:
        max_keys: the most keys kept (None: no limit); the least recently used goes first.
        clock: the monotonic clock (injected by tests).
        backoff: seconds during which a revoked key is not acquired again.
        on_release: called (under the lock, so it must only note the fact: an asyncio
            shell sets an `asyncio.Event`) whenever a release is queued; a thread waits in
            `next_release` instead.
    """

    def __init__(
        self,
        max_keys: int | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        backoff: float = REVOKE_BACKOFF,
        on_release: Callable[[], None] | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._on_release = on_release
        self._wakeup = threading.Condition(self._lock)
        self._evicted: list[tuple[bytes, Entry]] = []
        # Unbounded: a plain dict, as no recency need be kept (nor can be, by lock-free hits).
        self._entries: MutableMapping[bytes, Entry] = (
            {} if max_keys is None else EntryLRU(max_keys, self._evicted)
        )
        self._clock = clock
        self._lease_id = 0
        self._floor = 0
        self._closed = False
        self._watching = False  # revocations reach us: without that, nothing may be cached
        self._tombstones = Tombstones(backoff, clock())
        self._writing = WritesInFlight()
        self._releases = ReleaseQueue()
        self._counts = Counters()
        self._publishing = max_keys is None  # a bounded cache's hits keep recency: locked
        self._published = Published(clock, self._counts.hit.counter)

    # --- reads ---------------------------------------------------------------------------

    @property
    def published(self) -> Published:
        """The answers any thread may read without the lock (see `Published`)."""
        return self._published

    def lookup(self, key: bytes, keys_only: bool = False) -> GetResponse | None:
        """Return the shared answer to a get of `key` (keys only or not), or None.

        None: memory cannot answer. The published answer if there is one, else under the lock.
        """
        response = self._published.view(key, keys_only)
        if response is not None:
            return response
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry.pending or self._expired():
                return None
            response = self._hit(key, entry)
        return keys_only_view(response) if keys_only else response

    def answer(self, op: GetOp) -> tuple[Lookup, GetResponse | None]:
        """Answer a single-key get of the current revision from memory if possible."""
        with self._lock:
            entry = self._entries.get(op.key)
            if entry is None:
                self._counts.misses += 1
                return Lookup.ABSENT, None
            if entry.pending or self._expired():
                self._counts.misses += 1
                return Lookup.HELD, None
            response = self._hit(op.key, entry)
            kv, header = entry.kv, response.header  # the shared answer's: built once per floor
        return Lookup.HIT, answer_get(op, kv, header)

    def snapshot(
        self, keys: Iterable[bytes]
    ) -> tuple[dict[bytes, KeyValue | None], ResponseHeader] | None:
        """Return the states of `keys` at one revision, or None unless memory owns them all.

        Counts nothing: the caller counts a hit or a miss once it knows whether the states
        were enough (`count_hit`, `count_miss`).
        """
        with self._lock:
            if self._expired():
                return None
            states: dict[bytes, KeyValue | None] = {}
            newest: Entry | None = None
            for key in keys:
                entry = self._entries.get(key)
                if entry is None or entry.pending:
                    return None
                states[key] = entry.kv
                if newest is None or entry.revision > newest.revision:
                    newest = entry
            if newest is None:
                return None
            return states, header_at(newest, self._floor)

    def raise_floor(self, revision: int) -> None:
        """Note a revision this client has returned: memory never answers below it."""
        with self._lock:
            self._raise(revision)

    # --- acquisitions --------------------------------------------------------------------

    def may_acquire(self, key: bytes) -> int:
        """Return the session lease to acquire `key` under, or 0 if it must not be acquired now."""
        with self._lock:
            now = self._clock()
            if self._closed or not self._watching or not self._lease_id or self._expired(now):
                return 0
            if self._writing.covers(key):
                return 0
            if self._tombstones.backing_off(key, now):
                return 0  # as clientv3: a revoked key is left alone for a while
            return self._lease_id

    def add(self, key: bytes, acquired: Acquired, lease_id: int) -> bool:
        """Cache a key just acquired under `lease_id`; False if it must be released instead.

        Refused when the session changed, a write of ours to the key is in flight, or a
        revocation or release of that leasing key overtook the acquisition's answer.
        """
        with self._lock:
            self._counts.acquisitions += 1
            self._raise(acquired.response.header.revision)
            incarnation = acquired.incarnation
            if (
                self._closed
                or not self._watching
                or lease_id != self._lease_id
                or self._expired()
                or self._writing.covers(key)
                or self._tombstones.overtaken(key, incarnation)
                or key in self._entries
            ):
                self._queue_release(key, incarnation)
                return False
            entry = Entry(
                incarnation,
                acquired.kv,
                acquired.response.header.revision,
                acquired.response.header,
                acquired.response,
            )
            entry.response = build_response(entry, self._floor)
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
                self._drop(key)
            self._counts.revocations += 1
            self._tombstones.mark(key, revision, self._clock(), revoked=True)
            self._queue_release(key, incarnation)

    def forget(self, key: bytes, revision: int) -> None:
        """The leasing key of `key` was deleted or taken by someone else at `revision`."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry.incarnation < revision:
                self._drop(key)
            self._tombstones.mark(key, revision - 1, self._clock(), revoked=False)

    def start_session(self, lease_id: int, valid_until: float) -> None:
        """Use a new session lease, known alive until `valid_until` (monotonic seconds)."""
        with self._lock:
            if not self._closed:
                self._lease_id = lease_id
                self._published.valid_until = valid_until

    def renewed(self, lease_id: int, valid_until: float) -> None:
        """The session lease was renewed: memory may answer until `valid_until`."""
        with self._lock:
            if lease_id == self._lease_id and valid_until > self._published.valid_until:
                self._published.valid_until = valid_until

    def end_session(self, lease_id: int) -> bool:
        """The session lease is (or may be) gone: forget everything at once.

        Returns:
            Whether `lease_id` was the current session.
        """
        with self._lock:
            if lease_id != self._lease_id or not lease_id:
                return False
            self._lease_id, self._published.valid_until = 0, 0.0
            self._published.clear()
            self._entries.clear()
            self._evicted.clear()
            self._counts.session_losses += 1
            return True

    def set_watching(self, *, watching: bool) -> None:
        """Say whether the revocation watch runs; when it stops, give back everything cached.

        A watch that failed may have missed a REVOKE, so nothing cached can be trusted, and
        nothing may be cached until a new watch runs.
        """
        with self._lock:
            self._watching = watching
            if not watching:
                self._published.clear()
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
            self._lease_id, self._published.valid_until = 0, 0.0
            self._published.clear()
            self._entries.clear()
            self._evicted.clear()
            self._releases.clear()
            self._wakeup.notify_all()
        retire(self._counts)

    # --- writes --------------------------------------------------------------------------

    def begin_writes(
        self, keys: frozenset[bytes], ranges: tuple[tuple[bytes, bytes], ...]
    ) -> WriteTicket:
        """Note writes about to be sent; memory stops answering for the keys they cover."""
        with self._lock:
            self._writing.begin(keys, ranges)
            held = covered_entries(self._entries, keys, ranges)
            for key, entry in held.items():
                entry.pending += 1
                self._published.withdraw(key)
            return WriteTicket(self._lease_id, keys, ranges, held)

    def end_writes(self, ticket: WriteTicket, written: Written | None) -> None:
        """Apply the outcome of the writes of `ticket` (None: unknown) to memory."""
        with self._lock:
            self._writing.end(ticket.keys, ticket.ranges)
            if written is not None:
                self._raise(written.revision)
            for key, entry in ticket.entries.items():
                entry.pending -= 1
                if self._entries.get(key) is not entry:
                    continue  # revoked, evicted or the session ended meanwhile
                outcome = settle(key, entry, written)
                if outcome is Settle.KEEP:
                    continue
                if outcome is Settle.UPDATE and written is not None:
                    entry.kv, entry.revision = written.states[key], written.revision
                    entry.header = written.response.header
                    entry.response = build_response(entry, self._floor)
                    continue
                self._drop(key)
                if outcome is Settle.RELEASE:
                    self._queue_release(key, entry.incarnation)

    # --- releases ------------------------------------------------------------------------

    def next_release(self, timeout: float) -> Release | None:
        """Return the next leasing key to give back, waiting up to `timeout` for one."""
        with self._wakeup:
            if not self._releases and not self._closed:
                self._wakeup.wait(timeout)
            return self._releases.pop()

    def take_release(self) -> Release | None:
        """Return the next leasing key to give back, never waiting (for an asyncio shell)."""
        with self._lock:
            return self._releases.pop()

    def retry_release(self, release: Release) -> None:
        """Queue a release again after a failed attempt."""
        with self._wakeup:
            if not self._closed:
                self._releases.push(release)
                self._wakeup.notify()
                if self._on_release is not None:
                    self._on_release()

    def pending_releases(self) -> int:
        """How many releases wait to be sent."""
        with self._lock:
            return len(self._releases)

    # --- stats ---------------------------------------------------------------------------

    def stats(self) -> LeasingStats:
        """Return a snapshot of the counters."""
        with self._lock:
            return self._counts.snapshot(len(self._entries))

    def count_hit(self) -> None:
        """Count a read answered from memory outside `lookup`/`answer` (a txn)."""
        self._counts.hit.bump()  # lock-free (a Tally)

    def count_miss(self) -> None:
        """Count a read that memory could not answer without looking (ranges and the like)."""
        with self._lock:
            self._counts.misses += 1

    # --- under the lock ------------------------------------------------------------------

    def _raise(self, revision: int) -> None:
        if revision > self._floor:
            self._floor = revision
            self._published.clear()  # answered below the floor: rebuilt by the next hit

    def _expired(self, now: float | None = None) -> bool:
        return (self._clock() if now is None else now) >= self._published.valid_until

    def _hit(self, key: bytes, entry: Entry) -> GetResponse:
        # A hit of an entry memory may answer for: its shared answer at the floor, published.
        response = entry.response
        if response.header.revision < self._floor:
            response = entry.response = build_response(entry, self._floor)
        if self._publishing:
            self._published.publish(key, response)
        self._counts.hit.bump()
        return response

    def _drop(self, key: bytes) -> None:
        del self._entries[key]
        self._published.withdraw(key)

    def _queue_release(self, key: bytes, incarnation: int) -> None:
        entry = self._entries.get(key)
        if entry is not None and entry.incarnation == incarnation:
            return  # another attempt cached this very acquisition: keep it
        # Whatever answer is still in flight for this incarnation must not be cached.
        self._tombstones.mark(key, incarnation, self._clock(), revoked=False)
        if not self._closed and self._releases.push(Release(key, incarnation)):
            self._counts.releases += 1
            self._wakeup.notify()
            if self._on_release is not None:
                self._on_release()

    def _drain_evicted(self) -> None:
        while self._evicted:
            key, entry = self._evicted.pop()
            self._published.withdraw(key)
            self._counts.evictions += 1
            self._queue_release(key, entry.incarnation)
