"""Go clientv3's KV and txn integration tests (kv_test.go, txn_test.go), ported to our API.

Section headers name the Go tests ported; the facts (errors, revisions, sort and range rules)
carry over, the code is ours. Most tests run on a one-member server of this module's own, so
that compaction, `from_key` deletes and stopping the member touch no other module's data.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest
from conftest import BACKENDS, memory_backend, skip_real_only

from etcd_layers import Client, Compare, Op, SortOrder, SortTarget, errors
from etcd_layers.base import DeleteResponse, GetResponse, PutResponse, TxnResponse
from etcd_layers.testing import EtcdCluster, EtcdServer, wait_until
from etcd_layers.testing.plugin import EtcdClusterFactory, require_etcd

TIMEOUT = 10.0  # every call has a deadline, so a fault fails a test instead of hanging it
MAX_REQUEST_BYTES = 1536 * 1024  # etcd's default --max-request-bytes (1.5 MiB)
MAX_TXN_OPS = 128  # etcd's default --max-txn-ops


@pytest.fixture(scope="module")
def server() -> Iterator[EtcdServer]:
    """A one-member server of this module's own."""
    require_etcd()
    with EtcdServer() as etcd:
        yield etcd


@pytest.fixture(scope="module", params=BACKENDS)
def shared(request: pytest.FixtureRequest) -> Iterator[Client]:
    """A client with a deadline on every call, shared by the module's tests: on the module's
    server, then on a MemoryEtcd."""
    if request.param == "memory":
        with memory_backend() as backend:
            yield backend.client(timeout=TIMEOUT)
        return
    server: EtcdServer = request.getfixturevalue("server")
    with Client(server.endpoints, timeout=TIMEOUT, **server.client_options()) as client:
        yield client


@pytest.fixture
def cli(request: pytest.FixtureRequest, shared: Client) -> Client:
    """The shared client (a test marked real_only is skipped on MemoryEtcd)."""
    skip_real_only(request, request.node.callspec.params["shared"])
    return shared


@pytest.fixture(scope="module")
def closed(server: EtcdServer) -> Client:
    """A client that has been closed: any call that reached for the network would fail."""
    client = Client(server.endpoints, timeout=TIMEOUT)
    client.close()
    return client


@pytest.fixture
def prefix(etcd_key_prefix: bytes) -> bytes:
    """The test's own key prefix."""
    return etcd_key_prefix


def keys_of(response: GetResponse) -> list[bytes]:
    """The keys of a get, in the order returned."""
    return [kv.key for kv in response.kvs]


def restart_after(server: EtcdServer, action: Callable[[], None]) -> None:
    """Kill the member, run `action` while it is down, and start it again in any case."""
    server.member.kill()
    try:
        action()
    finally:
        server.member.start()


# --- put (TestKVPutError, TestKVPutWithLease, TestKVPutWithIgnore*) -------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.put("", "bar"),
        lambda c: c.get(""),
        lambda c: c.delete(""),
        lambda c: c.do(Op.put(b"", b"bar")),
        lambda c: c.get("", range_end="z"),
        lambda c: c.delete("", range_end="z"),
        lambda c: c.watch("", range_end="z"),
        lambda c: c.txn([Compare.version("", range_end="z") > 0]),
    ],
    ids=["put", "get", "delete", "do-put", "get-range", "delete-range", "watch-range", "compare"],
)
def test_kv_empty_key_raises_empty_key_error_before_any_io(
    closed: Client, call: Callable[[Client], object]
) -> None:
    """An empty key, even with a range_end, is refused with EmptyKeyError before any I/O."""
    # Only prefix or from_key make an empty key mean "all keys"; etcd and clientv3 refuse it
    # in every other case. A closed client would raise CanceledError had it tried any I/O.
    with pytest.raises(errors.EmptyKeyError):
        call(closed)


def test_kv_put_above_server_request_limit_raises_request_too_large(
    server: EtcdServer, prefix: bytes
) -> None:
    """A put larger than --max-request-bytes is refused by etcd with RequestTooLargeError."""
    with Client(server.endpoints, timeout=TIMEOUT, max_call_send_msg_size=100 * 2**20) as client:
        with pytest.raises(errors.RequestTooLargeError):
            client.put(prefix + b"key", b"a" * (MAX_REQUEST_BYTES + 100))
        assert client.put(prefix + b"key", b"small").header.revision > 0  # still usable
        assert client.get(prefix + b"key").kvs[0].value == b"small"


def test_kv_put_above_client_send_limit_is_refused_before_reaching_etcd(
    server: EtcdServer, prefix: bytes
) -> None:
    """A put larger than max_call_send_msg_size raises RequestTooLargeError and writes nothing."""
    with Client(server.endpoints, timeout=TIMEOUT, max_call_send_msg_size=1024) as client:
        before = client.get(prefix + b"key").header.revision
        with pytest.raises(errors.RequestTooLargeError):
            client.put(prefix + b"key", b"a" * 2048)
        after = client.get(prefix + b"key")
        assert (after.count, after.header.revision) == (0, before)


@pytest.fixture(scope="module")
def roomy_server() -> Iterator[EtcdServer]:
    """A server that takes requests of up to 10 MiB (TestKVLargeRequests' --max-request-bytes)."""
    require_etcd()
    with EtcdServer(extra_args=[f"--max-request-bytes={10 * 2**20}"]) as etcd:
        yield etcd


