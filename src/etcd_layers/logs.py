"""The package's loggers, one per package, and `ETCD_LAYERS_DEBUG`, Go's ETCD_CLIENT_DEBUG.

Loggers (standard `logging`; the library adds no handler unless `ETCD_LAYERS_DEBUG` asks):
    etcd_layers.client       the clients: failover, re-authentication, watch resumption,
                             keep-alive losses (INFO); retries and stream ends (DEBUG)
    etcd_layers.namespace, etcd_layers.ordering, etcd_layers.leasing, etcd_layers.concurrency,
    etcd_layers.mirror, etcd_layers.naming, etcd_layers.testing
Records never carry credentials (user names, passwords, tokens) or values; keys appear in a
few DEBUG and WARNING records of the concurrency recipes (a waiter's key), never values.

`ETCD_LAYERS_DEBUG` is read when etcd_layers is imported: "1", "true" or "debug" set the
`etcd_layers` logger to DEBUG, a level name ("info", "warning", "error") to that level; either
way a stderr handler is added when the logger has none, as Go's client logs to stderr. Empty,
"0" or "false" leave logging to the application.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import Final

__all__ = ["CLIENT", "configure_from_env", "logger"]

ROOT: Final = "etcd_layers"
CLIENT: Final = "etcd_layers.client"
_LEVELS: Final = {
    "1": logging.DEBUG,
    "true": logging.DEBUG,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
}
_OFF: Final = frozenset({"", "0", "false"})


def logger(package: str) -> logging.Logger:
    """Return the logger of `package` ("client", "leasing", ...): `etcd_layers.<package>`."""
    return logging.getLogger(f"{ROOT}.{package}")


def configure_from_env(environ: Mapping[str, str] | None = None) -> int | None:
    """Apply `ETCD_LAYERS_DEBUG` from `environ` (None: os.environ); return the level set.

    Raises:
        ValueError: a value that is neither off ("", "0", "false") nor a level named above.
    """
    value = (os.environ if environ is None else environ).get("ETCD_LAYERS_DEBUG", "")
    value = value.strip().lower()
    if value in _OFF:
        return None
    level = _LEVELS.get(value)
    if level is None:
        raise ValueError(
            f"ETCD_LAYERS_DEBUG must be 1, true, debug, info, warning or error, not {value!r}"
        )
    root = logging.getLogger(ROOT)
    root.setLevel(level)
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    return level
