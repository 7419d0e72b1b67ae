"""The asyncio twin of _channel.py: an in-process stand-in for a `grpc.aio.Channel`.

What base/_aio_connection.py and the asyncio stream shells use: awaitable unary calls, and
stream calls with `read()` (grpc.aio.EOF at the end), `write()`, `done_writing()` and `cancel()`
(a read of a call canceled here raises CancelledError, as grpc.aio does). Responses a store
produces on another thread reach the call's loop through `call_soon_threadsafe`.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, Final

import grpc
import grpc.aio
from google.protobuf.message import Message

from etcd_layers.base.transport import rpc_pb2
from etcd_layers.testing.memory._channel import RpcError, gone, parse
from etcd_layers.testing.memory._errors import UNIMPLEMENTED, StoreError
from etcd_layers.testing.memory._service import LEASE_KEEP_ALIVE, UNARY, WATCH

if TYPE_CHECKING:
    from etcd_layers.testing.memory._etcd import MemoryEtcd

_END: Final = object()
_CANCELLED: Final = object()


class AsyncStreamCall:
    """One bidi stream on an event loop: requests read by a task, responses queued for read()."""

    def __init__(
        self,
        channel: AsyncMemoryChannel,
        path: str,
        requests: AsyncIterator[Message] | None,
        timeout: float | None,
    ) -> None:
        self._channel = channel
        self._loop = asyncio.get_running_loop()
        self._responses: asyncio.Queue[object] = asyncio.Queue()
        self._writes: asyncio.Queue[Message | None] | None = None
        self._done = False
        self._ended: object = None  # RpcError, _CANCELLED, or None (EOF)
        self._stream: int | None = None
        self._timeout = timeout
        self._task: asyncio.Task[None] | None = None
        if path == WATCH:
            self._stream = channel.etcd.open_watch(self._from_store)
        if channel.etcd.closed or (path == WATCH and self._stream is None):
            self._finish(gone())  # as a stream to a server that went away
            return
        if path not in (WATCH, LEASE_KEEP_ALIVE):
            self._finish(RpcError.of(StoreError(*UNIMPLEMENTED)))
            return
        if requests is None:
            self._writes = asyncio.Queue()
            requests = self._written()
        channel.track(self)
        self._task = self._loop.create_task(
            self._read_requests(requests), name="etcd_layers.memory.aio.stream"
        )

    def _from_store(self, response: rpc_pb2.WatchResponse) -> None:
        # Called under the store's lock, on any thread: hand over without blocking.
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody reads any more
            self._loop.call_soon_threadsafe(self._responses.put_nowait, response)

    async def _written(self) -> AsyncIterator[Message]:
        assert self._writes is not None
        while (request := await self._writes.get()) is not None:
            yield request

    async def _read_requests(self, requests: AsyncIterator[Message]) -> None:
        etcd = self._channel.etcd
        try:
            async for request in requests:
                if self._done:
                    return
                if self._stream is not None:
                    assert isinstance(request, rpc_pb2.WatchRequest)
                    etcd.watch_request(self._stream, request)
                else:
                    assert isinstance(request, rpc_pb2.LeaseKeepAliveRequest)
                    self._responses.put_nowait(etcd.keep_alive(request))
        except StoreError as error:
            self._finish(RpcError.of(error))

    def _finish(self, end: object) -> None:
        if self._done:
            return
        self._done = True
        self._ended = end
        if self._stream is not None:
            self._channel.etcd.close_watch(self._stream)
        self._channel.untrack(self)
        self._responses.put_nowait(_END)
        task = self._task
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def write(self, request: Message) -> None:
        """Send one request (on a call opened without a request iterator)."""
        if self._writes is None or self._done:
            raise grpc.aio.UsageError("the stream takes no more requests")
        await self._writes.put(request)

    async def done_writing(self) -> None:
        """End the requests (the responses go on)."""
        if self._writes is not None:
            await self._writes.put(None)

    def cancel(self) -> bool:
        """End the stream; a read in progress or later raises CancelledError."""
        if self._done:
            return False
        self._finish(_CANCELLED)
        return True

    async def read(self) -> object:
        """The next response, or grpc.aio.EOF once the stream ended cleanly."""
        try:
            item = await asyncio.wait_for(self._responses.get(), self._timeout)
        except asyncio.TimeoutError:
            self._finish(RpcError(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"))
            item = await self._responses.get()
        if item is _END:
            self._responses.put_nowait(_END)  # every later read ends too
            if self._ended is _CANCELLED:
                raise asyncio.CancelledError
            if isinstance(self._ended, RpcError):
                raise self._ended
            return grpc.aio.EOF
        return item

    def __aiter__(self) -> AsyncIterator[object]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[object]:
        while (item := await self.read()) is not grpc.aio.EOF:
            yield item


class _Unary:
    __slots__ = ("_answer", "_channel", "_path", "_request_type")

    def __init__(self, channel: AsyncMemoryChannel, path: str) -> None:
        self._channel = channel
        self._path = path
        entry = UNARY.get(path)
        self._request_type = None if entry is None else entry[0]
        self._answer = None if entry is None else channel.etcd.handler(path)

    async def __call__(self, request: object, timeout: float | None = None, **_: Any) -> Message:
        self._channel.check_open()
        if self._channel.etcd.closed:
            raise gone()
        if self._request_type is None or self._answer is None:
            raise RpcError.of(StoreError(*UNIMPLEMENTED))
        if timeout is not None and timeout <= 0:
            raise RpcError(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
        try:
            return self._answer(parse(self._request_type, request))
        except StoreError as error:
            raise RpcError.of(error) from None


class _Stream:
    __slots__ = ("_channel", "_path")

    def __init__(self, channel: AsyncMemoryChannel, path: str) -> None:
        self._channel = channel
        self._path = path

    def __call__(
        self,
        request_iterator: AsyncIterator[Message] | None = None,
        timeout: float | None = None,
        **_: Any,
    ) -> AsyncStreamCall:
        self._channel.check_open()
        return AsyncStreamCall(self._channel, self._path, request_iterator, timeout)


class AsyncMemoryChannel:
    """The `grpc.aio` channel of one in-process AsyncClient endpoint to a MemoryEtcd."""

    def __init__(
        self,
        etcd: MemoryEtcd,
        on_first_use: Callable[[asyncio.AbstractEventLoop], None] | None = None,
    ) -> None:
        self.etcd = etcd
        self.loop: asyncio.AbstractEventLoop | None = None  # the loop of the first call
        self._on_first_use = on_first_use
        self._closed = False
        self._lock = threading.Lock()  # MemoryEtcd.close() may end the calls from any thread
        self._calls: set[AsyncStreamCall] = set()
        self._unary: dict[str, _Unary] = {}

    def check_open(self) -> None:
        """Refuse a call on a closed channel, with grpc.aio's UsageError."""
        if self.loop is None:
            self.loop = asyncio.get_running_loop()
            if self._on_first_use is not None:
                self._on_first_use(self.loop)
        if self._closed:
            raise grpc.aio.UsageError("Cannot invoke RPC: Channel closed!")

    def track(self, call: AsyncStreamCall) -> None:
        """Count a running stream, to end it with the channel."""
        with self._lock:
            self._calls.add(call)

    def untrack(self, call: AsyncStreamCall) -> None:
        """Forget an ended stream."""
        with self._lock:
            self._calls.discard(call)

    def unary_unary(self, method: str, *_: Any, **__: Any) -> _Unary:
        """The multi-callable of a unary method."""
        found = self._unary.get(method)
        if found is None:
            found = self._unary[method] = _Unary(self, method)
        return found

    def stream_stream(self, method: str, *_: Any, **__: Any) -> _Stream:
        """The multi-callable of a bidi stream (Watch, LeaseKeepAlive)."""
        return _Stream(self, method)

    def unary_stream(self, method: str, *_: Any, **__: Any) -> Callable[..., AsyncStreamCall]:
        """The multi-callable of a server stream: none is served (Snapshot is UNIMPLEMENTED)."""
        stream = _Stream(self, method)
        return lambda request, timeout=None, **_: stream(None, timeout)

    async def channel_ready(self) -> None:
        """Ready at once: there is no connection to make."""

    async def close(self, grace: float | None = None) -> None:
        """Refuse new calls and cancel the running streams."""
        del grace
        with self._lock:
            self._closed = True
            calls = list(self._calls)
        for call in calls:
            call.cancel()
