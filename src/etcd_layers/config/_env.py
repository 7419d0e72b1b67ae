"""Client options from etcdctl's ETCDCTL_* environment variables, read by etcdctl's rules."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Final, cast

from etcd_layers.config._options import ClientOptions, check_size, parse_as, to_seconds, transport
from etcd_layers.config.goformat import parse_bool, parse_duration, parse_int

_ENV_PREFIX: Final = "ETCDCTL_"
_DISCOVERY: Final = "DNS SRV discovery is not supported: list the members in ETCDCTL_ENDPOINTS"
_OUTPUT: Final = "it sets etcdctl's output format, not a client setting"
_WATCH: Final = "it is an argument of `etcdctl watch`, not a client setting"
# Variables etcdctl knows that Client has no equivalent for: each raises, with its reason.
_ENV_REFUSED: Final[dict[str, str]] = {
    "ETCDCTL_DISCOVERY_SRV": _DISCOVERY,
    "ETCDCTL_DISCOVERY_SRV_NAME": _DISCOVERY,
    "ETCDCTL_INSECURE_DISCOVERY": _DISCOVERY,
    "ETCDCTL_AUTH_JWT_TOKEN": "JWT token authentication is not supported: "
    "use ETCDCTL_USER and ETCDCTL_PASSWORD",
    "ETCDCTL_WRITE_OUT": _OUTPUT,
    "ETCDCTL_HEX": _OUTPUT,
    "ETCDCTL_DEBUG": "it turns on etcdctl's debug output: configure Python's logging instead",
    "ETCDCTL_WATCH_KEY": _WATCH,
    "ETCDCTL_WATCH_RANGE_END": _WATCH,
}
# Variables read here (by _env_transport, _env_credentials and the tables in options_from_env).
_ENV_DURATIONS: Final = {  # variable -> (option, whether 0 is refused rather than "not set")
    "ETCDCTL_DIAL_TIMEOUT": ("dial_timeout", True),
    "ETCDCTL_COMMAND_TIMEOUT": ("timeout", True),
    "ETCDCTL_KEEPALIVE_TIME": ("keepalive_time", False),
    "ETCDCTL_KEEPALIVE_TIMEOUT": ("keepalive_timeout", False),
}
_ENV_SIZES: Final = {
    "ETCDCTL_MAX_REQUEST_BYTES": "max_call_send_msg_size",
    "ETCDCTL_MAX_RECV_BYTES": "max_call_recv_msg_size",
}
_ENV_READ: Final = frozenset(
    {
        "ETCDCTL_ENDPOINTS",
        "ETCDCTL_CACERT",
        "ETCDCTL_CERT",
        "ETCDCTL_KEY",
        "ETCDCTL_USER",
        "ETCDCTL_PASSWORD",
        "ETCDCTL_INSECURE_TRANSPORT",
        "ETCDCTL_INSECURE_SKIP_TLS_VERIFY",
        "ETCDCTL_API",
        *_ENV_DURATIONS,
        *_ENV_SIZES,
    }
)
ETCDCTL_VARIABLES: Final = _ENV_READ | frozenset(_ENV_REFUSED)
"""Every ETCDCTL_* variable etcdctl knows; from_env reads some and refuses the others."""


def options_from_env(environ: Mapping[str, str] | None = None) -> ClientOptions:
    """Return `Client(...)` keywords from etcdctl's environment variables.

    ETCDCTL_ENDPOINTS (comma separated), ETCDCTL_CACERT, ETCDCTL_CERT and ETCDCTL_KEY map to
    `endpoints`, `ca_cert`, `cert` and `key`; ETCDCTL_USER ("name" or "name:password") and
    ETCDCTL_PASSWORD to `username` and `password`; the Go durations ETCDCTL_DIAL_TIMEOUT,
    ETCDCTL_COMMAND_TIMEOUT, ETCDCTL_KEEPALIVE_TIME and ETCDCTL_KEEPALIVE_TIMEOUT to
    `dial_timeout`, `timeout`, `keepalive_time` and `keepalive_timeout`; ETCDCTL_MAX_REQUEST_BYTES
    and ETCDCTL_MAX_RECV_BYTES to the message size limits; ETCDCTL_INSECURE_TRANSPORT picks the
    transport as etcdctl does. An empty variable counts as unset, as in etcdctl, and a variable
    left unset keeps Client's default (not etcdctl's: its 5 s command timeout is not applied).

    Args:
        environ: the variables to read; None reads `os.environ`.

    Raises:
        ValueError: an unknown ETCDCTL_* variable, one Client cannot honour
            (ETCDCTL_INSECURE_SKIP_TLS_VERIFY=true, ETCDCTL_DISCOVERY_SRV, ETCDCTL_WRITE_OUT, …)
            or a bad value; the message names the variable.
    """
    variables = {
        name: value
        for name, value in (os.environ if environ is None else environ).items()
        if name.startswith(_ENV_PREFIX)
    }
    unknown = sorted(set(variables) - ETCDCTL_VARIABLES)
    if unknown:
        raise ValueError(f"unknown etcdctl variable {', '.join(unknown)}: etcdctl does not read it")
    given = {name: value for name, value in variables.items() if value != ""}
    for name in sorted(given.keys() & _ENV_REFUSED.keys()):
        raise ValueError(f"{name} is not supported: {_ENV_REFUSED[name]}")
    if _env_bool(given, "ETCDCTL_INSECURE_SKIP_TLS_VERIFY", default=False):
        raise ValueError(
            "ETCDCTL_INSECURE_SKIP_TLS_VERIFY=true is not supported: Client always verifies "
            "the server's certificate (give its CA in ETCDCTL_CACERT)"
        )
    if given.get("ETCDCTL_API", "3") != "3":
        raise ValueError(f"ETCDCTL_API={given['ETCDCTL_API']!r}: Client speaks only etcd's v3 API")
    found: dict[str, object] = {}
    for name, (option, positive) in _ENV_DURATIONS.items():
        if name in given:
            seconds = to_seconds(
                name, parse_as(name, given[name], parse_duration), positive=positive
            )
            if seconds is not None:
                found[option] = seconds
    for name, option in _ENV_SIZES.items():
        if name in given:
            size = check_size(name, parse_as(name, given[name], parse_int))
            if size:  # etcdctl: 0 means the default limit
                found[option] = size
    found.update(_env_credentials(given))
    found.update(_env_transport(given))
    return cast(ClientOptions, found)


def _env_bool(given: Mapping[str, str], name: str, *, default: bool) -> bool:
    if name not in given:
        return default
    return parse_as(name, given[name], parse_bool)


def _env_credentials(given: Mapping[str, str]) -> dict[str, object]:
    """Apply etcdctl's rule: ETCDCTL_USER is "name:password" unless ETCDCTL_PASSWORD is set."""
    user, password = given.get("ETCDCTL_USER"), given.get("ETCDCTL_PASSWORD")
    if user is None:
        return {} if password is None else {"password": password}  # with_overrides checks
    if password is None:
        name, colon, password_part = user.partition(":")
        found: dict[str, object] = {"username": name}
        if colon:
            found["password"] = password_part
    elif ":" in user:
        # etcdctl would take all of "name:secret" as the user name here; its help says the
        # user must not hold a password when --password is given, so refuse rather than guess.
        raise ValueError(
            "ETCDCTL_USER holds a password (name:password) and ETCDCTL_PASSWORD is set"
        )
    else:
        name, found = user, {"username": user, "password": password}
    if not name:
        raise ValueError("ETCDCTL_USER has an empty user name")
    if found.get("password") == "":
        # Go's client logs in only with a non-empty password: it would silently not log in.
        raise ValueError("ETCDCTL_USER gives an empty password")
    return found


def _env_transport(given: Mapping[str, str]) -> dict[str, object]:
    found: dict[str, object] = {}
    for name, option in (
        ("ETCDCTL_CACERT", "ca_cert"),
        ("ETCDCTL_CERT", "cert"),
        ("ETCDCTL_KEY", "key"),
    ):
        if name in given:
            found[option] = given[name]
    if ("cert" in found) != ("key" in found):
        raise ValueError("ETCDCTL_CERT and ETCDCTL_KEY must be given together")
    endpoints = None
    if "ETCDCTL_ENDPOINTS" in given:
        # pflag reads a comma-separated list; etcdctl trims the spaces around each endpoint.
        endpoints = [part.strip() for part in given["ETCDCTL_ENDPOINTS"].split(",")]
        if not all(endpoints):
            raise ValueError("ETCDCTL_ENDPOINTS has an empty endpoint")
    insecure = _env_bool(given, "ETCDCTL_INSECURE_TRANSPORT", default=True)
    files = bool(found)
    # etcdctl builds TLS settings when given a certificate file, or when told not to be insecure.
    chosen = transport(endpoints, tls=files or not insecure, files=files, where="ETCDCTL_ENDPOINTS")
    if chosen is not None:
        found["endpoints"] = chosen
    return found
