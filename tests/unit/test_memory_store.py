"""The in-memory etcd's store core, driven with etcd's request messages (no client, no threads)."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from etcd_layers.base.transport import rpc_pb2
from etcd_layers.testing.memory._errors import StoreError
from etcd_layers.testing.memory._store import Store

Range = rpc_pb2.RangeRequest
Put = rpc_pb2.PutRequest
Delete = rpc_pb2.DeleteRangeRequest
Txn = rpc_pb2.TxnRequest
RequestOp = rpc_pb2.RequestOp
Cmp = rpc_pb2.Compare


def put(store: Store, key: bytes, value: bytes = b"v", **kw: object) -> rpc_pb2.PutResponse:
    return store.put(Put(key=key, value=value, **kw))  # type: ignore[arg-type]


def keys(response: rpc_pb2.RangeResponse) -> list[bytes]:
    return [kv.key for kv in response.kvs]


def refused(call: object, *args: object) -> StoreError:
    with pytest.raises(StoreError) as caught:
        call(*args)  # type: ignore[operator]
    return caught.value


@pytest.fixture
def store() -> Store:
    return Store()


def test_store_starts_at_revision_one(store: Store) -> None:
    """A fresh store is at revision 1 with no keys, as a fresh etcd."""
    response = store.range(Range(key=b"\x00", range_end=b"\x00"))
    assert (store.revision, response.header.revision, response.count) == (1, 1, 0)


def test_store_put_takes_one_revision_even_unchanged(store: Store) -> None:
    """Each put takes a revision, an unchanged value too; version counts the puts."""
    put(store, b"k", b"v")
    response = put(store, b"k", b"v", prev_kv=True)
    assert response.header.revision == 3
    assert (response.prev_kv.mod_revision, response.prev_kv.version) == (2, 1)
    kv = store.range(Range(key=b"k")).kvs[0]
    assert (kv.create_revision, kv.mod_revision, kv.version) == (2, 3, 2)


def test_store_delete_of_nothing_takes_no_revision(store: Store) -> None:
    """Deleting no key answers the current revision and does not bump it."""
    put(store, b"k")
    response = store.delete_range(Delete(key=b"other"))
    assert (response.deleted, response.header.revision, store.revision) == (0, 2, 2)


def test_store_recreated_key_starts_a_new_version_history(store: Store) -> None:
    """After a delete, a put creates the key again: version 1, a new create_revision."""
    put(store, b"k")
    put(store, b"k")
    store.delete_range(Delete(key=b"k"))
    put(store, b"k")
    kv = store.range(Range(key=b"k")).kvs[0]
    assert (kv.create_revision, kv.mod_revision, kv.version) == (5, 5, 1)


def test_store_ranges_nul_end_from_key_and_prefix(store: Store) -> None:
    """range_end "\\0" is every key from `key` on; a plain range end is exclusive."""
    for key in (b"\x00", b"a", b"a\x00", b"ab", b"b", b"\xff"):
        put(store, key)
    assert keys(store.range(Range(key=b"a", range_end=b"\x00"))) == [
        b"a", b"a\x00", b"ab", b"b", b"\xff"
    ]  # fmt: skip
    assert keys(store.range(Range(key=b"a", range_end=b"b"))) == [b"a", b"a\x00", b"ab"]
    assert keys(store.range(Range(key=b"b", range_end=b"a"))) == []
    assert keys(store.range(Range(key=b"\x00", range_end=b"\x00"))) == [
        b"\x00", b"a", b"a\x00", b"ab", b"b", b"\xff"
    ]  # fmt: skip


def test_store_count_ignores_limit_and_more_says_what_was_cut(store: Store) -> None:
    """count is the whole range's; more is set only when limit cut keys off."""
    for key in (b"a", b"b", b"c"):
        put(store, key)
    limited = store.range(Range(key=b"a", range_end=b"z", limit=2))
    assert (keys(limited), limited.count, limited.more) == ([b"a", b"b"], 3, True)
    exact = store.range(Range(key=b"a", range_end=b"z", limit=3))
    assert (exact.count, exact.more) == (3, False)
    counted = store.range(Range(key=b"a", range_end=b"z", count_only=True, limit=1))
    assert (list(counted.kvs), counted.count, counted.more) == ([], 3, False)


