"""The key protocol of Mutex and Election, as pure Ops and readings of their answers.

Both follow Go's `clientv3/concurrency`: every contender puts its own key, `prefix + "/" +
<lease id in hex>`, attached to its session's lease; contenders are served in the order of
their keys' create revisions, and each one waits only for the delete of the key created just
before its own. Nothing here does I/O: the wait for a turn is a generator flow that the
shells drive.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, replace
from typing import Final, TypeAlias

from etcd_layers.base.compare import Compare
from etcd_layers.base.ops import GetOp, Op, SortOrder, SortTarget, TxnOp
from etcd_layers.base.responses import (
    EventType,
    GetResponse,
    KeyValue,
    Response,
    ResponseHeader,
    TxnResponse,
    WatchResponse,
)
from etcd_layers.concurrency.session import SessionExpiredError

SEPARATOR: Final = b"/"  # Go's NewMutex / NewElection append "/" to the user's prefix


def contenders_prefix(prefix: bytes) -> bytes:
    """Return the prefix under which the contenders for `prefix` keep their keys."""
    return prefix + SEPARATOR


def lease_key(contenders: bytes, lease_id: int) -> bytes:
    """Return a session's key under `contenders` (Go: `fmt.Sprintf("%s%x", pfx, lease)`)."""
    return contenders + format(lease_id, "x").encode()


def first_created(contenders: bytes) -> GetOp:
    """Return the read of the oldest contender, the holder (Go's `WithFirstCreate`)."""
    return Op.get(
        contenders,
        prefix=True,
        sort_target=SortTarget.CREATE,
        sort_order=SortOrder.ASCEND,
        limit=1,
    )


def last_created_before(contenders: bytes, revision: int) -> GetOp:
    """Return the read of the youngest contender created before `revision`.

    That is the immediate predecessor of the key created at `revision` (Go's
    `WithLastCreate` with `WithMaxCreateRev(revision - 1)`).
    """
    # max_create_revision=0 would mean "no limit"; revision 1 is etcd's empty store, so no
    # key can be created at or before it and a limit of 1 finds nothing, as it should.
    return Op.get(
        contenders,
        prefix=True,
        sort_target=SortTarget.CREATE,
        sort_order=SortOrder.DESCEND,
        limit=1,
        max_create_revision=max(revision - 1, 1),
    )


def enqueue(contenders: bytes, key: bytes, value: bytes, lease_id: int) -> TxnOp:
    """Return the txn that puts `key` unless it exists, and reads the holder in the same trip.

    As Go's `Mutex.tryAcquire`: if the key does not exist, create it with `value` on the lease;
    otherwise read it (this session already queued, so the key is reused: reentrancy). Either
    branch also reads the oldest contender, so an uncontended lock needs one round trip.
    """
    return Op.txn(
        compare=[Compare.create_revision(key) == 0],
        success=[Op.put(key, value, lease=lease_id), first_created(contenders)],
        failure=[Op.get(key), first_created(contenders)],
    )


@dataclass(frozen=True, slots=True)
class Queued:
    """Where a contender stands after `enqueue`.

    Attributes:
        revision: the create revision of its key: its place in the queue.
        created: whether this enqueue created the key (False: it existed already).
        value: the key's value as it was before (only when not `created`).
        holder: the oldest contender (None if the queue was empty).
        header: the header of the txn's response.
    """

    revision: int
    created: bool
    value: bytes
    holder: KeyValue | None
    header: ResponseHeader

    @property
    def holds(self) -> bool:
        """Whether this contender is first in the queue (no holder, or the holder is itself)."""
        return self.holder is None or self.holder.create_revision == self.revision


def needs_value(queued: Queued, value: bytes) -> bool:
    """Whether a candidacy found queued already must take `value` before it waits.

    As Go's `Campaign`: an existing key with another value gets the new one.
    """
    return not queued.created and queued.value != value


def holds_first(response: GetResponse, key: bytes) -> bool:
    """Whether `key` is the oldest contender in the answer to `first_created` (Go's IsOwner)."""
    return bool(response.kvs) and response.kvs[0].key == key


def _get_response(response: Response) -> GetResponse:
    if not isinstance(response, GetResponse):
        raise TypeError(f"expected a GetResponse in the txn answer, got {type(response).__name__}")
    return response


def read_enqueue(response: TxnResponse) -> Queued:
    """Read the answer to `enqueue`.

    Raises:
        TypeError: the answer does not have the shape `enqueue` asks for.
        LookupError: the txn failed yet found no key, so it was not one that `enqueue` built.
    """
    holder_kvs = _get_response(response.responses[1]).kvs
    holder = holder_kvs[0] if holder_kvs else None
    if response.succeeded:
        # The put happened at the txn's revision, which is therefore the key's create revision.
        return Queued(response.header.revision, True, b"", holder, response.header)
    own = _get_response(response.responses[0]).kvs
    if not own:
        raise LookupError("the contender's key was neither created nor found")
    return Queued(own[0].create_revision, False, own[0].value, holder, response.header)


