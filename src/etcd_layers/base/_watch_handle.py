"""ClientWatch: the consumer's end of one watch, a queue of responses fed by the stream thread."""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator
from types import TracebackType
from typing import TYPE_CHECKING

from etcd_layers._compat import Self
from etcd_layers.base._proto import rpc_pb2
from etcd_layers.base._watch_state import WatchEntry
from etcd_layers.base.checks import check_timeout
from etcd_layers.base.responses import WatchResponse
from etcd_layers.errors import CanceledError, EtcdError

if TYPE_CHECKING:
    from etcd_layers.base._watch import _WatchStream


class ClientWatch:
    """A running watch of a Client (the Watch Protocol).

    Iterate it, or call `next()`, for WatchResponses in order; `cancel()` (or leaving a
    `with` block) ends it. Responses wait in a bounded queue (see base/_watch.py on back-pressure).
    Dropping the last reference does not end it (clientv3 likewise needs its context
    canceled): it runs until canceled, until an error ends it, or until the client closes.
    """

    def __init__(
        self,
        stream: _WatchStream,
        create: rpc_pb2.WatchCreateRequest,
        *,
        created_notify: bool,
        progress_notify: bool,
    ) -> None:
        self._stream = stream
        self._entry: WatchEntry[ClientWatch] = WatchEntry(
            self, create, created_notify=created_notify, progress_notify=progress_notify
        )
        # The hand-off to the consumer is a C-level queue: waking a consumer costs one futex,
        # not a Condition's Python-level waiter locks. None marks the end.
        self._items: queue.SimpleQueue[WatchResponse | EtcdError | None] = queue.SimpleQueue()
        self._dropped = False  # canceled or closed: what is still queued is not delivered
        self._done = False  # the consumer saw the end
        self._settled = threading.Event()  # confirmed, or ended before it was
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

    def __iter__(self) -> Iterator[WatchResponse]:
        """Yield responses as they arrive; stop after cancel() or close()."""
        while True:
            item = self._take(None)
            if item is None:
                return
            yield item

    def next(self, timeout: float | None = None) -> WatchResponse:
        """Return the next response (see Watch.next); None waits for the client's default."""
        timeout = check_timeout(timeout)
        if timeout is None:
            timeout = self._stream.default_timeout
        item = self._take(timeout)
        if item is None:
            raise CanceledError("the watch has ended")
        return item

    def _take(self, timeout: float | None) -> WatchResponse | None:
        if self._done:
            return None
        if timeout is None:  # gRPC cannot time out a read: only an untimed wait reads itself
            items, read_for = self._items, self._stream.read_for
            while items.empty() and read_for(self):
                pass
        try:
            item = self._items.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"no watch response within {timeout:g}s") from None
        if item is None or self._dropped:
            self._done = True
            self._items.put(None)  # for any other thread reading this watch
            return None
        if isinstance(item, EtcdError):
            self._done = True
            raise item  # the watch ended with it; next() raises CanceledError from now on
        self._stream.consumed(self._entry, len(item.events) or 1)
        return item

    def cancel(self) -> None:
        """End the watch (idempotent); iteration stops and next() raises CanceledError."""
        self._stream.cancel(self)

    def _drop(self) -> None:
        """Forget what is queued: the consumer sees the end next."""
        self._dropped = True
        with contextlib.suppress(queue.Empty):
            while True:
                self._items.get_nowait()

    def _end(self, error: EtcdError | None) -> None:
        """Queue the end, behind `error` if there is one (or keep it as the failure)."""
        self._ended = True
        if error is not None:
            if self._confirmed:
                self._items.put(error)
            else:
                self._failure = error
        self._items.put(None)
        self._settled.set()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.cancel()
