"""Election: campaign for leadership under a prefix, proclaim values, and observe the leader."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from types import TracebackType

from etcd_layers._compat import Self
from etcd_layers.base.checks import check_int, check_timeout
from etcd_layers.base.deadline import Deadline
from etcd_layers.base.keys import StrOrBytes, to_bytes
from etcd_layers.base.protocols import Watch
from etcd_layers.base.responses import GetResponse, KeyValue, ResponseHeader
from etcd_layers.base.waiting import next_response
from etcd_layers.concurrency._observe import LeaderFollower, WatchFrom
from etcd_layers.concurrency._protocol import (
    contenders_prefix,
    enqueue,
    first_created,
    guarded_delete,
    guarded_put,
    lease_key,
    needs_value,
    read_enqueue,
)
from etcd_layers.concurrency.mutex import wait_for_turn, withdraw
from etcd_layers.concurrency.session import Session, SessionClient
from etcd_layers.errors import CanceledError, CompactedError, EtcdError


class ElectionNotLeaderError(EtcdError):
    """proclaim() by a candidate that is not, or no longer, the leader.

    Go's `ErrElectionNotLeader`.
    """


class NoElectionLeaderError(EtcdError):
    """leader() found no leader: nobody campaigns.

    Go's `ErrElectionNoLeader`.
    """


@dataclass(frozen=True, slots=True)
class _Leadership:
    """A won campaign: the create revision of the leader key and the header that confirmed it."""

    revision: int
    header: ResponseHeader | None  # None: resumed, not confirmed by a response of this object


def check_resumed(key: bytes, leader_key: object, leader_revision: object) -> int:
    """Check the arguments of `resume` against the candidate's own `key`; return the revision.

    Raises:
        TypeError: `leader_key` is not str or bytes, or `leader_revision` not an int.
        ValueError: `leader_key` is not `key`, or `leader_revision` is not positive.
    """
    raw = to_bytes(leader_key, name="leader_key")
    revision = check_int(leader_revision, "leader_revision")
    if raw != key:
        # Go takes any key; a key of another lease would then be written under this session's
        # lease by proclaim() and dropped by resign(), so we refuse it.
        raise ValueError(f"leader_key {raw!r} is not this session's key {key!r} in the election")
    if revision == 0:
        raise ValueError("leader_revision must be the leader key's create revision, not 0")
    return revision


class Election:
    """A leader election among every session that uses the same `prefix` (Go's `Election`).

    Candidates queue as Mutex waiters do: each puts `prefix + "/" + <lease id in hex>` on its
    session's lease, holding its value; the oldest key is the leader. A leader whose session
    ends loses its key, and the next candidate becomes leader.

    Args:
        session: the session whose lease the candidate's key is attached to.
        prefix: the election's name (str or bytes, not empty).

    Raises:
        TypeError: `session` is not a Session, or `prefix` is not str or bytes.
        ValueError: `prefix` is empty.
    """

    def __init__(self, session: Session, prefix: StrOrBytes) -> None:
        if not isinstance(session, Session):
            raise TypeError(f"session must be a Session, not {type(session).__name__}")
        raw = to_bytes(prefix, name="prefix")
        if not raw:
            raise ValueError("prefix must not be empty")  # as Mutex, unlike Go
        self._session = session
        self._contenders = contenders_prefix(raw)
        self._key = lease_key(self._contenders, session.lease_id)
        self._leadership: _Leadership | None = None  # swapped whole, as Mutex's state

    @classmethod
    def resume(
        cls,
        session: Session,
        prefix: StrOrBytes,
        leader_key: StrOrBytes,
        leader_revision: int,
    ) -> Self:
        """Return an Election that is already the leader with a key it won before.

        Go's `ResumeElection`, for a process that restarts and takes back the leadership it
        held: give it the same session (for a new process, `Session(cli, lease_id=...)` with
        the old lease) and the leader key and its create revision, as `leader()` or
        `key`/`revision` told them. No
        request is sent; `proclaim` and `resign` then act as leader, and fail or do nothing if
        the key is gone or was created again meanwhile.

        Args:
            session: the session whose lease holds the leader key.
            prefix: the election's name, as given to `Election(...)` (Go's `ResumeElection`
                takes it with the "/" already appended; we append it, as the constructor does).
            leader_key: the leader key, which must be this session's key in the election.
            leader_revision: the leader key's create revision.

        Raises:
            TypeError: a wrong type.
            ValueError: an empty prefix, a key not this session's, or a revision of 0.
        """
        election = cls(session, prefix)
        revision = check_resumed(election.key, leader_key, leader_revision)
        election._leadership = _Leadership(revision, None)
        return election

    @property
    def session(self) -> Session:
        """The session whose lease the candidate's key is attached to."""
        return self._session

    @property
    def key(self) -> bytes:
        """This candidate's key: `prefix + b"/" + <lease id in hex>` (Go's layout)."""
        return self._key

    @property
    def revision(self) -> int:
        """The create revision of the leader key while leader (0 otherwise): Go's `Rev`."""
        leadership = self._leadership
        return 0 if leadership is None else leadership.revision

    @property
    def rev(self) -> int:
        """The same as `revision`, under Go's name."""
        return self.revision

    @property
    def header(self) -> ResponseHeader | None:
        """The header of the response that confirmed the leadership (None: not leader, resumed)."""
        leadership = self._leadership
        return None if leadership is None else leadership.header

    def campaign(self, value: StrOrBytes, *, timeout: float | None = None) -> None:
        """Block until this candidate is the leader, with `value` as the leader's value.

        Campaigning again while leader (or while queued) reuses the key and sets the value.
        On failure the candidate's key is removed again if this call created it.

        Args:
            value: the value to publish as leader.
            timeout: seconds to wait in all; None waits as long as it takes (each request
                still has the client's default deadline).

        Raises:
            DeadlineExceededError: not elected within `timeout` (a TimeoutError).
            SessionExpiredError: the session ended, or the key was deleted, while waiting.
            ElectionNotLeaderError: the existing key vanished while its value was being set.
        """
        raw = to_bytes(value, name="value")
        deadline = Deadline(check_timeout(timeout))
        client = self._session.client
        queued = read_enqueue(
            client.do(
                enqueue(self._contenders, self._key, raw, self._session.lease_id),
                timeout=deadline.remaining(),
            )
        )
        confirmed = queued.header
        try:
            if needs_value(queued, raw):
                # As Go's Campaign: an existing candidacy takes the new value before waiting.
                confirmed = self._set_value(queued.revision, raw, deadline)
            if not queued.holds:
                turn = wait_for_turn(self._session, self._contenders, self._key, queued, deadline)
                confirmed = turn.header
        except BaseException:
            # Go resigns here only when its context is done; a key left behind would make
            # everyone wait for a candidate that stopped campaigning, so we always withdraw it.
            if queued.created:
                withdraw(self._session, self._key, queued)
            raise
        self._leadership = _Leadership(queued.revision, confirmed)

    def _set_value(self, revision: int, value: bytes, deadline: Deadline) -> ResponseHeader:
        answer = self._session.client.do(
            guarded_put(self._key, revision, value, self._session.lease_id),
            timeout=deadline.remaining(),
        )
        if not answer.succeeded:
            raise ElectionNotLeaderError(f"the key {self._key!r} is gone")
        return answer.header

    def proclaim(self, value: StrOrBytes, *, timeout: float | None = None) -> None:
        """Publish a new value as leader, without losing the leadership.

        Args:
            value: the new value.
            timeout: seconds for the request; None: the client's default.

        Raises:
            ElectionNotLeaderError: this candidate has not won (or has lost) the election.
        """
        raw = to_bytes(value, name="value")
        timeout = check_timeout(timeout)
        leadership = self._leadership
        if leadership is None:
            raise ElectionNotLeaderError("proclaim() needs a won campaign()")
        answer = self._session.client.do(
            guarded_put(self._key, leadership.revision, raw, self._session.lease_id),
            timeout=timeout,
        )
        if not answer.succeeded:
            self._leadership = None
            raise ElectionNotLeaderError(f"the leader key {self._key!r} is gone")
        self._leadership = _Leadership(leadership.revision, answer.header)

    def resign(self, *, timeout: float | None = None) -> None:
        """Give up the leadership (nothing happens if not leader); the next candidate wins.

        Args:
            timeout: seconds for the request; None: the client's default.
        """
        timeout = check_timeout(timeout)
        leadership = self._leadership
        if leadership is None:
            return
        self._session.client.do(guarded_delete(self._key, leadership.revision), timeout=timeout)
        self._leadership = None

    def leader(self, *, timeout: float | None = None) -> KeyValue:
        """Return the current leader's key and value.

        Args:
            timeout: seconds for the request; None: the client's default.

        Raises:
            NoElectionLeaderError: nobody is campaigning.
        """
        response = self._session.client.do(
            first_created(self._contenders), timeout=check_timeout(timeout)
        )
        if not response.kvs:
            raise NoElectionLeaderError(f"no leader under {self._contenders!r}")
        return response.kvs[0]

    def observe(self) -> Observation:
        """Return an iterator of the leader's changes (new leader or new value).

        See Observation. It runs on the calling thread: no background thread is started.
        """
        return Observation(self._session.client, self._contenders)

    def __repr__(self) -> str:
        return f"<Election key={self._key!r} leader={self._leadership is not None}>"