def test_kv_large_put_and_get_within_raised_limits(roomy_server: EtcdServer) -> None:
    """A 5 MiB value goes through a raised send limit and comes back whole."""
    value = b"a" * (5 * 2**20)
    with Client(roomy_server.endpoints, timeout=TIMEOUT, max_call_send_msg_size=7 * 2**20) as cli:
        cli.put("foo", value)
        assert cli.get("foo").kvs[0].value == value


def test_kv_put_above_a_raised_server_limit_raises_request_too_large(
    roomy_server: EtcdServer,
) -> None:
    """A put just above the server's raised limit is refused by etcd (RequestTooLargeError)."""
    cli = Client(roomy_server.endpoints, timeout=TIMEOUT, max_call_send_msg_size=100 * 2**20)
    with cli, pytest.raises(errors.RequestTooLargeError):
        cli.put("foo", b"a" * (10 * 2**20 + 5))


def test_kv_put_above_the_client_send_limit_raises_request_too_large(
    roomy_server: EtcdServer,
) -> None:
    """A put whose message exceeds max_call_send_msg_size is refused by the client itself."""
    cli = Client(roomy_server.endpoints, timeout=TIMEOUT, max_call_send_msg_size=10 * 2**20)
    with cli, pytest.raises(errors.RequestTooLargeError, match="max_call_send_msg_size"):
        cli.put("foo", b"a" * (10 * 2**20))


def test_kv_put_over_backend_quota_raises_no_space(
    etcd_cluster_factory: EtcdClusterFactory,
) -> None:
    """Once the backend outgrows --quota-backend-bytes, a put raises NoSpaceError."""
    value_size = MAX_REQUEST_BYTES - 50
    quota = int(MAX_REQUEST_BYTES * 1.2) + 8 * 4096  # Go's: room for one such value, not two
    cluster = etcd_cluster_factory(1, extra_args=[f"--quota-backend-bytes={quota}"])
    endpoint = cluster.endpoints[0]
    with Client(cluster.endpoints, timeout=TIMEOUT, max_call_send_msg_size=4 * 2**20) as client:
        client.put("foo1", b"a" * value_size)  # below the quota
        # The backend grows once the write is committed to disk (every 100 ms).
        wait_until(lambda: client.status(endpoint).db_size > value_size, timeout=5)
        with pytest.raises(errors.NoSpaceError):
            client.put("foo2", b"a" * value_size)


def test_kv_put_with_lease_attaches_the_lease(cli: Client, prefix: bytes) -> None:
    """A key put with a lease reports that lease id."""
    lease = cli.grant(10).id
    cli.put(prefix + b"hello", b"world", lease=lease)
    kv = cli.get(prefix + b"hello").kvs[0]
    assert (kv.value, kv.lease) == (b"world", lease)
    cli.revoke(lease)


def test_kv_put_ignore_value_of_missing_key_raises_key_not_found(
    cli: Client, prefix: bytes
) -> None:
    """ignore_value on a key that does not exist raises KeyNotFoundError."""
    with pytest.raises(errors.KeyNotFoundError):
        cli.put(prefix + b"foo", b"", ignore_value=True)
    assert cli.get(prefix + b"foo").count == 0


def test_kv_put_ignore_value_keeps_the_value(cli: Client, prefix: bytes) -> None:
    """ignore_value updates the key without clobbering its value."""
    cli.put(prefix + b"foo", b"bar")
    cli.put(prefix + b"foo", b"", ignore_value=True)
    kv = cli.get(prefix + b"foo").kvs[0]
    assert (kv.value, kv.version) == (b"bar", 2)


def test_kv_put_ignore_value_with_a_value_is_refused_before_any_io(closed: Client) -> None:
    """ignore_value together with a value is a bad argument (etcd's 'value is provided')."""
    with pytest.raises(ValueError, match="ignore_value"):
        closed.put("foo", b"bar", ignore_value=True)


def test_kv_put_ignore_lease_of_missing_key_raises_key_not_found(
    cli: Client, prefix: bytes
) -> None:
    """ignore_lease on a key that does not exist raises KeyNotFoundError."""
    with pytest.raises(errors.KeyNotFoundError):
        cli.put(prefix + b"zoo", b"bar", ignore_lease=True)


def test_kv_put_ignore_lease_keeps_the_lease(cli: Client, prefix: bytes) -> None:
    """ignore_lease changes the value and keeps the key's lease."""
    lease = cli.grant(10).id
    cli.put(prefix + b"zoo", b"bar", lease=lease)
    cli.put(prefix + b"zoo", b"bar1", ignore_lease=True)
    kv = cli.get(prefix + b"zoo").kvs[0]
    assert (kv.value, kv.lease) == (b"bar1", lease)
    cli.revoke(lease)


def test_kv_put_without_lease_detaches_the_key(cli: Client, prefix: bytes) -> None:
    """A plain put replaces the key's lease with none, so revoking it leaves the key alone."""
    lease = cli.grant(10).id
    cli.put(prefix + b"k", b"1", lease=lease)
    cli.put(prefix + b"k", b"2")
    cli.revoke(lease)
    kv = cli.get(prefix + b"k").kvs[0]
    assert (kv.value, kv.lease) == (b"2", 0)


def test_kv_put_returns_the_revision_it_created(cli: Client, prefix: bytes) -> None:
    """A put's header revision is the key's mod revision and one above the previous revision."""
    before = cli.get(prefix + b"k").header.revision
    response = cli.put(prefix + b"k", b"v")
    kv = cli.get(prefix + b"k").kvs[0]
    assert response.header.revision == before + 1 == kv.mod_revision == kv.create_revision


