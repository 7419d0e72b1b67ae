"""The leasing protocol's requests: the txns an owner and a writer send, as pure flows.

The protocol is clientv3/leasing's, so Go and Python leasing clients can share a prefix: the
owner of `key` holds the server key `prefix + key` (its *leasing key*) with an empty value,
attached to the owner's session lease; a writer that is not the owner sets that value to
`REVOKE`, and the owner then forgets `key` and deletes the leasing key. The writer waits for
that delete (or for the owner's lease to expire, which deletes it too) and then writes,
guarded so that it cannot race a new acquisition.

Multi-step exchanges are generators: they yield an `Op` to send (and receive its response) or
a `WaitForDeletes` to perform (and receive None), and return their result. Nothing here does
I/O, reads a clock or takes a lock; the proxy drives the flows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, TypeAlias, TypeVar

from etcd_layers.base.compare import Compare
from etcd_layers.base.keys import KEYSPACE_END, prefix_end
from etcd_layers.base.ops import DeleteOp, GetOp, Op, PutOp, TxnOp
from etcd_layers.base.responses import GetResponse, KeyValue, Response, TxnResponse

REVOKE: Final = b"REVOKE"  # the value a writer puts on an owner's leasing key

_T = TypeVar("_T")
_R = TypeVar("_R")


@dataclass(frozen=True, slots=True)
class WaitForDeletes:
    """A flow step: wait until every key in `keys` has been deleted after `revision`."""

    keys: frozenset[bytes]
    revision: int


Step: TypeAlias = Op | WaitForDeletes
Flow: TypeAlias = Generator[Step, Response | None, _T]


# --- keys ---------------------------------------------------------------------------------


def leasing_key(prefix: bytes, key: bytes) -> bytes:
    """Return the server key that records who owns `key`."""
    return prefix + key


def leasing_range(prefix: bytes, key: bytes, range_end: bytes) -> tuple[bytes, bytes]:
    """Map the user range [key, range_end) onto the leasing keys of the keys in it.

    A range that runs to the end of the keyspace (`from_key`, or every key) ends at the end
    of the leasing prefix. clientv3 appends the range end to the prefix instead, so its
    `from_key` deletes look at an empty range and revoke no owner; we do not.
    """
    if not range_end:
        return prefix + key, b""
    if range_end == KEYSPACE_END:
        return prefix + key, prefix_end(prefix)
    return prefix + key, prefix + range_end


def written_keys(op: Op) -> tuple[frozenset[bytes], tuple[tuple[bytes, bytes], ...]]:
    """Return the single keys and the (key, range_end) ranges that `op` may write.

    Both branches of a txn count, nested txns included: which branch runs is only known
    once the server has run it.
    """
    keys: set[bytes] = set()
    ranges: list[tuple[bytes, bytes]] = []

    def visit(item: Op) -> None:
        if isinstance(item, PutOp):
            keys.add(item.key)
        elif isinstance(item, DeleteOp):
            if item.range_end:
                ranges.append((item.key, item.range_end))
            else:
                keys.add(item.key)
        elif isinstance(item, TxnOp):
            for inner in (*item.success, *item.failure):
                visit(inner)

    visit(op)
    return frozenset(keys), tuple(dict.fromkeys(ranges))


def in_range(key: bytes, begin: bytes, range_end: bytes) -> bool:
    """Whether `key` lies in etcd's range [begin, range_end) (`range_end` b"": `begin` only)."""
    if not range_end:
        return key == begin
    if range_end == KEYSPACE_END:
        return key >= begin
    return begin <= key < range_end


# --- acquire ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Acquired:
    """What an acquire attempt found.

    Attributes:
        response: the plain get of the key, carrying the txn's header.
        acquired: this attempt created the leasing key, so the key may be cached.
        held: the leasing key already existed under our lease (an earlier acquisition that is
            not cached); it should be released, not cached.
        incarnation: the leasing key's create revision when `acquired` or `held`, else 0.
    """

    response: GetResponse
    acquired: bool
    held: bool
    incarnation: int

    @property
    def kv(self) -> KeyValue | None:
        """The key's state, or None when it does not exist."""
        return self.response.kvs[0] if self.response.kvs else None


