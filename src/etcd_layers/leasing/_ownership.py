"""The session's decisions, pure: when to renew, what a renewal failure means, what an event does.

Both shells of a leasing client's background side, the threads of `_session.Ownership` and the
tasks of `_async_session.AsyncOwnership`, keep their session in a `SessionState` and ask these
functions what to do; they only do the I/O and the waiting.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator
from typing import Final

from etcd_layers.base.responses import Event, EventType, KeyValue
from etcd_layers.errors import CanceledError, EtcdError, LeaseNotFoundError
from etcd_layers.leasing._cache import LeaseCache
from etcd_layers.leasing._protocol import REVOKE

# Memory stops answering this long before the lease could expire on the server: a tenth of
# the TTL for clock-rate differences, plus a fixed allowance for scheduling delays.
MARGIN_FRACTION: Final = 0.1
MARGIN_SECONDS: Final = 0.25
BACKGROUND_TIMEOUT: Final = 5.0  # seconds for any one request of a background worker
RETRY_BACKOFF: Final = 0.1
MAX_RETRY_BACKOFF: Final = 1.0
REMEMBERED_LEASES: Final = 8


def serving_window(ttl: float) -> float:
    """Return how long after a renewal is sent memory may answer, for a lease of `ttl` s."""
    return max(0.0, ttl - ttl * MARGIN_FRACTION - MARGIN_SECONDS)


def next_backoff(backoff: float) -> float:
    """Return the back-off after one more failure in a row."""
    return min(backoff * 2, MAX_RETRY_BACKOFF)


class Failure(enum.Enum):
    """What a failed renewal means for the session."""

    LOST = "lost"  # the lease is (or may be) gone: clear the cache, grant a new one
    CLOSED = "closed"  # the client underneath was closed: leasing stops
    RETRY = "retry"  # the lease may still be alive: try again after a back-off


class SessionState:
    """The session lease as the background side knows it (one owner: the session worker).

    Args:
        ttl: the TTL asked for, in seconds.
    """

    __slots__ = ("granted_ttl", "last_sent", "lease_id", "ours", "ttl")

    def __init__(self, ttl: int) -> None:
        self.ttl = ttl
        self.lease_id = 0
        self.granted_ttl = ttl
        self.last_sent = 0.0  # when the last renewal that succeeded was sent
        self.ours: tuple[int, ...] = ()  # current and recent session leases, newest first

    def granted(self, lease_id: int, ttl: int, sent: float) -> float:
        """Note a lease granted by a request sent at `sent`; return until when memory answers."""
        self.lease_id, self.granted_ttl, self.last_sent = lease_id, ttl, sent
        self.ours = (lease_id, *self.ours)[:REMEMBERED_LEASES]
        return sent + serving_window(ttl)

    def renewed(self, ttl: int, sent: float) -> float:
        """Note a renewal sent at `sent`; return until when memory answers."""
        self.last_sent, self.granted_ttl = sent, ttl
        return sent + serving_window(ttl)

    def due(self) -> float:
        """When (monotonic seconds) the next renewal is due: a third of the TTL on."""
        return self.last_sent + self.granted_ttl / 3

    def renewal_timeout(self) -> float:
        """How long one renewal may take: a quarter of the TTL, within bounds."""
        return max(0.2, min(BACKGROUND_TIMEOUT, self.granted_ttl / 4))

    def failure_is_loss(self, now: float) -> bool:
        """Whether a failed renewal means the lease may be gone: none confirmed for a TTL."""
        return now - self.last_sent >= self.granted_ttl

    def revoke_timeout(self) -> float:
        """How long revoking a lost lease may take."""
        return min(BACKGROUND_TIMEOUT, self.ttl / 2)

    def is_ours(self, lease_id: int) -> bool:
        """Whether `lease_id` is (or was recently) one of our session leases."""
        return bool(lease_id) and lease_id in self.ours


def apply_event(cache: LeaseCache, prefix: bytes, state: SessionState, event: Event) -> None:
    """Apply one event of the leasing prefix to the cache (the watch worker's step)."""
    kv = event.kv
    if not kv.key.startswith(prefix):
        return
    key = kv.key[len(prefix) :]
    if event.type == EventType.DELETE:
        cache.forget(key, kv.mod_revision)
    elif kv.value == REVOKE and state.is_ours(kv.lease):
        cache.revoke(key, kv.create_revision, kv.mod_revision)
    elif not state.is_ours(kv.lease):
        cache.forget(key, kv.create_revision)  # someone else owns it now


def orphans(
    prefix: bytes, state: SessionState, listing: Iterable[KeyValue]
) -> Iterator[tuple[bytes, int]]:
    """Yield (key, create revision) of our leasing keys in a listing of the prefix.

    After the watch restarted, nothing they stood for is cached any more: they go back.
    """
    for kv in listing:
        if state.is_ours(kv.lease):
            yield kv.key[len(prefix) :], kv.create_revision


def renewal_failure(error: EtcdError, state: SessionState, now: float) -> Failure:
    """Return what the renewal that failed with `error` at `now` means."""
    if isinstance(error, LeaseNotFoundError):
        return Failure.LOST
    if isinstance(error, CanceledError):
        return Failure.CLOSED
    # No renewal confirmed within the TTL: the lease may be gone on the server.
    return Failure.LOST if state.failure_is_loss(now) else Failure.RETRY
