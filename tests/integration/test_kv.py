"""Every KV call of the Client, with every option, against a real etcd."""

from __future__ import annotations

import threading

import pytest
from conftest import AsyncClientFacade

from etcd_layers import Client, Compare, Op, SortOrder, SortTarget, errors
from etcd_layers.base import KV, DeleteResponse, GetResponse, PutResponse, TxnResponse


@pytest.fixture
def etcd_client(both_clients: Client) -> Client:
    """Every test here runs against the Client and the AsyncClient (behind its sync facade)."""
    return both_clients


def test_client_satisfies_the_protocols(etcd_client: object) -> None:
    """The Client is a KV, a Watcher and a Lease to isinstance checks (the AsyncClient: async)."""
    from etcd_layers.base import AsyncKV, Lease, Watcher

    if isinstance(etcd_client, AsyncClientFacade):
        # The facade only relays calls; the Protocols are the AsyncClient's own (its watch and
        # keep-alive, and so AsyncWatcher and AsyncLease, are tested in test_async_client).
        assert isinstance(etcd_client.client, AsyncKV)
        return
    assert isinstance(etcd_client, KV)
    assert isinstance(etcd_client, Watcher)
    assert isinstance(etcd_client, Lease)


def test_put_get_roundtrip_with_str_and_bytes(etcd_client: Client, etcd_key_prefix: bytes) -> None:
    """A str key and value are stored as UTF-8; everything returned is bytes."""
    key = etcd_key_prefix + "ключ".encode()
    etcd_client.put(key.decode(), "значение")
    response = etcd_client.get(key)
    assert response.count == 1
    assert response.kvs[0].key == key
    assert response.kvs[0].value == "значение".encode()
    assert response.kvs[0].version == 1
    assert response.header.revision >= response.kvs[0].mod_revision


def test_put_prev_kv_returns_the_old_pair(etcd_client: Client, etcd_key_prefix: bytes) -> None:
    """prev_kv returns the pair as it was, and None when the key did not exist."""
    key = etcd_key_prefix + b"k"
    assert etcd_client.put(key, b"1", prev_kv=True).prev_kv is None
    previous = etcd_client.put(key, b"2", prev_kv=True).prev_kv
    assert previous is not None
    assert (previous.value, previous.version) == (b"1", 1)


def test_put_ignore_value_and_ignore_lease(etcd_client: Client, etcd_key_prefix: bytes) -> None:
    """ignore_value keeps the value while changing the lease; ignore_lease keeps the lease."""
    key = etcd_key_prefix + b"k"
    lease = etcd_client.grant(30).id
    etcd_client.put(key, b"v", lease=lease)
    etcd_client.put(key, b"", ignore_value=True, lease=0)
    assert etcd_client.get(key).kvs[0].value == b"v"
    etcd_client.put(key, b"w", lease=lease)
    etcd_client.put(key, b"x", ignore_lease=True)
    kv = etcd_client.get(key).kvs[0]
    assert (kv.value, kv.lease) == (b"x", lease)
    with pytest.raises(errors.KeyNotFoundError):
        etcd_client.put(etcd_key_prefix + b"missing", b"", ignore_value=True)
    etcd_client.revoke(lease)


def test_get_missing_key_is_empty(etcd_client: Client, etcd_key_prefix: bytes) -> None:
    """A missing key gives an empty response, not an error."""
    response = etcd_client.get(etcd_key_prefix + b"nothing")
    assert (response.kvs, response.count, response.more) == ([], 0, False)


def _fill(cli: Client, prefix: bytes, count: int) -> None:
    for i in range(count):
        cli.put(prefix + b"%02d" % i, b"v%d" % (count - i))


def test_get_prefix_range_and_from_key(etcd_client: Client, etcd_key_prefix: bytes) -> None:
    """prefix, range_end and from_key select the expected keys in order."""
    _fill(etcd_client, etcd_key_prefix, 5)
    everything = etcd_client.get(etcd_key_prefix, prefix=True)
    assert [kv.key for kv in everything.kvs] == [etcd_key_prefix + b"%02d" % i for i in range(5)]
    window = etcd_client.get(etcd_key_prefix + b"01", range_end=etcd_key_prefix + b"03")
    assert [kv.key[-2:] for kv in window.kvs] == [b"01", b"02"]
    tail = etcd_client.get(etcd_key_prefix + b"03", from_key=True, limit=10)
    assert [kv.key[-2:] for kv in tail.kvs][:2] == [b"03", b"04"]


