"""Client options from a YAML file in the format of Go's clientv3/yaml package."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Final, cast

import yaml

from etcd_layers.config._options import (
    ClientOptions,
    check_size,
    parse_as,
    require,
    to_seconds,
    transport,
)
from etcd_layers.config.goformat import parse_duration

_GO_DURATIONS: Final = {  # key -> option; Go's zero (0) means "not set"
    "auto-sync-interval": "auto_sync_interval",
    "dial-timeout": "dial_timeout",
    "dial-keep-alive-time": "keepalive_time",
    "dial-keep-alive-timeout": "keepalive_timeout",
}
# Go's Config has no json tag on the two sizes, so Go's decoder reads their field names; the
# tag-style spelling is accepted too, as the issue and API.md name the keys that way.
_GO_SIZES: Final = {
    "max-call-send-msg-size": "max_call_send_msg_size",
    "MaxCallSendMsgSize": "max_call_send_msg_size",
    "max-call-recv-msg-size": "max_call_recv_msg_size",
    "MaxCallRecvMsgSize": "max_call_recv_msg_size",
}
_GO_STRINGS: Final = {
    "username": "username",
    "password": "password",
    "cert-file": "cert",
    "key-file": "key",
    "trusted-ca-file": "ca_cert",
}
_GO_BOOLS: Final = frozenset(
    {"insecure-transport", "insecure-skip-tls-verify", "reject-old-cluster"}
)
# Keys Go reads that Client cannot honour: accepted only at Go's zero value ("not set").
_GO_REFUSED: Final[dict[str, tuple[object, str]]] = {
    "token": ("", "JWT token authentication is not supported: use username and password"),
    "ca-file": ("", "Go reads but never uses this deprecated key: use trusted-ca-file"),
    "permit-without-stream": (False, "not supported"),
    "max-unary-retries": (0, "not supported: Client's retry rule is fixed"),
    "backoff-wait-between": (0, "not supported: Client's retry rule is fixed"),
    "backoff-jitter-fraction": (0, "not supported: Client's retry rule is fixed"),
}
GO_YAML_KEYS: Final = frozenset(
    {"endpoints", *_GO_DURATIONS, *_GO_SIZES, *_GO_STRINGS, *_GO_BOOLS, *_GO_REFUSED}
)
"""Every key Go's clientv3/yaml reads; from_config reads some and refuses others if set."""


def options_from_config(path: str | os.PathLike[str]) -> ClientOptions:
    """Return `Client(...)` keywords from a YAML file in Go's clientv3/yaml format.

    Durations are integer nanoseconds (as Go's decoder reads a time.Duration) or Go duration
    strings ("5s"); sizes are bytes; a key at Go's zero value, or null, counts as not set.

    Raises:
        ValueError: the file is missing or unreadable, is not YAML or not a mapping, or has an
            unknown key, a bad value, or a setting Client cannot honour (insecure-skip-tls-verify
            true, token, ...); the message names the file and the key.
    """
    where = os.fspath(path)
    try:
        document = yaml.safe_load(Path(where).read_bytes())
    except OSError as err:
        raise ValueError(
            f"cannot read client configuration {where!r}: {err.strerror or err}"
        ) from None
    except yaml.YAMLError as err:
        raise ValueError(f"{where}: not valid YAML: {err}") from None
    if document is None:
        document = {}  # an empty file: every key at its zero value, as Go decodes it
    if not isinstance(document, dict):
        # A file of the wrong shape is a bad value: ValueError, as API.md says.
        raise ValueError(f"{where}: must be a mapping of clientv3/yaml keys")  # noqa: TRY004
    unknown = sorted(str(key) for key in document if key not in GO_YAML_KEYS)
    if unknown:
        raise ValueError(f"{where}: unknown key {', '.join(unknown)} (not a clientv3/yaml key)")
    values = {str(key): value for key, value in document.items() if value is not None}
    return _yaml_options(where, values)


def _yaml_options(where: str, values: Mapping[str, object]) -> ClientOptions:
    for key in sorted(values.keys() & _GO_REFUSED.keys()):
        zero, reason = _GO_REFUSED[key]
        value = values[key]
        # Go's zero value ("", false, 0 or 0.0) means "not set"; False is not taken for 0.
        is_zero = value == zero and isinstance(value, bool) == isinstance(zero, bool)
        require(is_zero, f"{where}: {key}: {reason}")
    flags = {key: values.get(key, False) for key in _GO_BOOLS}
    for key, flag in flags.items():
        require(isinstance(flag, bool), f"{where}: {key}: must be true or false")
    require(
        not flags["insecure-skip-tls-verify"],
        f"{where}: insecure-skip-tls-verify: true is not supported (Client always verifies)",
    )
    found = {**_yaml_numbers(where, values), **_yaml_strings(where, values)}
    if flags["reject-old-cluster"]:
        found["reject_old_cluster"] = True
    # Go silently drops a certificate without its key, and the other way round.
    require(("cert" in found) == ("key" in found), f"{where}: give cert-file and key-file together")
    files = any(option in found for option in ("ca_cert", "cert", "key"))
    require(
        not (flags["insecure-transport"] and files),  # Go ignores the files then
        f"{where}: insecure-transport: true conflicts with the certificate files",
    )
    chosen = transport(
        _yaml_endpoints(where, values.get("endpoints")),
        tls=not flags["insecure-transport"],
        files=files,
        where=f"{where}: endpoints",
    )
    if chosen is not None:
        found["endpoints"] = chosen
    return cast(ClientOptions, found)


def _yaml_numbers(where: str, values: Mapping[str, object]) -> dict[str, object]:
    found: dict[str, object] = {}
    for key, option in _GO_DURATIONS.items():
        if key in values:
            seconds = to_seconds(f"{where}: {key}", _yaml_duration(where, key, values[key]))
            if seconds is not None:
                found[option] = seconds
    for key, option in _GO_SIZES.items():
        if key in values:
            value = values[key]
            require(
                isinstance(value, int) and not isinstance(value, bool),
                f"{where}: {key}: must be an integer number of bytes",
            )
            if check_size(f"{where}: {key}", cast(int, value)):
                found[option] = value
    return found


def _yaml_strings(where: str, values: Mapping[str, object]) -> dict[str, object]:
    found: dict[str, object] = {}
    for key, option in _GO_STRINGS.items():
        value = values.get(key)
        # A password is never shown: PyYAML reads an unquoted 1234 as an int, so say so.
        require(
            value is None or isinstance(value, str),
            f"{where}: {key}: must be a string (quote it in the YAML)",
        )
        if value:
            found[option] = value
    return found


def _yaml_duration(where: str, key: str, value: object) -> int:
    if isinstance(value, str):
        return parse_as(f"{where}: {key}", value, parse_duration)
    require(
        isinstance(value, int) and not isinstance(value, bool),
        f"{where}: {key}: must be integer nanoseconds or a duration such as '5s'",
    )
    return cast(int, value)


def _yaml_endpoints(where: str, value: object) -> list[str] | None:
    if value is None:
        return None
    items = value if isinstance(value, list) else [None]
    require(
        all(isinstance(item, str) for item in items),
        f"{where}: endpoints: must be a list of strings",
    )
    endpoints = [cast(str, item).strip() for item in items]
    require(
        bool(endpoints) and all(endpoints),
        f"{where}: endpoints: must not be empty or hold an empty endpoint",
    )
    return endpoints
