"""etcd_layers: an etcd v3 client with composable namespace, ordering and leasing layers.

>>> from etcd_layers import Client
>>> with Client(endpoints=["127.0.0.1:2379"]) as cli:  # doctest: +SKIP
...     cli.put("greeting", "hello")
...     cli.get("greeting").kvs[0].value
b'hello'

The names below are imported on first use, so that `import etcd_layers.testing` (the pytest
plugin) does not load gRPC.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from etcd_layers import errors
    from etcd_layers.base import (
        AsyncClient,
        Client,
        Compare,
        EventType,
        Op,
        Permission,
        SortOrder,
        SortTarget,
    )

__all__ = [
    "AsyncClient",
    "Client",
    "Compare",
    "EventType",
    "Op",
    "Permission",
    "SortOrder",
    "SortTarget",
    "errors",
]
__version__ = "0.1.0"

_FROM_BASE = frozenset(__all__) - {"errors"}


def __getattr__(name: str) -> object:
    if name in _FROM_BASE:
        value = getattr(importlib.import_module("etcd_layers.base"), name)
    elif name == "errors":
        value = importlib.import_module("etcd_layers.errors")
    else:
        raise AttributeError(f"module 'etcd_layers' has no attribute {name!r}")
    globals()[name] = value
    return value


def _debug_from_env() -> None:
    """Apply ETCD_LAYERS_DEBUG (see etcd_layers.logs); a bad value warns, never breaks import."""
    from etcd_layers import logs  # noqa: PLC0415 (only the standard library)

    try:
        logs.configure_from_env()
    except ValueError as err:
        import warnings  # noqa: PLC0415

        warnings.warn(f"{err}; using debug", stacklevel=2)
        logs.configure_from_env({"ETCD_LAYERS_DEBUG": "debug"})


_debug_from_env()