def test_get_limit_sets_more_and_count(etcd_client: Client, etcd_key_prefix: bytes) -> None:
    """limit cuts the result while count and more describe the whole range."""
    _fill(etcd_client, etcd_key_prefix, 5)
    response = etcd_client.get(etcd_key_prefix, prefix=True, limit=2)
    assert (len(response.kvs), response.count, response.more) == (2, 5, True)


@pytest.mark.parametrize(
    ("target", "order", "expected"),
    [
        (SortTarget.KEY, SortOrder.DESCEND, [b"04", b"03", b"02", b"01", b"00"]),
        (SortTarget.VALUE, SortOrder.ASCEND, [b"04", b"03", b"02", b"01", b"00"]),
        (SortTarget.CREATE, SortOrder.ASCEND, [b"00", b"01", b"02", b"03", b"04"]),
        (SortTarget.MOD, SortOrder.DESCEND, [b"04", b"03", b"02", b"01", b"00"]),
        (SortTarget.VERSION, SortOrder.ASCEND, None),
    ],
)
def test_get_sort_options(
    etcd_client: Client,
    etcd_key_prefix: bytes,
    target: SortTarget,
    order: SortOrder,
    expected: list[bytes] | None,
) -> None:
    """Every sort target and order is sent and honoured by the server."""
    _fill(etcd_client, etcd_key_prefix, 5)
    response = etcd_client.get(etcd_key_prefix, prefix=True, sort_target=target, sort_order=order)
    assert response.count == 5
    if expected is not None:
        assert [kv.key[-2:] for kv in response.kvs] == expected


def test_get_keys_only_and_count_only(etcd_client: Client, etcd_key_prefix: bytes) -> None:
    """keys_only leaves values out; count_only returns only the count."""
    _fill(etcd_client, etcd_key_prefix, 3)
    keys = etcd_client.get(etcd_key_prefix, prefix=True, keys_only=True)
    assert [kv.value for kv in keys.kvs] == [b"", b"", b""]
    counted = etcd_client.get(etcd_key_prefix, prefix=True, count_only=True)
    assert (counted.kvs, counted.count) == ([], 3)


def test_get_at_revision_and_revision_filters(etcd_client: Client, etcd_key_prefix: bytes) -> None:
    """revision reads history; min/max mod/create revision filter the range."""
    key = etcd_key_prefix + b"k"
    first = etcd_client.put(key, b"1").header.revision
    second = etcd_client.put(key, b"2").header.revision
    assert etcd_client.get(key, revision=first).kvs[0].value == b"1"
    other = etcd_client.put(etcd_key_prefix + b"z", b"z").header.revision
    recent = etcd_client.get(etcd_key_prefix, prefix=True, min_mod_revision=other)
    assert [kv.key for kv in recent.kvs] == [etcd_key_prefix + b"z"]
    old = etcd_client.get(etcd_key_prefix, prefix=True, max_mod_revision=second)
    assert [kv.key for kv in old.kvs] == [key]
    created_late = etcd_client.get(etcd_key_prefix, prefix=True, min_create_revision=other)
    assert [kv.key for kv in created_late.kvs] == [etcd_key_prefix + b"z"]
    created_early = etcd_client.get(etcd_key_prefix, prefix=True, max_create_revision=first)
    assert [kv.key for kv in created_early.kvs] == [key]


def test_get_serializable_reads_local_data(etcd_client: Client, etcd_key_prefix: bytes) -> None:
    """A serializable get answers from the member's data."""
    etcd_client.put(etcd_key_prefix + b"k", b"v")
    assert etcd_client.get(etcd_key_prefix + b"k", serializable=True).kvs[0].value == b"v"


def test_get_future_revision_raises(etcd_client: Client, etcd_key_prefix: bytes) -> None:
    """A get above the store's revision raises FutureRevisionError."""
    with pytest.raises(errors.FutureRevisionError):
        etcd_client.get(etcd_key_prefix + b"k", revision=10**12)


