"""Watches: many watches multiplexed on one gRPC stream per client."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from etcd_layers.base._connection import Connection


class WatchMixin:
    """The Watcher Protocol, mixed into Client."""

    _conn: Connection

    def _init_streams(self) -> None:
        """Prepare the stream managers (called once the connection is up)."""