def test_kv_put_with_require_leader_raises_no_leader(
    etcd_cluster: EtcdCluster, etcd_key_prefix: bytes
) -> None:
    """With require_leader, a put on a member that lost its leader raises NoLeaderError."""
    leader = wait_until(etcd_cluster.leader, timeout=TIMEOUT, message="a leader")
    member = next(m for m in etcd_cluster.members if m is not leader)
    with Client([member.endpoint], require_leader=True, timeout=TIMEOUT) as client:
        client.put(etcd_key_prefix + b"foo", b"before")
        etcd_cluster.isolate(member)
        try:

            def refused() -> bool:
                try:
                    client.put(etcd_key_prefix + b"foo", b"bar", timeout=2.0)
                except errors.NoLeaderError:
                    return True
                except (errors.DeadlineExceededError, errors.RequestTimeoutError):
                    return False  # the member has not noticed yet that its leader is gone
                raise AssertionError("a put succeeded on a member cut off from its peers")

            wait_until(refused, timeout=TIMEOUT, message="NoLeaderError")
        finally:
            etcd_cluster.heal()
        etcd_cluster.wait_healthy()


# --- get (TestKVRange, TestKVGetKeysOnlyWithCountOnly) ---------------------------------------


class KeySet:
    """Go's TestKVRange keys under a prefix, with each key's create/mod revision and version.

    Puts, in order: b, a, c, c, c, fop, foo/abc, foo, b again. So key order, create order,
    mod order and version order all differ.
    """

    def __init__(self, cli: Client, prefix: bytes) -> None:
        self.prefix = prefix
        self.revisions: list[int] = []
        for key, value in [
            (b"b", b"5"),
            (b"a", b"4"),
            (b"c", b"1"),
            (b"c", b"2"),
            (b"c", b"3"),
            (b"fop", b"0"),
            (b"foo/abc", b"6"),
            (b"foo", b"7"),
            (b"b", b"8"),
        ]:
            self.revisions.append(cli.put(prefix + key, value).header.revision)
        self.first = self.revisions[0]

    def short(self, response: GetResponse) -> list[bytes]:
        """The keys of a get with the prefix cut."""
        return [key[len(self.prefix) :] for key in keys_of(response)]


@pytest.fixture
def keyset(cli: Client, prefix: bytes) -> KeySet:
    """The TestKVRange keys under the test's prefix."""
    return KeySet(cli, prefix)


def test_kv_range_end_is_exclusive(cli: Client, keyset: KeySet) -> None:
    """[a, c) holds a and b, not c."""
    response = cli.get(keyset.prefix + b"a", range_end=keyset.prefix + b"c")
    assert keyset.short(response) == [b"a", b"b"]
    assert response.count == 2


def test_kv_range_prefix_takes_keys_starting_with_it(cli: Client, keyset: KeySet) -> None:
    """prefix=True on foo holds foo and foo/abc but not fop."""
    response = cli.get(keyset.prefix + b"foo", prefix=True)
    assert keyset.short(response) == [b"foo", b"foo/abc"]


def test_kv_range_from_key_takes_every_later_key(cli: Client, keyset: KeySet) -> None:
    """from_key on c holds c and every key after it."""
    response = cli.get(keyset.prefix + b"c", from_key=True)
    assert keyset.short(response)[:4] == [b"c", b"foo", b"foo/abc", b"fop"]


def test_kv_range_of_all_keys_with_the_nul_key(cli: Client, keyset: KeySet) -> None:
    """Key b"\\x00" with from_key is the whole keyspace, as clientv3's "\\x00" + WithFromKey."""
    everything = cli.get(b"\x00", from_key=True)
    assert set(keys_of(cli.get(keyset.prefix, prefix=True))) <= set(keys_of(everything))
    assert everything.count == cli.get(b"", from_key=True).count


def test_kv_range_at_a_revision_sees_that_revision(cli: Client, keyset: KeySet) -> None:
    """revision= reads the store as it was: c at its second put has version 2."""
    second_c = keyset.revisions[3]
    kv = cli.get(keyset.prefix + b"c", revision=second_c).kvs[0]
    assert (kv.value, kv.version, kv.mod_revision) == (b"2", 2, second_c)
    response = cli.get(keyset.prefix, prefix=True, revision=keyset.revisions[1])
    assert keyset.short(response) == [b"a", b"b"]


def test_kv_range_header_is_the_current_revision_whatever_revision_is_read(
    cli: Client, keyset: KeySet
) -> None:
    """A read at an old revision still answers with the store's current revision."""
    current = cli.get(keyset.prefix + b"a").header.revision
    old = cli.get(keyset.prefix + b"a", revision=keyset.first)
    assert old.header.revision == current
    assert old.count == 0  # a did not exist yet at the first put


@pytest.mark.parametrize(
    ("target", "order", "expected"),
    [
        (SortTarget.KEY, SortOrder.ASCEND, [b"a", b"b", b"c", b"foo", b"foo/abc", b"fop"]),
        (SortTarget.KEY, SortOrder.DESCEND, [b"fop", b"foo/abc", b"foo", b"c", b"b", b"a"]),
        (SortTarget.CREATE, SortOrder.ASCEND, [b"b", b"a", b"c", b"fop", b"foo/abc", b"foo"]),
        (SortTarget.CREATE, SortOrder.DESCEND, [b"foo", b"foo/abc", b"fop", b"c", b"a", b"b"]),
        (SortTarget.MOD, SortOrder.ASCEND, [b"a", b"c", b"fop", b"foo/abc", b"foo", b"b"]),
        (SortTarget.MOD, SortOrder.DESCEND, [b"b", b"foo", b"foo/abc", b"fop", b"c", b"a"]),
        (SortTarget.VALUE, SortOrder.ASCEND, [b"fop", b"c", b"a", b"foo/abc", b"foo", b"b"]),
        (SortTarget.VALUE, SortOrder.DESCEND, [b"b", b"foo", b"foo/abc", b"a", b"c", b"fop"]),
    ],
)
def test_kv_range_sorts_by_each_target(
    cli: Client, keyset: KeySet, target: SortTarget, order: SortOrder, expected: list[bytes]
) -> None:
    """Every sort target orders the range as etcd's store does."""
    response = cli.get(keyset.prefix, prefix=True, sort_target=target, sort_order=order)
    assert keyset.short(response) == expected


