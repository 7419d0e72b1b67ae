"""The asyncio client's connection to a cluster: its endpoints, its auth token, and the retry loop.

The `grpc.aio` twin of base._connection.Connection, over the same pure cores: the retry rule
(base/retry.py: `decide`, `Backoff`, `failure`), the endpoint choice (base/_balancer.py) and the
login steps (base/_login.py). Everything runs on one event loop: no thread, no blocking call.
Cancelling the task awaiting `call` or `run` cancels the RPC and leaves the connection usable.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, NoReturn, TypeVar

import grpc
import grpc.aio
from google.protobuf.message import Message

from etcd_layers import telemetry
from etcd_layers.base._aio_endpoint import AsyncEndpoint, new_async_channel, wait_any_ready
from etcd_layers.base._balancer import Balancer
from etcd_layers.base._endpoint import DirectAnswer, TLSConfig, call_direct, message_of
from etcd_layers.base._login import Login
from etcd_layers.base._methods import AUTHENTICATE, Method
from etcd_layers.base.deadline import UNBOUNDED, Deadline
from etcd_layers.base.retry import (
    Backoff,
    Retry,
    is_transport_failure,
    next_action,
    retrying_since,
)
from etcd_layers.errors import (
    ClosedError,
    DeadlineExceededError,
    EtcdError,
    RequestTooLargeError,
    UnavailableError,
    from_rpc_error,
)

__all__ = ["AsyncConnection", "AsyncEndpoint"]

logger = logging.getLogger("etcd_layers.client")

T = TypeVar("T")
ResponseT = TypeVar("ResponseT")


def _nothing_sent() -> bool:
    return False


@dataclass(slots=True)
class _Failure:
    """A failed attempt: where it went, how it failed, and the token generation it carried."""

    endpoint: AsyncEndpoint
    error: EtcdError
    generation: int


class AsyncConnection:
    """`grpc.aio` channels to the endpoints, the auth token, and requests under the retry rule.

    Build it on the event loop that will use it (its channels belong to that loop); building
    does no I/O. `await wait_connected(...)` and `await authenticate(...)` connect eagerly.
    """

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        tls: TLSConfig | None,
        options: list[tuple[str, object]],
        username: str | None,
        password: str | None,
        require_leader: bool,
        default_timeout: float | None,
        dial_timeout: float,
        max_send_size: int,
        clock: Callable[[], float] = time.monotonic,
        interceptors: Sequence[grpc.aio.ClientInterceptor] = (),
        channel_factory: Callable[[str], grpc.aio.Channel] | None = None,
        direct: DirectAnswer | None = None,
    ) -> None:
        self._tls = tls
        # The seam for another transport (testing.MemoryEtcd's in-process channels): given,
        # it makes every endpoint's channel instead of gRPC.
        self._channel_factory = channel_factory
        # With it, the transport answers unary requests itself (an in-process store has no
        # connection to fail: no serialization, no retry loop); maintenance calls pinned to
        # an address and the streams still go through the channels.
        self._direct = direct
        self._options = options
        self._interceptors = interceptors
        self._require_leader = require_leader
        self._login = Login(username, password, require_leader=require_leader)
        self._login_lock = asyncio.Lock()  # concurrent refusals of one token log in once
        self._clock = clock
        self.default_timeout = default_timeout
        self.dial_timeout = dial_timeout
        self.max_send_size = max_send_size
        self._closed = asyncio.Event()
        self._closing = False
        self._balancer: Balancer[AsyncEndpoint] = Balancer(
            [AsyncEndpoint(a, self._new_channel(a)) for a in endpoints], clock=clock
        )
        self._listeners: list[Callable[[], None]] = []
        self._close_hooks: list[Callable[[], Awaitable[None]]] = []

    # --- endpoints -----------------------------------------------------------------------

    @property
    def addresses(self) -> list[str]:
        """The endpoints, as `host:port`, in the order given."""
        return [endpoint.address for endpoint in self._balancer.items]

    @property
    def endpoints(self) -> list[AsyncEndpoint]:
        """The current AsyncEndpoint objects."""
        return self._balancer.items

    def _new_channel(self, address: str) -> grpc.aio.Channel:
        if self._channel_factory is not None:
            return self._channel_factory(address)
        return new_async_channel(address, self._tls, self._options, self._interceptors)

    def switch_endpoint(self) -> str:
        """Pin unary calls to the next endpoint (in the order given) and return its address.

        Raises:
            ClosedError: the connection is closed.
        """
        return self._balancer.switch().address

    async def set_endpoints(self, addresses: list[str]) -> None:
        """Use `addresses` from the next request on; streams are told to move."""
        current = {endpoint.address: endpoint for endpoint in self._balancer.items}
        fresh = [
            current.pop(a) if a in current else AsyncEndpoint(a, self._new_channel(a))
            for a in addresses
        ]
        self._balancer.replace(fresh)
        for listener in list(self._listeners):
            listener()
        for endpoint in current.values():
            if endpoint.retire():  # else the last call running on it closes it
                await endpoint.channel.close()

    def add_endpoint_listener(self, listener: Callable[[], None]) -> None:
        """Call `listener` after every change of endpoints (streams move with it)."""
        self._listeners.append(listener)

    def add_close_hook(self, hook: Callable[[], Awaitable[None]]) -> None:
        """Await `hook()` when the connection closes, before the channels close."""
        self._close_hooks.append(hook)

    def endpoint(self, address: str) -> AsyncEndpoint:
        """Return the AsyncEndpoint for `address` (one of the client's, or a new channel to it)."""
        for endpoint in self._balancer.items:
            if endpoint.address == address:
                return endpoint
        return AsyncEndpoint(address, self._new_channel(address))

    def pick(self) -> AsyncEndpoint:
        """Return the next endpoint (round robin, or the pinned one), skipping recent failures."""
        return self._balancer.pick()

    def mark_failed(self, endpoint: AsyncEndpoint) -> None:
        """Skip `endpoint` for a while after a transport failure (logged once per outage)."""
        if self._balancer.mark_failed(endpoint) and len(self._balancer.items) > 1:
            logger.info("endpoint %s failed; failing over to the others", endpoint.address)

    async def wait_connected(self, timeout: float) -> None:
        """Return once some endpoint has a ready channel (UnavailableError: none in time)."""
        await wait_any_ready(self._balancer.items, timeout)

    # --- auth ----------------------------------------------------------------------------

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        """The metadata every call carries (auth token, require-leader flag)."""
        return self._login.metadata

    @property
    def has_credentials(self) -> bool:
        """Whether a user name and password were given."""
        return self._login.has_credentials

    async def authenticate(self, deadline: Deadline, seen_generation: int | None = None) -> None:
        """Log in and attach the new token to every later call.

        With `seen_generation`, do nothing if another task renewed the token since.
        """
        login = self._login
        if not login.has_credentials:
            return
        async with self._login_lock:
            if login.outdated(seen_generation):
                return
            count = len(self._balancer.items)
            for tried in range(1, count + 1):  # an unreachable endpoint: the next one
                endpoint = self._balancer.pick()
                try:
                    response = await endpoint.callable(AUTHENTICATE)(
                        login.request(), timeout=deadline.remaining()
                    )
                except grpc.RpcError as err:
                    error = from_rpc_error(err)
                    if not isinstance(error, UnavailableError) or tried >= count:
                        login.refused(error, err)
                        return  # a cluster without auth: no token needed
                    self.mark_failed(endpoint)
                    if deadline.expired():
                        raise error from err
                else:
                    login.accept(response.token)
                    return

    # --- calls ---------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """Whether close() was called."""
        return self._closed.is_set()

    def check_open(self) -> None:
        """Raise ClosedError once the client is closed."""
        if self._closing:  # a plain flag, set with `_closed`: read on every call
            raise ClosedError("the client is closed")

    def deadline(self, timeout: float | None) -> Deadline:
        """Return the deadline for a call with `timeout` (None: the client's default)."""
        if timeout is None:
            timeout = self.default_timeout
            if timeout is None:
                return UNBOUNDED
        return Deadline(timeout)

    def call(
        self,
        method: Method[ResponseT],
        request: Message | bytes,
        timeout: float | None,
        *,
        idempotent: bool,
        address: str | None = None,
    ) -> Coroutine[Any, Any, ResponseT]:
        """Send one unary request under the retry rule and return the reply.

        The arguments are Connection.call's: `timeout` covers the whole call, retries
        included; `address` sends to that endpoint only (no failover). With telemetry on
        (etcd_layers.telemetry), the request is a span.
        """
        # A plain function returning the coroutine to await: one coroutine frame less per call.
        instruments = telemetry.active
        if instruments is None:
            return self._call(method, request, timeout, idempotent, address)
        return instruments.async_call(
            method.path,
            message_of(method, request),
            partial(self._call, method, request, timeout, idempotent, address),
        )

    async def _call(
        self,
        method: Method[ResponseT],
        request: Message | bytes,
        timeout: float | None,
        idempotent: bool,
        address: str | None,
    ) -> ResponseT:
        """Connection.call's body: the request under the retry rule, without telemetry."""
        self.check_open()
        if self._direct is not None and address is None:
            return call_direct(
                self._direct,
                method,
                message_of(method, request),
                self.max_send_size,
                self.deadline(timeout),
            )
        # Serialized once (if not already): the size check and every attempt use the bytes.
        data = request if isinstance(request, bytes) else request.SerializeToString()
        if len(data) > self.max_send_size:
            raise RequestTooLargeError(
                f"request of {len(data)} bytes exceeds max_call_send_msg_size "
                f"({self.max_send_size})"
            )
        deadline = self.deadline(timeout)
        if address is not None:
            attempt = partial(self._invoke, method=method, data=data, deadline=deadline)
            return await self.run(attempt, deadline, idempotent=idempotent, address=address)
        endpoint = self._acquire(None)
        generation = self._login.generation
        if (instruments := telemetry.active) is not None:
            instruments.attempt(endpoint.address)
        try:  # the first attempt, inline: the hot path makes no closure and no coroutine
            try:
                return await endpoint.callable(method)(
                    data, timeout=deadline.remaining(), metadata=self._login.metadata
                )
            except (grpc.RpcError, grpc.aio.UsageError) as err:
                self._attempt_failed(endpoint, err)
        except EtcdError as error:
            first = _Failure(endpoint, error, generation)
        finally:
            if endpoint.release():
                await endpoint.channel.close()
        attempt = partial(self._invoke, method=method, data=data, deadline=deadline)
        return await self._drive(attempt, deadline, idempotent=idempotent, first=first)

    async def _invoke(
        self, endpoint: AsyncEndpoint, method: Method[ResponseT], data: bytes, deadline: Deadline
    ) -> ResponseT:
        """Make one unary attempt on `endpoint`."""
        instruments = telemetry.active
        if instruments is not None:
            instruments.attempt(endpoint.address)
        try:
            return await endpoint.callable(method)(
                data, timeout=deadline.remaining(), metadata=self._login.metadata
            )
        except (grpc.RpcError, grpc.aio.UsageError) as err:
            self._attempt_failed(endpoint, err)

    def _attempt_failed(self, endpoint: AsyncEndpoint, err: Exception) -> NoReturn:
        """Raise the EtcdError for an attempt on `endpoint` that gRPC failed with `err`."""
        if isinstance(err, grpc.RpcError):
            raise from_rpc_error(err) from err
        self.check_open()  # a grpc.aio.UsageError: the channel was closed under us
        raise UnavailableError(f"endpoint {endpoint.address} was closed") from err

    async def run(
        self,
        attempt: Callable[[AsyncEndpoint], Awaitable[T]],
        deadline: Deadline,
        *,
        idempotent: bool,
        address: str | None = None,
        unary: bool = True,
        sent: Callable[[], bool] = _nothing_sent,
    ) -> T:
        """Await `attempt` on an endpoint under the retry rule until it returns or must fail.

        The arguments are Connection.run's: `attempt(endpoint)` is one try, raising EtcdError
        when it fails; `sent()` says whether the request surely reached the server.
        """
        self.check_open()
        if address is None:
            return await self._drive(
                attempt, deadline, idempotent=idempotent, unary=unary, sent=sent
            )
        fixed = self.endpoint(address)
        temporary = fixed not in self._balancer.items  # a channel made for this call only
        try:
            return await self._drive(
                attempt, deadline, idempotent=idempotent, unary=unary, sent=sent, fixed=fixed
            )
        finally:
            if temporary:
                await fixed.close()

    def _acquire(self, fixed: AsyncEndpoint | None) -> AsyncEndpoint:
        """Return `fixed` or the next endpoint, counted as running one more call."""
        while True:
            endpoint = fixed or self._balancer.pick()
            if endpoint.acquire():
                return endpoint
            self.check_open()  # else set_endpoints removed it since pick(): pick again
            if fixed is not None:
                raise UnavailableError(f"endpoint {fixed.address} was removed")

    async def _drive(
        self,
        attempt: Callable[[AsyncEndpoint], Awaitable[T]],
        deadline: Deadline,
        *,
        idempotent: bool,
        unary: bool = True,
        sent: Callable[[], bool] = _nothing_sent,
        fixed: AsyncEndpoint | None = None,
        first: _Failure | None = None,
    ) -> T:
        """The retry loop: attempt, ask retry.decide(), log in or back off, attempt again."""
        failed = first
        backoff = Backoff()
        started: float | None = None  # when the first attempt failed
        can_login = self.has_credentials
        while True:
            if failed is None:
                endpoint = self._acquire(fixed)
                generation = self._login.generation
                try:
                    return await attempt(endpoint)
                except EtcdError as err:
                    failed = _Failure(endpoint, err, generation)
                finally:
                    if endpoint.release():
                        await endpoint.channel.close()
            error = failed.error
            if is_transport_failure(error):
                self.mark_failed(failed.endpoint)
                if self.closed:
                    raise ClosedError("the client is closed") from error
            action = next_action(  # raises the call's error when it is final
                error,
                left=deadline.left_or(math.inf),
                idempotent=idempotent,
                sent=sent(),
                pinned=fixed is not None,
                unary=unary,
                require_leader=self._require_leader,
                can_login=can_login,
            )
            logger.debug(
                "attempt on %s failed (%s: %s); %s",
                failed.endpoint.address,
                type(error).__name__,
                error,
                "logging in again" if action is Retry.LOGIN else "retrying after a back-off",
            )
            generation, failed = failed.generation, None
            if action is Retry.LOGIN:
                can_login = False
                await self.authenticate(deadline, generation)
                continue
            started = await self._wait_to_retry(error, deadline, backoff, started)

    async def _wait_to_retry(
        self, error: EtcdError, deadline: Deadline, backoff: Backoff, started: float | None
    ) -> float:
        """Wait the back-off before the next attempt; return when the first one failed.

        Raises:
            EtcdError: `error`, once a call without deadline retried for dial_timeout.
            ClosedError: the client closed meanwhile.
            DeadlineExceededError: the wait spent the deadline.
        """
        started = retrying_since(
            error,
            now=self._clock(),
            started=started,
            bounded=deadline.bounded,
            dial_timeout=self.dial_timeout,
        )
        if await self._closed_within(deadline.left_or(backoff.next())):
            raise ClosedError("the client is closed") from error
        if deadline.expired():
            raise DeadlineExceededError(f"deadline exceeded ({error})") from error
        return started

    async def _closed_within(self, seconds: float) -> bool:
        """Wait up to `seconds`; return whether the connection closed meanwhile."""
        if self._closed.is_set():
            return True
        closing = asyncio.ensure_future(self._closed.wait())
        try:
            await asyncio.wait([closing], timeout=seconds)
        finally:
            closing.cancel()
        return self._closed.is_set()

    async def close(self) -> None:
        """End every stream and close every channel (idempotent)."""
        if self._closed.is_set():
            return
        self._closing = True
        self._closed.set()
        for hook in list(self._close_hooks):
            try:
                await hook()
            except EtcdError:
                logger.exception("closing a stream failed")
        for endpoint in self._balancer.clear():
            await endpoint.close()
