"""The leasing layer on a real etcd server: Go's leasing tests, and the bugs Go has that we lack.

Each test has its own user keys (under `etcd_key_prefix`) and its own leasing prefix, so the
shared session server needs no cleaning up between tests.
"""

from __future__ import annotations

import doctest
import itertools
import random
import threading
from collections.abc import Callable, Iterator
from typing import Any, cast

import pytest
import wrapt
from conftest import AsyncClientFacade
from layer_kinds import Backend, BlockingLayer

from etcd_layers import (
    Client,
    Compare,
    EventType,
    Op,
    SortOrder,
    SortTarget,
    errors,
    leasing,
    namespace,
    ordering,
)
from etcd_layers.base import GetOp, GetResponse, KeyValue, TxnOp, TxnResponse
from etcd_layers.leasing import REVOKE, AsyncLeasingKV, LeasingKV
from etcd_layers.leasing._evaluate import evaluate_compare
from etcd_layers.testing import EtcdServer, wait_until

TIMEOUT = 10.0


class Leasing:
    """Makes leasing clients on one prefix, each on its own client, and releases them all.

    Of kind "mixed", every other one (the first included) is an async leasing client on an
    AsyncClient, behind a blocking facade: one test body then checks the async layer alone
    and sync and async leasing clients coordinating on one prefix.
    """

    def __init__(self, backend: Backend, prefix: bytes, kind: str = "sync") -> None:
        self.backend = backend
        self.prefix = prefix
        self.kind = kind
        self._made: list[LeasingKV] = []  # their clients are the backend's, closed with it
        self._made_async: list[tuple[BlockingLayer, AsyncClientFacade]] = []

    def __call__(
        self, *, ttl: int = 30, max_keys: int | None = None, within: bytes | None = None
    ) -> LeasingKV:
        """Make a leasing client; `within` puts it (leasing keys too) inside a namespace."""
        if self.kind == "mixed" and len(self._made_async) <= len(self._made):
            return self._make_async(ttl, max_keys, within)
        client = self.backend.client(timeout=TIMEOUT)
        below: Any = client if within is None else namespace.wrap(client, within)
        kv = leasing.wrap(below, self.prefix, ttl=ttl, max_keys=max_keys, timeout=TIMEOUT)
        assert isinstance(kv, LeasingKV)
        self._made.append(kv)
        return kv

    def _make_async(self, ttl: int, max_keys: int | None, within: bytes | None) -> LeasingKV:
        facade = AsyncClientFacade(self.backend.make_async_client(timeout=TIMEOUT))
        below: Any = facade.client if within is None else namespace.wrap(facade.client, within)
        opening = leasing.wrap(below, self.prefix, ttl=ttl, max_keys=max_keys, timeout=TIMEOUT)
        layer = facade.run(opening)
        assert isinstance(layer, AsyncLeasingKV)
        kv = BlockingLayer(layer, facade.run)
        self._made_async.append((kv, facade))
        return cast(LeasingKV, kv)  # speaks the same calls, blocking

    def close(self) -> None:
        for kv in self._made:
            kv.close()
        for akv, facade in self._made_async:
            akv.close()
            facade.close()


@pytest.fixture
def lease_prefix(etcd_key_prefix: bytes) -> bytes:
    return b"/leasing" + etcd_key_prefix


@pytest.fixture
def etcd_client(backend: Backend) -> Client:
    """A plain client on the test's backend (etcd, or MemoryEtcd), to seed and inspect."""
    return backend.client(timeout=TIMEOUT)


@pytest.fixture(params=["sync", "mixed"])
def make(
    request: pytest.FixtureRequest, backend: Backend, lease_prefix: bytes
) -> Iterator[Leasing]:
    """Sync leasing clients; or, "mixed", async and sync ones in turn, an async one first."""
    factory = Leasing(backend, lease_prefix, request.param)
    yield factory
    factory.close()


@pytest.fixture
def p(etcd_key_prefix: bytes) -> Callable[[str], bytes]:
    """Build a user key under this test's prefix."""
    return lambda name: etcd_key_prefix + name.encode()


def leasing_keys(cli: Client, lease_prefix: bytes) -> list[KeyValue]:
    return cli.get(lease_prefix, prefix=True).kvs


def owned_by(kv: LeasingKV, key: bytes) -> bool:
    """Whether `kv` answers `key` from memory right now (a hit leaves the server alone)."""
    before = kv.stats.hits
    kv.get(key)
    return kv.stats.hits == before + 1


# --- the example ------------------------------------------------------------------------------


def test_leasing_module_docstring_example_runs(
    etcd_server: EtcdServer, lease_prefix: bytes
) -> None:
    """The usage walk-through in leasing/__init__.py runs as written on a real server."""
    source = (leasing.__doc__ or "").replace('"127.0.0.1:2379"', repr(etcd_server.endpoints[0]))
    source = source.replace('"/leasing-example/"', repr(lease_prefix.decode()))
    source = source.replace('"greeting"', repr(lease_prefix.decode() + "-greeting"))
    test = doctest.DocTestParser().get_doctest(source, {}, "leasing", None, 0)
    assert len(test.examples) > 10
    result = doctest.DocTestRunner().run(test)
    assert (result.failed, result.attempted) == (0, len(test.examples))


# --- Go's leasing_test.go ---------------------------------------------------------------------


