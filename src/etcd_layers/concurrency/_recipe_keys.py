"""The keys of Go's experimental/recipes and the steps that create, claim and wait on them, pure.

Key layouts, as Go's `client/v3/experimental/recipes/key.go` writes them:

- a unique key (`newUniqueKV`, `newUniqueEphemeralKV`): `prefix + "/" + <Unix time in ns>`, in
  decimal, put only if absent (`version == 0`), again with a new time if it exists;
- a sequential key (`newSequentialKV`): `prefix + "/" + "%016d" % n`, where n is one more than
  the number ending the last key under the prefix (0 if none); the txn also puts the empty
  base key `"__" + prefix` and holds only if that key was not written since the read, so two
  writers never take the same n.

The recipes are generator flows over the steps below. A flow never reads the clock or does
I/O: the sync driver (`_recipe_driver`) and the asyncio one (`_async_recipe_driver`) answer
each step. `Create` marks the key it makes as the flow's own, so that a driver withdraws it
when the flow fails or is cancelled, as Mutex withdraws a waiter's key.
"""

from __future__ import annotations

import re
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, Final, TypeAlias, TypeVar

from etcd_layers.base.compare import Compare
from etcd_layers.base.keys import to_bytes
from etcd_layers.base.ops import GetOp, Op, SortOrder, SortTarget, TxnOp
from etcd_layers.base.responses import (
    EventType,
    GetResponse,
    KeyValue,
    Response,
    TxnResponse,
    WatchResponse,
)
from etcd_layers.errors import EtcdError

T = TypeVar("T")

SEPARATOR: Final = b"/"
SEQUENCE_DIGITS: Final = 16  # Go's "%016d"
BASE_KEY_MARK: Final = b"__"  # Go's baseKey := "__" + prefix
_LEADING_INT: Final = re.compile(rb"[+-]?[0-9]+")  # what Go's fmt.Sscanf("%d") reads


class KeyExistsError(EtcdError):
    """The key a recipe must create exists already (Go's `ErrKeyExists`): a held Barrier."""


class TooManyClientsError(EtcdError):
    """A DoubleBarrier already has `count` participants (Go's `ErrTooManyClients`)."""


def checked_key(key: object, name: str = "key") -> bytes:
    """Return a recipe's key or prefix as bytes, before any I/O.

    Raises:
        TypeError: it is not str or bytes.
        ValueError: it is empty (Go would put keys under "/", where other recipes live).
    """
    raw = to_bytes(key, name=name)  # checks the type itself
    if not raw:
        raise ValueError(f"{name} must not be empty")
    return raw


# --- the steps a flow yields, besides an Op (answered with its response) ----------------------


@dataclass(frozen=True, slots=True)
class Now:
    """Ask for the wall clock in nanoseconds since the Unix epoch (answered with an int)."""


@dataclass(frozen=True, slots=True)
class Create:
    """Put `key` = `value` on `lease_id` if it does not exist (Go's `putNewKV`).

    Answered with the key's create revision, or None if it existed. A created key is the
    flow's own: the driver withdraws it if the flow then fails, until a `Withdraw` or the end.
    """

    key: bytes
    value: bytes
    lease_id: int


@dataclass(frozen=True, slots=True)
class Withdraw:
    """Delete the flow's own `key` if it is still the one `Create` made (answered with None)."""

    key: bytes


@dataclass(frozen=True, slots=True)
class Claim:
    """Take the item `kv` by deleting it if unchanged since read (Go's `deleteRevKey`).

    Answered with whether this call took it. A driver cancelled while the delete is in flight
    puts a taken item back (`restore`) rather than lose it.
    """

    kv: KeyValue


@dataclass(frozen=True, slots=True)
class WaitDelete:
    """Wait until `key`, which existed at `revision`, is deleted.

    Answered with True once deleted, False if the history was compacted (read again).
    """

    key: bytes
    revision: int


@dataclass(frozen=True, slots=True)
class WaitPut:
    """Wait for the first put on `key` (every key under it if `prefix`) from `start_revision`.

    Answered with the put's KeyValue, or None if the history was compacted (read again).
    """

    key: bytes
    prefix: bool
    start_revision: int


Step: TypeAlias = Op | Now | Create | Withdraw | Claim | WaitDelete | WaitPut
RecipeFlow: TypeAlias = Generator[Step, Any, T]


# --- Ops and their readings -----------------------------------------------------------------


def put_new(step: Create) -> TxnOp:
    """Return the txn that performs `step`: a put only while the key has no version."""
    return Op.txn(
        compare=[Compare.version(step.key) == 0],
        success=[Op.put(step.key, step.value, lease=step.lease_id)],
    )


def created_revision(response: TxnResponse) -> int | None:
    """Read the answer to `put_new`: the new key's create revision, or None if it existed."""
    return response.header.revision if response.succeeded else None


