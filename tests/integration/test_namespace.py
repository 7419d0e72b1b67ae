"""The namespace layer against a real etcd: every operation, compared with the plain client."""

from __future__ import annotations

import doctest
import functools
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from layer_kinds import Backend, Store

from etcd_layers import (
    Client,
    Compare,
    EventType,
    Op,
    Permission,
    SortOrder,
    SortTarget,
    errors,
    namespace,
)
from etcd_layers.base import (
    DeleteResponse,
    GetResponse,
    PutResponse,
    TxnResponse,
    Watch,
    prefix_end,
)
from etcd_layers.namespace import KVWatcherLease
from etcd_layers.testing import EtcdServer, wait_until
from etcd_layers.testing.plugin import EtcdClusterFactory

TIMEOUT = 5.0


@pytest.fixture
def base(etcd_key_prefix: bytes) -> bytes:
    return etcd_key_prefix


@pytest.fixture
def prefix(base: bytes) -> bytes:
    return base + b"ns/"


@pytest.fixture
def etcd_client(backend: Backend) -> Client:
    """A plain client on the test's backend (etcd, or MemoryEtcd), to seed and inspect."""
    return backend.client(timeout=TIMEOUT)


@pytest.fixture
def ns(store: Store, prefix: bytes) -> Iterator[KVWatcherLease]:
    """The namespace over a client of each kind (an async layer behind a blocking facade)."""
    with store.layer(functools.partial(namespace.wrap, prefix=prefix), timeout=TIMEOUT) as layer:
        yield layer


def seed_siblings(cli: Client, prefix: bytes) -> dict[bytes, int]:
    """Put keys just outside `prefix` (either side of it); return their mod revisions."""
    siblings = [
        prefix[:-1],  # the prefix without its last byte sorts just before it
        prefix[:-1] + bytes([prefix[-1] - 1]) + b"\xff",
        prefix_end(prefix),  # the first key after the namespace
        prefix_end(prefix) + b"\x00",
        prefix_end(prefix) + b"\xff",
    ]
    return {key: cli.put(key, b"outside").header.revision for key in siblings}


def assert_siblings_untouched(cli: Client, siblings: dict[bytes, int]) -> None:
    """Every sibling still holds its seeded value at its seeded revision."""
    for key, revision in siblings.items():
        kvs = cli.get(key).kvs
        assert [(kv.value, kv.mod_revision) for kv in kvs] == [(b"outside", revision)], key


# --- the module's own example -------------------------------------------------------------


def test_namespace_module_docstring_example_runs(etcd_server: EtcdServer, base: bytes) -> None:
    """The usage walk-through in namespace/__init__.py runs as written on a real server."""
    source = namespace.__doc__ or ""
    source = source.replace('"127.0.0.1:2379"', repr(etcd_server.endpoints[0]))
    for tenant in ("/tenant-a/", "/tenant-b/"):  # keep the session's shared server tidy
        source = source.replace(tenant, base.decode() + tenant.strip("/") + "/")
    test = doctest.DocTestParser().get_doctest(source, {}, "namespace", None, 0)
    assert len(test.examples) > 10
    result = doctest.DocTestRunner().run(test)
    assert (result.failed, result.attempted) == (0, len(test.examples))


# --- KV -----------------------------------------------------------------------------------


def test_namespace_put_stores_under_the_prefix(
    etcd_client: Client, ns: KVWatcherLease, prefix: bytes
) -> None:
    """A put through the namespace lands at prefix + key, non-UTF-8 bytes included."""
    ns.put(b"k\xff\x00", b"v")
    ns.put("ключ", "значение")
    assert etcd_client.get(prefix + b"k\xff\x00").kvs[0].value == b"v"
    assert etcd_client.get(prefix + "ключ".encode()).kvs[0].value == "значение".encode()


