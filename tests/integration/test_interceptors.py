"""`interceptors=` and `reject_old_cluster=` on both clients, against a real etcd.

An interceptor must see every unary call and every stream (watch, keep-alive) the client makes;
`reject_old_cluster=True` accepts the etcd under test and refuses a member that reports an
older version (a one-method gRPC server on loopback stands in for an etcd 3.3 member).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest
from conftest import CLIENT_KINDS, client_of_kind

from etcd_layers import AsyncClient, Client, Compare, Op, errors
from etcd_layers.base._proto import rpc_pb2
from etcd_layers.testing import EtcdServer

SEQUENCE_METHODS = [
    "/etcdserverpb.KV/Put",
    "/etcdserverpb.KV/Range",
    "/etcdserverpb.KV/Txn",
    "/etcdserverpb.KV/DeleteRange",
    "/etcdserverpb.Watch/Watch",
    "/etcdserverpb.Lease/LeaseGrant",
    "/etcdserverpb.Lease/LeaseKeepAlive",
    "/etcdserverpb.Lease/LeaseTimeToLive",
    "/etcdserverpb.Lease/LeaseRevoke",
    "/etcdserverpb.Maintenance/Status",
    "/etcdserverpb.Cluster/MemberList",
    "/etcdserverpb.KV/Compact",
]


class SyncRecorder(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Records the method of every call and stream, then lets it through unchanged."""

    def __init__(self) -> None:
        self.methods: list[str] = []
        self._lock = threading.Lock()

    def _seen(self, details: grpc.ClientCallDetails) -> None:
        with self._lock:
            self.methods.append(details.method)

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        self._seen(details)
        return continuation(details, request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        self._seen(details)
        return continuation(details, request)

    def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        self._seen(details)
        return continuation(details, requests)

    def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        self._seen(details)
        return continuation(details, requests)


class AsyncRecorder:
    """The grpc.aio recorders: one object per call shape, sharing one list of methods."""

    def __init__(self) -> None:
        self.methods: list[str] = []
        record = self.record

        class Unary(grpc.aio.UnaryUnaryClientInterceptor):
            async def intercept_unary_unary(
                self, continuation: Any, details: Any, request: Any
            ) -> Any:
                record(details.method)
                return await continuation(details, request)

        class UnaryStream(grpc.aio.UnaryStreamClientInterceptor):
            async def intercept_unary_stream(
                self, continuation: Any, details: Any, request: Any
            ) -> Any:
                record(details.method)
                return await continuation(details, request)

        class StreamStream(grpc.aio.StreamStreamClientInterceptor):
            async def intercept_stream_stream(
                self, continuation: Any, details: Any, requests: Any
            ) -> Any:
                record(details.method)
                return await continuation(details, requests)

        self.interceptors = [Unary(), UnaryStream(), StreamStream()]

    def record(self, method: str | bytes) -> None:
        """Note one call's method (grpc.aio hands it over as bytes)."""
        self.methods.append(method.decode() if isinstance(method, bytes) else method)


def _recorder(kind: str) -> tuple[list[str], list[Any]]:
    if kind == "Client":
        sync = SyncRecorder()
        return sync.methods, [sync]
    aio = AsyncRecorder()
    return aio.methods, list(aio.interceptors)


@pytest.mark.parametrize("kind", CLIENT_KINDS)
def test_an_interceptor_sees_every_call_and_stream(
    kind: str, etcd_server: EtcdServer, etcd_key_prefix: bytes
) -> None:
    """A KV, watch, lease and admin sequence: each call passes the interceptor, in order."""
    methods, interceptors = _recorder(kind)
    key = etcd_key_prefix + b"k"
    with client_of_kind(kind, etcd_server.endpoints, interceptors=interceptors) as cli:
        del methods[:]  # what connecting did (nothing, without credentials) is not the point
        put = cli.put(key, "v1")
        assert cli.get(key).kvs[0].value == b"v1"
        cli.txn([Compare.value(key) == "v1"], [Op.put(key, "v2")], [])
        cli.delete(key + b"-none")
        with cli.watch(key, start_revision=put.header.revision) as watch:
            assert watch.next(timeout=10).events[0].kv.value == b"v1"
        lease = cli.grant(30)
        with cli.keep_alive(lease.id) as keep:
            assert keep.next(timeout=10).ttl > 0
        assert cli.time_to_live(lease.id).ttl > 0
        cli.revoke(lease.id)
        assert cli.status(etcd_server.endpoints[0]).version
        assert cli.member_list().members
        cli.compact(put.header.revision)
    seen = [m for m in methods if m in SEQUENCE_METHODS]
    # Each method once, in the order of the sequence (a stream may open once more on resume,
    # which would show as a repeat: there is none here).
    assert seen == SEQUENCE_METHODS


def test_client_refuses_an_interceptor_of_the_wrong_kind_before_io() -> None:
    """A wrong object, or a grpc.aio interceptor given to Client, is a TypeError at once."""
    unreachable = ["127.0.0.1:1"]
    with pytest.raises(TypeError, match=r"interceptors\[0\] must be a grpc.UnaryUnary"):
        Client(unreachable, interceptors=[object()])
    aio = AsyncRecorder().interceptors
    with pytest.raises(TypeError, match=r"interceptors\[0\]"):
        Client(unreachable, interceptors=aio)
    with pytest.raises(TypeError, match="interceptors must be a list"):
        Client(unreachable, interceptors=SyncRecorder())  # type: ignore[arg-type]


def test_async_client_refuses_a_sync_interceptor_before_io() -> None:
    """AsyncClient runs on grpc.aio: it refuses grpc's sync interceptors in its constructor."""
    with pytest.raises(TypeError, match=r"interceptors\[1\] must be a grpc.aio.ClientInterceptor"):
        AsyncClient(
            ["127.0.0.1:1"], interceptors=[*AsyncRecorder().interceptors[:1], SyncRecorder()]
        )


# --- reject_old_cluster -----------------------------------------------------------------------


@pytest.fixture
def old_member() -> Iterator[str]:
    """A loopback gRPC server answering Maintenance.Status as an etcd 3.3 member would."""
    answer = rpc_pb2.StatusResponse(version="3.3.27")
    handler = grpc.method_handlers_generic_handler(
        "etcdserverpb.Maintenance",
        {
            "Status": grpc.unary_unary_rpc_method_handler(
                lambda _request, _context: answer,
                request_deserializer=rpc_pb2.StatusRequest.FromString,
                response_serializer=rpc_pb2.StatusResponse.SerializeToString,
            )
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(grace=None)


@pytest.mark.parametrize("kind", CLIENT_KINDS)
def test_reject_old_cluster_accepts_the_etcd_under_test(
    kind: str, etcd_server: EtcdServer, etcd_key_prefix: bytes
) -> None:
    """etcd 3.4 and 3.5 pass the check; the client then works as usual."""
    with client_of_kind(kind, etcd_server.endpoints, reject_old_cluster=True) as cli:
        cli.put(etcd_key_prefix + b"k", "v")
        assert cli.get(etcd_key_prefix + b"k").kvs[0].value == b"v"


@pytest.mark.parametrize("kind", CLIENT_KINDS)
def test_reject_old_cluster_refuses_a_member_older_than_3_4(
    kind: str, etcd_server: EtcdServer, old_member: str
) -> None:
    """One old member among good ones is enough: OldClusterError, as Go's ErrOldCluster."""
    endpoints = [*etcd_server.endpoints, old_member]
    with pytest.raises(errors.OldClusterError, match=r"runs etcd 3\.3\.27, older than 3\.4"):
        client_of_kind(kind, endpoints, dial_timeout=5, reject_old_cluster=True)
    # Without the flag the same endpoints make a client (the old member is just a member).
    client_of_kind(kind, endpoints, dial_timeout=5).close()


def test_from_config_reject_old_cluster_true_checks_the_cluster(
    etcd_server: EtcdServer, old_member: str, tmp_path: Path
) -> None:
    """Go's YAML key `reject-old-cluster: true` turns the check on."""
    path = tmp_path / "client.yaml"
    path.write_text(
        f"insecure-transport: true\nreject-old-cluster: true\nendpoints: [{old_member}]\n"
    )
    with pytest.raises(errors.OldClusterError):
        Client.from_config(path)
    path.write_text(
        "insecure-transport: true\nreject-old-cluster: true\n"
        f"endpoints: [{etcd_server.endpoints[0]}]\n"
    )
    with Client.from_config(path) as cli:
        assert cli.status(etcd_server.endpoints[0]).version
