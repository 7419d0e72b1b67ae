"""The client's connection to a cluster: endpoints, channels, credentials and the retry rule.

The retry rule (documented in README "Retries"): a request is re-sent to another endpoint only
when re-sending cannot apply it twice.

* Reads (range, a txn without writes, lease time-to-live/leases/keep-alive-once, member list,
  status ...) are retried on another endpoint after a transport failure (gRPC UNAVAILABLE that
  did not come from etcd itself), and after etcd refused them for a passing reason (leader
  changed, no leader yet unless require_leader is set, member stopping, read-index timeout),
  until the call's deadline.
* Writes (put, delete, a txn with a write in either branch, compaction, lease grant/revoke,
  membership and auth changes) are re-sent only when the failure proves the request never left
  this process: no connection to the endpoint could be made. Any other failure of a write is
  raised to the caller, who alone knows whether the write is safe to repeat.
* A request refused because the auth token is invalid or outdated is re-sent once after logging
  in again: etcd checks the token before it applies anything.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, TypeVar

import grpc
from google.protobuf.message import Message

from etcd_layers.base._methods import AUTHENTICATE, Method
from etcd_layers.base._proto import rpc_pb2
from etcd_layers.base.deadline import Deadline
from etcd_layers.errors import (
    AuthNotEnabledError,
    AuthOldRevisionError,
    ClosedError,
    DeadlineExceededError,
    EtcdError,
    InvalidAuthTokenError,
    LeaderChangedError,
    NoLeaderError,
    NotLeaderError,
    RequestTimeoutError,
    RequestTooLargeError,
    StoppedError,
    UnavailableError,
    from_rpc_error,
)

logger = logging.getLogger(__name__)

ResponseT = TypeVar("ResponseT")

# How long an endpoint that failed at the transport level is skipped by the balancer.
_FAILED_ENDPOINT_PENALTY: Final = 1.0
_RETRY_BACKOFF: Final = 0.05
# How close to its deadline a call may be when etcd answers "request timed out" for that
# deadline to count as the cause (the server's copy of it expires a moment before ours).
_DEADLINE_SLACK: Final = 0.05
_MAX_RETRY_BACKOFF: Final = 0.5

# How gRPC's status details begin when a call failed before it was given to any connection:
# the load balancer had no connected subchannel to pick (its last connection error follows:
# refused, a TLS handshake failure, no SETTINGS frame before the connect timeout ...), or the
# name did not resolve. Printed from grpcio 1.85 (older wordings kept): "failed to connect to
# all addresses; last error: UNKNOWN: ipv4:127.0.0.1:2379: Failed to connect to remote host:
# Connection refused", "errors resolving no-such-host.invalid:2379: [...]". A failure on a live
# connection reads differently ("Stream removed (Socket closed)") and may follow a request the
# server received, so it never matches: the hints are prefixes, not substrings.
_NEVER_SENT_PREFIXES: Final = (
    "failed to connect to all addresses",
    "errors resolving",
    "dns resolution failed",
    "failed to pick subchannel",
    "empty address list",
)


def serialize(message: Message) -> bytes:
    """Serialize any request message (gRPC's request_serializer)."""
    return message.SerializeToString()


def parse_endpoint(endpoint: object) -> tuple[str, bool]:
    """Return (`host:port`, whether the scheme asked for TLS) for a user's endpoint string.

    Raises:
        TypeError: not a str.
        ValueError: not `host:port` (an http:// or https:// scheme is accepted and stripped).
    """
    if not isinstance(endpoint, str):
        raise TypeError(f"endpoint must be str, not {type(endpoint).__name__}")
    address, secure = endpoint.strip(), False
    for scheme in ("http://", "https://", "unix://"):
        if address.lower().startswith(scheme):
            secure = scheme == "https://"
            address = address[len(scheme) :]
            break
    address = address.rstrip("/")
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"endpoint must be host:port, got {endpoint!r}")
    if any(char in host for char in ", \t"):
        # "a:2379,b:2379" (etcdctl's --endpoints) would otherwise pass as one host name and
        # fail only after dial_timeout, as an UnavailableError naming no cause.
        raise ValueError(
            f"endpoint must be one host:port, got {endpoint!r} (give several as a list)"
        )
    return address, secure