def guarded_withdraw(key: bytes, revision: int) -> TxnOp:
    """Return the txn that deletes `key` only if it is still the key created at `revision`."""
    return Op.txn(compare=[Compare.create_revision(key) == revision], success=[Op.delete(key)])


def unique_key(prefix: bytes, nanos: int) -> bytes:
    """Return Go's unique key: `prefix + "/" + <nanoseconds, decimal>`."""
    return prefix + SEPARATOR + str(nanos).encode()


def create_unique(prefix: bytes, value: bytes, lease_id: int) -> RecipeFlow[tuple[bytes, int]]:
    """Create a unique key under `prefix` (Go's `newUniqueKV`); return it and its revision.

    A key taken already (another process in the same nanosecond) is tried again with a new time.
    """
    while True:
        nanos = yield Now()
        key = unique_key(prefix, nanos)
        revision = yield Create(key, value, lease_id)
        if revision is not None:
            return key, revision


def last_key(prefix: bytes) -> GetOp:
    """Return the read of the lexically last key under `prefix + "/"` (Go's `WithLastKey`)."""
    return Op.get(
        prefix + SEPARATOR,
        prefix=True,
        sort_target=SortTarget.KEY,
        sort_order=SortOrder.DESCEND,
        limit=1,
    )


def next_sequence(kvs: list[KeyValue]) -> int:
    """Return the number after the one that ends the last key (0 if there is none).

    Go reads the last "/"-separated field with `fmt.Sscanf("%d")`: leading digits, a sign
    allowed.

    Raises:
        ValueError: the last key does not end in a number (so it is not a sequential key).
    """
    if not kvs:
        return 0
    field = kvs[0].key.rsplit(SEPARATOR, 1)[-1]
    match = _LEADING_INT.match(field)
    if match is None:
        raise ValueError(f"the key {kvs[0].key!r} does not end in a sequence number")
    return int(match.group()) + 1


def sequential_key(prefix: bytes, number: int) -> bytes:
    """Return Go's sequential key: `prefix + "/" + "%016d" % number`."""
    return prefix + SEPARATOR + b"%0*d" % (SEQUENCE_DIGITS, number)


def put_sequential(prefix: bytes, key: bytes, value: bytes, read_revision: int) -> TxnOp:
    """Return the txn that puts `key` unless another writer took a number since the read.

    The base key `"__" + prefix` is written by every such txn, so its mod revision moves past
    the read's revision as soon as another writer got in (Go's comment: "base prefix key must
    be current (i.e., <=) with the server update").
    """
    base = BASE_KEY_MARK + prefix
    return Op.txn(
        compare=[Compare.mod_revision(base) < read_revision + 1],
        success=[Op.put(base, b""), Op.put(key, value)],
    )


def create_sequential(prefix: bytes, value: bytes) -> RecipeFlow[tuple[bytes, int]]:
    """Create the next sequential key under `prefix` (Go's `newSequentialKV`)."""
    while True:
        read = get_response((yield last_key(prefix)))
        key = sequential_key(prefix, next_sequence(read.kvs))
        answer = txn_response((yield put_sequential(prefix, key, value, read.header.revision)))
        if answer.succeeded:
            return key, answer.header.revision


def claim(step: Claim) -> TxnOp:
    """Return the txn that performs `step`: a delete only while the item is unchanged."""
    kv = step.kv
    return Op.txn(
        compare=[Compare.mod_revision(kv.key) == kv.mod_revision], success=[Op.delete(kv.key)]
    )


def restore(step: Claim) -> TxnOp:
    """Return the txn that puts a claimed item back under its key, unless the key exists again.

    A PriorityQueue item keeps its place (key order); a Queue item goes to the back (the put
    is a new mod revision).
    """
    return put_new(Create(step.kv.key, step.kv.value, step.kv.lease))


def get_response(response: object) -> GetResponse:
    """Return `response` as the GetResponse a flow asked for (TypeError otherwise)."""
    if not isinstance(response, GetResponse):
        raise TypeError(f"expected a GetResponse, got {type(response).__name__}")
    return response


def txn_response(response: object) -> TxnResponse:
    """Return `response` as the TxnResponse a flow asked for (TypeError otherwise)."""
    if not isinstance(response, TxnResponse):
        raise TypeError(f"expected a TxnResponse, got {type(response).__name__}")
    return response


def first_of(response: Response) -> KeyValue | None:
    """Return the first key of a GetResponse inside a txn's answer (None if none)."""
    kvs = get_response(response).kvs
    return kvs[0] if kvs else None


def put_event(response: WatchResponse) -> KeyValue | None:
    """Return the key of the first put in a watch response (None if it holds none)."""
    for event in response.events:
        if event.type == EventType.PUT:
            return event.kv
    return None


def timed_out(what: str, timeout: float | None) -> str:
    """Return the message of a recipe call that ran out of time: what was not done, in how long."""
    return f"{what} not done within {timeout:g}s" if timeout is not None else f"{what} not done"
