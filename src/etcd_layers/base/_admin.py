"""Cluster, maintenance and auth administration, mixed into Client: one mixin of each."""

from __future__ import annotations

from etcd_layers.base._auth_admin import AuthAdminMixin
from etcd_layers.base._auto_sync import AUTO_SYNC_THREAD, AUTO_SYNC_TIMEOUT, AutoSyncMixin
from etcd_layers.base._maintenance import MaintenanceMixin

__all__ = ["AUTO_SYNC_THREAD", "AUTO_SYNC_TIMEOUT", "AdminMixin"]


class AdminMixin(AutoSyncMixin, MaintenanceMixin, AuthAdminMixin):
    """Cluster membership, maintenance and auth administration."""
