"""The gRPC methods the client calls: wire paths and how their messages are (de)serialized."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

from etcd_layers.base._proto import rpc_pb2

ResponseT = TypeVar("ResponseT")


@dataclass(frozen=True, slots=True)
class Method(Generic[ResponseT]):
    """One unary gRPC method: its wire path, its response type's parser, its request type's.

    `parse_request` reads back a request that was serialized before the call (base._wire), for
    a transport that takes messages (MemoryEtcd's direct path) and for telemetry's key.
    """

    path: str
    parse: Callable[[bytes], ResponseT]
    parse_request: Callable[[bytes], Any] | None = None


def method(service: str, name: str, response: Any, request: Any = None) -> Method[Any]:
    """Return the Method for etcd's `service`/`name` answering with `response` messages."""
    # The wire path names etcd's real package: our own message names are private.
    parse_request = None if request is None else request.FromString
    return Method(f"/etcdserverpb.{service}/{name}", response.FromString, parse_request)


RANGE: Final[Method[rpc_pb2.RangeResponse]] = method(
    "KV", "Range", rpc_pb2.RangeResponse, rpc_pb2.RangeRequest
)
PUT: Final[Method[rpc_pb2.PutResponse]] = method(
    "KV", "Put", rpc_pb2.PutResponse, rpc_pb2.PutRequest
)
DELETE_RANGE: Final[Method[rpc_pb2.DeleteRangeResponse]] = method(
    "KV", "DeleteRange", rpc_pb2.DeleteRangeResponse, rpc_pb2.DeleteRangeRequest
)
TXN: Final[Method[rpc_pb2.TxnResponse]] = method(
    "KV", "Txn", rpc_pb2.TxnResponse, rpc_pb2.TxnRequest
)
COMPACT: Final[Method[rpc_pb2.CompactionResponse]] = method(
    "KV", "Compact", rpc_pb2.CompactionResponse
)
LEASE_GRANT: Final[Method[rpc_pb2.LeaseGrantResponse]] = method(
    "Lease", "LeaseGrant", rpc_pb2.LeaseGrantResponse
)
LEASE_REVOKE: Final[Method[rpc_pb2.LeaseRevokeResponse]] = method(
    "Lease", "LeaseRevoke", rpc_pb2.LeaseRevokeResponse
)
LEASE_TIME_TO_LIVE: Final[Method[rpc_pb2.LeaseTimeToLiveResponse]] = method(
    "Lease", "LeaseTimeToLive", rpc_pb2.LeaseTimeToLiveResponse
)
LEASE_LEASES: Final[Method[rpc_pb2.LeaseLeasesResponse]] = method(
    "Lease", "LeaseLeases", rpc_pb2.LeaseLeasesResponse
)
AUTHENTICATE: Final[Method[rpc_pb2.AuthenticateResponse]] = method(
    "Auth", "Authenticate", rpc_pb2.AuthenticateResponse
)

# Streams (paths only: their threads open them).
WATCH_PATH: Final = "/etcdserverpb.Watch/Watch"
LEASE_KEEP_ALIVE_PATH: Final = "/etcdserverpb.Lease/LeaseKeepAlive"
SNAPSHOT_PATH: Final = "/etcdserverpb.Maintenance/Snapshot"
