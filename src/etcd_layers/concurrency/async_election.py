"""AsyncElection: Election's campaign, proclaim and observation with coroutines, on its keys."""

from __future__ import annotations

import asyncio
from types import TracebackType

from etcd_layers._compat import Self
from etcd_layers.base.async_protocols import AsyncWatch
from etcd_layers.base.async_waiting import next_response
from etcd_layers.base.checks import check_timeout
from etcd_layers.base.deadline import Deadline
from etcd_layers.base.keys import StrOrBytes, to_bytes
from etcd_layers.base.responses import GetResponse, KeyValue, ResponseHeader
from etcd_layers.concurrency._observe import LeaderFollower, WatchFrom
from etcd_layers.concurrency._protocol import (
    contenders_prefix,
    first_created,
    guarded_delete,
    guarded_put,
    lease_key,
    needs_value,
)
from etcd_layers.concurrency.async_mutex import checked_session, enqueued, wait_for_turn, withdraw
from etcd_layers.concurrency.async_session import AsyncSession, AsyncSessionClient
from etcd_layers.concurrency.election import (
    ElectionNotLeaderError,
    NoElectionLeaderError,
    check_resumed,
)
from etcd_layers.errors import CanceledError, CompactedError


class AsyncElection:
    """A leader election among every session on the same `prefix`, sync or async (see Election).

    The keys and the queue are Election's, so AsyncElection and Election candidates on one
    prefix campaign against each other.

    Args:
        session: the open AsyncSession whose lease the candidate's key is attached to.
        prefix: the election's name (str or bytes, not empty).

    Raises:
        TypeError: `session` is not an AsyncSession, or `prefix` is not str or bytes.
        ValueError: `prefix` is empty, or the session is not open.
    """

    def __init__(self, session: AsyncSession, prefix: StrOrBytes) -> None:
        self._session = checked_session(session)
        raw = to_bytes(prefix, name="prefix")
        if not raw:
            raise ValueError("prefix must not be empty")  # as Election
        self._contenders = contenders_prefix(raw)
        self._key = lease_key(self._contenders, session.lease_id)
        self._leadership: tuple[int, ResponseHeader | None] | None = None  # (revision, header)

    @classmethod
    def resume(
        cls,
        session: AsyncSession,
        prefix: StrOrBytes,
        leader_key: StrOrBytes,
        leader_revision: int,
    ) -> Self:
        """Return an AsyncElection that is already the leader with a key won before.

        Go's `ResumeElection`; see `Election.resume`. No request is sent.

        Raises:
            TypeError: a wrong type.
            ValueError: an empty prefix, a key not this session's, or a revision of 0.
        """
        election = cls(session, prefix)
        revision = check_resumed(election.key, leader_key, leader_revision)
        election._leadership = (revision, None)
        return election

    @property
    def session(self) -> AsyncSession:
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
        return 0 if leadership is None else leadership[0]

    @property
    def rev(self) -> int:
        """The same as `revision`, under Go's name."""
        return self.revision

    @property
    def header(self) -> ResponseHeader | None:
        """The header of the response that confirmed the leadership (None: not leader, resumed)."""
        leadership = self._leadership
        return None if leadership is None else leadership[1]

    async def campaign(self, value: StrOrBytes, *, timeout: float | None = None) -> None:
        """Wait until this candidate is the leader, with `value` as its value (see Election).

        On failure or cancellation the candidate's key is removed again if this call created it.

        Raises:
            DeadlineExceededError: not elected within `timeout` (a TimeoutError).
            SessionExpiredError: the session ended, or the key was deleted, while waiting.
            ElectionNotLeaderError: the existing key vanished while its value was being set.
        """
        raw = to_bytes(value, name="value")
        deadline = Deadline(check_timeout(timeout))
        session = self._session
        queued = await enqueued(session, self._contenders, self._key, raw, deadline)
        confirmed = queued.header
        try:
            if needs_value(queued, raw):
                confirmed = await self._set_value(queued.revision, raw, deadline)
            if not queued.holds:
                turn = await wait_for_turn(session, self._contenders, self._key, queued, deadline)
                confirmed = turn.header
        except BaseException:
            if queued.created:  # as Election: never leave a key others would wait for
                await asyncio.shield(withdraw(session, self._key, queued))
            raise
        self._leadership = (queued.revision, confirmed)

    async def _set_value(self, revision: int, value: bytes, deadline: Deadline) -> ResponseHeader:
        answer = await self._session.client.do(
            guarded_put(self._key, revision, value, self._session.lease_id),
            timeout=deadline.remaining(),
        )
        if not answer.succeeded:
            raise ElectionNotLeaderError(f"the key {self._key!r} is gone")
        return answer.header

    async def proclaim(self, value: StrOrBytes, *, timeout: float | None = None) -> None:
        """Publish a new value as leader, without losing the leadership.

        Raises:
            ElectionNotLeaderError: this candidate has not won (or has lost) the election.
        """
        raw = to_bytes(value, name="value")
        timeout = check_timeout(timeout)
        leadership = self._leadership
        if leadership is None:
            raise ElectionNotLeaderError("proclaim() needs a won campaign()")
        answer = await self._session.client.do(
            guarded_put(self._key, leadership[0], raw, self._session.lease_id), timeout=timeout
        )
        if not answer.succeeded:
            self._leadership = None
            raise ElectionNotLeaderError(f"the leader key {self._key!r} is gone")
        self._leadership = (leadership[0], answer.header)

    async def resign(self, *, timeout: float | None = None) -> None:
        """Give up the leadership (nothing happens if not leader); the next candidate wins."""
        timeout = check_timeout(timeout)
        leadership = self._leadership
        if leadership is None:
            return
        await self._session.client.do(guarded_delete(self._key, leadership[0]), timeout=timeout)
        self._leadership = None

    async def leader(self, *, timeout: float | None = None) -> KeyValue:
        """Return the current leader's key and value.

        Raises:
            NoElectionLeaderError: nobody is campaigning.
        """
        response = await self._session.client.do(
            first_created(self._contenders), timeout=check_timeout(timeout)
        )
        if not response.kvs:
            raise NoElectionLeaderError(f"no leader under {self._contenders!r}")
        return response.kvs[0]

    def observe(self) -> AsyncObservation:
        """Return an async iterator of the leader's changes (see AsyncObservation)."""
        return AsyncObservation(self._session.client, self._contenders)

    def __repr__(self) -> str:
        return f"<AsyncElection key={self._key!r} leader={self._leadership is not None}>"


