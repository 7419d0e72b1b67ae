"""AsyncRWMutex: the reader-writer lock recipe with coroutines, on RWMutex's keys.

The keys and waits are RWMutex's (see etcd_layers.concurrency.rwmutex), so sync, async and Go
processes share one lock. Cancelling a task in `rlock()` or `lock()` withdraws its key.
"""

from __future__ import annotations

from etcd_layers.base.checks import check_timeout
from etcd_layers.base.keys import StrOrBytes
from etcd_layers.concurrency._async_recipe_driver import checked_session, run_recipe
from etcd_layers.concurrency._recipe_keys import checked_key
from etcd_layers.concurrency._recipes import rw_lock
from etcd_layers.concurrency.async_session import AsyncSession
from etcd_layers.concurrency.rwmutex import RWHolding, check_can_lock, check_holds


class AsyncRWMutex:
    """A reader-writer lock shared by every session on `prefix`, sync or async (see RWMutex).

    Args:
        session: the open AsyncSession whose lease the holder's key is attached to.
        prefix: the lock's name (str or bytes, not empty).
    """

    def __init__(self, session: AsyncSession, prefix: StrOrBytes) -> None:
        self._session = checked_session(session, "RWMutex")
        self._prefix = checked_key(prefix, "prefix")
        self._holding: RWHolding | None = None

    @property
    def session(self) -> AsyncSession:
        """The session whose lease the holder's key is attached to."""
        return self._session

    @property
    def holding(self) -> RWHolding | None:
        """The key held and its kind (None while not locked through this object)."""
        return self._holding

    async def rlock(self, timeout: float | None = None) -> None:
        """Wait until this holder may read (see RWMutex.rlock)."""
        await self._lock(False, timeout)

    async def lock(self, timeout: float | None = None) -> None:
        """Wait until this holder may write (see RWMutex.lock)."""
        await self._lock(True, timeout)

    async def _lock(self, write: bool, timeout: float | None) -> None:
        check_can_lock(self._holding, self._prefix)
        kind = "write" if write else "read"
        key, revision = await run_recipe(
            rw_lock(self._prefix, write, self._session.lease_id),
            self._session.client,
            timeout,
            f"{kind} lock {self._prefix!r}",
            session=self._session,
        )
        self._holding = RWHolding(key, revision, write)

    async def runlock(self, *, timeout: float | None = None) -> None:
        """Release the read lock (LockNotHeldError if this object holds none)."""
        await self._unlock(False, timeout)

    async def unlock(self, *, timeout: float | None = None) -> None:
        """Release the write lock (LockNotHeldError if this object holds none)."""
        await self._unlock(True, timeout)

    async def _unlock(self, write: bool, timeout: float | None) -> None:
        holding = check_holds(self._holding, write, self._prefix)
        await self._session.client.delete(holding.key, timeout=check_timeout(timeout))
        self._holding = None

    def __repr__(self) -> str:
        return f"<AsyncRWMutex prefix={self._prefix!r} holding={self._holding}>"
