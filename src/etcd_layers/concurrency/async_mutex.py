"""AsyncMutex: Mutex's distributed lock with coroutines, on the same keys and queue."""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType

from etcd_layers._compat import Self
from etcd_layers.base.async_waiting import wait_deleted
from etcd_layers.base.checks import check_timeout
from etcd_layers.base.compare import Compare
from etcd_layers.base.deadline import Deadline
from etcd_layers.base.keys import StrOrBytes, to_bytes
from etcd_layers.base.responses import ResponseHeader, TxnResponse
from etcd_layers.concurrency._protocol import (
    AwaitDelete,
    Queued,
    Turn,
    contenders_prefix,
    enqueue,
    first_created,
    guarded_delete,
    holds_first,
    lease_key,
    read_enqueue,
    wait_turn,
)
from etcd_layers.concurrency.async_session import AsyncSession
from etcd_layers.concurrency.mutex import LockNotHeldError
from etcd_layers.concurrency.session import CLEANUP_TIMEOUT, SessionExpiredError
from etcd_layers.errors import CanceledError, DeadlineExceededError, EtcdError

logger = logging.getLogger("etcd_layers.concurrency")


def checked_session(session: object) -> AsyncSession:
    """Return `session` if it is an open AsyncSession (TypeError / ValueError otherwise)."""
    if not isinstance(session, AsyncSession):
        raise TypeError(
            f"session must be an AsyncSession (Session goes with Mutex and Election), "
            f"not {type(session).__name__}"
        )
    if not session.lease_id:
        raise ValueError("the session is not open: `await` it or `async with` it first")
    return session


class AsyncMutex:
    """A lock shared by every session that uses the same `prefix`, sync or async (see Mutex).

    The keys, their order and the waits are Mutex's, so an AsyncMutex and a Mutex on one
    prefix exclude each other. Cancelling the task that awaits `lock()` withdraws its key.

    Args:
        session: the open AsyncSession whose lease the key is attached to.
        prefix: the lock's name (str or bytes, not empty).

    Raises:
        TypeError: `session` is not an AsyncSession, or `prefix` is not str or bytes.
        ValueError: `prefix` is empty, or the session is not open.
    """

    def __init__(self, session: AsyncSession, prefix: StrOrBytes) -> None:
        self._session = checked_session(session)
        raw = to_bytes(prefix, name="prefix")
        if not raw:
            raise ValueError("prefix must not be empty")  # as Mutex
        self._contenders = contenders_prefix(raw)
        self._key = lease_key(self._contenders, session.lease_id)
        self._holding: tuple[int, ResponseHeader] | None = None  # (revision, header)

    @property
    def session(self) -> AsyncSession:
        """The session whose lease the key is attached to."""
        return self._session

    @property
    def key(self) -> bytes:
        """This session's key: `prefix + b"/" + <lease id in hex>` (Go's layout)."""
        return self._key

    @property
    def header(self) -> ResponseHeader | None:
        """The header of the response that confirmed the lock (None if not locked here)."""
        holding = self._holding
        return None if holding is None else holding[1]

    @property
    def revision(self) -> int:
        """The fencing token: the create revision of this holder's key.

        Every holder's key is created after the previous holder's was, so the tokens of
        successive holders strictly increase, even past a holder whose session expired. Guard
        a write in etcd with `owner_compare()` (it fails once the lock is lost); hand the token
        to any other store, which keeps the highest token it has seen and refuses a write
        carrying a lower one (see the README's "Fencing tokens").

        Raises:
            LockNotHeldError: this AsyncMutex has not acquired the lock (or unlocked it).
        """
        holding = self._holding
        if holding is None:
            raise LockNotHeldError(f"the mutex {self._key!r} is not held")
        return holding[0]

    async def lock(self, *, timeout: float | None = None) -> None:
        """Wait until this session holds the lock (see Mutex.lock).

        On failure or cancellation, the waiter's key is removed again if this call created it.

        Raises:
            DeadlineExceededError: the lock was not acquired within `timeout` (a TimeoutError).
            SessionExpiredError: the session ended, or its key was deleted, while waiting.
        """
        timeout = check_timeout(timeout)
        deadline = Deadline(timeout)
        queued = await enqueued(self._session, self._contenders, self._key, b"", deadline)
        if queued.holds:
            self._holding = (queued.revision, queued.header)
            return
        try:
            turn = await wait_for_turn(self._session, self._contenders, self._key, queued, deadline)
        except BaseException as err:
            if queued.created:
                await asyncio.shield(withdraw(self._session, self._key, queued))
            if isinstance(err, DeadlineExceededError) and deadline.expired():
                raise DeadlineExceededError(
                    f"lock {self._contenders[:-1]!r} not acquired within {timeout:g}s: "
                    "another session holds it or queued first"
                ) from err
            raise
        self._holding = (queued.revision, turn.header)

    async def try_lock(self, *, timeout: float | None = None) -> bool:
        """Take the lock if it is free (or already this session's), without waiting.

        Returns:
            Whether this session now holds the lock.
        """
        deadline = Deadline(check_timeout(timeout))
        queued = await enqueued(self._session, self._contenders, self._key, b"", deadline)
        if queued.holds:
            self._holding = (queued.revision, queued.header)
            return True
        if queued.created:  # as Mutex.try_lock: a key left behind would block every locker
            await asyncio.shield(
                self._session.client.do(
                    guarded_delete(self._key, queued.revision),
                    timeout=deadline.left_or(CLEANUP_TIMEOUT) or CLEANUP_TIMEOUT,
                )
            )
        return False

    async def unlock(self, *, timeout: float | None = None) -> None:
        """Release the lock by deleting this session's key (as Go, whether held or not)."""
        timeout = check_timeout(timeout)
        await self._session.client.delete(self._key, timeout=timeout)
        self._holding = None

    async def is_owner(self, *, timeout: float | None = None) -> bool:
        """Ask the server whether this session's key holds the lock right now."""
        response = await self._session.client.do(
            first_created(self._contenders), timeout=check_timeout(timeout)
        )
        return holds_first(response, self._key)

    def owner_compare(self) -> Compare:
        """Return a txn comparison that holds only while this AsyncMutex holds the lock.

        Raises:
            LockNotHeldError: this AsyncMutex has not acquired the lock (or unlocked it).
        """
        holding = self._holding
        if holding is None:
            raise LockNotHeldError(f"the mutex {self._key!r} is not held")
        return Compare.create_revision(self._key) == holding[0]

    async def __aenter__(self) -> Self:
        await self.lock()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.unlock()

    def __repr__(self) -> str:
        return f"<AsyncMutex key={self._key!r} held={self._holding is not None}>"


