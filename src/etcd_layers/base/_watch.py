"""Watches: many watches multiplexed on one gRPC stream per client.

As clientv3 does, every watch of a client shares one `Watch` bidi stream. A background thread,
`etcd_layers.watch.stream`, owns it: it sends create requests one at a time (etcd answers
creates in order, and the `created` answer carries the id it assigned), reads every response,
joins fragments and hands each watch its responses through a bounded queue. A second thread,
`etcd_layers.watch.probe`, notices a stream that went silent: after `PROBE_AFTER` seconds
without a message it sends a progress request, which etcd always answers, and if nothing
arrives within `PROBE_TIMEOUT` more the stream is dropped as dead (a black-holed member keeps
its TCP connection open, so gRPC alone would not notice for minutes).

When the stream breaks, the thread opens a new one (on another endpoint if this one failed)
and re-creates every live watch from the revision after the last event it delivered (see
`ResumePoint`), so no event is lost or repeated.

Back-pressure. A watch buffers at most `QUEUE_LIMIT` events (plus one response) for its
consumer. Blocking the reader when a queue is full would stop the whole shared stream, so
one slow consumer would stall every other watch of the client (clientv3 does not block: it
buffers without bound per watch). We do neither: when a watch's queue fills, the reader
cancels that watch on the server and stops queueing for it; once its consumer has read the
queue down to half, the watch is created again from the revision after the last event queued.
Responses that were in flight for it are dropped and fetched again from the server's
history, so nothing is lost or repeated and the other watches keep flowing. The cost: a
consumer that falls behind makes etcd replay history, and if that history is compacted
meanwhile the watch ends with CompactedError (as a slow watcher inside etcd would).
"""

from __future__ import annotations

import collections
import contextlib
import enum
import logging
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Final

import grpc

from etcd_layers.base._connection import serialize
from etcd_layers.base._methods import WATCH_PATH
from etcd_layers.base._proto import kv_pb2, rpc_pb2
from etcd_layers.base._watch_state import (
    FragmentJoiner,
    ResumePoint,
    cancel_error,
    is_auth_refusal,
)
from etcd_layers.base.deadline import Deadline
from etcd_layers.base.keys import StrOrBytes
from etcd_layers.base.ops import check_bool, check_int, check_timeout, key_range
from etcd_layers.base.responses import Event, EventType, KeyValue, ResponseHeader, WatchResponse
from etcd_layers.errors import (
    CanceledError,
    ClosedError,
    DeadlineExceededError,
    EtcdError,
    NoLeaderError,
    UnavailableError,
    from_rpc_error,
)

if TYPE_CHECKING:
    from etcd_layers.base._connection import Connection, Endpoint

from etcd_layers._compat import Self

logger = logging.getLogger(__name__)
_monotonic = time.monotonic

QUEUE_LIMIT: Final = 1000  # events a watch holds for its consumer before it is paused
PROBE_AFTER: Final = 1.0  # seconds of silence before a progress request probes the stream
PROBE_TIMEOUT: Final = 2.0  # seconds a probe may go unanswered before the stream is dropped
_PROBE_TICK: Final = 0.25
_BACKOFF: Final = 0.05
_MAX_BACKOFF: Final = 1.0
_JOIN_TIMEOUT: Final = 10.0
_NO_LIMIT: Final = 1e9  # seconds: "wait for as long as it takes", for Deadline.left_or

# Why this client ended a stream itself (None: the stream failed).
_IDLE: Final = "no watch left"
_MOVED: Final = "endpoints changed"
_DEAD: Final = "no answer to a progress probe"
_REAUTH: Final = "the auth token was refused"
_CLOSED: Final = "client closed"

_EVENT_TYPES: Final = (EventType.PUT, EventType.DELETE)
_BROADCAST_ID: Final = -1  # etcd's id for answers to a stream-wide progress request
_PROGRESS_REQUEST: Final = rpc_pb2.WatchRequest(progress_request=rpc_pb2.WatchProgressRequest())
# Stream failures worth a new stream. clientv3 retries UNAVAILABLE and INTERNAL only; we also
# retry a CANCELLED we did not ask for (a member shutting down cancels its streams).
_RETRIED_CODES: Final = (
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.CANCELLED,
)


