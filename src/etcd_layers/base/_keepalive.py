"""Lease renewal: keep_alive over one stream shared by the client, keep_alive_once on its own."""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

import grpc

from etcd_layers.base import _convert
from etcd_layers.base._connection import serialize
from etcd_layers.base._keepalive_handle import KeepAliveHandle
from etcd_layers.base._methods import LEASE_KEEP_ALIVE_PATH
from etcd_layers.base._proto import rpc_pb2
from etcd_layers.base.deadline import Deadline
from etcd_layers.base.ops import check_int, check_timeout
from etcd_layers.base.responses import LeaseKeepAliveResponse
from etcd_layers.errors import (
    AuthOldRevisionError,
    ClosedError,
    DeadlineExceededError,
    EtcdError,
    InvalidAuthTokenError,
    LeaseNotFoundError,
    UnavailableError,
    from_rpc_error,
)

if TYPE_CHECKING:
    from etcd_layers.base._connection import Connection, Endpoint

logger = logging.getLogger(__name__)

# The sender re-checks its leases at least this often (Go's sendKeepAliveLoop ticks every 500 ms).
_TICK: Final = 0.5
# How long a request may go unanswered before the stream counts as black-holed and is reopened
# on another endpoint: a third of the lease's TTL, within these bounds. Go has no such check (it
# relies on gRPC keep-alive pings, off by default); without it a black-holed stream would let the
# lease expire even though other members are healthy.
_MIN_ANSWER_WAIT: Final = 0.5
_MAX_ANSWER_WAIT: Final = 5.0
_FIRST_ANSWER_WAIT: Final = 1.0  # before the server has told us the lease's TTL
_RETRY_BACKOFF: Final = 0.05
_MAX_RETRY_BACKOFF: Final = 0.5  # Go's retryConnWait
_NEVER: Final = float("inf")


class _Stream:
    """One LeaseKeepAlive call: the requests it is fed and the responses it yields."""

    def __init__(self, endpoint: Endpoint, metadata: tuple[tuple[str, str], ...]) -> None:
        self.endpoint = endpoint
        self.reset_reason: str | None = None  # set when we end it on purpose
        self._requests: queue.SimpleQueue[rpc_pb2.LeaseKeepAliveRequest | None] = (
            queue.SimpleQueue()
        )
        open_stream = endpoint.channel.stream_stream(
            LEASE_KEEP_ALIVE_PATH,
            request_serializer=serialize,
            response_deserializer=rpc_pb2.LeaseKeepAliveResponse.FromString,
        )
        self.call = open_stream(self._feed(), metadata=metadata)

    def _feed(self) -> Iterator[rpc_pb2.LeaseKeepAliveRequest]:
        # Runs in gRPC's request-consumer thread; the None that close() queues ends it.
        while (request := self._requests.get()) is not None:
            yield request

    def send(self, lease_id: int) -> None:
        self._requests.put(rpc_pb2.LeaseKeepAliveRequest(ID=lease_id))

    def close(self, reason: str) -> None:
        if self.reset_reason is None:
            self.reset_reason = reason
        self._requests.put(None)
        self.call.cancel()


@dataclass(slots=True)
class _Lease:
    """The renewal state of one lease, shared by every handle on it."""

    lease_id: int
    handles: list[KeepAliveHandle] = field(default_factory=list)
    ttl: int = 0  # the latest TTL the server returned (0: none yet)
    next_send: float = 0.0  # monotonic time of the next request (_NEVER while one is unanswered)
    expires: float = _NEVER  # when it may have expired: last confirmed request's send time + TTL
    sent: collections.deque[float] = field(default_factory=collections.deque)  # unanswered

    def answer_wait(self) -> float:
        if not self.ttl:
            return _FIRST_ANSWER_WAIT
        return min(max(self.ttl / 3, _MIN_ANSWER_WAIT), _MAX_ANSWER_WAIT)


