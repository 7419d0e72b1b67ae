"""base.transport: a Client over a direct answer and a channel factory (what MemoryEtcd uses)."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf.message import Message

from etcd_layers import Client, errors
from etcd_layers.base.transport import client_over, rpc_pb2


class Refused(grpc.RpcError):
    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.INVALID_ARGUMENT

    def details(self) -> str:
        return "etcdserver: duplicate key given in txn request"


class UnusedChannel:
    """A channel the unary calls never touch (`direct` answers them); closing is recorded."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.closed = False

    def close(self) -> None:
        self.closed = True


def test_transport_client_takes_unary_answers_from_direct() -> None:
    """Requests go to `direct` as messages on etcd's paths; replies come back converted."""
    seen: list[tuple[str, Message]] = []

    def direct(path: str, request: Message) -> Message:
        seen.append((path, request))
        header = rpc_pb2.ResponseHeader(revision=7)
        if path.endswith("/Put"):
            return rpc_pb2.PutResponse(header=header)
        return rpc_pb2.RangeResponse(header=header, count=0)

    client = client_over(Client, UnusedChannel, "memory:2379", timeout=1, direct=direct)
    assert client.put("k", "v").header.revision == 7
    assert client.get("k").count == 0
    assert [path for path, _ in seen] == ["/etcdserverpb.KV/Put", "/etcdserverpb.KV/Range"]
    assert seen[0][1] == rpc_pb2.PutRequest(key=b"k", value=b"v")
    assert client.endpoints == ["memory:2379"]


def test_transport_direct_refusals_map_as_grpc_errors() -> None:
    """A grpc.RpcError from `direct` becomes the EtcdError its status and message name."""

    def direct(path: str, request: Message) -> Message:
        raise Refused

    client = client_over(Client, UnusedChannel, "memory:2379", direct=direct)
    with pytest.raises(errors.DuplicateKeyError, match="duplicate key given in txn request"):
        client.txn([], [], [])


def test_transport_direct_keeps_the_request_size_check() -> None:
    """max_call_send_msg_size still refuses a large request before `direct` sees it."""
    calls: list[str] = []

    def direct(path: str, request: Message) -> Message:
        calls.append(path)
        return rpc_pb2.PutResponse()

    client = client_over(Client, UnusedChannel, "memory:2379", direct=direct)
    with pytest.raises(errors.RequestTooLargeError):
        client.put("k", b"x" * (3 * 1024 * 1024))
    assert calls == []
    client.close()
    with pytest.raises(errors.ClosedError):
        client.get("k")
