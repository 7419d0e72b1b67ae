"""The ordering layer on real clusters: members cut off or restored from a backup fall behind."""

from __future__ import annotations

import contextlib
import doctest
import shutil
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import pytest
from conftest import CLIENT_KINDS, AsyncClientFacade
from layer_kinds import ASYNC_CLIENT, BlockingLayer, Store

from etcd_layers import Client, Compare, Op, errors, namespace, ordering
from etcd_layers.base import GetResponse, Response
from etcd_layers.testing import EtcdCluster, EtcdServer, Member, wait_until
from etcd_layers.testing.plugin import EtcdClusterFactory

CALL_TIMEOUT = 10.0  # every call has a deadline, so a fault fails a test instead of hanging it
WAIT = 30.0  # elections and catching up after heal() on a busy two-core machine
T = TypeVar("T")
TRANSIENT = (errors.UnavailableError, errors.DeadlineExceededError, errors.RequestTimeoutError)


def connect(cluster: EtcdCluster, members: Sequence[Member], kind: str = "Client") -> Client:
    """A client on `members`, in that order, with a deadline on every call.

    Of `kind`: a Client, or an AsyncClient behind its sync facade (see conftest.py).
    """
    endpoints = [m.endpoint for m in members]
    if kind == "Client":
        return Client(endpoints, timeout=CALL_TIMEOUT, **cluster.client_options())
    options = cluster.client_options()
    return cast(
        Client,
        AsyncClientFacade(lambda: ASYNC_CLIENT(endpoints, timeout=CALL_TIMEOUT, **options)),
    )