@dataclass(slots=True)
class TLSConfig:
    """Paths and names for TLS connections (any one given means TLS)."""

    ca_cert: bytes | None = None
    cert: bytes | None = None
    key: bytes | None = None
    server_name: str | None = None


class Endpoint:
    """One endpoint: its channel, its cached multi-callables, its health and its calls.

    An endpoint removed by `set_endpoints` is retired: it takes no new call, and its channel
    closes once the calls still running on it have ended (closing it at once would cancel
    them, and a write canceled mid-flight could not be re-sent).
    """

    __slots__ = ("_active", "_callables", "_lock", "address", "channel", "failed_at", "retired")

    def __init__(self, address: str, channel: grpc.Channel) -> None:
        self.address = address
        self.channel = channel
        self.failed_at = 0.0
        self.retired = False
        self._active = 0
        self._lock = threading.Lock()
        self._callables: dict[str, grpc.UnaryUnaryMultiCallable[bytes, object]] = {}

    def acquire(self) -> bool:
        """Count one more call on this endpoint; False (and no count) once it is retired."""
        with self._lock:
            if self.retired:
                return False
            self._active += 1
            return True

    def release(self) -> None:
        """End a call counted by acquire(); the last one closes a retired endpoint's channel."""
        with self._lock:
            self._active -= 1
            close = self.retired and not self._active
        if close:
            self.channel.close()

    def retire(self) -> None:
        """Take no new call, and close the channel once the running ones have ended."""
        with self._lock:
            self.retired = True
            close = not self._active
        if close:
            self.channel.close()

    def close(self) -> None:
        """Take no new call and close the channel now, canceling the running ones."""
        with self._lock:
            self.retired = True
        self.channel.close()

    def callable(self, method: Method[ResponseT]) -> grpc.UnaryUnaryMultiCallable[bytes, ResponseT]:
        """Return the cached multi-callable for `method`, taking a serialized request."""
        found = self._callables.get(method.path)
        if found is None:
            found = self.channel.unary_unary(
                method.path,
                request_serializer=None,  # callers pass serialized bytes: see Connection.call
                response_deserializer=method.parse,
            )
            self._callables[method.path] = found
        return found  # type: ignore[return-value]  # keyed by path, whose parser fixes ResponseT