def test_namespace_get_matches_the_plain_client_with_keys_cut(
    etcd_client: Client, ns: KVWatcherLease, prefix: bytes
) -> None:
    """A get returns what the plain client sees at prefix + key, with the prefix cut."""
    for key in (b"a", b"b", b"c"):
        etcd_client.put(prefix + key, key * 2)
    options: list[dict[str, Any]] = [
        {},
        {"limit": 2},
        {"sort_order": SortOrder.DESCEND, "sort_target": SortTarget.VALUE},
        {"keys_only": True},
        {"count_only": True},
        {"serializable": True},
    ]
    for option in options:  # bounded: six option sets
        raw = etcd_client.get(prefix, prefix=True, **option)
        got = ns.get("", prefix=True, revision=raw.header.revision, **option)
        assert [kv.key for kv in got.kvs] == [kv.key[len(prefix) :] for kv in raw.kvs], option
        assert [kv.value for kv in got.kvs] == [kv.value for kv in raw.kvs], option
        assert (got.count, got.more) == (raw.count, raw.more), option


def test_namespace_get_of_all_keys_sees_no_sibling(
    etcd_client: Client, ns: KVWatcherLease, prefix: bytes
) -> None:
    """ "All keys" and from_key stop at the namespace's end, missing every key just outside."""
    seed_siblings(etcd_client, prefix)
    ns.put("a", "1")
    ns.put(b"\xff", "2")
    assert [kv.key for kv in ns.get("", prefix=True).kvs] == [b"a", b"\xff"]
    assert [kv.key for kv in ns.get("", from_key=True).kvs] == [b"a", b"\xff"]
    assert [kv.key for kv in ns.get("b", from_key=True).kvs] == [b"\xff"]
    assert ns.get("", prefix=True, count_only=True).count == 2


def test_namespace_get_ranges_and_revisions(
    etcd_client: Client, ns: KVWatcherLease, prefix: bytes
) -> None:
    """range_end and revision are read inside the namespace."""
    first = ns.put("a", "1").header.revision
    ns.put("a", "2")
    ns.put("b", "3")
    ns.put("c", "4")
    assert [kv.key for kv in ns.get("a", range_end="c").kvs] == [b"a", b"b"]
    assert ns.get("a", revision=first).kvs[0].value == b"1"
    assert ns.get("a", min_mod_revision=first + 1).kvs[0].value == b"2"


def test_namespace_put_prev_kv_is_cut(ns: KVWatcherLease) -> None:
    """put(prev_kv=True) returns the previous pair under the user's key."""
    ns.put("k", "1")
    previous = ns.put("k", "2", prev_kv=True).prev_kv
    assert previous is not None
    assert (previous.key, previous.value) == (b"k", b"1")


def test_namespace_delete_prefix_returns_cut_prev_kvs_and_spares_siblings(
    etcd_client: Client, ns: KVWatcherLease, prefix: bytes
) -> None:
    """delete("", prefix=True, prev_kv=True) empties the namespace and nothing else."""
    siblings = seed_siblings(etcd_client, prefix)
    ns.put("a", "1")
    ns.put("b/c", "2")
    response = ns.delete("", prefix=True, prev_kv=True)
    assert response.deleted == 2
    assert sorted((kv.key, kv.value) for kv in response.prev_kvs) == [(b"a", b"1"), (b"b/c", b"2")]
    assert etcd_client.get(prefix, prefix=True).count == 0
    assert_siblings_untouched(etcd_client, siblings)


def test_namespace_delete_from_key_spares_siblings(
    etcd_client: Client, ns: KVWatcherLease, prefix: bytes
) -> None:
    """delete(k, from_key=True) deletes up to the namespace's end, not beyond it."""
    siblings = seed_siblings(etcd_client, prefix)
    ns.put("a", "1")
    ns.put("b", "2")
    assert ns.delete("b", from_key=True).deleted == 1
    assert [kv.key for kv in ns.get("", prefix=True).kvs] == [b"a"]
    assert_siblings_untouched(etcd_client, siblings)