class Renewer:
    """A client's one LeaseKeepAlive stream (as in Go) and its two threads.

    `etcd_layers.keepalive.send` sends each lease's renewals a third of its TTL apart, ends the
    keep-alives whose lease may have expired, and resets a stream that stopped answering;
    `etcd_layers.keepalive.receive` opens the stream (again, on another endpoint, after a
    failure) and hands every response to the handles of its lease.
    """

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()
        self._leases: dict[int, _Lease] = {}
        self._stream: _Stream | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads = [
            threading.Thread(target=self._run_sender, name="etcd_layers.keepalive.send"),
            threading.Thread(target=self._run_receiver, name="etcd_layers.keepalive.receive"),
        ]
        for thread in self._threads:
            thread.daemon = True  # a client that is never closed must not block exit
            thread.start()

    # --- what handles and the client call ----------------------------------------------

    def add(self, handle: KeepAliveHandle) -> None:
        """Start renewing `handle`'s lease (at once) and deliver its responses to it.

        Raises:
            ClosedError: the client is closed.
        """
        with self._lock:
            if self._stop.is_set():
                raise ClosedError("the client is closed")
            lease = self._leases.setdefault(handle.lease_id, _Lease(handle.lease_id))
            lease.handles.append(handle)
            lease.next_send = 0.0  # the caller waits for an answer to a request sent now
        self._wake.set()

    def remove(self, handle: KeepAliveHandle) -> None:
        """Stop delivering to `handle`; stop renewing its lease when no handle is left."""
        with self._lock:
            lease = self._leases.get(handle.lease_id)
            if lease is None or handle not in lease.handles:
                return
            lease.handles.remove(handle)
            if not lease.handles:
                del self._leases[handle.lease_id]

    def endpoints_changed(self) -> None:
        """Move the stream off an endpoint that is no longer the client's."""
        with self._lock:
            stream = self._stream
        if stream is not None and stream.endpoint.address not in self._conn.addresses:
            stream.close("the endpoints changed")

    def close(self) -> None:
        """End every keep-alive and the stream, and join the threads (idempotent)."""
        self._stop.set()
        self._wake.set()
        with self._lock:
            stream, self._stream = self._stream, None
            leases, self._leases = self._leases, {}
        if stream is not None:
            stream.close("the client is closed")
        for lease in leases.values():
            for handle in lease.handles:
                handle.responses.stop(ClosedError("the client is closed"))
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join()

    # --- the sender ----------------------------------------------------------------------

    def _run_sender(self) -> None:
        try:
            while not self._stop.is_set():
                self._wake.clear()  # before the step, so a wake-up during it is not lost
                self._wake.wait(self._send_due(time.monotonic()))
        except BaseException as err:
            self._crashed(err)
            raise

    def _send_due(self, now: float) -> float:
        """Send due renewals, end lost leases, reset a silent stream; return the next wait."""
        lost: list[_Lease] = []
        stalled = False
        delay = _TICK
        with self._lock:
            stream = self._stream
            for lease in list(self._leases.values()):
                if now >= lease.expires:
                    lost.append(lease)
                    del self._leases[lease.lease_id]
                    continue
                delay = min(delay, lease.expires - now)
                if stream is None:
                    continue
                if lease.sent and now - lease.sent[0] >= lease.answer_wait():
                    stalled = True
                elif now >= lease.next_send:
                    stream.send(lease.lease_id)
                    lease.sent.append(now)
                    lease.next_send = _NEVER  # the answer schedules the next one
                if lease.sent:
                    delay = min(delay, lease.sent[0] + lease.answer_wait() - now)
                delay = min(delay, lease.next_send - now)
            if stalled:  # no more sends or checks on it; the receiver opens the next one
                self._stream = None
        for lease in lost:
            error = f"no renewal of lease {lease.lease_id:x} was confirmed within its TTL"
            for handle in lease.handles:
                handle.responses.fail(LeaseNotFoundError(f"{error} ({lease.ttl}s): it may be gone"))
        if stalled and stream is not None:
            logger.warning("keep-alive stream to %s stopped answering", stream.endpoint.address)
            self._conn.mark_failed(stream.endpoint)
            stream.close("no answer")
        return max(delay, 0.0)

    # --- the receiver --------------------------------------------------------------------

    def _run_receiver(self) -> None:
        try:
            self._receive_forever()
        except BaseException as err:
            self._crashed(err)
            raise

    def _receive_forever(self) -> None:
        backoff = _RETRY_BACKOFF
        while not self._stop.is_set():
            try:
                endpoint = self._conn.pick()
            except ClosedError:
                return
            if endpoint.acquire():  # else set_endpoints removed it since pick(): pick again
                try:
                    if self._run_stream(endpoint):
                        backoff = _RETRY_BACKOFF
                except ClosedError:
                    return
                finally:
                    endpoint.release()
            if self._stop.wait(backoff):
                return
            backoff = min(backoff * 2, _MAX_RETRY_BACKOFF)

    def _run_stream(self, endpoint: Endpoint) -> bool:
        """Open a stream on `endpoint` and read it until it ends; whether it answered at all."""
        try:
            stream = _Stream(endpoint, self._conn.metadata)
        except ValueError:  # gRPC refuses a channel that the client's close() just closed
            self._conn.check_open()
            raise
        if not self._attach(stream):
            return False
        answered = False
        error: EtcdError | None = None
        try:
            for message in stream.call:
                self._deliver(stream, message)
                answered = True
        except grpc.RpcError as err:
            error = from_rpc_error(err)
        finally:
            stream.close("ended")
            self._detach(stream)
        if not self._stop.is_set():
            self._recover(stream, error)
        return answered

    def _attach(self, stream: _Stream) -> bool:
        now = time.monotonic()
        with self._lock:
            if self._stop.is_set():  # close() may have run since pick(): nobody would end it
                stream.close("the client is closed")
                return False
            self._stream = stream
            for lease in self._leases.values():
                if lease.sent:  # unanswered on the old stream: ask again on this one
                    lease.sent.clear()
                    lease.next_send = now
        self._wake.set()
        return True

    def _detach(self, stream: _Stream) -> None:
        with self._lock:
            if self._stream is stream:
                self._stream = None

    def _recover(self, stream: _Stream, error: EtcdError | None) -> None:
        """Get ready to reopen the stream after it ended with `error` (None: ended cleanly).

        Any failure moves the stream to another endpoint, NoLeaderError (require_leader)
        included: Go ends the keep-alives of require-leader contexts then (closeRequireLeader);
        we keep renewing through members that have a leader, and a keep-alive ends only when
        no renewal was confirmed within the lease's TTL.
        """
        if stream.reset_reason not in (None, "ended"):
            logger.info("keep-alive stream to %s reset: %s", stream.endpoint.address, error)
            return  # ended on purpose; the sender already marked a silent endpoint failed
        if isinstance(error, (InvalidAuthTokenError, AuthOldRevisionError)):
            try:
                self._conn.authenticate(self._conn.deadline(self._conn.dial_timeout))
            except EtcdError:
                logger.warning("logging in again for the keep-alive stream failed", exc_info=True)
            return
        logger.info("keep-alive stream to %s failed: %s", stream.endpoint.address, error)
        self._conn.mark_failed(stream.endpoint)

    def _deliver(self, stream: _Stream, message: rpc_pb2.LeaseKeepAliveResponse) -> None:
        now = time.monotonic()
        with self._lock:
            lease = self._leases.get(message.ID)
            if stream is not self._stream or lease is None:
                return
            sent_at = lease.sent.popleft() if lease.sent else now
            handles = list(lease.handles)
            if message.TTL <= 0:  # etcd's answer for a missing or expired lease
                del self._leases[message.ID]
            else:
                lease.ttl = message.TTL
                lease.expires = sent_at + message.TTL  # answers come in order: it only grows
                if not lease.sent:
                    lease.next_send = now + message.TTL / 3  # Go renews at a third of the TTL
        if message.TTL <= 0:
            for handle in handles:
                handle.responses.fail(LeaseNotFoundError(f"lease {message.ID:x} not found"))
            return
        response = LeaseKeepAliveResponse(_convert.header(message.header), message.ID, message.TTL)
        for handle in handles:
            handle.responses.put(response)

    def _crashed(self, err: BaseException) -> None:
        logger.exception("a keep-alive thread failed")
        with self._lock:
            leases, self._leases = self._leases, {}
        for lease in leases.values():
            for handle in lease.handles:
                handle.responses.fail(EtcdError(f"the keep-alive thread failed: {err!r}"))


