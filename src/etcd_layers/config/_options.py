"""The rules both configuration readers share: ClientOptions, Go's zero values, the transport."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final, TypedDict, TypeVar, cast

from etcd_layers.config.goformat import SECOND

DEFAULT_ENDPOINT: Final = "127.0.0.1:2379"  # Client's default and etcdctl's
T = TypeVar("T")


class ClientOptions(TypedDict, total=False):
    """Keyword arguments of `Client(...)`, as the readers here return them."""

    endpoints: Sequence[str] | str
    dial_timeout: float
    timeout: float | None
    username: str | None
    password: str | None
    ca_cert: str | Path | None
    cert: str | Path | None
    key: str | Path | None
    server_name: str | None
    max_call_send_msg_size: int
    max_call_recv_msg_size: int
    require_leader: bool
    auto_sync_interval: float | None
    keepalive_time: float | None
    keepalive_timeout: float | None
    interceptors: Sequence[object] | None
    reject_old_cluster: bool


def parse_as(name: str, text: str, parse: Callable[[str], T]) -> T:
    try:
        return parse(text)
    except ValueError as err:
        raise ValueError(f"{name}: {err}") from None


def require(condition: bool, message: str) -> None:
    """Raise ValueError(message) unless `condition`: a bad value, of any type, is a ValueError."""
    if not condition:
        raise ValueError(message)


def to_seconds(name: str, nanoseconds: int, *, positive: bool = False) -> float | None:
    """Seconds for Client, or None for Go's 0 ("not set"); `positive` refuses 0 instead."""
    if nanoseconds < 0 or (positive and nanoseconds == 0):
        raise ValueError(f"{name}: must be > 0")
    return nanoseconds / SECOND if nanoseconds else None


def check_size(name: str, size: int) -> int:
    if size < 0:
        raise ValueError(f"{name}: must not be negative")
    return size


def transport(
    endpoints: list[str] | None, *, tls: bool, files: bool, where: str
) -> list[str] | None:
    """Return the endpoints that make Client pick the transport Go would pick.

    Go decides per endpoint: https:// means TLS, http:// plaintext, and a bare host:port
    follows `tls`. Client takes TLS when given a certificate file or an https:// endpoint, so
    without files the endpoints get https:// (the default endpoint too, when none is given).
    """
    listed = endpoints if endpoints is not None else [DEFAULT_ENDPOINT]
    schemes = [
        endpoint.partition("://")[0].lower() if "://" in endpoint else "" for endpoint in listed
    ]
    secure = [scheme == "https" or (scheme != "http" and tls) for scheme in schemes]
    if all(secure):
        if files:
            return endpoints
        return [
            e if s == "https" else "https://" + (e.partition("://")[2] if s else e)
            for e, s in zip(listed, schemes, strict=True)
        ]
    if any(secure):
        plain = [e for e, s in zip(listed, secure, strict=True) if not s]
        raise ValueError(
            f"{where}: mixes TLS and plaintext endpoints ({', '.join(plain)} plaintext); "
            "Client uses one transport for every endpoint"
        )
    if files:
        raise ValueError(
            f"{where}: every endpoint is http://, so the certificate files would go unused"
        )
    return endpoints


def with_overrides(found: ClientOptions, overrides: ClientOptions, *, source: str) -> ClientOptions:
    """Return `found` with `overrides` applied (an override wins), checking the credentials.

    Args:
        found: what options_from_env or options_from_config returned.
        overrides: the caller's keywords.
        source: where `found` came from, for the message.

    Raises:
        ValueError: a user name without a password, or a password without a user name, where
            the missing half was not given as an override either.
    """
    merged = cast(ClientOptions, {**found, **overrides})
    username, password = merged.get("username"), merged.get("password")
    if username is not None and password is None and "username" not in overrides:
        raise ValueError(f"{source} names a user but gives no password (pass password=)")
    if password is not None and username is None and "password" not in overrides:
        raise ValueError(f"{source} gives a password but no user name (pass username=)")
    return merged
