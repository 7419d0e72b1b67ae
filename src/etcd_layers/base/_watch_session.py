"""One Watch stream of the sync shell: its gRPC call, its requests, and who reads it now.

The stream thread reads every stream, except while one consumer reads it in its own thread:
a watch that is the only one of its client, iterated with nothing queued, reads the next
message itself and hands it to the multiplexer as the stream thread would (see
`_WatchStream.read_for`). That saves the thread hop, two wake-ups per response, which is most
of a live watch's cost. Only one thread is ever inside `next(call)` (`reading`), and every
message goes through the multiplexer in the order it came, under the lock, so resume points,
back-pressure and reconnects are the same whoever read it. While such a consumer runs its own
code between two responses, nobody reads; the stream thread takes over after `HANDOVER`.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Final

import grpc

from etcd_layers.base._proto import rpc_pb2

if TYPE_CHECKING:
    from etcd_layers.base._connection import Endpoint

# Seconds the stream thread leaves the stream to a consumer reading it directly before it
# reads again (responses then wait in the consumer's queue, as they do for any watch).
HANDOVER: Final = 0.01
# Seconds between the stream thread's looks while a consumer is inside next(call): it comes
# back for good only when that consumer stops iterating, and nobody waits for its messages.
_RECHECK: Final = 0.25


def feed(
    requests: queue.SimpleQueue[rpc_pb2.WatchRequest | None],
) -> Iterator[rpc_pb2.WatchRequest]:
    """Feed one stream's requests to gRPC (which reads them in a thread of its own)."""
    while True:
        request = requests.get()
        if request is None:
            return
        yield request


class Session:
    """One Watch stream on one endpoint (its fields are guarded by the stream's lock)."""

    __slots__ = (
        "call",
        "claimed",
        "direct_at",
        "ended",
        "endpoint",
        "failure",
        "reading",
        "requests",
    )

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.requests: queue.SimpleQueue[rpc_pb2.WatchRequest | None] = queue.SimpleQueue()
        self.call: grpc._CallIterator[rpc_pb2.WatchResponse] | None = None
        self.reading = False  # a thread is inside next(call)
        self.direct_at = float("-inf")  # when a consumer last read a message itself
        self.claimed = False  # a consumer found the thread reading: it hands the next read over
        self.ended = False  # a consumer saw the call end: the stream thread takes it from here
        self.failure: grpc.RpcError | None = None  # how it ended (None: cleanly)

    def wait_turn(self, turn: threading.Condition) -> bool:
        """With `turn`'s lock held, wait until the stream thread may read (False: it ended)."""
        while not self.ended:
            wait = _RECHECK
            if not self.reading:
                # A consumer that read the last message is back for the next one soon.
                wait = self.direct_at + HANDOVER - time.monotonic()
                if wait <= 0:
                    self.reading = True
                    return True
            turn.wait(wait)
        return False

    def end(self, failure: grpc.RpcError | None) -> None:
        """With the lock held, record that the call ended (None: cleanly), as its reader saw."""
        self.reading = False
        self.ended = True
        self.failure = failure

    def abort(self) -> None:
        """End the stream on purpose."""
        self.requests.put(None)
        if self.call is not None:
            self.call.cancel()
