"""stm() against a real etcd: Go's v3_stm_test.go, each level's anomalies, the rest of its contract.

Every test runs on both client kinds (sync and asyncio) and both layers (plain, namespace),
through `stm_kinds.StmRunner`; apply bodies are written once as async functions. Faults are in
test_concurrency_stm_faults.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import CLIENT_KINDS, AsyncClientFacade
from stm_kinds import LAYERS, WAIT, StmRunner, Tx, in_threads, transfer

from etcd_layers import AsyncClient, Client, Op, errors
from etcd_layers.concurrency import Isolation
from etcd_layers.testing import EtcdServer
from etcd_layers.testing.linearizability import Operation, check

CONSISTENT = [Isolation.SERIALIZABLE_SNAPSHOT, Isolation.SERIALIZABLE, Isolation.REPEATABLE_READS]
PINNING = [Isolation.SERIALIZABLE_SNAPSHOT, Isolation.SERIALIZABLE]


@pytest.fixture(scope="module", params=CLIENT_KINDS)
def kind_client(
    request: pytest.FixtureRequest, etcd_server: EtcdServer
) -> Iterator[Client | AsyncClientFacade]:
    """A connected Client, or an AsyncClient behind its facade, for the whole module."""
    options: dict[str, Any] = {"endpoints": etcd_server.endpoints, **etcd_server.client_options()}
    if request.param == "Client":
        with Client(**options) as client:
            yield client
    else:
        with AsyncClientFacade(lambda: AsyncClient(**options)) as facade:
            yield facade


@pytest.fixture(params=LAYERS)
def runner(
    request: pytest.FixtureRequest,
    kind_client: Client | AsyncClientFacade,
    etcd_client: Client,
    etcd_key_prefix: bytes,
) -> StmRunner:
    return StmRunner(kind_client, request.param, etcd_key_prefix, etcd_client)


def value_of(runner: StmRunner, name: str) -> bytes | None:
    """The value of `name` in etcd, read through the raw client (None: missing)."""
    kvs = runner.raw.get(runner.raw_key(name)).kvs
    return kvs[0].value if kvs else None


# --- Go's v3_stm_test.go -------------------------------------------------------------------


@pytest.mark.parametrize("isolation", CONSISTENT)
def test_stm_conflict_bank_transfers_keep_the_total(
    runner: StmRunner, isolation: Isolation
) -> None:
    """Go's TestSTMConflict: 5 threads, 4 transfers each among 5 accounts; the total stays 500.

    Each committed transfer's reads and writes, recorded as gets and puts over the call's time,
    also form a linearizable history of every account (the project's checker).
    """
    keys = [runner.key(f"account-{i}") for i in range(5)]
    for key in keys:
        runner.kv.put(key, "100")
    history: list[Operation] = []
    lock = threading.Lock()

    def work(index: int) -> None:
        for round_ in range(4):
            attempt: dict[str, dict[bytes, bytes]] = {}
            apply = transfer(runner, keys, index, seed=index * 100 + round_, attempt=attempt)
            invoked = time.monotonic()
            runner.stm(apply, isolation=isolation, timeout=WAIT)
            returned = time.monotonic()
            client = f"thread-{index}"
            with lock:
                history.extend(
                    Operation(client, "get", k, None, invoked, returned, v)
                    for k, v in attempt["reads"].items()
                )
                history.extend(
                    Operation(client, "put", k, v, invoked, returned)
                    for k, v in attempt["writes"].items()
                )

    in_threads(len(keys), work)
    total = sum(int(runner.kv.get(key).kvs[0].value) for key in keys)
    assert total == 500
    verdict = check(history, initial=lambda key: b"100")
    assert verdict.ok, verdict.message


@pytest.mark.parametrize("isolation", list(Isolation))
def test_stm_put_new_key(runner: StmRunner, isolation: Isolation) -> None:
    """Go's TestSTMPutNewKey: a transaction of one put creates the key."""

    async def apply(tx: Tx) -> None:
        tx.put(runner.key("foo"), "bar")

    response = runner.stm(apply, isolation=isolation)
    assert response.succeeded
    assert value_of(runner, "foo") == b"bar"


@pytest.mark.parametrize("isolation", list(Isolation))
def test_stm_abort_writes_nothing(runner: StmRunner, isolation: Isolation) -> None:
    """Go's TestSTMAbort: an apply raising after its puts writes nothing; the error propagates."""

    class AbortError(Exception):
        pass

    async def apply(tx: Tx) -> None:
        tx.put(runner.key("foo"), "baz")
        await tx.get(runner.key("other"))
        tx.put(runner.key("foo"), "bap")
        raise AbortError

    with pytest.raises(AbortError):
        runner.stm(apply, isolation=isolation)
    assert value_of(runner, "foo") is None


@pytest.mark.parametrize("isolation", PINNING)
def test_stm_serialize_reads_one_snapshot(runner: StmRunner, isolation: Isolation) -> None:
    """Go's TestSTMSerialize: readers of 5 keys rewritten together always see equal values."""
    keys = [runner.key(f"foo-{i}") for i in range(5)]
    runner.kv.txn(success=[Op.put(key, "init") for key in keys])
    stop = threading.Event()
    seen: list[list[bytes]] = []

    def writer() -> None:
        for round_ in range(30):
            if stop.is_set():
                return
            runner.kv.txn(success=[Op.put(key, str(round_)) for key in keys])

    async def apply(tx: Tx) -> None:
        values = [await tx.get(key) for key in keys]
        seen.append(values)
        if len(set(values)) != 1:
            raise AssertionError(f"a torn read: {values}")

    def work(index: int) -> None:
        if index == 0:
            writer()
            return
        for _ in range(5):
            runner.stm(apply, isolation=isolation, timeout=WAIT)

    try:
        in_threads(4, work)
    finally:
        stop.set()
    assert len(seen) >= 15


@pytest.mark.parametrize(
    ("isolation", "tries"), [*((i, 2) for i in CONSISTENT), (Isolation.READ_COMMITTED, 1)]
)
def test_stm_apply_on_concurrent_deletion(
    runner: StmRunner, isolation: Isolation, tries: int
) -> None:
    """Go's TestSTMApplyOnConcurrentDeletion: a key read then deleted by another makes a retry."""
    runner.kv.put(runner.key("foo"), "bar")
    attempts = 0

    async def apply(tx: Tx) -> None:
        nonlocal attempts
        attempts += 1
        await tx.get(runner.key("foo"))
        if attempts == 1:
            runner.kv.delete(runner.key("foo"))  # another client, between the read and the commit
        tx.put(runner.key("foo2"), "bar2")

    runner.stm(apply, isolation=isolation, timeout=WAIT)
    assert attempts == tries
    assert value_of(runner, "foo2") == b"bar2"


@pytest.mark.parametrize("isolation", list(Isolation))
def test_stm_serializable_snapshot_put(runner: StmRunner, isolation: Isolation) -> None:
    """Go's TestSTMSerializableSnapshotPut: two runs of get a, put b commit b twice."""
    runner.kv.put(runner.key("a"), "0")
    attempts = 0

    async def apply(tx: Tx) -> None:
        nonlocal attempts
        attempts += 1
        if attempts > 3:
            raise AssertionError("too many retries")
        await tx.get(runner.key("a"))
        tx.put(runner.key("b"), "1")

    runner.stm(apply, isolation=isolation)
    runner.stm(apply, isolation=isolation)
    assert runner.kv.get(runner.key("b")).kvs[0].version == 2
    assert attempts == 2


# --- the anomalies each level allows --------------------------------------------------------


@pytest.mark.parametrize(
    ("isolation", "sums_seen", "committed"),
    [
        (Isolation.READ_COMMITTED, [110], b"110"),  # reads skewed values and commits them
        (Isolation.REPEATABLE_READS, [110, 100], b"100"),  # reads them, the commit fails
        (Isolation.SERIALIZABLE, [100, 100], b"100"),  # never reads them: one snapshot
        (Isolation.SERIALIZABLE_SNAPSHOT, [100, 100], b"100"),
    ],
)
def test_stm_read_skew_by_isolation(
    runner: StmRunner, isolation: Isolation, sums_seen: list[int], committed: bytes
) -> None:
    """A transfer between two reads: READ_COMMITTED sees a skewed sum; SERIALIZABLE never does."""
    x, y, total = runner.key("x"), runner.key("y"), runner.key("total")
    runner.kv.txn(success=[Op.put(x, "50"), Op.put(y, "50")])
    sums: list[int] = []

    async def apply(tx: Tx) -> None:
        first = int(await tx.get(x))
        if not sums:  # another client moves 10 from x to y, between this attempt's two reads
            runner.kv.txn(success=[Op.put(x, "40"), Op.put(y, "60")])
        sums.append(first + int(await tx.get(y)))
        tx.put(total, str(sums[-1]))

    runner.stm(apply, isolation=isolation, timeout=WAIT)
    assert sums == sums_seen
    assert value_of(runner, "total") == committed


@pytest.mark.parametrize(
    ("isolation", "attempts"), [(Isolation.SERIALIZABLE, 1), (Isolation.SERIALIZABLE_SNAPSHOT, 2)]
)
def test_stm_snapshot_refuses_a_write_conflict_that_serializable_allows(
    runner: StmRunner, isolation: Isolation, attempts: int
) -> None:
    """A key written, not read, and changed by another after the first read: SNAPSHOT retries."""
    runner.kv.put(runner.key("a"), "0")
    runs: list[int] = []

    async def apply(tx: Tx) -> None:
        runs.append(1)
        await tx.get(runner.key("a"))
        if len(runs) == 1:
            runner.kv.put(runner.key("b"), "theirs")
        tx.put(runner.key("b"), "mine")

    runner.stm(apply, isolation=isolation, timeout=WAIT)
    assert len(runs) == attempts
    assert value_of(runner, "b") == b"mine"


# --- the rest of the contract ---------------------------------------------------------------


@pytest.mark.parametrize("isolation", CONSISTENT)
def test_stm_prefetched_keys_join_the_read_set(runner: StmRunner, isolation: Isolation) -> None:
    """A prefetched key that apply never reads still makes the commit fail when it changes."""
    runner.kv.put(runner.key("a"), "1")
    runs: list[bytes] = []

    async def apply(tx: Tx) -> None:
        runs.append(await tx.get(runner.key("a")))
        if len(runs) == 1:
            runner.kv.put(runner.key("b"), "changed")
        tx.put(runner.key("c"), "done")

    runner.stm(apply, isolation=isolation, prefetch=[runner.key("a"), runner.key("b")])
    assert runs == [b"1", b"1"]


def test_stm_get_rev_and_delete(runner: StmRunner) -> None:
    """get of several keys returns the first's value; rev its mod revision; delete removes it."""
    put = runner.kv.put(runner.key("a"), "1")
    runner.kv.put(runner.key("gone"), "x")
    seen: dict[str, object] = {}

    async def apply(tx: Tx) -> None:
        seen["missing"] = await tx.get(runner.key("nope"))
        seen["first"] = await tx.get(runner.key("a"), runner.key("nope2"))
        seen["rev"] = await tx.rev(runner.key("a"))
        seen["rev_missing"] = await tx.rev(runner.key("nope3"))
        tx.delete(runner.key("gone"))
        seen["deleted"] = await tx.get(runner.key("gone"))

    response = runner.stm(apply)
    assert seen == {
        "missing": b"",
        "first": b"1",
        "rev": put.header.revision,
        "rev_missing": 0,
        "deleted": b"",
    }
    assert value_of(runner, "gone") is None
    assert response.header.revision > put.header.revision


def test_stm_put_with_lease(runner: StmRunner) -> None:
    """tx.put(..., lease=) attaches the key to the lease."""
    lease = runner.raw.grant(30)
    try:

        async def apply(tx: Tx) -> None:
            tx.put(runner.key("leased"), "v", lease=lease.id)

        runner.stm(apply)
        assert runner.raw.get(runner.raw_key("leased")).kvs[0].lease == lease.id
    finally:
        runner.raw.revoke(lease.id)


def test_stm_timeout_bounds_the_retries(runner: StmRunner) -> None:
    """An apply whose reads always change before its commit times out as a TimeoutError."""
    runs: list[int] = []

    async def apply(tx: Tx) -> None:
        runs.append(1)
        await tx.get(runner.key("hot"))
        runner.kv.put(runner.key("hot"), str(len(runs)))  # every attempt conflicts
        tx.put(runner.key("out"), "never")

    with pytest.raises(errors.DeadlineExceededError, match="did not commit") as raised:
        runner.stm(apply, timeout=0.5)
    assert isinstance(raised.value, TimeoutError)
    assert len(runs) >= 2
    assert value_of(runner, "out") is None