def test_delete_single_range_prefix_and_prev_kv(
    etcd_client: Client, etcd_key_prefix: bytes
) -> None:
    """delete removes a key, a range or a prefix, and prev_kv returns what it removed."""
    _fill(etcd_client, etcd_key_prefix, 5)
    assert etcd_client.delete(etcd_key_prefix + b"00").deleted == 1
    ranged = etcd_client.delete(
        etcd_key_prefix + b"01", range_end=etcd_key_prefix + b"03", prev_kv=True
    )
    assert ranged.deleted == 2
    assert [kv.key[-2:] for kv in ranged.prev_kvs] == [b"01", b"02"]
    rest = etcd_client.delete(etcd_key_prefix, prefix=True)
    assert rest.deleted == 2
    assert etcd_client.get(etcd_key_prefix, prefix=True).count == 0
    assert etcd_client.delete(etcd_key_prefix + b"gone").deleted == 0


def test_txn_success_and_failure_branches(etcd_client: Client, etcd_key_prefix: bytes) -> None:
    """A txn runs success when every compare holds and failure otherwise, with typed responses."""
    key = etcd_key_prefix + b"k"
    created = etcd_client.txn(
        [Compare.create_revision(key) == 0],
        [Op.put(key, b"1"), Op.get(key)],
        [Op.get(key)],
    )
    assert created.succeeded
    assert isinstance(created.responses[0], PutResponse)
    second = created.responses[1]
    assert isinstance(second, GetResponse)
    assert second.kvs[0].value == b"1"
    again = etcd_client.txn([Compare.create_revision(key) == 0], [Op.put(key, b"2")], [Op.get(key)])
    assert not again.succeeded
    assert isinstance(again.responses[0], GetResponse)
    assert etcd_client.get(key).kvs[0].value == b"1"


@pytest.mark.parametrize(
    ("build", "holds"),
    [
        (lambda k: Compare.value(k) == b"v", True),
        (lambda k: Compare.value(k) != b"v", False),
        (lambda k: Compare.value(k) > b"a", True),
        (lambda k: Compare.value(k) < b"a", False),
        (lambda k: Compare.version(k) == 1, True),
        (lambda k: Compare.version(k) > 1, False),
        (lambda k: Compare.mod_revision(k) > 0, True),
        (lambda k: Compare.create_revision(k) < 1, False),
        (lambda k: Compare.lease(k) == 0, True),
    ],
)
def test_txn_compare_targets_and_operators(
    etcd_client: Client, etcd_key_prefix: bytes, build: object, holds: bool
) -> None:
    """Each compare target and operator reaches the server with the right meaning."""
    key = etcd_key_prefix + b"k"
    etcd_client.put(key, b"v")
    assert callable(build)
    assert etcd_client.txn([build(key)]).succeeded is holds


def test_txn_compare_over_prefix(etcd_client: Client, etcd_key_prefix: bytes) -> None:
    """A compare over a prefix holds only if it holds for every key in the range."""
    _fill(etcd_client, etcd_key_prefix, 3)
    assert etcd_client.txn([Compare.version(etcd_key_prefix, prefix=True) == 1]).succeeded
    etcd_client.put(etcd_key_prefix + b"01", b"again")
    assert not etcd_client.txn([Compare.version(etcd_key_prefix, prefix=True) == 1]).succeeded


def test_txn_nested(etcd_client: Client, etcd_key_prefix: bytes) -> None:
    """A txn inside a txn runs and returns its own typed responses."""
    key = etcd_key_prefix + b"k"
    response = etcd_client.txn(
        [],
        [Op.txn([Compare.version(key) == 0], [Op.put(key, b"inner"), Op.get(key)], [])],
    )
    inner = response.responses[0]
    assert isinstance(inner, TxnResponse)
    assert inner.succeeded
    inner_get = inner.responses[1]
    assert isinstance(inner_get, GetResponse)
    assert inner_get.kvs[0].value == b"inner"
    assert inner_get.header.revision == response.header.revision


def test_txn_with_an_empty_nested_txn(etcd_client: Client) -> None:
    """An empty txn inside a txn is a txn op the server runs (an empty TxnResponse)."""
    response = etcd_client.txn([], [Op.txn()], [Op.txn([], [Op.txn()])])
    assert response.succeeded
    inner = response.responses[0]
    assert isinstance(inner, TxnResponse)
    assert inner.succeeded
    assert inner.responses == []


