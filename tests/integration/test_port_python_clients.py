"""Behaviours from python-etcd3's and aetcd's test suites, ported to this API against real etcd.

Sources: kragniz/python-etcd3 `tests/test_etcd3.py` and martyanov/aetcd `tests/integration/`
(test_kv, test_watch, test_lease, test_lock, test_maintenance, test_cluster, test_auth). Their
calls map onto API.md's names: `get(key)` -> `get(key).kvs`, `get_prefix` -> `get(prefix=True)`,
`transaction` -> `txn`, `lease` -> `grant`, `refresh` -> `keep_alive_once`, `lock` ->
`concurrency.Mutex`, `watch_prefix` -> `watch(prefix=True)`, `members`/`status`/`hash` ->
`member_list`/`status`/`hash_kv`. Where their sleeps waited for time to pass, these tests wait
on a condition or on the API's own timeout. Tests that only exercised their mocks (gRPC stubs
replaced by MagicMock) are ported to real faults through the cluster's proxies instead.
"""

from __future__ import annotations

import io
import json
import random
import string
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from etcd_layers import (
    Client,
    Compare,
    EventType,
    Op,
    SortOrder,
    SortTarget,
    errors,
    namespace,
)
from etcd_layers.base import (
    CompareResult,
    CompareTarget,
    Event,
    GetOp,
    PutResponse,
    Watch,
    WatchResponse,
    prefix_end,
    to_bytes,
)
from etcd_layers.concurrency import Mutex, Session
from etcd_layers.testing import (
    EtcdBinaryNotFoundError,
    EtcdCluster,
    find_etcd_tool,
    generate_tls_files,
    requires_etcd,
    wait_until,
)
from etcd_layers.testing.plugin import EtcdClusterFactory

# Text as python-etcd3 generates it: any character but surrogates and control characters.
TEXT = st.text(st.characters(blacklist_categories=["Cs", "Cc"]), min_size=1, max_size=8)
HYPOTHESIS = settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],  # the prefix is reusable
)
MAX_RESPONSES = 20  # bound on responses read from a watch in one test


def _events(watch: Watch, count: int, timeout: float = 5.0) -> list[Event]:
    """Read at least `count` events from `watch`, within a bounded number of responses."""
    events: list[Event] = []
    for _ in range(MAX_RESPONSES):
        if len(events) >= count:
            return events
        events.extend(watch.next(timeout=timeout).events)
    raise AssertionError(f"only {len(events)} of {count} events in {MAX_RESPONSES} responses")


@pytest.fixture
def cluster_client(etcd_cluster: EtcdCluster) -> Iterator[Client]:
    """A client on every member of the module's 3-member cluster."""
    etcd_cluster.wait_healthy()  # a fault test before may have left an election running
    with Client(endpoints=etcd_cluster.endpoints, **etcd_cluster.client_options()) as cli:
        yield cli


# --- KV: get / put / delete (test_etcd3.py TestEtcd3, aetcd test_kv.py) ---------------------


def test_get_unknown_key_returns_no_kvs(etcd_client: Client, etcd_key_prefix: bytes) -> None:
    """A key that was never written reads as an empty response, not an error or None."""
    response = etcd_client.get(etcd_key_prefix + b"probably-invalid-key")
    assert (response.kvs, response.count) == ([], 0)


@HYPOTHESIS
@given(text=TEXT)
def test_get_returns_any_printable_value(
    etcd_client: Client, etcd_key_prefix: bytes, text: str
) -> None:
    """A str value of any printable text reads back as its UTF-8 bytes."""
    key = etcd_key_prefix + b"a_key"
    etcd_client.put(key, text)
    assert etcd_client.get(key).kvs[0].value == text.encode()


@HYPOTHESIS
@given(text=TEXT)
def test_get_finds_key_of_any_printable_text(
    etcd_client: Client, etcd_key_prefix: bytes, text: str
) -> None:
    """A str key of any printable text is found again, by str and by its UTF-8 bytes."""
    key = etcd_key_prefix.decode() + text
    etcd_client.put(key, "dootdoot")
    assert etcd_client.get(key).kvs[0].value == b"dootdoot"
    assert etcd_client.get(key.encode()).kvs[0].key == key.encode()


def test_get_response_header_carries_revision_even_when_empty(
    etcd_client: Client, etcd_key_prefix: bytes
) -> None:
    """Every read has a header with the cluster revision, also when nothing matches."""
    missing = etcd_key_prefix + b"gone/"
    for response in (
        etcd_client.get(missing + b"key1"),
        etcd_client.get(missing, prefix=True),
        etcd_client.get(missing + b"key1", range_end=missing + b"key3"),
    ):
        assert response.count == 0
        assert response.header.revision > 0
        assert response.header.cluster_id != 0


def test_put_response_has_cluster_revision(etcd_client: Client, etcd_key_prefix: bytes) -> None:
    """A put's header revision is the revision that put created."""
    response = etcd_client.put(etcd_key_prefix + b"put_1", "xxx")
    assert response.header.revision > 0
    assert etcd_client.get(etcd_key_prefix + b"put_1").kvs[0].mod_revision == (
        response.header.revision
    )


def test_put_prev_kv_returns_old_value(etcd_client: Client, etcd_key_prefix: bytes) -> None:
    """put(prev_kv=True) returns the value the key had before."""
    key = etcd_key_prefix + b"put_1"
    etcd_client.put(key, "old_value")
    previous = etcd_client.put(key, "new", prev_kv=True).prev_kv
    assert previous is not None
    assert previous.value == b"old_value"


def test_txn_put_if_not_exists_succeeds_only_once(
    etcd_client: Client, etcd_key_prefix: bytes
) -> None:
    """A put guarded by `create_revision == 0` succeeds while the key is absent, then fails."""
    key = etcd_key_prefix + b"put_1"

    def put_if_not_exists() -> bool:
        return etcd_client.txn([Compare.create_revision(key) == 0], [Op.put(key, "v")]).succeeded

    assert put_if_not_exists() is True
    assert put_if_not_exists() is False
    etcd_client.delete(key)
    assert put_if_not_exists() is True


