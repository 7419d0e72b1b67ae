"""WatchMixin: the Watcher Protocol of Client, from its arguments to the shared watch stream."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from etcd_layers.base._proto import rpc_pb2
from etcd_layers.base._watch import _WatchStream
from etcd_layers.base._watch_handle import ClientWatch
from etcd_layers.base.checks import check_bool, check_int, check_timeout, key_range
from etcd_layers.base.keys import StrOrBytes
from etcd_layers.base.watch_actions import WatchStats

if TYPE_CHECKING:
    from etcd_layers.base._connection import Connection


@dataclass(frozen=True, slots=True)
class WatchOptions:
    """The options of a watch that are the client's, not the server's."""

    created_notify: bool
    progress_notify: bool
    timeout: float | None


def watch_request(
    key: StrOrBytes,
    *,
    range_end: StrOrBytes | None,
    prefix: bool,
    from_key: bool,
    start_revision: int,
    prev_kv: bool,
    filter_put: bool,
    filter_delete: bool,
    progress_notify: bool,
    fragment: bool,
    created_notify: bool,
    timeout: float | None,
) -> tuple[rpc_pb2.WatchCreateRequest, WatchOptions]:
    """Check the arguments of `watch()` (before any I/O) and build its create request.

    Shared by Client.watch and AsyncClient.watch, so both refuse the same arguments alike.
    """
    begin, end = key_range(key, range_end, prefix, from_key)
    filters = []
    if check_bool(filter_put, "filter_put"):
        filters.append(rpc_pb2.WatchCreateRequest.NOPUT)
    if check_bool(filter_delete, "filter_delete"):
        filters.append(rpc_pb2.WatchCreateRequest.NODELETE)
    create = rpc_pb2.WatchCreateRequest(
        key=begin,
        range_end=end,
        start_revision=check_int(start_revision, "start_revision"),
        prev_kv=check_bool(prev_kv, "prev_kv"),
        progress_notify=check_bool(progress_notify, "progress_notify"),
        fragment=check_bool(fragment, "fragment"),
        filters=filters,
    )
    options = WatchOptions(
        created_notify=check_bool(created_notify, "created_notify"),
        progress_notify=progress_notify,
        timeout=check_timeout(timeout),
    )
    return create, options


class WatchMixin:
    """The Watcher Protocol, mixed into Client."""

    _conn: Connection

    def _init_streams(self) -> None:
        """Prepare the stream managers (called once the connection is up)."""
        self._watch_stream = _WatchStream(self._conn)

    def watch(
        self,
        key: StrOrBytes,
        *,
        range_end: StrOrBytes | None = None,
        prefix: bool = False,
        from_key: bool = False,
        start_revision: int = 0,
        prev_kv: bool = False,
        filter_put: bool = False,
        filter_delete: bool = False,
        progress_notify: bool = False,
        fragment: bool = False,
        created_notify: bool = False,
        timeout: float | None = None,
    ) -> ClientWatch:
        """Watch a key or a range (see Watcher.watch); returns once the server confirmed it.

        Raises:
            DeadlineExceededError: not confirmed within `timeout`.
            UnavailableError: no deadline, and no endpoint answered within dial_timeout.
        """
        create, options = watch_request(
            key,
            range_end=range_end,
            prefix=prefix,
            from_key=from_key,
            start_revision=start_revision,
            prev_kv=prev_kv,
            filter_put=filter_put,
            filter_delete=filter_delete,
            progress_notify=progress_notify,
            fragment=fragment,
            created_notify=created_notify,
            timeout=timeout,
        )
        return self._watch_stream.add(
            create,
            created_notify=options.created_notify,
            progress_notify=options.progress_notify,
            timeout=options.timeout,
        )

    def watch_stats(self) -> WatchStats:
        """Return a snapshot of the counters of this client's watch stream.

        `streams` opened, `fragments` joined, `pauses` of slow consumers, liveness `probes`
        sent, and the `endpoint` of the latest stream; for tests and monitoring.
        """
        return self._watch_stream.stats()

    def request_progress(self, *, timeout: float | None = None) -> None:
        """Ask the server for a progress notification on every watch of this client.

        The notifications arrive on the watches (`is_progress_notify`); this call does not
        wait for them.
        """
        check_timeout(timeout)
        self._watch_stream.request_progress()