def test_leasing_put_get_across_three_clients(make: Leasing, p: Callable[[str], bytes]) -> None:
    """Go's TestLeasingPutGet: each client reads what another wrote, even after owning it."""
    one, two, three = make(), make(), make()
    assert one.get(p("abc")).kvs == []
    one.put(p("abc"), "def")
    assert two.get(p("abc")).kvs[0].value == b"def"
    three.get(p("abc"))
    two.put(p("abc"), "ghi")
    assert three.get(p("abc")).kvs[0].value == b"ghi"


def test_leasing_range_gets_are_served_by_the_server(
    make: Leasing, etcd_client: Client, p: Callable[[str], bytes]
) -> None:
    """Go's TestLeasingInterval: a prefix get sees every key, cached or not."""
    kv = make()
    for name in ("abc/a", "abc/b", "abc/a/a"):
        etcd_client.put(p(name), "v")
    assert len(kv.get(p("abc/"), prefix=True).kvs) == 3
    kv.get(p("abc/a"))
    assert len(kv.get(p("abc/a"), prefix=True).kvs) == 2


@pytest.mark.parametrize("existing", [False, True])
def test_leasing_owner_put_leaves_memory_equal_to_the_server(
    make: Leasing, etcd_client: Client, p: Callable[[str], bytes], existing: bool
) -> None:
    """Go's TestLeasingPutInvalidateNew/Existing: after the owner's put, memory is the server."""
    if existing:
        etcd_client.put(p("k"), "abc")
    kv = make()
    kv.get(p("k"))
    kv.put(p("k"), "v")
    cached, raw = kv.get(p("k")), etcd_client.get(p("k"))
    assert (list(cached.kvs), cached.count, cached.more) == (list(raw.kvs), raw.count, raw.more)
    assert owned_by(kv, p("k"))


def test_leasing_never_caches_a_key_with_its_own_lease(
    make: Leasing, etcd_client: Client, p: Callable[[str], bytes], lease_prefix: bytes
) -> None:
    """Go's TestLeasingGetNoLeaseTTL: a key with a lease can vanish unseen, so it is not owned."""
    kv = make()
    lease = etcd_client.grant(60).id
    try:
        etcd_client.put(p("k"), "v", lease=lease)
        assert len(kv.get(p("k")).kvs) == 1
        assert not owned_by(kv, p("k"))
        assert leasing_keys(etcd_client, lease_prefix) == []
    finally:
        etcd_client.revoke(lease)
    assert kv.get(p("k")).kvs == []


def test_leasing_put_prev_kv_by_the_owner(
    make: Leasing, etcd_client: Client, p: Callable[[str], bytes]
) -> None:
    """Go's TestLeasingPrevKey: the owner's put returns the previous pair."""
    kv = make()
    etcd_client.put(p("k"), "abc")
    kv.get(p("k"))
    response = kv.put(p("k"), "def", prev_kv=True)
    assert response.prev_kv is not None
    assert response.prev_kv.value == b"abc"


def test_leasing_get_at_a_revision_reads_history(
    make: Leasing, etcd_client: Client, p: Callable[[str], bytes]
) -> None:
    """Go's TestLeasingRevGet: a get at a past revision is the server's, not memory's."""
    kv = make()
    first = etcd_client.put(p("k"), "abc")
    etcd_client.put(p("k"), "def")
    kv.get(p("k"))
    assert kv.get(p("k"), revision=first.header.revision).kvs[0].value == b"abc"
    assert kv.get(p("k")).kvs[0].value == b"def"


GET_OPTIONS: list[dict[str, Any]] = [
    {},
    {"keys_only": True},
    {"limit": 1},
    {"serializable": True},
    {"sort_order": SortOrder.ASCEND, "sort_target": SortTarget.KEY},
    {"sort_order": SortOrder.DESCEND, "sort_target": SortTarget.VALUE},
    {"sort_target": SortTarget.MOD},
    {"min_mod_revision": 1},
    {"min_create_revision": 1},
    {"keys_only": True, "limit": 1, "serializable": True},
]


def test_leasing_get_options_are_answered_from_memory_as_the_server_would(
    make: Leasing, etcd_client: Client, p: Callable[[str], bytes]
) -> None:
    """Go's TestLeasingGetWithOpts, made differential: every option matches raw etcd."""
    kv = make()
    put = etcd_client.put(p("k"), "abc")
    etcd_client.put(p("k"), "abcd")
    modified = etcd_client.get(p("k")).kvs[0].mod_revision
    created = put.header.revision
    options = [
        *GET_OPTIONS,
        {"min_mod_revision": modified},
        {"min_mod_revision": modified + 1},
        {"max_mod_revision": modified},
        {"max_mod_revision": modified - 1},
        {"min_create_revision": created + 1},
        {"max_create_revision": created},
        {"max_create_revision": created - 1},
        {"keys_only": True, "max_mod_revision": modified - 1},
    ]
    kv.get(p("k"))  # own it
    for option in options:
        hits = kv.stats.hits
        cached = kv.get(p("k"), **option)
        raw = etcd_client.get(p("k"), **option)
        assert kv.stats.hits == hits + 1, option
        assert (list(cached.kvs), cached.count, cached.more) == (
            list(raw.kvs),
            raw.count,
            raw.more,
        ), option


def test_leasing_get_options_on_a_missing_owned_key_match_the_server(
    make: Leasing, etcd_client: Client, p: Callable[[str], bytes]
) -> None:
    """Owning a key that does not exist answers every option as etcd does."""
    kv = make()
    kv.get(p("gone"))
    for option in GET_OPTIONS:
        cached, raw = kv.get(p("gone"), **option), etcd_client.get(p("gone"), **option)
        assert (list(cached.kvs), cached.count, cached.more) == (
            list(raw.kvs),
            raw.count,
            raw.more,
        ), option
    assert owned_by(kv, p("gone"))