class Connection:
    """Channels to a cluster's endpoints, the auth token, and unary calls with the retry rule."""

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
    ) -> None:
        self._tls = tls
        self._options = options
        self._username = username
        self._password = password
        self._require_leader = require_leader
        self.default_timeout = default_timeout
        self.dial_timeout = dial_timeout
        self.max_send_size = max_send_size
        self._lock = threading.Lock()
        self._auth_lock = threading.Lock()
        self._token: str | None = None
        self._token_generation = 0
        self._metadata: tuple[tuple[str, str], ...] = ()
        self._rebuild_metadata()
        self.closed = threading.Event()
        self._counter = itertools.count()
        self._endpoints: list[Endpoint] = []
        # Index of the endpoint pick() starts from, set by switch_endpoint(); None: round robin.
        self._pinned: int | None = None
        self._listeners: list[Callable[[], None]] = []
        self._close_hooks: list[Callable[[], None]] = []
        self._replace_endpoints(list(endpoints))

    # --- endpoints -----------------------------------------------------------------------

    @property
    def addresses(self) -> list[str]:
        """The endpoints, as `host:port`, in the order given."""
        return [endpoint.address for endpoint in self._endpoints]

    def _new_channel(self, address: str) -> grpc.Channel:
        if self._tls is not None:
            credentials = grpc.ssl_channel_credentials(
                root_certificates=self._tls.ca_cert,
                private_key=self._tls.key,
                certificate_chain=self._tls.cert,
            )
            options = list(self._options)
            if self._tls.server_name:
                options.append(("grpc.ssl_target_name_override", self._tls.server_name))
            return grpc.secure_channel(address, credentials, options=options)
        return grpc.insecure_channel(address, options=self._options)

    def _replace_endpoints(self, addresses: list[str]) -> list[Endpoint]:
        with self._lock:
            pinned = self._pinned_address()
            current = {endpoint.address: endpoint for endpoint in self._endpoints}
            fresh = [
                current.pop(a) if a in current else Endpoint(a, self._new_channel(a))
                for a in addresses
            ]
            self._endpoints = fresh
            # A pin survives new endpoints that keep its address, and is dropped otherwise.
            self._pinned = addresses.index(pinned) if pinned in addresses else None
        return list(current.values())

    def _pinned_address(self) -> str | None:
        pinned, endpoints = self._pinned, self._endpoints
        if pinned is None or not endpoints:
            return None
        return endpoints[pinned % len(endpoints)].address

    def switch_endpoint(self) -> str:
        """Pin unary calls to the next endpoint (in the order given) and return its address.

        pick() then starts from the pinned endpoint instead of balancing, still skipping one
        that failed just now; `set_endpoints` keeps the pin while its address stays.

        Raises:
            ClosedError: the connection is closed.
        """
        with self._lock:
            count = len(self._endpoints)
            if not count:
                raise ClosedError("the client is closed")
            if self._pinned is None:
                # The balancer's next choice: with one caller, not the endpoint it just used.
                self._pinned = next(self._counter) % count
            else:
                self._pinned = (self._pinned + 1) % count
            return self._endpoints[self._pinned].address

    def set_endpoints(self, addresses: list[str]) -> None:
        """Use `addresses` from the next request on; streams are told to move."""
        removed = self._replace_endpoints(addresses)
        for listener in list(self._listeners):
            listener()
        for endpoint in removed:
            endpoint.retire()

    def add_endpoint_listener(self, listener: Callable[[], None]) -> None:
        """Call `listener` after every change of endpoints (streams move with it)."""
        self._listeners.append(listener)

    def add_close_hook(self, hook: Callable[[], None]) -> None:
        """Call `hook` when the connection closes, before the channels close."""
        self._close_hooks.append(hook)

    def endpoint(self, address: str) -> Endpoint:
        """Return the Endpoint for `address` (one of the client's, or a new channel to it)."""
        for endpoint in self._endpoints:
            if endpoint.address == address:
                return endpoint
        with self._lock:
            return Endpoint(address, self._new_channel(address))

    def pick(self) -> Endpoint:
        """Return the next endpoint (round robin, or the pinned one), skipping recent failures."""
        endpoints = self._endpoints
        count = len(endpoints)
        if not count:
            raise ClosedError("the client is closed")
        pinned = self._pinned
        start = next(self._counter) if pinned is None else pinned
        endpoint = endpoints[start % count]
        if not endpoint.failed_at:  # the hot path: no clock read for an endpoint never failed
            return endpoint
        now = time.monotonic()
        for offset in range(count):
            endpoint = endpoints[(start + offset) % count]
            if now - endpoint.failed_at > _FAILED_ENDPOINT_PENALTY:
                return endpoint
        return min(endpoints, key=lambda endpoint: endpoint.failed_at)

    @property
    def endpoints(self) -> list[Endpoint]:
        """The current Endpoint objects."""
        return list(self._endpoints)

    def mark_failed(self, endpoint: Endpoint) -> None:
        """Skip `endpoint` for a while after a transport failure."""
        endpoint.failed_at = time.monotonic()

    def wait_connected(self, timeout: float) -> None:
        """Return once some endpoint has a ready channel.

        Raises:
            UnavailableError: none did within `timeout`.
        """
        ready = threading.Event()
        futures = [grpc.channel_ready_future(e.channel) for e in self._endpoints]
        for future in futures:
            future.add_done_callback(lambda _future: ready.set())
        connected = ready.wait(timeout)
        for future in futures:
            future.cancel()
        if not connected or not any(f.done() and not f.cancelled() for f in futures):
            raise UnavailableError(f"no endpoint of {self.addresses} answered within {timeout:g}s")

    # --- auth ----------------------------------------------------------------------------

    def _rebuild_metadata(self) -> None:
        metadata: list[tuple[str, str]] = []
        if self._token:
            metadata.append(("token", self._token))
        if self._require_leader:
            metadata.append(("hasleader", "true"))  # etcd's rpctypes.MetadataRequireLeaderKey
        self._metadata = tuple(metadata)

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        """The metadata every call carries (auth token, require-leader flag)."""
        return self._metadata

    @property
    def has_credentials(self) -> bool:
        """Whether a user name and password were given."""
        return self._username is not None

    def authenticate(self, deadline: Deadline, seen_generation: int | None = None) -> None:
        """Log in and attach the new token to every later call.

        With `seen_generation`, do nothing if another thread renewed the token since.
        """
        if self._username is None:
            return
        with self._auth_lock:
            if seen_generation is not None and seen_generation != self._token_generation:
                return
            request = rpc_pb2.AuthenticateRequest(
                name=self._username, password=self._password or ""
            )
            try:
                response = self._call_once(AUTHENTICATE, request, deadline, authenticated=False)
            except AuthNotEnabledError:
                token: str | None = None  # credentials are accepted by a cluster without auth
            else:
                token = response.token
            self._token = token
            self._token_generation += 1
            self._rebuild_metadata()

    # --- calls ---------------------------------------------------------------------------

    def check_open(self) -> None:
        """Raise ClosedError once the client is closed."""
        if self.closed.is_set():
            raise ClosedError("the client is closed")

    def deadline(self, timeout: float | None) -> Deadline:
        """Return the deadline for a call with `timeout` (None: the client's default)."""
        return Deadline(self.default_timeout if timeout is None else timeout)

    def _call_once(
        self,
        method: Method[ResponseT],
        request: Message,
        deadline: Deadline,
        *,
        authenticated: bool = True,
        endpoint: Endpoint | None = None,
    ) -> ResponseT:
        target = endpoint or self.pick()
        try:
            return target.callable(method)(
                request.SerializeToString(),
                timeout=deadline.remaining(),
                metadata=self._metadata if authenticated else None,
            )
        except grpc.RpcError as err:
            raise from_rpc_error(err) from err

    def _acquire(self, fixed: Endpoint | None) -> Endpoint:
        """Return `fixed` or the next endpoint, counted as running one more call."""
        while True:
            endpoint = fixed or self.pick()
            if endpoint.acquire():
                return endpoint
            self.check_open()  # else set_endpoints removed it since pick(): pick again
            if fixed is not None:
                raise UnavailableError(f"endpoint {fixed.address} was removed")

    def _invoke(
        self, endpoint: Endpoint, method: Method[ResponseT], request: bytes, deadline: Deadline
    ) -> ResponseT:
        """Make one attempt on `endpoint` (counted by _acquire, released here)."""
        try:
            return endpoint.callable(method)(
                request, timeout=deadline.remaining(), metadata=self._metadata
            )
        except ValueError as err:  # gRPC refuses a channel that close() just closed
            self.check_open()
            raise UnavailableError(f"endpoint {endpoint.address} was closed") from err
        finally:
            endpoint.release()

    def call(
        self,
        method: Method[ResponseT],
        request: Message,
        timeout: float | None,
        *,
        idempotent: bool,
        address: str | None = None,
    ) -> ResponseT:
        """Send one unary request under the retry rule (module docstring) and return the reply.

        Args:
            method: what to call.
            request: the request message.
            timeout: seconds for the whole call, retries included (None: the default).
            idempotent: whether re-sending after an ambiguous failure is harmless.
            address: send to this endpoint only (no failover), e.g. for maintenance calls.
        """
        self.check_open()
        # Serialized once, here: the size check and every attempt use the same bytes.
        data = request.SerializeToString()
        if len(data) > self.max_send_size:
            raise RequestTooLargeError(
                f"request of {len(data)} bytes exceeds max_call_send_msg_size "
                f"({self.max_send_size})"
            )
        deadline = self.deadline(timeout)
        started: float | None = None  # when the first attempt failed (read only on failure)
        fixed = self.endpoint(address) if address is not None else None
        backoff = _RETRY_BACKOFF
        reauthenticated = False
        while True:
            endpoint = self._acquire(fixed)
            generation = self._token_generation
            try:
                return self._invoke(endpoint, method, data, deadline)
            except grpc.RpcError as err:
                error = from_rpc_error(err)
                cause: BaseException = err
            if (
                isinstance(error, (InvalidAuthTokenError, AuthOldRevisionError))
                and self.has_credentials
                and not reauthenticated
            ):
                reauthenticated = True
                self.authenticate(deadline, generation)
                continue
            self._raise_unless_retryable(
                error, cause, endpoint, fixed=fixed, idempotent=idempotent, deadline=deadline
            )
            if started is None:
                started = time.monotonic()
            elif not deadline.bounded and time.monotonic() - started > self.dial_timeout:
                raise error from cause
            if self.closed.wait(deadline.left_or(backoff)):
                raise ClosedError("the client is closed") from cause
            deadline.remaining()  # raises DeadlineExceededError when the wait spent it
            backoff = min(backoff * 2, _MAX_RETRY_BACKOFF)

    def _raise_unless_retryable(
        self,
        error: EtcdError,
        cause: BaseException,
        endpoint: Endpoint,
        *,
        fixed: Endpoint | None,
        idempotent: bool,
        deadline: Deadline,
    ) -> None:
        """Raise the error a failed attempt ends the call with, or return to try again."""
        if isinstance(error, RequestTimeoutError) and deadline.left_or(1.0) < _DEADLINE_SLACK:
            # etcd reports the call's own deadline, reached while proposing, as "request
            # timed out": that is this call's deadline, as API.md says, whoever saw it first.
            raise DeadlineExceededError(f"deadline exceeded ({error})") from cause
        if isinstance(error, (InvalidAuthTokenError, AuthOldRevisionError)):
            raise error from cause  # refused again after logging in again, or no credentials
        if type(error) is UnavailableError:  # the transport failed, not etcd
            self.mark_failed(endpoint)
            if self.closed.is_set():
                raise ClosedError("the client is closed") from cause
            if fixed is not None or not (idempotent or _never_sent(error)):
                raise error from cause
        elif not (fixed is None and idempotent and self._read_retryable(error)):
            raise error from cause

    def _read_retryable(self, error: EtcdError) -> bool:
        """Whether etcd refused a read for a passing reason another try may not meet.

        Go's client retries reads on any Unavailable status; these are etcd's: a leader change
        or election in progress, a stopping member, or a read-index timeout. With
        require_leader, a member without a leader must fail fast instead.
        """
        if isinstance(error, NoLeaderError):
            return not self._require_leader
        return isinstance(error, _RETRYABLE_READ_ERRORS)

    def close(self) -> None:
        """End every stream and close every channel (idempotent)."""
        if self.closed.is_set():
            return
        self.closed.set()
        for hook in list(self._close_hooks):
            try:
                hook()
            except EtcdError:
                logger.exception("closing a stream failed")
        with self._lock:
            endpoints, self._endpoints = self._endpoints, []
        for endpoint in endpoints:
            endpoint.close()


_RETRYABLE_READ_ERRORS: Final = (
    LeaderChangedError,
    NotLeaderError,
    StoppedError,
    RequestTimeoutError,
)


def _never_sent(error: EtcdError) -> bool:
    return str(error).lower().startswith(_NEVER_SENT_PREFIXES)
