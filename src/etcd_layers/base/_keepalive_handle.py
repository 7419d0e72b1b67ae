"""What a keep-alive's reader holds: the handle, its bounded queue of responses and its end."""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Final

from etcd_layers._compat import Self
from etcd_layers.base.checks import check_timeout
from etcd_layers.base.responses import LeaseKeepAliveResponse
from etcd_layers.errors import CanceledError, EtcdError

# Responses a handle keeps for its reader; Go's LeaseResponseChSize. When full, the oldest is
# dropped (Go drops the newest): renewals are interchangeable and the latest TTL is the useful one.
RESPONSE_QUEUE_SIZE: Final = 16


class ResponseQueue:
    """A keep-alive handle's bounded queue of responses, and how the handle ended.

    The end is raised once (after the responses queued before it); afterwards `get` raises
    CanceledError, as a Watch does.
    """

    def __init__(self, size: int = RESPONSE_QUEUE_SIZE) -> None:
        self._cond = threading.Condition()
        self._items: collections.deque[LeaseKeepAliveResponse] = collections.deque(maxlen=size)
        self._delivered = 0
        self._end: EtcdError | None = None
        self._end_raised = False

    def put(self, response: LeaseKeepAliveResponse) -> None:
        """Queue `response`, dropping the oldest one when full (ignored once ended)."""
        with self._cond:
            if self._end is None:
                self._items.append(response)
                self._delivered += 1
                self._cond.notify_all()

    def fail(self, error: EtcdError) -> None:
        """End with `error`, raised after the responses already queued (first end wins)."""
        with self._cond:
            if self._end is None:
                self._end = error
                self._cond.notify_all()

    def stop(self, error: CanceledError) -> None:
        """End now: drop what is queued and raise `error` next (first end wins)."""
        with self._cond:
            if self._end is None:
                self._end = error
                self._items.clear()
                self._cond.notify_all()

    @property
    def ended(self) -> bool:
        """Whether the queue has ended (its end may still be waiting to be raised)."""
        with self._cond:
            return self._end is not None

    def wait_first(self, timeout: float | None) -> bool:
        """Wait until a response was delivered or the queue ended; False on timeout.

        Raises:
            EtcdError: the queue ended before any response (its end, raised now).
        """
        with self._cond:
            done = self._cond.wait_for(lambda: self._delivered or self._end is not None, timeout)
            if not done:
                return False
            if not self._delivered:
                raise self._take_end()
            return True

    def get(self, timeout: float | None) -> LeaseKeepAliveResponse:
        """Return the oldest response, waiting up to `timeout` seconds (None: forever).

        Raises:
            TimeoutError: nothing arrived in time (the builtin).
            EtcdError: the end (LeaseNotFoundError, CanceledError ...), once; then CanceledError.
        """
        with self._cond:
            if not self._cond.wait_for(lambda: self._items or self._end is not None, timeout):
                raise TimeoutError(f"no keep-alive response within {timeout:g}s")
            if self._items:
                return self._items.popleft()
            raise self._take_end()

    def _take_end(self) -> EtcdError:
        if self._end_raised or self._end is None:
            return CanceledError("the keep-alive has ended")
        self._end_raised = True
        return self._end


class KeepAliveHandle:
    """A running keep-alive of one lease (the KeepAlive Protocol); Client.keep_alive makes it."""

    def __init__(self, lease_id: int, on_cancel: Callable[[KeepAliveHandle], None]) -> None:
        self.lease_id = lease_id
        self.responses = ResponseQueue()
        self._on_cancel = on_cancel

    def __iter__(self) -> Iterator[LeaseKeepAliveResponse]:
        while True:
            try:
                response = self.next()
            except CanceledError:
                return
            yield response

    def next(self, timeout: float | None = None) -> LeaseKeepAliveResponse:
        return self.responses.get(check_timeout(timeout))

    def cancel(self) -> None:
        self.responses.stop(
            CanceledError(f"the keep-alive of lease {self.lease_id:x} was canceled")
        )
        self._on_cancel(self)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.cancel()

    def __repr__(self) -> str:
        state = "ended" if self.responses.ended else "running"
        return f"<KeepAliveHandle lease={self.lease_id:x} {state}>"
