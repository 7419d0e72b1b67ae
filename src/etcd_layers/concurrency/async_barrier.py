"""AsyncBarrier and AsyncDoubleBarrier: the barrier recipes with coroutines, on the same keys.

The keys and waits are Barrier's and DoubleBarrier's (see etcd_layers.concurrency.barrier),
so sync, async and Go processes share one barrier. Cancelling a task in `enter()` or `leave()`
withdraws the participant's key, as a timeout does.
"""

from __future__ import annotations

from etcd_layers.base.checks import check_timeout
from etcd_layers.base.keys import StrOrBytes
from etcd_layers.concurrency._async_recipe_driver import (
    AsyncRecipeClient,
    checked_client,
    checked_session,
    run_recipe,
)
from etcd_layers.concurrency._recipe_keys import checked_key
from etcd_layers.concurrency._recipes import barrier_hold, barrier_wait, enter, leave
from etcd_layers.concurrency.async_session import AsyncSession
from etcd_layers.concurrency.barrier import (
    Entered,
    NotEnteredError,
    check_not_entered,
    checked_count,
)


class AsyncBarrier:
    """A barrier that blocks waiters while it is held (see Barrier), with coroutines.

    Args:
        client: an AsyncClient, or any async layer on one.
        key: the barrier's key (str or bytes, not empty).

    Raises:
        TypeError: `client` is not an AsyncKV and AsyncWatcher, or `key` is not str or bytes.
        ValueError: `key` is empty.
    """

    def __init__(self, client: AsyncRecipeClient, key: StrOrBytes) -> None:
        self._client = checked_client(client, "Barrier")
        self._key = checked_key(key)

    @property
    def key(self) -> bytes:
        """The barrier's key."""
        return self._key

    async def hold(self, *, timeout: float | None = None) -> None:
        """Raise the barrier by creating its key (KeyExistsError if it is held already)."""
        await run_recipe(barrier_hold(self._key), self._client, timeout, "barrier hold")

    async def release(self, *, timeout: float | None = None) -> None:
        """Lower the barrier (delete its key), releasing every waiter; held or not."""
        await self._client.delete(self._key, timeout=check_timeout(timeout))

    async def wait(self, timeout: float | None = None) -> None:
        """Wait until the barrier is released (DeadlineExceededError after `timeout`)."""
        what = f"barrier {self._key!r} wait"
        await run_recipe(barrier_wait(self._key), self._client, timeout, what)

    def __repr__(self) -> str:
        return f"<AsyncBarrier key={self._key!r}>"


class AsyncDoubleBarrier:
    """A barrier that `count` participants enter and leave together (see DoubleBarrier).

    Args:
        session: the open AsyncSession whose lease the participant's key is attached to.
        key: the barrier's key (str or bytes, not empty).
        count: how many participants enter together (>= 1).

    Raises:
        TypeError: `session` is not an AsyncSession, or an argument has the wrong type.
        ValueError: `key` is empty, `count` < 1, or the session is not open.
    """

    def __init__(self, session: AsyncSession, key: StrOrBytes, count: int) -> None:
        self._session = checked_session(session, "DoubleBarrier")
        self._key = checked_key(key)
        self._count = checked_count(count)
        self._entered: Entered | None = None

    @property
    def key(self) -> bytes:
        """The barrier's key."""
        return self._key

    @property
    def count(self) -> int:
        """How many participants enter together."""
        return self._count

    @property
    def entered(self) -> Entered | None:
        """This participant's key and revision while entered (None otherwise)."""
        return self._entered

    async def enter(self, timeout: float | None = None) -> None:
        """Join, and wait until `count` participants have joined (see DoubleBarrier.enter)."""
        check_not_entered(self._entered, self._key)
        key, revision = await run_recipe(
            enter(self._key, self._count, self._session.lease_id),
            self._session.client,
            timeout,
            f"double barrier {self._key!r} enter",
            session=self._session,
        )
        self._entered = Entered(key, revision)

    async def leave(self, timeout: float | None = None) -> None:
        """Leave, and wait until every participant has left (see DoubleBarrier.leave)."""
        entered = self._entered
        if entered is None:
            raise NotEnteredError(f"leave() of the double barrier {self._key!r} before enter()")
        await run_recipe(
            leave(self._key, entered.key),
            self._session.client,
            timeout,
            f"double barrier {self._key!r} leave",
            session=self._session,
            owned={entered.key: entered.revision},
        )
        self._entered = None

    def __repr__(self) -> str:
        return f"<AsyncDoubleBarrier key={self._key!r} count={self._count} entered={self._entered}>"
