"""Lease renewal: keep_alive over one stream shared by the client, keep_alive_once on its own."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Final

import grpc

from etcd_layers.base import _convert
from etcd_layers.base._endpoint import serialize
from etcd_layers.base._keepalive_handle import KeepAliveHandle
from etcd_layers.base._keepalive_schedule import NEVER, KeepAliveStats, Schedule
from etcd_layers.base._methods import LEASE_KEEP_ALIVE_PATH
from etcd_layers.base._proto import rpc_pb2
from etcd_layers.base._stream_report import fail_gone_lease, fail_lost_leases
from etcd_layers.base.checks import check_int, check_timeout
from etcd_layers.base.deadline import Deadline
from etcd_layers.base.responses import LeaseKeepAliveResponse
from etcd_layers.base.retry import Backoff, is_auth_refusal
from etcd_layers.errors import (
    ClosedError,
    DeadlineExceededError,
    EtcdError,
    UnavailableError,
    from_rpc_error,
)

if TYPE_CHECKING:
    from etcd_layers.base._connection import Connection, Endpoint

logger = logging.getLogger("etcd_layers.client")


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


class Renewer:
    """A client's one LeaseKeepAlive stream (as in Go) and its two threads.

    `etcd_layers.keepalive.send` sends the renewals the schedule says are due, ends the
    keep-alives whose lease may have expired, and resets a stream that stopped answering;
    `etcd_layers.keepalive.receive` opens the stream (again, on another endpoint, after a
    failure) and hands every response to the handles of its lease.
    """

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()  # guards the schedule and the stream
        self._schedule: Schedule[KeepAliveHandle] = Schedule()
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
            self._schedule.add(handle.lease_id, handle)
        self._wake.set()

    def remove(self, handle: KeepAliveHandle) -> None:
        """Stop delivering to `handle`; stop renewing its lease when no handle is left."""
        with self._lock:
            self._schedule.remove(handle.lease_id, handle)

    def stats(self) -> KeepAliveStats:
        """Return a snapshot of the keep-alive counters."""
        with self._lock:
            return self._schedule.stats()

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
            leases = self._schedule.clear()
        if stream is not None:
            stream.close("the client is closed")
        for lease in leases:
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
        with self._lock:
            stream = self._stream
            due = self._schedule.due(now, streaming=stream is not None)
            if stream is not None:
                for lease_id in due.send:
                    stream.send(lease_id)
            if due.stalled:  # no more sends or checks on it; the receiver opens the next one
                self._stream = None
        fail_lost_leases(due.lost)
        if due.stalled and stream is not None:
            logger.warning("keep-alive stream to %s stopped answering", stream.endpoint.address)
            self._conn.mark_failed(stream.endpoint)
            stream.close("no answer")
        return due.wait

    # --- the receiver --------------------------------------------------------------------

    def _run_receiver(self) -> None:
        try:
            self._receive_forever()
        except BaseException as err:
            self._crashed(err)
            raise

    def _receive_forever(self) -> None:
        backoff = Backoff()
        while not self._stop.is_set():
            try:
                endpoint = self._conn.pick()
            except ClosedError:
                return
            if endpoint.acquire():  # else set_endpoints removed it since pick(): pick again
                try:
                    if self._run_stream(endpoint):
                        backoff.reset()
                except ClosedError:
                    return
                finally:
                    endpoint.release()
            if self._stop.wait(backoff.next()):
                return

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
            self._schedule.attached(now)  # unanswered on the old stream: ask again on this one
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
        if error is not None and is_auth_refusal(error):
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
            if stream is not self._stream:
                return
            handles, gone = self._schedule.answered(message.ID, message.TTL, now)
        if gone:
            fail_gone_lease(message.ID, handles)
            return
        response = LeaseKeepAliveResponse(_convert.header(message.header), message.ID, message.TTL)
        for handle in handles:
            handle.responses.put(response)

    def _crashed(self, err: BaseException) -> None:
        logger.exception("a keep-alive thread failed")
        with self._lock:
            leases = self._schedule.clear()
        for lease in leases:
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
                deadline.left_or(NEVER) if deadline.bounded else self._conn.dial_timeout
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

    def keep_alive_stats(self) -> KeepAliveStats:
        """Return a snapshot of the client's keep-alive counters (all zero before the first)."""
        renewer = self._renewer
        return KeepAliveStats() if renewer is None else renewer.stats()

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

        def attempt(endpoint: Endpoint) -> LeaseKeepAliveResponse:
            return _renew_once(endpoint, lease_id, deadline, conn.metadata)

        return conn.run(attempt, deadline, idempotent=True, unary=False)


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
