"""The watch multiplexer: a pure state machine of one client's watches on one shared stream.

Server messages go in (`on_message`), and so do the shell's events (a stream opened or
ended, a watch added, read or canceled, a tick of the liveness probe); actions come out:
`Send` a request on the stream, `Deliver` a response to a watch, `Confirm` a watch,
`End` a watch, `Abort` the stream. The multiplexer does no I/O, starts no thread, takes
no lock and reads the time only through the clock it is given, so the sync shell
(`base/_watch.py`) and an asyncio shell can both drive it.

What it decides:

- Creates go one at a time (etcd answers creates in order; the `created` answer carries the
  id it assigned), and every live watch is created again on each new stream, from its
  `ResumePoint`: the revision after the last event it delivered, so nothing is lost or
  repeated across reconnects.
- Fragments are joined (`FragmentJoiner`); cancels and compaction end a watch with a typed
  error; progress notifications reach the watches that asked for them.
- Back-pressure: a watch holding `queue_limit` undelivered events is paused (its server watch
  is canceled, responses in flight for it are dropped) and created again from its resume
  point once its consumer has read its queue down to `resume_at`.
- Liveness: `tick()` sends a progress request after `PROBE_AFTER` seconds of silence and
  aborts the stream when `PROBE_TIMEOUT` more pass without a message.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable, Sequence
from typing import Final, Generic

from etcd_layers.base import _convert
from etcd_layers.base._proto import kv_pb2, rpc_pb2
from etcd_layers.base._watch_recovery import DEAD, IDLE, REAUTH
from etcd_layers.base._watch_state import (
    FragmentJoiner,
    K,
    Phase,
    WatchEntry,
    cancel_error,
    is_auth_refusal,
)
from etcd_layers.base.responses import WatchResponse
from etcd_layers.base.watch_actions import (
    Abort,
    Action,
    Confirm,
    Deliver,
    End,
    Send,
    StreamEnd,
    WatchStats,
)
from etcd_layers.errors import EtcdError

__all__ = [  # the entries the multiplexer tracks are built by the shells, so they are public here
    "BROADCAST_ID",
    "PROBE_AFTER",
    "PROBE_TIMEOUT",
    "PROGRESS_REQUEST",
    "QUEUE_LIMIT",
    "Phase",
    "WatchEntry",
    "WatchMux",
    "cancel_request",
]

logger = logging.getLogger("etcd_layers.client")

QUEUE_LIMIT: Final = 1000  # events a watch holds for its consumer before it is paused
PROBE_AFTER: Final = 1.0  # seconds of silence before a progress request probes the stream
PROBE_TIMEOUT: Final = 2.0  # seconds a probe may go unanswered before the stream is dropped
BROADCAST_ID: Final = -1  # etcd's id for answers to a stream-wide progress request
PROGRESS_REQUEST: Final = rpc_pb2.WatchRequest(progress_request=rpc_pb2.WatchProgressRequest())


def cancel_request(server_id: int) -> rpc_pb2.WatchRequest:
    """Return the request that cancels server watch `server_id`."""
    return rpc_pb2.WatchRequest(cancel_request=rpc_pb2.WatchCancelRequest(watch_id=server_id))


class _Stream(Generic[K]):
    """What is known only within one stream."""

    __slots__ = (
        "answered",
        "by_id",
        "creating",
        "end_reason",
        "endpoint",
        "fragments",
        "last_received",
        "probe_sent_at",
    )

    def __init__(self, endpoint: str, now: float) -> None:
        self.endpoint = endpoint
        self.by_id: dict[int, WatchEntry[K]] = {}  # server id -> ACTIVE entries only
        self.fragments: FragmentJoiner[kv_pb2.Event] = FragmentJoiner()
        self.creating: WatchEntry[K] | None = None  # the entry whose create is in flight
        self.last_received = now
        self.probe_sent_at = 0.0  # 0: no probe outstanding
        self.answered = False
        self.end_reason: str | None = None


class WatchMux(Generic[K]):
    """The watches of one client and the state of their shared stream (see the module doc).

    Not thread-safe: the shell calls it under one lock, or from one event loop.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        queue_limit: int | None = None,
        reauthenticates: bool = False,
    ) -> None:
        self._clock = clock
        # QUEUE_LIMIT is read here, not bound as a default, so a test may lower it.
        self.queue_limit = QUEUE_LIMIT if queue_limit is None else queue_limit
        self.resume_at = self.queue_limit // 2
        self._reauthenticates = reauthenticates  # the shell can log in again
        self._entries: dict[WatchEntry[K], None] = {}  # live watches, in creation order
        self._pending: collections.deque[WatchEntry[K]] = collections.deque()
        self._stream: _Stream[K] | None = None
        self._user_progress = 0  # progress requests of request_progress() not yet answered
        self._streams = 0
        self._fragments = 0
        self._pauses = 0
        self._probes = 0
        self._endpoint = ""

    # --- queries ---------------------------------------------------------------------------

    @property
    def watching(self) -> bool:
        """Whether any watch is live (the shell opens a stream only then)."""
        return bool(self._entries)

    @property
    def endpoint(self) -> str | None:
        """The endpoint of the open stream (None: no stream is open)."""
        return None if self._stream is None else self._stream.endpoint

    def sole(self, entry: WatchEntry[K]) -> bool:
        """Whether `entry` is the only live watch, active on an open stream.

        The sync shell lets the consumer of such a watch read the stream itself: nobody else
        waits for what it reads.
        """
        stream = self._stream
        return (
            entry.phase is Phase.ACTIVE
            and len(self._entries) == 1
            and stream is not None
            and stream.end_reason is None
        )

    def stats(self) -> WatchStats:
        """Return a snapshot of the counters."""
        return WatchStats(
            self._streams, self._fragments, self._pauses, self._probes, self._endpoint
        )

    # --- the consumers' side ---------------------------------------------------------------

    def add(self, entry: WatchEntry[K]) -> list[Action[K]]:
        """Start watching for `entry`; it is created on the stream in its turn."""
        self._entries[entry] = None
        self._pending.append(entry)
        return self._send_next_create()

    def cancel(self, entry: WatchEntry[K]) -> list[Action[K]]:
        """End `entry` at its consumer's request; what it still holds is dropped."""
        if entry.phase is Phase.ENDED:
            return []
        entry.dequeued = entry.enqueued
        return self._end(entry, None)

    def consumed(self, entry: WatchEntry[K], events: int) -> list[Action[K]]:
        """Record that the consumer read `events` events; a drained paused watch resumes."""
        entry.dequeued += events
        if entry.phase is Phase.PAUSED and entry.pending <= self.resume_at:
            entry.phase = Phase.PENDING
            self._pending.append(entry)
            return self._send_next_create()
        return []

    def request_progress(self) -> list[Action[K]]:
        """Ask for a progress notification on every watch."""
        if not self._entries:
            return []  # as clientv3: nothing to notify
        self._user_progress += 1
        stream = self._stream
        if stream is not None and stream.end_reason is None:
            return [Send(PROGRESS_REQUEST)]
        return []  # the next stream sends it when it opens

    def fail_all(self, error: EtcdError) -> list[Action[K]]:
        """End every watch with `error`."""
        actions: list[Action[K]] = []
        for entry in list(self._entries):
            actions += self._end(entry, error)
        return actions

    def close(self) -> list[Action[K]]:
        """End every watch, dropping what they hold (the client closes)."""
        actions: list[Action[K]] = []
        for entry in list(self._entries):
            actions += self.cancel(entry)
        return actions

    # --- the stream's side -----------------------------------------------------------------

    def open_stream(self, endpoint: str) -> list[Action[K]]:
        """A stream to `endpoint` is open: create every waiting watch on it."""
        self._stream = _Stream(endpoint, self._clock())
        self._streams += 1
        self._endpoint = endpoint
        self._pending = collections.deque(e for e in self._entries if e.phase is Phase.PENDING)
        actions: list[Action[K]] = []
        if self._user_progress:
            self._user_progress = 1  # requests sent on the old stream died with it
            actions.append(Send(PROGRESS_REQUEST))
        return actions + self._send_next_create()

    def close_stream(self) -> StreamEnd:
        """The stream ended: its watches wait to be created on the next one."""
        stream = self._stream
        if stream is None:
            return StreamEnd(None, answered=False)
        self._stream = None
        carried = 0
        for entry in stream.by_id.values():
            if entry.phase is Phase.ACTIVE:
                entry.phase = Phase.PENDING
                carried += 1
        creating = stream.creating
        if creating is not None and creating.phase is Phase.CREATING:
            creating.phase = Phase.PENDING
        return StreamEnd(stream.end_reason, stream.answered, carried)

    def abort(self, reason: str) -> list[Action[K]]:
        """End the open stream on purpose (the first reason given is kept)."""
        stream = self._stream
        if stream is None:
            return []
        if stream.end_reason is None:
            stream.end_reason = reason
        return [Abort(reason)]

    def tick(self) -> list[Action[K]]:
        """Probe a silent stream, and abort it when a probe went unanswered for too long."""
        stream = self._stream
        if stream is None or stream.end_reason is not None:
            return []
        now = self._clock()
        if stream.probe_sent_at:
            if stream.last_received >= stream.probe_sent_at:
                stream.probe_sent_at = 0.0
            elif now - stream.probe_sent_at >= PROBE_TIMEOUT:
                logger.warning(
                    "watch stream to %s: no answer to a probe in %gs, reconnecting",
                    stream.endpoint,
                    PROBE_TIMEOUT,
                )
                return self.abort(DEAD)
        if not stream.probe_sent_at and now - stream.last_received >= PROBE_AFTER:
            stream.probe_sent_at = now
            self._probes += 1
            return [Send(PROGRESS_REQUEST)]
        return []

    def on_message(self, message: rpc_pb2.WatchResponse) -> list[Action[K]]:
        """Take one message of the open stream."""
        # The hot path: one call per message, so it reads each protobuf field once.
        stream = self._stream
        assert stream is not None, "a message arrived with no stream open"
        stream.last_received = self._clock()
        stream.answered = True
        if message.created:
            return self._on_created(stream, message)
        watch_id = message.watch_id
        raw_events: Sequence[kv_pb2.Event] = message.events
        fragments = stream.fragments
        if message.fragment or (fragments.parts and watch_id in fragments.parts):
            self._fragments += 1
            joined = fragments.add(watch_id, raw_events, more=message.fragment)
            if joined is None:
                return []
            raw_events = joined
        entry = stream.by_id.get(watch_id)
        if entry is None:
            if watch_id == BROADCAST_ID and not raw_events:
                return self._on_progress_all(stream, message)
            return []  # paused or canceled meanwhile: in flight before its cancel
        if raw_events:
            events = _convert.events(raw_events, prev_kv=entry.prev_kv)
            # First the resume point: delivering may pause the watch.
            entry.resume.delivered(events[-1].kv.mod_revision)
            return self._deliver(stream, entry, _convert.events_response(message, events))
        return self._on_notice(stream, entry, message)

    def _on_notice(
        self, stream: _Stream[K], entry: WatchEntry[K], message: rpc_pb2.WatchResponse
    ) -> list[Action[K]]:
        """Take a message without events for a live watch: a cancel or a progress notice."""
        watch_id = message.watch_id
        if message.canceled:
            del stream.by_id[watch_id]  # the server forgot it: no cancel to send
            return self._end(entry, cancel_error(message.cancel_reason, message.compact_revision))
        if entry.progress_notify:
            header = _convert.header(message.header)
            notice = WatchResponse(header, is_progress_notify=True, watch_id=watch_id)
            return self._deliver(stream, entry, notice)
        return []

    # --- state changes ---------------------------------------------------------------------

    def _end(self, entry: WatchEntry[K], error: EtcdError | None) -> list[Action[K]]:
        phase = entry.phase
        if phase is Phase.ENDED:
            return []
        entry.phase = Phase.ENDED
        self._entries.pop(entry, None)
        stream = self._stream
        actions: list[Action[K]] = []
        if phase is Phase.ACTIVE and stream is not None:
            server_id = entry.server_id
            if stream.by_id.pop(server_id, None) is entry:
                stream.fragments.discard(server_id)
                actions.append(Send(cancel_request(server_id)))
        # A CREATING entry stays `stream.creating`: its answer is canceled when it comes.
        actions.append(End(entry.key, error))
        if not self._entries:
            actions += self.abort(IDLE)  # as clientv3, close the stream once nothing is watched
        return actions

    def _send_next_create(self) -> list[Action[K]]:
        """Send the next create unless one is in flight (etcd matches them in order)."""
        stream = self._stream
        if stream is None or stream.creating is not None or stream.end_reason is not None:
            return []
        while self._pending:
            entry = self._pending.popleft()
            if entry.phase is not Phase.PENDING:
                continue
            create = rpc_pb2.WatchCreateRequest()
            create.CopyFrom(entry.create)
            create.start_revision = entry.resume.next_revision
            entry.phase = Phase.CREATING
            stream.creating = entry
            return [Send(rpc_pb2.WatchRequest(create_request=create))]
        return []

    def _deliver(
        self, stream: _Stream[K], entry: WatchEntry[K], response: WatchResponse
    ) -> list[Action[K]]:
        enqueued = entry.enqueued + (len(response.events) or 1)
        entry.enqueued = enqueued
        pending = enqueued - entry.dequeued
        if pending > entry.peak:  # noqa: PLR1730  # max() is a call: this is the hot path
            entry.peak = pending
        deliver: Deliver[K] = Deliver(entry.key, response)
        if pending < self.queue_limit or entry.phase is not Phase.ACTIVE:
            return [deliver]
        # Paused: cancel its server watch and drop what is in flight for it.
        server_id = entry.server_id
        entry.phase = Phase.PAUSED
        del stream.by_id[server_id]
        stream.fragments.discard(server_id)
        self._pauses += 1
        return [deliver, Send(cancel_request(server_id))]

    def _on_created(self, stream: _Stream[K], message: rpc_pb2.WatchResponse) -> list[Action[K]]:
        entry = stream.creating
        stream.creating = None
        actions: list[Action[K]] = []
        if entry is None:
            logger.warning("etcd confirmed watch %d that was not asked for", message.watch_id)
            if not message.canceled:
                actions.append(Send(cancel_request(message.watch_id)))
            return actions
        if entry.phase is not Phase.CREATING:  # ended while its create was in flight
            if not message.canceled:
                actions.append(Send(cancel_request(message.watch_id)))
        elif message.canceled:
            error = cancel_error(message.cancel_reason, message.compact_revision)
            if is_auth_refusal(error) and self._reauthenticates and not entry.auth_retried:
                # The stream's token expired (etcd issue #12385): log in, then create it again.
                entry.auth_retried = True
                entry.phase = Phase.PENDING
                return self.abort(REAUTH)
            actions += self._end(entry, error)
        else:
            entry.phase = Phase.ACTIVE
            entry.server_id = message.watch_id
            entry.auth_retried = False
            stream.by_id[message.watch_id] = entry
            entry.resume.created(message.header.revision)
            if not entry.confirmed:
                entry.confirmed = True
                if entry.created_notify:  # as clientv3, only the first confirmation
                    header = _convert.header(message.header)
                    notice = WatchResponse(header, created=True, watch_id=message.watch_id)
                    actions += self._deliver(stream, entry, notice)
                actions.append(Confirm(entry.key))
        return actions + self._send_next_create()

    def _on_progress_all(
        self, stream: _Stream[K], message: rpc_pb2.WatchResponse
    ) -> list[Action[K]]:
        if not self._user_progress:
            return []  # the answer to a probe
        self._user_progress -= 1
        header = _convert.header(message.header)
        actions: list[Action[K]] = []
        for server_id, entry in list(stream.by_id.items()):
            if entry.phase is Phase.ACTIVE:
                notice = WatchResponse(header, is_progress_notify=True, watch_id=server_id)
                actions += self._deliver(stream, entry, notice)
        return actions
