"""Lease renewal for asyncio: keep_alive over one `grpc.aio` stream shared by the AsyncClient.

The asyncio twin of base/_keepalive.py: the pure `Schedule` decides when each lease is renewed,
when one may have expired and when the stream stopped answering; two tasks carry that out on
the client's event loop (`etcd_layers.aio.keepalive.send` and `.receive`, as the sync threads).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import grpc
import grpc.aio

from etcd_layers.base import _convert
from etcd_layers.base._aio_keepalive_handle import AsyncKeepAliveHandle
from etcd_layers.base._endpoint import serialize
from etcd_layers.base._keepalive_schedule import NEVER, KeepAliveStats, Schedule
from etcd_layers.base._methods import LEASE_KEEP_ALIVE_PATH
from etcd_layers.base._proto import rpc_pb2
from etcd_layers.base._stream_report import fail_gone_lease, fail_lost_leases
from etcd_layers.base.checks import check_int, check_timeout
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
    from etcd_layers.base._aio_connection import AsyncConnection, AsyncEndpoint

__all__ = ["AsyncKeepAliveMixin", "AsyncRenewer"]

logger = logging.getLogger("etcd_layers.client")

_Requests = asyncio.Queue[rpc_pb2.LeaseKeepAliveRequest | None]


async def _feed(requests: _Requests) -> AsyncIterator[rpc_pb2.LeaseKeepAliveRequest]:
    while (request := await requests.get()) is not None:
        yield request


class _Stream:
    """One LeaseKeepAlive call: the requests it is fed and the responses it yields."""

    def __init__(self, endpoint: AsyncEndpoint, metadata: tuple[tuple[str, str], ...]) -> None:
        self.endpoint = endpoint
        self.reset_reason: str | None = None  # set when we end it on purpose
        self._requests: _Requests = asyncio.Queue()
        open_stream = endpoint.channel.stream_stream(
            LEASE_KEEP_ALIVE_PATH,
            request_serializer=serialize,
            response_deserializer=rpc_pb2.LeaseKeepAliveResponse.FromString,
        )
        self.call: grpc.aio.StreamStreamCall[
            rpc_pb2.LeaseKeepAliveRequest, rpc_pb2.LeaseKeepAliveResponse
        ] = open_stream(_feed(self._requests), metadata=metadata)  # type: ignore[assignment]

    def send(self, lease_id: int) -> None:
        self._requests.put_nowait(rpc_pb2.LeaseKeepAliveRequest(ID=lease_id))

    def close(self, reason: str) -> None:
        if self.reset_reason is None:
            self.reset_reason = reason
        self._requests.put_nowait(None)
        self.call.cancel()


class AsyncRenewer:
    """An AsyncClient's one LeaseKeepAlive stream (as in Go) and its two tasks.

    The sender sends the renewals the schedule says are due, ends the keep-alives whose lease
    may have expired and resets a stream that stopped answering; the receiver opens the stream
    (again, on another endpoint, after a failure) and hands every response to the handles of
    its lease. Everything runs on one event loop, so the schedule needs no lock.
    """

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn
        self._loop = asyncio.get_running_loop()
        self._schedule: Schedule[AsyncKeepAliveHandle] = Schedule()
        self._stream: _Stream | None = None
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._tasks = [
            self._loop.create_task(self._run_sender(), name="etcd_layers.aio.keepalive.send"),
            self._loop.create_task(self._run_receiver(), name="etcd_layers.aio.keepalive.receive"),
        ]

    def add(self, handle: AsyncKeepAliveHandle) -> None:
        """Start renewing `handle`'s lease (at once) and deliver its responses to it."""
        if self._stop.is_set():
            raise ClosedError("the client is closed")
        self._schedule.add(handle.lease_id, handle)
        self._wake.set()

    def remove(self, handle: AsyncKeepAliveHandle) -> None:
        """Stop delivering to `handle`; stop renewing its lease when no handle is left."""
        self._schedule.remove(handle.lease_id, handle)

    def stats(self) -> KeepAliveStats:
        """Return a snapshot of the keep-alive counters."""
        return self._schedule.stats()

    def endpoints_changed(self) -> None:
        """Move the stream off an endpoint that is no longer the client's."""
        stream = self._stream
        if stream is not None and stream.endpoint.address not in self._conn.addresses:
            stream.close("the endpoints changed")

    async def close(self) -> None:
        """End every keep-alive and the stream, and wait for the tasks (idempotent)."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._wake.set()
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.close("the client is closed")
        for lease in self._schedule.clear():
            for handle in lease.handles:
                handle.responses.stop(ClosedError("the client is closed"))
        tasks = [task for task in self._tasks if task is not asyncio.current_task()]
        for task in tasks:
            task.cancel()  # both only wait (on the stream or the clock): nothing is cut short
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _wait_for(self, event: asyncio.Event, seconds: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(event.wait(), seconds)

    # --- the sender ----------------------------------------------------------------------

    async def _run_sender(self) -> None:
        try:
            while not self._stop.is_set():
                self._wake.clear()  # before the step, so a wake-up during it is not lost
                await self._wait_for(self._wake, self._send_due(self._loop.time()))
        except Exception as err:
            self._crashed(err)
            raise

    def _send_due(self, now: float) -> float:
        """Send due renewals, end lost leases, reset a silent stream; return the next wait."""
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

    async def _run_receiver(self) -> None:
        backoff = Backoff()
        try:
            while not self._stop.is_set():
                try:
                    endpoint = self._conn.pick()
                except ClosedError:
                    return
                if endpoint.acquire():  # else set_endpoints removed it since pick()
                    try:
                        if await self._run_stream(endpoint):
                            backoff.reset()
                    except ClosedError:
                        return
                    finally:
                        if endpoint.release():
                            await endpoint.channel.close()
                await self._wait_for(self._stop, backoff.next())
        except Exception as err:
            self._crashed(err)
            raise

    async def _run_stream(self, endpoint: AsyncEndpoint) -> bool:
        """Open a stream on `endpoint` and read it until it ends; whether it answered at all."""
        try:
            stream = _Stream(endpoint, self._conn.metadata)
        except grpc.aio.UsageError:  # the channel was closed under us
            self._conn.check_open()
            return False
        if self._stop.is_set():
            stream.close("the client is closed")
            return False
        self._stream = stream
        self._schedule.attached(self._loop.time())  # unanswered on the old stream: ask again
        self._wake.set()
        answered = False
        error: EtcdError | None = None
        eof = grpc.aio.EOF
        try:
            while (message := await stream.call.read()) is not eof:
                self._deliver(stream, message)  # type: ignore[arg-type]  # EOF is excluded
                answered = True
        except grpc.RpcError as err:
            error = from_rpc_error(err)
        except asyncio.CancelledError:
            # grpc.aio raises it from read() on a call we canceled (stream.close()).
            if stream.reset_reason is None:
                raise
        finally:
            stream.close("ended")
            if self._stream is stream:
                self._stream = None
        if not self._stop.is_set():
            await self._recover(stream, error)
        return answered

    async def _recover(self, stream: _Stream, error: EtcdError | None) -> None:
        """Get ready to reopen the stream after it ended (see Renewer._recover)."""
        if stream.reset_reason not in (None, "ended"):
            logger.info("keep-alive stream to %s reset: %s", stream.endpoint.address, error)
            return  # ended on purpose; the sender already marked a silent endpoint failed
        if error is not None and is_auth_refusal(error):
            try:
                await self._conn.authenticate(self._conn.deadline(self._conn.dial_timeout))
            except EtcdError:
                logger.warning("logging in again for the keep-alive stream failed", exc_info=True)
            return
        logger.info("keep-alive stream to %s failed: %s", stream.endpoint.address, error)
        self._conn.mark_failed(stream.endpoint)

    def _deliver(self, stream: _Stream, message: rpc_pb2.LeaseKeepAliveResponse) -> None:
        if stream is not self._stream:
            return
        handles, gone = self._schedule.answered(message.ID, message.TTL, self._loop.time())
        if gone:
            fail_gone_lease(message.ID, handles)
            return
        response = LeaseKeepAliveResponse(_convert.header(message.header), message.ID, message.TTL)
        for handle in handles:
            handle.responses.put(response)

    def _crashed(self, err: BaseException) -> None:
        logger.exception("a keep-alive task failed")
        for lease in self._schedule.clear():
            for handle in lease.handles:
                handle.responses.fail(EtcdError(f"the keep-alive task failed: {err!r}"))


class AsyncKeepAliveMixin:
    """The AsyncLease Protocol's keep_alive, mixed into AsyncClient."""

    _renewer: AsyncRenewer | None = None

    if TYPE_CHECKING:

        async def connected(self) -> AsyncConnection: ...  # AsyncClient's

    async def keep_alive(
        self, lease_id: int, *, timeout: float | None = None
    ) -> AsyncKeepAliveHandle:
        """Keep a lease alive in the background (see Client.keep_alive).

        Returns once the server confirmed the first renewal, which is also the first response
        the handle yields.

        Raises:
            LeaseNotFoundError: the lease does not exist.
            DeadlineExceededError: no endpoint confirmed the renewal within `timeout`.
            UnavailableError: with no timeout, none did within `dial_timeout`.
        """
        lease_id = check_int(lease_id, "lease_id")
        timeout = check_timeout(timeout)
        conn = await self.connected()
        conn.check_open()
        deadline = conn.deadline(timeout)
        renewer = self._renewer
        if renewer is None:
            renewer = self._renewer = AsyncRenewer(conn)
            conn.add_close_hook(renewer.close)
            conn.add_endpoint_listener(renewer.endpoints_changed)
        handle = AsyncKeepAliveHandle(lease_id, renewer.remove)
        renewer.add(handle)
        try:
            confirmed = await handle.responses.wait_first(
                deadline.left_or(NEVER) if deadline.bounded else conn.dial_timeout
            )
        except BaseException:  # failed, or the caller was canceled: stop renewing for it
            handle.stop()
            raise
        if not confirmed:
            handle.stop()
            if deadline.bounded:
                raise DeadlineExceededError(f"keep-alive of lease {lease_id:x}: deadline exceeded")
            raise UnavailableError(
                f"no endpoint confirmed the keep-alive of lease {lease_id:x} "
                f"within dial_timeout ({conn.dial_timeout:g}s)"
            )
        return handle

    def keep_alive_stats(self) -> KeepAliveStats:
        """Return a snapshot of the client's keep-alive counters (all zero before the first)."""
        renewer = self._renewer
        return KeepAliveStats() if renewer is None else renewer.stats()
