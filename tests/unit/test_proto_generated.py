"""The committed protobuf modules are fresh, private to this project, and build etcd's messages."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import FileDescriptor
from google.protobuf.message import Message

from etcd_layers.base._proto import auth_pb2, kv_pb2, rpc_pb2

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ROOT / "src" / "etcd_layers" / "base" / "_proto"
SCRIPT = ROOT / "scripts" / "gen_proto.py"
COMMITTED = sorted(path.name for path in GENERATED.iterdir() if path.suffix in {".py", ".pyi"})

# (file descriptor, its name in the pool, its package, the files it imports)
FILES = [
    (kv_pb2.DESCRIPTOR, "etcd_layers/base/_proto/kv.proto", "etcd_layers.mvccpb", []),
    (auth_pb2.DESCRIPTOR, "etcd_layers/base/_proto/auth.proto", "etcd_layers.authpb", []),
    (
        rpc_pb2.DESCRIPTOR,
        "etcd_layers/base/_proto/rpc.proto",
        "etcd_layers.etcdserverpb",
        ["etcd_layers/base/_proto/kv.proto", "etcd_layers/base/_proto/auth.proto"],
    ),
]

RPC_MESSAGES = {
    "ResponseHeader",
    # KV
    "RangeRequest", "RangeResponse", "PutRequest", "PutResponse", "DeleteRangeRequest",
    "DeleteRangeResponse", "RequestOp", "ResponseOp", "Compare", "TxnRequest", "TxnResponse",
    "CompactionRequest", "CompactionResponse",
    # Watch
    "WatchRequest", "WatchCreateRequest", "WatchCancelRequest", "WatchProgressRequest",
    "WatchResponse",
    # Lease
    "LeaseGrantRequest", "LeaseGrantResponse", "LeaseRevokeRequest", "LeaseRevokeResponse",
    "LeaseCheckpoint", "LeaseCheckpointRequest", "LeaseCheckpointResponse",
    "LeaseKeepAliveRequest", "LeaseKeepAliveResponse", "LeaseTimeToLiveRequest",
    "LeaseTimeToLiveResponse", "LeaseLeasesRequest", "LeaseStatus", "LeaseLeasesResponse",
    # Cluster
    "Member", "MemberAddRequest", "MemberAddResponse", "MemberRemoveRequest",
    "MemberRemoveResponse", "MemberUpdateRequest", "MemberUpdateResponse", "MemberListRequest",
    "MemberListResponse", "MemberPromoteRequest", "MemberPromoteResponse",
    # Maintenance
    "AlarmRequest", "AlarmMember", "AlarmResponse", "StatusRequest", "StatusResponse",
    "DefragmentRequest", "DefragmentResponse", "HashRequest", "HashResponse", "HashKVRequest",
    "HashKVResponse", "SnapshotRequest", "SnapshotResponse", "MoveLeaderRequest",
    "MoveLeaderResponse", "DowngradeRequest", "DowngradeResponse",
    # Auth
    "AuthEnableRequest", "AuthEnableResponse", "AuthDisableRequest", "AuthDisableResponse",
    "AuthStatusRequest", "AuthStatusResponse", "AuthenticateRequest", "AuthenticateResponse",
    "AuthUserAddRequest", "AuthUserAddResponse", "AuthUserGetRequest", "AuthUserGetResponse",
    "AuthUserListRequest", "AuthUserListResponse", "AuthUserDeleteRequest",
    "AuthUserDeleteResponse", "AuthUserChangePasswordRequest", "AuthUserChangePasswordResponse",
    "AuthUserGrantRoleRequest", "AuthUserGrantRoleResponse", "AuthUserRevokeRoleRequest",
    "AuthUserRevokeRoleResponse", "AuthRoleAddRequest", "AuthRoleAddResponse",
    "AuthRoleGetRequest", "AuthRoleGetResponse", "AuthRoleListRequest", "AuthRoleListResponse",
    "AuthRoleDeleteRequest", "AuthRoleDeleteResponse", "AuthRoleGrantPermissionRequest",
    "AuthRoleGrantPermissionResponse", "AuthRoleRevokePermissionRequest",
    "AuthRoleRevokePermissionResponse",
}  # fmt: skip

AUTH_METHODS = (
    "AuthEnable", "AuthDisable", "AuthStatus", "Authenticate", "UserAdd", "UserGet", "UserList",
    "UserDelete", "UserChangePassword", "UserGrantRole", "UserRevokeRole", "RoleAdd", "RoleGet",
    "RoleList", "RoleDelete", "RoleGrantPermission", "RoleRevokePermission",
)  # fmt: skip

# service -> {method: (client streams, server streams)}
SERVICES = {
    "KV": {n: (False, False) for n in ("Range", "Put", "DeleteRange", "Txn", "Compact")},
    "Watch": {"Watch": (True, True)},
    "Lease": {
        "LeaseGrant": (False, False),
        "LeaseRevoke": (False, False),
        "LeaseKeepAlive": (True, True),
        "LeaseTimeToLive": (False, False),
        "LeaseLeases": (False, False),
    },
    "Cluster": {
        n: (False, False)
        for n in ("MemberAdd", "MemberRemove", "MemberUpdate", "MemberList", "MemberPromote")
    },
    "Maintenance": {
        "Alarm": (False, False),
        "Status": (False, False),
        "Defragment": (False, False),
        "Hash": (False, False),
        "HashKV": (False, False),
        "Snapshot": (False, True),
        "MoveLeader": (False, False),
        "Downgrade": (False, False),
    },
    "Auth": {n: (False, False) for n in AUTH_METHODS},
}


def _kv(n: int) -> kv_pb2.KeyValue:
    return kv_pb2.KeyValue(
        key=b"k%d" % n,
        create_revision=n + 1,
        mod_revision=n + 2,
        version=n + 3,
        value=b"v\x00\xff%d" % n,
        lease=-(n + 4),
    )


def _header() -> rpc_pb2.ResponseHeader:
    return rpc_pb2.ResponseHeader(cluster_id=2**64 - 1, member_id=7, revision=-8, raft_term=9)


ROUND_TRIP: list[Message] = [
    rpc_pb2.RangeRequest(
        key=b"a",
        range_end=b"\x00",
        limit=3,
        revision=4,
        sort_order=rpc_pb2.RangeRequest.DESCEND,
        sort_target=rpc_pb2.RangeRequest.VALUE,
        serializable=True,
        keys_only=True,
        count_only=True,
        min_mod_revision=10,
        max_mod_revision=11,
        min_create_revision=12,
        max_create_revision=13,
    ),
    rpc_pb2.RangeResponse(header=_header(), kvs=[_kv(1), _kv(2)], more=True, count=5),
    rpc_pb2.TxnRequest(
        compare=[
            rpc_pb2.Compare(
                result=rpc_pb2.Compare.NOT_EQUAL,
                target=rpc_pb2.Compare.LEASE,
                key=b"c",
                lease=6,
                range_end=b"d",
            ),
            rpc_pb2.Compare(target=rpc_pb2.Compare.VALUE, key=b"e", value=b"\xff"),
        ],
        success=[
            rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"p", value=b"q", prev_kv=True)),
            rpc_pb2.RequestOp(
                request_txn=rpc_pb2.TxnRequest(
                    failure=[
                        rpc_pb2.RequestOp(
                            request_delete_range=rpc_pb2.DeleteRangeRequest(key=b"x", prev_kv=True)
                        )
                    ]
                )
            ),
        ],
        failure=[rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=b"r"))],
    ),
    rpc_pb2.TxnResponse(
        header=_header(),
        succeeded=True,
        responses=[
            rpc_pb2.ResponseOp(response_put=rpc_pb2.PutResponse(prev_kv=_kv(3))),
            rpc_pb2.ResponseOp(
                response_txn=rpc_pb2.TxnResponse(
                    responses=[
                        rpc_pb2.ResponseOp(
                            response_delete_range=rpc_pb2.DeleteRangeResponse(
                                deleted=1, prev_kvs=[_kv(4)]
                            )
                        )
                    ]
                )
            ),
        ],
    ),
    rpc_pb2.WatchRequest(
        create_request=rpc_pb2.WatchCreateRequest(
            key=b"w",
            range_end=b"x",
            start_revision=5,
            progress_notify=True,
            filters=[rpc_pb2.WatchCreateRequest.NODELETE, rpc_pb2.WatchCreateRequest.NOPUT],
            prev_kv=True,
            watch_id=6,
            fragment=True,
        )
    ),
    rpc_pb2.WatchRequest(progress_request=rpc_pb2.WatchProgressRequest()),
    rpc_pb2.WatchResponse(
        header=_header(),
        watch_id=1,
        created=True,
        canceled=True,
        compact_revision=2,
        cancel_reason="gone",
        fragment=True,
        events=[kv_pb2.Event(type=kv_pb2.Event.DELETE, kv=_kv(5), prev_kv=_kv(6))],
    ),
    rpc_pb2.LeaseTimeToLiveResponse(ID=1, TTL=-1, grantedTTL=60, keys=[b"a", b"b"]),
    rpc_pb2.MemberAddResponse(
        member=rpc_pb2.Member(
            ID=2**63, name="m", peerURLs=["http://p"], clientURLs=["http://c"], isLearner=True
        )
    ),
    rpc_pb2.StatusResponse(
        version="3.5.0",
        dbSize=1,
        leader=2,
        raftIndex=3,
        raftTerm=4,
        raftAppliedIndex=5,
        errors=["e"],
        dbSizeInUse=6,
        isLearner=True,
    ),
    rpc_pb2.AlarmResponse(alarms=[rpc_pb2.AlarmMember(memberID=1, alarm=rpc_pb2.CORRUPT)]),
    rpc_pb2.AuthUserAddRequest(
        name="u", password="p", options=auth_pb2.UserAddOptions(no_password=True)
    ),
    rpc_pb2.AuthRoleGetResponse(
        perm=[auth_pb2.Permission(permType=auth_pb2.Permission.READWRITE, key=b"k", range_end=b"l")]
    ),
]


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run scripts/gen_proto.py into a fresh directory."""
    if importlib.util.find_spec("grpc_tools") is None:
        pytest.skip("grpc_tools (grpcio-tools) is not installed, so protoc cannot run")
    out = tmp_path_factory.mktemp("proto")
    subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(out)], check=True, capture_output=True
    )
    return out