class AsyncObservation:
    """The leader's changes in one election, as one-key GetResponses (see Observation).

    `async for` it, or `await next(timeout)`, in one task; `await cancel()` ends it.

    Args:
        client: the object to read and watch through.
        contenders: the election's prefix with Go's "/" appended.
    """

    def __init__(self, client: AsyncSessionClient, contenders: bytes) -> None:
        self._client = client
        self._follower = LeaderFollower(contenders)
        self._watch: AsyncWatch | None = None
        self._canceled = False

    async def next(self, timeout: float | None = None) -> GetResponse:
        """Return the next change.

        Raises:
            DeadlineExceededError: nothing changed within `timeout` (a TimeoutError).
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
                read = await self._client.do(follower.read(), timeout=deadline.remaining())
                await self._start(follower.on_read(read), deadline)
                continue
            try:
                response = await next_response(watch, deadline)
            except CompactedError:
                await self._stop_watch()  # history is gone: read the leader afresh
                continue
            except CanceledError:
                await self._stop_watch()
                raise
            stop, then = follower.on_watch(response)
            if stop:
                await self._stop_watch()
            if then is not None:
                await self._start(then, deadline)

    async def _start(self, start: WatchFrom, deadline: Deadline) -> None:
        watch = await self._client.watch(
            start.key,
            prefix=start.prefix,
            start_revision=start.start_revision,
            timeout=deadline.remaining(),
        )
        if self._canceled:  # cancel() came while the watch was being set up
            await watch.cancel()
            raise CanceledError("the observation was canceled")
        self._watch = watch

    async def _stop_watch(self) -> None:
        watch, self._watch = self._watch, None
        if watch is not None:
            await watch.cancel()

    def _check_open(self) -> None:
        if self._canceled:
            raise CanceledError("the observation was canceled")

    async def cancel(self) -> None:
        """End the observation (idempotent)."""
        self._canceled = True
        await self._stop_watch()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> GetResponse:
        try:
            return await self.next()
        except CanceledError:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.cancel()
