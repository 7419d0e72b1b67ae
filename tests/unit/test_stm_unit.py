"""The STM core (Go's stm.go rules) on plain values, and the stm() shell over a recording fake."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

import pytest

from etcd_layers.base.compare import Compare
from etcd_layers.base.ops import GetOp, Op, TxnOp
from etcd_layers.base.responses import (
    GetResponse,
    KeyValue,
    PutResponse,
    Response,
    ResponseHeader,
    TxnResponse,
)
from etcd_layers.concurrency import STM, AsyncSTM, Isolation, stm
from etcd_layers.concurrency._stm import APPLY, Transaction, attempts
from etcd_layers.errors import EmptyKeyError

PINNING = [Isolation.SERIALIZABLE_SNAPSHOT, Isolation.SERIALIZABLE]
UNPINNED = [Isolation.REPEATABLE_READS, Isolation.READ_COMMITTED]


def kv(key: bytes, value: bytes, mod_revision: int) -> KeyValue:
    return KeyValue(key, value, create_revision=1, mod_revision=mod_revision, version=1)


def reads(revision: int, *found: KeyValue | None, succeeded: bool = True) -> TxnResponse:
    """A txn answer of one GetResponse per key (None: missing), at `revision`."""
    answers: list[Response] = [
        GetResponse(ResponseHeader(revision=revision), [] if f is None else [f], count=int(bool(f)))
        for f in found
    ]
    return TxnResponse(ResponseHeader(revision=revision), succeeded, answers)


def run_read(flow: Any, answer: TxnResponse | None) -> tuple[TxnOp | None, Any]:
    """Drive a read flow of at most one request: return (the request, the result)."""
    try:
        request = next(flow)
    except StopIteration as done:
        return None, done.value
    try:
        flow.send(answer)
    except StopIteration as done:
        return request, done.value
    raise AssertionError("the flow asked for a second request")


def gets_of(op: TxnOp | None) -> list[GetOp]:
    assert op is not None
    assert op.compare == ()
    assert op.failure == ()
    assert all(isinstance(g, GetOp) for g in op.success)
    return list(op.success)  # type: ignore[arg-type]  # checked just above


@pytest.mark.parametrize("isolation", list(Isolation))
def test_get_reads_every_key_in_one_request_and_returns_the_first(isolation: Isolation) -> None:
    """A get of several unknown keys reads them all at once; the first key's value comes back."""
    txn = Transaction(isolation)
    txn.reset()
    request, value = run_read(txn.get([b"a", b"b"]), reads(7, kv(b"a", b"1", 5), None))
    assert [g.key for g in gets_of(request)] == [b"a", b"b"]
    assert value == b"1"
    assert set(txn.reads) == {b"a", b"b"}
    assert txn.reads[b"b"].kv is None


@pytest.mark.parametrize("isolation", list(Isolation))
def test_get_answers_a_known_key_without_a_request(isolation: Isolation) -> None:
    """The first key already read or written answers, without a request (Go's fetch/wset.get)."""
    txn = Transaction(isolation)
    txn.reset()
    run_read(txn.get([b"a"]), reads(7, kv(b"a", b"1", 5)))
    assert run_read(txn.get([b"x", b"a"]), None) == (None, b"1")  # b"a" is the first known
    txn.put(Op.put(b"x", b"9"))
    assert run_read(txn.get([b"a", b"x"]), None) == (None, b"9")  # a write wins over a read
    txn.delete(Op.delete(b"a"))
    assert run_read(txn.get([b"a"]), None) == (None, b"")


def test_get_with_no_keys_returns_empty_without_a_request() -> None:
    txn = Transaction(Isolation.SERIALIZABLE)
    txn.reset()
    assert run_read(txn.get([]), None) == (None, b"")


@pytest.mark.parametrize("isolation", PINNING)
def test_serializable_reads_pin_to_the_first_reads_revision(isolation: Isolation) -> None:
    """The first read is linearizable; later ones read at its revision from any member."""
    txn = Transaction(isolation)
    txn.reset()
    first, _ = run_read(txn.get([b"a"]), reads(7, None))
    assert [(g.revision, g.serializable) for g in gets_of(first)] == [(0, False)]
    later, _ = run_read(txn.get([b"b"]), reads(9, None))
    assert [(g.revision, g.serializable) for g in gets_of(later)] == [(7, True)]


@pytest.mark.parametrize("isolation", UNPINNED)
def test_other_levels_read_serializably_without_a_revision(isolation: Isolation) -> None:
    """REPEATABLE_READS and READ_COMMITTED read from the member asked (Go's WithSerializable)."""
    txn = Transaction(isolation)
    txn.reset()
    for key, revision in ((b"a", 7), (b"b", 9)):
        request, _ = run_read(txn.get([key]), reads(revision, None))
        assert [(g.revision, g.serializable) for g in gets_of(request)] == [(0, True)]


