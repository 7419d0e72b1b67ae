"""The etcd v3 gRPC methods MemoryEtcd serves: wire paths, request types and which call answers."""

from __future__ import annotations

from typing import Final

from google.protobuf.message import Message

from etcd_layers.base.transport import rpc_pb2

# Unary methods: path -> (request type, response type, the Backend method that answers).
UNARY: Final[dict[str, tuple[type[Message], type[Message], str]]] = {
    "/etcdserverpb.KV/Range": (rpc_pb2.RangeRequest, rpc_pb2.RangeResponse, "range"),
    "/etcdserverpb.KV/Put": (rpc_pb2.PutRequest, rpc_pb2.PutResponse, "put"),
    "/etcdserverpb.KV/DeleteRange": (
        rpc_pb2.DeleteRangeRequest,
        rpc_pb2.DeleteRangeResponse,
        "delete_range",
    ),
    "/etcdserverpb.KV/Txn": (rpc_pb2.TxnRequest, rpc_pb2.TxnResponse, "txn"),
    "/etcdserverpb.KV/Compact": (rpc_pb2.CompactionRequest, rpc_pb2.CompactionResponse, "compact"),
    "/etcdserverpb.Lease/LeaseGrant": (
        rpc_pb2.LeaseGrantRequest,
        rpc_pb2.LeaseGrantResponse,
        "lease_grant",
    ),
    "/etcdserverpb.Lease/LeaseRevoke": (
        rpc_pb2.LeaseRevokeRequest,
        rpc_pb2.LeaseRevokeResponse,
        "lease_revoke",
    ),
    "/etcdserverpb.Lease/LeaseTimeToLive": (
        rpc_pb2.LeaseTimeToLiveRequest,
        rpc_pb2.LeaseTimeToLiveResponse,
        "lease_time_to_live",
    ),
    "/etcdserverpb.Lease/LeaseLeases": (
        rpc_pb2.LeaseLeasesRequest,
        rpc_pb2.LeaseLeasesResponse,
        "lease_leases",
    ),
    "/etcdserverpb.Maintenance/Status": (rpc_pb2.StatusRequest, rpc_pb2.StatusResponse, "status"),
    "/etcdserverpb.Cluster/MemberList": (
        rpc_pb2.MemberListRequest,
        rpc_pb2.MemberListResponse,
        "member_list",
    ),
}
WATCH: Final = "/etcdserverpb.Watch/Watch"
LEASE_KEEP_ALIVE: Final = "/etcdserverpb.Lease/LeaseKeepAlive"