def test_kv_range_sorts_by_version(cli: Client, keyset: KeySet) -> None:
    """Sorting by version puts c (3 puts) and b (2 puts) last, ascending."""
    response = cli.get(
        keyset.prefix, prefix=True, sort_target=SortTarget.VERSION, sort_order=SortOrder.ASCEND
    )
    assert keyset.short(response)[-2:] == [b"b", b"c"]  # the keys of version 1 tie, in any order
    assert [kv.version for kv in response.kvs] == [1, 1, 1, 1, 2, 3]


def test_kv_range_sort_target_without_order_is_ascending(cli: Client, keyset: KeySet) -> None:
    """A sort target with no order given sorts ascending, as clientv3's WithSort does."""
    response = cli.get(keyset.prefix, prefix=True, sort_target=SortTarget.CREATE)
    by_create = cli.get(
        keyset.prefix, prefix=True, sort_target=SortTarget.CREATE, sort_order=SortOrder.ASCEND
    )
    assert keyset.short(response) == keyset.short(by_create)


def test_kv_range_sorts_before_applying_the_limit(cli: Client, keyset: KeySet) -> None:
    """With a limit, the whole range is sorted first: the newest two keys come back."""
    response = cli.get(
        keyset.prefix,
        prefix=True,
        sort_target=SortTarget.CREATE,
        sort_order=SortOrder.DESCEND,
        limit=2,
    )
    assert keyset.short(response) == [b"foo", b"foo/abc"]
    assert (response.count, response.more) == (6, True)


def test_kv_range_descending_key_with_limit_one_is_the_last_key(
    cli: Client, keyset: KeySet
) -> None:
    """Key order descending with limit 1 returns the last key (clientv3's WithLastKey)."""
    response = cli.get(
        keyset.prefix,
        prefix=True,
        sort_target=SortTarget.KEY,
        sort_order=SortOrder.DESCEND,
        limit=1,
    )
    assert keyset.short(response) == [b"fop"]


def test_kv_range_limit_sets_more_and_the_full_count(cli: Client, keyset: KeySet) -> None:
    """A limit below the range's size returns that many keys, more=True and the full count."""
    response = cli.get(keyset.prefix, prefix=True, limit=4)
    assert keyset.short(response) == [b"a", b"b", b"c", b"foo"]
    assert (response.count, response.more) == (6, True)
    exact = cli.get(keyset.prefix, prefix=True, limit=6)
    assert (len(exact.kvs), exact.more) == (6, False)


def test_kv_range_keys_only_leaves_values_out(cli: Client, keyset: KeySet) -> None:
    """keys_only returns every key with an empty value."""
    response = cli.get(keyset.prefix, prefix=True, keys_only=True)
    assert len(response.kvs) == 6
    assert {kv.value for kv in response.kvs} == {b""}


def test_kv_range_count_only_wins_over_keys_only(cli: Client, keyset: KeySet) -> None:
    """keys_only with count_only returns only the count (TestKVGetKeysOnlyWithCountOnly)."""
    current = cli.get(keyset.prefix + b"a").header
    response = cli.get(keyset.prefix, prefix=True, keys_only=True, count_only=True)
    assert (response.kvs, response.count) == ([], 6)
    assert response.header == current


def test_kv_range_mod_revision_filters(cli: Client, keyset: KeySet) -> None:
    """min/max_mod_revision keep only the keys last modified within the bounds."""
    revisions = keyset.revisions
    response = cli.get(
        keyset.prefix, prefix=True, min_mod_revision=revisions[4], max_mod_revision=revisions[6]
    )
    assert keyset.short(response) == [b"c", b"foo/abc", b"fop"]


def test_kv_range_create_revision_filters(cli: Client, keyset: KeySet) -> None:
    """min/max_create_revision keep only the keys created within the bounds."""
    revisions = keyset.revisions
    response = cli.get(
        keyset.prefix,
        prefix=True,
        min_create_revision=revisions[1],
        max_create_revision=revisions[2],
    )
    assert keyset.short(response) == [b"a", b"c"]


def test_kv_range_serializable_reads_the_same_keys(cli: Client, keyset: KeySet) -> None:
    """A serializable get on a one-member cluster sees the writes just made."""
    response = cli.get(keyset.prefix, prefix=True, serializable=True)
    assert keyset.short(response) == [b"a", b"b", b"c", b"foo", b"foo/abc", b"fop"]


def test_kv_get_at_a_future_revision_raises_future_revision(cli: Client, prefix: bytes) -> None:
    """A get above the store's revision raises FutureRevisionError."""
    current = cli.put(prefix + b"k", b"v").header.revision
    with pytest.raises(errors.FutureRevisionError):
        cli.get(prefix + b"k", revision=current + 100)


def test_kv_get_out_of_range_sort_target_is_refused_before_any_io(closed: Client) -> None:
    """A sort target etcd does not know raises InvalidSortOptionError even on a closed client."""
    with pytest.raises(errors.InvalidSortOptionError):
        closed.get("k", prefix=True, sort_target=5)  # type: ignore[arg-type]  # on purpose