@pytest.mark.parametrize("isolation", list(Isolation))
def test_rev_reads_the_mod_revision_into_the_read_set(isolation: Isolation) -> None:
    txn = Transaction(isolation)
    txn.reset()
    txn.put(Op.put(b"a", b"new"))
    request, revision = run_read(txn.rev(b"a"), reads(7, kv(b"a", b"old", 4)))
    assert request is not None
    assert revision == 4
    assert txn.reads[b"a"].mod_revision == 4
    assert run_read(txn.rev(b"missing"), reads(8, None))[1] == 0


def test_conflicts_of_each_level() -> None:
    """The compares of Go's mkSTM: none, the read set, or the read set and the write set."""
    compares: dict[Isolation, list[Compare]] = {}
    for isolation in Isolation:
        txn = Transaction(isolation)
        txn.reset()
        run_read(txn.get([b"a", b"b"]), reads(7, kv(b"a", b"1", 5), None))
        txn.put(Op.put(b"c", b"3"))
        compares[isolation] = txn.conflicts()
    read_set = [Compare.mod_revision(b"a") == 5, Compare.mod_revision(b"b") == 0]
    assert compares[Isolation.READ_COMMITTED] == []
    assert compares[Isolation.REPEATABLE_READS] == read_set
    assert compares[Isolation.SERIALIZABLE] == read_set
    assert compares[Isolation.SERIALIZABLE_SNAPSHOT] == [
        *read_set,
        Compare.mod_revision(b"c") < 8,  # not modified after the first read, at revision 7
    ]


def test_snapshot_write_compares_hold_when_nothing_was_read() -> None:
    """Go's readSet.first() of an empty read set is MaxInt64 - 1, so the bound is MaxInt64."""
    txn = Transaction(Isolation.SERIALIZABLE_SNAPSHOT)
    txn.reset()
    txn.put(Op.put(b"c", b"3"))
    assert txn.conflicts() == [Compare.mod_revision(b"c") < 2**63 - 1]


@pytest.mark.parametrize("isolation", list(Isolation))
def test_commit_writes_in_first_written_order_and_rereads_on_failure(isolation: Isolation) -> None:
    """The commit puts the write set; serializable levels re-read the read set on failure."""
    txn = Transaction(isolation)
    txn.reset()
    run_read(txn.get([b"a"]), reads(7, kv(b"a", b"1", 5)))
    txn.put(Op.put(b"b", b"1"))
    txn.put(Op.put(b"c", b"1", lease=3))
    txn.put(Op.put(b"b", b"2"))  # overwrites in place
    txn.delete(Op.delete(b"d"))
    commit = txn.commit_op()
    assert commit.success == (
        Op.put(b"b", b"2"),
        Op.put(b"c", b"1", lease=3),
        Op.delete(b"d"),
    )
    assert commit.failure == ((Op.get(b"a"),) if isolation.pins_reads else ())


def test_failed_serializable_commit_feeds_the_next_attempt() -> None:
    """The failure branch's reads answer the retry's first get, which pins to their revision."""
    txn = Transaction(Isolation.SERIALIZABLE)
    txn.reset()
    run_read(txn.get([b"a"]), reads(7, kv(b"a", b"1", 5)))
    assert txn.settle(reads(9, kv(b"a", b"2", 8), succeeded=False)) is False
    txn.reset()
    assert run_read(txn.get([b"a"]), None) == (None, b"2")
    assert txn.pinned == 9
    later, _ = run_read(txn.get([b"b"]), reads(10, None))
    assert [(g.revision, g.serializable) for g in gets_of(later)] == [(9, True)]


def test_failed_repeatable_reads_commit_starts_afresh() -> None:
    txn = Transaction(Isolation.REPEATABLE_READS)
    txn.reset()
    run_read(txn.get([b"a"]), reads(7, kv(b"a", b"1", 5)))
    assert txn.settle(TxnResponse(ResponseHeader(revision=9), False, [])) is False
    txn.reset()
    request, value = run_read(txn.get([b"a"]), reads(10, kv(b"a", b"2", 8)))
    assert request is not None
    assert value == b"2"


def test_attempts_flow_prefetches_applies_commits_and_retries() -> None:
    """Each attempt: the prefetch read, APPLY, the commit; a failed commit starts another."""
    txn = Transaction(Isolation.REPEATABLE_READS)
    flow = attempts(txn, (b"a", b"b"))
    steps: list[object] = []
    answers: list[TxnResponse | None] = [
        reads(7, kv(b"a", b"1", 5), None),  # prefetch
        None,  # APPLY
        TxnResponse(ResponseHeader(revision=8), False, []),  # commit fails
        reads(9, kv(b"a", b"1", 5), None),  # prefetch again
        None,  # APPLY
    ]
    done = TxnResponse(ResponseHeader(revision=10), True, [PutResponse(ResponseHeader())])
    step = next(flow)
    for answer in answers:
        steps.append(step)
        step = flow.send(answer)
    assert isinstance(step, TxnOp)  # the second commit
    with pytest.raises(StopIteration) as stop:
        flow.send(done)
    assert stop.value.value is done
    assert [g.key for g in gets_of(cast(TxnOp, steps[0]))] == [b"a", b"b"]  # prefetch: one request
    assert steps[1] is APPLY
    assert steps[4] is APPLY
    assert txn.attempt == 2