async def enqueued(
    session: AsyncSession, contenders: bytes, key: bytes, value: bytes, deadline: Deadline
) -> Queued:
    """Put the contender's key unless it exists (`enqueue`), and read where it stands.

    A cancellation while the txn is in flight lets it finish and withdraws the key it created,
    so a canceled caller leaves nothing behind.
    """
    request = session.client.do(
        enqueue(contenders, key, value, session.lease_id), timeout=deadline.remaining()
    )
    task = asyncio.ensure_future(request)
    try:
        return read_enqueue(await asyncio.shield(task))
    except asyncio.CancelledError:
        await asyncio.shield(_withdraw_when_done(session, key, task))
        raise


async def _withdraw_when_done(
    session: AsyncSession, key: bytes, task: asyncio.Future[TxnResponse]
) -> None:
    try:
        queued = read_enqueue(await task)
    except EtcdError:
        return  # it failed: nothing known was created (any key goes with the lease)
    if queued.created:
        await withdraw(session, key, queued)


async def wait_for_turn(
    session: AsyncSession, contenders: bytes, key: bytes, queued: Queued, deadline: Deadline
) -> Turn:
    """Drive `wait_turn` (the flow Mutex drives) through the session's client.

    Raises:
        DeadlineExceededError: `deadline` passed.
        SessionExpiredError: the session ended, or the contender's own key is gone.
    """
    flow = wait_turn(contenders, key, queued)
    try:
        step = next(flow)
        while True:
            if isinstance(step, AwaitDelete):
                await _wait_for_delete(session, step.key, step.revision, deadline)
                step = flow.send(None)
            else:
                step = flow.send(await session.client.do(step, timeout=deadline.remaining()))
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]  # the flow's declared result


async def _wait_for_delete(
    session: AsyncSession, key: bytes, revision: int, deadline: Deadline
) -> None:
    """Return once `key`, seen at `revision`, is deleted; the session's end fails the wait."""
    try:
        await wait_deleted(session.client, key, revision, deadline, cancel_on=session.on_done)
    except CanceledError:
        if session.done.is_set():
            raise SessionExpiredError(
                f"session lease {session.lease_id:x} ended while waiting"
            ) from None
        raise


async def withdraw(session: AsyncSession, key: bytes, queued: Queued) -> None:
    """Delete a waiter's key after its wait failed, best effort, within CLEANUP_TIMEOUT."""
    try:
        await session.client.do(guarded_delete(key, queued.revision), timeout=CLEANUP_TIMEOUT)
    except EtcdError as err:
        logger.warning("could not withdraw waiter key %r (%s); it goes with its lease", key, err)