def test_store_sorts_by_every_target_stably(store: Store) -> None:
    """Sorting by a target keeps equal items in key order, ascending or descending."""
    put(store, b"a", b"2")
    put(store, b"b", b"1")
    put(store, b"c", b"2")
    put(store, b"b", b"3")  # b: version 2, mod 5
    by_value = Range(key=b"a", range_end=b"z", sort_target=Range.VALUE, sort_order=Range.DESCEND)
    assert keys(store.range(by_value)) == [b"b", b"a", b"c"]
    by_version = Range(key=b"a", range_end=b"z", sort_target=Range.VERSION)  # order NONE: ascend
    assert keys(store.range(by_version)) == [b"a", b"c", b"b"]
    by_key = Range(key=b"a", range_end=b"z", sort_order=Range.DESCEND)
    assert keys(store.range(by_key)) == [b"c", b"b", b"a"]


def test_store_sort_applies_before_limit_and_filters_before_count(store: Store) -> None:
    """With a sort or a filter the whole range is read, then cut to limit; count is unfiltered."""
    for key in (b"a", b"b", b"c"):
        put(store, key)
    newest = store.range(
        Range(key=b"a", range_end=b"z", sort_target=Range.MOD, sort_order=Range.DESCEND, limit=1)
    )
    assert (keys(newest), newest.more) == ([b"c"], True)
    filtered = store.range(Range(key=b"a", range_end=b"z", min_mod_revision=3))
    assert (keys(filtered), filtered.count) == ([b"b", b"c"], 3)
    created = store.range(Range(key=b"a", range_end=b"z", max_create_revision=2))
    assert keys(created) == [b"a"]


def test_store_keys_only_drops_values(store: Store) -> None:
    """keys_only answers every field but the value."""
    put(store, b"k", b"value")
    kv = store.range(Range(key=b"k", keys_only=True)).kvs[0]
    assert (kv.key, kv.value, kv.version) == (b"k", b"", 1)


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (Range(key=b""), "etcdserver: key is not provided"),
        (Range(key=b"k", sort_order=7), "etcdserver: invalid sort option"),  # type: ignore[arg-type]  # no such order
        (Range(key=b"k", revision=9), "etcdserver: mvcc: required revision is a future revision"),
    ],
)
def test_store_refuses_bad_ranges(store: Store, request_: Range, message: str) -> None:
    """Bad range requests get etcd's message and status code."""
    error = refused(store.range, request_)
    assert error.message == message
    assert error.code in ("INVALID_ARGUMENT", "OUT_OF_RANGE")


def test_store_put_refusals(store: Store) -> None:
    """ignore_value needs the key; a value with it, or an unknown lease, is refused."""
    assert refused(store.put, Put(key=b"k", ignore_value=True)).message == (
        "etcdserver: key not found"
    )
    assert refused(store.put, Put(key=b"k", value=b"x", ignore_value=True)).message == (
        "etcdserver: value is provided"
    )
    error = refused(store.put, Put(key=b"k", lease=99))
    assert (error.code, error.message) == ("NOT_FOUND", "etcdserver: requested lease not found")
    assert store.revision == 1


def test_store_ignore_value_and_ignore_lease_keep_the_old_ones(store: Store) -> None:
    """ignore_value keeps the value, ignore_lease the lease, and the put still takes a revision."""
    lease = store.lease_grant(rpc_pb2.LeaseGrantRequest(TTL=10), now=0.0).ID
    put(store, b"k", b"old", lease=lease)
    store.put(Put(key=b"k", value=b"new", ignore_lease=True))
    store.put(Put(key=b"k", ignore_value=True, ignore_lease=True))
    kv = store.range(Range(key=b"k")).kvs[0]
    assert (kv.value, kv.lease, kv.version) == (b"new", lease, 3)
    store.put(Put(key=b"k", ignore_value=True))  # no lease given: the key leaves its lease
    assert store.range(Range(key=b"k")).kvs[0].lease == 0


# --- txn ------------------------------------------------------------------------------------


def op_put(key: bytes, value: bytes = b"v") -> RequestOp:
    return RequestOp(request_put=Put(key=key, value=value))


def op_delete(key: bytes, range_end: bytes = b"") -> RequestOp:
    return RequestOp(request_delete_range=Delete(key=key, range_end=range_end))


