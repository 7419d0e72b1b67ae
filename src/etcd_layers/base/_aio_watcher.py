"""AsyncWatchMixin: the AsyncWatcher Protocol of AsyncClient, from its arguments to the stream."""

from __future__ import annotations

from typing import TYPE_CHECKING

from etcd_layers.base._aio_watch import AsyncWatchStream
from etcd_layers.base._aio_watch_handle import AsyncClientWatch, AsyncClientWatchStart
from etcd_layers.base._watcher import watch_request
from etcd_layers.base.checks import check_timeout
from etcd_layers.base.keys import StrOrBytes
from etcd_layers.base.watch_actions import WatchStats

if TYPE_CHECKING:
    from etcd_layers.base._aio_connection import AsyncConnection

__all__ = ["AsyncWatchMixin"]


class AsyncWatchMixin:
    """The AsyncWatcher Protocol, mixed into AsyncClient."""

    _watch_stream: AsyncWatchStream | None = None

    if TYPE_CHECKING:

        async def connected(self) -> AsyncConnection: ...  # AsyncClient's

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
    ) -> AsyncClientWatchStart:
        """Watch a key or a range (see Watcher.watch): `w = await cli.watch(...)`, or `async with`.

        The arguments are checked here, before any I/O; awaiting the result returns once the
        server confirmed the watch.

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

        async def start() -> AsyncClientWatch:
            stream = await self._watch_stream_now()
            return await stream.add(
                create,
                created_notify=options.created_notify,
                progress_notify=options.progress_notify,
                timeout=options.timeout,
            )

        return AsyncClientWatchStart(start)

    def watch_stats(self) -> WatchStats:
        """Return a snapshot of the counters of this client's watch stream (see Client's)."""
        stream = self._watch_stream
        return WatchStats() if stream is None else stream.stats()

    async def request_progress(self, *, timeout: float | None = None) -> None:
        """Ask the server for a progress notification on every watch of this client.

        The notifications arrive on the watches (`is_progress_notify`); this call does not
        wait for them.
        """
        check_timeout(timeout)
        stream = await self._watch_stream_now()
        stream.request_progress()

    async def _watch_stream_now(self) -> AsyncWatchStream:
        """Return the client's watch stream, connecting and making it on first use."""
        conn = await self.connected()
        conn.check_open()
        stream = self._watch_stream
        if stream is None:
            stream = self._watch_stream = AsyncWatchStream(conn)
        return stream
