"""The asyncio watch shell: one `grpc.aio` stream and one reader task around the watch multiplexer.

The asyncio twin of base/_watch.py (read its docstring: shared stream, back-pressure, liveness
probe, recovery). Every decision is the pure `WatchMux`'s, and what follows a stream's end is
`after_stream`'s; this shell only moves messages and time around them, on the event loop. It
runs two tasks, started with the first watch: `etcd_layers.aio.watch.stream` opens the stream,
reads it and applies the multiplexer's actions, and `etcd_layers.aio.watch.probe` ticks the
liveness probe on the loop's clock. Requests go to gRPC through an asyncio queue that an async
generator feeds to the call, so applying an action never awaits.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Final, cast

import grpc
import grpc.aio

from etcd_layers import telemetry
from etcd_layers.base._aio_watch_handle import AsyncClientWatch
from etcd_layers.base._endpoint import serialize
from etcd_layers.base._methods import WATCH_PATH
from etcd_layers.base._proto import rpc_pb2
from etcd_layers.base._stream_report import watch_stream_ended
from etcd_layers.base._watch_recovery import (
    BACKOFF,
    CLOSED,
    MAX_BACKOFF,
    MOVED,
    After,
    after_stream,
    next_backoff,
    unconfirmed,
)
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
    from etcd_layers.base._aio_connection import AsyncConnection, AsyncEndpoint

__all__ = ["AsyncWatchStream"]

logger = logging.getLogger("etcd_layers.client")

_PROBE_TICK: Final = 0.25
_JOIN_TIMEOUT: Final = 10.0
# As base/_watch.py: the failures a new stream may cure.
_RETRIED_CODES: Final = (
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.CANCELLED,
)

_Requests = asyncio.Queue[rpc_pb2.WatchRequest | None]


async def _feed(requests: _Requests) -> AsyncIterator[rpc_pb2.WatchRequest]:
    """Feed one stream's requests to gRPC (which reads them in a task of its own)."""
    while (request := await requests.get()) is not None:
        yield request


class _Session:
    """One Watch stream on one endpoint: its call and the requests waiting to go."""

    __slots__ = ("aborted", "call", "endpoint", "requests")

    def __init__(self, endpoint: AsyncEndpoint, requests: _Requests, call: object) -> None:
        self.endpoint = endpoint
        self.requests = requests
        self.call: grpc.aio.StreamStreamCall[rpc_pb2.WatchRequest, rpc_pb2.WatchResponse] = call  # type: ignore[assignment]  # grpc.aio's multi-callable returns it untyped
        self.aborted = False

    def abort(self) -> None:
        """End the stream on purpose (a read in progress raises CancelledError)."""
        self.aborted = True
        self.requests.put_nowait(None)
        self.call.cancel()