def test_kv_get_bad_arguments_are_refused_before_any_io(closed: Client) -> None:
    """A negative limit, or prefix with range_end, raises ValueError even on a closed client."""
    with pytest.raises(ValueError, match="limit"):
        closed.get("k", limit=-1)
    with pytest.raises(ValueError, match="prefix"):
        closed.get("k", prefix=True, range_end="z")
    with pytest.raises(TypeError, match="key"):
        closed.get(7)  # type: ignore[arg-type]  # the wrong type on purpose


# --- delete (TestKVDeleteRange) --------------------------------------------------------------


DELETE_KEYS = [b"a", b"b", b"c", b"c/abc", b"d"]


@pytest.mark.parametrize(
    ("arguments", "remaining"),
    [
        ({"key": b"b", "range_end": b"c/abc"}, [b"a", b"c/abc", b"d"]),
        ({"key": b"b", "range_end": b"c/abd"}, [b"a", b"d"]),
        ({"key": b"c", "prefix": True}, [b"a", b"b", b"d"]),
        ({"key": b"c", "from_key": True}, [b"a", b"b"]),
        ({"key": b"c"}, [b"a", b"b", b"c/abc", b"d"]),
    ],
    ids=["range", "range-past-c-abc", "prefix", "from-key", "single"],
)
def test_kv_delete_removes_exactly_the_range(
    cli: Client, prefix: bytes, arguments: dict[str, object], remaining: list[bytes]
) -> None:
    """delete with a range, a prefix, from_key or one key removes exactly those keys."""
    # Under b"\xff", after every other test's keys, so that from_key reaches only these.
    top = b"\xff" + prefix
    for key in DELETE_KEYS:
        cli.put(top + key, b"")
    try:
        options = dict(arguments)
        key = top + options.pop("key")  # type: ignore[operator]  # bytes in every case above
        if "range_end" in options:
            options["range_end"] = top + options["range_end"]  # type: ignore[operator]
        response = cli.delete(key, **options)  # type: ignore[arg-type]  # the table's keywords
        assert response.deleted == len(DELETE_KEYS) - len(remaining)
        left = cli.get(top, prefix=True)
        assert [k[len(top) :] for k in keys_of(left)] == remaining
    finally:
        cli.delete(top, prefix=True)


def test_kv_delete_of_every_key_with_the_nul_key(cli: Client, prefix: bytes) -> None:
    """Key b"\\x00" with from_key deletes the whole keyspace (the first TestKVDeleteRange case)."""
    for key in DELETE_KEYS:
        cli.put(prefix + key, b"")
    response = cli.delete(b"\x00", from_key=True)
    assert response.deleted >= len(DELETE_KEYS)
    assert cli.get(b"", from_key=True).count == 0


def test_kv_delete_prev_kv_returns_the_deleted_pairs(cli: Client, prefix: bytes) -> None:
    """prev_kv returns every deleted pair with its value."""
    for key in DELETE_KEYS:
        cli.put(prefix + key, key.upper())
    response = cli.delete(prefix + b"c", prefix=True, prev_kv=True)
    assert [(kv.key, kv.value) for kv in response.prev_kvs] == [
        (prefix + b"c", b"C"),
        (prefix + b"c/abc", b"C/ABC"),
    ]


def test_kv_delete_of_a_missing_key_changes_no_revision(cli: Client, prefix: bytes) -> None:
    """Deleting nothing deletes 0 keys and leaves the store's revision as it was."""
    before = cli.put(prefix + b"other", b"").header.revision
    response = cli.delete(prefix + b"missing")
    assert (response.deleted, response.header.revision) == (0, before)


# --- compaction (TestKVCompactError, TestKVCompact, TestKVGetStreamCompactedError) ------------


def put_many(cli: Client, key: bytes, count: int) -> list[int]:
    """Put `key` `count` times and return the revisions."""
    return [cli.put(key, b"bar%d" % i).header.revision for i in range(count)]


def test_kv_compact_at_the_compacted_revision_again_raises_compacted(
    cli: Client, prefix: bytes
) -> None:
    """Compacting the revision already compacted raises CompactedError (etcd 3.5)."""
    revision = put_many(cli, prefix + b"foo", 3)[-1]
    cli.compact(revision)
    with pytest.raises(errors.CompactedError):
        cli.compact(revision)


def test_kv_compact_below_the_compacted_revision_raises_compacted(
    cli: Client, prefix: bytes
) -> None:
    """Compacting an older revision than the last compaction raises CompactedError."""
    revisions = put_many(cli, prefix + b"foo", 3)
    cli.compact(revisions[-1])
    with pytest.raises(errors.CompactedError):
        cli.compact(revisions[0])


def test_kv_compact_a_future_revision_raises_future_revision(cli: Client, prefix: bytes) -> None:
    """Compacting above the current revision raises FutureRevisionError."""
    revision = put_many(cli, prefix + b"foo", 1)[-1]
    with pytest.raises(errors.FutureRevisionError):
        cli.compact(revision + 1000)


def test_kv_compact_physical_returns_once_compacted(cli: Client, prefix: bytes) -> None:
    """A physical compaction returns a header at or above the compacted revision."""
    revision = put_many(cli, prefix + b"foo", 2)[-1]
    assert cli.compact(revision, physical=True).header.revision >= revision


