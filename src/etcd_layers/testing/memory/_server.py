"""MemoryEtcd.serve(): the store behind a real gRPC server on 127.0.0.1, for any etcd client."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Final

import grpc
from google.protobuf.message import Message

from etcd_layers.base.transport import rpc_pb2
from etcd_layers.testing.memory._errors import StoreError
from etcd_layers.testing.memory._service import LEASE_KEEP_ALIVE, UNARY, WATCH

if TYPE_CHECKING:
    from etcd_layers.testing.memory._etcd import MemoryEtcd

logger = logging.getLogger(__name__)

_END: Final = object()
_MAX_WORKERS: Final = 64  # each open stream holds one
# etcd's limits: --max-request-bytes (1.5 MiB) plus its gRPC overhead allowance; sends unbounded.
_OPTIONS: Final = [
    ("grpc.max_receive_message_length", 1536 * 1024 + 512 * 1024),
    ("grpc.max_send_message_length", 2**31 - 1),
]


class Server:
    """A gRPC server answering etcd's KV, Watch, Lease, Maintenance.Status, Cluster.MemberList.

    Every other method answers UNIMPLEMENTED (gRPC's own answer to an unknown method), which
    the client raises as NotCapableError.
    """

    def __init__(self, etcd: MemoryEtcd) -> None:
        self._etcd = etcd
        self._server = grpc.server(
            ThreadPoolExecutor(
                max_workers=_MAX_WORKERS, thread_name_prefix="etcd_layers.memory.serve"
            ),
            options=_OPTIONS,
        )
        services: dict[str, dict[str, grpc.RpcMethodHandler[Message, Message]]] = {}
        for path, (request_type, response_type, _) in UNARY.items():
            service, method = path[1:].split("/")
            services.setdefault(service, {})[method] = grpc.unary_unary_rpc_method_handler(
                self._unary(path),
                request_deserializer=request_type.FromString,
                response_serializer=response_type.SerializeToString,
            )
        streams = (
            (WATCH, self._watch, rpc_pb2.WatchRequest, rpc_pb2.WatchResponse),
            (
                LEASE_KEEP_ALIVE,
                self._keep_alive,
                rpc_pb2.LeaseKeepAliveRequest,
                rpc_pb2.LeaseKeepAliveResponse,
            ),
        )
        for path, serve, request_type, response_type in streams:
            service, method = path[1:].split("/")
            services.setdefault(service, {})[method] = grpc.stream_stream_rpc_method_handler(
                serve,
                request_deserializer=request_type.FromString,
                response_serializer=response_type.SerializeToString,
            )
        self._server.add_generic_rpc_handlers(
            [
                grpc.method_handlers_generic_handler(name, methods)
                for name, methods in services.items()
            ]
        )
        port = self._server.add_insecure_port("127.0.0.1:0")
        self.address = f"127.0.0.1:{port}"
        self._server.start()

    def _unary(self, path: str) -> Callable[[Message, grpc.ServicerContext], Message]:
        etcd = self._etcd

        def answer(request: Message, context: grpc.ServicerContext) -> Message:
            try:
                return etcd.unary(path, request)
            except StoreError as error:
                context.abort(grpc.StatusCode[error.code], error.message)

        return answer

    def _watch(
        self, requests: Iterator[rpc_pb2.WatchRequest], context: grpc.ServicerContext
    ) -> Iterator[rpc_pb2.WatchResponse]:
        responses: queue.SimpleQueue[object] = queue.SimpleQueue()
        etcd = self._etcd
        stream = etcd.open_watch(responses.put)
        if stream is None:
            context.abort(grpc.StatusCode.UNAVAILABLE, "the in-memory etcd is closed")
        context.add_callback(lambda: responses.put(_END))  # the call ended: stop at once

        def read() -> None:
            try:
                for request in requests:
                    etcd.watch_request(stream, request)
            except grpc.RpcError:
                pass  # the client went away; the callback ends the stream
            except StoreError:  # pragma: no cover - watch requests are never refused
                logger.exception("a watch request failed")
            responses.put(_END)

        reader = threading.Thread(target=read, name="etcd_layers.memory.serve.watch", daemon=True)
        reader.start()
        try:
            while (item := responses.get()) is not _END:
                yield item  # type: ignore[misc]  # only responses and _END are queued
        finally:
            etcd.close_watch(stream)

    def _keep_alive(
        self, requests: Iterator[rpc_pb2.LeaseKeepAliveRequest], context: grpc.ServicerContext
    ) -> Iterator[rpc_pb2.LeaseKeepAliveResponse]:
        del context
        for request in requests:
            yield self._etcd.keep_alive(request)

    def stop(self) -> None:
        """Stop serving: running calls end (UNAVAILABLE or CANCELLED on the client)."""
        self._server.stop(grace=None).wait(timeout=10)
