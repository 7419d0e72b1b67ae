"""Lease keep-alives: one renewal on demand, and background keep-alive streams."""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc

from etcd_layers.base import _convert
from etcd_layers.base._connection import serialize
from etcd_layers.base._methods import LEASE_KEEP_ALIVE_PATH
from etcd_layers.base._proto import rpc_pb2
from etcd_layers.base.responses import LeaseKeepAliveResponse
from etcd_layers.errors import DeadlineExceededError, UnavailableError, from_rpc_error

if TYPE_CHECKING:
    from etcd_layers.base._connection import Connection


class KeepAliveMixin:
    """The Lease Protocol's keep-alive calls, mixed into Client."""

    _conn: Connection

    def _keep_alive_request(self, lease_id: int, timeout: float | None) -> LeaseKeepAliveResponse:
        """Send one LeaseKeepAlive request on a short-lived stream and return the answer.

        A renewal is idempotent, so a transport failure moves on to another endpoint.
        """
        conn = self._conn
        conn.check_open()
        deadline = conn.deadline(timeout)
        request = rpc_pb2.LeaseKeepAliveRequest(ID=lease_id)
        while True:
            endpoint = conn.pick()
            stream = endpoint.channel.stream_stream(
                LEASE_KEEP_ALIVE_PATH,
                request_serializer=serialize,
                response_deserializer=rpc_pb2.LeaseKeepAliveResponse.FromString,
            )
            call = stream(iter([request]), timeout=deadline.remaining(), metadata=conn.metadata)
            try:
                for message in call:
                    return LeaseKeepAliveResponse(
                        _convert.header(message.header), message.ID, message.TTL
                    )
                raise UnavailableError("keep-alive stream ended without an answer")
            except grpc.RpcError as err:
                error = from_rpc_error(err)
                if type(error) is not UnavailableError:
                    raise error from err
                conn.mark_failed(endpoint)
                if conn.closed.wait(deadline.left_or(0.05)):
                    raise error from err
                if deadline.expired():
                    raise DeadlineExceededError("deadline exceeded") from err
            finally:
                call.cancel()