class _Phase(enum.Enum):
    PENDING = "pending"  # waiting to be (re)created on the stream
    CREATING = "creating"  # its create request is the one in flight
    ACTIVE = "active"  # the server watches for it under `server_id`
    PAUSED = "paused"  # its queue is full: no server-side watch until the consumer catches up
    ENDED = "ended"


@dataclass(slots=True)
class WatchStats:
    """Counters of one client's watch stream, for tests and monitoring."""

    streams: int = 0  # streams opened
    fragments: int = 0  # fragment messages received (each joined into one response)
    pauses: int = 0  # times a watch was paused because its consumer fell behind
    probes: int = 0  # progress requests sent to probe a silent stream
    endpoint: str = ""  # the endpoint of the latest stream


def _event(message: kv_pb2.Event) -> Event:
    kv = message.kv
    prev = None
    if message.HasField("prev_kv"):
        p = message.prev_kv
        prev = KeyValue(p.key, p.value, p.create_revision, p.mod_revision, p.version, p.lease)
    return Event(
        _EVENT_TYPES[message.type],
        KeyValue(kv.key, kv.value, kv.create_revision, kv.mod_revision, kv.version, kv.lease),
        prev,
    )


def _event_without_prev(message: kv_pb2.Event) -> Event:
    # The common case, without asking protobuf about a prev_kv the watch did not request.
    kv = message.kv
    return Event(
        _EVENT_TYPES[message.type],
        KeyValue(kv.key, kv.value, kv.create_revision, kv.mod_revision, kv.version, kv.lease),
        None,
    )


def _header(message: rpc_pb2.WatchResponse) -> ResponseHeader:
    h = message.header
    return ResponseHeader(h.cluster_id, h.member_id, h.revision, h.raft_term)


def _requests(
    requests: queue.SimpleQueue[rpc_pb2.WatchRequest | None],
) -> Iterator[rpc_pb2.WatchRequest]:
    """Feed one stream's requests to gRPC (which reads them in a thread of its own)."""
    while True:
        request = requests.get()
        if request is None:
            return
        yield request


