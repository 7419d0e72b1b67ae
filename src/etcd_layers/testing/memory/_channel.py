"""An in-process stand-in for a gRPC channel: the real Client's calls, answered by MemoryEtcd.

It offers what base/_connection.py and the stream shells use of a `grpc.Channel`
(`unary_unary`, `stream_stream`, `unary_stream`, `close`, and `subscribe` for
`channel_ready_future`), with gRPC's behaviour at the edges: a refused request raises a
`grpc.RpcError` with etcd's status code and message, a closed channel refuses new calls with
ValueError, and a stream reads its requests in a thread of its own, as grpcio does. Requests
arrive serialized (the client sends bytes); responses are handed over as messages, unserialized.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Final

import grpc
from google.protobuf.message import Message

from etcd_layers.base.transport import rpc_pb2
from etcd_layers.testing.memory._errors import UNIMPLEMENTED, StoreError
from etcd_layers.testing.memory._service import LEASE_KEEP_ALIVE, UNARY, WATCH

if TYPE_CHECKING:
    from etcd_layers.testing.memory._etcd import MemoryEtcd

_END: Final = object()
_STREAM_NUMBERS: Final = itertools.count(1)


class RpcError(grpc.RpcError):
    """A failed in-process call, as grpcio raises it: code() and details()."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(code, details)
        self._code = code
        self._details = details

    def code(self) -> grpc.StatusCode:
        """The gRPC status code."""
        return self._code

    def details(self) -> str:
        """The message of etcd's error."""
        return self._details

    @classmethod
    def of(cls, error: StoreError) -> RpcError:
        """The RpcError for a store's refusal."""
        return cls(grpc.StatusCode[error.code], error.message)


def gone() -> RpcError:
    """The failure of a call to a MemoryEtcd that closed: its server went away."""
    return RpcError(grpc.StatusCode.UNAVAILABLE, "the in-memory etcd is closed")


def parse(request_type: type[Message], request: object) -> Message:
    """The request message, from the serialized bytes the client sends (or a message)."""
    if isinstance(request, bytes):
        return request_type.FromString(request)
    if isinstance(request, request_type):
        return request
    raise TypeError(f"expected {request_type.__name__} or bytes, not {type(request).__name__}")


