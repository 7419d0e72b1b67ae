"""The Lease Protocol's unary calls (grant, revoke, time_to_live, leases, keep_alive_once)."""

from __future__ import annotations

from collections.abc import Callable

from etcd_layers.base import _convert, _methods
from etcd_layers.base._connection import Connection
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


class LeaseMixin:
    """The unary Lease calls, mixed into Client (keep_alive streams live in _keepalive)."""

    _conn: Connection
    # KeepAliveMixin's one renewal request, beside this mixin in Client's bases.
    _keep_alive_request: Callable[[int, float | None], LeaseKeepAliveResponse]

    def grant(
        self, ttl: int, *, lease_id: int = 0, timeout: float | None = None
    ) -> LeaseGrantResponse:
        """Create a lease (see Lease.grant)."""
        request = rpc_pb2.LeaseGrantRequest(
            TTL=check_int(ttl, "ttl"), ID=check_int(lease_id, "lease_id")
        )
        message = self._conn.call(
            _methods.LEASE_GRANT, request, check_timeout(timeout), idempotent=False
        )
        return LeaseGrantResponse(
            _convert.header(message.header), message.ID, message.TTL, message.error
        )

    def revoke(self, lease_id: int, *, timeout: float | None = None) -> LeaseRevokeResponse:
        """Revoke a lease (see Lease.revoke)."""
        request = rpc_pb2.LeaseRevokeRequest(ID=check_int(lease_id, "lease_id"))
        message = self._conn.call(
            _methods.LEASE_REVOKE, request, check_timeout(timeout), idempotent=False
        )
        return LeaseRevokeResponse(_convert.header(message.header))

    def time_to_live(
        self, lease_id: int, *, keys: bool = False, timeout: float | None = None
    ) -> LeaseTimeToLiveResponse:
        """Return a lease's TTL (see Lease.time_to_live)."""
        request = rpc_pb2.LeaseTimeToLiveRequest(
            ID=check_int(lease_id, "lease_id"), keys=check_bool(keys, "keys")
        )
        message = self._conn.call(
            _methods.LEASE_TIME_TO_LIVE, request, check_timeout(timeout), idempotent=True
        )
        return LeaseTimeToLiveResponse(
            _convert.header(message.header),
            message.ID,
            message.TTL,
            message.grantedTTL,
            list(message.keys),
        )

    def leases(self, *, timeout: float | None = None) -> LeaseLeasesResponse:
        """List every lease (see Lease.leases)."""
        message = self._conn.call(
            _methods.LEASE_LEASES,
            rpc_pb2.LeaseLeasesRequest(),
            check_timeout(timeout),
            idempotent=True,
        )
        return LeaseLeasesResponse(
            _convert.header(message.header), [LeaseStatus(lease.ID) for lease in message.leases]
        )

    def keep_alive_once(
        self, lease_id: int, *, timeout: float | None = None
    ) -> LeaseKeepAliveResponse:
        """Renew a lease once (see Lease.keep_alive_once).

        Raises:
            LeaseNotFoundError: the lease does not exist (etcd answers with TTL <= 0).
        """
        lease_id = check_int(lease_id, "lease_id")
        response = self._keep_alive_request(lease_id, check_timeout(timeout))
        if response.ttl <= 0:
            raise LeaseNotFoundError(f"lease {lease_id:x} not found")
        return response