def test_delete_reports_whether_the_key_existed(
    etcd_client: Client, etcd_key_prefix: bytes
) -> None:
    """`deleted` is 1 for an existing key, then 0, and 0 for a key never written."""
    key = etcd_key_prefix + b"delete_this"
    etcd_client.put(key, "delete pls")
    assert etcd_client.get(key).kvs[0].value == b"delete pls"
    assert etcd_client.delete(key).deleted == 1
    assert etcd_client.delete(key).deleted == 0
    assert etcd_client.delete(etcd_key_prefix + b"not_here_dude").deleted == 0
    assert etcd_client.get(key).kvs == []


def test_delete_response_has_cluster_revision(etcd_client: Client, etcd_key_prefix: bytes) -> None:
    """A delete of a missing key still answers with the current revision."""
    assert etcd_client.delete(etcd_key_prefix + b"delete_this").header.revision > 0


def test_delete_prev_kv_returns_deleted_pair(etcd_client: Client, etcd_key_prefix: bytes) -> None:
    """delete(prev_kv=True) returns the pairs it deleted."""
    key = etcd_key_prefix + b"delete_this"
    etcd_client.put(key, "old_value")
    response = etcd_client.delete(key, prev_kv=True)
    assert response.deleted == 1
    assert [(kv.key, kv.value) for kv in response.prev_kvs] == [(key, b"old_value")]


def test_delete_prefix_deletes_every_key_under_it(
    etcd_client: Client, etcd_key_prefix: bytes
) -> None:
    """delete(prefix=True) removes every key under the prefix and nothing beside it."""
    etcd_client.put(etcd_key_prefix + b"foo/1", "bar")
    etcd_client.put(etcd_key_prefix + b"foo/2", "baz")
    etcd_client.put(etcd_key_prefix + b"fop", "outside")
    assert etcd_client.delete(etcd_key_prefix + b"foo/", prefix=True).deleted == 2
    assert etcd_client.get(etcd_key_prefix + b"foo/", prefix=True).count == 0
    assert etcd_client.get(etcd_key_prefix + b"fop").count == 1


# --- KV: transactions ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stored", "expected"), [("dootdoot", b"success"), ("notdootdoot", b"failure")]
)
def test_txn_runs_branch_chosen_by_compare(
    etcd_client: Client, etcd_key_prefix: bytes, stored: str, expected: bytes
) -> None:
    """The success branch runs when the value compare holds, the failure branch otherwise."""
    key = etcd_key_prefix + b"txn"
    etcd_client.put(key, stored)
    response = etcd_client.txn(
        compare=[Compare.value(key) == "dootdoot"],
        success=[Op.put(key, "success")],
        failure=[Op.put(key, "failure")],
    )
    assert response.succeeded is (expected == b"success")
    assert etcd_client.get(key).kvs[0].value == expected


@pytest.mark.parametrize("ops", [["not_transaction_type"], 0])
def test_txn_refuses_what_is_not_a_list_of_ops(
    etcd_client: Client, etcd_key_prefix: bytes, ops: object
) -> None:
    """A branch that is not an iterable of Op raises TypeError, and the client stays usable."""
    with pytest.raises(TypeError):
        etcd_client.txn([], ops, [])  # type: ignore[arg-type]  # the wrong type on purpose
    assert etcd_client.put(etcd_key_prefix + b"after", "ok").header.revision > 0


def test_txn_nested_applies_inner_writes(etcd_client: Client, etcd_key_prefix: bytes) -> None:
    """A txn nested in a txn's success branch applies its own writes."""
    etcd_client.txn(
        compare=[],
        success=[
            Op.put(etcd_key_prefix + b"txn1", "1"),
            Op.txn(compare=[], success=[Op.put(etcd_key_prefix + b"txn2", "2")], failure=[]),
        ],
        failure=[],
    )
    assert etcd_client.get(etcd_key_prefix + b"txn1").kvs[0].value == b"1"
    assert etcd_client.get(etcd_key_prefix + b"txn2").kvs[0].value == b"2"


def test_txn_value_compare_over_prefix_needs_every_key_to_match(
    etcd_client: Client, etcd_key_prefix: bytes
) -> None:
    """A compare over a range holds only when it holds for every key in the range."""
    etcd_client.put(etcd_key_prefix + b"key1", "dootdoot")
    etcd_client.put(etcd_key_prefix + b"key2", "notdootdoot")
    compare = [Compare.value(etcd_key_prefix, prefix=True) == "dootdoot"]
    assert etcd_client.txn(compare=compare).succeeded is False
    etcd_client.put(etcd_key_prefix + b"key2", "dootdoot")
    assert etcd_client.txn(compare=compare).succeeded is True
    by_range_end = Compare.value(etcd_key_prefix, range_end=prefix_end(etcd_key_prefix))
    assert etcd_client.txn(compare=[by_range_end == "dootdoot"]).succeeded is True


@pytest.mark.parametrize(("stored", "replaced"), [("toot", True), ("boot", False)])
def test_txn_replace_swaps_only_the_expected_value(
    etcd_client: Client, etcd_key_prefix: bytes, stored: str, replaced: bool
) -> None:
    """python-etcd3's replace(): a put guarded by the old value changes it only if it matches."""
    key = etcd_key_prefix + b"thing"
    etcd_client.put(key, stored)
    response = etcd_client.txn([Compare.value(key) == "toot"], [Op.put(key, "doot")])
    assert response.succeeded is replaced
    assert etcd_client.get(key).kvs[0].value == (b"doot" if replaced else stored.encode())


def test_txn_response_carries_each_put_response(
    etcd_client: Client, etcd_key_prefix: bytes
) -> None:
    """A txn answers with one response per op, each with the txn's revision."""
    response = etcd_client.txn(
        success=[Op.put(etcd_key_prefix + b"0", "0"), Op.put(etcd_key_prefix + b"1", "1")]
    )
    assert len(response.responses) == 2
    for each in response.responses:
        assert isinstance(each, PutResponse)
        assert each.header.revision == response.header.revision


# --- KV: ranges --------------------------------------------------------------------------------


def _fill_ranges(cli: Client, prefix: bytes) -> None:
    for i in range(20):
        cli.put(prefix + b"range%d" % i, "i am a range")
    for i in range(5):
        cli.put(prefix + b"notrange%d" % i, "i am a not range")