class _Unary:
    """One unary method: answers at once, under MemoryEtcd's lock."""

    __slots__ = ("_answer", "_channel", "_path", "_request_type")

    def __init__(self, channel: MemoryChannel, path: str) -> None:
        self._channel = channel
        self._path = path
        entry = UNARY.get(path)
        self._request_type: type[Message] = Message if entry is None else entry[0]
        self._answer = None if entry is None else channel.etcd.handler(path)

    def __call__(self, request: object, timeout: float | None = None, **_: Any) -> Message:
        channel = self._channel
        if channel.closed or channel.etcd.closed:
            channel.check_open()  # ValueError for a closed channel, as grpcio's
            raise gone()
        answer = self._answer
        if answer is None:
            raise RpcError.of(StoreError(*UNIMPLEMENTED))
        if timeout is not None and timeout <= 0:
            raise RpcError(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
        request_type = self._request_type
        try:
            if type(request) is bytes:  # what the client sends
                return answer(request_type.FromString(request))
            return answer(parse(request_type, request))
        except StoreError as error:
            raise RpcError.of(error) from None


class StreamCall:
    """One bidi stream: requests read by a thread of its own, responses queued for the reader.

    Iterate it for the responses; `cancel()` ends it (the reader then gets CANCELLED).
    """

    def __init__(
        self,
        channel: MemoryChannel,
        path: str,
        requests: Iterator[Message],
        timeout: float | None,
    ) -> None:
        self._channel = channel
        self._responses: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._deadline = None if timeout is None else time.monotonic() + timeout
        self._lock = threading.Lock()
        self._done = False
        self._ended: RpcError | None = None
        self._stream: int | None = None
        self._keeps = path == LEASE_KEEP_ALIVE
        if path == WATCH:
            self._stream = channel.etcd.open_watch(self._responses.put)
        if channel.etcd.closed or (path == WATCH and self._stream is None):
            self._finish(gone())  # as a stream to a server that went away
            return
        if path != WATCH and not self._keeps:
            self._finish(RpcError.of(StoreError(*UNIMPLEMENTED)))
            return
        channel.track(self)
        self._reader = threading.Thread(
            target=self._read_requests,
            args=(requests,),
            name=f"etcd_layers.memory.stream-{next(_STREAM_NUMBERS)}",
            daemon=True,
        )
        self._reader.start()

    def _read_requests(self, requests: Iterator[Message]) -> None:
        etcd = self._channel.etcd
        try:
            for request in requests:
                if self._done:
                    return
                if self._stream is not None:
                    assert isinstance(request, rpc_pb2.WatchRequest)
                    etcd.watch_request(self._stream, request)
                else:
                    assert isinstance(request, rpc_pb2.LeaseKeepAliveRequest)
                    self._responses.put(etcd.keep_alive(request))
        except StoreError as error:
            self._finish(RpcError.of(error))
        # The requests ended (the client half-closed): the responses go on, as in gRPC.

    def _finish(self, error: RpcError | None) -> None:
        with self._lock:
            if self._done:
                return
            self._done = True
            self._ended = error
        if self._stream is not None:
            self._channel.etcd.close_watch(self._stream)
        self._channel.untrack(self)
        self._responses.put(_END)

    def cancel(self) -> bool:
        """End the stream (a no-op once ended)."""
        self._finish(RpcError(grpc.StatusCode.CANCELLED, "Locally cancelled by application!"))
        return True

    def __iter__(self) -> StreamCall:
        return self

    def __next__(self) -> Message:
        if self._deadline is None:
            item = self._responses.get()
        else:
            try:
                item = self._responses.get(timeout=max(0.0, self._deadline - time.monotonic()))
            except queue.Empty:
                self._finish(RpcError(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"))
                item = self._responses.get()
        if item is _END:
            self._responses.put(_END)  # every later read ends too
            if self._ended is not None:
                raise self._ended
            raise StopIteration
        return item  # type: ignore[return-value]  # only messages and _END are queued


class _Stream:
    __slots__ = ("_channel", "_path")

    def __init__(self, channel: MemoryChannel, path: str) -> None:
        self._channel = channel
        self._path = path

    def __call__(
        self, requests: Iterator[Message], timeout: float | None = None, **_: Any
    ) -> StreamCall:
        self._channel.check_open()
        return StreamCall(self._channel, self._path, requests, timeout)


class MemoryChannel:
    """The channel of one in-process client endpoint to a MemoryEtcd."""

    def __init__(self, etcd: MemoryEtcd) -> None:
        self.etcd = etcd
        self._closed = False
        self._lock = threading.Lock()
        self._calls: set[StreamCall] = set()
        self._unary: dict[str, _Unary] = {}

    @property
    def closed(self) -> bool:
        """Whether close() ran."""
        return self._closed

    def check_open(self) -> None:
        """Refuse a call on a closed channel, with grpcio's ValueError."""
        if self._closed:
            raise ValueError("Cannot invoke RPC on closed channel!")

    def track(self, call: StreamCall) -> None:
        """Count a running stream, to end it with the channel."""
        with self._lock:
            self._calls.add(call)

    def untrack(self, call: StreamCall) -> None:
        """Forget an ended stream."""
        with self._lock:
            self._calls.discard(call)

    def unary_unary(self, method: str, *_: Any, **__: Any) -> _Unary:
        """The multi-callable of a unary method (requests as bytes or messages)."""
        found = self._unary.get(method)
        if found is None:
            found = self._unary[method] = _Unary(self, method)
        return found

    def stream_stream(self, method: str, *_: Any, **__: Any) -> _Stream:
        """The multi-callable of a bidi stream (Watch, LeaseKeepAlive)."""
        return _Stream(self, method)

    def unary_stream(self, method: str, *_: Any, **__: Any) -> Callable[..., StreamCall]:
        """The multi-callable of a server stream: none is served (Snapshot is UNIMPLEMENTED)."""
        stream = _Stream(self, method)
        return lambda request, timeout=None, **_: stream(iter(()), timeout)

    def subscribe(
        self, callback: Callable[[grpc.ChannelConnectivity], None], try_to_connect: bool = False
    ) -> None:
        """Report READY at once (grpc.channel_ready_future subscribes here)."""
        del try_to_connect
        callback(grpc.ChannelConnectivity.READY)

    def unsubscribe(self, callback: Callable[[grpc.ChannelConnectivity], None]) -> None:
        """Nothing to undo."""
        del callback

    def close(self) -> None:
        """Refuse new calls and cancel the running streams."""
        with self._lock:
            self._closed = True
            calls = list(self._calls)
        for call in calls:
            call.cancel()