def test_transaction_refuses_a_non_isolation() -> None:
    with pytest.raises(TypeError, match="isolation"):
        Transaction(0)  # type: ignore[arg-type]  # the wrong type on purpose


class RecordingKV:
    """A sync KV that records each Op and answers from a list of canned responses."""

    def __init__(self, *answers: Response) -> None:
        self.answers = list(answers)
        self.ops: list[Op] = []

    def do(self, op: Op, *, timeout: float | None = None) -> Response:
        self.ops.append(op)
        return self.answers.pop(0)


def call_stm(fake: RecordingKV, apply: Callable[[STM], object], **options: Any) -> TxnResponse:
    return stm(fake, apply, **options)  # type: ignore[call-overload, no-any-return]  # a fake KV


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"isolation": "serializable"}, TypeError),
        ({"prefetch": "abc"}, TypeError),
        ({"prefetch": [b"a", 1]}, TypeError),
        ({"prefetch": [b""]}, EmptyKeyError),
        ({"timeout": 0}, ValueError),
        ({"timeout": "1"}, TypeError),
    ],
)
def test_stm_checks_arguments_before_any_request(options: dict[str, Any], error: type) -> None:
    fake = RecordingKV()
    with pytest.raises(error):
        call_stm(fake, lambda tx: None, **options)
    assert fake.ops == []


def test_stm_refuses_a_non_kv_and_a_non_callable() -> None:
    with pytest.raises(TypeError, match="cli must be a KV"):
        stm(object(), lambda tx: None)  # type: ignore[call-overload]  # wrong on purpose
    with pytest.raises(TypeError, match="apply must be callable"):
        call_stm(RecordingKV(), None)  # type: ignore[arg-type]  # wrong on purpose


def test_stm_refuses_an_async_apply_on_a_sync_client_before_any_request() -> None:
    async def apply(tx: STM) -> None:
        return None

    fake = RecordingKV()
    with pytest.raises(TypeError, match="async"):
        call_stm(fake, apply)
    assert fake.ops == []


def test_stm_exception_in_apply_sends_no_commit() -> None:
    """An error raised by apply propagates; only the reads it made were sent."""
    fake = RecordingKV(reads(7, None))

    def apply(tx: STM) -> None:
        tx.get("a")
        tx.put("a", "1")
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        call_stm(fake, apply)
    assert len(fake.ops) == 1
    assert isinstance(fake.ops[0], TxnOp)
    assert fake.ops[0].compare == ()


def test_stm_handle_is_unusable_after_apply() -> None:
    fake = RecordingKV(TxnResponse(ResponseHeader(revision=2), True, []))
    kept: list[STM] = []
    call_stm(fake, kept.append)
    with pytest.raises(RuntimeError, match="inside the apply"):
        kept[0].put("a", "1")
    with pytest.raises(RuntimeError, match="inside the apply"):
        kept[0].get("a")


def test_stm_tx_checks_keys_before_any_request() -> None:
    fake = RecordingKV()

    def apply(tx: STM) -> None:
        tx.get(b"")

    with pytest.raises(EmptyKeyError):
        call_stm(fake, apply)
    assert fake.ops == []


class RecordingAsyncKV:
    """An async KV that records each Op and answers from a list of canned responses."""

    def __init__(self, *answers: Response) -> None:
        self.answers = list(answers)
        self.ops: list[Op] = []

    async def do(self, op: Op, *, timeout: float | None = None) -> Response:
        self.ops.append(op)
        return self.answers.pop(0)


def test_async_stm_refuses_a_sync_apply() -> None:
    """On an asyncio client, an apply that returns no awaitable is a TypeError; nothing is sent."""
    fake = RecordingAsyncKV()
    with pytest.raises(TypeError, match="async function"):
        asyncio.run(stm(fake, lambda tx: None))  # type: ignore[call-overload]  # a fake AsyncKV
    assert fake.ops == []


def test_async_stm_runs_an_async_apply_and_commits_its_writes() -> None:
    fake = RecordingAsyncKV(
        reads(7, kv(b"a", b"1", 5)), TxnResponse(ResponseHeader(revision=8), True, [])
    )

    async def apply(tx: AsyncSTM) -> None:
        value = await tx.get("a")
        tx.put("b", value + b"!")
        tx.delete("c")

    response = asyncio.run(stm(fake, apply))  # type: ignore[call-overload]  # a fake AsyncKV
    assert response.succeeded
    commit = fake.ops[-1]
    assert isinstance(commit, TxnOp)
    assert commit.success == (Op.put(b"b", b"1!"), Op.delete(b"c"))
    assert commit.compare == (
        Compare.mod_revision(b"a") == 5,
        Compare.mod_revision(b"b") < 8,
        Compare.mod_revision(b"c") < 8,
    )


def test_async_stm_exception_in_apply_sends_no_commit() -> None:
    fake = RecordingAsyncKV(reads(7, None))

    async def apply(tx: AsyncSTM) -> None:
        await tx.get("a")
        tx.put("a", "1")
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        asyncio.run(stm(fake, apply))  # type: ignore[call-overload]  # a fake AsyncKV
    assert len(fake.ops) == 1
