"""The sync watch shell: the threads and the gRPC stream around the watch multiplexer.

As clientv3 does, every watch of a client shares one `Watch` bidi stream. What to send and
what to deliver is decided by the pure `WatchMux` (see `base/watch_mux.py`: creates one at a
time, resume points, fragments, cancels, progress and slow-consumer pauses); this shell only
moves messages and time around it. A background thread, `etcd_layers.watch.stream`, opens
the stream, reads it and applies the multiplexer's actions; a second one,
`etcd_layers.watch.probe`, ticks the multiplexer's liveness probe (a black-holed member keeps
its TCP connection open, so gRPC alone would not notice for minutes). When a stream ends,
`after_stream` decides what follows (see `base/_watch_recovery.py`), and the multiplexer
creates every live watch again on the next stream, from where it left off.

Back-pressure. A watch buffers at most `QUEUE_LIMIT` events (plus one response) for its
consumer. Blocking the reader when a queue is full would stop the whole shared stream, so
one slow consumer would stall every other watch of the client (clientv3 does not block: it
buffers without bound per watch). We do neither: the multiplexer pauses that watch on the
server and creates it again from history once its consumer has caught up. The cost: a
consumer that falls behind makes etcd replay history, and if that history is compacted
meanwhile the watch ends with CompactedError (as a slow watcher inside etcd would).

The thread hop. The consumer of a client's only watch, iterating with nothing queued, reads
the stream itself in turns with the stream thread (see base/_watch_session.py), so a live
response costs it no wake-up of a second thread.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Final

import grpc

from etcd_layers import telemetry
from etcd_layers.base._connection import serialize
from etcd_layers.base._methods import WATCH_PATH
from etcd_layers.base._proto import rpc_pb2
from etcd_layers.base._stream_report import watch_stream_ended
from etcd_layers.base._watch_handle import ClientWatch
from etcd_layers.base._watch_recovery import (
    BACKOFF,
    CLOSED,
    INTERRUPTED,
    MAX_BACKOFF,
    MOVED,
    After,
    after_stream,
    next_backoff,
    unconfirmed,
)
from etcd_layers.base._watch_session import Session, feed
from etcd_layers.base._watch_state import WatchEntry
from etcd_layers.base.deadline import Deadline
from etcd_layers.base.watch_actions import Action, Confirm, Deliver, End, Send, WatchStats
from etcd_layers.base.watch_mux import WatchMux
from etcd_layers.errors import (
    ClosedError,
    EtcdError,
    UnavailableError,
    from_rpc_error,
)

if TYPE_CHECKING:
    from etcd_layers.base._connection import Connection, Endpoint

logger = logging.getLogger("etcd_layers.client")

_PROBE_TICK: Final = 0.25
_JOIN_TIMEOUT: Final = 10.0
_NO_LIMIT: Final = 1e9  # seconds: "wait for as long as it takes", for Deadline.left_or
# Stream failures worth a new stream. clientv3 retries UNAVAILABLE and INTERNAL only; we also
# retry a CANCELLED we did not ask for (a member shutting down cancels its streams).
_RETRIED_CODES: Final = (
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.CANCELLED,
)


class _WatchStream:
    """The watches of one client, their shared stream and the threads that serve it.

    The multiplexer and the current session are guarded by `lock`.
    """

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self.lock = threading.Lock()
        self._wake = threading.Condition(self.lock)  # the stream thread waits for watches
        self._turn = threading.Condition(self.lock)  # ... and for its turn to read the stream
        self._stop = threading.Event()
        self._closed = False
        self._mux: WatchMux[ClientWatch] = WatchMux(
            clock=time.monotonic, reauthenticates=conn.has_credentials
        )
        self._session: Session | None = None
        self._threads: list[threading.Thread] = []
        self.default_timeout = conn.default_timeout
        conn.add_close_hook(self.close)
        conn.add_endpoint_listener(self._endpoints_changed)

    # --- called by users' threads ----------------------------------------------------------

    def stats(self) -> WatchStats:
        """Return a snapshot of the stream's counters."""
        with self.lock:
            return self._mux.stats()

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
            self._apply(self._mux.add(watch._entry))
            self._wake.notify_all()
            if self._session is not None:  # two watches: the stream thread reads from now on
                self._session.direct_at = float("-inf")
                self._session.claimed = False
                self._turn.notify_all()
        watch._settled.wait(wait.left_or(_NO_LIMIT))
        with self.lock:
            if watch._confirmed:
                return watch
            if watch._ended:
                raise watch._failure or ClosedError("the client is closed")
            self._apply(self._mux.cancel(watch._entry))  # an answer in flight is canceled
        raise unconfirmed(
            bounded=deadline.bounded,
            timeout=timeout,
            default_timeout=conn.default_timeout,
            dial_timeout=conn.dial_timeout,
            addresses=conn.addresses,
        )

    def cancel(self, watch: ClientWatch) -> None:
        """End `watch` and drop what it still holds."""
        with self.lock:
            actions = self._mux.cancel(watch._entry)
            if actions:  # not ended before: drop what it holds, then queue its end
                watch._drop()
                self._apply(actions)

    def consumed(self, entry: WatchEntry[ClientWatch], events: int) -> None:
        """Count what the consumer read; a paused watch that caught up is created again."""
        with self.lock:
            actions = self._mux.consumed(entry, events)
            if actions:
                self._apply(actions)

    def read_for(self, watch: ClientWatch) -> bool:
        """Read the stream's next message in the consumer's thread; return whether it did.

        Only when `watch` is the client's only watch (`WatchMux.sole`) and nobody else is
        reading; the message goes through the multiplexer as the stream thread's would.
        """
        with self.lock:
            session = self._session
            if session is None or session.ended:
                return False
            if not self._mux.sole(watch._entry):  # another watch joined: the thread reads now
                session.direct_at = float("-inf")
                session.claimed = False
                self._turn.notify_all()
                return False
            if session.reading:  # the stream thread's read: it leaves the next one to us
                session.claimed = True
                return False
            session.reading = True
        call = session.call
        assert call is not None  # set before the session starts
        try:
            try:
                message = next(call)
            except StopIteration:
                self._ended(session, None)
                return False
            except grpc.RpcError as err:
                self._ended(session, err)
                return False
            self._take_message(session, message, direct=True)
        except BaseException:
            # Interrupted (KeyboardInterrupt, a signal handler's exception) or a bug: a message
            # gRPC gave may not have reached the multiplexer, so the stream starts again from
            # the resume points, which only delivered events move.
            with self.lock:
                session.reading = False
                self._apply(self._mux.abort(INTERRUPTED))
            raise
        return True

    def request_progress(self) -> None:
        """Ask for a progress notification on every watch."""
        self._conn.check_open()
        with self.lock:
            self._apply(self._mux.request_progress())

    def close(self) -> None:
        """End every watch and stop the threads (idempotent)."""
        with self.lock:
            if self._closed:
                return
            self._closed = True
            self._stop.set()
            actions = self._mux.close()
            for action in actions:
                if isinstance(action, End):
                    action.watch._drop()  # before its end is queued
            self._apply(actions)
            self._apply(self._mux.abort(CLOSED))
            self._wake.notify_all()
            self._turn.notify_all()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(_JOIN_TIMEOUT)

    # --- with `lock` held ------------------------------------------------------------------

    def _apply(self, actions: list[Action[ClientWatch]]) -> None:
        """Carry out the multiplexer's actions."""
        session = self._session
        for action in actions:
            if isinstance(action, Deliver):
                action.watch._items.put(action.response)
            elif isinstance(action, Send):
                if session is not None:
                    session.requests.put(action.request)
            elif isinstance(action, Confirm):
                action.watch._confirmed = True
                action.watch._settled.set()
            elif isinstance(action, End):
                action.watch._end(action.error)
            elif session is not None:  # Abort
                session.abort()

    def _start_threads(self) -> None:
        if self._threads:
            return
        for job, target in (("stream", self._run), ("probe", self._probe)):
            thread = threading.Thread(target=target, name=f"etcd_layers.watch.{job}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def _endpoints_changed(self) -> None:
        addresses = set(self._conn.addresses)
        with self.lock:
            endpoint = self._mux.endpoint
            if endpoint is not None and endpoint not in addresses:
                self._apply(self._mux.abort(MOVED))

    # --- the stream thread -----------------------------------------------------------------

    def _run(self) -> None:
        backoff = BACKOFF
        while not self._stop.is_set():
            try:
                backoff = self._run_once(backoff)
            except Exception as err:  # a bug: hand it to every watch rather than die silently
                logger.exception("the watch stream failed")
                with self.lock:
                    self._apply(self._mux.fail_all(EtcdError(f"the watch stream failed: {err!r}")))
                backoff = MAX_BACKOFF
            if backoff and self._stop.wait(backoff):
                return

    def _run_once(self, backoff: float) -> float:
        """Serve one stream until it ends; return how long to wait before the next one."""
        with self.lock:
            while not self._mux.watching and not self._stop.is_set():
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
        session = Session(endpoint)
        try:
            session.call = endpoint.channel.stream_stream(
                WATCH_PATH,
                request_serializer=serialize,
                response_deserializer=rpc_pb2.WatchResponse.FromString,
            )(feed(session.requests), metadata=self._conn.metadata)
        except ValueError:  # the channel was closed under us by close() or set_endpoints
            return BACKOFF
        with self.lock:
            if self._stop.is_set():
                session.abort()
                return 0.0
            self._session = session
            self._apply(self._mux.open_stream(endpoint.address))
        failure = self._serve(session)
        with self.lock:
            self._session = None
            end = self._mux.close_stream()
        if end.answered:
            backoff = BACKOFF  # the endpoint worked: try again at once
        error = None if failure is None else from_rpc_error(failure)
        after = after_stream(
            end.reason,
            error,
            transport_failure=failure is not None and failure.code() in _RETRIED_CODES,
            has_credentials=self._conn.has_credentials,
        )
        if not self._stop.is_set():
            watch_stream_ended(endpoint.address, end, error, after)
        if after is After.NEXT:
            return 0.0
        if after is After.REAUTH:
            return self._reauthenticate(endpoint, backoff)
        if after is After.FAILOVER:
            self._conn.mark_failed(endpoint)
        elif error is not None:  # After.FAIL
            with self.lock:
                self._apply(self._mux.fail_all(error))
        return next_backoff(backoff)

    def _reauthenticate(self, endpoint: Endpoint, backoff: float) -> float:
        try:
            self._conn.authenticate(Deadline(self._conn.dial_timeout))
        except UnavailableError:
            self._conn.mark_failed(endpoint)
            return next_backoff(backoff)
        except EtcdError as error:
            with self.lock:
                self._apply(self._mux.fail_all(error))
        return 0.0

    def _serve(self, session: Session) -> grpc.RpcError | None:
        """Read the stream until it ends; return its error (None when it ended cleanly)."""
        call = session.call
        assert call is not None  # set before the session starts
        try:
            while self._my_turn(session):
                try:
                    message = next(call)
                except StopIteration:
                    return self._ended(session, None)
                except grpc.RpcError as err:
                    return self._ended(session, err)
                self._take_message(session, message, direct=False)
            return session.failure  # a consumer reading it saw it end
        finally:
            session.requests.put(None)
            call.cancel()

    def _my_turn(self, session: Session) -> bool:
        with self.lock:
            return session.wait_turn(self._turn)

    def _ended(self, session: Session, failure: grpc.RpcError | None) -> grpc.RpcError | None:
        with self.lock:
            session.end(failure)
            self._turn.notify_all()
        return failure

    def _take_message(
        self, session: Session, message: rpc_pb2.WatchResponse, *, direct: bool
    ) -> None:
        """Hand a message just read to the multiplexer; the next read may start after it."""
        instruments = telemetry.active
        if instruments is not None and message.events:
            instruments.watch_response(message.header.revision, message.events[-1].kv.mod_revision)
        with self.lock:
            session.reading = False
            if direct or session.claimed:  # the consumer reads next, if back in HANDOVER
                session.direct_at = time.monotonic()
                session.claimed = False
            actions = self._mux.on_message(message)
            if len(actions) == 1 and type(first := actions[0]) is Deliver:
                first.watch._items.put(first.response)  # the usual case, inline
            elif actions:
                self._apply(actions)
                # More than a delivery (another watch confirmed, a pause): the thread reads
                # now; a consumer still alone claims the stream back on its next read.
                session.direct_at = float("-inf")
                session.claimed = False
                self._turn.notify_all()

    # --- the probe thread ------------------------------------------------------------------

    def _probe(self) -> None:
        while not self._stop.wait(_PROBE_TICK):
            with self.lock:
                self._apply(self._mux.tick())
