"""The leasing client's counters, and the public snapshot of them."""

from __future__ import annotations

from dataclasses import dataclass


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


class Counters:
    """The running counts behind `LeasingStats`.

    Not thread-safe: the leasing cache counts under its lock.
    """

    __slots__ = (
        "acquisitions",
        "evictions",
        "hits",
        "misses",
        "releases",
        "revocations",
        "session_losses",
    )

    def __init__(self) -> None:
        self.hits = self.misses = self.acquisitions = self.revocations = 0
        self.evictions = self.releases = self.session_losses = 0

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