def check_turn(contenders: bytes, key: bytes, revision: int) -> TxnOp:
    """Return the read-only txn that finds the predecessor of `key` and `key` itself at once.

    Go reads the predecessor (`waitDeletes`) and, once there is none, reads its own key in a
    second request; one txn answers both at one revision.
    """
    return Op.txn(success=[last_created_before(contenders, revision), Op.get(key)])


@dataclass(frozen=True, slots=True)
class Turn:
    """The answer to `check_turn`.

    Attributes:
        predecessor: the key to wait for (None: no contender is ahead).
        own: the contender's own key (None: it is gone, with its session or by a delete).
        header: the header of the read; watch the predecessor from its revision.
    """

    predecessor: KeyValue | None
    own: KeyValue | None
    header: ResponseHeader


def read_turn(response: TxnResponse) -> Turn:
    """Read the answer to `check_turn`."""
    before = _get_response(response.responses[0]).kvs
    own = _get_response(response.responses[1]).kvs
    return Turn(before[0] if before else None, own[0] if own else None, response.header)


def still_queued(turn: Turn, revision: int) -> bool:
    """Whether the contender's key still exists as the one it queued with at `revision`.

    A key of the same lease created again later (after an unlock from another thread of the
    same session) is a different place in the queue, so it does not count.
    """
    return turn.own is not None and turn.own.create_revision == revision


@dataclass(frozen=True, slots=True)
class AwaitDelete:
    """A flow step: wait until `key`, which existed at `revision`, is deleted; then send None."""

    key: bytes
    revision: int


TurnFlow: TypeAlias = Generator[TxnOp | AwaitDelete, TxnResponse | None, Turn]


def wait_turn(contenders: bytes, key: bytes, queued: Queued) -> TurnFlow:
    """Wait until no contender created before `queued` is left, and return that reading.

    Go's `waitDeletes`: read the youngest key ahead, wait for its delete, read again (that key
    may have belonged to a session that had died already, or a key further ahead may remain).

    Raises:
        SessionExpiredError: the contender's own key is gone.
    """
    while True:
        answer = yield check_turn(contenders, key, queued.revision)
        if not isinstance(answer, TxnResponse):
            raise TypeError(f"expected a TxnResponse, got {type(answer).__name__}")
        turn = read_turn(answer)
        if not still_queued(turn, queued.revision):
            # Go notices this only at the end (a TODO in its Lock); the same read tells us now.
            raise SessionExpiredError(f"the key {key!r} was deleted while waiting")
        if turn.predecessor is None:
            return turn
        # Go watches from the read's revision; the wait starts one later (base.waiting).
        yield AwaitDelete(turn.predecessor.key, turn.header.revision)


def guarded_put(key: bytes, revision: int, value: bytes, lease_id: int) -> TxnOp:
    """Return the txn that sets `key` to `value` only if it is still the key created at `revision`.

    As Go's `Election.Proclaim`.
    """
    return Op.txn(
        compare=[Compare.create_revision(key) == revision],
        success=[Op.put(key, value, lease=lease_id)],
    )


def guarded_delete(key: bytes, revision: int) -> TxnOp:
    """Return the txn that deletes `key` only if it is still the key created at `revision`.

    As Go's `Election.Resign`; used also to withdraw a waiter without touching a key that the
    same session created again meanwhile.
    """
    return Op.txn(compare=[Compare.create_revision(key) == revision], success=[Op.delete(key)])


def first_put(response: WatchResponse) -> GetResponse | None:
    """Return the first put of a watch response as a one-key GetResponse (None if none).

    As Go's `observe` while no leader exists: the first key put on the empty prefix is the new
    leader, and the header's revision is set to that put's (a batch may hold later revisions).
    """
    for event in response.events:
        if event.type == EventType.PUT:
            header = replace(response.header, revision=event.kv.mod_revision)
            return GetResponse(header, [event.kv], count=1)
    return None


def leader_updates(response: WatchResponse) -> tuple[list[GetResponse], bool]:
    """Read a watch response on the leader's key: its new values, and whether it was deleted.

    As Go's `observe`: every put before the first delete is a new value of the same leader;
    the events after a delete are not read (the next leader is read afresh).
    """
    updates: list[GetResponse] = []
    for event in response.events:
        if event.type == EventType.DELETE:
            return updates, True
        updates.append(GetResponse(response.header, [event.kv], count=1))
    return updates, False