class AsyncWatchStream:
    """The watches of one AsyncClient, their shared stream and the two tasks serving it.

    Everything runs on the client's event loop, so the multiplexer needs no lock.
    """

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn
        self._mux: WatchMux[AsyncClientWatch] = WatchMux(
            clock=asyncio.get_running_loop().time, reauthenticates=conn.has_credentials
        )
        self._wake = asyncio.Event()  # the stream task waits for watches
        self._stop = asyncio.Event()
        self._session: _Session | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.default_timeout = conn.default_timeout
        conn.add_close_hook(self.close)
        conn.add_endpoint_listener(self._endpoints_changed)

    # --- called by the client and the watches --------------------------------------------

    def stats(self) -> WatchStats:
        """Return a snapshot of the stream's counters."""
        return self._mux.stats()

    async def add(
        self,
        create: rpc_pb2.WatchCreateRequest,
        *,
        created_notify: bool,
        progress_notify: bool,
        timeout: float | None,
    ) -> AsyncClientWatch:
        """Start a watch and return it once the server has confirmed it."""
        conn = self._conn
        conn.check_open()
        if self._stop.is_set():
            raise ClosedError("the client is closed")
        deadline = conn.deadline(timeout)
        # With no deadline, wait for a stream as a request waits for a connection.
        wait = deadline if deadline.bounded else Deadline(conn.dial_timeout)
        watch = AsyncClientWatch(
            self, create, created_notify=created_notify, progress_notify=progress_notify
        )
        self._start_tasks()
        self._apply(self._mux.add(watch._entry))
        self._wake.set()
        try:
            await asyncio.wait_for(watch._settled.wait(), wait.left_or(_JOIN_TIMEOUT))
        except asyncio.TimeoutError:
            pass
        except BaseException:  # the caller was canceled: withdraw the watch
            self.cancel(watch)
            raise
        if watch._confirmed:
            return watch
        if watch._ended:
            raise watch._failure or ClosedError("the client is closed")
        self.cancel(watch)  # an answer in flight is canceled
        raise unconfirmed(
            bounded=deadline.bounded,
            timeout=timeout,
            default_timeout=conn.default_timeout,
            dial_timeout=conn.dial_timeout,
            addresses=conn.addresses,
        )

    def cancel(self, watch: AsyncClientWatch) -> None:
        """End `watch` and drop what it still holds."""
        actions = self._mux.cancel(watch._entry)
        if actions:  # not ended before: drop what it holds, then queue its end
            watch._drop()
            self._apply(actions)

    def consumed(self, entry: WatchEntry[AsyncClientWatch], events: int) -> None:
        """Count what the consumer read; a paused watch that caught up is created again."""
        actions = self._mux.consumed(entry, events)
        if actions:
            self._apply(actions)

    def request_progress(self) -> None:
        """Ask for a progress notification on every watch."""
        self._conn.check_open()
        self._apply(self._mux.request_progress())

    async def close(self) -> None:
        """End every watch and stop the tasks (idempotent)."""
        if self._stop.is_set():
            return
        self._stop.set()
        actions = self._mux.close()
        for action in actions:
            if isinstance(action, End):
                action.watch._drop()  # before its end is queued
        self._apply(actions)
        self._apply(self._mux.abort(CLOSED))
        self._wake.set()
        tasks = [task for task in self._tasks if task is not asyncio.current_task()]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=_JOIN_TIMEOUT)
            for task in late:
                task.cancel()

    # --- applying the multiplexer's actions ------------------------------------------------

    def _apply(self, actions: list[Action[AsyncClientWatch]]) -> None:
        """Carry out the multiplexer's actions (none awaits)."""
        session = self._session
        for action in actions:
            if isinstance(action, Deliver):
                action.watch._put(action.response)
            elif isinstance(action, Send):
                if session is not None:
                    session.requests.put_nowait(action.request)
            elif isinstance(action, Confirm):
                action.watch._confirmed = True
                action.watch._settled.set()
            elif isinstance(action, End):
                action.watch._end(action.error)
            elif session is not None:  # Abort
                session.abort()

    def _start_tasks(self) -> None:
        if self._tasks:
            return
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._run(), name="etcd_layers.aio.watch.stream"),
            loop.create_task(self._probe(), name="etcd_layers.aio.watch.probe"),
        ]

    def _endpoints_changed(self) -> None:
        endpoint = self._mux.endpoint
        if endpoint is not None and endpoint not in set(self._conn.addresses):
            self._apply(self._mux.abort(MOVED))

    async def _stopped_within(self, seconds: float) -> bool:
        """Wait up to `seconds`; return whether the stream was closed meanwhile."""
        try:
            await asyncio.wait_for(self._stop.wait(), seconds)
        except asyncio.TimeoutError:
            return False
        return True

    # --- the stream task -------------------------------------------------------------------

    async def _run(self) -> None:
        backoff = BACKOFF
        while not self._stop.is_set():
            try:
                backoff = await self._run_once(backoff)
            except Exception as err:  # a bug: hand it to every watch rather than die silently
                logger.exception("the watch stream failed")
                self._apply(self._mux.fail_all(EtcdError(f"the watch stream failed: {err!r}")))
                backoff = MAX_BACKOFF
            if backoff and await self._stopped_within(backoff):
                return

    async def _run_once(self, backoff: float) -> float:
        """Serve one stream until it ends; return how long to wait before the next one."""
        while not self._mux.watching and not self._stop.is_set():
            self._wake.clear()
            await self._wake.wait()
        if self._stop.is_set():
            return 0.0
        try:
            endpoint = self._conn.pick()
        except ClosedError:
            return 0.0
        if not endpoint.acquire():
            return 0.0  # set_endpoints removed it since pick(): pick again
        try:
            return await self._stream_on(endpoint, backoff)
        finally:
            if endpoint.release():  # the last call of a removed endpoint closes its channel
                await endpoint.channel.close()

    async def _stream_on(self, endpoint: AsyncEndpoint, backoff: float) -> float:
        requests: _Requests = asyncio.Queue()
        try:
            call = endpoint.channel.stream_stream(
                WATCH_PATH,
                request_serializer=serialize,
                response_deserializer=rpc_pb2.WatchResponse.FromString,
            )(_feed(requests), metadata=self._conn.metadata)
        except grpc.aio.UsageError:  # the channel was closed under us
            return BACKOFF
        session = _Session(endpoint, requests, call)
        if self._stop.is_set():
            session.abort()
            return 0.0
        self._session = session
        self._apply(self._mux.open_stream(endpoint.address))
        failure = await self._serve(session)
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
            return await self._reauthenticate(endpoint, backoff)
        if after is After.FAILOVER:
            self._conn.mark_failed(endpoint)
        elif error is not None:  # After.FAIL
            self._apply(self._mux.fail_all(error))
        return next_backoff(backoff)

    async def _reauthenticate(self, endpoint: AsyncEndpoint, backoff: float) -> float:
        try:
            await self._conn.authenticate(Deadline(self._conn.dial_timeout))
        except UnavailableError:
            self._conn.mark_failed(endpoint)
            return next_backoff(backoff)
        except EtcdError as error:
            self._apply(self._mux.fail_all(error))
        return 0.0

    async def _serve(self, session: _Session) -> grpc.RpcError | None:
        """Read the stream until it ends; return its error (None when it ended cleanly)."""
        call = session.call
        mux, apply = self._mux, self._apply
        eof = grpc.aio.EOF
        instruments = telemetry.active
        try:
            while (message := await call.read()) is not eof:
                response = cast(rpc_pb2.WatchResponse, message)  # EOF is excluded
                if instruments is not None and response.events:
                    instruments.watch_response(
                        response.header.revision, response.events[-1].kv.mod_revision
                    )
                actions = mux.on_message(response)
                if len(actions) == 1 and type(first := actions[0]) is Deliver:
                    watch = first.watch  # the usual case, inline
                    watch._items.append(first.response)
                    watch._ready.set()
                elif actions:
                    apply(actions)
        except grpc.RpcError as err:
            return err
        except asyncio.CancelledError:
            # grpc.aio raises CancelledError from read() on a call canceled locally; only
            # abort() does that, and then the multiplexer knows why the stream ended. (close()
            # cancels this task only after aborting, so it ends all the same.)
            if not session.aborted:
                raise
        finally:
            session.requests.put_nowait(None)
            call.cancel()
        return None

    # --- the probe task --------------------------------------------------------------------

    async def _probe(self) -> None:
        while not await self._stopped_within(_PROBE_TICK):
            self._apply(self._mux.tick())
