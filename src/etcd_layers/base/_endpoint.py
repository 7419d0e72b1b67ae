"""One endpoint of a cluster: its address, its gRPC channel and the calls running on it."""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import grpc
from google.protobuf.message import Message

from etcd_layers.base._methods import Method
from etcd_layers.base.deadline import Deadline
from etcd_layers.errors import RequestTooLargeError, UnavailableError, from_rpc_error

ResponseT = TypeVar("ResponseT")

# grpcio >= 1.62 sends a method registered in advance on a faster path (its generated stubs
# ask for it the same way); older grpcio has no such keyword.
_REGISTERED: Final[dict[str, Any]] = (
    {"_registered_method": True}
    if "_registered_method" in inspect.signature(grpc.Channel.unary_unary).parameters
    else {}
)
# A transport's own answer to a unary request: (method path, request) -> response message,
# raising grpc.RpcError when refused. testing.MemoryEtcd's in-process store is one.
DirectAnswer = Callable[[str, Message], object]


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


def new_channel(
    address: str,
    tls: TLSConfig | None,
    options: list[tuple[str, object]],
    interceptors: Sequence[object] = (),
) -> grpc.Channel:
    """Open a channel to `address`, secure when `tls` is given, through `interceptors`."""
    if tls is None:
        channel = grpc.insecure_channel(address, options=options)
    else:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=tls.ca_cert, private_key=tls.key, certificate_chain=tls.cert
        )
        if tls.server_name:
            options = [*options, ("grpc.ssl_target_name_override", tls.server_name)]
        channel = grpc.secure_channel(address, credentials, options=options)
    if interceptors:
        # Every call and stream the client makes goes through channel.unary_unary & co.
        return grpc.intercept_channel(channel, *interceptors)  # type: ignore[arg-type]
    return channel


class Endpoint:
    """One endpoint: its channel, its cached multi-callables and the calls running on it.

    An endpoint removed by `set_endpoints` is retired: it takes no new call, and its channel
    closes once the calls still running on it have ended (closing it at once would cancel
    them, and a write canceled mid-flight could not be re-sent).
    """

    __slots__ = ("_callables", "_running", "address", "channel", "retired")

    def __init__(self, address: str, channel: grpc.Channel) -> None:
        self.address = address
        self.channel = channel
        self.retired = False
        # One item per running call. Every call adds and removes one, so the count is kept
        # without a lock: list.append and list.pop are atomic. acquire() adds before it reads
        # `retired` and retire() sets `retired` before it reads the count, so of a call and a
        # retirement racing, at least one sees the other: no call runs on a closed channel.
        self._running: list[None] = []
        self._callables: dict[str, grpc.UnaryUnaryMultiCallable[bytes, object]] = {}

    def acquire(self) -> bool:
        """Count one more call on this endpoint; False (and no count) once it is retired."""
        self._running.append(None)
        if self.retired:
            self.release()
            return False
        return True

    def release(self) -> None:
        """End a call counted by acquire(); the last one closes a retired endpoint's channel."""
        running = self._running
        running.pop()
        if self.retired and not running:
            self.channel.close()  # idempotent: a racing retire() may close it too

    def retire(self) -> None:
        """Take no new call, and close the channel once the running ones have ended."""
        self.retired = True
        if not self._running:
            self.channel.close()

    def close(self) -> None:
        """Take no new call and close the channel now, canceling the running ones."""
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
                **_REGISTERED,
            )
            self._callables[method.path] = found
        return found  # type: ignore[return-value]  # keyed by path, whose parser fixes ResponseT


def wait_any_ready(endpoints: Sequence[Endpoint], timeout: float) -> None:
    """Return once some endpoint has a ready channel.

    Raises:
        UnavailableError: none did within `timeout`.
    """
    ready = threading.Event()
    futures = [grpc.channel_ready_future(e.channel) for e in endpoints]
    for future in futures:
        future.add_done_callback(lambda _future: ready.set())
    connected = ready.wait(timeout)
    for future in futures:
        future.cancel()
    if not connected or not any(f.done() and not f.cancelled() for f in futures):
        addresses = [endpoint.address for endpoint in endpoints]
        raise UnavailableError(f"no endpoint of {addresses} answered within {timeout:g}s")


def call_direct(
    direct: DirectAnswer,
    method: Method[ResponseT],
    request: Message,
    max_send_size: int,
    deadline: Deadline,
) -> ResponseT:
    """Answer a unary request through a transport's direct path: no serialization, no retry.

    The request size check, the deadline and the error mapping are the gRPC path's, in its
    order: a deadline already spent fails before anything is applied, and an answer ready only
    after the deadline fails as gRPC's would (a write may then have been applied, as there).
    """
    size = request.ByteSize()
    if size > max_send_size:
        raise RequestTooLargeError(
            f"request of {size} bytes exceeds max_call_send_msg_size ({max_send_size})"
        )
    deadline.remaining()  # raises DeadlineExceededError as a gRPC attempt would, before sending
    try:
        answer = direct(method.path, request)
    except grpc.RpcError as err:
        raise from_rpc_error(err) from err
    deadline.remaining()
    return answer  # type: ignore[return-value]  # typed by the path


def message_of(method: Method[Any], request: Message | bytes) -> Message:
    """Return `request` as a message: one serialized already (base._wire) is read back."""
    if not isinstance(request, bytes):
        return request
    if method.parse_request is None:
        raise TypeError(f"{method.path} takes a message, not serialized bytes")
    message: Message = method.parse_request(request)
    return message
