"""RWMutex: Go's reader-writer lock recipe, on Go's keys: many readers or one writer.

Layout (shared with Go's `experimental/recipes`, so Go and Python processes can share a lock):
a reader puts `prefix/read/<Unix ns>`, a writer `prefix/write/<Unix ns>`, on its session's
lease. A reader holds the lock once no writer key created before its own is left; a writer
once no key at all created before its own is left. Readers that come after a waiting writer
queue behind it, so a stream of readers cannot starve writers.
"""

from __future__ import annotations

from dataclasses import dataclass

from etcd_layers.base.checks import check_timeout
from etcd_layers.base.keys import StrOrBytes
from etcd_layers.concurrency._recipe_driver import checked_session, run_recipe
from etcd_layers.concurrency._recipe_keys import checked_key
from etcd_layers.concurrency._recipes import rw_lock
from etcd_layers.concurrency.mutex import LockNotHeldError
from etcd_layers.concurrency.session import Session


@dataclass(frozen=True, slots=True)
class RWHolding:
    """What an RWMutex holds: its key, that key's create revision, and whether it writes."""

    key: bytes
    revision: int
    write: bool


def check_can_lock(holding: RWHolding | None, prefix: bytes) -> None:
    """Refuse a second lock through one RWMutex object (its key would be lost, held for ever)."""
    if holding is not None:
        kind = "write" if holding.write else "read"
        raise RuntimeError(
            f"the RWMutex {prefix!r} holds a {kind} lock already: use one RWMutex per holder"
        )


def check_holds(holding: RWHolding | None, write: bool, prefix: bytes) -> RWHolding:
    """Return what is held if it is the kind of lock being released (LockNotHeldError if not)."""
    if holding is None or holding.write != write:
        kind = "write" if write else "read"
        raise LockNotHeldError(f"the RWMutex {prefix!r} does not hold a {kind} lock")
    return holding


class RWMutex:
    """A reader-writer lock shared by every session that uses the same `prefix` (Go's recipe).

    One RWMutex object is one holder: `rlock()` or `lock()`, then `runlock()` or `unlock()`.
    Each lock puts a fresh key, so two objects on one session are two holders (unlike Mutex,
    which is reentrant per session). A holder whose session ends loses its lock with its key.

    Args:
        session: the session whose lease the holder's key is attached to.
        prefix: the lock's name (str or bytes, not empty).

    Raises:
        TypeError: `session` is not a Session, or `prefix` is not str or bytes.
        ValueError: `prefix` is empty.
    """

    def __init__(self, session: Session, prefix: StrOrBytes) -> None:
        self._session = checked_session(session, "RWMutex")
        self._prefix = checked_key(prefix, "prefix")
        self._holding: RWHolding | None = None  # swapped whole: readers see one state

    @property
    def session(self) -> Session:
        """The session whose lease the holder's key is attached to."""
        return self._session

    @property
    def holding(self) -> RWHolding | None:
        """The key held and its kind (None while not locked through this object)."""
        return self._holding

    def rlock(self, timeout: float | None = None) -> None:
        """Block until this holder may read: no writer that queued before it is left.

        On failure or timeout, the waiter's key is withdrawn, as Mutex.lock's.

        Raises:
            RuntimeError: this object holds a lock already.
            DeadlineExceededError: not acquired within `timeout` seconds (a TimeoutError).
            SessionExpiredError: the session ended, or its key was deleted, while waiting.
        """
        self._lock(False, timeout)

    def lock(self, timeout: float | None = None) -> None:
        """Block until this holder may write: no reader or writer that queued before it is left.

        Raises:
            RuntimeError: this object holds a lock already.
            DeadlineExceededError: not acquired within `timeout` seconds (a TimeoutError).
            SessionExpiredError: the session ended, or its key was deleted, while waiting.
        """
        self._lock(True, timeout)

    def _lock(self, write: bool, timeout: float | None) -> None:
        check_can_lock(self._holding, self._prefix)
        kind = "write" if write else "read"
        key, revision = run_recipe(
            rw_lock(self._prefix, write, self._session.lease_id),
            self._session.client,
            timeout,
            f"{kind} lock {self._prefix!r}",
            session=self._session,
        )
        self._holding = RWHolding(key, revision, write)

    def runlock(self, *, timeout: float | None = None) -> None:
        """Release the read lock (delete this holder's key).

        Raises:
            LockNotHeldError: this object holds no read lock.
        """
        self._unlock(False, timeout)

    def unlock(self, *, timeout: float | None = None) -> None:
        """Release the write lock (delete this holder's key).

        Raises:
            LockNotHeldError: this object holds no write lock.
        """
        self._unlock(True, timeout)

    def _unlock(self, write: bool, timeout: float | None) -> None:
        holding = check_holds(self._holding, write, self._prefix)
        self._session.client.delete(holding.key, timeout=check_timeout(timeout))
        self._holding = None

    def __repr__(self) -> str:
        return f"<RWMutex prefix={self._prefix!r} holding={self._holding}>"