def test_txn_delete_and_duplicate_key(etcd_client: Client, etcd_key_prefix: bytes) -> None:
    """A txn delete answers a DeleteResponse; writing one key twice is DuplicateKeyError."""
    key = etcd_key_prefix + b"k"
    etcd_client.put(key, b"v")
    deleted = etcd_client.txn([], [Op.delete(key, prev_kv=True)])
    response = deleted.responses[0]
    assert isinstance(response, DeleteResponse)
    assert response.prev_kvs[0].value == b"v"
    with pytest.raises(errors.DuplicateKeyError):
        etcd_client.txn([], [Op.put(key, b"1"), Op.put(key, b"2")])


def test_txn_too_many_ops(etcd_client: Client, etcd_key_prefix: bytes) -> None:
    """More ops than the server's --max-txn-ops (128) raises TooManyOpsError."""
    ops = [Op.put(etcd_key_prefix + b"%03d" % i, b"v") for i in range(129)]
    with pytest.raises(errors.TooManyOpsError):
        etcd_client.txn([], ops)


def test_do_dispatches_each_op_kind(etcd_client: Client, etcd_key_prefix: bytes) -> None:
    """do() runs every Op kind and returns the matching response type."""
    key = etcd_key_prefix + b"k"
    assert isinstance(etcd_client.do(Op.put(key, b"v")), PutResponse)
    got = etcd_client.do(Op.get(key))
    assert got.kvs[0].value == b"v"
    assert isinstance(etcd_client.do(Op.txn([], [Op.get(key)])), TxnResponse)
    assert etcd_client.do(Op.delete(key)).deleted == 1


def test_compact_then_old_revision_is_compacted(
    etcd_client: Client, etcd_key_prefix: bytes
) -> None:
    """After compaction a get at an older revision raises CompactedError."""
    key = etcd_key_prefix + b"k"
    old = etcd_client.put(key, b"1").header.revision
    current = etcd_client.put(key, b"2").header.revision
    etcd_client.compact(current, physical=True)
    with pytest.raises(errors.CompactedError) as caught:
        etcd_client.get(key, revision=old)
    assert caught.value.compact_revision == 0
    assert etcd_client.get(key, revision=current).kvs[0].value == b"2"
    with pytest.raises(errors.CompactedError):
        etcd_client.compact(old)


def test_request_over_send_limit_is_refused_before_io(etcd_server: object) -> None:
    """A request above max_call_send_msg_size raises RequestTooLargeError without being sent."""
    endpoints = etcd_server.endpoints  # type: ignore[attr-defined]  # EtcdCluster fixture
    with Client(endpoints, max_call_send_msg_size=1024) as cli:
        before = cli.get("x").header.revision
        with pytest.raises(errors.RequestTooLargeError):
            cli.put("big", b"x" * 2048)
        assert cli.get("x").header.revision == before


def test_response_over_receive_limit_raises(etcd_server: object, etcd_key_prefix: bytes) -> None:
    """A response above max_call_recv_msg_size raises RequestTooLargeError."""
    endpoints = etcd_server.endpoints  # type: ignore[attr-defined]  # EtcdCluster fixture
    with Client(endpoints) as writer:
        writer.put(etcd_key_prefix + b"big", b"x" * 4096)
    with Client(endpoints, max_call_recv_msg_size=1024) as cli:
        with pytest.raises(errors.RequestTooLargeError):
            cli.get(etcd_key_prefix + b"big")
        assert cli.get(etcd_key_prefix + b"nothing").count == 0


def test_client_shared_between_threads(etcd_client: Client, etcd_key_prefix: bytes) -> None:
    """Many threads sharing one client all get correct answers."""
    failures: list[BaseException] = []

    def work(index: int) -> None:
        try:
            for round_ in range(20):
                key = etcd_key_prefix + b"t%d-%d" % (index, round_)
                etcd_client.put(key, key)
                assert etcd_client.get(key).kvs[0].value == key
        except BaseException as error:  # noqa: BLE001  # handed to the main thread
            failures.append(error)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not failures
    assert etcd_client.get(etcd_key_prefix, prefix=True, count_only=True).count == 160