def test_kv_get_at_a_compacted_revision_raises_compacted(cli: Client, prefix: bytes) -> None:
    """A get below the compacted revision raises CompactedError with compact_revision 0."""
    revisions = put_many(cli, prefix + b"foo", 5)
    cli.compact(revisions[-1])
    with pytest.raises(errors.CompactedError) as raised:
        cli.get(prefix + b"foo", revision=revisions[1])
    assert raised.value.compact_revision == 0
    assert cli.get(prefix + b"foo", revision=revisions[-1]).kvs[0].value == b"bar4"


def test_kv_watch_from_before_the_compaction_raises_compacted_with_its_revision(
    cli: Client, prefix: bytes
) -> None:
    """A watch from a compacted revision raises CompactedError naming the compacted revision."""
    revisions = put_many(cli, prefix + b"foo", 10)
    compacted = revisions[5]
    cli.compact(compacted)
    cli.get(b"quorum-get")  # as Go: the watcher's member must have applied the compaction
    watch = cli.watch(prefix + b"foo", start_revision=revisions[1], timeout=TIMEOUT)
    with pytest.raises(errors.CompactedError) as raised:
        watch.next(timeout=TIMEOUT)
    assert raised.value.compact_revision == compacted
    with pytest.raises(errors.CanceledError):
        watch.next(timeout=TIMEOUT)


# --- a closed client (TestKVGetErrConnClosed, TestKVNewAfterClose) ----------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.get("foo"),
        lambda c: c.put("foo", "bar"),
        lambda c: c.delete("foo"),
        lambda c: c.txn([], [Op.put("foo", "bar")]),
        lambda c: c.compact(1),
    ],
    ids=["get", "put", "delete", "txn", "compact"],
)
def test_kv_call_after_close_raises_canceled_at_once(
    closed: Client, call: Callable[[Client], object]
) -> None:
    """Every KV call on a closed client raises CanceledError without waiting."""
    started = time.monotonic()
    with pytest.raises(errors.CanceledError):
        call(closed)
    assert time.monotonic() - started < 1.0


def test_kv_get_with_a_spent_deadline_leaves_the_client_usable(cli: Client, prefix: bytes) -> None:
    """A get past its deadline raises DeadlineExceededError; the next works (TestKVGetCancel)."""
    with pytest.raises(errors.DeadlineExceededError):
        cli.get(prefix + b"abc", timeout=1e-6)
    with pytest.raises(TimeoutError):  # DeadlineExceededError is also the builtin
        cli.get(prefix + b"abc", timeout=1e-6)
    assert cli.get(prefix + b"abc").count == 0


# --- a member down (TestKVGetRetry, TestKVPutFailGetRetry, TestTxnWriteFail, ...) -------------


