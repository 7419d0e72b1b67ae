"""The Lease Protocol's unary calls (grant, revoke, time_to_live, leases), written once as flows.

`LeaseMixin` makes them Client methods (and adds keep_alive_once, which renews on a stream);
`_aio_calls.AsyncCallsMixin` makes the same flows AsyncClient coroutines.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from etcd_layers.base import _convert, _methods
from etcd_layers.base._flow import Flow, call, sync_call
from etcd_layers.base._proto import rpc_pb2
from etcd_layers.base.checks import check_bool, check_int, check_timeout
from etcd_layers.base.responses import (
    LeaseGrantResponse,
    LeaseKeepAliveResponse,
    LeaseLeasesResponse,
    LeaseRevokeResponse,
    LeaseStatus,
    LeaseTimeToLiveResponse,
)
from etcd_layers.errors import LeaseNotFoundError

if TYPE_CHECKING:
    from etcd_layers.base._connection import Connection

__all__ = ["LeaseMixin", "grant", "leases", "renewed", "revoke", "time_to_live"]


def grant(ttl: int, *, lease_id: int = 0, timeout: float | None = None) -> Flow[LeaseGrantResponse]:
    """Create a lease (see Lease.grant)."""
    request = rpc_pb2.LeaseGrantRequest(
        TTL=check_int(ttl, "ttl"), ID=check_int(lease_id, "lease_id")
    )
    message = yield from call(_methods.LEASE_GRANT, request, idempotent=False)
    return LeaseGrantResponse(
        _convert.header(message.header), message.ID, message.TTL, message.error
    )


def revoke(lease_id: int, *, timeout: float | None = None) -> Flow[LeaseRevokeResponse]:
    """Revoke a lease (see Lease.revoke)."""
    request = rpc_pb2.LeaseRevokeRequest(ID=check_int(lease_id, "lease_id"))
    message = yield from call(_methods.LEASE_REVOKE, request, idempotent=False)
    return LeaseRevokeResponse(_convert.header(message.header))


def time_to_live(
    lease_id: int, *, keys: bool = False, timeout: float | None = None
) -> Flow[LeaseTimeToLiveResponse]:
    """Return a lease's TTL (see Lease.time_to_live)."""
    request = rpc_pb2.LeaseTimeToLiveRequest(
        ID=check_int(lease_id, "lease_id"), keys=check_bool(keys, "keys")
    )
    message = yield from call(_methods.LEASE_TIME_TO_LIVE, request, idempotent=True)
    return LeaseTimeToLiveResponse(
        _convert.header(message.header),
        message.ID,
        message.TTL,
        message.grantedTTL,
        list(message.keys),
    )


def leases(*, timeout: float | None = None) -> Flow[LeaseLeasesResponse]:
    """List every lease (see Lease.leases)."""
    message = yield from call(_methods.LEASE_LEASES, rpc_pb2.LeaseLeasesRequest(), idempotent=True)
    return LeaseLeasesResponse(
        _convert.header(message.header), [LeaseStatus(lease.ID) for lease in message.leases]
    )


def renewed(lease_id: int, response: LeaseKeepAliveResponse) -> LeaseKeepAliveResponse:
    """Return the answer of a keep_alive_once of `lease_id`.

    Raises:
        LeaseNotFoundError: the lease does not exist (etcd answers with TTL <= 0).
    """
    if response.ttl <= 0:
        raise LeaseNotFoundError(f"lease {lease_id:x} not found")
    return response


class LeaseMixin:
    """The unary Lease calls, mixed into Client (keep_alive streams live in _keepalive)."""

    _conn: Connection
    # KeepAliveMixin's one renewal request, beside this mixin in Client's bases.
    _keep_alive_request: Callable[[int, float | None], LeaseKeepAliveResponse]

    grant = sync_call(grant)
    revoke = sync_call(revoke)
    time_to_live = sync_call(time_to_live)
    leases = sync_call(leases)

    def keep_alive_once(
        self, lease_id: int, *, timeout: float | None = None
    ) -> LeaseKeepAliveResponse:
        """Renew a lease once (see Lease.keep_alive_once).

        Raises:
            LeaseNotFoundError: the lease does not exist (etcd answers with TTL <= 0).
        """
        lease_id = check_int(lease_id, "lease_id")
        return renewed(lease_id, self._keep_alive_request(lease_id, check_timeout(timeout)))
