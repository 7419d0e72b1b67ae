"""Go's experimental/recipes as pure generator flows: barriers, queues and the RWMutex.

Each flow yields Ops and the steps of `_recipe_keys` and returns the call's result; the sync
and asyncio recipe classes drive the same flow. The layouts below are Go's, so Go and Python
processes share a recipe on the same key:

- Barrier `key`: the key itself, put (empty, no lease) while held, deleted on release.
- DoubleBarrier `key`: participants' unique keys `key/waiters/<ns>` on their session's lease,
  and `key/ready`, put by the participant that completes the count.
- Queue `prefix`: items as unique keys `prefix/<ns>` (no lease), served by mod revision.
- PriorityQueue `prefix`: items as sequential keys `prefix/%05d/%016d` (priority, then
  sequence), served in key order, with base keys `__prefix/%05d`.
- RWMutex `prefix`: unique keys `prefix/read/<ns>` and `prefix/write/<ns>` on the session's
  lease; a reader waits for the writers created before it, a writer for every key before it.

Where this departs from Go, on purpose (each keeps the keys Go reads and writes):

- Reads of a recipe's keys are ranges over `name + "/"`, where Go reads the bare name as a
  prefix: Go's Queue "jobs" also serves the items of a queue "jobs2".
- Watches start one revision after the read they follow (Go starts at the read's own,
  which etcd serves only on its next sync pass; nothing at the read's revision is new).
- An RWMutex waiter reads its own key with each check and stops with SessionExpiredError once
  it is gone, as Mutex does; Go's waits on.
- A compacted history makes a wait read again instead of ending unseen.
- A dequeue reads DEQUEUE_BATCH items at once, as Go's TODO suggests, not one.
- Every blocking call has a deadline; a call that fails or is cancelled withdraws the keys it
  put (the drivers do it), so a DoubleBarrier leave that times out has left.
"""

from __future__ import annotations

from typing import Final

from etcd_layers.base.ops import GetOp, Op, SortOrder, SortTarget, TxnOp
from etcd_layers.base.responses import KeyValue
from etcd_layers.concurrency._recipe_keys import (
    SEPARATOR,
    Claim,
    Create,
    KeyExistsError,
    RecipeFlow,
    TooManyClientsError,
    WaitDelete,
    WaitPut,
    Withdraw,
    create_unique,
    first_of,
    get_response,
    txn_response,
)
from etcd_layers.concurrency.session import SessionExpiredError

MAX_PRIORITY: Final = 0xFFFF  # Go's uint16
# Items a dequeue reads at once. Go reads one (with a TODO: "fewer round trips by fetching more
# than one key"); its claimFirstKey already tries each key read, oldest first. With several,
# a reader that loses the oldest item to another tries the next without reading again, and
# still takes the oldest item left.
DEQUEUE_BATCH: Final = 8

# --- Barrier ---------------------------------------------------------------------------------


def barrier_wait(key: bytes) -> RecipeFlow[None]:
    """Return once `key` is absent, or once its delete is seen (Go's `Barrier.Wait`).

    Only a compacted history makes it read again: a barrier released and held again at once
    has still been released, so a delete seen ends the wait.
    """
    while True:
        read = get_response((yield Op.get(key)))
        if not read.kvs:
            return
        if (yield WaitDelete(key, read.header.revision)):
            return


def barrier_hold(key: bytes) -> RecipeFlow[None]:
    """Put the barrier's key, empty and without a lease, unless it exists (Go's `Hold`).

    Raises:
        KeyExistsError: the barrier is held already.
    """
    if (yield Create(key, b"", 0)) is None:
        raise KeyExistsError(f"the barrier {key!r} is held already")


# --- DoubleBarrier ---------------------------------------------------------------------------


def waiters_prefix(key: bytes) -> bytes:
    """Return where a DoubleBarrier's participants put their keys: `key + "/waiters"`."""
    return key + b"/waiters"


def ready_key(key: bytes) -> bytes:
    """Return the key put when a DoubleBarrier's count is complete: `key + "/ready"`."""
    return key + b"/ready"


def entered(key: bytes) -> GetOp:
    """Return the read of a DoubleBarrier's participants, oldest first (Go's `enteredClients`)."""
    return Op.get(
        waiters_prefix(key) + SEPARATOR,
        prefix=True,
        sort_target=SortTarget.CREATE,
        sort_order=SortOrder.ASCEND,
    )


def enter(key: bytes, count: int, lease_id: int) -> RecipeFlow[tuple[bytes, int]]:
    """Join the barrier and wait until `count` participants have (Go's `DoubleBarrier.Enter`).

    Returns this participant's key and its create revision.

    Raises:
        TooManyClientsError: `count` participants were in before this one.
    """
    before = get_response((yield entered(key)))
    if len(before.kvs) >= count:
        raise TooManyClientsError(f"the double barrier {key!r} has {count} participants")
    own, revision = yield from create_unique(waiters_prefix(key), b"", lease_id)
    after = get_response((yield entered(key)))
    if len(after.kvs) >= count:
        last = after.kvs[count - 1]
        if revision > last.create_revision:  # others completed the count first
            yield Withdraw(own)
            raise TooManyClientsError(f"the double barrier {key!r} has {count} participants")
        if revision == last.create_revision:  # this one completes it: release everybody
            yield Op.put(ready_key(key), b"")
            return own, revision
    start = revision + 1  # the ready put comes after this participant's key (Go: from it)
    while True:
        if (yield WaitPut(ready_key(key), False, start)) is not None:
            return own, revision
        # Compacted: the put may be gone from the history; the key itself tells.
        read = get_response((yield Op.get(ready_key(key))))
        if read.kvs:
            return own, revision
        start = read.header.revision + 1


