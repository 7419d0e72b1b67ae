"""The leasing client's counters, the public snapshot of them, and their process totals."""

from __future__ import annotations

import itertools
import threading
import weakref
from dataclasses import dataclass

from etcd_layers import telemetry


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


class Tally:
    """A count that any thread bumps without a lock, read exactly under a lock of its own.

    A bump is `next(tally.counter)` (or `bump()`), `itertools.count`'s next: one C call, which
    the GIL makes atomic, so no bump is ever lost. (`n += 1` is a load, an add and a store: a
    garbage collection between them may run a finalizer, switch threads, and lose another
    thread's count.) Reading takes a number from the same counter, so `value` subtracts the
    reads made so far.
    """

    __slots__ = ("_lock", "_reads", "counter")

    def __init__(self) -> None:
        self.counter = itertools.count()
        self._lock = threading.Lock()
        self._reads = 0

    def bump(self) -> None:
        """Count one."""
        next(self.counter)

    def value(self) -> int:
        """Return how many bumps there were."""
        with self._lock:
            taken = next(self.counter) - self._reads
            self._reads += 1
            return taken


class Counters:
    """The running counts behind `LeasingStats`.

    Not thread-safe, but for `hits`: the leasing cache counts the rest under its lock, while
    hits are also counted by lock-free reads (`hit`, a `Tally`).
    """

    __slots__ = (
        "__weakref__",
        "acquisitions",
        "evictions",
        "hit",
        "misses",
        "releases",
        "revocations",
        "session_losses",
    )

    def __init__(self) -> None:
        self.hit = Tally()
        self.misses = self.acquisitions = self.revocations = 0
        self.evictions = self.releases = self.session_losses = 0
        with _TOTALS_LOCK:
            _LIVE.add(self)

    @property
    def hits(self) -> int:
        """Reads answered from memory so far."""
        return self.hit.value()

    def snapshot(self, cached_keys: int) -> LeasingStats:
        """Return the counts as a `LeasingStats`, with `cached_keys` keys cached now."""
        return LeasingStats(
            hits=self.hits,
            misses=self.misses,
            acquisitions=self.acquisitions,
            revocations=self.revocations,
            evictions=self.evictions,
            releases=self.releases,
            session_losses=self.session_losses,
            cached_keys=cached_keys,
        )


# The process's totals, for etcd_layers.telemetry: the live counters plus those of closed
# leasing clients (so the sums never go down). Read without the caches' locks: a total may
# lag a count being made, never lose it.
_TOTALS_LOCK = threading.Lock()
_LIVE: weakref.WeakSet[Counters] = weakref.WeakSet()
_RETIRED = LeasingStats()


def retire(counters: Counters) -> None:
    """A leasing client closed: keep its counts in the totals."""
    global _RETIRED  # noqa: PLW0603 (replaced whole, under the lock)
    with _TOTALS_LOCK:
        if counters in _LIVE:
            _LIVE.discard(counters)
            _RETIRED = _add(_RETIRED, counters.snapshot(0))


def totals() -> LeasingStats:
    """The counts of every leasing client of the process, closed ones included."""
    with _TOTALS_LOCK:
        total = _RETIRED
        for counters in list(_LIVE):
            total = _add(total, counters.snapshot(0))
    return total


def _add(a: LeasingStats, b: LeasingStats) -> LeasingStats:
    return LeasingStats(
        hits=a.hits + b.hits,
        misses=a.misses + b.misses,
        acquisitions=a.acquisitions + b.acquisitions,
        revocations=a.revocations + b.revocations,
        evictions=a.evictions + b.evictions,
        releases=a.releases + b.releases,
        session_losses=a.session_losses + b.session_losses,
    )


telemetry.observe_counter("etcd.leasing.hits", "{request}", lambda: totals().hits)
telemetry.observe_counter("etcd.leasing.misses", "{request}", lambda: totals().misses)
telemetry.observe_counter("etcd.leasing.revocations", "{revocation}", lambda: totals().revocations)