def op_get(key: bytes, **kw: object) -> RequestOp:
    return RequestOp(request_range=Range(key=key, **kw))  # type: ignore[arg-type]


def op_txn(*success: RequestOp, failure: tuple[RequestOp, ...] = ()) -> RequestOp:
    return RequestOp(request_txn=Txn(success=list(success), failure=list(failure)))


def test_store_txn_compares_see_the_state_before_it(store: Store) -> None:
    """A nested txn's compares see the state before the whole txn, not the outer puts."""
    inner = Txn(
        compare=[Cmp(key=b"k", target=Cmp.VERSION, result=Cmp.EQUAL, version=0)],
        success=[op_put(b"seen-empty")],
        failure=[op_put(b"seen-put")],
    )
    response = store.txn(Txn(success=[op_put(b"k"), RequestOp(request_txn=inner)]))
    assert response.succeeded
    assert response.responses[1].response_txn.succeeded
    assert store.range(Range(key=b"seen-empty")).count == 1


def test_store_txn_ops_share_one_revision_and_see_earlier_ops(store: Store) -> None:
    """All writes of a txn take one revision; a get after a put in it sees the put."""
    response = store.txn(Txn(success=[op_put(b"a"), op_get(b"a"), op_put(b"b")]))
    assert response.header.revision == 2
    assert response.responses[1].response_range.kvs[0].mod_revision == 2
    assert [kv.mod_revision for kv in store.range(Range(key=b"a", range_end=b"c")).kvs] == [2, 2]


def test_store_read_only_txn_takes_no_revision(store: Store) -> None:
    """A txn of gets, or of a delete of nothing, leaves the revision alone."""
    put(store, b"k")
    assert store.txn(Txn(success=[op_get(b"k")])).header.revision == 2
    assert store.txn(Txn(success=[op_delete(b"nothing")])).header.revision == 2


@pytest.mark.parametrize(
    "success",
    [
        [op_put(b"k"), op_put(b"k")],
        [op_put(b"k"), op_delete(b"k")],
        [op_delete(b"a", b"z"), op_put(b"k")],
        [op_put(b"k"), op_txn(op_put(b"k"))],
        [op_delete(b"k"), op_txn(op_put(b"k"))],
        [op_txn(op_put(b"k")), op_txn(op_put(b"k"))],
    ],
)
def test_store_txn_refuses_duplicate_keys(store: Store, success: list[RequestOp]) -> None:
    """A key put twice, or put and deleted, in one txn is refused (etcd's checkIntervals)."""
    error = refused(store.txn, Txn(success=success))
    assert error.message == "etcdserver: duplicate key given in txn request"


@pytest.mark.parametrize(
    "success",
    [
        [op_txn(op_put(b"k"), failure=(op_put(b"k"),))],  # then and else exclude each other
        [op_delete(b"k", b"\x00"), op_put(b"k")],  # etcd: a "\0" range end contains nothing
        [op_get(b"k"), op_put(b"k")],
    ],
)
def test_store_txn_allows_what_etcd_allows(store: Store, success: list[RequestOp]) -> None:
    """Puts in the two branches of a nested txn, or after a from-key delete, pass the check."""
    store.txn(Txn(success=success))


def test_store_txn_op_limit_counts_the_largest_list(store: Store) -> None:
    """128 ops in a branch pass; 129 are refused, with etcd's message."""
    store.txn(Txn(success=[op_put(b"k%d" % i) for i in range(128)]))
    error = refused(store.txn, Txn(failure=[op_get(b"k") for _ in range(129)]))
    assert error.message == "etcdserver: too many operations in txn request"


def test_store_txn_checks_only_the_branch_taken(store: Store) -> None:
    """A bad lease in the branch not taken is no error; in the branch taken, it is."""
    never = Cmp(key=b"k", target=Cmp.VERSION, result=Cmp.GREATER, version=5)
    with_lease = RequestOp(request_put=Put(key=b"k", lease=42))
    assert not store.txn(Txn(compare=[never], success=[with_lease])).succeeded
    error = refused(store.txn, Txn(compare=[never], failure=[with_lease]))
    assert error.message == "etcdserver: requested lease not found"


