"""Leases on a clock passed in: grant, renew, attach keys, and which ones ran out (pure)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Final

from etcd_layers.testing.memory._errors import (
    LEASE_EXISTS,
    LEASE_NOT_FOUND,
    LEASE_TTL_TOO_LARGE,
    store_error,
)

MAX_LEASE_TTL: Final = 9_000_000_000  # lease.MaxLeaseTTL: seconds
# Lease ids the store picks: positive, as etcd's (its request-id generator masked to 63 bits),
# counting up from a fixed start so that runs are reproducible.
_FIRST_ID: Final = 0x694D_7B3C_0000_0001


@dataclass(slots=True)
class Lease:
    """One lease: its granted TTL, its deadline on the store's clock, and its keys."""

    lease_id: int
    ttl: int
    deadline: float
    keys: set[bytes] = field(default_factory=set)

    def remaining(self, now: float) -> int:
        """Whole seconds left, truncated as etcd's int64(Remaining().Seconds())."""
        return math.trunc(self.deadline - now)


class Leases:
    """Every lease of a store, by id; times are the clock's seconds, given by the caller."""

    def __init__(self, min_ttl: int) -> None:
        self.min_ttl = min_ttl
        self._leases: dict[int, Lease] = {}
        self._next_id = _FIRST_ID

    def grant(self, lease_id: int, ttl: int, now: float) -> Lease:
        """Grant a lease (`lease_id` 0: the store picks one), its TTL raised to the minimum.

        Raises:
            StoreError: TTL too large, or the id is taken (lessor.Grant's order of checks).
        """
        if lease_id == 0:
            while self._next_id in self._leases:
                self._next_id += 1
            lease_id = self._next_id
            self._next_id += 1
        if ttl > MAX_LEASE_TTL:
            raise store_error(LEASE_TTL_TOO_LARGE)
        if lease_id in self._leases:
            raise store_error(LEASE_EXISTS)
        ttl = max(ttl, self.min_ttl)
        lease = self._leases[lease_id] = Lease(lease_id, ttl, now + ttl)
        return lease

    def get(self, lease_id: int) -> Lease | None:
        """The lease, or None."""
        return self._leases.get(lease_id)

    def find(self, lease_id: int) -> Lease:
        """The lease (StoreError: not found)."""
        lease = self._leases.get(lease_id)
        if lease is None:
            raise store_error(LEASE_NOT_FOUND)
        return lease

    def renew(self, lease_id: int, now: float) -> int:
        """Restart the lease's TTL from `now`; return the TTL (StoreError: not found)."""
        lease = self.find(lease_id)
        lease.deadline = now + lease.ttl
        return lease.ttl

    def remove(self, lease_id: int) -> Lease:
        """Forget the lease and return it (StoreError: not found); its keys are the caller's."""
        lease = self.find(lease_id)
        del self._leases[lease_id]
        return lease

    def attach(self, lease_id: int, key: bytes) -> None:
        """Tie `key` to the lease (ignored if the lease is gone)."""
        lease = self._leases.get(lease_id)
        if lease is not None:
            lease.keys.add(key)

    def detach(self, lease_id: int, key: bytes) -> None:
        """Untie `key` from the lease."""
        lease = self._leases.get(lease_id)
        if lease is not None:
            lease.keys.discard(key)

    def ids(self) -> list[int]:
        """Every lease id, in grant order."""
        return list(self._leases)

    def next_expiry(self, kept: frozenset[int] = frozenset()) -> Lease | None:
        """The lease that runs out first (ties: the lower id), or None; `kept` never do."""
        leases = [lease for lease in self._leases.values() if lease.lease_id not in kept]
        if not leases:
            return None
        return min(leases, key=lambda lease: (lease.deadline, lease.lease_id))