def test_gen_proto_writes_exactly_the_committed_files(regenerated: Path) -> None:
    """The script produces the same set of files that is committed, and no service stubs."""
    assert sorted(path.name for path in regenerated.iterdir()) == COMMITTED
    assert not [name for name in COMMITTED if name.endswith("_grpc.py")]


@pytest.mark.parametrize("name", COMMITTED)
def test_gen_proto_output_equals_committed_file(regenerated: Path, name: str) -> None:
    """Each committed file is byte-for-byte what the script generates now."""
    fresh = (regenerated / name).read_bytes()
    assert fresh == (GENERATED / name).read_bytes(), f"{name} is stale: run scripts/gen_proto.py"


@pytest.mark.parametrize("name", [n for n in COMMITTED if n.endswith("_pb2.py")])
def test_proto_module_has_no_runtime_version_check(name: str) -> None:
    """Generated modules skip the runtime version check, so old protobuf can import them."""
    assert "runtime_version" not in (GENERATED / name).read_text(encoding="utf-8")


@pytest.mark.parametrize(("descriptor", "file_name", "package", "dependencies"), FILES)
def test_proto_descriptor_is_private_and_self_contained(
    descriptor: FileDescriptor, file_name: str, package: str, dependencies: list[str]
) -> None:
    """Each committed descriptor decodes to a private package that imports only its siblings."""
    proto = descriptor_pb2.FileDescriptorProto.FromString(descriptor.serialized_pb)
    assert (proto.name, proto.package, list(proto.dependency)) == (file_name, package, dependencies)
    assert proto.syntax == "proto3"
    assert not proto.HasField("source_code_info")