def test_get_prefix_returns_only_keys_under_it(etcd_client: Client, etcd_key_prefix: bytes) -> None:
    """get(prefix=True) returns the 20 keys under the prefix and none of their neighbours."""
    _fill_ranges(etcd_client, etcd_key_prefix)
    response = etcd_client.get(etcd_key_prefix + b"range", prefix=True)
    assert response.count == len(response.kvs) == 20
    assert {kv.value for kv in response.kvs} == {b"i am a range"}


def test_get_prefix_keys_only_leaves_values_out(
    etcd_client: Client, etcd_key_prefix: bytes
) -> None:
    """keys_only returns every key under the prefix with an empty value."""
    _fill_ranges(etcd_client, etcd_key_prefix)
    kvs = etcd_client.get(etcd_key_prefix + b"range", prefix=True, keys_only=True).kvs
    assert len(kvs) == 20
    assert all(kv.key.startswith(etcd_key_prefix + b"range") and kv.value == b"" for kv in kvs)


def test_get_prefix_refuses_range_end(etcd_client: Client, etcd_key_prefix: bytes) -> None:
    """prefix=True with a range_end is refused with ValueError (python-etcd3: TypeError)."""
    with pytest.raises(ValueError, match="range_end"):
        etcd_client.get(etcd_key_prefix + b"a_prefix", prefix=True, range_end="end")


def test_get_range_is_half_open(etcd_client: Client, etcd_key_prefix: bytes) -> None:
    """get(a, range_end=p) returns the keys from a up to, not including, p."""
    for char in string.ascii_lowercase:
        value = "i am in range" if char < "p" else "i am not in range"
        etcd_client.put(etcd_key_prefix + char.encode(), value)
    kvs = etcd_client.get(etcd_key_prefix + b"a", range_end=etcd_key_prefix + b"p").kvs
    assert len(kvs) == 15
    assert {kv.value for kv in kvs} == {b"i am in range"}


def test_get_all_keys_of_empty_namespace_is_empty(
    etcd_client: Client, etcd_key_prefix: bytes
) -> None:
    """ "All keys" (key "" with prefix=True or from_key=True) of an empty namespace is empty."""
    tenant = namespace.wrap(etcd_client, etcd_key_prefix)
    assert tenant.get("", prefix=True).kvs == []
    assert tenant.get("", from_key=True).kvs == []


def test_get_all_keys_returns_every_key(etcd_client: Client, etcd_key_prefix: bytes) -> None:
    """ "All keys" returns every key written, values included, or keys only when asked."""
    tenant = namespace.wrap(etcd_client, etcd_key_prefix)
    for i in range(20):
        tenant.put(b"range%d" % i, "i am in all")
    for i in range(5):
        tenant.put(b"notrange%d" % i, "i am in all")
    everything = tenant.get("", prefix=True)
    assert everything.count == len(everything.kvs) == 25
    assert {kv.value for kv in everything.kvs} == {b"i am in all"}
    keys_only = tenant.get("", from_key=True, keys_only=True)
    assert [kv.key for kv in keys_only.kvs] == [kv.key for kv in everything.kvs]
    assert {kv.value for kv in keys_only.kvs} == {b""}
    # The same through the plain client: "" with prefix=True is the whole keyspace.
    assert etcd_client.get("", prefix=True, count_only=True).count >= 25


def test_get_count_only_returns_count_without_kvs(
    etcd_client: Client, etcd_key_prefix: bytes
) -> None:
    """count_only answers the number of keys and no key-value pairs."""
    for i in range(20):
        etcd_client.put(etcd_key_prefix + b"count%d" % i, "i am in all")
    response = etcd_client.get(etcd_key_prefix + b"count", prefix=True, count_only=True)
    assert (len(response.kvs), response.count) == (0, 20)


def test_get_limit_truncates_and_sets_more(etcd_client: Client, etcd_key_prefix: bytes) -> None:
    """A limit truncates kvs and sets `more`, while `count` stays the full count; 0 is no limit."""
    for i in range(20):
        etcd_client.put(etcd_key_prefix + b"limit%02d" % i, "i am in all")
    for limit in (0, 1, 7, 19, 20, 21):
        response = etcd_client.get(etcd_key_prefix + b"limit", prefix=True, limit=limit)
        assert response.count == 20
        expected = 20 if limit in (0, 20, 21) else limit
        assert len(response.kvs) == expected
        assert response.more is (expected < 20)


def test_get_revision_reads_the_store_as_it_was(
    etcd_client: Client, etcd_key_prefix: bytes
) -> None:
    """A get at the revision of the i-th put sees exactly the first i+1 keys."""
    revisions = [
        etcd_client.put(etcd_key_prefix + b"revision%02d" % i, "i am in all").header.revision
        for i in range(8)
    ]
    for i, revision in enumerate(revisions):
        response = etcd_client.get(etcd_key_prefix + b"revision", prefix=True, revision=revision)
        assert response.count == i + 1


def test_get_min_and_max_mod_revision_filter_by_last_change(
    etcd_client: Client, etcd_key_prefix: bytes
) -> None:
    """min_mod_revision keeps a key changed at or after it; max_mod_revision at or before it."""
    key = etcd_key_prefix + b"revision"
    revisions = [etcd_client.put(key, str(i)).header.revision for i in range(5)]
    for revision in revisions:
        assert len(etcd_client.get(key, min_mod_revision=revision).kvs) == 1
        expected = 1 if revision == revisions[-1] else 0
        assert len(etcd_client.get(key, max_mod_revision=revision).kvs) == expected


def test_get_sort_order_ascend_and_descend(etcd_client: Client, etcd_key_prefix: bytes) -> None:
    """SortOrder.ASCEND and DESCEND order a prefix's keys both ways."""
    for key, value in zip("abcde", "qwert", strict=True):
        etcd_client.put(etcd_key_prefix + key.encode(), value)

    def keys(order: SortOrder) -> str:
        kvs = etcd_client.get(etcd_key_prefix, prefix=True, sort_order=order).kvs
        return "".join(kv.key[len(etcd_key_prefix) :].decode() for kv in kvs)

    assert keys(SortOrder.ASCEND) == "abcde"
    assert keys(SortOrder.DESCEND) == "edcba"
    by_value = etcd_client.get(
        etcd_key_prefix, prefix=True, sort_target=SortTarget.VALUE, sort_order=SortOrder.ASCEND
    )
    assert [kv.value for kv in by_value.kvs] == sorted(b"qwert"[i : i + 1] for i in range(5))