class Background:
    """A call run on its own thread, with what it returned or raised."""

    def __init__(self, call: Callable[[], object]) -> None:
        self.result: object = None
        self.error: BaseException | None = None
        self._call = call
        self.thread = threading.Thread(target=self._run, name="test-call", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.result = self._call()
        except BaseException as err:  # noqa: BLE001  # handed to the test thread to assert on
            self.error = err

    def join(self, timeout: float) -> object:
        """Wait for the call and return its result, or raise what it raised."""
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the call did not return in time"
        if self.error is not None:
            raise self.error
        return self.result


def test_kv_get_retries_until_the_member_is_back(server: EtcdServer, prefix: bytes) -> None:
    """A get sent while the only member is down waits and answers once it restarts."""
    with Client(server.endpoints, timeout=TIMEOUT) as client:
        client.put(prefix + b"foo", b"bar")
        proxy = server.member.client_proxy
        calls: list[Background] = []

        def get_while_down() -> None:
            tries = proxy.accepted_connections
            calls.append(Background(lambda: client.get(prefix + b"foo", timeout=20.0)))
            # The client has tried (and failed) to reach the member at least twice.
            wait_until(lambda: proxy.accepted_connections >= tries + 2, timeout=TIMEOUT)
            assert calls[0].thread.is_alive()

        restart_after(server, get_while_down)
        response = calls[0].join(20.0)
        assert isinstance(response, GetResponse)
        assert [(kv.value, kv.version) for kv in response.kvs] == [(b"bar", 1)]


@pytest.mark.parametrize(
    "write",
    [
        lambda c, k: c.put(k, b"bar", timeout=0.5),
        lambda c, k: c.txn(success=[Op.put(k, b"bar")], timeout=0.5),
    ],
    ids=["put", "txn"],
)
def test_kv_write_to_a_down_member_fails_and_is_not_applied(
    server: EtcdServer, prefix: bytes, write: Callable[[Client, bytes], object]
) -> None:
    """A write while the only member is down raises, and is not applied once it is back."""
    key = prefix + b"foo"
    with Client(server.endpoints, timeout=TIMEOUT) as client:
        client.put(key, b"before")  # each write would change it
        before = client.get(key)

        def write_while_down() -> None:
            with pytest.raises((errors.UnavailableError, errors.DeadlineExceededError)):
                write(client, key)

        restart_after(server, write_while_down)
        after = wait_until(lambda: client.get(key), timeout=TIMEOUT, ignore=(errors.EtcdError,))
        assert after.kvs == before.kvs


def test_kv_close_after_a_failed_get_on_a_down_member_is_clean(
    server: EtcdServer, prefix: bytes
) -> None:
    """Closing a client whose get just failed on a down member returns at once (no error)."""
    client = Client(server.endpoints, timeout=TIMEOUT)

    def fail_then_close() -> None:
        with pytest.raises((errors.UnavailableError, errors.DeadlineExceededError)):
            client.get(prefix + b"abc", timeout=0.5)
        started = time.monotonic()
        client.close()
        assert time.monotonic() - started < 2.0

    restart_after(server, fail_then_close)
    with pytest.raises(errors.CanceledError):
        client.get(prefix + b"abc")


def test_kv_get_waiting_for_a_down_member_ends_when_the_client_closes(
    server: EtcdServer, prefix: bytes
) -> None:
    """A get waiting for the only member to come back raises CanceledError once the client
    is closed from another thread, without waiting for its deadline."""
    client = Client(server.endpoints, timeout=TIMEOUT)
    proxy = server.member.client_proxy

    def close_while_waiting() -> None:
        tries = proxy.accepted_connections
        call = Background(lambda: client.get(prefix + b"foo", timeout=30.0))
        wait_until(lambda: proxy.accepted_connections >= tries + 2, timeout=TIMEOUT)
        started = time.monotonic()
        client.close()
        with pytest.raises(errors.CanceledError):
            call.join(TIMEOUT)
        assert time.monotonic() - started < 2.0

    restart_after(server, close_while_waiting)


def test_kv_put_is_applied_at_most_once_while_connections_drop(
    server: EtcdServer, prefix: bytes
) -> None:
    """Puts sent while every connection keeps being dropped are never applied twice."""
    key = prefix + b"k"
    proxy = server.member.client_proxy
    with Client(server.endpoints, timeout=TIMEOUT) as client:
        client.put(key, b"1")
        attempts = 0
        for _ in range(10):
            stop = threading.Event()

            def drop(stop: threading.Event = stop) -> None:
                for _ in range(10):
                    proxy.drop_connections()
                    if stop.wait(0.005):
                        return

            dropper = threading.Thread(target=drop, name="test-dropper")
            dropper.start()
            attempts += 1
            try:
                client.put(key, b"v")
                failed = False
            except (errors.UnavailableError, errors.DeadlineExceededError):
                failed = True
            finally:
                stop.set()
                dropper.join()
            if failed:
                break
        version = wait_until(
            lambda: client.get(key).kvs[0].version, timeout=TIMEOUT, ignore=(errors.EtcdError,)
        )
        assert version <= attempts + 1


# --- txn (txn_test.go) ------------------------------------------------------------------------


def test_txn_writing_one_key_twice_raises_duplicate_key(cli: Client, prefix: bytes) -> None:
    """A branch that puts the same key twice raises DuplicateKeyError and writes nothing."""
    with pytest.raises(errors.DuplicateKeyError):
        cli.txn(success=[Op.put(prefix + b"foo", b"bar1"), Op.put(prefix + b"foo", b"bar2")])
    assert cli.get(prefix + b"foo").count == 0


def test_txn_above_max_txn_ops_raises_too_many_ops(cli: Client, prefix: bytes) -> None:
    """A txn with more ops than --max-txn-ops raises TooManyOpsError and writes nothing."""
    ops = [Op.put(prefix + b"foo%d" % i, b"") for i in range(MAX_TXN_OPS + 10)]
    with pytest.raises(errors.TooManyOpsError):
        cli.txn(success=ops)
    assert cli.get(prefix, prefix=True).count == 0


def test_txn_of_exactly_max_txn_ops_is_accepted(cli: Client, prefix: bytes) -> None:
    """A txn with --max-txn-ops ops, no more, is applied."""
    ops = [Op.put(prefix + b"foo%d" % i, b"") for i in range(MAX_TXN_OPS)]
    assert cli.txn(success=ops).succeeded
    assert cli.get(prefix, prefix=True, count_only=True).count == MAX_TXN_OPS


def test_txn_with_no_compare_runs_success(cli: Client, prefix: bytes) -> None:
    """A txn without comparisons succeeds and applies its ops (TestTxnSuccess)."""
    response = cli.txn(success=[Op.put(prefix + b"foo", b"bar")])
    assert response.succeeded
    assert keys_of(cli.get(prefix + b"foo")) == [prefix + b"foo"]


def test_txn_compare_over_a_prefix_needs_every_key_to_match(cli: Client, prefix: bytes) -> None:
    """A create-revision compare over a prefix fails when one key in it differs."""
    first = cli.put(prefix + b"foo/", b"bar").header.revision
    cli.put(prefix + b"foo/a", b"baz")
    response = cli.txn([Compare.create_revision(prefix + b"foo/", prefix=True) == first])
    assert not response.succeeded


def test_txn_nested_applies_both_levels(cli: Client, prefix: bytes) -> None:
    """A nested txn in the success branch runs, and its response is a TxnResponse."""
    response = cli.txn(
        [Compare.version(prefix + b"foo") == 0],
        [
            Op.put(prefix + b"foo", b"bar"),
            Op.txn(success=[Op.put(prefix + b"abc", b"123")]),
        ],
        [Op.put(prefix + b"foo", b"baz")],
    )
    assert response.succeeded
    assert len(response.responses) == 2
    inner = response.responses[1]
    assert isinstance(inner, TxnResponse)
    assert inner.succeeded
    assert isinstance(inner.responses[0], PutResponse)
    assert cli.get(prefix + b"foo").kvs[0].value == b"bar"
    assert cli.get(prefix + b"abc").kvs[0].value == b"123"


def test_txn_failure_branch_runs_when_a_compare_fails(cli: Client, prefix: bytes) -> None:
    """When a comparison fails, the failure ops run and the success ops do not."""
    cli.put(prefix + b"foo", b"bar")
    response = cli.txn(
        [Compare.value(prefix + b"foo") == b"other"],
        [Op.put(prefix + b"foo", b"success")],
        [Op.put(prefix + b"foo", b"failure"), Op.get(prefix + b"foo")],
    )
    assert not response.succeeded
    get = response.responses[1]
    assert isinstance(get, GetResponse)
    assert get.kvs[0].value == b"failure"  # ops run in order: the get sees the put before it


@pytest.mark.parametrize(
    "compare",
    [
        lambda k: Compare.value(k) == b"",
        lambda k: Compare.value(k) != b"x",
        lambda k: Compare.value(k) < b"x",
    ],
    ids=["eq-empty", "ne", "lt"],
)
def test_txn_value_compare_on_a_missing_key_always_fails(
    cli: Client, prefix: bytes, compare: Callable[[bytes], Compare]
) -> None:
    """Any value comparison with a missing key fails, even != (etcd has no 'missing' value)."""
    assert not cli.txn([compare(prefix + b"missing")]).succeeded


@pytest.mark.parametrize(
    "compare",
    [
        lambda k: Compare.version(k) == 0,
        lambda k: Compare.create_revision(k) == 0,
        lambda k: Compare.mod_revision(k) == 0,
        lambda k: Compare.lease(k) == 0,
    ],
    ids=["version", "create", "mod", "lease"],
)
def test_txn_numeric_compare_on_a_missing_key_sees_zero(
    cli: Client, prefix: bytes, compare: Callable[[bytes], Compare]
) -> None:
    """Version, revisions and lease of a missing key compare as 0."""
    assert cli.txn([compare(prefix + b"missing")]).succeeded


def test_txn_value_compare_orders_bytes(cli: Client, prefix: bytes) -> None:
    """Value comparisons order bytes lexicographically: b"b" > b"a" and b"b" < b"ba"."""
    key = prefix + b"k"
    cli.put(key, b"b")
    assert cli.txn([Compare.value(key) > b"a", Compare.value(key) < b"ba"]).succeeded
    assert not cli.txn([Compare.value(key) > b"c"]).succeeded


def test_txn_mod_revision_compare_over_a_range(cli: Client, prefix: bytes) -> None:
    """A mod-revision compare over a range holds only if it holds for every key in it."""
    first = cli.put(prefix + b"a", b"").header.revision
    last = cli.put(prefix + b"b", b"").header.revision
    end = prefix + b"c"
    assert cli.txn([Compare.mod_revision(prefix + b"a", range_end=end) < last + 1]).succeeded
    assert not cli.txn([Compare.mod_revision(prefix + b"a", range_end=end) < last]).succeeded
    assert cli.txn([Compare.mod_revision(prefix + b"a", range_end=end) > first - 1]).succeeded


def test_txn_lease_compare_sees_the_keys_lease(cli: Client, prefix: bytes) -> None:
    """A lease compare matches the lease a key is attached to."""
    lease = cli.grant(10).id
    cli.put(prefix + b"k", b"", lease=lease)
    assert cli.txn([Compare.lease(prefix + b"k") == lease]).succeeded
    assert not cli.txn([Compare.lease(prefix + b"k") != lease]).succeeded
    cli.revoke(lease)


def test_txn_writes_take_one_revision(cli: Client, prefix: bytes) -> None:
    """Every write of one txn shares one new revision."""
    before = cli.get(prefix + b"a").header.revision
    response = cli.txn(success=[Op.put(prefix + b"a", b""), Op.put(prefix + b"b", b"")])
    assert response.header.revision == before + 1
    kvs = cli.get(prefix, prefix=True).kvs
    assert {kv.mod_revision for kv in kvs} == {before + 1}


def test_txn_of_reads_only_creates_no_revision(cli: Client, prefix: bytes) -> None:
    """A read-only txn leaves the store's revision as it was."""
    before = cli.put(prefix + b"a", b"").header.revision
    response = cli.txn([Compare.version(prefix + b"a") == 1], [Op.get(prefix + b"a")])
    assert (response.succeeded, response.header.revision) == (True, before)


def test_txn_put_with_a_missing_lease_raises_and_applies_nothing(
    cli: Client, prefix: bytes
) -> None:
    """A txn whose put names a missing lease raises LeaseNotFoundError and writes nothing."""
    lease = cli.grant(10).id
    cli.revoke(lease)
    with pytest.raises(errors.LeaseNotFoundError):
        cli.txn(success=[Op.put(prefix + b"a", b""), Op.put(prefix + b"b", b"", lease=lease)])
    assert cli.get(prefix, prefix=True).count == 0


def test_txn_delete_returns_its_prev_kvs(cli: Client, prefix: bytes) -> None:
    """A delete inside a txn reports what it deleted."""
    cli.put(prefix + b"a", b"1")
    response = cli.txn(success=[Op.delete(prefix + b"a", prev_kv=True)])
    inner = response.responses[0]
    assert isinstance(inner, DeleteResponse)
    assert (inner.deleted, [kv.value for kv in inner.prev_kvs]) == (1, [b"1"])


def test_do_runs_each_op_kind(cli: Client, prefix: bytes) -> None:
    """do() runs a put, a get, a delete and a txn and returns the matching response types."""
    assert isinstance(cli.do(Op.put(prefix + b"a", b"1")), PutResponse)
    got = cli.do(Op.get(prefix + b"a"))
    assert isinstance(got, GetResponse)
    assert got.kvs[0].value == b"1"
    txn = cli.do(Op.txn([Compare.value(prefix + b"a") == b"1"], [Op.get(prefix + b"a")]))
    assert isinstance(txn, TxnResponse)
    assert txn.succeeded
    deleted = cli.do(Op.delete(prefix + b"a"))
    assert isinstance(deleted, DeleteResponse)
    assert deleted.deleted == 1