def test_namespace_txn_compares_over_the_namespace_range_only(
    etcd_client: Client, ns: KVWatcherLease, prefix: bytes
) -> None:
    """A range comparison over "all keys" ignores newer keys outside the namespace."""
    revision = ns.put("a", "1").header.revision
    seed_siblings(etcd_client, prefix)  # newer than everything in the namespace
    response = ns.txn(
        [Compare.mod_revision("", prefix=True) < revision + 1],
        [Op.put("b", "2", prev_kv=True), Op.get("", prefix=True)],
        [Op.get("never")],
    )
    assert response.succeeded
    put, get = response.responses
    assert isinstance(put, PutResponse)
    assert put.prev_kv is None
    assert isinstance(get, GetResponse)
    assert [kv.key for kv in get.kvs] == [b"a", b"b"]


def test_namespace_txn_compares_single_keys_and_explicit_ranges(ns: KVWatcherLease) -> None:
    """Value, version and range comparisons name the namespace's keys."""
    ns.put("a", "1")
    ns.put("b", "2")
    response = ns.txn(
        [
            Compare.value("a") == b"1",
            Compare.version("a", range_end="c") == 1,
            Compare.create_revision("missing") == 0,
        ],
        [Op.delete("a", prev_kv=True)],
        [],
    )
    assert response.succeeded
    deleted = response.responses[0]
    assert isinstance(deleted, DeleteResponse)
    assert [kv.key for kv in deleted.prev_kvs] == [b"a"]


def test_namespace_nested_txn_is_translated(
    etcd_client: Client, ns: KVWatcherLease, prefix: bytes
) -> None:
    """Ops and comparisons of a txn inside a txn work on the namespace's keys."""
    ns.put("x", "1")
    inner = Op.txn([Compare.value("x") == b"1"], [Op.put("y", "2"), Op.get("x")], [])
    response = ns.txn([], [inner], [])
    nested = response.responses[0]
    assert isinstance(nested, TxnResponse)
    assert nested.succeeded
    got = nested.responses[1]
    assert isinstance(got, GetResponse)
    assert [kv.key for kv in got.kvs] == [b"x"]
    assert etcd_client.get(prefix + b"y").kvs[0].value == b"2"


def test_namespace_do_runs_every_op_kind(ns: KVWatcherLease) -> None:
    """do() translates get, put, delete and txn Ops alike."""
    assert ns.do(Op.put("k", "v")).prev_kv is None
    assert [kv.key for kv in ns.do(Op.get("k")).kvs] == [b"k"]
    assert ns.do(Op.txn([Compare.value("k") == b"v"], [], [])).succeeded
    assert [kv.key for kv in ns.do(Op.delete("k", prev_kv=True)).prev_kvs] == [b"k"]


def test_namespace_prefix_ending_in_ff_does_not_carry(etcd_client: Client, base: bytes) -> None:
    """Under prefix b"a\\xff" the namespace ends at b"b": key b"b" is outside, never touched."""
    prefix = base + b"a\xff"
    ns = namespace.wrap(etcd_client, prefix)
    siblings = seed_siblings(etcd_client, prefix)
    assert base + b"b" in siblings
    ns.put("k", "v")
    assert [kv.key for kv in ns.get("", prefix=True).kvs] == [b"k"]
    assert ns.delete("", from_key=True).deleted == 1
    assert_siblings_untouched(etcd_client, siblings)


def test_namespace_all_ff_prefix_runs_to_the_end_of_the_keyspace(etcd_client: Client) -> None:
    """An all-0xff prefix has no end: its namespace is every key from the prefix on."""
    outside = b"\xff\xfe\xff"  # just below the prefix; nothing else in the suite sorts so high
    ns = namespace.wrap(etcd_client, b"\xff\xff")
    try:
        etcd_client.put(outside, b"outside")
        ns.put("\x00", "inside")
        ns.put(b"\xff\xff", "inside")
        assert [kv.key for kv in ns.get("", prefix=True).kvs] == [b"\x00", b"\xff\xff"]
        assert etcd_client.get(b"\xff\xff\xff\xff").kvs[0].value == b"inside"
        assert ns.delete("", from_key=True).deleted == 2
        assert etcd_client.get(outside).kvs[0].value == b"outside"
    finally:
        etcd_client.delete(outside, from_key=True)