_RENEWER_LOCK: Final = threading.Lock()  # creates each client's Renewer once


class KeepAliveMixin:
    """The Lease Protocol's keep-alive calls, mixed into Client."""

    _conn: Connection
    _renewer: Renewer | None = None

    def keep_alive(self, lease_id: int, *, timeout: float | None = None) -> KeepAliveHandle:
        """Keep a lease alive in the background (see Lease.keep_alive).

        Returns once the server confirmed the first renewal, which is also the first response
        the handle yields. The handle keeps the latest 16 responses its reader has not taken
        yet: when it is full, the oldest is dropped.

        Raises:
            LeaseNotFoundError: the lease does not exist.
            DeadlineExceededError: no endpoint confirmed the renewal within `timeout`.
            UnavailableError: with no timeout, none did within `dial_timeout`.
        """
        lease_id = check_int(lease_id, "lease_id")
        timeout = check_timeout(timeout)
        self._conn.check_open()
        deadline = self._conn.deadline(timeout)
        renewer = self._keep_alive_renewer()
        handle = KeepAliveHandle(lease_id, renewer.remove)
        renewer.add(handle)
        try:
            confirmed = handle.responses.wait_first(
                deadline.left_or(_NEVER) if deadline.bounded else self._conn.dial_timeout
            )
        except BaseException:
            handle.cancel()
            raise
        if not confirmed:
            handle.cancel()
            if deadline.bounded:
                raise DeadlineExceededError(f"keep-alive of lease {lease_id:x}: deadline exceeded")
            raise UnavailableError(
                f"no endpoint confirmed the keep-alive of lease {lease_id:x} "
                f"within dial_timeout ({self._conn.dial_timeout:g}s)"
            )
        return handle

    def _keep_alive_renewer(self) -> Renewer:
        with _RENEWER_LOCK:
            renewer = self._renewer
            if renewer is None:
                renewer = self._renewer = Renewer(self._conn)
                self._conn.add_close_hook(renewer.close)
                self._conn.add_endpoint_listener(renewer.endpoints_changed)
        if self._conn.closed.is_set():  # closed while we hooked in: its hooks may have run
            renewer.close()
            raise ClosedError("the client is closed")
        return renewer

    def _keep_alive_request(self, lease_id: int, timeout: float | None) -> LeaseKeepAliveResponse:
        """Send one LeaseKeepAlive request on a short-lived stream and return the answer.

        As Go's KeepAliveOnce, on a stream of its own. A renewal is idempotent, so a transport
        failure moves on to another endpoint, until the deadline (with none, for dial_timeout,
        as unary calls do).
        """
        conn = self._conn
        conn.check_open()
        deadline = conn.deadline(timeout)
        started = time.monotonic()
        while True:
            endpoint = conn.pick()
            if not endpoint.acquire():  # set_endpoints removed it since pick(): pick again
                continue
            try:
                return _renew_once(endpoint, lease_id, deadline, conn.metadata)
            except UnavailableError as error:
                if type(error) is not UnavailableError:  # etcd's own, e.g. NoLeaderError
                    raise
                conn.mark_failed(endpoint)
                if not deadline.bounded and time.monotonic() - started > conn.dial_timeout:
                    raise
                if conn.closed.wait(deadline.left_or(_RETRY_BACKOFF)):
                    raise ClosedError("the client is closed") from error
                deadline.remaining()  # raises DeadlineExceededError once the time is spent
            finally:
                endpoint.release()


def _renew_once(
    endpoint: Endpoint, lease_id: int, deadline: Deadline, metadata: tuple[tuple[str, str], ...]
) -> LeaseKeepAliveResponse:
    """Renew a lease once on a stream of its own to `endpoint`.

    Raises:
        EtcdError: as the stream failed (UnavailableError when it ended without an answer).
    """
    open_stream = endpoint.channel.stream_stream(
        LEASE_KEEP_ALIVE_PATH,
        request_serializer=serialize,
        response_deserializer=rpc_pb2.LeaseKeepAliveResponse.FromString,
    )
    request = rpc_pb2.LeaseKeepAliveRequest(ID=lease_id)
    try:
        call = open_stream(iter([request]), timeout=deadline.remaining(), metadata=metadata)
    except ValueError as err:  # gRPC refuses a channel that close() just closed
        raise ClosedError("the client is closed") from err
    try:
        for message in call:
            return LeaseKeepAliveResponse(_convert.header(message.header), message.ID, message.TTL)
    except grpc.RpcError as err:
        raise from_rpc_error(err) from err
    finally:
        call.cancel()
    raise UnavailableError("the keep-alive stream ended without an answer")