@pytest.mark.parametrize("target", list(SortTarget))
def test_op_get_keeps_each_sort_target(target: SortTarget) -> None:
    """Every SortTarget is accepted and kept as etcd's value for it (python-etcd3 TestClient)."""
    op = Op.get("key", sort_target=target, sort_order=SortOrder.DESCEND)
    assert isinstance(op, GetOp)
    assert op.sort_target is target
    assert int(op.sort_target) == ["KEY", "VERSION", "CREATE", "MOD", "VALUE"].index(target.name)


@pytest.mark.parametrize(
    ("keyword", "value"),
    [("sort_target", "feelsbadman"), ("sort_order", "feelsbadman"), ("sort_target", 9)],
)
def test_get_refuses_unknown_sort_option(
    etcd_client: Client, etcd_key_prefix: bytes, keyword: str, value: object
) -> None:
    """An unknown sort option raises InvalidSortOptionError, a ValueError, before any I/O."""
    with pytest.raises(errors.InvalidSortOptionError) as caught:
        etcd_client.get(etcd_key_prefix, prefix=True, **{keyword: value})  # type: ignore[arg-type]
    assert isinstance(caught.value, ValueError)
    assert etcd_client.get(etcd_key_prefix + b"still-usable").count == 0


def test_compact_twice_raises_compacted_error(etcd_client: Client, etcd_key_prefix: bytes) -> None:
    """Compacting a revision that is already compacted raises CompactedError."""
    revision = etcd_client.put(etcd_key_prefix + b"foo", "x").header.revision
    etcd_client.compact(revision)
    with pytest.raises(errors.CompactedError):
        etcd_client.compact(revision)


@pytest.mark.parametrize(
    ("operand", "target"),
    [
        (Compare.version, CompareTarget.VERSION),
        (Compare.create_revision, CompareTarget.CREATE),
        (Compare.mod_revision, CompareTarget.MOD),
        (Compare.lease, CompareTarget.LEASE),
    ],
)
def test_compare_operators_build_each_result(operand: object, target: CompareTarget) -> None:
    """==, !=, < and > on an integer target build EQUAL, NOT_EQUAL, LESS and GREATER."""
    assert callable(operand)
    left = operand("key")
    built = [left == 1, left != 2, left < 91, left > 92]
    assert [each.result for each in built] == [
        CompareResult.EQUAL,
        CompareResult.NOT_EQUAL,
        CompareResult.LESS,
        CompareResult.GREATER,
    ]
    assert {each.target for each in built} == {target}
    assert [each.target_value for each in built] == [1, 2, 91, 92]


def test_compare_value_operators_encode_str() -> None:
    """Value compares accept str and compare its UTF-8 bytes, with all four operators."""
    left = Compare.value("key")
    built = [left == "b", left != "b", left < "b", left > "b"]
    assert [each.result for each in built] == [
        CompareResult.EQUAL,
        CompareResult.NOT_EQUAL,
        CompareResult.LESS,
        CompareResult.GREATER,
    ]
    assert {(each.target, each.target_value, each.key) for each in built} == {
        (CompareTarget.VALUE, b"b", b"key")
    }


# --- Watch (test_etcd3.py watch tests, aetcd test_watch.py) -----------------------------------


@pytest.mark.timeout(30)
def test_watch_cancel_inside_the_loop_ends_iteration(
    etcd_client: Client, etcd_key_prefix: bytes
) -> None:
    """cancel() from inside `for response in watch` ends the loop; later writes never arrive."""
    key = etcd_key_prefix + b"watch"
    canceled = threading.Event()

    def update_key() -> None:
        for value in "012":
            etcd_client.put(key, value)
        if canceled.wait(10):
            etcd_client.put(key, "3")  # written after cancel(): must not be delivered

    watch = etcd_client.watch(key)
    writer = threading.Thread(target=update_key, name="update_key")
    writer.start()
    seen: list[bytes] = []
    try:
        for count, response in enumerate(watch):
            assert count < MAX_RESPONSES
            for event in response.events:
                assert event.kv.key == key
                seen.append(event.kv.value)
            if len(seen) >= 3:
                watch.cancel()
                canceled.set()
    finally:
        canceled.set()
        writer.join(10)
    assert seen == [b"0", b"1", b"2"]
    with pytest.raises(errors.CanceledError):
        watch.next(timeout=1)


def test_watch_from_compacted_revision_raises_then_resumes_from_compact_revision(
    etcd_client: Client, etcd_key_prefix: bytes
) -> None:
    """A watch from before the compaction raises CompactedError naming the first revision kept,
    and a watch from that revision delivers the writes made since."""
    key = etcd_key_prefix + b"watchcompaction"
    first = etcd_client.put(key, "0").header.revision
    compacted = etcd_client.put(key, "1").header.revision
    etcd_client.compact(compacted)
    etcd_client.put(key, "2")
    with (
        etcd_client.watch(key, start_revision=first) as watch,
        pytest.raises(errors.CompactedError) as caught,
    ):
        _events(watch, 1)
    assert caught.value.compact_revision == compacted
    with etcd_client.watch(key, start_revision=caught.value.compact_revision) as watch:
        assert [event.kv.value for event in _events(watch, 2)] == [b"1", b"2"]


def test_watch_prefix_reports_only_keys_under_it(
    etcd_client: Client, etcd_key_prefix: bytes
) -> None:
    """watch(prefix=True) delivers writes to keys under the prefix, in order, and no others."""
    prefix = etcd_key_prefix + b"watch/prefix/"
    with etcd_client.watch(prefix, prefix=True) as watch:
        for i in range(3):
            etcd_client.put(etcd_key_prefix + b"watch/other%d" % i, "no")
            etcd_client.put(prefix + b"%d" % i, str(i))
        events = _events(watch, 3)
    assert [(event.kv.key, event.kv.value) for event in events] == [
        (prefix + b"%d" % i, str(i).encode()) for i in range(3)
    ]