def test_namespace_wrapping_twice_is_the_joined_prefix(etcd_client: Client, base: bytes) -> None:
    """wrap(wrap(cli, a), b) reads and writes exactly what wrap(cli, a + b) does."""
    stacked = namespace.wrap(namespace.wrap(etcd_client, base + b"a/"), "b/")
    joined = namespace.wrap(etcd_client, base + b"a/b/")
    stacked.put("k", "1")
    etcd_client.put(base + b"a/b0", "outside")
    assert joined.get("k").kvs[0].value == b"1"
    assert stacked.get("", prefix=True).kvs == joined.get("", prefix=True).kvs
    assert [kv.key for kv in stacked.get("", from_key=True).kvs] == [b"k"]


def test_namespace_errors_pass_through_unchanged(ns: KVWatcherLease) -> None:
    """A server error keeps its class through the namespace."""
    latest = ns.put("k", "1").header.revision
    with pytest.raises(errors.FutureRevisionError):
        ns.get("k", revision=latest + 1000)
    with pytest.raises(errors.KeyNotFoundError):
        ns.put("missing", "", ignore_value=True)


def test_namespace_with_closes_the_client(etcd_server: EtcdServer, prefix: bytes) -> None:
    """`with namespace.wrap(...)` yields the namespaced client and closes the client after."""
    cli = Client(endpoints=etcd_server.endpoints)
    with namespace.wrap(cli, prefix) as ns:
        assert ns.put("k", "v").header.revision > 0
        assert ns is not cli
    with pytest.raises(errors.CanceledError):
        cli.get("k")


# --- leases -------------------------------------------------------------------------------


def test_namespace_time_to_live_lists_only_namespace_keys(
    etcd_client: Client, ns: KVWatcherLease, prefix: bytes
) -> None:
    """A lease shared with other keys lists only the namespace's, with the prefix cut."""
    lease = ns.grant(30).id
    try:
        ns.put("a", "1", lease=lease)
        ns.put("b", "2", lease=lease)
        etcd_client.put(prefix_end(prefix), "outside", lease=lease)
        etcd_client.put(prefix[:-1], "outside", lease=lease)
        response = ns.time_to_live(lease, keys=True)
        assert sorted(response.keys) == [b"a", b"b"]
        assert response.granted_ttl == 30
        assert ns.time_to_live(lease).keys == []
    finally:
        ns.revoke(lease)


def test_namespace_lease_calls_pass_through(ns: KVWatcherLease) -> None:
    """grant, keep_alive_once, leases and revoke reach the server through the namespace."""
    lease = ns.grant(30).id
    assert ns.keep_alive_once(lease).ttl > 0
    assert lease in [status.id for status in ns.leases().leases]
    ns.revoke(lease)
    assert ns.time_to_live(lease).ttl == -1


def test_namespace_lease_wrapper_alone_lists_namespace_keys(
    etcd_client: Client, prefix: bytes
) -> None:
    """wrap_lease() translates time_to_live and refuses KV calls."""
    leases = namespace.wrap_lease(etcd_client, prefix)
    lease = leases.grant(30).id
    try:
        etcd_client.put(prefix + b"k", "v", lease=lease)
        assert leases.time_to_live(lease, keys=True).keys == [b"k"]
        assert not hasattr(leases, "put")
    finally:
        leases.revoke(lease)


# --- watches ------------------------------------------------------------------------------