def acquire_txn(prefix: bytes, key: bytes, lease_id: int) -> TxnOp:
    """Return the txn that reads `key` and takes ownership of it if nobody holds it.

    As clientv3: the leasing key is created only when it does not exist and the key itself
    has no lease (a key with its own lease can vanish without a write, so it is never cached).
    """
    lease_key = leasing_key(prefix, key)
    return Op.txn(
        [Compare.create_revision(lease_key) == 0, Compare.lease(key) == 0],
        [Op.get(key), Op.put(lease_key, b"", lease=lease_id)],
        [Op.get(key), Op.get(lease_key)],
    )


def read_acquired(response: TxnResponse, lease_id: int) -> Acquired:
    """Interpret the answer to `acquire_txn`."""
    got = _as(response.responses[0], GetResponse)
    plain = dataclasses.replace(got, header=response.header)
    if response.succeeded:
        # The put of the leasing key made this revision, so it is the leasing key's create
        # revision: the incarnation later guards compare against.
        return Acquired(plain, acquired=True, held=False, incarnation=response.header.revision)
    holder = _as(response.responses[1], GetResponse).kvs
    # clientv3 treats a leasing key under its own lease as acquired even when its value is
    # REVOKE (a writer is waiting) or when an older, uncached acquisition left it behind;
    # caching then would be stale the moment the pending revoke completes. We release it.
    held = bool(holder) and holder[0].lease == lease_id
    return Acquired(
        plain, acquired=False, held=held, incarnation=holder[0].create_revision if held else 0
    )


def acquire(prefix: bytes, key: bytes, lease_id: int) -> Flow[Acquired]:
    """Read `key` and try to become its owner (one round trip)."""
    response = yield acquire_txn(prefix, key, lease_id)
    return read_acquired(_as(response, TxnResponse), lease_id)


def probe_ops(prefix: bytes, key: bytes) -> tuple[GetOp, GetOp]:
    """Return the reads that tell what `key` is and who holds it, after an unknown acquire.

    Two plain reads, not one read-only txn: etcd before 3.5.5 panics when the client of a
    read-only txn goes away while the member applies it (etcd issue 14110), and an acquire of
    unknown outcome usually means the connection just broke. They need not be atomic: the
    answer is the first read's, and a leasing key of ours is released by its incarnation.
    """
    return Op.get(key), Op.get(leasing_key(prefix, key))


def read_probe(got: GetResponse, holder: GetResponse, lease_id: int) -> Acquired:
    """Interpret the answers to `probe_ops`: never acquired, maybe held."""
    kvs = holder.kvs
    held = bool(kvs) and lease_id != 0 and kvs[0].lease == lease_id
    return Acquired(
        got, acquired=False, held=held, incarnation=kvs[0].create_revision if held else 0
    )


# --- release ------------------------------------------------------------------------------


def release_txn(prefix: bytes, key: bytes, incarnation: int) -> TxnOp:
    """Return the txn that deletes our leasing key of `key`, if it is still that incarnation.

    Guarding on the create revision makes it safe to send again and again: it never deletes a
    later acquisition (ours or anyone's).
    """
    lease_key = leasing_key(prefix, key)
    return Op.txn([Compare.create_revision(lease_key) == incarnation], [Op.delete(lease_key)], ())


# --- writes -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Written:
    """The outcome of a guarded write.

    Attributes:
        response: the user's response, exactly as raw etcd would have answered it.
        revision: the header revision of the txn that applied it.
        states: the state of each refreshed key right after the write (None: absent).
        lost: owned keys whose leasing key turned out to be gone or replaced.
    """

    response: Response
    revision: int
    states: Mapping[bytes, KeyValue | None]
    lost: frozenset[bytes]


def _revoke_if_exists(lease_key: bytes, create_revision: int | None = None) -> TxnOp:
    # Nested, so that a missing leasing key skips the put instead of failing the whole txn
    # (a put with ignore_lease of a missing key is an error).
    guard = (
        Compare.create_revision(lease_key) > 0
        if create_revision is None
        else Compare.create_revision(lease_key) == create_revision
    )
    return Op.txn([guard], [Op.put(lease_key, REVOKE, ignore_lease=True)], ())


