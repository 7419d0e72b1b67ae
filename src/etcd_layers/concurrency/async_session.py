"""AsyncSession: a lease kept alive by an asyncio task, which announces its end without polling."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Generator
from types import TracebackType
from typing import Any, TypeAlias

from etcd_layers._compat import Self
from etcd_layers.base.async_protocols import (
    AsyncKeepAlive,
    AsyncKV,
    AsyncKVWatcherLease,
    AsyncLease,
    AsyncWatcher,
)
from etcd_layers.base.checks import check_int, check_timeout
from etcd_layers.base.deadline import Deadline
from etcd_layers.concurrency.session import CLEANUP_TIMEOUT, DEFAULT_TTL
from etcd_layers.errors import CanceledError, EtcdError, LeaseNotFoundError

logger = logging.getLogger("etcd_layers.concurrency")

# What the async concurrency recipes need: an AsyncClient, or any async layer stacked on one.
AsyncSessionClient: TypeAlias = AsyncKVWatcherLease


def speaks_async_kv_watcher_lease(obj: object) -> bool:
    """Return whether `obj` speaks the AsyncKV, AsyncWatcher and AsyncLease Protocols."""
    return (
        isinstance(obj, AsyncKV) and isinstance(obj, AsyncWatcher) and isinstance(obj, AsyncLease)
    )


class AsyncSession:
    """A lease kept alive by an asyncio task, for AsyncMutex and AsyncElection (see Session).

    `AsyncSession(client, ...)` checks its arguments without I/O; `await session.open()`,
    `await AsyncSession(...)` or `async with AsyncSession(...)` grants the lease (or adopts
    `lease_id`) and starts renewing it with `client.keep_alive` until `close()`. When the
    renewals end for any reason, `done` (an asyncio.Event) is set and every `on_done`
    callback runs on the event loop; `error` then says why.

    Args:
        client: an AsyncClient or any async layer speaking the three async Protocols.
        ttl: the lease's TTL in seconds (> 0); ignored when adopting `lease_id`.
        lease_id: adopt this existing lease instead of granting one (None or 0: grant).
        timeout: seconds for setting up (grant and first renewal); None: the client's default.

    Raises:
        TypeError: `client` is not an async speaker of the three Protocols (a sync Client is
            refused: use Session), or an argument has the wrong type.
        ValueError: `ttl` is not positive, or `lease_id` is negative.
        LeaseNotFoundError: `lease_id` does not exist (on opening).
    """

    def __init__(
        self,
        client: AsyncSessionClient,
        ttl: int = DEFAULT_TTL,
        lease_id: int | None = None,
        *,
        timeout: float | None = None,
    ) -> None:
        if not speaks_async_kv_watcher_lease(client):
            raise TypeError(
                "client must speak the AsyncKV, AsyncWatcher and AsyncLease Protocols "
                f"(use Session for a sync client), not {type(client).__name__}"
            )
        ttl = check_int(ttl, "ttl")
        if ttl == 0:
            raise ValueError("ttl must be > 0 seconds, got 0")
        self._adopt = 0 if lease_id is None else check_int(lease_id, "lease_id")
        self._timeout = check_timeout(timeout)
        self._client = client
        self._lease_id = 0
        self._ttl = ttl
        self._done = asyncio.Event()
        self._callbacks: dict[int, Callable[[], None]] = {}
        self._next_token = 0
        self._error: EtcdError | None = None
        self._closed = False
        self._keep_alive: AsyncKeepAlive | None = None
        self._task: asyncio.Task[None] | None = None

    async def open(self) -> Self:
        """Grant (or adopt) the lease and keep it alive; return the session (idempotent)."""
        if self._task is not None:
            return self
        client, deadline = self._client, Deadline(self._timeout)
        granted = 0
        if self._adopt:
            status = await client.time_to_live(self._adopt, timeout=deadline.remaining())
            if status.ttl == -1:  # etcd's answer for a missing lease
                raise LeaseNotFoundError(f"lease {self._adopt:x} not found")
            self._lease_id, self._ttl = self._adopt, status.granted_ttl
        else:
            grant = await client.grant(self._ttl, timeout=deadline.remaining())
            granted = self._lease_id = grant.id
            self._ttl = grant.ttl  # the server may raise a TTL to its minimum
        try:
            self._keep_alive = await client.keep_alive(self._lease_id, timeout=deadline.remaining())
        except BaseException:
            if granted:  # a lease we made and cannot use goes now
                await asyncio.shield(self._revoke(CLEANUP_TIMEOUT))
            raise
        self._task = asyncio.create_task(self._run(self._keep_alive))
        return self

    def __await__(self) -> Generator[Any, None, Self]:
        return self.open().__await__()

    # --- what users read --------------------------------------------------------------------

    @property
    def client(self) -> AsyncSessionClient:
        """The object this session runs on."""
        return self._client

    @property
    def lease_id(self) -> int:
        """The id of the session's lease (0 until opened)."""
        return self._lease_id

    @property
    def ttl(self) -> int:
        """The lease's granted TTL in seconds (the asked one until opened)."""
        return self._ttl

    @property
    def done(self) -> asyncio.Event:
        """Set once the lease is no longer kept alive (Go's `Session.Done`); never set it."""
        return self._done

    @property
    def error(self) -> EtcdError | None:
        """Why the keep-alive ended, if an error ended it (None while running or after close)."""
        return self._error

    def on_done(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback()` once the session is done (at once, here, if it already is).

        Callbacks run on the event loop, after `done` is set; one that raises is logged and
        does not stop the others.

        Returns:
            A function that unregisters the callback (does nothing once it ran).

        Raises:
            TypeError: `callback` is not callable.
        """
        if not callable(callback):
            raise TypeError(f"callback must be callable, not {type(callback).__name__}")
        if not self._done.is_set():
            token = self._next_token
            self._next_token += 1
            self._callbacks[token] = callback
            return lambda: self._unregister(token)
        callback()
        return _nothing

    def _unregister(self, token: int) -> None:
        self._callbacks.pop(token, None)

    # --- lifecycle ------------------------------------------------------------------------

    async def orphan(self) -> None:
        """Stop renewing the lease without revoking it; `done` is set before this returns."""
        if self._keep_alive is not None:
            await self._keep_alive.cancel()
        task = self._task
        if task is None:
            self._finish(None)
        elif task is not asyncio.current_task():  # a done callback may call this
            await asyncio.shield(task)

    async def close(self, *, timeout: float | None = None) -> None:
        """Stop renewing and revoke the lease, deleting every key attached to it (idempotent).

        Revoking is best effort: a failure is logged, as the lease expires within its TTL.

        Args:
            timeout: seconds for the revoke; None means the session's TTL.
        """
        timeout = check_timeout(timeout)
        if self._closed:
            return
        self._closed = True
        await self.orphan()
        if self._lease_id:
            await self._revoke(self._ttl if timeout is None else timeout)

    async def _revoke(self, timeout: float) -> None:
        try:
            await self._client.revoke(self._lease_id, timeout=timeout)
        except (LeaseNotFoundError, CanceledError):
            pass  # already expired or revoked, or the client is closed: the lease ends anyway
        except EtcdError as err:
            logger.warning(
                "revoking session lease %x failed (%s); it expires within %ss",
                self._lease_id,
                err,
                self._ttl,
            )

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        state = "done" if self._done.is_set() else "alive"
        return f"<AsyncSession lease={self._lease_id:x} ttl={self._ttl} {state}>"

    # --- the keep-alive task ----------------------------------------------------------------

    async def _run(self, keep_alive: AsyncKeepAlive) -> None:
        error: EtcdError | None = None
        try:
            async for _ in keep_alive:
                pass  # each renewal only proves the lease is alive
        except EtcdError as err:  # LeaseNotFoundError: lost, or possibly expired unconfirmed
            error = err
        finally:
            self._finish(error)

    def _finish(self, error: EtcdError | None) -> None:
        if self._done.is_set():
            return
        self._error = error
        self._done.set()
        callbacks = list(self._callbacks.values())
        self._callbacks.clear()
        if error is not None:
            logger.info("session lease %x ended: %s", self._lease_id, error)
        for callback in callbacks:
            try:
                callback()
            except Exception:
                logger.exception("a done callback of session lease %x failed", self._lease_id)


def _nothing() -> None:
    """Unregister a callback that already ran."""