def test_namespace_watch_with_prev_kv_cuts_both_keys(ns: KVWatcherLease) -> None:
    """Watch events carry kv and prev_kv under the user's keys."""
    ns.put("k", "1")
    with ns.watch("k", prev_kv=True) as watch:
        ns.put("k", "2")
        ns.delete("k")
        events = []
        for _ in range(4):  # bounded: the two events may come in one or two responses
            events += watch.next(timeout=TIMEOUT).events
            if len(events) >= 2:
                break
    put, delete = events
    assert (put.type, put.kv.key, put.kv.value) == (EventType.PUT, b"k", b"2")
    assert put.prev_kv is not None
    assert (put.prev_kv.key, put.prev_kv.value) == (b"k", b"1")
    assert (delete.type, delete.kv.key) == (EventType.DELETE, b"k")
    assert delete.prev_kv is not None
    assert delete.prev_kv.value == b"2"


def test_namespace_watch_of_all_keys_sees_no_sibling(
    etcd_client: Client, ns: KVWatcherLease, prefix: bytes
) -> None:
    """A watch of the whole namespace is not told about writes just outside it."""
    with ns.watch("", prefix=True) as watch:
        seed_siblings(etcd_client, prefix)
        ns.put("inside", "1")
        seen = []
        for _ in range(10):  # bounded: stop at the inside write, which comes after the siblings
            response = watch.next(timeout=TIMEOUT)
            seen += [event.kv.key for event in response.events]
            if b"inside" in seen:
                break
    assert seen == [b"inside"]


def test_namespace_watch_from_revision_replays_namespace_history(
    etcd_client: Client, ns: KVWatcherLease, prefix: bytes
) -> None:
    """start_revision replays the namespace's history only, from_key up to its end."""
    start = ns.put("a", "1").header.revision
    etcd_client.put(prefix_end(prefix), "outside")
    ns.put("b", "2")
    with ns.watch("", from_key=True, start_revision=start) as watch:
        keys: list[bytes] = []
        for _ in range(4):
            keys += [event.kv.key for event in watch.next(timeout=TIMEOUT).events]
            if len(keys) >= 2:
                break
    assert keys == [b"a", b"b"]


def test_namespace_watch_iteration_yields_cut_responses(ns: KVWatcherLease) -> None:
    """Iterating a namespaced watch yields translated responses until it is canceled."""
    watch = ns.watch("k")
    assert isinstance(watch, Watch)
    ns.put("k", "v")
    for response in watch:
        assert [event.kv.key for event in response.events] == [b"k"]
        watch.cancel()
    with pytest.raises(errors.CanceledError):
        watch.next(timeout=TIMEOUT)


# --- RBAC: a user confined to the prefix can do everything through the namespace ----------


@pytest.fixture
def confined(etcd_cluster_factory: EtcdClusterFactory) -> Iterator[tuple[Client, bytes]]:
    """A client of a user whose only permission is read-write on b"/tenant/" (own server)."""
    cluster = etcd_cluster_factory(1)
    prefix = b"/tenant/"
    with Client(endpoints=cluster.endpoints, **cluster.client_options()) as admin:
        admin.user_add("root", "root-password")
        admin.user_grant_role("root", "root")
        admin.role_add("tenant")
        admin.role_grant_permission("tenant", prefix, prefix=True, perm=Permission.READWRITE)
        admin.user_add("alice", "alice-password")
        admin.user_grant_role("alice", "tenant")
        admin.put(prefix_end(prefix), "outside")
        admin.auth_enable()
    with Client(
        endpoints=cluster.endpoints,
        username="alice",
        password="alice-password",
        **cluster.client_options(),
    ) as alice:
        yield alice, prefix