def test_proto_rpc_defines_every_etcd_message() -> None:
    """rpc.proto holds exactly the messages of etcd 3.5's v3 services."""
    assert set(rpc_pb2.DESCRIPTOR.message_types_by_name) == RPC_MESSAGES


def test_proto_kv_and_auth_define_the_storage_messages() -> None:
    """kv.proto and auth.proto hold etcd's mvccpb and authpb messages."""
    assert set(kv_pb2.DESCRIPTOR.message_types_by_name) == {"KeyValue", "Event"}
    assert set(auth_pb2.DESCRIPTOR.message_types_by_name) == {
        "UserAddOptions",
        "User",
        "Permission",
        "Role",
    }


def test_proto_rpc_declares_the_six_services() -> None:
    """The six services carry etcd's method names, message types and streaming modes."""
    declared = {
        service.name: {
            method.name: (method.client_streaming, method.server_streaming)
            for method in service.methods
        }
        for service in rpc_pb2.DESCRIPTOR.services_by_name.values()
    }
    assert declared == SERVICES
    txn = rpc_pb2.DESCRIPTOR.services_by_name["KV"].methods_by_name["Txn"]
    assert (txn.input_type.name, txn.output_type.name) == ("TxnRequest", "TxnResponse")


def test_proto_enums_have_etcds_numbers() -> None:
    """Enum values that travel on the wire keep etcd's numbers."""
    assert (kv_pb2.Event.PUT, kv_pb2.Event.DELETE) == (0, 1)
    assert (auth_pb2.Permission.READ, auth_pb2.Permission.WRITE) == (0, 1)
    assert auth_pb2.Permission.READWRITE == 2
    assert (rpc_pb2.NONE, rpc_pb2.NOSPACE, rpc_pb2.CORRUPT) == (0, 1, 2)
    assert (rpc_pb2.AlarmRequest.GET, rpc_pb2.AlarmRequest.DEACTIVATE) == (0, 2)
    assert (rpc_pb2.Compare.EQUAL, rpc_pb2.Compare.NOT_EQUAL, rpc_pb2.Compare.LEASE) == (0, 3, 4)
    assert (rpc_pb2.RangeRequest.DESCEND, rpc_pb2.RangeRequest.VALUE) == (2, 4)
    assert (rpc_pb2.WatchCreateRequest.NOPUT, rpc_pb2.WatchCreateRequest.NODELETE) == (0, 1)