class Observation:
    """The leader's changes in one election, as one-key GetResponses (Go's `Election.Observe`).

    Yields the current leader first (once there is one), then every new value it proclaims,
    then the next leader when it is gone, and so on. Iterate it, or call `next(timeout)`, on
    one thread; `cancel()` may come from any thread and ends the iteration. The iteration also
    ends when the client is closed.

    Args:
        client: the object to read and watch through.
        contenders: the election's prefix with Go's "/" appended.
    """

    def __init__(self, client: SessionClient, contenders: bytes) -> None:
        self._client = client
        self._follower = LeaderFollower(contenders)
        self._lock = threading.Lock()  # guards _watch and _canceled against cancel()
        self._watch: Watch | None = None
        self._canceled = False

    def next(self, timeout: float | None = None) -> GetResponse:
        """Return the next change.

        Args:
            timeout: seconds to wait; None waits as long as it takes.

        Raises:
            DeadlineExceededError: nothing changed within `timeout` (a TimeoutError, as
                `Watch.next` raises).
            CanceledError: the observation was canceled or the client closed.
        """
        deadline = Deadline(check_timeout(timeout))
        follower = self._follower
        while True:
            self._check_open()
            if follower.pending:
                return follower.pending.popleft()
            watch = self._watch
            if watch is None:
                read = self._client.do(follower.read(), timeout=deadline.remaining())
                self._start(follower.on_read(read), deadline)
                continue
            try:
                response = next_response(watch, deadline)
            except CompactedError:
                self._stop_watch()  # history is gone: read the leader afresh
                continue
            except CanceledError:
                self._stop_watch()
                raise
            stop, then = follower.on_watch(response)
            if stop:
                self._stop_watch()
            if then is not None:
                self._start(then, deadline)

    def _start(self, start: WatchFrom, deadline: Deadline) -> None:
        watch = self._client.watch(
            start.key,
            prefix=start.prefix,
            start_revision=start.start_revision,
            timeout=deadline.remaining(),
        )
        with self._lock:
            if not self._canceled:
                self._watch = watch
                return
        watch.cancel()  # cancel() came while the watch was being set up
        raise CanceledError("the observation was canceled")

    def _stop_watch(self) -> None:
        with self._lock:
            watch, self._watch = self._watch, None
        if watch is not None:
            watch.cancel()

    def _check_open(self) -> None:
        with self._lock:
            if self._canceled:
                raise CanceledError("the observation was canceled")

    def cancel(self) -> None:
        """End the observation (idempotent; safe from any thread)."""
        with self._lock:
            self._canceled = True
            watch, self._watch = self._watch, None
        if watch is not None:
            watch.cancel()

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> GetResponse:
        try:
            return self.next()
        except CanceledError:
            raise StopIteration from None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.cancel()
