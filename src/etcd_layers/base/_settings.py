"""The checks of Client's and AsyncClient's constructor keywords, into the settings of a connection.

Pure but for reading the certificate files named (small PEM files, read once here so that a bad
path fails before any connection; the asyncio client reads them in its constructor too).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import grpc
import grpc.aio

from etcd_layers.base._endpoint import TLSConfig, parse_endpoint
from etcd_layers.base.checks import check_bool, check_int

__all__ = [
    "DEFAULT_MAX_RECV",
    "DEFAULT_MAX_SEND",
    "Settings",
    "check_interceptors",
    "parse_endpoints",
    "settings",
]

DEFAULT_MAX_SEND: Final = 2 * 1024 * 1024
DEFAULT_MAX_RECV: Final = 2**31 - 1

# What a grpc channel takes as interceptors: grpc.intercept_channel's four kinds for Client, and
# grpc.aio's for AsyncClient (the two families are unrelated classes; neither takes the other).
_SYNC_INTERCEPTORS: Final = (
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
)
_AIO_INTERCEPTORS: Final = (grpc.aio.ClientInterceptor,)


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a connection is built from, checked."""

    addresses: list[str]
    tls: TLSConfig | None
    options: list[tuple[str, object]]
    username: str | None
    password: str | None
    require_leader: bool
    default_timeout: float | None
    dial_timeout: float
    max_send_size: int
    auto_sync_interval: float | None
    interceptors: tuple[object, ...] = ()
    reject_old_cluster: bool = False


def _read_file(path: object, name: str) -> bytes | None:
    if path is None:
        return None
    if not isinstance(path, (str, Path)):
        raise TypeError(f"{name} must be a path (str or Path), not {type(path).__name__}")
    data = Path(path).read_bytes()
    if b"-----BEGIN " not in data:
        # gRPC only reads PEM; given anything else it fails every handshake, which would
        # surface as an UnavailableError after dial_timeout that names no file.
        raise ValueError(f"{name} {str(path)!r} is not a PEM file")
    return data