def test_proto_compare_target_union_uses_etcds_field_numbers() -> None:
    """Compare's oneof members and range_end sit at etcd's field numbers."""
    fields = rpc_pb2.Compare.DESCRIPTOR.fields_by_name
    union = rpc_pb2.Compare.DESCRIPTOR.oneofs_by_name["target_union"]
    numbers = {field.name: field.number for field in union.fields}
    assert numbers == {
        "version": 4,
        "create_revision": 5,
        "mod_revision": 6,
        "value": 7,
        "lease": 8,
    }
    assert fields["range_end"].number == 64


@pytest.mark.parametrize("message", ROUND_TRIP, ids=lambda m: type(m).__name__)
def test_proto_message_round_trips(message: Message) -> None:
    """A message with many fields set parses back equal to itself."""
    data = message.SerializeToString()
    assert data
    assert type(message).FromString(data) == message


def test_proto_modules_build_messages() -> None:
    """The generated classes take keyword fields and expose oneofs as etcd names them."""
    op = rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=b"k", keys_only=True))
    assert op.WhichOneof("request") == "request_range"
    assert op.request_range.keys_only
    watch = rpc_pb2.WatchRequest(cancel_request=rpc_pb2.WatchCancelRequest(watch_id=3))
    assert watch.WhichOneof("request_union") == "cancel_request"
    assert rpc_pb2.PutResponse().HasField("prev_kv") is False
    assert type(rpc_pb2.RangeResponse().kvs.add()) is kv_pb2.KeyValue