def revoke_range(prefix: bytes, lease_id: int, key: bytes, range_end: bytes) -> Flow[Compare]:
    """Revoke every other owner in a user range; return the guard for writing that range.

    The guard holds while no leasing key in the range was created after the scan: the owners
    seen were revoked (and have let go), our own keys are ours, and a new acquisition fails it.
    """
    begin, end = leasing_range(prefix, key, range_end)
    scan = _as((yield Op.get(begin, range_end=end)), GetResponse)
    leasing = [kv for kv in scan.kvs if kv.key.startswith(prefix)]
    highest = max((kv.create_revision for kv in leasing), default=0)
    others = [kv for kv in leasing if kv.lease != lease_id]
    if others:
        sent = _as(
            (
                yield Op.txn(
                    (), [_revoke_if_exists(kv.key, kv.create_revision) for kv in others], ()
                )
            ),
            TxnResponse,
        )
        revoked = frozenset(
            kv.key for kv, result in zip(others, sent.responses, strict=True) if _succeeded(result)
        )
        if revoked:
            yield WaitForDeletes(revoked, sent.header.revision)
    return Compare.create_revision(begin, range_end=end or None) < highest + 1


def guarded_write(
    prefix: bytes,
    lease_id: int,
    op: PutOp | DeleteOp | TxnOp,
    owned: Mapping[bytes, int],
    refresh: Sequence[bytes] = (),
) -> Flow[Written]:
    """Apply a write exactly once, after every other owner of a key it writes has let go.

    Args:
        prefix: the leasing prefix.
        lease_id: our session lease (0: none, so nothing is owned).
        op: the user's write (a txn may also read).
        owned: keys written by `op` that we own, with their leasing keys' create revisions.
        refresh: keys to read in the same txn, right after the write, to update the cache.

    Each attempt is one txn: guards (we still own our keys, nobody owns the others), then the
    user's op followed by the refresh reads; if a guard fails, the other branch marks every
    other owner's leasing key REVOKE. The flow then waits for those owners to let go and tries
    again. clientv3 sends a non-owner's write once guarded and then again inside its revoke
    txn, so one put could apply twice; here only a successful attempt carries the write.
    """
    keys, ranges = written_keys(op)
    mine = {key: revision for key, revision in owned.items() if key in keys}
    lost: set[bytes] = set()
    while True:
        guards: list[Compare] = []
        for begin, end in ranges:
            guards.append((yield from revoke_range(prefix, lease_id, begin, end)))
        others = sorted(keys - mine.keys())
        held = sorted(mine.items())
        for key, incarnation in held:
            lease_key = leasing_key(prefix, key)
            guards.append(Compare.create_revision(lease_key) == incarnation)
            guards.append(Compare.lease(lease_key) == lease_id)
        guards.extend(Compare.create_revision(leasing_key(prefix, key)) == 0 for key in others)
        success: list[Op] = [op, *(Op.get(key) for key in refresh)]
        failure: list[Op] = [
            *(_revoke_if_exists(leasing_key(prefix, key)) for key in others),
            *(Op.get(leasing_key(prefix, key)) for key, _ in held),
        ]
        answer = _as((yield Op.txn(guards, success, failure)), TxnResponse)
        if answer.succeeded:
            return _written(answer, refresh, frozenset(lost))
        results = answer.responses
        revoked = frozenset(
            leasing_key(prefix, key)
            for key, result in zip(others, results[: len(others)], strict=True)
            if _succeeded(result)
        )
        for (key, incarnation), result in zip(held, results[len(others) :], strict=True):
            holder = _as(result, GetResponse).kvs
            if (
                not holder
                or holder[0].create_revision != incarnation
                or holder[0].lease != lease_id
            ):
                del mine[key]  # from now on a key like any other: revoke whoever holds it
                lost.add(key)
        if revoked:
            yield WaitForDeletes(revoked, answer.header.revision)


def _written(answer: TxnResponse, refresh: Sequence[bytes], lost: frozenset[bytes]) -> Written:
    user = answer.responses[0]
    response: Response = dataclasses.replace(user, header=answer.header)
    states = {
        key: (_first(_as(result, GetResponse).kvs))
        for key, result in zip(refresh, answer.responses[1:], strict=True)
    }
    return Written(response, answer.header.revision, states, lost)


# --- helpers ------------------------------------------------------------------------------


def _first(kvs: Sequence[KeyValue]) -> KeyValue | None:
    return kvs[0] if kvs else None


def _succeeded(response: Response) -> bool:
    return isinstance(response, TxnResponse) and response.succeeded


def _as(response: object, kind: type[_R]) -> _R:
    if not isinstance(response, kind):
        raise TypeError(f"expected {kind.__name__}, got {type(response).__name__}")
    return response
