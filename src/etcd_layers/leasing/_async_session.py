"""AsyncOwnership: the asyncio twin of `_session.Ownership`, with three tasks instead of threads.

The same jobs (keep the session lease alive, watch the leasing prefix for REVOKE, give back
the leasing keys the cache let go of), the same decisions (`_ownership`: renewal timing, what
a failure means, what an event does), the same cache. The cache's lock is never held across
an await: every cache call returns before the next await, so the tasks and the KV calls on
the event loop share it as the threads of the sync shell do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, Final, TypeAlias

from etcd_layers.base.async_protocols import AsyncKVWatcherLease, AsyncWatch
from etcd_layers.base.deadline import Deadline
from etcd_layers.base.responses import Event
from etcd_layers.errors import CanceledError, EtcdError, LeaseNotFoundError
from etcd_layers.leasing._cache import LeaseCache
from etcd_layers.leasing._ownership import (
    BACKGROUND_TIMEOUT,
    RETRY_BACKOFF,
    Failure,
    SessionState,
    apply_event,
    next_backoff,
    orphans,
    renewal_failure,
)
from etcd_layers.leasing._protocol import release_txn

__all__ = ["AsyncLeasingBackend", "AsyncOwnership"]

logger = logging.getLogger("etcd_layers.leasing")

_POLL: Final = 0.5  # seconds between looks at the release queue, should a wake-up be missed

# What the async leasing layer needs below it: an AsyncClient, or an async layer on one.
AsyncLeasingBackend: TypeAlias = AsyncKVWatcherLease


class AsyncOwnership:
    """The background side of an async leasing client (see `_session` for the jobs).

    Args:
        backend: the async client below the layer.
        cache: the leasing cache to keep true; made with `on_release=releases_ready.set`.
        releases_ready: set whenever the cache queues a release.
        prefix: the leasing prefix.
        ttl: the session lease's TTL in seconds.
        clock: the monotonic clock.
    """

    def __init__(
        self,
        backend: AsyncLeasingBackend,
        cache: LeaseCache,
        releases_ready: asyncio.Event,
        prefix: bytes,
        ttl: int,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._backend = backend
        self._cache = cache
        self._releases_ready = releases_ready
        self._prefix = prefix
        self._ttl = ttl
        self._clock = clock
        self._stopped = False
        self._wake = asyncio.Event()
        self._state = SessionState(ttl)
        self._watch: AsyncWatch | None = None
        self._tasks: list[asyncio.Task[None]] = []

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self, timeout: float | None) -> None:
        """Grant the session lease and start watching, then start the tasks.

        Raises:
            DeadlineExceededError: not done within `timeout`.
        """
        deadline = Deadline(timeout)
        await self.grant(deadline.remaining())
        self._watch = await self._backend.watch(
            self._prefix, prefix=True, timeout=deadline.remaining()
        )
        self._cache.set_watching(watching=True)
        jobs: tuple[tuple[str, Callable[[], Coroutine[Any, Any, None]]], ...] = (
            ("session", self._run_session),
            ("watch", self._run_watch),
            ("release", self._run_release),
        )
        for job, target in jobs:
            task = asyncio.create_task(target(), name=f"etcd_layers.leasing.{job}")
            self._tasks.append(task)

    async def stop(self, *, revoke: bool) -> None:
        """Stop the tasks; with `revoke`, revoke the session lease (deleting its keys)."""
        await self._halt()
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        lease_id, self._state.lease_id = self._state.lease_id, 0
        if revoke and lease_id:
            try:
                await self._backend.revoke(lease_id, timeout=min(BACKGROUND_TIMEOUT, self._ttl))
            except LeaseNotFoundError:
                pass  # already gone, and its keys with it
            except EtcdError:
                # Its leasing keys go when the lease expires; writers wait until then.
                logger.warning("could not revoke leasing session lease %x", lease_id)

    async def _halt(self) -> None:
        self._stopped = True
        self._wake.set()
        self._releases_ready.set()
        self._cache.close()
        watch, self._watch = self._watch, None
        if watch is not None:
            try:
                await watch.cancel()
            except EtcdError:
                logger.debug("canceling the leasing watch failed", exc_info=True)

    async def _client_closed(self) -> None:
        # The client underneath was closed: nothing can be renewed, watched or released any
        # more, so memory stops answering now and every task ends.
        logger.info("the client under a leasing client was closed; leasing stops")
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
        await self._halt()

    def _halted(self) -> bool:
        return self._stopped  # a call: mypy must not narrow it across the awaits

    def lost(self, lease_id: int) -> None:
        """An operation found `lease_id` missing: check the session now."""
        if lease_id == self._state.lease_id:
            self._wake.set()

    @property
    def lease_id(self) -> int:
        """The current session lease (0: none)."""
        return self._state.lease_id

    # --- session -------------------------------------------------------------------------

    async def grant(self, timeout: float | None) -> None:
        """Grant a new session lease and hand it to the cache (the session task's step)."""
        sent = self._clock()
        granted = await self._backend.grant(self._ttl, timeout=timeout)
        self._cache.start_session(granted.id, self._state.granted(granted.id, granted.ttl, sent))

    async def _run_session(self) -> None:
        state = self._state
        backoff = RETRY_BACKOFF
        while not self._stopped:
            if not state.lease_id:
                try:
                    await self.grant(BACKGROUND_TIMEOUT)
                    backoff = RETRY_BACKOFF
                except CanceledError:
                    await self._client_closed()
                    return
                except EtcdError:
                    logger.debug("granting a leasing session lease failed", exc_info=True)
                    await asyncio.sleep(backoff)
                    backoff = next_backoff(backoff)
                continue
            if await _wait(self._wake, max(0.0, state.due() - self._clock())):
                self._wake.clear()
            if self._halted():
                return
            if await self.renew():
                backoff = RETRY_BACKOFF
            else:
                await asyncio.sleep(backoff)
                backoff = next_backoff(backoff)

    async def renew(self) -> bool:
        """Renew the session lease once (see `Ownership.renew`)."""
        state = self._state
        lease_id = state.lease_id
        sent = self._clock()
        try:
            renewal = await self._backend.keep_alive_once(lease_id, timeout=state.renewal_timeout())
        except EtcdError as error:
            failure = renewal_failure(error, state, self._clock())
            if failure is Failure.CLOSED:
                await self._client_closed()
            elif failure is Failure.LOST:
                await self._lose(lease_id)
            return failure is not Failure.RETRY
        self._cache.renewed(lease_id, state.renewed(renewal.ttl, sent))
        return True

    async def _lose(self, lease_id: int) -> None:
        self._cache.end_session(lease_id)
        self._state.lease_id = 0
        logger.info("leasing session lease %x lost; the cache was cleared", lease_id)
        try:  # if it still exists, its leasing keys would hold writers up until it expires
            await self._backend.revoke(lease_id, timeout=self._state.revoke_timeout())
        except EtcdError:
            logger.debug("revoking a lost session lease failed", exc_info=True)

    # --- revocation watch ----------------------------------------------------------------

    async def _run_watch(self) -> None:
        backoff = RETRY_BACKOFF
        while not self._stopped:
            watch = self._watch
            if watch is None:
                try:
                    watch = await self._restart_watch()
                    backoff = RETRY_BACKOFF
                except CanceledError:
                    await self._client_closed()
                    return
                except EtcdError:
                    logger.debug("restarting the leasing watch failed", exc_info=True)
                    await asyncio.sleep(backoff)
                    backoff = next_backoff(backoff)
                    continue
            try:
                async for response in watch:
                    for event in response.events:
                        self.on_event(event)
            except CanceledError:
                if not self._stopped:
                    await self._client_closed()
                return
            except EtcdError:
                if self._halted():
                    return
                # Events may be lost (compaction, for one): give everything back, start afresh.
                logger.warning("the leasing watch failed; dropping the cache", exc_info=True)
                self._cache.set_watching(watching=False)
                self._watch = None
                await watch.cancel()
                continue
            # Iteration ends after our cancel(), or when the client underneath was closed.
            if not self._stopped:
                await self._client_closed()
            return

    async def _restart_watch(self) -> AsyncWatch:
        watch = await self._backend.watch(self._prefix, prefix=True, timeout=BACKGROUND_TIMEOUT)
        self._watch = watch
        if self._stopped:
            await watch.cancel()
            return watch
        self._cache.set_watching(watching=True)
        # Our leasing keys that nothing caches (the cache was dropped) go back to the server.
        listing = await self._backend.get(self._prefix, prefix=True, timeout=BACKGROUND_TIMEOUT)
        for key, incarnation in orphans(self._prefix, self._state, listing.kvs):
            self._cache.release_unless_cached(key, incarnation)
        return watch

    def on_event(self, event: Event) -> None:
        """Apply one event of the leasing prefix to the cache (the watch task's step)."""
        apply_event(self._cache, self._prefix, self._state, event)

    # --- releases ------------------------------------------------------------------------

    async def _run_release(self) -> None:
        cache, ready = self._cache, self._releases_ready
        backoff = RETRY_BACKOFF
        while not self._stopped:
            release = cache.take_release()
            if release is None:
                ready.clear()  # nothing is awaited between the look and the clear
                await _wait(ready, _POLL)
                continue
            try:
                await self._backend.do(
                    release_txn(self._prefix, release.key, release.incarnation),
                    timeout=BACKGROUND_TIMEOUT,
                )
                backoff = RETRY_BACKOFF
            except CanceledError:
                await self._client_closed()
                return
            except EtcdError:
                # Guarded by the create revision, so sending it again can never do harm.
                logger.debug("releasing a leasing key failed; retrying", exc_info=True)
                cache.retry_release(release)
                await asyncio.sleep(backoff)
                backoff = next_backoff(backoff)


async def _wait(event: asyncio.Event, timeout: float) -> bool:
    """Wait up to `timeout` seconds for `event`; return whether it is set."""
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(event.wait(), timeout)
    return event.is_set()
