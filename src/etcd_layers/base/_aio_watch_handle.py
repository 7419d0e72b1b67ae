"""AsyncClientWatch: the consumer's end of one asyncio watch, a queue fed by the reader task."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable, Generator
from types import TracebackType
from typing import TYPE_CHECKING, Any

from etcd_layers._compat import Self
from etcd_layers.base._proto import rpc_pb2
from etcd_layers.base._watch_state import WatchEntry
from etcd_layers.base.checks import check_timeout
from etcd_layers.base.responses import WatchResponse
from etcd_layers.errors import CanceledError, EtcdError

if TYPE_CHECKING:
    from etcd_layers.base._aio_watch import AsyncWatchStream

__all__ = ["AsyncClientWatch", "AsyncClientWatchStart"]


class AsyncClientWatch:
    """A running watch of an AsyncClient (the AsyncWatch Protocol).

    `async for` it, or `await next()`, for WatchResponses in order; `await cancel()` (or
    leaving an `async with` block) ends it. Cancelling an `await next()` cancels only that
    wait: nothing is taken from the queue, so the next response is still delivered. As the
    sync ClientWatch, the multiplexer bounds what waits here (see base/_watch.py).
    """

    def __init__(
        self,
        stream: AsyncWatchStream,
        create: rpc_pb2.WatchCreateRequest,
        *,
        created_notify: bool,
        progress_notify: bool,
    ) -> None:
        self._stream = stream
        self._entry: WatchEntry[AsyncClientWatch] = WatchEntry(
            self, create, created_notify=created_notify, progress_notify=progress_notify
        )
        # None marks the end; an EtcdError is raised once, before it. Unbounded here: the
        # multiplexer pauses a watch whose consumer falls behind.
        self._items: collections.deque[WatchResponse | EtcdError | None] = collections.deque()
        self._ready = asyncio.Event()  # set when an item is queued
        self._dropped = False  # canceled or closed: what is still queued is not delivered
        self._done = False  # the consumer saw the end
        self._settled = asyncio.Event()  # confirmed, or ended before it was
        self._confirmed = False
        self._ended = False
        self._failure: EtcdError | None = None  # why it ended before it was confirmed

    @property
    def pending_events(self) -> int:
        """How many events (at least one per response) wait to be read."""
        return self._entry.pending

    @property
    def peak_pending_events(self) -> int:
        """The most events that ever waited to be read at once."""
        return self._entry.peak

    def __aiter__(self) -> Self:
        """Yield responses as they arrive; stop after cancel() or close()."""
        return self

    async def __anext__(self) -> WatchResponse:
        item = await self._take(None)
        if item is None:
            raise StopAsyncIteration
        return item

    async def next(self, timeout: float | None = None) -> WatchResponse:
        """Return the next response (see AsyncWatch.next); None waits for the client's default."""
        timeout = check_timeout(timeout)
        if timeout is None:
            timeout = self._stream.default_timeout
        item = await self._take(timeout)
        if item is None:
            raise CanceledError("the watch has ended")
        return item

    async def _take(self, timeout: float | None) -> WatchResponse | None:
        if self._done:
            return None
        items = self._items
        if not items:
            await self._wait(timeout)
        item = items.popleft()
        if item is None or self._dropped:
            self._done = True
            items.appendleft(None)  # for any other task reading this watch
            return None
        if isinstance(item, EtcdError):
            self._done = True
            raise item  # the watch ended with it; next() raises CanceledError from now on
        self._stream.consumed(self._entry, len(item.events) or 1)
        return item

    async def _wait(self, timeout: float | None) -> None:
        """Wait until something is queued (TimeoutError: not within `timeout`).

        Only an Event is awaited, never the queue itself: a wait canceled by its timeout or by
        the caller's task takes nothing, so the next call still gets what arrives.
        """
        items, ready = self._items, self._ready
        loop = asyncio.get_running_loop()
        until = None if timeout is None else loop.time() + timeout
        while not items:
            ready.clear()
            if until is None:
                await ready.wait()
                continue
            try:
                await asyncio.wait_for(ready.wait(), until - loop.time())
            except asyncio.TimeoutError:
                if not items:
                    raise TimeoutError(f"no watch response within {timeout:g}s") from None

    def _put(self, item: WatchResponse | EtcdError | None) -> None:
        """Queue `item` and wake a waiting reader."""
        self._items.append(item)
        self._ready.set()

    async def cancel(self) -> None:
        """End the watch (idempotent); iteration stops and next() raises CanceledError."""
        self._stream.cancel(self)

    def _drop(self) -> None:
        """Forget what is queued: the consumer sees the end next."""
        self._dropped = True
        self._items.clear()

    def _end(self, error: EtcdError | None) -> None:
        """Queue the end, behind `error` if there is one (or keep it as the failure)."""
        self._ended = True
        if error is not None:
            if self._confirmed:
                self._put(error)
            else:
                self._failure = error
        self._put(None)
        self._settled.set()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.cancel()


class AsyncClientWatchStart:
    """What AsyncClient.watch returns: `await` it, or enter it with `async with`.

    The arguments were checked when it was made; the watch starts when it is first awaited
    or entered, and `async with` cancels the watch on leaving the block.
    """

    __slots__ = ("_start", "_watch")

    def __init__(self, start: Callable[[], Awaitable[AsyncClientWatch]]) -> None:
        self._start = start
        self._watch: AsyncClientWatch | None = None

    async def _started(self) -> AsyncClientWatch:
        if self._watch is None:
            self._watch = await self._start()
        return self._watch

    def __await__(self) -> Generator[Any, None, AsyncClientWatch]:
        return self._started().__await__()

    async def __aenter__(self) -> AsyncClientWatch:
        return await self._started()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._watch is not None:
            await self._watch.cancel()
