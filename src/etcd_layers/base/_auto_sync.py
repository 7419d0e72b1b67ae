"""Endpoints from the member list: sync_endpoints and the auto-sync thread, mixed into Client."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Final

from etcd_layers.base._admin_core import (
    endpoints_from_members,
)
from etcd_layers.base._cluster import ClusterMixin
from etcd_layers.errors import (
    ClosedError,
    EtcdError,
    UnavailableError,
)

if TYPE_CHECKING:
    pass

logger = logging.getLogger("etcd_layers.client")

AUTO_SYNC_THREAD: Final = "etcd_layers.admin.autosync"
# clientv3's autoSync gives each sync 5 seconds; so do we, whatever the client's default.
AUTO_SYNC_TIMEOUT: Final = 5.0


class AutoSyncMixin(ClusterMixin):
    """Endpoints kept in step with the cluster's members."""

    _sync_stop: threading.Event
    _sync_thread: threading.Thread | None

    def sync_endpoints(self, *, timeout: float | None = None) -> list[str]:
        """Replace the endpoints with the client URLs of the cluster's started voting members.

        Running watches and keep-alives move if their endpoint is gone. Nothing changes
        when the member list names the endpoints the client already has.

        Returns:
            The endpoints in use afterwards.

        Raises:
            UnavailableError: the member list names no usable client URL (the endpoints
                are left as they were: a client never ends up with none).
        """
        response = self.member_list(timeout=timeout)
        endpoints = endpoints_from_members(response.members)
        if not endpoints:
            raise UnavailableError(
                "the member list names no started voting member with a client URL; "
                "the endpoints were left unchanged"
            )
        if set(endpoints) != set(self._conn.addresses):
            self._conn.check_open()
            self._conn.set_endpoints(endpoints)
        return self._conn.addresses

    def _start_auto_sync(self, interval: float) -> None:
        """Refresh the endpoints from the member list every `interval` seconds."""
        thread = threading.Thread(
            target=self._auto_sync, args=(interval,), name=AUTO_SYNC_THREAD, daemon=True
        )
        self._sync_thread = thread
        thread.start()

    def _auto_sync(self, interval: float) -> None:
        # Runs until close() sets _sync_stop; a failed sync (a partition, a member restarting)
        # is logged and retried at the next tick, as clientv3's autoSync does.
        while not self._sync_stop.wait(interval):
            try:
                self.sync_endpoints(timeout=AUTO_SYNC_TIMEOUT)
            except ClosedError:
                return
            except EtcdError as err:
                if self._sync_stop.is_set() or self._conn.closed.is_set():
                    return
                logger.warning("auto sync of the endpoints failed: %s", err, exc_info=True)
