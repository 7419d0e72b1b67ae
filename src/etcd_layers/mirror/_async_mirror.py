"""AsyncMirror: the asyncio Mirror, followed by a task on the caller's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Final

from etcd_layers._compat import Self
from etcd_layers.base.async_protocols import AsyncKV, AsyncWatch, AsyncWatcher
from etcd_layers.base.deadline import Deadline
from etcd_layers.base.keys import StrOrBytes, to_bytes
from etcd_layers.base.responses import GetResponse, KeyValue, WatchResponse
from etcd_layers.base.retry import Backoff
from etcd_layers.base.waiting import WAIT_SLICE
from etcd_layers.errors import CanceledError, EtcdError
from etcd_layers.mirror._common import (
    CHECK_INTERVAL,
    QUIET_AFTER,
    Callback,
    Subscribers,
    check_callback,
    check_options,
    check_wait,
    deliver,
    replay_events,
    report_lag,
)
from etcd_layers.mirror._pages import DEFAULT_PAGE_SIZE, first_page
from etcd_layers.mirror._read import async_pages
from etcd_layers.mirror._store import (
    Recovery,
    Store,
    diff,
    is_quiet,
    quiet_check,
    recovery_for,
)

__all__ = ["AsyncMirror"]

logger: Final = logging.getLogger("etcd_layers.mirror")


class AsyncMirror:
    """The asyncio form of `Mirror`, on an AsyncClient or any async KV + Watcher speaker.

    ```python
    async with AsyncMirror(acli, "config/") as m:     # loads, then follows in a task
        m.get(b"config/db"); m.items(); len(m); m.revision
        await m.wait((await acli.put("config/db", "x")).header.revision)
        unsubscribe = m.subscribe(callback)          # a plain callable, run on the loop
    ```

    The constructor only checks its arguments; `start()` (or `async with`) loads the prefix
    and starts the watch and its task. Reads are plain method calls on memory. The same
    guarantees as `Mirror`: no change missed or applied twice, a reload with the difference
    as events when the revision is compacted away.
    """

    def __init__(
        self,
        client: AsyncKV,
        prefix: StrOrBytes,
        *,
        page_size: int = DEFAULT_PAGE_SIZE,
        prev_kv: bool = False,
        timeout: float | None = None,
    ) -> None:
        """Check the arguments (as Mirror's), without I/O.

        Raises:
            TypeError, ValueError: bad arguments.
        """
        self._options = check_options(client, prefix, page_size, prev_kv, timeout)
        self._client = client
        self._watcher: AsyncWatcher = client  # type: ignore[assignment]  # checked above
        self._store = Store()
        self._values = self._store.values
        self._subscribers = Subscribers()
        self._changed = asyncio.Event()  # replaced after each change; set to wake waiters
        self._stopped = False
        self._current: AsyncWatch | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> Self:
        """Load the prefix and start following it (once).

        Raises:
            EtcdError: the load or the watch's start failed.
        """
        if self._task is not None or self._stopped:
            raise RuntimeError("an AsyncMirror starts once")
        deadline = Deadline(self._options.timeout)
        async for page in self._pages():
            self._store.add_page(page)
            deadline.remaining()
        watch = await self._start_watch()
        self._task = asyncio.get_running_loop().create_task(
            self._follow(watch), name="etcd_layers.mirror.follow"
        )
        return self

    def _pages(self) -> AsyncIterator[GetResponse]:
        op = first_page(self._options.prefix, self._options.page_size, 0)
        return async_pages(self._client, op, self._options.timeout)

    # -- reads -------------------------------------------------------------------------------

    def get(self, key: StrOrBytes) -> bytes | None:
        """Return the value of `key` in the copy, or None if it is not there."""
        value = self._values.get(key)  # type: ignore[arg-type]  # a str misses: converted below
        if value is None and type(key) is not bytes:
            return self._values.get(to_bytes(key, name="key"))
        return value

    def get_kv(self, key: StrOrBytes) -> KeyValue | None:
        """Return the KeyValue of `key`, or None."""
        return self._store.kv(to_bytes(key, name="key"))

    def items(self) -> dict[bytes, bytes]:
        """Return a copy of every key and value, as of `revision`."""
        return dict(self._values)

    def snapshot(self) -> tuple[int, dict[bytes, KeyValue]]:
        """Return the revision and a copy of every KeyValue, taken together."""
        return self._store.revision, self._store.kvs()

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, key: object) -> bool:
        return to_bytes(key, name="key") in self._values

    @property
    def prefix(self) -> bytes:
        """The mirrored prefix."""
        return self._options.prefix

    @property
    def revision(self) -> int:
        """The store revision the copy reflects (0 before start())."""
        return self._store.revision

    @property
    def closed(self) -> bool:
        """Whether close() was called (or the client was closed under it)."""
        return self._stopped

    # -- waiting and subscribing -------------------------------------------------------------

    async def wait(self, revision: int, *, timeout: float | None = None) -> None:
        """Return once the copy includes `revision` (as Mirror.wait).

        Raises:
            TimeoutError: the builtin, when the copy is still older after `timeout`.
            CanceledError: the mirror was closed first.
        """
        deadline = Deadline(check_wait(revision, timeout, self._options.timeout))
        pause = QUIET_AFTER
        while self._store.revision < revision:
            if self._stopped:
                raise CanceledError("the mirror is closed")
            with contextlib.suppress(asyncio.TimeoutError):  # the builtin one from 3.11 on
                await asyncio.wait_for(self._changed.wait(), deadline.left_or(pause))
            if self._store.revision >= revision:
                return
            if self._stopped:
                raise CanceledError("the mirror is closed")
            if deadline.expired():
                raise TimeoutError(f"the mirror is at {self._store.revision}, not {revision}")
            await self._prove_quiet(revision, deadline)
            pause = CHECK_INTERVAL

    async def _prove_quiet(self, revision: int, deadline: Deadline) -> None:
        """Confirm `revision` if nothing under the prefix changed after the last event."""
        applied, count = self._store.applied, len(self._store.values)
        try:
            response = await self._client.do(
                quiet_check(self._options.prefix, applied, revision),
                timeout=deadline.left_or(CHECK_INTERVAL) or CHECK_INTERVAL,
            )
        except EtcdError as err:  # a future or compacted revision, a failure: events decide
            logger.debug("the mirror could not check revision %d: %r", revision, err)
            return
        quiet = is_quiet(response, count) and self._store.applied == applied
        if quiet and self._store.confirm(revision):
            self._notify()

    def subscribe(self, callback: Callback, *, replay: bool = False) -> Callable[[], None]:
        """Call `callback(events)` with each change applied from now on (as Mirror.subscribe).

        `callback` is a plain callable, run on the event loop by the mirror's task; to do
        async work, start a task from it.
        """
        check_callback(callback)
        entry = self._subscribers.add(callback)
        if replay:
            deliver((entry,), replay_events(self._store.kvs()))
        return lambda: self._subscribers.remove(entry)

    # -- the follower ------------------------------------------------------------------------

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _start_watch(self) -> AsyncWatch:
        watch = await self._watcher.watch(
            self._options.prefix,
            prefix=True,
            start_revision=self._store.applied + 1,
            prev_kv=self._options.prev_kv,
            timeout=self._options.timeout,
        )
        self._current = watch
        return watch

    async def _follow(self, watch: AsyncWatch) -> None:
        try:
            await self._follow_until_stopped(watch)
        finally:  # however the task ends, waiters learn it instead of waiting on
            self._stopped = True
            self._notify()

    async def _follow_until_stopped(self, watch: AsyncWatch) -> None:
        while not self._stopped:
            try:
                response = await watch.next(timeout=WAIT_SLICE)
            except TimeoutError:
                continue
            except EtcdError as err:
                if self.closed:  # close() canceled the watch
                    return
                logger.info("the mirror of %r recovers from %r", self._options.prefix, err)
                recovered = await self._recover(recovery_for(err))
                if recovered is None:
                    return
                watch = recovered
            else:
                self._take(response)

    def _take(self, response: WatchResponse) -> None:
        if response.events:
            events = self._store.apply(response.events)
            if not events:
                return
            report_lag(response.header.revision, self._store.revision)
            self._notify()
            entries = self._subscribers.entries
            if entries:
                deliver(entries, events)

    async def _recover(self, recovery: Recovery) -> AsyncWatch | None:
        backoff = Backoff()
        while not self._stopped:
            try:
                if recovery is Recovery.RELOAD:
                    await self._reload()
                    recovery = Recovery.RESTART
                return await self._start_watch()
            except EtcdError as err:
                decided = recovery_for(err, starting=True)
                if decided is Recovery.STOP:
                    logger.warning("the mirror of %r stops: %r", self._options.prefix, err)
                    self._stopped = True
                    self._notify()
                    return None
                if decided is Recovery.RELOAD:  # else a reload not done yet stays to do
                    recovery = decided
                logger.warning("the mirror of %r could not recover: %r", self._options.prefix, err)
                await asyncio.sleep(backoff.next())
        return None

    async def _reload(self) -> None:
        fresh = Store()
        async for page in self._pages():
            fresh.add_page(page)
        events = diff(self._store, fresh)
        self._store.replace(events, fresh.revision)
        self._notify()
        entries = self._subscribers.entries
        if entries and events:
            deliver(entries, events)

    # -- lifetime ----------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop following (idempotent): cancel the watch and end the task."""
        self._stopped = True
        self._notify()
        task, self._task = self._task, None
        watch, self._current = self._current, None
        if watch is not None:
            await watch.cancel()
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