class ClientWatch:
    """A running watch of a Client (the Watch Protocol).

    Iterate it, or call `next()`, for WatchResponses in order; `cancel()` (or leaving a
    `with` block) ends it. Responses wait in a bounded queue: see the module docstring.
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
        self._create = create  # re-sent with `start_revision` moved on at every re-creation
        self._resume = ResumePoint(create.start_revision)
        self._created_notify = created_notify
        self._progress_notify = progress_notify
        self._prev_kv = create.prev_kv
        # The hand-off to the consumer is a C-level queue: waking a consumer costs one futex,
        # not a Condition's Python-level waiter locks. None marks the end. Counts are in
        # events (at least 1 per response) and change under the stream's lock.
        self._items: queue.SimpleQueue[WatchResponse | EtcdError | None] = queue.SimpleQueue()
        self._enqueued = 0
        self._dequeued = 0
        self._peak = 0
        self._dropped = False  # canceled or closed: what is still queued is not delivered
        self._done = False  # the consumer saw the end
        self._settled = threading.Event()  # confirmed, or ended before it was
        self._phase = _Phase.PENDING
        self._server_id = -1
        self._confirmed = False
        self._failure: EtcdError | None = None  # why it ended before it was confirmed
        self._auth_retried = False

    @property
    def pending_events(self) -> int:
        """How many events (at least one per response) wait to be read."""
        return self._enqueued - self._dequeued

    @property
    def peak_pending_events(self) -> int:
        """The most events that ever waited to be read at once."""
        return self._peak

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
        if self._phase is _Phase.PAUSED:  # also when the counts below went wrong: see resume
            self._stream.resume_if_drained(self)
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
        # Only consumers write `_dequeued`, without the stream's lock (taking it here would
        # make the stream thread wait for consumers). The stream thread pauses a watch under
        # its lock and then checks `_dequeued` again, and a consumer checks the phase after
        # counting, so one of them always sees the other and resumes a drained watch.
        self._dequeued += len(item.events) or 1
        if self._phase is _Phase.PAUSED:
            self._stream.resume_if_drained(self)
        return item

    def cancel(self) -> None:
        """End the watch (idempotent); iteration stops and next() raises CanceledError."""
        self._stream.cancel(self)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.cancel()


class _Session:
    """One Watch stream on one endpoint, and what is known only within it."""

    __slots__ = (
        "answered",
        "by_id",
        "call",
        "creating",
        "end_reason",
        "endpoint",
        "fragments",
        "last_received",
        "probe_sent_at",
        "requests",
    )

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.requests: queue.SimpleQueue[rpc_pb2.WatchRequest | None] = queue.SimpleQueue()
        self.call: grpc._CallIterator[rpc_pb2.WatchResponse] | None = None
        self.by_id: dict[int, ClientWatch] = {}  # server watch id -> watch, ACTIVE ones only
        self.fragments: FragmentJoiner[kv_pb2.Event] = FragmentJoiner()
        self.creating: ClientWatch | None = None  # the watch whose create is in flight
        self.last_received = time.monotonic()
        self.probe_sent_at = 0.0  # 0: no probe outstanding
        self.answered = False
        self.end_reason: str | None = None

    def send(self, request: rpc_pb2.WatchRequest) -> None:
        self.requests.put(request)

    def abort(self, reason: str) -> None:
        """End the stream on purpose (the first reason given is kept)."""
        if self.end_reason is None:
            self.end_reason = reason
        self.requests.put(None)
        if self.call is not None:
            self.call.cancel()


class _WatchStream:
    """The watches of one client, their shared stream and the threads that serve it.

    Every piece of state is guarded by `lock`.
    """

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self.lock = threading.Lock()
        self._wake = threading.Condition(self.lock)  # the stream thread waits for watches
        self._stop = threading.Event()
        self._closed = False
        self._watches: dict[ClientWatch, None] = {}  # live watches, in creation order
        self._pending: collections.deque[ClientWatch] = collections.deque()
        self._session: _Session | None = None
        self._user_progress = 0  # progress requests of request_progress() not yet answered
        self._threads: list[threading.Thread] = []
        self.queue_limit = QUEUE_LIMIT
        self.resume_at = QUEUE_LIMIT // 2
        self.default_timeout = conn.default_timeout
        self.stats = WatchStats()
        conn.add_close_hook(self.close)
        conn.add_endpoint_listener(self._endpoints_changed)

    # --- called by users' threads ----------------------------------------------------------

    def add(
        self,
        create: rpc_pb2.WatchCreateRequest,
        *,
        created_notify: bool,
        progress_notify: bool,
        timeout: float | None,
    ) -> ClientWatch:
        """Start a watch and return it once the server has confirmed it."""
        conn = self._conn
        conn.check_open()
        deadline = conn.deadline(timeout)
        # With no deadline, wait for a stream as a request waits for a connection.
        wait = deadline if deadline.bounded else Deadline(conn.dial_timeout)
        watch = ClientWatch(
            self, create, created_notify=created_notify, progress_notify=progress_notify
        )
        with self.lock:
            if self._closed:
                raise ClosedError("the client is closed")
            self._start_threads()
            self._watches[watch] = None
            self._pending.append(watch)
            if self._session is not None:
                self._send_next_create(self._session)
            self._wake.notify_all()
        watch._settled.wait(wait.left_or(_NO_LIMIT))
        with self.lock:
            if watch._confirmed:
                return watch
            if watch._phase is _Phase.ENDED:
                raise watch._failure or ClosedError("the client is closed")
            self._end(watch)  # if its create is in flight, the answer is canceled
        if deadline.bounded:
            raise DeadlineExceededError(f"the watch was not confirmed within {timeout:g}s")
        raise UnavailableError(
            f"the watch was not confirmed within dial_timeout ({conn.dial_timeout:g}s)"
            f": no endpoint of {conn.addresses} answered"
        )

    def cancel(self, watch: ClientWatch) -> None:
        """End `watch` and drop what it still holds."""
        with self.lock:
            self._end(watch, clear=True)

    def resume_if_drained(self, watch: ClientWatch) -> None:
        """Create a paused watch again once its consumer caught up."""
        with self.lock:
            self._resume_if_drained(watch)

    def _resume_if_drained(self, watch: ClientWatch) -> None:
        if watch._phase is not _Phase.PAUSED:
            return
        # An empty queue is drained whatever the counts say (two threads reading one watch
        # can lose an update of `_dequeued`).
        if watch._enqueued - watch._dequeued > self.resume_at and not watch._items.empty():
            return
        watch._phase = _Phase.PENDING
        self._pending.append(watch)
        if self._session is not None:
            self._send_next_create(self._session)

    def request_progress(self) -> None:
        """Ask for a progress notification on every watch."""
        self._conn.check_open()
        with self.lock:
            if not self._watches:
                return  # as clientv3: nothing to notify
            self._user_progress += 1
            session = self._session
            if session is not None and session.end_reason is None:
                session.send(_PROGRESS_REQUEST)
            # Otherwise the next stream sends it when it opens.

    def close(self) -> None:
        """End every watch and stop the threads (idempotent)."""
        with self.lock:
            if self._closed:
                return
            self._closed = True
            self._stop.set()
            for watch in list(self._watches):
                self._end(watch, clear=True)
            session = self._session
            self._wake.notify_all()
        if session is not None:
            session.abort(_CLOSED)
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(_JOIN_TIMEOUT)

    # --- state changes (with `lock` held) ----------------------------------------------------

    def _start_threads(self) -> None:
        if self._threads:
            return
        for job, target in (("stream", self._run), ("probe", self._probe)):
            thread = threading.Thread(target=target, name=f"etcd_layers.watch.{job}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def _end(
        self, watch: ClientWatch, error: EtcdError | None = None, *, clear: bool = False
    ) -> None:
        """End `watch`; `error` is queued behind what it holds, to be raised to its consumer."""
        phase = watch._phase
        if phase is _Phase.ENDED:
            return
        watch._phase = _Phase.ENDED
        self._watches.pop(watch, None)
        session = self._session
        if phase is _Phase.ACTIVE and session is not None:
            server_id = watch._server_id
            if session.by_id.pop(server_id, None) is watch:
                session.fragments.discard(server_id)
                session.send(_cancel_request(server_id))
        # A CREATING watch stays `session.creating`: its answer is canceled when it comes.
        if clear:
            watch._dropped = True
            with contextlib.suppress(queue.Empty):
                while True:
                    watch._items.get_nowait()
            watch._dequeued = watch._enqueued
        if error is not None:
            if watch._confirmed:
                watch._items.put(error)
            else:
                watch._failure = error
        watch._items.put(None)
        watch._settled.set()
        if not self._watches and session is not None:
            session.abort(_IDLE)  # as clientv3, close the stream once nothing is watched

    def _fail_all(self, error: EtcdError) -> None:
        for watch in list(self._watches):
            self._end(watch, error)

    def _send_next_create(self, session: _Session) -> None:
        """Send the next create request unless one is in flight (etcd matches them in order)."""
        if session.creating is not None or session.end_reason is not None:
            return
        while self._pending:
            watch = self._pending.popleft()
            if watch._phase is not _Phase.PENDING:
                continue
            create = rpc_pb2.WatchCreateRequest()
            create.CopyFrom(watch._create)
            create.start_revision = watch._resume.next_revision
            watch._phase = _Phase.CREATING
            session.creating = watch
            session.send(rpc_pb2.WatchRequest(create_request=create))
            return

    def _start_session(self, session: _Session) -> None:
        self._session = session
        self.stats.streams += 1
        self.stats.endpoint = session.endpoint.address
        self._pending = collections.deque(
            watch for watch in self._watches if watch._phase is _Phase.PENDING
        )
        if self._user_progress:
            self._user_progress = 1  # requests sent on the old stream died with it
            session.send(_PROGRESS_REQUEST)
        self._send_next_create(session)

    def _stop_session(self, session: _Session) -> None:
        """Forget a stream that ended: its watches wait to be created on the next one."""
        if self._session is session:
            self._session = None
        for watch in session.by_id.values():
            if watch._phase is _Phase.ACTIVE:
                watch._phase = _Phase.PENDING
        creating = session.creating
        if creating is not None and creating._phase is _Phase.CREATING:
            creating._phase = _Phase.PENDING
        session.by_id.clear()
        session.creating = None

    def _pause(self, session: _Session, watch: ClientWatch) -> None:
        server_id = watch._server_id
        watch._phase = _Phase.PAUSED
        del session.by_id[server_id]
        session.fragments.discard(server_id)
        session.send(_cancel_request(server_id))
        self.stats.pauses += 1
        self._resume_if_drained(watch)  # its consumer may have caught up meanwhile

    def _deliver(self, session: _Session, watch: ClientWatch, response: WatchResponse) -> None:
        watch._items.put(response)
        enqueued = watch._enqueued + (len(response.events) or 1)
        watch._enqueued = enqueued
        pending = enqueued - watch._dequeued
        watch._peak = max(watch._peak, pending)
        if pending >= self.queue_limit and watch._phase is _Phase.ACTIVE:
            self._pause(session, watch)

    def _on_created(self, session: _Session, message: rpc_pb2.WatchResponse) -> None:
        watch = session.creating
        session.creating = None
        if watch is None:
            logger.warning("etcd confirmed watch %d that was not asked for", message.watch_id)
            if not message.canceled:
                session.send(_cancel_request(message.watch_id))
            return
        if watch._phase is not _Phase.CREATING:  # ended while its create was in flight
            if not message.canceled:
                session.send(_cancel_request(message.watch_id))
        elif message.canceled:
            error = cancel_error(message.cancel_reason, message.compact_revision)
            if is_auth_refusal(error) and self._conn.has_credentials and not watch._auth_retried:
                # The stream's token expired (etcd issue #12385): log in, then create it again.
                watch._auth_retried = True
                watch._phase = _Phase.PENDING
                session.abort(_REAUTH)
                return
            self._end(watch, error)
        else:
            watch._phase = _Phase.ACTIVE
            watch._server_id = message.watch_id
            watch._auth_retried = False
            session.by_id[message.watch_id] = watch
            watch._resume.created(message.header.revision)
            if not watch._confirmed:
                watch._confirmed = True
                if watch._created_notify:  # as clientv3, only the first confirmation
                    self._deliver(
                        session,
                        watch,
                        WatchResponse(_header(message), created=True, watch_id=message.watch_id),
                    )
                watch._settled.set()
        self._send_next_create(session)

    def _on_progress_all(self, session: _Session, message: rpc_pb2.WatchResponse) -> None:
        if not self._user_progress:
            return  # the answer to a probe
        self._user_progress -= 1
        header = _header(message)
        for server_id, watch in list(session.by_id.items()):
            if watch._phase is _Phase.ACTIVE:
                self._deliver(
                    session,
                    watch,
                    WatchResponse(header, is_progress_notify=True, watch_id=server_id),
                )

    def _endpoints_changed(self) -> None:
        addresses = set(self._conn.addresses)
        with self.lock:
            session = self._session
            if session is not None and session.endpoint.address not in addresses:
                session.abort(_MOVED)

    # --- the stream thread -----------------------------------------------------------------

    def _run(self) -> None:
        backoff = _BACKOFF
        while not self._stop.is_set():
            try:
                backoff = self._run_once(backoff)
            except Exception as err:  # a bug: hand it to every watch rather than die silently
                logger.exception("the watch stream failed")
                with self.lock:
                    self._fail_all(EtcdError(f"the watch stream failed: {err!r}"))
                backoff = _MAX_BACKOFF
            if backoff and self._stop.wait(backoff):
                return

    def _run_once(self, backoff: float) -> float:
        """Serve one stream until it ends; return how long to wait before the next one."""
        with self.lock:
            while not self._watches and not self._stop.is_set():
                self._wake.wait()
            if self._stop.is_set():
                return 0.0
        try:
            endpoint = self._conn.pick()
        except ClosedError:
            return 0.0
        if not endpoint.acquire():
            return 0.0  # set_endpoints removed it since pick(): pick again
        try:
            return self._stream_on(endpoint, backoff)
        finally:
            endpoint.release()  # a removed endpoint's channel closes with its last call

    def _stream_on(self, endpoint: Endpoint, backoff: float) -> float:
        session = _Session(endpoint)
        try:
            session.call = endpoint.channel.stream_stream(
                WATCH_PATH,
                request_serializer=serialize,
                response_deserializer=rpc_pb2.WatchResponse.FromString,
            )(_requests(session.requests), metadata=self._conn.metadata)
        except ValueError:  # the channel was closed under us by close() or set_endpoints
            return _BACKOFF
        with self.lock:
            if self._stop.is_set():
                session.abort(_CLOSED)
                return 0.0
            self._start_session(session)
        failure = self._serve(session)
        with self.lock:
            self._stop_session(session)
        if session.answered:
            backoff = _BACKOFF  # the endpoint worked: try again at once
        return self._recover(session, failure, backoff)

    def _recover(self, session: _Session, failure: grpc.RpcError | None, backoff: float) -> float:
        """Decide what follows the end of a stream; return how long to wait first."""
        reason = session.end_reason
        if reason in (_IDLE, _MOVED, _CLOSED):
            return 0.0
        if reason == _REAUTH:
            return self._reauthenticate(session.endpoint, backoff)
        retry = min(backoff * 2, _MAX_BACKOFF)
        if failure is None or reason == _DEAD:
            self._conn.mark_failed(session.endpoint)
            return retry
        error = from_rpc_error(failure)
        # As clientv3's isHaltErr: retry transport failures (see _RETRIED_CODES), but end the
        # watches on any other error, and on a lost leader when require_leader asked for that.
        if failure.code() in _RETRIED_CODES and not isinstance(error, NoLeaderError):
            self._conn.mark_failed(session.endpoint)
            return retry
        if is_auth_refusal(error) and self._conn.has_credentials:
            return self._reauthenticate(session.endpoint, backoff)
        with self.lock:
            self._fail_all(error)
        return retry

    def _reauthenticate(self, endpoint: Endpoint, backoff: float) -> float:
        try:
            self._conn.authenticate(Deadline(self._conn.dial_timeout))
        except UnavailableError:
            self._conn.mark_failed(endpoint)
            return min(backoff * 2, _MAX_BACKOFF)
        except EtcdError as error:
            with self.lock:
                self._fail_all(error)
        return 0.0

    def _serve(self, session: _Session) -> grpc.RpcError | None:
        """Read the stream until it ends; return its error (None when it ended cleanly)."""
        call = session.call
        assert call is not None  # set before the session starts
        try:
            for message in call:
                self._handle(session, message)
        except grpc.RpcError as err:
            return err
        finally:
            session.requests.put(None)
            call.cancel()
        return None

    def _handle(self, session: _Session, message: rpc_pb2.WatchResponse) -> None:
        # The hot path: one call per message, so it reads each protobuf field once.
        session.last_received = _monotonic()
        session.answered = True
        if message.created:
            with self.lock:
                self._on_created(session, message)
            return
        watch_id = message.watch_id
        raw_events: Sequence[kv_pb2.Event] = message.events
        fragments = session.fragments
        if message.fragment or (fragments.parts and watch_id in fragments.parts):
            self.stats.fragments += 1
            joined = fragments.add(watch_id, raw_events, more=message.fragment)
            if joined is None:
                return
            raw_events = joined
        if raw_events:
            # Convert before taking the lock. The watch is looked up twice: here to skip the
            # work for a watch paused or canceled meanwhile, under the lock to be sure.
            watch = session.by_id.get(watch_id)
            if watch is None:
                return
            convert = _event if watch._prev_kv else _event_without_prev
            h = message.header
            response = WatchResponse(
                ResponseHeader(h.cluster_id, h.member_id, h.revision, h.raft_term),
                [convert(e) for e in raw_events],
                0,
                False,
                False,
                False,
                watch_id,
            )
            last_revision = raw_events[-1].kv.mod_revision
            with self.lock:
                if session.by_id.get(watch_id) is watch:
                    # First the resume point: delivering may pause the watch and resume it.
                    watch._resume.delivered(last_revision)
                    self._deliver(session, watch, response)
            return
        with self.lock:
            watch = session.by_id.get(watch_id)
            if watch is None:
                if watch_id == _BROADCAST_ID:
                    self._on_progress_all(session, message)
            elif message.canceled:
                del session.by_id[watch_id]  # the server forgot it: no cancel to send
                self._end(watch, cancel_error(message.cancel_reason, message.compact_revision))
            elif watch._progress_notify:
                response = WatchResponse(
                    _header(message), is_progress_notify=True, watch_id=watch_id
                )
                self._deliver(session, watch, response)

    # --- the probe thread ------------------------------------------------------------------

    def _probe(self) -> None:
        while not self._stop.wait(_PROBE_TICK):
            with self.lock:
                session = self._session
                if session is None or session.end_reason is not None:
                    continue
                now = time.monotonic()
                if session.probe_sent_at:
                    if session.last_received >= session.probe_sent_at:
                        session.probe_sent_at = 0.0
                    elif now - session.probe_sent_at >= PROBE_TIMEOUT:
                        logger.warning(
                            "watch stream to %s: no answer to a probe in %gs, reconnecting",
                            session.endpoint.address,
                            PROBE_TIMEOUT,
                        )
                        session.abort(_DEAD)
                        continue
                if not session.probe_sent_at and now - session.last_received >= PROBE_AFTER:
                    session.probe_sent_at = now
                    self.stats.probes += 1
                    session.send(_PROGRESS_REQUEST)


def _cancel_request(server_id: int) -> rpc_pb2.WatchRequest:
    return rpc_pb2.WatchRequest(cancel_request=rpc_pb2.WatchCancelRequest(watch_id=server_id))


class WatchMixin:
    """The Watcher Protocol, mixed into Client."""

    _conn: Connection

    def _init_streams(self) -> None:
        """Prepare the stream managers (called once the connection is up)."""
        self._watch_stream = _WatchStream(self._conn)

    def watch(
        self,
        key: StrOrBytes,
        *,
        range_end: StrOrBytes | None = None,
        prefix: bool = False,
        from_key: bool = False,
        start_revision: int = 0,
        prev_kv: bool = False,
        filter_put: bool = False,
        filter_delete: bool = False,
        progress_notify: bool = False,
        fragment: bool = False,
        created_notify: bool = False,
        timeout: float | None = None,
    ) -> ClientWatch:
        """Watch a key or a range (see Watcher.watch); returns once the server confirmed it.

        Raises:
            DeadlineExceededError: not confirmed within `timeout`.
            UnavailableError: no deadline, and no endpoint answered within dial_timeout.
        """
        begin, end = key_range(key, range_end, prefix, from_key)
        filters = []
        if check_bool(filter_put, "filter_put"):
            filters.append(rpc_pb2.WatchCreateRequest.NOPUT)
        if check_bool(filter_delete, "filter_delete"):
            filters.append(rpc_pb2.WatchCreateRequest.NODELETE)
        create = rpc_pb2.WatchCreateRequest(
            key=begin,
            range_end=end,
            start_revision=check_int(start_revision, "start_revision"),
            prev_kv=check_bool(prev_kv, "prev_kv"),
            progress_notify=check_bool(progress_notify, "progress_notify"),
            fragment=check_bool(fragment, "fragment"),
            filters=filters,
        )
        return self._watch_stream.add(
            create,
            created_notify=check_bool(created_notify, "created_notify"),
            progress_notify=progress_notify,
            timeout=check_timeout(timeout),
        )

    def request_progress(self, *, timeout: float | None = None) -> None:
        """Ask the server for a progress notification on every watch of this client.

        The notifications arrive on the watches (`is_progress_notify`); this call does not
        wait for them.
        """
        check_timeout(timeout)
        self._watch_stream.request_progress()