def test_watch_filter_delete_yields_puts_with_prev_kv(
    etcd_client: Client, etcd_key_prefix: bytes
) -> None:
    """With filter_delete only puts arrive; prev_kv is None on creation, then the old pair."""
    key = etcd_key_prefix + b"key"
    with etcd_client.watch(key, filter_delete=True, prev_kv=True) as watch:
        etcd_client.put(key, "1")
        etcd_client.delete(key)
        etcd_client.put(key, "2")
        etcd_client.put(key, "3")
        events = _events(watch, 3)
    assert [event.type for event in events] == [EventType.PUT] * 3
    assert [event.kv.value for event in events] == [b"1", b"2", b"3"]
    assert events[0].prev_kv is None
    assert events[1].prev_kv is None  # deleted in between: nothing before it
    assert events[2].prev_kv is not None
    assert events[2].prev_kv.value == b"2"


def test_watch_filter_put_yields_only_deletes(etcd_client: Client, etcd_key_prefix: bytes) -> None:
    """With filter_put only delete events arrive."""
    key = etcd_key_prefix + b"key"
    with etcd_client.watch(key, filter_put=True) as watch:
        for value in ("1", "2"):
            etcd_client.put(key, value)
            etcd_client.delete(key)
        events = _events(watch, 2)
    assert [(event.type, event.kv.key) for event in events] == [(EventType.DELETE, key)] * 2


def test_watch_next_times_out_on_each_of_several_watches(
    etcd_client: Client, etcd_key_prefix: bytes
) -> None:
    """watch_prefix_once, three times in a row: next() on an idle watch raises TimeoutError."""
    for _ in range(3):
        with etcd_client.watch(etcd_key_prefix, prefix=True) as watch, pytest.raises(TimeoutError):
            watch.next(timeout=0.2)


def test_watch_start_revision_replays_history(etcd_client: Client, etcd_key_prefix: bytes) -> None:
    """A watch from a past revision replays the writes since then, header revision included."""
    key = etcd_key_prefix + b"watch"
    revision = etcd_client.put(key, "0").header.revision
    etcd_client.put(key, "1")
    with etcd_client.watch(key, start_revision=revision) as watch:
        events = _events(watch, 2)
    assert [(event.kv.key, event.kv.value) for event in events] == [(key, b"0"), (key, b"1")]


def test_watch_delivers_one_txn_as_one_response(
    etcd_client: Client, etcd_key_prefix: bytes
) -> None:
    """The two puts of one txn arrive in one response whose header revision is the txn's."""
    prefix = etcd_key_prefix + b"watch/prefix/"
    revision = etcd_client.txn(
        success=[Op.put(prefix + b"0", "0"), Op.put(prefix + b"1", "1")]
    ).header.revision
    with etcd_client.watch(prefix, prefix=True, start_revision=revision) as watch:
        response: WatchResponse = watch.next(timeout=5)
    assert response.header.revision == revision
    assert [(event.kv.key, event.kv.value) for event in response.events] == [
        (prefix + b"0", b"0"),
        (prefix + b"1", b"1"),
    ]


def test_watch_outlives_the_client_default_timeout(
    etcd_server: EtcdCluster, etcd_key_prefix: bytes
) -> None:
    """A client's default timeout bounds calls, not how long a watch stays open."""
    key = etcd_key_prefix + b"key"
    options = etcd_server.client_options()
    with Client(etcd_server.endpoints, timeout=0.3, **options) as cli, cli.watch(key) as watch:
        with pytest.raises(TimeoutError):
            watch.next(timeout=0.8)  # well past the default timeout: the watch lives on
        cli.put(key, "1")
        assert watch.next(timeout=5).events[0].kv.value == b"1"


def test_watch_refused_leaves_client_able_to_watch(
    etcd_client: Client, etcd_key_prefix: bytes
) -> None:
    """A watch that fails to start (an empty key) leaves the client able to start another."""
    with pytest.raises(errors.EmptyKeyError):
        etcd_client.watch("")
    key = etcd_key_prefix + b"foo"
    with etcd_client.watch(key) as watch:
        etcd_client.put(key, "42")
        assert watch.next(timeout=5).events[0].kv.value == b"42"


# --- Leases (test_etcd3.py lease tests, aetcd test_lease.py) ----------------------------------


def test_grant_returns_int_id_and_ttl(etcd_client: Client) -> None:
    """grant() answers the new lease's id and its TTL as ints."""
    lease = etcd_client.grant(1)
    assert isinstance(lease.id, int)
    assert isinstance(lease.ttl, int)
    assert lease.id > 0
    assert lease.ttl >= 1
    etcd_client.revoke(lease.id)


def test_revoke_deletes_attached_keys(etcd_client: Client, etcd_key_prefix: bytes) -> None:
    """Revoking a lease ends it and deletes the keys attached to it."""
    lease = etcd_client.grant(30).id
    etcd_client.put(etcd_key_prefix + b"key", "value", lease=lease)
    etcd_client.revoke(lease)
    assert etcd_client.get(etcd_key_prefix + b"key").kvs == []
    assert etcd_client.time_to_live(lease).ttl == -1


def test_time_to_live_lists_attached_keys(etcd_client: Client, etcd_key_prefix: bytes) -> None:
    """A new lease has no keys; a put with the lease attaches its key."""
    lease = etcd_client.grant(30).id
    assert etcd_client.time_to_live(lease, keys=True).keys == []
    etcd_client.put(etcd_key_prefix + b"lease_test", "this is a lease", lease=lease)
    assert etcd_client.time_to_live(lease, keys=True).keys == [etcd_key_prefix + b"lease_test"]
    etcd_client.revoke(lease)


def test_lease_expiry_deletes_attached_key(etcd_client: Client, etcd_key_prefix: bytes) -> None:
    """A lease that is not renewed expires after its TTL and takes its key with it."""
    key = etcd_key_prefix + b"lease_test_expire"
    lease = etcd_client.grant(1).id
    etcd_client.put(key, "this is a lease", lease=lease)
    status = etcd_client.time_to_live(lease, keys=True)
    assert status.keys == [key]
    assert 0 <= status.ttl <= status.granted_ttl
    with etcd_client.watch(key, filter_put=True) as watch:
        deleted = watch.next(timeout=10).events  # the expiry is a delete event
    assert [(event.type, event.kv.key) for event in deleted] == [(EventType.DELETE, key)]
    assert etcd_client.get(key).kvs == []