def test_leasing_count_only_is_served_by_the_server(
    make: Leasing, etcd_client: Client, p: Callable[[str], bytes]
) -> None:
    """count_only reads go to the server even for an owned key."""
    kv = make()
    etcd_client.put(p("k"), "v")
    kv.get(p("k"))
    hits = kv.stats.hits
    assert kv.get(p("k"), count_only=True).count == 1
    assert kv.stats.hits == hits


def test_leasing_concurrent_owner_puts_leave_the_last_write_cached(
    make: Leasing, p: Callable[[str], bytes]
) -> None:
    """Go's TestLeasingConcurrentPut: after 16 concurrent puts, memory has version 16."""
    kv = make()
    kv.get(p("k"))
    revisions: list[int] = []
    lock = threading.Lock()

    def put() -> None:
        revision = kv.put(p("k"), "abc").header.revision
        with lock:
            revisions.append(revision)

    threads = [threading.Thread(target=put) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    assert len(revisions) == 16
    cached = kv.get(p("k")).kvs[0]
    assert cached.mod_revision == max(revisions)
    assert cached.version == 16


def test_leasing_delete_by_the_owner(
    make: Leasing, etcd_client: Client, p: Callable[[str], bytes]
) -> None:
    """Go's TestLeasingDeleteOwner: deleted, then a second delete deletes nothing."""
    kv = make()
    etcd_client.put(p("k"), "abc")
    kv.get(p("k"))
    assert kv.delete(p("k")).deleted == 1
    assert kv.get(p("k")).kvs == []
    assert kv.delete(p("k")).deleted == 0
    assert etcd_client.get(p("k")).kvs == []


def test_leasing_delete_by_a_non_owner_invalidates_the_owner(
    make: Leasing, etcd_client: Client, p: Callable[[str], bytes]
) -> None:
    """Go's TestLeasingDeleteNonOwner: the owner never answers the deleted value."""
    one, two = make(), make()
    etcd_client.put(p("k"), "abc")
    one.get(p("k"))
    assert two.delete(p("k")).deleted == 1
    assert one.get(p("k")).kvs == []
    assert one.stats.revocations == 1


def test_leasing_cached_response_cannot_be_corrupted_by_the_caller(
    make: Leasing, etcd_client: Client, p: Callable[[str], bytes]
) -> None:
    """Go's TestLeasingOverwriteResponse: changing a response does not change memory."""
    kv = make()
    etcd_client.put(p("k"), "abc")
    kv.get(p("k"))
    response = kv.get(p("k"))
    with pytest.raises(TypeError):
        response.kvs[0] = KeyValue(b"z", b"z")
    assert kv.get(p("k")).kvs[0].value == b"abc"


def test_leasing_owner_put_is_then_served_from_memory(
    make: Leasing, etcd_client: Client, p: Callable[[str], bytes]
) -> None:
    """Go's TestLeasingOwnerPutResponse: memory holds the put's revision and version 2."""
    kv = make()
    etcd_client.put(p("k"), "abc")
    kv.get(p("k"))
    put = kv.put(p("k"), "def")
    hits = kv.stats.hits
    cached = kv.get(p("k")).kvs[0]
    assert kv.stats.hits == hits + 1
    assert (cached.mod_revision, cached.version) == (put.header.revision, 2)


def test_leasing_txn_range_get_is_served_by_the_server(
    make: Leasing, etcd_client: Client, p: Callable[[str], bytes]
) -> None:
    """Go's TestLeasingTxnOwnerGetRange: a prefix get in a txn sees every key."""
    kv = make()
    for index in range(5):
        etcd_client.put(p(f"k-{index}"), "v")
    kv.get(p("k-"))
    response = kv.txn(success=[Op.get(p("k-"), prefix=True)])
    inner = response.responses[0]
    assert isinstance(inner, GetResponse)
    assert len(inner.kvs) == 5


def test_leasing_txn_of_owned_keys_is_answered_from_memory(
    make: Leasing, etcd_client: Client, p: Callable[[str], bytes]
) -> None:
    """Go's TestLeasingTxnOwnerGet: compares and reads of owned keys need no server."""
    kv = make()
    puts = [etcd_client.put(p(f"k-{index}"), f"v{index}") for index in range(4)]
    for index in range(4):
        kv.get(p(f"k-{index}"))
    compares = [
        Compare.create_revision(p("k-1")) == puts[1].header.revision,
        Compare.version(p("k-2")) == 1,
    ]
    reads = [Op.get(p(f"k-{index}")) for index in range(4)]
    for branch_taken, extra in ((True, []), (False, [Compare.version(p("k-3")) == 0])):
        hits = kv.stats.hits
        response = kv.txn([*compares, *extra], reads, [Op.get(p("k-0"))])
        raw = etcd_client.txn([*compares, *extra], reads, [Op.get(p("k-0"))])
        assert kv.stats.hits == hits + 1
        assert response.succeeded is raw.succeeded is branch_taken
        assert [list(r.kvs) for r in response.responses] == [list(r.kvs) for r in raw.responses]  # type: ignore[union-attr]
        assert response.header.revision >= puts[-1].header.revision


@pytest.mark.parametrize("delete", [Op.delete, lambda key: Op.delete(key, prefix=True)])
def test_leasing_txn_delete_by_the_owner(
    make: Leasing, etcd_client: Client, p: Callable[[str], bytes], delete: Callable[[bytes], Op]
) -> None:
    """Go's TestLeasingTxnOwnerDelete/DeleteRange: deleted keys read as gone from memory too."""
    kv = make()
    etcd_client.put(p("k"), "abc")
    kv.get(p("k"))
    kv.txn(success=[delete(p("k"))])
    assert kv.get(p("k")).kvs == []
    assert owned_by(kv, p("k"))
    assert etcd_client.get(p("k")).kvs == []


def compare_matrix(key: bytes, version: int, created: int, modified: int) -> list[Compare]:
    values = (b"", b"abb", b"abc", b"abd")
    compares: list[Compare] = []
    for operand, points in (
        (Compare.value(key), values),
        (Compare.version(key), (0, version, version + 1)),
        (Compare.create_revision(key), (0, created, created + 1)),
        (Compare.mod_revision(key), (0, modified - 1, modified)),
        (Compare.lease(key), (0, 1)),
    ):
        for point in points:
            compares += [operand == point, operand != point, operand < point, operand > point]
    return compares


def test_leasing_txn_compares_from_memory_match_the_server(
    make: Leasing, etcd_client: Client, p: Callable[[str], bytes]
) -> None:
    """Go's TestLeasingTxnOwnerIf, made differential over every target, operator and edge."""
    kv = make()
    put = etcd_client.put(p("k"), "abc")
    kv.get(p("k"))
    kv.get(p("missing"))
    for key in (p("k"), p("missing")):
        revision = put.header.revision
        for compare in compare_matrix(key, 1, revision, revision):
            hits = kv.stats.hits
            cached = kv.txn([compare], [Op.get(p("k"))], [])
            raw = etcd_client.txn([compare], [Op.get(p("k"))], [])
            assert kv.stats.hits == hits + 1, compare
            assert cached.succeeded is raw.succeeded, compare
            assert len(cached.responses) == len(raw.responses), compare


def test_leasing_compare_rules_match_the_server(
    etcd_client: Client, p: Callable[[str], bytes]
) -> None:
    """_evaluate re-implements etcd's compare rules: one matrix through both agrees."""
    etcd_client.put(p("k"), "abc")
    stored = etcd_client.get(p("k")).kvs[0]
    for key, state in ((p("k"), stored), (p("missing"), None)):
        for compare in compare_matrix(
            key, stored.version, stored.create_revision, stored.mod_revision
        ):
            assert etcd_client.txn([compare]).succeeded is evaluate_compare(compare, state), compare


def test_leasing_txn_by_a_non_owner_invalidates_every_owner(
    make: Leasing, etcd_client: Client, p: Callable[[str], bytes]
) -> None:
    """Go's TestLeasingTxnNonOwnerPut: nested puts revoke, and all land in one revision."""
    owner, writer = make(), make()
    etcd_client.put(p("k"), "abc")
    etcd_client.put(p("k2"), "123")
    owner.get(p("k"))
    owner.get(p("k2"))
    response = writer.txn(
        success=[
            Op.txn(success=[Op.put(p("k2"), "456")]),
            Op.put(p("k"), "def"),
            Op.put(p("k3"), "999"),
        ]
    )
    assert response.succeeded
    assert len(response.responses) == 3
    assert owner.get(p("k")).kvs[0].value == b"def"
    assert owner.get(p("k2")).kvs[0].value == b"456"
    written = etcd_client.get(p("k"), prefix=True).kvs
    assert {kv.mod_revision for kv in written} == {response.header.revision}
    assert len(written) == 3


def test_leasing_txn_then_or_else_on_keys_owned_by_two_clients(
    make: Leasing, etcd_client: Client, p: Callable[[str], bytes]
) -> None:
    """Go's TestLeasingTxnRandIfThenOrElse, with seeded randomness: puts land and are seen."""
    chooser = random.Random(8)
    one, two = make(), make()
    puts = [etcd_client.put(p(f"k-{index}"), str(index)) for index in range(8)]
    for index in range(8):
        (one if chooser.random() < 0.5 else two).get(p(f"k-{index}"))
    for use_then in (True, False):
        compares = [
            Compare.create_revision(p(f"k-{index}")) == puts[index].header.revision
            for index in chooser.sample(range(8), 3)
        ]
        if not use_then:
            compares.append(Compare.version(p("k-0")) == 0)
        ops: list[Op] = [
            Op.put(p(f"k-{index}"), f"a{use_then}")
            if chooser.random() < 0.5
            else Op.get(p(f"k-{index}"))
            for index in chooser.sample(range(8), 5)
        ]
        response = one.txn(compares, ops if use_then else [], [] if use_then else ops)
        assert response.succeeded is use_then
        for op in ops:
            if isinstance(op, GetOp):
                continue
            for reader in (etcd_client, one, two):
                assert reader.get(op.key).kvs[0].value == f"a{use_then}".encode()  # type: ignore[attr-defined]


@pytest.mark.parametrize("how", ["prefix", "from_key"])
def test_leasing_range_delete_invalidates_owned_keys_atomically(
    make: Leasing, etcd_client: Client, etcd_key_prefix: bytes, how: str
) -> None:
    """Go's TestLeasingOwnerDeletePrefix/From: one revision deletes all, memory agrees.

    Both clients live in a namespace, so that a from_key delete stays inside this test's keys
    (and the stack namespace under leasing is exercised on the way).
    """
    kv, other = make(within=etcd_key_prefix), make(within=etcd_key_prefix)
    for index in range(8):
        etcd_client.put(etcd_key_prefix + f"key/{index}".encode(), "123")
    kv.get("key/1")
    other.get("key/2")
    options: dict[str, Any] = {"prefix": True} if how == "prefix" else {"from_key": True}
    response = kv.delete("key/" if how == "prefix" else "kd", **options)
    assert response.deleted == 8
    for index in range(8):
        assert kv.get(f"key/{index}").kvs == []
        assert other.get(f"key/{index}").kvs == []
    assert other.stats.revocations == 1
    start = response.header.revision
    with etcd_client.watch(etcd_key_prefix, prefix=True, start_revision=start) as watch:
        events = watch.next(timeout=TIMEOUT).events
    at_once = [event for event in events if event.kv.mod_revision == start]
    assert len(at_once) == 8
    assert {event.type for event in at_once} == {EventType.DELETE}


def test_leasing_from_key_delete_revokes_the_owner(
    make: Leasing, etcd_client: Client, etcd_key_prefix: bytes
) -> None:
    """clientv3 revokes no owner on a from_key delete; we do, so the owner is never stale."""
    owner, deleter = make(within=etcd_key_prefix), make(within=etcd_key_prefix)
    etcd_client.put(etcd_key_prefix + b"kz", "v")
    owner.get("kz")
    deleter.delete("ka", from_key=True)
    assert owner.get("kz").kvs == []
    assert owner.stats.revocations == 1


def test_leasing_range_delete_leaves_owners_outside_the_range(
    make: Leasing, etcd_client: Client, p: Callable[[str], bytes], lease_prefix: bytes
) -> None:
    """Go's TestLeasingDeleteRangeBounds: owners of j and m keep them through a k* delete."""
    deleter, getter = make(), make()
    for name in ("j", "m"):
        etcd_client.put(p(name), "123")
        getter.get(p(name))
    deleter.delete(p("k"), prefix=True)
    assert len(leasing_keys(etcd_client, lease_prefix)) == 2
    assert owned_by(getter, p("j"))
    assert owned_by(getter, p("m"))


@pytest.mark.parametrize("as_txn", [False, True])
def test_leasing_range_delete_contending_with_an_owner_keeps_memory_true(
    make: Leasing, etcd_client: Client, p: Callable[[str], bytes], as_txn: bool
) -> None:
    """Go's TestLeasingDeleteRangeContend*: an owner writing through a range delete stays true."""
    deleter, putter = make(), make()
    for index in range(8):
        etcd_client.put(p(f"key/{index}"), "123")
        putter.get(p(f"key/{index}"))
    stop = threading.Event()
    failures: list[BaseException] = []

    def churn() -> None:
        for index in itertools.cycle(range(8)):
            if stop.is_set():
                return
            try:
                putter.put(p(f"key/{index}"), "123")
                putter.get(p(f"key/{index}"))
            except errors.EtcdError as err:
                failures.append(err)
                return

    worker = threading.Thread(target=churn)
    worker.start()
    try:
        delete = Op.delete(p("key/"), prefix=True)
        deleter.do(Op.txn(success=[delete]) if as_txn else delete)
    finally:
        stop.set()
        worker.join(TIMEOUT)
    assert failures == []
    for index in range(8):
        key = p(f"key/{index}")
        assert list(putter.get(key).kvs) == list(etcd_client.get(key).kvs)


def test_leasing_concurrent_put_get_delete_through_many_clients(
    make: Leasing, etcd_client: Client, p: Callable[[str], bytes]
) -> None:
    """Go's TestLeasingPutGetDeleteConcurrent: every client ends seeing the key deleted."""
    clients = [make() for _ in range(4)]
    failures: list[BaseException] = []

    def cycle() -> None:
        try:
            for kv in clients:
                kv.put(p("k"), "abc")
                kv.get(p("k"))
                kv.delete(p("k"))
        except errors.EtcdError as err:
            failures.append(err)

    threads = [threading.Thread(target=cycle) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT * 3)
    assert failures == []
    assert clients[0].get(p("k")).kvs == []
    assert etcd_client.get(p("k")).kvs == []


def test_leasing_txn_reads_of_owned_keys_are_atomic(
    make: Leasing, etcd_client: Client, p: Callable[[str], bytes]
) -> None:
    """Go's TestLeasingTxnAtomicCache: a txn of gets never sees half of another txn's puts."""
    kv = make()
    keys = [p(f"k-{index}") for index in range(8)]
    puts = [Op.put(key, key) for key in keys]
    gets = [Op.get(key) for key in keys]
    etcd_client.txn(success=puts)
    for key in keys:
        kv.get(key)
    done = threading.Event()
    torn: list[list[int]] = []

    def write() -> None:
        for _ in range(10):
            kv.txn(success=puts)

    def read() -> None:
        while not done.is_set():
            response = kv.txn(success=gets)
            revisions = [r.kvs[0].mod_revision for r in response.responses]  # type: ignore[union-attr]
            if len(set(revisions)) != 1:
                torn.append(revisions)

    writers = [threading.Thread(target=write) for _ in range(4)]
    readers = [threading.Thread(target=read) for _ in range(4)]
    for thread in (*writers, *readers):
        thread.start()
    for thread in writers:
        thread.join(TIMEOUT * 3)
    done.set()
    for thread in readers:
        thread.join(TIMEOUT)
    assert torn == []


def test_leasing_txn_with_a_range_compare_goes_to_the_server(
    make: Leasing, etcd_client: Client, p: Callable[[str], bytes]
) -> None:
    """Go's TestLeasingTxnRangeCmp: a prefix compare covers keys memory does not know."""
    kv = make()
    etcd_client.put(p("k"), "a")
    etcd_client.put(p("k2"), "a")
    etcd_client.put(p("k2"), "a")
    kv.get(p("k"))
    assert not kv.txn([Compare.version(p("k"), prefix=True) == 1]).succeeded


def test_leasing_do_answers_every_op_kind(
    make: Leasing, etcd_client: Client, p: Callable[[str], bytes]
) -> None:
    """Go's TestLeasingDo: each Op kind gets its response kind."""
    kv = make()
    assert isinstance(kv.do(Op.txn()), TxnResponse)
    assert isinstance(kv.do(Op.get(p("a"))), GetResponse)
    assert kv.do(Op.put(p("a/abc"), "v")).prev_kv is None
    assert kv.do(Op.delete(p("a"), prefix=True)).deleted == 1
    assert etcd_client.get(p("a"), prefix=True).kvs == []


def put_tree(prefix: bytes, counter: Iterator[int], depth: int, chooser: random.Random) -> Op:
    key = prefix + str(next(counter)).encode()
    if depth == 0:
        return Op.put(key, "leaf")
    then, otherwise = (
        put_tree(prefix, counter, depth - 1, chooser),
        put_tree(prefix, counter, depth - 1, chooser),
    )
    follow_then = chooser.random() < 0.5
    compare = (
        Compare.version(prefix + b"nokey") == 0
        if follow_then
        else Compare.version(prefix + b"nokey") > 0
    )
    return Op.txn([compare], [then, Op.put(key, "then")], [otherwise, Op.put(key, "else")])


def test_leasing_nested_txn_branches_update_memory(
    make: Leasing, etcd_client: Client, p: Callable[[str], bytes]
) -> None:
    """Go's TestLeasingTxnOwnerPutBranch: memory follows the branches the server took."""
    kv = make()
    counter = itertools.count()
    tree = put_tree(p("tree/"), counter, 3, random.Random(3))
    total = next(counter)
    keys = [p(f"tree/{index}") for index in range(total)]
    for key in keys:
        etcd_client.put(key, "a")
        kv.get(key)
    kv.do(tree)
    for key in keys:
        hits = kv.stats.hits
        assert list(kv.get(key).kvs) == list(etcd_client.get(key).kvs)
        assert kv.stats.hits == hits + 1


# --- bugs clientv3 has ------------------------------------------------------------------------


@pytest.mark.parametrize("with_owner", [False, True])
def test_leasing_non_owner_put_applies_once(
    make: Leasing, etcd_client: Client, p: Callable[[str], bytes], with_owner: bool
) -> None:
    """clientv3 applies a non-owner's put twice (version 2, wrong prev_kv); ours applies once."""
    owner, writer = make(), make()
    etcd_client.put(p("k"), "first")
    if with_owner:
        owner.get(p("k"))
    response = writer.put(p("k"), "second", prev_kv=True)
    assert response.prev_kv is not None
    assert (response.prev_kv.value, response.prev_kv.version) == (b"first", 1)
    stored = etcd_client.get(p("k")).kvs[0]
    assert (stored.value, stored.version, stored.mod_revision) == (
        b"second",
        2,
        response.header.revision,
    )


def test_leasing_non_owner_delete_applies_once(
    make: Leasing, etcd_client: Client, p: Callable[[str], bytes]
) -> None:
    """A non-owner's delete answers exactly what etcd would: one key, its previous pair."""
    owner, deleter = make(), make()
    etcd_client.put(p("k"), "v")
    owner.get(p("k"))
    response = deleter.delete(p("k"), prev_kv=True)
    assert response.deleted == 1
    assert [kv.value for kv in response.prev_kvs] == [b"v"]


def write_script(lease: int) -> list[tuple[str, dict[str, Any]]]:
    return [
        ("put", {"value": "a", "prev_kv": True}),
        ("put", {"value": "b", "prev_kv": True}),
        ("put", {"value": "", "ignore_value": True, "prev_kv": True}),
        ("put", {"value": "c", "ignore_lease": True, "prev_kv": True}),
        ("delete", {"prev_kv": True}),
        ("delete", {"prev_kv": True}),
        ("put", {"value": "d", "lease": lease, "prev_kv": True}),
        ("put", {"value": "e", "ignore_lease": True}),
        ("put", {"value": "f", "prev_kv": True}),
    ]


def test_leasing_owner_write_responses_match_raw_etcd_step_by_step(
    make: Leasing, etcd_client: Client, p: Callable[[str], bytes]
) -> None:
    """Each owner write returns what the same write returns on a twin key written raw."""
    kv = make()
    lease = etcd_client.grant(60).id
    try:
        for name, options in write_script(lease):
            kv.get(p("leased"))
            if name == "put":
                mine = kv.put(p("leased"), **options)
                theirs = etcd_client.put(p("raw"), **options)
                mine_prev, theirs_prev = mine.prev_kv, theirs.prev_kv
                assert (mine_prev is None) == (theirs_prev is None), options
                if mine_prev is not None and theirs_prev is not None:
                    assert (mine_prev.value, mine_prev.version, mine_prev.lease) == (
                        theirs_prev.value,
                        theirs_prev.version,
                        theirs_prev.lease,
                    ), options
            else:
                mine_delete = kv.delete(p("leased"), **options)
                theirs_delete = etcd_client.delete(p("raw"), **options)
                assert mine_delete.deleted == theirs_delete.deleted
                assert [(k.value, k.version) for k in mine_delete.prev_kvs] == [
                    (k.value, k.version) for k in theirs_delete.prev_kvs
                ]
            cached, truth = kv.get(p("leased")), etcd_client.get(p("leased"))
            assert list(cached.kvs) == list(truth.kvs), options
    finally:
        etcd_client.revoke(lease)


def test_leasing_put_of_unknown_key_through_ignore_value_fails_like_etcd(
    make: Leasing, p: Callable[[str], bytes]
) -> None:
    """etcd's own errors pass through unchanged (ignore_value on a missing key)."""
    kv = make()
    kv.get(p("missing"))
    with pytest.raises(errors.KeyNotFoundError):
        kv.put(p("missing"), "", ignore_value=True)
    assert kv.get(p("missing")).kvs == []


def test_leasing_answers_never_go_below_a_revision_it_returned(
    make: Leasing, etcd_client: Client, p: Callable[[str], bytes]
) -> None:
    """clientv3 can answer from memory with an older header than its own last write."""
    kv = make()
    etcd_client.put(p("k"), "v")
    kv.get(p("k"))
    written = kv.put(p("other"), "x")
    assert kv.get(p("k")).header.revision >= written.header.revision


def test_leasing_under_ordering_reports_no_false_violations(
    make: Leasing, etcd_client: Client, p: Callable[[str], bytes]
) -> None:
    """ordering.wrap(leasing.wrap(cli)) never sees a revision go back."""
    violations: list[int] = []

    def record(op: Op, response: Any, previous: int) -> None:
        violations.append(previous)
        raise errors.OrderViolationError("violation", response, previous)

    kv = make()
    checked: Any
    if isinstance(cast(object, kv), BlockingLayer):  # async leasing: async ordering over it
        facade = cast(BlockingLayer, kv)
        checked = BlockingLayer(ordering.wrap(facade.layer, on_violation=record), facade.run)
    else:
        checked = ordering.wrap(kv, on_violation=record)
    for index in range(5):
        etcd_client.put(p(f"k{index}"), "v")
        checked.get(p(f"k{index}"))
    for index in range(20):
        checked.put(p(f"w{index % 3}"), str(index))
        checked.get(p(f"k{index % 5}"))
        checked.txn([Compare.version(p(f"k{index % 5}")) > 0], [Op.get(p(f"k{index % 5}"))])
    assert violations == []


class HeldAnswers(wrapt.ObjectProxy):  # type: ignore[type-arg]  # wraps a Client
    """A client that, once told to, holds back the answers to writes the server applied."""

    def __init__(self, client: Client) -> None:
        super().__init__(client)
        self._self_holding = False
        self._self_released = threading.Event()

    def hold(self) -> None:
        self._self_holding = True

    def release_answers(self) -> None:
        self._self_holding = False
        self._self_released.set()

    def do(self, op: Op, *, timeout: float | None = None) -> object:
        response = self.__wrapped__.do(op, timeout=timeout)
        if self._self_holding and isinstance(op, TxnOp) and op.is_write:
            self._self_released.wait(TIMEOUT)
        return response


def test_leasing_owner_never_answers_from_memory_while_its_write_is_in_flight(
    backend: Backend, etcd_client: Client, p: Callable[[str], bytes], lease_prefix: bytes
) -> None:
    """etcd issue 20704: once others can see a write, the writer's memory cannot hide it.

    The owner's put is applied but its answer held back; a plain client reads the new value;
    a read through the owner that starts after that must not answer the old value.
    """
    below = HeldAnswers(backend.client(timeout=TIMEOUT))
    owner = leasing.wrap(below, lease_prefix, timeout=TIMEOUT)  # type: ignore[call-overload]  # proxied
    try:
        etcd_client.put(p("k"), "old")
        owner.get(p("k"))
        below.hold()
        writer = threading.Thread(target=lambda: owner.put(p("k"), "new"))
        writer.start()
        wait_until(lambda: etcd_client.get(p("k")).kvs[0].value == b"new", timeout=TIMEOUT)
        assert owner.get(p("k")).kvs[0].value == b"new"
        below.release_answers()
        writer.join(TIMEOUT)
        assert owner.get(p("k")).kvs[0].value == b"new"
    finally:
        below.release_answers()
        owner.close()


# --- memory, counters, lifecycle --------------------------------------------------------------


def test_leasing_max_keys_gives_back_the_least_recently_used_key(
    make: Leasing, etcd_client: Client, p: Callable[[str], bytes], lease_prefix: bytes
) -> None:
    """Beyond max_keys the oldest key is evicted and its leasing key deleted on the server."""
    kv = make(max_keys=2)
    for name in ("a", "b", "c"):
        kv.get(p(name))
    assert kv.stats.evictions == 1
    assert kv.stats.cached_keys == 2
    wait_until(lambda: len(leasing_keys(etcd_client, lease_prefix)) == 2, timeout=TIMEOUT)
    assert not owned_by(kv, p("a"))


def test_leasing_stats_count_hits_misses_acquisitions_and_revocations(
    make: Leasing, etcd_client: Client, p: Callable[[str], bytes]
) -> None:
    """The counters follow what happened."""
    owner, writer = make(), make()
    owner.get(p("k"))
    owner.get(p("k"))
    owner.get(p("k"), prefix=True)
    writer.put(p("k"), "v")
    stats = owner.stats
    assert (stats.hits, stats.misses, stats.acquisitions, stats.revocations) == (1, 2, 1, 1)
    assert stats.releases == 1
    assert stats.cached_keys == 0


def test_leasing_close_releases_every_leasing_key_and_the_session(
    backend: Backend, etcd_client: Client, p: Callable[[str], bytes], lease_prefix: bytes
) -> None:
    """close() deletes our leasing keys and revokes the session lease; the client stays open."""
    with backend.client() as client:
        kv = leasing.wrap(client, lease_prefix)
        for name in ("a", "b"):
            kv.get(p(name))
        assert len(leasing_keys(etcd_client, lease_prefix)) == 2
        session = kv.session_lease_id
        with kv:
            pass
        assert leasing_keys(etcd_client, lease_prefix) == []
        assert etcd_client.time_to_live(session).ttl == -1
        assert client.get(p("a")).kvs == []  # the client itself is still open


def test_leasing_after_close_writes_stay_coordinated(
    make: Leasing, etcd_client: Client, p: Callable[[str], bytes], lease_prefix: bytes
) -> None:
    """After close() nothing is cached, but writes still revoke other owners first."""
    owner, closed = make(), make()
    closed.get(p("mine"))
    closed.close()
    assert leasing_keys(etcd_client, lease_prefix) == []
    owner.get(p("k"))
    closed.put(p("k"), "v")
    assert owner.get(p("k")).kvs[0].value == b"v"
    assert not owned_by(closed, p("k"))


def test_leasing_writer_with_a_deadline_gives_up_on_an_owner_that_never_lets_go(
    make: Leasing, etcd_client: Client, p: Callable[[str], bytes], lease_prefix: bytes
) -> None:
    """A writer stuck behind an owner that never lets go fails at its deadline, writing nothing."""
    kv = make()
    stuck = etcd_client.grant(60).id
    try:
        etcd_client.put(
            lease_prefix + p("k"), "", lease=stuck
        )  # a foreign owner that never answers
        with pytest.raises(errors.DeadlineExceededError):
            kv.put(p("k"), "v", timeout=0.5)
        assert etcd_client.get(p("k")).kvs == []
        assert etcd_client.get(lease_prefix + p("k")).kvs[0].value == REVOKE
    finally:
        etcd_client.revoke(stuck)
    kv.put(p("k"), "v")
    assert etcd_client.get(p("k")).kvs[0].value == b"v"


def test_leasing_wrap_checks_arguments_before_any_io(etcd_client: Client) -> None:
    """Bad arguments fail before a session is made."""
    leases_before = len(etcd_client.leases().leases)
    with pytest.raises(ValueError, match="prefix"):
        leasing.wrap(etcd_client, "")
    with pytest.raises(TypeError):
        leasing.wrap(etcd_client, "p/", ttl="60")  # type: ignore[call-overload]  # refused on purpose
    assert len(etcd_client.leases().leases) == leases_before


def test_leasing_bad_get_arguments_leave_the_client_usable(
    make: Leasing, etcd_client: Client, p: Callable[[str], bytes]
) -> None:
    """A refused call changes nothing; the next one works."""
    kv = make()
    with pytest.raises(ValueError, match="prefix"):
        kv.get(p("k"), prefix=True, range_end=p("z"))
    with pytest.raises(errors.EmptyKeyError):
        kv.get("")
    with pytest.raises(errors.InvalidSortOptionError):
        kv.get(p("k"), sort_target=9)  # type: ignore[arg-type]  # refused on purpose
    etcd_client.put(p("k"), "v")
    assert kv.get(p("k")).kvs[0].value == b"v"


def test_leasing_get_answers_a_txn_response_type_for_a_read_only_txn_of_unowned_keys(
    make: Leasing, etcd_client: Client, p: Callable[[str], bytes]
) -> None:
    """A read-only txn of keys nobody owns is the server's, answered unchanged."""
    kv = make()
    etcd_client.put(p("k"), "v")
    op = Op.txn([Compare.value(p("k")) == b"v"], [Op.get(p("k"))])
    assert isinstance(op, TxnOp)
    cached, raw = kv.do(op), etcd_client.do(op)
    assert cached.succeeded is raw.succeeded is True
    assert list(cached.responses[0].kvs) == list(raw.responses[0].kvs)  # type: ignore[union-attr]


def test_leasing_failed_compare_and_set_of_an_owned_key_is_answered_from_memory(
    make: Leasing, etcd_client: Client, p: Callable[[str], bytes]
) -> None:
    """Go's TestLeasingTxnOwnerGet else-branch: a txn whose write branch does not run is a read."""
    kv = make()
    etcd_client.put(p("k"), "abc")
    kv.get(p("k"))
    txn = Op.txn([Compare.version(p("k")) == 9], [Op.put(p("k"), "new")], [Op.get(p("k"))])
    hits = kv.stats.hits
    cached, raw = kv.do(txn), etcd_client.do(txn)
    assert kv.stats.hits == hits + 1
    assert cached.succeeded is raw.succeeded is False
    assert list(cached.responses[0].kvs) == list(raw.responses[0].kvs)  # type: ignore[union-attr]
    assert etcd_client.get(p("k")).kvs[0].value == b"abc"


def test_leasing_stops_answering_when_the_client_underneath_is_closed(
    backend: Backend, etcd_client: Client, p: Callable[[str], bytes], lease_prefix: bytes
) -> None:
    """Closing the client first ends leasing too: memory forgets, and calls fail as closed."""
    client = backend.client()
    kv = leasing.wrap(client, lease_prefix)
    etcd_client.put(p("k"), "v")
    kv.get(p("k"))
    client.close()
    wait_until(lambda: kv.stats.cached_keys == 0, timeout=TIMEOUT)
    with pytest.raises(errors.CanceledError):
        kv.get(p("k"))
    kv.close()
