"""The keep-alive schedule: when each lease is renewed, and when an answer or a lease is lost.

A pure core (no grpc, threads or clock: `now` is passed in) that the keep-alive shell drives
under its lock: `due()` says which renewals to send on the stream, which leases may have
expired, whether the stream stopped answering and how long to sleep; `answered()` takes each
response of the stream. Handles are opaque here (the shell's KeepAliveHandle).
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Final, Generic, TypeVar

H = TypeVar("H")

# The sender re-checks its leases at least this often (Go's sendKeepAliveLoop ticks every 500 ms).
TICK: Final = 0.5
# How long a request may go unanswered before the stream counts as black-holed and is reopened
# on another endpoint: a third of the lease's TTL, within these bounds. Go has no such check (it
# relies on gRPC keep-alive pings, off by default); without it a black-holed stream would let the
# lease expire even though other members are healthy.
MIN_ANSWER_WAIT: Final = 0.5
MAX_ANSWER_WAIT: Final = 5.0
FIRST_ANSWER_WAIT: Final = 1.0  # before the server has told us the lease's TTL
NEVER: Final = float("inf")


@dataclass(frozen=True, slots=True)
class KeepAliveStats:
    """A snapshot of a client's keep-alive counters (Client.keep_alive_stats()).

    Attributes:
        leases: leases kept alive now.
        handles: running keep-alive handles (several may share a lease).
        sent: renewal requests sent on the shared stream.
        confirmed: renewals the server confirmed.
        stalls: times the stream stopped answering and was reopened elsewhere.
        lost: leases whose keep-alive ended because no renewal was confirmed within the TTL,
            or because the server no longer knew the lease.
    """

    leases: int = 0
    handles: int = 0
    sent: int = 0
    confirmed: int = 0
    stalls: int = 0
    lost: int = 0


@dataclass(slots=True)
class LeaseState(Generic[H]):
    """The renewal state of one lease, shared by every handle on it."""

    lease_id: int
    handles: list[H] = field(default_factory=list)
    ttl: int = 0  # the latest TTL the server returned (0: none yet)
    next_send: float = 0.0  # when the next request is due (NEVER while one is unanswered)
    expires: float = NEVER  # when it may have expired: last confirmed request's send time + TTL
    sent: collections.deque[float] = field(default_factory=collections.deque)  # unanswered

    def answer_wait(self) -> float:
        """How long a request of this lease may go unanswered."""
        if not self.ttl:
            return FIRST_ANSWER_WAIT
        return min(max(self.ttl / 3, MIN_ANSWER_WAIT), MAX_ANSWER_WAIT)


@dataclass(frozen=True, slots=True)
class Due(Generic[H]):
    """What the sender does now: see Schedule.due()."""

    send: list[int]  # lease ids to renew on the stream now
    lost: list[LeaseState[H]]  # leases that may have expired (no longer scheduled)
    stalled: bool  # the stream left a request unanswered too long: reset it
    wait: float  # seconds until the next call of due()


class Schedule(Generic[H]):
    """Every lease a client keeps alive, and when each is renewed next."""

    def __init__(self) -> None:
        self._leases: dict[int, LeaseState[H]] = {}
        self._sent = 0
        self._confirmed = 0
        self._stalls = 0
        self._lost = 0

    def add(self, lease_id: int, handle: H) -> None:
        """Renew `lease_id` for `handle` too, with a request due at once (its caller waits)."""
        lease = self._leases.setdefault(lease_id, LeaseState(lease_id))
        lease.handles.append(handle)
        lease.next_send = 0.0

    def remove(self, lease_id: int, handle: H) -> None:
        """Stop renewing for `handle`; the lease is dropped with its last handle."""
        lease = self._leases.get(lease_id)
        if lease is None or handle not in lease.handles:
            return
        lease.handles.remove(handle)
        if not lease.handles:
            del self._leases[lease_id]

    def clear(self) -> list[LeaseState[H]]:
        """Drop every lease and return them (their handles end)."""
        leases, self._leases = list(self._leases.values()), {}
        return leases

    def due(self, now: float, *, streaming: bool) -> Due[H]:
        """Return what to do at `now`.

        That is: the renewals to send (when a stream is open), the leases lost, whether the
        stream stalled, and how long to wait before asking again.
        """
        send: list[int] = []
        lost: list[LeaseState[H]] = []
        stalled = False
        wait = TICK
        for lease in list(self._leases.values()):
            if now >= lease.expires:
                lost.append(lease)
                del self._leases[lease.lease_id]
                continue
            wait = min(wait, lease.expires - now)
            if not streaming:
                continue
            if lease.sent and now - lease.sent[0] >= lease.answer_wait():
                stalled = True
            elif now >= lease.next_send:
                send.append(lease.lease_id)
                lease.sent.append(now)
                lease.next_send = NEVER  # the answer schedules the next one
            if lease.sent:
                wait = min(wait, lease.sent[0] + lease.answer_wait() - now)
            wait = min(wait, lease.next_send - now)
        self._sent += len(send)
        self._lost += len(lost)
        self._stalls += stalled
        return Due(send, lost, stalled, max(wait, 0.0))

    def attached(self, now: float) -> None:
        """A new stream opened: requests unanswered on the old one are sent again at once."""
        for lease in self._leases.values():
            if lease.sent:
                lease.sent.clear()
                lease.next_send = now

    def answered(self, lease_id: int, ttl: int, now: float) -> tuple[list[H], bool]:
        """Take the server's answer for `lease_id` at `now`.

        Returns:
            The handles to hand it to (none for a lease no longer kept alive), and whether
            the lease is gone (etcd answers TTL <= 0 for a missing or expired lease).
        """
        lease = self._leases.get(lease_id)
        if lease is None:
            return [], False
        sent_at = lease.sent.popleft() if lease.sent else now
        handles = list(lease.handles)
        if ttl <= 0:
            del self._leases[lease_id]
            self._lost += 1
            return handles, True
        self._confirmed += 1
        lease.ttl = ttl
        lease.expires = sent_at + ttl  # answers come in order: it only grows
        if not lease.sent:
            lease.next_send = now + ttl / 3  # Go renews at a third of the TTL
        return handles, False

    def stats(self) -> KeepAliveStats:
        """Return a snapshot of the counters."""
        return KeepAliveStats(
            leases=len(self._leases),
            handles=sum(len(lease.handles) for lease in self._leases.values()),
            sent=self._sent,
            confirmed=self._confirmed,
            stalls=self._stalls,
            lost=self._lost,
        )