def test_put_with_grant_response_as_lease_names_its_id(
    etcd_client: Client, etcd_key_prefix: bytes
) -> None:
    """python-etcd3 takes `lease=<Lease>`; here that is a TypeError that points at `.id`."""
    granted = etcd_client.grant(5)
    with pytest.raises(
        TypeError, match=r"lease must be int, not LeaseGrantResponse \(pass its \.id\)"
    ):
        etcd_client.put(etcd_key_prefix + b"key", "v", lease=granted)  # type: ignore[arg-type]
    etcd_client.put(etcd_key_prefix + b"key", "v", lease=granted.id)
    assert etcd_client.get(etcd_key_prefix + b"key").kvs[0].lease == granted.id
    etcd_client.revoke(granted.id)


def test_grant_with_existing_id_raises_lease_exists(etcd_client: Client) -> None:
    """Granting a lease id already in use raises LeaseExistsError."""
    lease_id = random.getrandbits(62) + 1  # leases live on in the shared server: pick a fresh id
    assert etcd_client.grant(10, lease_id=lease_id).id == lease_id
    try:
        with pytest.raises(errors.LeaseExistsError):
            etcd_client.grant(15, lease_id=lease_id)
    finally:
        etcd_client.revoke(lease_id)


def test_keep_alive_once_restores_full_ttl(etcd_client: Client) -> None:
    """A refresh (keep_alive_once) sets a lease's remaining TTL back to its granted TTL."""
    lease = etcd_client.grant(4).id
    wait_until(lambda: etcd_client.time_to_live(lease).ttl <= 2, timeout=5)
    refreshed = etcd_client.keep_alive_once(lease)
    assert (refreshed.id, refreshed.ttl) == (lease, 4)
    assert etcd_client.time_to_live(lease).ttl >= 3
    etcd_client.revoke(lease)


# --- Locks (test_etcd3.py lock tests, aetcd test_lock.py) -------------------------------------


def test_mutex_lock_creates_key_and_excludes_other_sessions(
    etcd_client: Client, etcd_key_prefix: bytes
) -> None:
    """A held lock has its key in etcd; another session can neither try_lock nor lock it."""
    name = etcd_key_prefix + b"lock-1"
    with Session(etcd_client, ttl=10) as mine, Session(etcd_client, ttl=10) as other:
        lock = Mutex(mine, name)
        lock.lock()
        assert etcd_client.get(lock.key).count == 1
        rival = Mutex(other, name)
        assert rival.try_lock() is False
        with pytest.raises(errors.DeadlineExceededError, match=r"not acquired within 0\.3s"):
            rival.lock(timeout=0.3)
        assert lock.is_owner() is True
        assert etcd_client.get(name, prefix=True).count == 1  # the failed waiter withdrew


def test_mutex_unlock_deletes_key_and_allows_relock(
    etcd_client: Client, etcd_key_prefix: bytes
) -> None:
    """unlock() deletes the lock's key, and the lock can be taken again afterwards."""
    with Session(etcd_client, ttl=10) as session:
        lock = Mutex(session, etcd_key_prefix + b"lock-2")
        lock.lock()
        assert etcd_client.get(lock.key).count == 1
        lock.unlock()
        assert etcd_client.get(lock.key).count == 0
        lock.lock()
        lock.unlock()
        lock.lock(timeout=None)
        assert lock.is_owner() is True


def test_mutex_key_goes_when_session_lease_expires(
    etcd_client: Client, etcd_key_prefix: bytes
) -> None:
    """A lock whose session stops renewing loses its key once the lease's TTL runs out."""
    session = Session(etcd_client, ttl=1)
    lock = Mutex(session, etcd_key_prefix + b"lock-3")
    lock.lock()
    assert etcd_client.get(lock.key).count == 1
    session.orphan()  # stop renewing, as a crashed holder would
    wait_until(lambda: etcd_client.get(lock.key).count == 0, timeout=10)
    assert lock.is_owner() is False


def test_mutex_is_kept_beyond_its_ttl_while_session_renews(
    etcd_client: Client, etcd_key_prefix: bytes
) -> None:
    """A live session renews its lease, so the lock outlives several TTLs."""
    with Session(etcd_client, ttl=1) as session:
        lock = Mutex(session, etcd_key_prefix + b"lock-4")
        lock.lock()
        with etcd_client.watch(lock.key) as watch, pytest.raises(TimeoutError):
            watch.next(timeout=2.5)  # no delete (nor any change) in 2.5 TTLs
        assert etcd_client.get(lock.key).count == 1
        assert lock.is_owner() is True


def test_mutex_is_owner_follows_the_holder(etcd_client: Client, etcd_key_prefix: bytes) -> None:
    """is_owner() is False before locking, True while held, False after another takes over."""
    name = etcd_key_prefix + b"lock-5"
    with Session(etcd_client, ttl=10) as first, Session(etcd_client, ttl=10) as second:
        lock1 = Mutex(first, name)
        assert lock1.is_owner() is False
        lock2 = Mutex(second, name)
        lock2.lock()
        assert lock2.is_owner() is True
        lock2.unlock()
        lock1.lock()
        assert lock1.is_owner() is True
        assert lock2.is_owner() is False


def test_mutex_context_manager_releases_on_exit(
    etcd_client: Client, etcd_key_prefix: bytes
) -> None:
    """`with Mutex(...)` holds the lock inside the block and releases it on exit."""
    with Session(etcd_client, ttl=10) as session:
        with Mutex(session, etcd_key_prefix + b"lock-6") as lock:
            assert lock.is_owner() is True
        assert lock.is_owner() is False
        assert etcd_client.get(lock.key).count == 0


def test_mutex_passes_to_waiter_when_holder_lease_expires(
    etcd_client: Client, etcd_key_prefix: bytes
) -> None:
    """A waiter gets the lock once the holder's unrenewed lease expires."""
    name = etcd_key_prefix + b"lock-7"
    holder = Session(etcd_client, ttl=1)
    with Session(etcd_client, ttl=10) as waiter:
        lock1 = Mutex(holder, name)
        lock1.lock()
        holder.orphan()
        lock2 = Mutex(waiter, name)
        lock2.lock(timeout=10)
        assert lock2.is_owner() is True
        assert lock1.is_owner() is False


