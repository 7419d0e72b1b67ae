"""The client's connection to a cluster: its endpoints, its auth token, and the retry loop.

`Connection.run` is the one driver of the retry rule (base/retry.py, README "Retries"): unary
calls, calls pinned to one endpoint (maintenance), the snapshot stream and keep-alive requests
all go through it. `call` is its fast path for unary requests: a first attempt that succeeds
costs no more than the gRPC call itself.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

import grpc
from google.protobuf.message import Message

from etcd_layers import telemetry
from etcd_layers.base._balancer import Balancer
from etcd_layers.base._endpoint import (
    DirectAnswer,
    Endpoint,
    TLSConfig,
    call_direct,
    message_of,
    new_channel,
    parse_endpoint,
    serialize,
    wait_any_ready,
)
from etcd_layers.base._login import Login
from etcd_layers.base._methods import SNAPSHOT_PATH, Method
from etcd_layers.base._proto import rpc_pb2
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
    translate_rpc_errors,
)

__all__ = ["Connection", "Endpoint", "TLSConfig", "parse_endpoint", "serialize"]

logger = logging.getLogger("etcd_layers.client")

T = TypeVar("T")
ResponseT = TypeVar("ResponseT")


def _nothing_sent() -> bool:
    return False


@dataclass(slots=True)
class _Failure:
    """A failed attempt: where it went, how it failed, and the token generation it carried."""

    endpoint: Endpoint
    error: EtcdError
    generation: int


class Connection:
    """Channels to a cluster's endpoints, the auth token, and requests under the retry rule."""

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
        interceptors: Sequence[object] = (),
        channel_factory: Callable[[str], grpc.Channel] | None = None,
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
        self._clock = clock
        self.default_timeout = default_timeout
        self.dial_timeout = dial_timeout
        self.max_send_size = max_send_size
        self._lock = threading.Lock()  # serializes changes of the endpoints
        self.closed = threading.Event()
        self._closing = False
        self._balancer: Balancer[Endpoint] = Balancer(
            [Endpoint(a, self._new_channel(a)) for a in endpoints], clock=clock
        )
        self._listeners: list[Callable[[], None]] = []
        self._close_hooks: list[Callable[[], None]] = []

    # --- endpoints -----------------------------------------------------------------------

    @property
    def addresses(self) -> list[str]:
        """The endpoints, as `host:port`, in the order given."""
        return [endpoint.address for endpoint in self._balancer.items]

    @property
    def endpoints(self) -> list[Endpoint]:
        """The current Endpoint objects."""
        return self._balancer.items

    def _new_channel(self, address: str) -> grpc.Channel:
        if self._channel_factory is not None:
            return self._channel_factory(address)
        return new_channel(address, self._tls, self._options, self._interceptors)

    def switch_endpoint(self) -> str:
        """Pin unary calls to the next endpoint (in the order given) and return its address.

        pick() then starts from the pinned endpoint instead of balancing, still skipping one
        that failed just now; `set_endpoints` keeps the pin while its address stays.

        Raises:
            ClosedError: the connection is closed.
        """
        with self._lock:
            return self._balancer.switch().address

    def set_endpoints(self, addresses: list[str]) -> None:
        """Use `addresses` from the next request on; streams are told to move."""
        with self._lock:
            current = {endpoint.address: endpoint for endpoint in self._balancer.items}
            fresh = [
                current.pop(a) if a in current else Endpoint(a, self._new_channel(a))
                for a in addresses
            ]
            self._balancer.replace(fresh)
        for listener in list(self._listeners):
            listener()
        for endpoint in current.values():
            endpoint.retire()

    def add_endpoint_listener(self, listener: Callable[[], None]) -> None:
        """Call `listener` after every change of endpoints (streams move with it)."""
        self._listeners.append(listener)

    def add_close_hook(self, hook: Callable[[], None]) -> None:
        """Call `hook` when the connection closes, before the channels close."""
        self._close_hooks.append(hook)

    def endpoint(self, address: str) -> Endpoint:
        """Return the Endpoint for `address` (one of the client's, or a new channel to it)."""
        for endpoint in self._balancer.items:
            if endpoint.address == address:
                return endpoint
        return Endpoint(address, self._new_channel(address))

    def pick(self) -> Endpoint:
        """Return the next endpoint (round robin, or the pinned one), skipping recent failures."""
        return self._balancer.pick()

    def mark_failed(self, endpoint: Endpoint) -> None:
        """Skip `endpoint` for a while after a transport failure (logged once per outage)."""
        if self._balancer.mark_failed(endpoint) and len(self._balancer.items) > 1:
            logger.info("endpoint %s failed; failing over to the others", endpoint.address)

    def wait_connected(self, timeout: float) -> None:
        """Return once some endpoint has a ready channel (UnavailableError: none in time)."""
        wait_any_ready(self._balancer.items, timeout)

    # --- auth ----------------------------------------------------------------------------

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        """The metadata every call carries (auth token, require-leader flag)."""
        return self._login.metadata

    @property
    def has_credentials(self) -> bool:
        """Whether a user name and password were given."""
        return self._login.has_credentials

    def authenticate(self, deadline: Deadline, seen_generation: int | None = None) -> None:
        """Log in and attach the new token to every later call.

        With `seen_generation`, do nothing if another thread renewed the token since. An
        endpoint that cannot be reached is skipped for the next one, as requests fail over.
        """
        for tried in range(1, len(self._balancer.items) + 1):
            endpoint = self._balancer.pick()
            try:
                self._login.authenticate(endpoint, deadline, seen_generation)
            except UnavailableError:
                self.mark_failed(endpoint)
                if tried >= len(self._balancer.items) or deadline.expired():
                    raise
            else:
                return

    # --- calls ---------------------------------------------------------------------------

    def check_open(self) -> None:
        """Raise ClosedError once the client is closed."""
        if self._closing:  # a plain flag, set with `closed`: read on every call
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
    ) -> ResponseT:
        """Send one unary request under the retry rule and return the reply.

        With telemetry on (etcd_layers.telemetry), the request is a span; see `_call`.
        """
        instruments = telemetry.active
        if instruments is None:
            return self._call(method, request, timeout, idempotent, address)
        return instruments.sync_call(
            method.path,
            message_of(method, request),
            partial(self._call, method, request, timeout, idempotent, address),
        )

    def _call(
        self,
        method: Method[ResponseT],
        request: Message | bytes,
        timeout: float | None,
        idempotent: bool,
        address: str | None,
    ) -> ResponseT:
        """Send one unary request under the retry rule and return the reply.

        Args:
            method: what to call.
            request: the request message.
            timeout: seconds for the whole call, retries included (None: the default).
            idempotent: whether re-sending after an ambiguous failure is harmless.
            address: send to this endpoint only (no failover), e.g. for maintenance calls:
                clientv3 dials it and waits until it connects, so a transport failure is
                retried there, until the deadline (or `dial_timeout` without one).
        """
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
            return self.run(attempt, deadline, idempotent=idempotent, address=address)
        endpoint = self._acquire(None)
        generation = self._login.generation
        try:  # the first attempt, inline: the hot path makes no closure
            return self._invoke(endpoint, method, data, deadline)
        except EtcdError as error:
            first = _Failure(endpoint, error, generation)
        finally:
            endpoint.release()
        attempt = partial(self._invoke, method=method, data=data, deadline=deadline)
        return self._drive(attempt, deadline, idempotent=idempotent, first=first)

    def _invoke(
        self, endpoint: Endpoint, method: Method[ResponseT], data: bytes, deadline: Deadline
    ) -> ResponseT:
        """Make one unary attempt on `endpoint`."""
        instruments = telemetry.active
        if instruments is not None:
            instruments.attempt(endpoint.address)
        try:
            return endpoint.callable(method)(
                data, timeout=deadline.remaining(), metadata=self._login.metadata
            )
        except grpc.RpcError as err:
            raise from_rpc_error(err) from err
        except ValueError as err:  # gRPC refuses a channel that close() just closed
            self.check_open()
            raise UnavailableError(f"endpoint {endpoint.address} was closed") from err

    def run(
        self,
        attempt: Callable[[Endpoint], T],
        deadline: Deadline,
        *,
        idempotent: bool,
        address: str | None = None,
        unary: bool = True,
        sent: Callable[[], bool] = _nothing_sent,
    ) -> T:
        """Run `attempt` on an endpoint under the retry rule until it returns or must fail.

        Args:
            attempt: one try on the endpoint given; it raises EtcdError when it fails.
            deadline: the call's deadline, spent by every attempt and wait.
            idempotent: whether re-sending after an ambiguous failure is harmless.
            address: use this endpoint only (no failover).
            unary: a unary request (etcd's passing refusals of a read are retried elsewhere).
            sent: whether the request has surely reached the server (a stream's answer began).
        """
        self.check_open()
        if address is None:
            return self._drive(attempt, deadline, idempotent=idempotent, unary=unary, sent=sent)
        fixed = self.endpoint(address)
        temporary = fixed not in self._balancer.items  # a channel made for this call only
        try:
            return self._drive(
                attempt, deadline, idempotent=idempotent, unary=unary, sent=sent, fixed=fixed
            )
        finally:
            if temporary:
                fixed.close()

    def _acquire(self, fixed: Endpoint | None) -> Endpoint:
        """Return `fixed` or the next endpoint, counted as running one more call."""
        while True:
            endpoint = fixed or self._balancer.pick()
            if endpoint.acquire():
                return endpoint
            self.check_open()  # else set_endpoints removed it since pick(): pick again
            if fixed is not None:
                raise UnavailableError(f"endpoint {fixed.address} was removed")

    def _drive(
        self,
        attempt: Callable[[Endpoint], T],
        deadline: Deadline,
        *,
        idempotent: bool,
        unary: bool = True,
        sent: Callable[[], bool] = _nothing_sent,
        fixed: Endpoint | None = None,
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
                    return attempt(endpoint)
                except EtcdError as err:
                    failed = _Failure(endpoint, err, generation)
                finally:
                    endpoint.release()
            error = failed.error
            if is_transport_failure(error):
                self.mark_failed(failed.endpoint)
                if self.closed.is_set():
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
                self.authenticate(deadline, generation)
                continue
            started = self._wait_to_retry(error, deadline, backoff, started)

    def _wait_to_retry(
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
        if self.closed.wait(deadline.left_or(backoff.next())):
            raise ClosedError("the client is closed") from error
        if deadline.expired():
            raise DeadlineExceededError(f"deadline exceeded ({error})") from error
        return started

    def snapshot_messages(
        self, endpoint: Endpoint, deadline: Deadline
    ) -> Generator[rpc_pb2.SnapshotResponse, None, None]:
        """Yield the messages of one Snapshot stream from `endpoint`, as they arrive."""
        call = endpoint.channel.unary_stream(
            SNAPSHOT_PATH,
            request_serializer=serialize,
            response_deserializer=rpc_pb2.SnapshotResponse.FromString,
        )
        with translate_rpc_errors():
            stream = call(
                rpc_pb2.SnapshotRequest(),
                timeout=deadline.remaining(),
                metadata=self._login.metadata,
            )
            try:
                yield from stream
            finally:
                stream.cancel()  # ends the server's stream if we stop early; no-op once done

    def close(self) -> None:
        """End every stream and close every channel (idempotent)."""
        if self.closed.is_set():
            return
        self._closing = True
        self.closed.set()
        for hook in list(self._close_hooks):
            try:
                hook()
            except EtcdError:
                logger.exception("closing a stream failed")
        with self._lock:
            endpoints = self._balancer.clear()
        for endpoint in endpoints:
            endpoint.close()