def test_namespace_confined_user_can_use_every_operation(confined: tuple[Client, bytes]) -> None:
    """Every namespaced call stays inside the one range the user may touch."""
    alice, prefix = confined
    with pytest.raises(errors.PermissionDeniedError):
        alice.get("", prefix=True)  # the raw client asks for everything, and is refused
    ns = namespace.wrap(alice, prefix)
    with ns.watch("", prefix=True, prev_kv=True) as watch:
        ns.put("a", "1")
        assert ns.put("a", "2", prev_kv=True).prev_kv is not None
        assert ns.get("a").kvs[0].value == b"2"
        assert [kv.key for kv in ns.get("", prefix=True).kvs] == [b"a"]
        assert ns.get("", from_key=True).count == 1
        assert ns.get("a", range_end="z", count_only=True).count == 1
        response = ns.txn(
            [Compare.version("", prefix=True) > 0, Compare.value("a") == b"2"],
            [Op.put("b", "3"), Op.get("", from_key=True), Op.txn([], [Op.get("b")], [])],
            [],
        )
        assert response.succeeded
        assert ns.do(Op.get("b")).kvs[0].value == b"3"
        lease = ns.grant(30).id
        ns.put("leased", "4", lease=lease)
        assert ns.time_to_live(lease, keys=True).keys == [b"leased"]
        assert ns.keep_alive_once(lease).ttl > 0
        ns.revoke(lease)
        deleted = ns.delete("", prefix=True, prev_kv=True)
        assert sorted(kv.key for kv in deleted.prev_kvs) == [b"a", b"b"]
        events = []
        for _ in range(20):  # bounded: put a, put a, put b, put leased, delete leased, 2 deletes
            events += watch.next(timeout=TIMEOUT).events
            if len(events) >= 7:
                break
    assert [event.kv.key for event in events] == [
        b"a",
        b"a",
        b"b",
        b"leased",
        b"leased",
        b"a",
        b"b",
    ]


# --- threads and faults -------------------------------------------------------------------


def test_namespace_is_safe_to_share_between_threads(
    etcd_client: Client, ns: KVWatcherLease, prefix: bytes
) -> None:
    """Threads sharing one namespaced client write, read and watch only the namespace."""
    threads_count, writes = 4, 10
    errors_seen: list[Exception] = []
    with ns.watch("", prefix=True) as watch:

        def work(index: int) -> None:
            try:
                for n in range(writes):
                    key = f"t{index}/{n}"
                    ns.put(key, str(n))
                    assert ns.get(key).kvs[0].key == key.encode()
                    ns.txn([Compare.version(key) == 1], [Op.put(key, "again")], [])
            except (AssertionError, errors.EtcdError) as err:  # handed to the test thread
                errors_seen.append(err)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(threads_count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not any(thread.is_alive() for thread in threads)
        assert errors_seen == []
        keys: list[bytes] = []
        for _ in range(200):  # bounded: 80 events in at most 80 responses
            keys += [event.kv.key for event in watch.next(timeout=TIMEOUT).events]
            if len(keys) >= 2 * threads_count * writes:
                break
    assert len(keys) == 2 * threads_count * writes
    assert all(key.startswith(b"t") for key in keys)
    stored = etcd_client.get(prefix, prefix=True)
    assert stored.count == threads_count * writes
    assert {kv.value for kv in stored.kvs} == {b"again"}


@pytest.mark.real_only  # drops connections
def test_namespace_watch_resumes_translated_after_dropped_connections(
    etcd_server: EtcdServer, etcd_client: Client, ns: KVWatcherLease
) -> None:
    """A namespaced watch keeps delivering cut keys, none lost or repeated, across a drop."""
    with ns.watch("", prefix=True) as watch:
        ns.put("before", "1")
        assert [event.kv.key for event in watch.next(timeout=TIMEOUT).events] == [b"before"]
        etcd_server.members[0].client_proxy.drop_connections()
        # A read is re-sent after a transport failure; a put is not, so reconnect first.
        wait_until(lambda: ns.get("before").count == 1, ignore=(errors.UnavailableError,))
        ns.put("after", "2")
        ns.put("later", "3")
        keys: list[bytes] = []
        for _ in range(10):  # bounded
            keys += [event.kv.key for event in watch.next(timeout=TIMEOUT).events]
            if len(keys) >= 2:
                break
    assert keys == [b"after", b"later"]