def test_mutex_waiter_acquires_when_holder_unlocks(
    etcd_client: Client, etcd_key_prefix: bytes
) -> None:
    """A waiter blocked in lock() acquires as soon as the holder unlocks from another thread."""
    name = etcd_key_prefix + b"lock-10"
    with Session(etcd_client, ttl=10) as first, Session(etcd_client, ttl=10) as second:
        lock1 = Mutex(first, name)
        lock1.lock()
        lock2 = Mutex(second, name)
        acquired = threading.Event()

        def wait_for_lock() -> None:
            lock2.lock(timeout=10)
            acquired.set()

        waiter = threading.Thread(target=wait_for_lock, name="lock-waiter")
        waiter.start()
        try:
            # The waiter queues its key behind ours before it watches.
            wait_until(lambda: etcd_client.get(name, prefix=True).count == 2, timeout=5)
            assert not acquired.is_set()
            lock1.unlock()
            assert acquired.wait(5)
        finally:
            waiter.join(10)
        assert lock2.is_owner() is True


# --- Cluster and maintenance (test_etcd3.py, aetcd test_cluster.py / test_maintenance.py) ----


def test_member_list_describes_every_member(
    cluster_client: Client, etcd_cluster: EtcdCluster
) -> None:
    """member_list() names the three members with their ids and http:// URLs."""
    members = cluster_client.member_list().members
    assert len(members) == 3
    assert sorted(member.name for member in members) == sorted(
        member.name for member in etcd_cluster.members
    )
    for member in members:
        assert isinstance(member.id, int)
        assert member.id > 0
        assert member.peer_urls
        assert all(url.startswith("http://") for url in member.peer_urls)
        assert all(url.startswith("http://") for url in member.client_urls)
        assert member.is_learner is False


def test_status_leader_is_one_of_the_members(
    cluster_client: Client, etcd_cluster: EtcdCluster
) -> None:
    """Every member's status names the same leader, which is in the member list."""
    ids = {member.id for member in cluster_client.member_list().members}
    leaders = {cluster_client.status(member.endpoint).leader for member in etcd_cluster.members}
    assert len(leaders) == 1
    assert leaders <= ids


def test_hash_kv_agrees_across_members(cluster_client: Client, etcd_cluster: EtcdCluster) -> None:
    """Every member hashes its store to the same value at the same revision."""
    revision = cluster_client.put("/port/hash", "x").header.revision

    def hashes() -> set[int]:
        return {
            cluster_client.hash_kv(member.endpoint, revision).hash
            for member in etcd_cluster.members
        }

    # A follower that has not applied `revision` yet answers FutureRevisionError.
    agreed = wait_until(hashes, timeout=5, ignore=(errors.FutureRevisionError,))
    assert len(agreed) == 1
    assert isinstance(next(iter(agreed)), int)