def leave_step(own: bytes, participants: list[KeyValue]) -> tuple[bool, KeyValue | None]:
    """Decide a leave round (Go's `Leave`): whether to delete `own` now, and whose delete to await.

    The participant with the lowest mod revision waits for the highest to go; every other one
    deletes its key and waits for the lowest. None to wait on: `own` is the last one left.
    """
    lowest = min(participants, key=lambda kv: kv.mod_revision)
    highest = max(participants, key=lambda kv: kv.mod_revision)
    if lowest.key != own:
        return True, lowest
    if len(participants) == 1:
        return True, None
    return False, highest


def leave(key: bytes, own: bytes) -> RecipeFlow[None]:
    """Wait until every participant has left, having left too (Go's `DoubleBarrier.Leave`).

    The last participant to go deletes `key/ready`, so the barrier can be used again.
    """
    while True:
        read = get_response((yield Op.get(waiters_prefix(key) + SEPARATOR, prefix=True)))
        if not read.kvs:
            return
        delete_own, wait_for = leave_step(own, read.kvs)
        if wait_for is None:
            yield Op.delete(ready_key(key))
            yield Withdraw(own)
            return
        if delete_own:
            yield Withdraw(own)  # a no-op once done
        yield WaitDelete(wait_for.key, read.header.revision)


# --- Queue and PriorityQueue -----------------------------------------------------------------


def oldest_item(prefix: bytes) -> GetOp:
    """Return the read of a Queue's oldest items (Go's `WithFirstRev`, DEQUEUE_BATCH of them)."""
    return Op.get(
        prefix + SEPARATOR,
        prefix=True,
        sort_target=SortTarget.MOD,
        sort_order=SortOrder.ASCEND,
        limit=DEQUEUE_BATCH,
    )


def first_item(prefix: bytes) -> GetOp:
    """Return the read of a PriorityQueue's first items in key order (Go's `WithFirstKey`)."""
    return Op.get(
        prefix + SEPARATOR,
        prefix=True,
        sort_target=SortTarget.KEY,
        sort_order=SortOrder.ASCEND,
        limit=DEQUEUE_BATCH,
    )


def priority_prefix(prefix: bytes, priority: int) -> bytes:
    """Return where a PriorityQueue keeps items of `priority`: `prefix + "/%05d"`."""
    return prefix + SEPARATOR + b"%05d" % priority


def dequeue(read: GetOp) -> RecipeFlow[bytes]:
    """Take the first item that `read` finds, waiting for one if there is none (Go's `Dequeue`).

    An item is taken by deleting it only if unchanged since read; one that another reader took
    first sends this one on to the next item read, then back to read (Go calls `Dequeue`
    again).
    """
    while True:
        found = get_response((yield read))
        for kv in found.kvs:
            if (yield Claim(kv)):
                return kv.value
        if found.more:
            continue  # every item read went to other readers: read again, as Go does
        # Nothing (left) at the read: wait for the next put after it (Go watches from the
        # read's revision itself; nothing at it is new).
        put: KeyValue | None = yield WaitPut(read.key, True, found.header.revision + 1)
        if put is not None and (yield Claim(put)):
            return put.value


# --- RWMutex ---------------------------------------------------------------------------------


def rwmutex_prefix(prefix: bytes) -> bytes:
    """Return the prefix of an RWMutex's keys: `prefix + "/"` (Go's `NewRWMutex`)."""
    return prefix + SEPARATOR


def blocker_check(blocking: bytes, own: bytes, revision: int) -> TxnOp:
    """Return the read of the youngest key under `blocking` before `revision`, and of `own`.

    Go's `waitOnLastRev` (`WithLastRev`, `WithMaxModRev(revision - 1)`); reading `own` in the
    same txn tells a waiter whose key is gone (its session ended) to stop, as Mutex does.
    """
    return Op.txn(
        success=[
            Op.get(
                blocking,
                prefix=True,
                sort_target=SortTarget.MOD,
                sort_order=SortOrder.DESCEND,
                limit=1,
                max_mod_revision=max(revision - 1, 1),
            ),
            Op.get(own),
        ]
    )


def rw_lock(prefix: bytes, write: bool, lease_id: int) -> RecipeFlow[tuple[bytes, int]]:
    """Queue a read or write key and wait until nothing before it blocks it (Go's RLock/Lock).

    A reader waits only for the writers created before it, so readers share the lock; a
    writer waits for every key created before it, and a reader that comes after a waiting
    writer waits for it too, so writers are not starved.

    Raises:
        SessionExpiredError: the waiter's own key is gone (its session ended).
    """
    base = rwmutex_prefix(prefix)
    kind = b"write" if write else b"read"
    own, revision = yield from create_unique(base + kind, b"", lease_id)
    blocking = base if write else base + b"write" + SEPARATOR
    while True:
        answer = txn_response((yield blocker_check(blocking, own, revision)))
        blocker, mine = first_of(answer.responses[0]), first_of(answer.responses[1])
        if mine is None or mine.create_revision != revision:
            raise SessionExpiredError(f"the key {own!r} was deleted while waiting")
        if blocker is None:
            return own, revision
        yield WaitDelete(blocker.key, answer.header.revision)