@pytest.fixture(params=CLIENT_KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    """The kind of client (and so of ordering layer) a test runs with."""
    return cast(str, request.param)


def checked_by(cli: Client, build: Callable[[Any], T]) -> T:
    """`build(cli)`; over an AsyncClient's facade, the async layer behind a blocking facade."""
    facade: object = cli
    if isinstance(facade, AsyncClientFacade):
        return cast(T, BlockingLayer(build(facade.client), facade.run))
    return build(cli)


def pin(cli: Client, member: Member) -> None:
    """Make `member` the endpoint every unary request of `cli` starts at."""
    for _ in cli.endpoints:
        if cli.switch_endpoint() == member.endpoint:
            return
    raise AssertionError(f"{member.endpoint} is not one of {cli.endpoints}")


class StaleReadError(Exception):
    """Raised by the recording policy to stop at the first violation."""


@dataclass
class Violation:
    """What an on_violation policy was told."""

    op: Op
    response: Response
    prev_revision: int


@dataclass
class Split:
    """A cluster with some members cut off from their peers, after writes they missed."""

    fresh: list[Member]
    stale: list[Member]
    key: bytes
    revision: int  # of the write the stale members missed (value b"after")


@contextlib.contextmanager
def split(cluster: EtcdCluster, stale_count: int, key: bytes) -> Iterator[Split]:
    """Isolate `stale_count` followers, write `key` without them, and heal (caught up) on exit."""
    cluster.wait_healthy(WAIT)
    leader = wait_until(cluster.leader, WAIT, message="a leader")
    stale = [m for m in cluster.members if m is not leader][:stale_count]
    fresh = [m for m in cluster.members if all(m is not s for s in stale)]
    members = {m.name: connect(cluster, [m]) for m in cluster.members}
    try:

        def revision_of(member: Member) -> int:
            response = members[member.name].get(key, serializable=True, timeout=2.0)
            return response.header.revision

        with connect(cluster, fresh) as writer:
            before = writer.put(key, b"before").header.revision
            wait_until(
                lambda: all(revision_of(m) >= before for m in cluster.members),
                WAIT,
                message="every member has the first write",
                ignore=TRANSIENT,
            )
            for member in stale:
                cluster.isolate(member)
            try:
                revision = wait_until(
                    lambda: writer.put(key, b"after").header.revision, WAIT, ignore=TRANSIENT
                )
                for member in stale:
                    assert revision_of(member) < revision  # it really missed the write
                yield Split(fresh, stale, key, revision)
            finally:
                cluster.heal()
            latest = writer.get(key).header.revision
        wait_until(
            lambda: all(revision_of(m) >= latest for m in cluster.members),
            WAIT,
            message="every member caught up after heal()",
            ignore=TRANSIENT,
        )
        cluster.wait_healthy(WAIT)
    finally:
        for cli in members.values():
            cli.close()


def recording(
    violations: list[Violation], then: ordering.OnViolation | None = None
) -> ordering.OnViolation:
    """A policy that records each violation, then defers to `then` (or stops the call)."""

    def policy(op: Op, response: Response, prev_revision: int) -> None:
        violations.append(Violation(op, response, prev_revision))
        if then is None:
            raise StaleReadError(prev_revision)
        assert len(violations) < 100, "the retries never end"  # bounds a faulty retry loop
        then(op, response, prev_revision)

    return policy


# --- the module's own example -------------------------------------------------------------


def test_ordering_module_docstring_example_runs(
    etcd_server: EtcdServer, etcd_key_prefix: bytes
) -> None:
    """The usage walk-through in ordering/__init__.py runs as written on a real server."""
    source = ordering.__doc__ or ""
    source = source.replace('"127.0.0.1:2379"', repr(etcd_server.endpoints[0]))
    source = source.replace("/ordering-example/", etcd_key_prefix.decode())
    test = doctest.DocTestParser().get_doctest(source, {}, "ordering", None, 0)
    assert len(test.examples) >= 8
    result = doctest.DocTestRunner().run(test)
    assert (result.failed, result.attempted) == (0, len(test.examples))


def test_ordering_forwards_watches_leases_and_endpoints(
    store: Store, etcd_key_prefix: bytes
) -> None:
    """What the layer does not check (watch, lease calls, endpoints) reaches the client."""
    cli = store.client(timeout=CALL_TIMEOUT)
    kv = checked_by(cli, ordering.wrap)
    key = etcd_key_prefix + b"k"
    assert kv.endpoints == cli.endpoints
    lease = kv.grant(30)
    with kv.watch(key) as watch:
        put = kv.put(key, b"v", lease=lease.id)
        event = watch.next(timeout=CALL_TIMEOUT).events[0]
    assert (event.kv.value, event.kv.mod_revision) == (b"v", put.header.revision)
    assert kv.time_to_live(lease.id, keys=True).keys == [key]
    kv.revoke(lease.id)
    assert kv.get(key).kvs == []


# --- five members: two fall behind ----------------------------------------------------------
# First in the file: its cluster is closed with the class, before the module's own starts.


@pytest.fixture(scope="class")
def five() -> Iterator[EtcdCluster]:
    """A five-member cluster for the tests of one class, closed when the class is done."""
    factory = EtcdClusterFactory()
    try:
        yield factory(5)
    finally:
        factory.close()


class TestFiveMembers:
    """A five-member cluster with two followers cut off (the others keep a quorum)."""

    def test_ordering_gives_up_when_only_stale_members_answer(
        self, five: EtcdCluster, etcd_key_prefix: bytes
    ) -> None:
        """With only stale members reachable, the default policy raises after 5 rounds of them."""
        with split(five, 2, etcd_key_prefix + b"k") as cut, connect(five, cut.fresh) as cli:
            violations: list[Violation] = []
            kv = ordering.wrap(cli, recording(violations, ordering.switch_endpoints(cli)))
            seen = kv.get(cut.key).header.revision
            cli.set_endpoints(*(m.endpoint for m in cut.stale))
            with pytest.raises(errors.NoGreaterRevisionError) as raised:
                kv.get(cut.key, serializable=True)
            assert len(violations) == 5 * 2
            assert raised.value.prev_revision == seen
            assert isinstance(raised.value.response, GetResponse)
            assert raised.value.response.header.revision < seen
            assert raised.value.response.kvs[0].value == b"before"

    def test_ordering_moves_past_every_stale_member_to_a_fresh_one(
        self, five: EtcdCluster, etcd_key_prefix: bytes
    ) -> None:
        """Starting at the first of two stale members, the default policy reaches a fresh one."""
        with split(five, 2, etcd_key_prefix + b"k") as cut, connect(five, cut.fresh) as cli:
            violations: list[Violation] = []
            kv = ordering.wrap(cli, recording(violations, ordering.switch_endpoints(cli)))
            kv.get(cut.key)
            order = [*cut.stale, *cut.fresh]
            cli.set_endpoints(*(m.endpoint for m in order))
            pin(cli, cut.stale[0])
            response = kv.get(cut.key, serializable=True)
            assert response.kvs[0].value == b"after"
            assert response.header.revision >= cut.revision
            assert len(violations) == 2  # each stale member once, in the order given
            assert {v.response.header.member_id for v in violations} == {
                m.member_id for m in cut.stale
            }
            assert cli.endpoints == [m.endpoint for m in order]


# --- three members: one falls behind --------------------------------------------------------


def test_ordering_detects_a_stale_serializable_get(
    etcd_cluster: EtcdCluster, etcd_key_prefix: bytes, kind: str
) -> None:
    """A serializable get from a cut-off member, after a fresh one answered, is a violation."""
    with (
        split(etcd_cluster, 1, etcd_key_prefix + b"k") as cut,
        connect(etcd_cluster, cut.fresh, kind) as cli,
    ):
        violations: list[Violation] = []
        kv = checked_by(cli, lambda c: ordering.wrap(c, on_violation=recording(violations)))
        seen = kv.get(cut.key).header.revision
        assert seen >= cut.revision
        cli.set_endpoints(cut.stale[0].endpoint)
        with pytest.raises(StaleReadError):
            kv.get(cut.key, serializable=True)
    [violation] = violations
    assert violation.op == Op.get(cut.key, serializable=True)
    assert violation.prev_revision == seen
    assert isinstance(violation.response, GetResponse)
    assert violation.response.header.revision < seen
    assert violation.response.kvs[0].value == b"before"  # what the stale member holds


def test_ordering_detects_a_stale_read_only_txn(
    etcd_cluster: EtcdCluster, etcd_key_prefix: bytes, kind: str
) -> None:
    """A serializable read-only txn answered by a cut-off member is a violation, and retried."""
    with (
        split(etcd_cluster, 1, etcd_key_prefix + b"k") as cut,
        connect(etcd_cluster, cut.fresh, kind) as cli,
    ):
        violations: list[Violation] = []
        kv = checked_by(
            cli,
            lambda c: ordering.wrap(
                c, on_violation=recording(violations, ordering.switch_endpoints(c))
            ),
        )
        seen = kv.get(cut.key).header.revision
        cli.set_endpoints(cut.stale[0].endpoint, *(m.endpoint for m in cut.fresh))
        pin(cli, cut.stale[0])
        response = kv.txn(
            [Compare.value(cut.key) == b"after"], [Op.get(cut.key, serializable=True)]
        )
    assert response.succeeded  # answered by a fresh member, on the retry
    assert response.header.revision >= seen
    [violation] = violations
    assert isinstance(violation.op, Op)
    assert violation.op == Op.txn(
        [Compare.value(cut.key) == b"after"], [Op.get(cut.key, serializable=True)]
    )
    assert violation.response.header.revision < seen
    assert violation.prev_revision == seen


def test_ordering_default_policy_switches_to_an_up_to_date_member(
    etcd_cluster: EtcdCluster, etcd_key_prefix: bytes, kind: str
) -> None:
    """With the default policy, a read that reaches a stale member is answered by a fresh one."""
    with (
        split(etcd_cluster, 1, etcd_key_prefix + b"k") as cut,
        connect(etcd_cluster, cut.fresh, kind) as cli,
    ):
        kv = checked_by(cli, ordering.wrap)
        seen = kv.get(cut.key).header.revision
        order = [cut.stale[0], *cut.fresh]
        cli.set_endpoints(*(m.endpoint for m in order))
        pin(cli, cut.stale[0])
        assert cli.get(cut.key, serializable=True).kvs[0].value == b"before"  # the pin holds
        response = kv.get(cut.key, serializable=True)
        assert response.kvs[0].value == b"after"
        assert response.header.revision >= seen
        assert cli.endpoints == [m.endpoint for m in order]  # still the order given


def test_ordering_default_policy_moves_the_client_under_a_namespace(
    etcd_cluster: EtcdCluster, etcd_key_prefix: bytes, kind: str
) -> None:
    """Over a namespace wrapper, the default policy still moves the client underneath it."""
    with (
        split(etcd_cluster, 1, etcd_key_prefix + b"k") as cut,
        connect(etcd_cluster, cut.fresh, kind) as cli,
    ):
        kv = checked_by(cli, lambda c: ordering.wrap(namespace.wrap(c, etcd_key_prefix)))
        seen = kv.get(b"k").header.revision
        order = [cut.stale[0], *cut.fresh]
        cli.set_endpoints(*(m.endpoint for m in order))
        pin(cli, cut.stale[0])
        response = kv.get(b"k", serializable=True)
        assert response.kvs[0].key == b"k"
        assert response.kvs[0].value == b"after"
        assert response.header.revision >= seen
        assert cli.get(cut.key, serializable=True).kvs[0].value == b"after"  # it moved


def test_ordering_gives_up_when_only_the_stale_member_is_reachable(
    etcd_cluster: EtcdCluster, etcd_key_prefix: bytes, kind: str
) -> None:
    """With one stale endpoint, the default policy raises NoGreaterRevisionError after five."""
    with (
        split(etcd_cluster, 1, etcd_key_prefix + b"k") as cut,
        connect(etcd_cluster, cut.fresh, kind) as cli,
    ):
        violations: list[Violation] = []
        kv = checked_by(
            cli, lambda c: ordering.wrap(c, recording(violations, ordering.switch_endpoints(c)))
        )
        seen = kv.get(cut.key).header.revision
        cli.set_endpoints(cut.stale[0].endpoint)
        with pytest.raises(errors.NoGreaterRevisionError) as raised:
            kv.get(cut.key, serializable=True)
    assert len(violations) == 5
    assert raised.value.prev_revision == seen
    assert isinstance(raised.value.response, GetResponse)
    assert raised.value.response.header.revision < seen


def test_ordering_reads_from_the_member_again_after_heal(
    etcd_cluster: EtcdCluster, etcd_key_prefix: bytes, kind: str
) -> None:
    """Once the partition heals and the member catches up, its answers pass the check."""
    with connect(etcd_cluster, etcd_cluster.members, kind) as cli:
        violations: list[Violation] = []
        kv = checked_by(cli, lambda c: ordering.wrap(c, on_violation=recording(violations)))
        with split(etcd_cluster, 1, etcd_key_prefix + b"k") as cut:
            cli.set_endpoints(*(m.endpoint for m in cut.fresh))
            seen = kv.get(cut.key).header.revision
        # split() has healed the cluster and waited for the member to catch up
        cli.set_endpoints(cut.stale[0].endpoint)
        response = kv.get(cut.key, serializable=True)
    assert violations == []
    assert response.header.revision >= seen
    assert response.kvs[0].value == b"after"


def test_ordering_readers_never_go_back_while_a_member_lags(
    etcd_cluster: EtcdCluster, etcd_key_prefix: bytes, kind: str
) -> None:
    """Threads sharing one wrapper, starting on a stale member, each see revisions only rise."""
    threads, reads, writes = 4, 15, 15
    with (
        split(etcd_cluster, 1, etcd_key_prefix + b"k") as cut,
        connect(etcd_cluster, cut.fresh) as writer,
        connect(etcd_cluster, cut.fresh, kind) as cli,
    ):
        violations: list[Violation] = []
        kv = checked_by(
            cli, lambda c: ordering.wrap(c, recording(violations, ordering.switch_endpoints(c)))
        )
        kv.get(cut.key)
        cli.set_endpoints(*(m.endpoint for m in [cut.stale[0], *cut.fresh]))
        pin(cli, cut.stale[0])
        seen: list[list[tuple[int, bytes]]] = [[] for _ in range(threads)]
        failures: list[BaseException] = []
        start = threading.Barrier(threads + 1)

        def read(index: int) -> None:
            start.wait(WAIT)
            try:
                for _ in range(reads):
                    response = kv.get(cut.key, serializable=True)
                    seen[index].append((response.header.revision, response.kvs[0].value))
            except errors.EtcdError as err:
                failures.append(err)

        readers = [threading.Thread(target=read, args=(i,), daemon=True) for i in range(threads)]
        for reader in readers:
            reader.start()
        start.wait(WAIT)
        for number in range(writes):
            writer.put(cut.key, b"after-%03d" % number)
        for reader in readers:
            reader.join(WAIT)
        assert not any(reader.is_alive() for reader in readers)
    assert failures == []
    assert violations  # the first reads did reach the stale member
    for sequence in seen:
        assert len(sequence) == reads
        assert [revision for revision, _ in sequence] == sorted(r for r, _ in sequence)
        assert b"before" not in {value for _, value in sequence}


# --- a cluster restored from an older backup: even writes come back older -------------------


def test_ordering_stale_write_raises_and_is_not_sent_again(
    etcd_cluster_factory: EtcdClusterFactory, etcd_key_prefix: bytes, tmp_path: Path, kind: str
) -> None:
    """A put answered below the floor raises OrderViolationError; the put was applied once."""
    cluster = etcd_cluster_factory(1)
    [member] = cluster.members
    key = etcd_key_prefix + b"new"
    with connect(cluster, [member], kind) as cli:
        kv = checked_by(cli, ordering.wrap)
        kv.put(etcd_key_prefix + b"old", b"1")
        member.stop()
        backup = tmp_path / "backup"
        shutil.copytree(member.data_dir, backup)
        member.start()
        wait_until(lambda: cli.get(etcd_key_prefix + b"old"), WAIT, ignore=TRANSIENT)
        for number in range(5):  # history the backup does not have
            kv.put(etcd_key_prefix + b"old", b"%d" % number)
        seen = kv.get(etcd_key_prefix + b"old").header.revision
        member.stop()
        shutil.rmtree(member.data_dir)
        shutil.copytree(backup, member.data_dir)  # the cluster is restored from the backup
        member.start()
        wait_until(lambda: cli.get(etcd_key_prefix + b"old"), WAIT, ignore=TRANSIENT)
        with pytest.raises(errors.OrderViolationError) as raised:
            kv.put(key, b"v")
        assert type(raised.value) is errors.OrderViolationError
        assert raised.value.prev_revision == seen
        assert isinstance(raised.value.response, Response)
        assert raised.value.response.header.revision < seen
        [stored] = cli.get(key).kvs
        assert stored.version == 1  # applied once, never re-sent
        assert stored.value == b"v"