def test_snapshot_file_passes_etcdutl_status(etcd_client: Client, tmp_path: Path) -> None:
    """A snapshot saved to a file object is a database `etcdutl snapshot status` reads."""
    path = tmp_path / "snapshot.db"
    with path.open("wb") as file:
        written = etcd_client.snapshot(file)
    assert written.size == path.stat().st_size > 0
    try:
        tool = find_etcd_tool("etcdutl")
    except EtcdBinaryNotFoundError:  # etcd 3.4: `etcdctl snapshot status` did the same
        tool = find_etcd_tool("etcdctl")
    result = subprocess.run(
        [tool, "snapshot", "status", str(path), "-w", "json"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["totalKey"] > 0


def test_snapshot_into_memory_buffer(etcd_client: Client) -> None:
    """A snapshot can be streamed into any binary file object, such as BytesIO."""
    buffer = io.BytesIO()
    written = etcd_client.snapshot(buffer)
    assert written.size == len(buffer.getvalue()) > 32
    assert len(written.sha256) == 32


def test_alarm_list_and_disarm_on_a_healthy_cluster(cluster_client: Client) -> None:
    """A healthy cluster lists no alarm, and disarming every alarm deactivates none."""
    assert cluster_client.alarm_list().alarms == []
    assert cluster_client.alarm_disarm().alarms == []


@requires_etcd(3, 5, reason="etcd 3.4 leaves the AlarmResponse header empty")
def test_alarm_disarm_of_nothing_answers_with_a_current_header(cluster_client: Client) -> None:
    """Disarming when no alarm is raised still answers with the cluster's header."""
    assert cluster_client.alarm_disarm().header.revision > 0


# --- Failures, ported from mocked gRPC errors to real faults ---------------------------------


def test_get_on_black_holed_member_raises_deadline_exceeded(
    etcd_cluster: EtcdCluster, etcd_key_prefix: bytes
) -> None:
    """ConnectionTimeoutError's port: a member that stops answering fails the call at its
    deadline with DeadlineExceededError, also a builtin TimeoutError."""
    member = etcd_cluster.members[0]
    with Client([member.endpoint], **etcd_cluster.client_options()) as cli:
        cli.get(etcd_key_prefix + b"foo")
        member.client_proxy.blackhole()
        try:
            with pytest.raises(errors.DeadlineExceededError) as caught:
                cli.get(etcd_key_prefix + b"foo", timeout=0.5)
            assert isinstance(caught.value, TimeoutError)
        finally:
            member.client_proxy.unblackhole()
        assert wait_until(
            lambda: cli.get(etcd_key_prefix + b"foo", timeout=1).header.revision,
            timeout=10,
            ignore=(errors.UnavailableError, errors.DeadlineExceededError),
        )


def test_watch_not_confirmed_in_time_raises_deadline_exceeded(
    etcd_cluster: EtcdCluster, etcd_key_prefix: bytes
) -> None:
    """test_watch_timeout_on_establishment: a watch the server does not confirm within its
    timeout raises DeadlineExceededError, and a later watch works once the member answers."""
    member = etcd_cluster.members[1]
    key = etcd_key_prefix + b"foo"
    with Client([member.endpoint], **etcd_cluster.client_options()) as cli:
        cli.get(key)
        member.client_proxy.blackhole()
        try:
            with pytest.raises(errors.DeadlineExceededError):
                cli.watch(key, timeout=0.5)
        finally:
            member.client_proxy.unblackhole()
        watch = wait_until(
            lambda: cli.watch(key, timeout=1),
            timeout=10,
            ignore=(errors.DeadlineExceededError, errors.UnavailableError),
        )
        with watch:
            cli.put(key, "42", timeout=5)
            assert _events(watch, 1)[0].kv.value == b"42"


def test_client_with_no_reachable_endpoint_raises_unavailable() -> None:
    """ConnectionFailedError's port: no endpoint answering makes Client() raise UnavailableError."""
    with pytest.raises(errors.UnavailableError):
        Client(["127.0.0.1:1"], dial_timeout=0.3)


def test_get_fails_over_to_another_endpoint(
    etcd_cluster: EtcdCluster, cluster_client: Client, etcd_key_prefix: bytes
) -> None:
    """TestFailoverClient.test_endpoint_offline: with one member cut off, reads still succeed."""
    key = etcd_key_prefix + b"foo"
    cluster_client.put(key, "bar")
    member = etcd_cluster.members[0]
    member.client_proxy.blackhole()
    member.client_proxy.drop_connections()
    try:
        for _ in range(6):  # enough to land on every endpoint with round-robin balancing
            assert cluster_client.get(key, timeout=5).kvs[0].value == b"bar"
    finally:
        member.client_proxy.unblackhole()


def test_watch_survives_dropped_connections(
    etcd_cluster: EtcdCluster, cluster_client: Client, etcd_key_prefix: bytes
) -> None:
    """TestFailoverClient.test_failover_during_watch: a watch whose connection drops resumes
    and delivers the next write exactly once."""
    key = etcd_key_prefix + b"foo"
    with cluster_client.watch(key) as watch:
        cluster_client.put(key, "before")
        assert watch.next(timeout=5).events[0].kv.value == b"before"
        for member in etcd_cluster.members:
            member.client_proxy.drop_connections()
        # Written by another client: a put on a connection just cut may have reached the
        # server, so the watching client would rightly refuse to re-send it (API.md's rule).
        with Client(etcd_cluster.endpoints, **etcd_cluster.client_options()) as writer:
            for _ in etcd_cluster.members:  # reads (retried) settle a connection per member
                writer.get(key, timeout=10)
            writer.put(key, "after", timeout=10)
        assert [event.kv.value for event in _events(watch, 1, timeout=10)] == [b"after"]
        with pytest.raises(TimeoutError):
            watch.next(timeout=0.3)  # no duplicate


def test_serializable_get_answers_without_quorum(
    etcd_cluster: EtcdCluster, etcd_key_prefix: bytes
) -> None:
    """_out_quorum: a member cut off from both peers still serves serializable reads of what it
    applied, while a linearizable read cannot complete."""
    key = etcd_key_prefix + b"key"
    alone = etcd_cluster.members[0]
    with Client([alone.endpoint], **etcd_cluster.client_options()) as cli:
        cli.put(key, "value")
        wait_until(lambda: cli.get(key, serializable=True).count == 1, timeout=5)
        etcd_cluster.isolate(alone)
        try:
            for _ in range(3):
                assert cli.get(key, serializable=True, timeout=2).kvs[0].value == b"value"
                assert cli.get(key, prefix=True, serializable=True, keys_only=True).count == 1
            with pytest.raises((errors.DeadlineExceededError, errors.UnavailableError)):
                cli.get(key, timeout=1.5)
        finally:
            etcd_cluster.heal()
    etcd_cluster.wait_healthy()


# --- Auth and TLS arguments (TestClient) -----------------------------------------------------


def test_client_logs_in_with_username_and_password(
    etcd_cluster_factory: EtcdClusterFactory,
) -> None:
    """With auth enabled, a client with the root password works and a wrong one is refused."""
    cluster = etcd_cluster_factory(1)
    with Client(cluster.endpoints, **cluster.client_options()) as admin:
        admin.user_add("root", "pwd")
        admin.user_grant_role("root", "root")
        admin.auth_enable()
    with Client(cluster.endpoints, username="root", password="pwd") as root:
        assert root.get("probably-invalid-key").count == 0
        assert root.put("key", "value").header.revision > 0
        with pytest.raises(errors.AuthFailedError):
            Client(cluster.endpoints, username="root", password="wrong")
        root.auth_disable()


@pytest.mark.parametrize("credentials", [{"username": "usr"}, {"password": "pwd"}])
def test_client_refuses_username_or_password_alone(credentials: dict[str, str]) -> None:
    """A user name without a password, or a password without a user, is a ValueError."""
    with pytest.raises(ValueError, match="username and password"):
        Client(["127.0.0.1:1"], dial_timeout=0.3, **credentials)  # type: ignore[arg-type]


@pytest.mark.parametrize("given", ["cert", "key"])
def test_client_refuses_cert_or_key_alone(tmp_path: Path, given: str) -> None:
    """A client certificate without its key, or a key without its certificate, is a ValueError
    raised before connecting (gRPC itself would abort the process)."""
    files = generate_tls_files(tmp_path)
    paths = {"cert": files.client_cert, "key": files.client_key}
    with pytest.raises(ValueError, match="cert and key"):
        Client(
            ["127.0.0.1:1"],
            dial_timeout=0.3,
            ca_cert=files.ca_cert,
            **{given: paths[given]},  # type: ignore[arg-type]
        )


def test_client_refuses_certificate_file_that_is_not_pem(tmp_path: Path) -> None:
    """A CA file that is not PEM is named in a ValueError instead of failing every handshake."""
    garbage = tmp_path / "ca.crt"
    garbage.write_bytes(b"not a certificate")
    with pytest.raises(ValueError, match="ca_cert"):
        Client(["127.0.0.1:1"], dial_timeout=0.3, ca_cert=garbage)


# --- Utilities (TestUtils) -------------------------------------------------------------------


def test_prefix_end_increments_the_last_byte() -> None:
    """prefix_end(b"foo") is b"fop"; trailing 0xff bytes are cut, not carried."""
    assert prefix_end(b"foo") == b"fop"
    # python-etcd3 answers b"ac\xff" here, a range that admits b"ac" itself; API.md truncates.
    assert prefix_end(b"ab\xff") == b"ac"
    assert prefix_end(b"a\xff\xff\xff\xff\xff") == b"b"


def test_to_bytes_encodes_str_as_utf8() -> None:
    """to_bytes keeps bytes and encodes str as UTF-8."""
    assert to_bytes(b"doot", name="key") == b"doot"
    assert to_bytes("doot", name="key") == b"doot"
    assert to_bytes("ключ", name="key") == "ключ".encode()
    with pytest.raises(TypeError, match="key must be str or bytes"):
        to_bytes(1, name="key")
