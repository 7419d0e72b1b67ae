"""The seam for transports other than gRPC: a Client or AsyncClient over channels made elsewhere.

`testing.MemoryEtcd` builds its clients here, over in-process stand-ins for gRPC channels:
everything above the channel (argument checks, the retry loop, deadlines, the watch and
keep-alive shells, the error mapping) is the real client's. A channel factory takes an
endpoint address and returns an object offering what the client uses of a `grpc.Channel`
(`grpc.aio.Channel` for the AsyncClient). The wire messages are re-exported for such transports.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from etcd_layers.base._aio_connection import AsyncConnection
from etcd_layers.base._aio_keepalive_handle import AsyncKeepAliveHandle
from etcd_layers.base._connection import Connection
from etcd_layers.base._endpoint import DirectAnswer
from etcd_layers.base._keepalive_handle import KeepAliveHandle
from etcd_layers.base._proto import kv_pb2, rpc_pb2
from etcd_layers.base._settings import DEFAULT_MAX_SEND
from etcd_layers.base.async_client import AsyncClient
from etcd_layers.base.checks import check_timeout
from etcd_layers.base.client import Client

__all__ = [
    "AsyncKeepAliveHandle",
    "DirectAnswer",
    "KeepAliveHandle",
    "async_client_over",
    "client_over",
    "kv_pb2",
    "rpc_pb2",
]

ClientT = TypeVar("ClientT", bound=Client)
AsyncClientT = TypeVar("AsyncClientT", bound=AsyncClient)

_DIAL_TIMEOUT = 5.0


def client_over(
    cls: type[ClientT],
    channel_factory: Callable[[str], object],
    address: str,
    *,
    timeout: float | None = None,
    direct: DirectAnswer | None = None,
) -> ClientT:
    """A connected `cls` (Client or a subclass) whose channels `channel_factory` makes.

    Args:
        cls: the client class to build.
        channel_factory: makes the channel of an endpoint, given its address.
        address: the one endpoint, as `host:port` (a name: no connection is made).
        timeout: the client's default deadline (None: none).
        direct: the transport's own answer to unary requests, `(method path, request
            message) -> response message`, raising grpc.RpcError when refused; it replaces
            serialization and the retry loop (None: every call goes through the channels).
    """
    connection = Connection(
        [address],
        tls=None,
        options=[],
        username=None,
        password=None,
        require_leader=False,
        default_timeout=check_timeout(timeout),
        dial_timeout=_DIAL_TIMEOUT,
        max_send_size=DEFAULT_MAX_SEND,
        channel_factory=channel_factory,  # type: ignore[arg-type]  # speaks what gRPC's does
        direct=direct,
    )
    return cls.from_connection(connection)


def async_client_over(
    cls: type[AsyncClientT],
    channel_factory: Callable[[str], object],
    address: str,
    *,
    timeout: float | None = None,
    direct: DirectAnswer | None = None,
) -> AsyncClientT:
    """An `cls` (AsyncClient or a subclass) whose channels `channel_factory` makes.

    The arguments are client_over's. It may be built off its event loop; its channels bind
    to the loop that first uses them.
    """
    connection = AsyncConnection(
        [address],
        tls=None,
        options=[],
        username=None,
        password=None,
        require_leader=False,
        default_timeout=check_timeout(timeout),
        dial_timeout=_DIAL_TIMEOUT,
        max_send_size=DEFAULT_MAX_SEND,
        channel_factory=channel_factory,  # type: ignore[arg-type]  # speaks what grpc.aio's does
        direct=direct,
    )
    return cls.from_connection(connection)
