"""The decisions of Go's software transactional memory (`concurrency/stm.go`), with no I/O.

An attempt keeps a read set (each key as first read, with the revision of the read) and a write
set (each key's last put or delete). Reads are flows that yield one read-only txn and receive
its answer; the commit is one txn whose compares depend on the isolation level; the whole
apply-commit-retry loop is a flow too (`attempts`), which yields `APPLY` when the caller's
function must run. The sync and asyncio shells (`transactions.py`, `async_transactions.py`)
drive these flows.
"""

from __future__ import annotations

import enum
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Final, TypeAlias

from etcd_layers.base.compare import Compare
from etcd_layers.base.ops import DeleteOp, Op, PutOp, TxnOp
from etcd_layers.base.responses import GetResponse, KeyValue, TxnResponse

# Go's readSet.first() when nothing was read: math.MaxInt64 - 1, so that the write-set compares
# of an attempt that read nothing (`mod_revision < first + 1`) always hold.
_NO_READ: Final = 2**63 - 2


class Isolation(enum.Enum):
    """How concurrent transactions may interfere (Go's `concurrency.Isolation`, same order).

    Attributes:
        SERIALIZABLE_SNAPSHOT: as SERIALIZABLE, and the commit also fails if a key it writes
            was changed after the attempt's first read (no write skew, no lost update).
        SERIALIZABLE: every read of an attempt sees the store at the revision of its first
            read; the commit fails if a key read has changed since.
        REPEATABLE_READS: a key reads the same all through an attempt; the commit fails if
            a key read has changed, but two keys may be read at different revisions.
        READ_COMMITTED: reads see any committed value; the commit never fails, never retries.
    """

    SERIALIZABLE_SNAPSHOT = 0
    SERIALIZABLE = 1
    REPEATABLE_READS = 2
    READ_COMMITTED = 3

    @property
    def pins_reads(self) -> bool:
        """Whether later reads are made at the first read's revision (Go's stmSerializable)."""
        return self in (Isolation.SERIALIZABLE_SNAPSHOT, Isolation.SERIALIZABLE)


@dataclass(frozen=True, slots=True)
class Read:
    """One key as an attempt read it: its KeyValue (None if missing) and the read's revision."""

    kv: KeyValue | None
    revision: int

    @property
    def value(self) -> bytes:
        """The value read (b"" for a missing key, as Go's respToValue)."""
        return b"" if self.kv is None else self.kv.value

    @property
    def mod_revision(self) -> int:
        """The key's mod revision when read (0 for a missing key)."""
        return 0 if self.kv is None else self.kv.mod_revision


@dataclass(frozen=True, slots=True)
class Write:
    """One pending write: the value a later get in the attempt sees, and the op to commit."""

    value: bytes
    op: PutOp | DeleteOp


@dataclass(frozen=True, slots=True)
class Apply:
    """A step of `attempts`: run the caller's apply function now, then send None."""


APPLY: Final = Apply()

ReadFlow: TypeAlias = Generator[TxnOp, TxnResponse, Read | None]
ValueFlow: TypeAlias = Generator[TxnOp, TxnResponse, bytes]
RevisionFlow: TypeAlias = Generator[TxnOp, TxnResponse, int]
AttemptFlow: TypeAlias = Generator[TxnOp | Apply, TxnResponse | None, TxnResponse]