def test_store_txn_value_compare_on_a_missing_key_fails(store: Store) -> None:
    """Comparing the value of a missing key is false whatever the operator."""
    for result in (Cmp.EQUAL, Cmp.NOT_EQUAL, Cmp.GREATER, Cmp.LESS):
        compare = Cmp(key=b"gone", target=Cmp.VALUE, result=result, value=b"")
        assert not store.txn(Txn(compare=[compare])).succeeded


def test_store_txn_range_compare_needs_every_key(store: Store) -> None:
    """A compare over a range holds only if it holds for every key in it."""
    put(store, b"a", b"1")
    put(store, b"b", b"2")
    all_one = Cmp(key=b"a", range_end=b"c", target=Cmp.VALUE, result=Cmp.EQUAL, value=b"1")
    all_small = Cmp(key=b"a", range_end=b"c", target=Cmp.VALUE, result=Cmp.LESS, value=b"3")
    assert not store.txn(Txn(compare=[all_one])).succeeded
    assert store.txn(Txn(compare=[all_small])).succeeded


# --- compaction -----------------------------------------------------------------------------


def test_store_compaction_keeps_reads_at_the_compact_revision(store: Store) -> None:
    """After compacting at r, a read at r works and one before it is refused."""
    put(store, b"k", b"1")  # 2
    put(store, b"k", b"2")  # 3
    put(store, b"k", b"3")  # 4
    store.compact(rpc_pb2.CompactionRequest(revision=3))
    assert store.range(Range(key=b"k", revision=3)).kvs[0].value == b"2"
    error = refused(store.range, Range(key=b"k", revision=2))
    assert error.message == "etcdserver: mvcc: required revision has been compacted"
    again = refused(store.compact, rpc_pb2.CompactionRequest(revision=3))
    assert again.message == "etcdserver: mvcc: required revision has been compacted"
    future = refused(store.compact, rpc_pb2.CompactionRequest(revision=9))
    assert future.message == "etcdserver: mvcc: required revision is a future revision"


def test_store_compaction_forgets_deleted_keys(store: Store) -> None:
    """A key deleted at or before the compact revision leaves no trace in the index."""
    put(store, b"gone")
    store.delete_range(Delete(key=b"gone"))
    put(store, b"kept")
    store.compact(rpc_pb2.CompactionRequest(revision=store.revision))
    assert store.keyspace.key_count == 1


@given(
    values=st.lists(st.sampled_from([b"a", b"b", b""]), min_size=1, max_size=12),
    compact_at=st.integers(min_value=1, max_value=13),
)
@example(values=[b"a", b"", b"b"], compact_at=3)
def test_store_reads_after_compaction_match_reads_before(
    values: list[bytes], compact_at: int
) -> None:
    """Compaction changes no answer at or after the compact revision (b"" deletes)."""
    store = Store()
    for value in values:
        if value:
            put(store, b"k", value)
        else:
            store.delete_range(Delete(key=b"k"))
    compact_at = min(compact_at, store.revision)
    before = [
        store.range(Range(key=b"k", revision=r)) for r in range(compact_at, store.revision + 1)
    ]
    store.compact(rpc_pb2.CompactionRequest(revision=compact_at))
    after = [
        store.range(Range(key=b"k", revision=r)) for r in range(compact_at, store.revision + 1)
    ]
    assert before == after


@given(
    names=st.lists(st.sampled_from([b"a", b"a\x00", b"ab", b"b", b"\xff"]), max_size=8),
    end=st.sampled_from([b"\x00", b"b", b"\xff", b"\xff\xff"]),
    limit=st.integers(min_value=0, max_value=4),
)
@example(names=[b"a", b"b"], end=b"\x00", limit=1)
def test_store_ranges_from_cached_wire_form_match_built_ones(
    names: list[bytes], end: bytes, limit: int
) -> None:
    """Ranges parsed from cached wire bytes equal the ones built message by message."""
    store = Store()
    for index, name in enumerate(names):
        put(store, name, b"%d" % index)
    if names:
        store.delete_range(Delete(key=names[0]))
    fast = store.range(Range(key=b"a", range_end=end, limit=limit))
    # A filter that keeps everything takes the path that builds the message.
    built = store.range(Range(key=b"a", range_end=end, limit=limit, min_mod_revision=1))
    assert fast == built
