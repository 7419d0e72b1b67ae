"""What an asyncio keep-alive's reader holds: the handle, its bounded queue and its end."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from types import TracebackType

from etcd_layers._compat import Self
from etcd_layers.base._keepalive_handle import RESPONSE_QUEUE_SIZE
from etcd_layers.base.checks import check_timeout
from etcd_layers.base.responses import LeaseKeepAliveResponse
from etcd_layers.errors import CanceledError, EtcdError

__all__ = ["AsyncKeepAliveHandle", "AsyncResponseQueue"]


class AsyncResponseQueue:
    """The asyncio twin of base._keepalive_handle.ResponseQueue (same rules, no lock).

    Keeps the latest RESPONSE_QUEUE_SIZE responses; the end is raised once, after the
    responses queued before it, then `get` raises CanceledError. A canceled wait takes nothing.
    """

    def __init__(self, size: int = RESPONSE_QUEUE_SIZE) -> None:
        self._items: collections.deque[LeaseKeepAliveResponse] = collections.deque(maxlen=size)
        self._changed = asyncio.Event()
        self._delivered = 0
        self._end: EtcdError | None = None
        self._end_raised = False

    def put(self, response: LeaseKeepAliveResponse) -> None:
        """Queue `response`, dropping the oldest one when full (ignored once ended)."""
        if self._end is None:
            self._items.append(response)
            self._delivered += 1
            self._changed.set()

    def fail(self, error: EtcdError) -> None:
        """End with `error`, raised after the responses already queued (first end wins)."""
        if self._end is None:
            self._end = error
            self._changed.set()

    def stop(self, error: CanceledError) -> None:
        """End now: drop what is queued and raise `error` next (first end wins)."""
        if self._end is None:
            self._end = error
            self._items.clear()
            self._changed.set()

    @property
    def ended(self) -> bool:
        """Whether the queue has ended (its end may still be waiting to be raised)."""
        return self._end is not None

    async def _wait(self, ready: Callable[[], object], timeout: float | None) -> bool:
        """Wait until `ready()` is true; False when `timeout` passed first."""
        loop = asyncio.get_running_loop()
        until = None if timeout is None else loop.time() + timeout
        while not ready():
            self._changed.clear()
            left = None if until is None else until - loop.time()
            if left is not None and left <= 0:
                return False
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except asyncio.TimeoutError:
                return bool(ready())
        return True

    async def wait_first(self, timeout: float | None) -> bool:
        """Wait until a response was delivered or the queue ended; False on timeout.

        Raises:
            EtcdError: the queue ended before any response (its end, raised now).
        """
        if not await self._wait(lambda: self._delivered or self._end is not None, timeout):
            return False
        if not self._delivered:
            raise self._take_end()
        return True

    async def get(self, timeout: float | None) -> LeaseKeepAliveResponse:
        """Return the oldest response, waiting up to `timeout` seconds (None: forever).

        Raises:
            TimeoutError: nothing arrived in time (the builtin).
            EtcdError: the end (LeaseNotFoundError, CanceledError ...), once; then CanceledError.
        """
        if not await self._wait(lambda: self._items or self._end is not None, timeout):
            raise TimeoutError(f"no keep-alive response within {timeout:g}s")
        if self._items:
            return self._items.popleft()
        raise self._take_end()

    def _take_end(self) -> EtcdError:
        if self._end_raised or self._end is None:
            return CanceledError("the keep-alive has ended")
        self._end_raised = True
        return self._end


class AsyncKeepAliveHandle:
    """A running keep-alive of one lease (the AsyncKeepAlive Protocol)."""

    def __init__(self, lease_id: int, on_cancel: Callable[[AsyncKeepAliveHandle], None]) -> None:
        self.lease_id = lease_id
        self.responses = AsyncResponseQueue()
        self._on_cancel = on_cancel

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> LeaseKeepAliveResponse:
        try:
            return await self.next()
        except CanceledError:
            raise StopAsyncIteration from None

    async def next(self, timeout: float | None = None) -> LeaseKeepAliveResponse:
        return await self.responses.get(check_timeout(timeout))

    async def cancel(self) -> None:
        self.stop()

    def stop(self) -> None:
        """Cancel without awaiting (what cancel() does)."""
        self.responses.stop(
            CanceledError(f"the keep-alive of lease {self.lease_id:x} was canceled")
        )
        self._on_cancel(self)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.cancel()

    def __repr__(self) -> str:
        state = "ended" if self.responses.ended else "running"
        return f"<AsyncKeepAliveHandle lease={self.lease_id:x} {state}>"