class Transaction:
    """The read and write sets of the running attempt, and what carries over to the next.

    Owned by one driver (a thread or a task): nothing here is shared. Keys are bytes, checked
    by the shell.
    """

    def __init__(self, isolation: Isolation) -> None:
        if not isinstance(isolation, Isolation):
            raise TypeError(f"isolation must be an Isolation, not {type(isolation).__name__}")
        self.isolation = isolation
        self.reads: dict[bytes, Read] = {}
        self.writes: dict[bytes, Write] = {}
        # What the failure branch of the last commit read (serializable levels): the next
        # attempt takes a key from here instead of reading it again (Go's `prefetch` map).
        self.prefetched: dict[bytes, Read] = {}
        # The revision every read after the first is made at (0: none yet; serializable levels).
        self.pinned = 0
        self.attempt = 0

    def reset(self) -> None:
        """Start an attempt with empty read and write sets (Go's `reset`)."""
        self.reads = {}
        self.writes = {}
        self.pinned = 0
        self.attempt += 1

    def put(self, op: PutOp) -> None:
        """Add a put to the write set; a later get of the key in this attempt sees its value."""
        self.writes[op.key] = Write(op.value, op)

    def delete(self, op: DeleteOp) -> None:
        """Add a delete to the write set; a later get of the key in this attempt sees b""."""
        self.writes[op.key] = Write(b"", op)

    def read_op(self, keys: Sequence[bytes]) -> TxnOp:
        """Return the one read-only txn that reads `keys` under this attempt's rules.

        Serializable levels read linearizably until the first read, then at its revision from
        any member (Go's `WithRev(first) + WithSerializable`); the other levels always read
        from the member asked (Go's `WithSerializable`): a stale answer fails the commit.
        """
        if self.isolation.pins_reads and self.pinned:
            gets = [Op.get(key, revision=self.pinned, serializable=True) for key in keys]
        elif self.isolation.pins_reads:
            gets = [Op.get(key) for key in keys]
        else:
            gets = [Op.get(key, serializable=True) for key in keys]
        return Op.txn(success=gets)

    def record(self, keys: Sequence[bytes], response: TxnResponse) -> None:
        """Add the answers of a read of `keys` (one GetResponse each, in order) to the read set."""
        for key, answer in zip(keys, response.responses, strict=True):
            if not isinstance(answer, GetResponse):
                raise TypeError(f"expected a GetResponse, got {type(answer).__name__}")
            # The inner header's revision is the txn's; take the outer header's, which every
            # layer fills in.
            self.reads[key] = Read(answer.kvs[0] if answer.kvs else None, response.header.revision)

    def fetch(self, keys: Sequence[bytes]) -> ReadFlow:
        """Return the read of the first of `keys` already read; else read all, return the first.

        Go's `stm.fetch`: one request for every key, and only when none is in the read set.
        """
        if not keys:
            return None
        for key in keys:
            if key in self.reads:
                return self.reads[key]
        response = yield self.read_op(keys)
        self.record(keys, response)
        return self.reads[keys[0]]

    def get(self, keys: Sequence[bytes]) -> ValueFlow:
        """Return the value `keys` give in this attempt (Go's `STM.Get`).

        The first of them written in this attempt gives its pending value; else the first of
        them already read gives that read's value; else all are read in one request and the
        first gives its value (b"" when missing). Serializable levels take keys from the last
        failed commit's reads first, and pin later reads to the first read's revision.
        """
        for key in keys:
            if key in self.writes:
                return self.writes[key].value
        first_read = self.isolation.pins_reads and not self.reads
        if self.isolation.pins_reads:
            for key in keys:
                carried = self.prefetched.pop(key, None)
                if carried is not None:
                    self.reads[key] = carried
        read = yield from self.fetch(keys)
        if first_read and read is not None:
            self.pinned = read.revision  # the attempt's base revision is its first read's
        return b"" if read is None else read.value

    def rev(self, key: bytes) -> RevisionFlow:
        """Return the mod revision of `key` as read in this attempt (0 if missing; Go's `Rev`).

        The key joins the read set even if the attempt wrote it.
        """
        if self.isolation.pins_reads:
            yield from self.get((key,))  # Go's stmSerializable.Rev pins on a first read
        read = yield from self.fetch((key,))
        return 0 if read is None else read.mod_revision

    def first_revision(self) -> int:
        """The revision of the attempt's earliest read (Go's `readSet.first`)."""
        return min((read.revision for read in self.reads.values()), default=_NO_READ)

    def conflicts(self) -> list[Compare]:
        """The compares under which the commit may apply (Go's `conflicts` for each level).

        The read set's keys must be unchanged (mod revision as read, or 0 for a missing key),
        except under READ_COMMITTED; SERIALIZABLE_SNAPSHOT also requires that no key written
        was modified after the first read.
        """
        if self.isolation is Isolation.READ_COMMITTED:
            return []
        compares = [
            Compare.mod_revision(key) == read.mod_revision for key, read in self.reads.items()
        ]
        if self.isolation is Isolation.SERIALIZABLE_SNAPSHOT:
            bound = self.first_revision() + 1
            compares += [Compare.mod_revision(key) < bound for key in self.writes]
        return compares

    def commit_op(self) -> TxnOp:
        """Return the commit: the write set if no conflict, else (serializable levels) re-reads.

        As Go's stmSerializable.commit, the failure branch reads every key of the read set
        again, so the next attempt starts from fresh values without another request.
        """
        refresh = [Op.get(key) for key in self.reads] if self.isolation.pins_reads else []
        return Op.txn(
            compare=self.conflicts(),
            success=[write.op for write in self.writes.values()],
            failure=refresh,
        )

    def settle(self, response: TxnResponse) -> bool:
        """Read the commit's answer: True if it applied, else keep its re-reads for the retry."""
        if response.succeeded:
            return True
        if self.isolation.pins_reads:
            keys = list(self.reads)
            self.record(keys, response)
            self.prefetched = dict(self.reads)
        return False


def attempts(transaction: Transaction, prefetch: Sequence[bytes]) -> AttemptFlow:
    """Run attempts until one commits, and return its TxnResponse (Go's `runSTM`).

    Each attempt starts empty, reads `prefetch` in one request (Go's `WithPrefetch`), yields
    `APPLY` for the caller's function, then yields the commit. An exception from apply (thrown
    by the driver, or raised past it) ends the flow before the commit: nothing is written.
    """
    while True:
        transaction.reset()
        if prefetch:
            yield from transaction.get(prefetch)
        yield APPLY
        response = yield transaction.commit_op()
        if not isinstance(response, TxnResponse):
            raise TypeError(f"expected a TxnResponse, got {type(response).__name__}")
        if transaction.settle(response):
            return response
