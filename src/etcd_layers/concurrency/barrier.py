"""Barrier and DoubleBarrier: Go's barrier recipes, on Go's keys, for threads and processes.

Layouts (shared with Go's `experimental/recipes`, so Go processes can take part):

- `Barrier(cli, key)`: the barrier is up while `key` exists (empty value, no lease).
- `DoubleBarrier(session, key, count)`: each participant puts `key/waiters/<Unix ns>` on its
  session's lease; the one that completes the count puts `key/ready`, which releases
  `enter()`; the last one to `leave()` deletes `key/ready` again.
"""

from __future__ import annotations

from dataclasses import dataclass

from etcd_layers.base.checks import check_int, check_timeout
from etcd_layers.base.keys import StrOrBytes
from etcd_layers.concurrency._recipe_driver import (
    RecipeClient,
    checked_client,
    checked_session,
    run_recipe,
)
from etcd_layers.concurrency._recipe_keys import checked_key
from etcd_layers.concurrency._recipes import barrier_hold, barrier_wait, enter, leave
from etcd_layers.concurrency.session import Session
from etcd_layers.errors import EtcdError


class NotEnteredError(EtcdError):
    """`DoubleBarrier.leave()` was called without a successful `enter()` before it."""


@dataclass(frozen=True, slots=True)
class Entered:
    """A participant in a DoubleBarrier: its key and that key's create revision."""

    key: bytes
    revision: int


def check_not_entered(entered: Entered | None, key: bytes) -> None:
    """Refuse a second enter() by one participant: its first key would be lost, yet counted."""
    if entered is not None:
        raise RuntimeError(
            f"this participant entered the double barrier {key!r} already: leave() first, "
            "or use one DoubleBarrier per participant"
        )


def checked_count(count: object) -> int:
    """Return a DoubleBarrier's participant count (TypeError / ValueError if not an int >= 1)."""
    number = check_int(count, "count")
    if number < 1:
        raise ValueError("count must be at least 1")
    return number


class Barrier:
    """A barrier that blocks waiters while it is held (Go's `recipe.Barrier`).

    Any process may hold it and any may release it; `wait()` returns once it is released (or
    at once if it is not held). The key has no lease: a holder that dies leaves it held.

    Args:
        client: a Client, or any layer on one (a namespace, say).
        key: the barrier's key (str or bytes, not empty).

    Raises:
        TypeError: `client` is not a sync KV and Watcher, or `key` is not str or bytes.
        ValueError: `key` is empty.
    """

    def __init__(self, client: RecipeClient, key: StrOrBytes) -> None:
        self._client = checked_client(client, "Barrier")
        self._key = checked_key(key)

    @property
    def key(self) -> bytes:
        """The barrier's key."""
        return self._key

    def hold(self, *, timeout: float | None = None) -> None:
        """Raise the barrier by creating its key.

        Raises:
            KeyExistsError: the barrier is held already (Go's `ErrKeyExists`).
        """
        run_recipe(barrier_hold(self._key), self._client, timeout, "barrier hold")

    def release(self, *, timeout: float | None = None) -> None:
        """Lower the barrier (delete its key), releasing every waiter; held or not."""
        self._client.delete(self._key, timeout=check_timeout(timeout))

    def wait(self, timeout: float | None = None) -> None:
        """Block until the barrier is released (return at once if it is not held).

        Raises:
            DeadlineExceededError: it was still held after `timeout` seconds (a TimeoutError).
        """
        run_recipe(barrier_wait(self._key), self._client, timeout, f"barrier {self._key!r} wait")

    def __repr__(self) -> str:
        return f"<Barrier key={self._key!r}>"


class DoubleBarrier:
    """A barrier that `count` participants enter together and leave together (Go's recipe).

    `enter()` blocks until `count` participants have entered; `leave()` blocks until all of
    them have left. Participants' keys live on their session's lease, so one whose session
    ends counts as gone. One DoubleBarrier object is one participant.

    Args:
        session: the session whose lease the participant's key is attached to.
        key: the barrier's key (str or bytes, not empty).
        count: how many participants enter together (>= 1).

    Raises:
        TypeError: `session` is not a Session, or an argument has the wrong type.
        ValueError: `key` is empty, or `count` < 1.
    """

    def __init__(self, session: Session, key: StrOrBytes, count: int) -> None:
        self._session = checked_session(session, "DoubleBarrier")
        self._key = checked_key(key)
        self._count = checked_count(count)
        self._entered: Entered | None = None  # swapped whole: readers see one state

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

    def enter(self, timeout: float | None = None) -> None:
        """Join, and block until `count` participants have joined.

        On failure or timeout the participant's key is withdrawn, so it does not count.

        Raises:
            RuntimeError: this participant has entered already (and not left).
            TooManyClientsError: `count` participants had entered already.
            DeadlineExceededError: the count was not complete within `timeout` seconds.
            SessionExpiredError: the session ended while waiting.
        """
        check_not_entered(self._entered, self._key)
        flow = enter(self._key, self._count, self._session.lease_id)
        key, revision = run_recipe(
            flow,
            self._session.client,
            timeout,
            f"double barrier {self._key!r} enter",
            session=self._session,
        )
        self._entered = Entered(key, revision)

    def leave(self, timeout: float | None = None) -> None:
        """Leave, and block until every participant has left.

        A leave that times out has still left (its key is withdrawn): calling it again waits
        for the others without counting this participant.

        Raises:
            NotEnteredError: this participant has not entered.
            DeadlineExceededError: others were still in after `timeout` seconds.
            SessionExpiredError: the session ended while waiting.
        """
        entered = self._entered
        if entered is None:
            raise NotEnteredError(f"leave() of the double barrier {self._key!r} before enter()")
        run_recipe(
            leave(self._key, entered.key),
            self._session.client,
            timeout,
            f"double barrier {self._key!r} leave",
            session=self._session,
            owned={entered.key: entered.revision},
        )
        self._entered = None

    def __repr__(self) -> str:
        return f"<DoubleBarrier key={self._key!r} count={self._count} entered={self._entered}>"
