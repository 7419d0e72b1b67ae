"""etcd_layers: an etcd v3 client with composable namespace, ordering and leasing layers.

>>> from etcd_layers import Client
>>> with Client(endpoints=["127.0.0.1:2379"]) as cli:  # doctest: +SKIP
...     cli.put("greeting", "hello")
...     cli.get("greeting").kvs[0].value
b'hello'
"""

from __future__ import annotations

from etcd_layers import errors
from etcd_layers.base import (
    Client,
    Compare,
    EventType,
    Op,
    Permission,
    SortOrder,
    SortTarget,
)

__all__ = [
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
