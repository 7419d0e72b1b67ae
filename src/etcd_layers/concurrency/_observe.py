"""The decisions of observing an election's leader, pure: what to read, watch and yield next.

Go's `Election.Observe`: read the oldest contender; if there is one, yield it and watch its
key for new values and its delete (then read again); if there is none, watch the prefix for
the first put. The sync Observation and the asyncio one drive this with their own I/O.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from etcd_layers.base.ops import GetOp
from etcd_layers.base.responses import GetResponse, WatchResponse
from etcd_layers.concurrency._protocol import first_created, first_put, leader_updates


@dataclass(frozen=True, slots=True)
class WatchFrom:
    """A watch to start: on `key` (the whole prefix if `prefix`), from `start_revision`."""

    key: bytes
    prefix: bool
    start_revision: int


class LeaderFollower:
    """The state of one observation: the changes to yield, and which key is followed.

    Not thread-safe: one reader drives it (the shells guard their own watch handle).
    """

    def __init__(self, contenders: bytes) -> None:
        self._contenders = contenders
        self.pending: deque[GetResponse] = deque()
        self._leader_key: bytes | None = None  # None: waiting for any first put on the prefix
        self._last: tuple[bytes, int] | None = None  # (key, mod_revision) queued last

    def read(self) -> GetOp:
        """Return the read of the current leader."""
        return first_created(self._contenders)

    def on_read(self, response: GetResponse) -> WatchFrom:
        """Take the answer to `read()`: queue the leader, and return the watch to start."""
        if response.kvs:
            return self._follow(GetResponse(response.header, [response.kvs[0]], count=1))
        # No leader: wait for the first put on the prefix after the read (Go starts at the
        # read's revision itself, which etcd serves only after its next 100 ms sync pass).
        self._leader_key = None
        return WatchFrom(self._contenders, True, response.header.revision + 1)

    def on_watch(self, response: WatchResponse) -> tuple[bool, WatchFrom | None]:
        """Take a response of the running watch.

        Returns:
            (stop, then): whether to stop the running watch, and the watch to start instead
            (None after a stop: read the leader again).
        """
        if self._leader_key is None:
            first = first_put(response)
            if first is None:
                return False, None
            return True, self._follow(first)
        updates, deleted = leader_updates(response)
        for update in updates:
            self._queue(update)
        return deleted, None

    def _follow(self, leader: GetResponse) -> WatchFrom:
        """Queue `leader` and return the watch of its key for new values and its delete."""
        self._queue(leader)
        self._leader_key = leader.kvs[0].key
        return WatchFrom(self._leader_key, False, leader.header.revision + 1)

    def _queue(self, change: GetResponse) -> None:
        """Queue a change unless it is the one queued last (read again after a compaction)."""
        kv = change.kvs[0]
        seen = (kv.key, kv.mod_revision)
        if seen != self._last:
            self._last = seen
            self.pending.append(change)