def _optional_str(value: object, name: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{name} must be str, not {type(value).__name__}")
    return value


def positive_number(value: object, name: str, *, optional: bool) -> float | None:
    """Return seconds > 0 (or None when `optional`).

    Raises:
        TypeError: not a number.
        ValueError: not > 0.
    """
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, not {type(value).__name__}")
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return float(value)


def parse_endpoints(endpoints: object) -> tuple[list[str], bool]:
    """Return the `host:port` addresses and whether a scheme asked for TLS.

    Raises:
        TypeError: not a list of str (or one str listing several, separated by commas).
        ValueError: no endpoint, or one that is not `host:port`.
    """
    if isinstance(endpoints, str):
        # One string may list several endpoints separated by commas, as etcdctl's
        # --endpoints and $ETCDCTL_ENDPOINTS do.
        endpoints = [part for part in endpoints.split(",") if part.strip()]
    if isinstance(endpoints, bytes) or not isinstance(endpoints, Iterable):
        raise TypeError(f"endpoints must be a list of str, not {type(endpoints).__name__}")
    parsed = [parse_endpoint(endpoint) for endpoint in endpoints]
    if not parsed:
        raise ValueError("endpoints must not be empty")
    return [address for address, _ in parsed], any(secure for _, secure in parsed)


def settings(
    endpoints: object,
    dial_timeout: object,
    timeout: object,
    username: object,
    password: object,
    ca_cert: object,
    cert: object,
    key: object,
    server_name: object,
    max_call_send_msg_size: object,
    max_call_recv_msg_size: object,
    require_leader: object,
    auto_sync_interval: object,
    keepalive_time: object,
    keepalive_timeout: object,
    *,
    interceptors: object = None,
    reject_old_cluster: object = False,
    asyncio: bool = False,
) -> Settings:
    """Check the constructor's keywords (see Client) and return the connection's settings.

    `asyncio` says which client asks, for the kind of interceptor it takes.

    Raises:
        TypeError: an argument of the wrong type.
        ValueError: a bad value, such as `cert` without `key`, a certificate file that is not
            PEM, or `username` without `password`.
    """
    addresses, secure = parse_endpoints(endpoints)
    dial = positive_number(dial_timeout, "dial_timeout", optional=False)
    assert dial is not None  # not optional
    default_timeout = positive_number(timeout, "timeout", optional=True)
    user = _optional_str(username, "username")
    secret = _optional_str(password, "password")
    if (user is None) != (secret is None):
        raise ValueError("username and password must be given together")
    name = _optional_str(server_name, "server_name")
    send = check_int(max_call_send_msg_size, "max_call_send_msg_size")
    recv = check_int(max_call_recv_msg_size, "max_call_recv_msg_size")
    leader = check_bool(require_leader, "require_leader")
    sync_interval = positive_number(auto_sync_interval, "auto_sync_interval", optional=True)
    ping = positive_number(keepalive_time, "keepalive_time", optional=True)
    ping_timeout = positive_number(keepalive_timeout, "keepalive_timeout", optional=True)
    chain = check_interceptors(interceptors, asyncio=asyncio)
    reject_old = check_bool(reject_old_cluster, "reject_old_cluster")
    if (cert is None) != (key is None):
        # gRPC's C core aborts the whole process when given a key without its certificate.
        raise ValueError("cert and key must be given together (TLS client authentication)")
    tls: TLSConfig | None = None
    if secure or any(v is not None for v in (ca_cert, cert, key)):
        tls = TLSConfig(
            ca_cert=_read_file(ca_cert, "ca_cert"),
            cert=_read_file(cert, "cert"),
            key=_read_file(key, "key"),
            server_name=name,
        )
    options: list[tuple[str, object]] = [
        ("grpc.max_send_message_length", send),
        ("grpc.max_receive_message_length", recv if recv <= 2**31 - 1 else -1),
        ("grpc.enable_retries", 0),  # the retry rule is ours: see _connection
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.min_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 1000),
    ]
    if ping is not None:
        options.append(("grpc.keepalive_time_ms", int(ping * 1000)))
        options.append(("grpc.keepalive_permit_without_calls", 1))
        options.append(("grpc.http2.max_pings_without_data", 0))
    if ping_timeout is not None:
        options.append(("grpc.keepalive_timeout_ms", int(ping_timeout * 1000)))
    return Settings(
        addresses=addresses,
        tls=tls,
        options=options,
        username=user,
        password=secret,
        require_leader=leader,
        default_timeout=default_timeout,
        dial_timeout=dial,
        max_send_size=send,
        auto_sync_interval=sync_interval,
        interceptors=chain,
        reject_old_cluster=reject_old,
    )


def check_interceptors(interceptors: object, *, asyncio: bool) -> tuple[object, ...]:
    """Return the gRPC client interceptors given (None: none), in the order given.

    Raises:
        TypeError: not a list, or an item that is not an interceptor of the client's kind:
            `grpc.UnaryUnaryClientInterceptor` (or its unary-stream, stream-unary and
            stream-stream siblings) for Client, `grpc.aio.ClientInterceptor` for AsyncClient.
    """
    if interceptors is None:
        return ()
    if isinstance(interceptors, (str, bytes)) or not isinstance(interceptors, Sequence):
        raise TypeError(
            f"interceptors must be a list of gRPC client interceptors, "
            f"not {type(interceptors).__name__}"
        )
    kinds = _AIO_INTERCEPTORS if asyncio else _SYNC_INTERCEPTORS
    for index, item in enumerate(interceptors):
        if not isinstance(item, kinds):
            wanted = (
                "a grpc.aio.ClientInterceptor (AsyncClient runs on grpc.aio)"
                if asyncio
                else "a grpc.UnaryUnaryClientInterceptor, UnaryStreamClientInterceptor, "
                "StreamUnaryClientInterceptor or StreamStreamClientInterceptor"
            )
            raise TypeError(f"interceptors[{index}] must be {wanted}, not {type(item).__name__}")
    return tuple(interceptors)
