"""Mutex: a distributed lock whose waiters are served in the order they queued."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from types import TracebackType

from etcd_layers._compat import Self
from etcd_layers.base.checks import check_timeout
from etcd_layers.base.compare import Compare
from etcd_layers.base.deadline import Deadline
from etcd_layers.base.keys import StrOrBytes, to_bytes
from etcd_layers.base.responses import ResponseHeader
from etcd_layers.base.waiting import wait_deleted
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
from etcd_layers.concurrency.session import CLEANUP_TIMEOUT, Session, SessionExpiredError
from etcd_layers.errors import CanceledError, DeadlineExceededError, EtcdError

logger = logging.getLogger("etcd_layers.concurrency")


class LockNotHeldError(EtcdError):
    """`Mutex.owner_compare()` was called while the Mutex does not hold its lock."""


@dataclass(frozen=True, slots=True)
class _Holding:
    """The lock as held: the create revision of the key and the header that confirmed it."""

    revision: int
    header: ResponseHeader


class Mutex:
    """A lock shared by every session that uses the same `prefix` (Go's `concurrency.Mutex`).

    Each session queues its own key, `prefix + "/" + <lease id in hex>`, on its lease; the key
    with the lowest create revision holds the lock. A waiter watches only the key just ahead of
    it, so an unlock wakes one waiter, not all of them. A holder whose session ends loses the
    lock with its key, and the next waiter gets it.

    As in Go, the lock belongs to the session: a second `lock()` through the same session
    (from any Mutex object or thread) returns at once, and `unlock()` releases it for all of
    them. Give each thread that must exclude the others its own Session.

    Args:
        session: the session whose lease the key is attached to.
        prefix: the lock's name (str or bytes, not empty).

    Raises:
        TypeError: `session` is not a Session, or `prefix` is not str or bytes.
        ValueError: `prefix` is empty.
    """

    def __init__(self, session: Session, prefix: StrOrBytes) -> None:
        if not isinstance(session, Session):
            raise TypeError(f"session must be a Session, not {type(session).__name__}")
        raw = to_bytes(prefix, name="prefix")
        if not raw:
            # Go accepts "", giving contenders under "/", which also holds every other lock
            # whose name starts with "/"; we refuse it instead.
            raise ValueError("prefix must not be empty")
        self._session = session
        self._contenders = contenders_prefix(raw)
        self._key = lease_key(self._contenders, session.lease_id)
        # One reference, swapped whole, so readers on other threads never see half a state.
        self._holding: _Holding | None = None

    @property
    def session(self) -> Session:
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
        return None if holding is None else holding.header

    @property
    def revision(self) -> int:
        """The fencing token: the create revision of this holder's key.

        Every holder's key is created after the previous holder's was, so the tokens of
        successive holders strictly increase, even past a holder whose session expired. Guard
        a write in etcd with `owner_compare()` (it fails once the lock is lost); hand the token
        to any other store, which keeps the highest token it has seen and refuses a write
        carrying a lower one (see the README's "Fencing tokens").

        Raises:
            LockNotHeldError: this Mutex has not acquired the lock (or unlocked it).
        """
        holding = self._holding
        if holding is None:
            raise LockNotHeldError(f"the mutex {self._key!r} is not held")
        return holding.revision

    def lock(self, *, timeout: float | None = None) -> None:
        """Block until this session holds the lock.

        On failure (timeout, session ended, error), the waiter's key is removed again if this
        call created it, so a failed waiter leaves no trace and blocks nobody.

        Args:
            timeout: seconds to wait in all; None waits as long as it takes (each request
                still has the client's default deadline).

        Raises:
            DeadlineExceededError: the lock was not acquired within `timeout` (a TimeoutError).
            SessionExpiredError: the session ended, or its key was deleted, while waiting.
        """
        timeout = check_timeout(timeout)
        deadline = Deadline(timeout)
        queued = self._enqueue(deadline)
        if queued.holds:
            self._holding = _Holding(queued.revision, queued.header)
            return
        try:
            turn = wait_for_turn(self._session, self._contenders, self._key, queued, deadline)
        except BaseException as err:
            if queued.created:
                withdraw(self._session, self._key, queued)
            if isinstance(err, DeadlineExceededError) and deadline.expired():
                # The wait's own message speaks of watches; say what the caller asked for.
                raise DeadlineExceededError(
                    f"lock {self._contenders[:-1]!r} not acquired within {timeout:g}s: "
                    "another session holds it or queued first"
                ) from err
            raise
        self._holding = _Holding(queued.revision, turn.header)

    def try_lock(self, *, timeout: float | None = None) -> bool:
        """Take the lock if it is free (or already this session's), without waiting (Go's TryLock).

        Args:
            timeout: seconds for the requests; None: the client's default.

        Returns:
            Whether this session now holds the lock.
        """
        deadline = Deadline(check_timeout(timeout))
        queued = self._enqueue(deadline)
        if queued.holds:
            self._holding = _Holding(queued.revision, queued.header)
            return True
        if queued.created:
            # Go deletes the key even when it existed before; that key is another call's place
            # in the queue (the same session waiting on another thread), so we leave it. A key
            # left behind would block every later locker, so this delete gets time even when
            # the call's is spent, and its failure is raised.
            self._session.client.do(
                guarded_delete(self._key, queued.revision),
                timeout=deadline.left_or(CLEANUP_TIMEOUT) or CLEANUP_TIMEOUT,
            )
        return False

    def _enqueue(self, deadline: Deadline) -> Queued:
        response = self._session.client.do(
            enqueue(self._contenders, self._key, b"", self._session.lease_id),
            timeout=deadline.remaining(),
        )
        return read_enqueue(response)

    def unlock(self, *, timeout: float | None = None) -> None:
        """Release the lock by deleting this session's key (as Go, whether held or not).

        Args:
            timeout: seconds for the request; None: the client's default.
        """
        timeout = check_timeout(timeout)
        self._session.client.delete(self._key, timeout=timeout)
        self._holding = None

    def is_owner(self, *, timeout: float | None = None) -> bool:
        """Ask the server whether this session's key holds the lock right now.

        Args:
            timeout: seconds for the request; None: the client's default.
        """
        response = self._session.client.do(
            first_created(self._contenders), timeout=check_timeout(timeout)
        )
        return holds_first(response, self._key)

    def owner_compare(self) -> Compare:
        """Return a txn comparison that holds only while this Mutex holds the lock.

        Go's `Mutex.IsOwner`: guard writes with it, `cli.txn([mutex.owner_compare()], ...)`, so
        a holder that lost its lock (session expired) cannot write.

        Raises:
            LockNotHeldError: this Mutex has not acquired the lock (or unlocked it).
        """
        holding = self._holding
        if holding is None:
            raise LockNotHeldError(f"the mutex {self._key!r} is not held")
        return Compare.create_revision(self._key) == holding.revision

    def __enter__(self) -> Self:
        self.lock()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.unlock()

    def __repr__(self) -> str:
        return f"<Mutex key={self._key!r} held={self._holding is not None}>"


def wait_for_turn(
    session: Session, contenders: bytes, key: bytes, queued: Queued, deadline: Deadline
) -> Turn:
    """Drive `wait_turn` (see there) through the session's client.

    Raises:
        DeadlineExceededError: `deadline` passed.
        SessionExpiredError: the session ended, or the contender's own key is gone.
    """
    flow = wait_turn(contenders, key, queued)
    try:
        step = next(flow)
        while True:
            if isinstance(step, AwaitDelete):
                _wait_for_delete(session, step.key, step.revision, deadline)
                step = flow.send(None)
            else:
                step = flow.send(session.client.do(step, timeout=deadline.remaining()))
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]  # the flow's declared result


def _wait_for_delete(session: Session, key: bytes, revision: int, deadline: Deadline) -> None:
    """Return once `key`, seen at `revision`, is deleted (Go's `waitDelete`).

    The session's end cancels the watch, so a waiter whose session died fails at once instead
    of waiting for a turn it can never take. A compacted history returns too: the caller
    reads the queue again.
    """
    try:
        wait_deleted(session.client, key, revision, deadline, cancel_on=session.on_done)
    except CanceledError:
        if session.done.is_set():
            raise SessionExpiredError(
                f"session lease {session.lease_id:x} ended while waiting"
            ) from None
        raise


def withdraw(session: Session, key: bytes, queued: Queued) -> None:
    """Delete a waiter's key after its wait failed, best effort and bounded in time.

    The caller's deadline may be spent, so this has its own (`CLEANUP_TIMEOUT`); the key is
    deleted only if it is still the one created at `queued.revision`. A failure is logged: the
    wait's own error is the one the caller raises, and the key goes with the lease anyway.
    """
    try:
        session.client.do(guarded_delete(key, queued.revision), timeout=CLEANUP_TIMEOUT)
    except EtcdError as err:
        logger.warning("could not withdraw waiter key %r (%s); it goes with its lease", key, err)
