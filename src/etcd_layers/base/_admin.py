"""Cluster, maintenance and auth administration calls, mixed into Client."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from etcd_layers.base._connection import Connection


class AdminMixin:
    """Cluster membership, maintenance and auth administration."""

    _conn: Connection

    def _start_auto_sync(self, interval: float) -> None:
        """Refresh the endpoints from the member list every `interval` seconds."""
