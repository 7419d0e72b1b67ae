"""What the stream shells tell operators, sync and asyncio alike: log records and telemetry.

The watch and keep-alive shells (base._watch, base._aio_watch, base._keepalive,
base._aio_keepalive) call these at the same points, so the INFO records an operator reads and
the metrics of etcd_layers.telemetry are written once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Protocol

from etcd_layers import telemetry
from etcd_layers.base._watch_recovery import After
from etcd_layers.base.watch_actions import StreamEnd
from etcd_layers.errors import EtcdError, LeaseNotFoundError

__all__ = ["fail_gone_lease", "fail_lost_leases", "watch_stream_ended"]

logger = logging.getLogger("etcd_layers.client")


class _Failable(Protocol):
    def fail(self, error: EtcdError) -> object: ...


class _Handle(Protocol):
    @property
    def responses(self) -> _Failable: ...


class _Lost(Protocol):
    @property
    def lease_id(self) -> int: ...
    @property
    def ttl(self) -> int: ...
    @property
    def handles(self) -> Iterable[_Handle]: ...


def watch_stream_ended(address: str, end: StreamEnd, error: EtcdError | None, after: After) -> None:
    """A watch stream to `address` ended: log it, and count a resumption if watches go on."""
    if after is After.FAIL or not end.carried:
        logger.debug("watch stream to %s ended (%s)", address, end.reason or error)
        return
    logger.info(
        "watch stream to %s ended (%s); %d watch(es) resume on the next stream",
        address,
        end.reason or error or "closed by the server",
        end.carried,
    )
    instruments = telemetry.active
    if instruments is not None:
        instruments.watch_resumed(end.carried)


def fail_lost_leases(lost: Iterable[_Lost]) -> None:
    """End the keep-alives of leases whose renewal went unconfirmed for their whole TTL."""
    for lease in lost:
        error = f"no renewal of lease {lease.lease_id:x} was confirmed within its TTL"
        _lease_lost(lease.lease_id, error)
        for handle in lease.handles:
            handle.responses.fail(LeaseNotFoundError(f"{error} ({lease.ttl}s): it may be gone"))


def fail_gone_lease(lease_id: int, handles: Iterable[_Handle]) -> None:
    """End the keep-alives of a lease etcd says is gone (a renewal answered with TTL <= 0)."""
    _lease_lost(lease_id, "etcd answered that it is gone")
    for handle in handles:
        handle.responses.fail(LeaseNotFoundError(f"lease {lease_id:x} not found"))


def _lease_lost(lease_id: int, why: str) -> None:
    logger.info("keep-alive of lease %x lost: %s", lease_id, why)
    instruments = telemetry.active
    if instruments is not None:
        instruments.keepalive_losses.add(1)
