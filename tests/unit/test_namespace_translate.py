"""The namespace's pure translation core: ranges, ops, comparisons and responses."""

from __future__ import annotations

import dataclasses
import pickle
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from etcd_layers import Compare, Op, SortOrder, SortTarget
from etcd_layers.base import (
    KEYSPACE_END,
    CompareResult,
    CompareTarget,
    DeleteOp,
    DeleteResponse,
    Event,
    EventType,
    GetOp,
    GetResponse,
    KeyValue,
    LeaseTimeToLiveResponse,
    PutOp,
    PutResponse,
    Response,
    ResponseHeader,
    TxnOp,
    TxnResponse,
    WatchResponse,
    prefix_end,
)
from etcd_layers.namespace._translate import (
    prefix_compare,
    prefix_op,
    prefix_range,
    unprefix_keys,
    unprefix_kvs,
    unprefix_response,
    unprefix_time_to_live,
    unprefix_watch_response,
)

EDGE = st.lists(st.sampled_from(b"\x00\x01a\xfe\xff"), max_size=4).map(bytes)
HEADER = ResponseHeader(cluster_id=1, member_id=2, revision=3, raft_term=4)


def in_range(key: bytes, begin: bytes, end: bytes) -> bool:
    """Whether `key` falls in an Op's resolved [begin, end), as etcd reads it."""
    if not end:
        return key == begin
    if end == KEYSPACE_END:
        return key >= begin
    return begin <= key < end


@st.composite
def user_ranges(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """A (key, range_end) as Op.get resolves it from every way of naming keys."""
    key = draw(EDGE)
    mode = draw(st.sampled_from(["single", "prefix", "from_key", "range"]))
    if mode == "single":
        key = key or b"k"
        op = Op.get(key)
    elif mode == "prefix":
        op = Op.get(key, prefix=True)
    elif mode == "from_key":
        op = Op.get(key, from_key=True)
    else:
        op = Op.get(key or b"k", range_end=draw(EDGE.filter(bool)))
    return op.key, op.range_end


# --- ranges -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "key", "range_end", "expected"),
    [
        (b"a/", b"k", b"", (b"a/k", b"")),  # one key
        (b"a/", b"k", b"l", (b"a/k", b"a/l")),  # prefix=True on b"k"
        (b"a/", b"k", KEYSPACE_END, (b"a/k", b"a0")),  # from_key: up to the namespace's end
        (b"a/", KEYSPACE_END, KEYSPACE_END, (b"a/\x00", b"a0")),  # every key
        (b"a/", b"\xff", KEYSPACE_END, (b"a/\xff", b"a0")),  # prefix=True on b"\xff"
        (b"a\xff", KEYSPACE_END, KEYSPACE_END, (b"a\xff\x00", b"b")),  # no carry into b"b\x00"
        (b"a\xff\xff", b"k", KEYSPACE_END, (b"a\xff\xffk", b"b")),
        (b"\xff", KEYSPACE_END, KEYSPACE_END, (b"\xff\x00", KEYSPACE_END)),  # no end at all
        (b"\xff\xff", b"k", b"", (b"\xff\xffk", b"")),
        (b"\x00", b"\x00", b"\x01", (b"\x00\x00", b"\x00\x01")),
        ("é/".encode(), b"\xc3", b"\xc4", ("é/".encode() + b"\xc3", "é/".encode() + b"\xc4")),
    ],
)
def test_prefix_range_table(
    prefix: bytes, key: bytes, range_end: bytes, expected: tuple[bytes, bytes]
) -> None:
    """prefix_range maps single keys, ranges and "to the end" onto the namespace."""
    assert prefix_range(prefix, key, range_end) == expected


@given(prefix=EDGE.filter(bool), server_key=EDGE)
@example(prefix=b"a\xff", server_key=b"b")
@example(prefix=b"a\xff", server_key=b"b\x00")
@example(prefix=b"\xff", server_key=b"\xff\xff")
def test_prefix_range_all_keys_stays_inside_the_prefix(prefix: bytes, server_key: bytes) -> None:
    """No key outside the namespace falls in its translated all-keys range."""
    begin, end = prefix_range(prefix, KEYSPACE_END, KEYSPACE_END)
    if in_range(server_key, begin, end):
        assert server_key.startswith(prefix)


@given(prefix=EDGE.filter(bool), user=user_ranges(), server_key=EDGE)
@example(prefix=b"a\xff", user=(b"\xff", KEYSPACE_END), server_key=b"b")
@example(prefix=b"a", user=(b"\xff", KEYSPACE_END), server_key=b"b")
@example(prefix=b"a", user=(b"a\xff", b"b"), server_key=b"aa\xff\x00")
def test_prefix_range_selects_exactly_the_translated_keys(
    prefix: bytes, user: tuple[bytes, bytes], server_key: bytes
) -> None:
    """A server key is in the translated range iff it is prefix + a key of the user's range."""
    translated = prefix_range(prefix, *user)
    expected = server_key.startswith(prefix) and in_range(server_key[len(prefix) :], *user)
    assert in_range(server_key, *translated) == expected


@given(outer=EDGE.filter(bool), inner=EDGE.filter(bool), user=user_ranges())
@example(outer=b"b/", inner=b"\xff", user=(KEYSPACE_END, KEYSPACE_END))
@example(outer=b"a\xff", inner=b"\xff\xff", user=(b"k", KEYSPACE_END))
def test_prefix_range_composes(outer: bytes, inner: bytes, user: tuple[bytes, bytes]) -> None:
    """Translating through `inner` and then `outer` is translating through outer + inner."""
    once = prefix_range(outer + inner, *user)
    twice = prefix_range(outer, *prefix_range(inner, *user))
    assert twice == once


# --- ops and comparisons ------------------------------------------------------------------


def test_prefix_op_get_of_all_keys_ends_at_the_namespace_end() -> None:
    """Op.get("", prefix=True) reads the namespace, not the rest of the keyspace."""
    op = prefix_op(b"a/", Op.get("", prefix=True, limit=3, keys_only=True))
    assert (op.key, op.range_end) == (b"a/\x00", b"a0")
    assert (op.limit, op.keys_only) == (3, True)


def test_prefix_op_from_key_ends_at_the_namespace_end() -> None:
    """from_key means "up to the end of the namespace"."""
    op = prefix_op(b"a/", Op.delete("k", from_key=True, prev_kv=True))
    assert (op.key, op.range_end, op.prev_kv) == (b"a/k", b"a0", True)


def test_prefix_op_explicit_keyspace_end_is_the_namespace_end() -> None:
    """A range_end of b"\\x00" given explicitly means the namespace's end too."""
    op = prefix_op(b"a\xff", Op.get("k", range_end=b"\x00"))
    assert (op.key, op.range_end) == (b"a\xffk", b"b")


def test_prefix_op_put_keeps_every_other_field() -> None:
    """A put moves its key and keeps value, lease and flags."""
    original = Op.put("k", b"\xff\x00", lease=7, prev_kv=True)
    op = prefix_op(b"t/", original)
    assert op == dataclasses.replace(original, key=b"t/k")


def test_prefix_op_translates_nested_txns_and_comparisons() -> None:
    """Every compare and op of a txn, at any depth, is moved into the namespace."""
    inner = Op.txn(
        [Compare.value("x", prefix=True) == b"v"],
        [Op.delete("d", range_end="e")],
        [Op.get("", from_key=True)],
    )
    original = Op.txn(
        [Compare.version("k") > 0, Compare.mod_revision("a", range_end="c") < 9],
        [Op.put("k", "v"), inner],
        [Op.get("g")],
    )
    op = prefix_op(b"p/", original)
    assert [(c.key, c.range_end) for c in op.compare] == [(b"p/k", b""), (b"p/a", b"p/c")]
    put, nested = op.success
    assert isinstance(put, PutOp)
    assert put.key == b"p/k"
    assert isinstance(nested, TxnOp)
    assert (nested.compare[0].key, nested.compare[0].range_end) == (b"p/x", b"p/y")
    delete = nested.success[0]
    assert isinstance(delete, DeleteOp)
    assert (delete.key, delete.range_end) == (b"p/d", b"p/e")
    get = nested.failure[0]
    assert isinstance(get, GetOp)
    assert (get.key, get.range_end) == (b"p/\x00", b"p0")
    failure = op.failure[0]
    assert isinstance(failure, GetOp)
    assert failure.key == b"p/g"


def test_prefix_op_leaves_the_original_untouched() -> None:
    """The translated txn is a new value; the one given still holds the user's keys."""
    original = Op.txn([Compare.value("k") == b"v"], [Op.put("k", "v")], [])
    before = dataclasses.replace(original)
    prefix_op(b"p/", original)
    assert original == before
    assert original.compare[0].key == b"k"


def test_prefix_compare_keeps_target_result_and_value() -> None:
    """Only the key and range end of a comparison change."""
    original = Compare.lease("k", prefix=True) == 5
    compare = prefix_compare(b"p/", original)
    assert compare == dataclasses.replace(original, key=b"p/k", range_end=b"p/l")


def test_op_builders_return_a_new_op_every_call() -> None:
    """Op.get/put/delete build a new Op on every call: no two calls share one."""
    assert Op.get("k") is not Op.get("k")
    assert Op.put("k", "v") is not Op.put("k", "v")
    assert Op.delete("k") is not Op.delete("k")


def test_prefix_op_refuses_a_bare_op() -> None:
    """An Op that is none of get/put/delete/txn raises TypeError."""
    with pytest.raises(TypeError, match="op must be an Op"):
        prefix_op(b"p/", Op())


@given(outer=EDGE.filter(bool), inner=EDGE.filter(bool), user=user_ranges())
def test_prefix_op_composes(outer: bytes, inner: bytes, user: tuple[bytes, bytes]) -> None:
    """A txn translated twice equals the txn translated through the joined prefix."""
    key, range_end = user
    op = Op.txn(
        [Compare.create_revision(key or b"k", range_end=range_end or None) == 0],
        [GetOp(key=key, range_end=range_end), DeleteOp(key=key, range_end=range_end)],
        [Op.put(key or b"k", "v")],
    )
    assert prefix_op(outer, prefix_op(inner, op)) == prefix_op(outer + inner, op)


# --- responses ----------------------------------------------------------------------------


def kv(key: bytes) -> KeyValue:
    """A KeyValue with recognisable metadata."""
    return KeyValue(key, b"value", create_revision=2, mod_revision=3, version=4, lease=5)


def test_unprefix_kvs_cuts_the_prefix_and_keeps_metadata() -> None:
    """Each key loses the prefix; everything else is kept."""
    assert unprefix_kvs(b"p/", [kv(b"p/a"), kv(b"p/\xff\x00")]) == [kv(b"a"), kv(b"\xff\x00")]


def test_unprefix_kvs_drops_keys_outside_the_prefix() -> None:
    """A key of another namespace is never returned under a mangled name."""
    assert unprefix_kvs(b"p/", [kv(b"q/a"), kv(b"p"), kv(b"p/b")]) == [kv(b"b")]


def test_unprefix_keys_drops_and_cuts_like_clientv3() -> None:
    """Lease key listings keep only the namespace's keys, without the prefix."""
    assert unprefix_keys(b"p/", [b"p/a", b"x", b"p", b"p/"]) == [b"a", b""]


def test_unprefix_response_get() -> None:
    """A get's kvs are cut; count, more and header are kept; the input is left alone."""
    original = GetResponse(HEADER, [kv(b"p/a")], count=7, more=True)
    response = unprefix_response(b"p/", original)
    assert response == GetResponse(HEADER, [kv(b"a")], count=7, more=True)
    assert original.kvs == [kv(b"p/a")]


def test_unprefix_response_put_prev_kv() -> None:
    """A put's prev_kv is cut, and a put without one is returned as it is."""
    assert unprefix_response(b"p/", PutResponse(HEADER, kv(b"p/a"))).prev_kv == kv(b"a")
    bare = PutResponse(HEADER)
    assert unprefix_response(b"p/", bare) is bare


def test_unprefix_response_delete_prev_kvs() -> None:
    """A delete's prev_kvs are cut and its count kept."""
    response = unprefix_response(b"p/", DeleteResponse(HEADER, 2, [kv(b"p/a"), kv(b"p/b")]))
    assert response == DeleteResponse(HEADER, 2, [kv(b"a"), kv(b"b")])


def test_unprefix_response_txn_recurses() -> None:
    """Every response of a txn, nested txns included, is cut."""
    original = TxnResponse(
        HEADER,
        succeeded=True,
        responses=[
            GetResponse(HEADER, [kv(b"p/a")], 1),
            TxnResponse(HEADER, False, [DeleteResponse(HEADER, 1, [kv(b"p/b")])]),
            PutResponse(HEADER, kv(b"p/c")),
        ],
    )
    assert unprefix_response(b"p/", original) == TxnResponse(
        HEADER,
        succeeded=True,
        responses=[
            GetResponse(HEADER, [kv(b"a")], 1),
            TxnResponse(HEADER, False, [DeleteResponse(HEADER, 1, [kv(b"b")])]),
            PutResponse(HEADER, kv(b"c")),
        ],
    )


def test_unprefix_response_txn_cuts_its_responses_when_first_read() -> None:
    """A txn's responses are cut on first use, once, and the inner response is left as it was."""
    inner: list[Response] = [GetResponse(HEADER, [kv(b"p/a")], 1), PutResponse(HEADER, kv(b"p/b"))]
    original = TxnResponse(HEADER, True, list(inner))
    translated = unprefix_response(b"p/", original)
    assert original.responses == inner
    first = translated.responses[0]
    assert translated.responses[0] is first  # converted once, then an ordinary list
    assert list(translated.responses) == [
        GetResponse(HEADER, [kv(b"a")], 1),
        PutResponse(HEADER, kv(b"b")),
    ]
    assert pickle.loads(pickle.dumps(translated)) == translated
    assert unprefix_response(b"p/", TxnResponse(HEADER, False)).responses == []


def test_unprefix_watch_response_cuts_kv_and_prev_kv() -> None:
    """Events keep their type; kv and prev_kv lose the prefix; other fields are kept."""
    original = WatchResponse(
        HEADER,
        [Event(EventType.PUT, kv(b"p/a"), kv(b"p/a")), Event(EventType.DELETE, kv(b"p/b"))],
        compact_revision=0,
        watch_id=9,
    )
    assert unprefix_watch_response(b"p/", original) == WatchResponse(
        HEADER,
        [Event(EventType.PUT, kv(b"a"), kv(b"a")), Event(EventType.DELETE, kv(b"b"))],
        watch_id=9,
    )


def test_unprefix_watch_response_drops_events_outside_the_prefix() -> None:
    """An event of another namespace is never delivered."""
    original = WatchResponse(
        HEADER, [Event(EventType.PUT, kv(b"q/a")), Event(EventType.PUT, kv(b"p/b"))]
    )
    assert unprefix_watch_response(b"p/", original).events == [Event(EventType.PUT, kv(b"b"))]


def test_unprefix_time_to_live_keeps_only_the_namespace_keys() -> None:
    """time_to_live(keys=True) lists the tenant's keys only, cut; TTLs are kept."""
    original = LeaseTimeToLiveResponse(HEADER, 8, 30, 60, [b"p/a", b"other", b"p/b"])
    response = unprefix_time_to_live(b"p/", original)
    assert response == LeaseTimeToLiveResponse(HEADER, 8, 30, 60, [b"a", b"b"])
    assert original.keys == [b"p/a", b"other", b"p/b"]


@given(prefix=EDGE.filter(bool), keys=st.lists(EDGE, max_size=5))
def test_unprefix_kvs_inverts_prefixing(prefix: bytes, keys: list[bytes]) -> None:
    """Cutting the prefix from prefixed keys gives the user's keys back, in order."""
    assert [k.key for k in unprefix_kvs(prefix, [kv(prefix + key) for key in keys])] == keys


def test_prefix_end_is_the_namespace_end_used_for_all_keys() -> None:
    """The all-keys range ends exactly at prefix_end(prefix)."""
    for prefix in (b"a/", b"a\xff", b"\xff\xff", b"\x00"):
        assert prefix_range(prefix, KEYSPACE_END, KEYSPACE_END)[1] == prefix_end(prefix)


# --- every field is carried over (the translations build values field by field) -----------


def field_names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def test_prefix_get_carries_every_field() -> None:
    """A translated get differs from the original in key and range_end only."""
    values: dict[str, Any] = {
        "key": b"k",
        "range_end": b"l",
        "limit": 1,
        "revision": 2,
        "sort_order": SortOrder.DESCEND,
        "sort_target": SortTarget.MOD,
        "serializable": True,
        "keys_only": True,
        "count_only": True,
        "min_mod_revision": 3,
        "max_mod_revision": 4,
        "min_create_revision": 5,
        "max_create_revision": 6,
    }
    assert set(values) == field_names(GetOp)
    translated = prefix_op(b"p/", GetOp(**values))
    assert translated == GetOp(**{**values, "key": b"p/k", "range_end": b"p/l"})


def test_prefix_put_and_delete_carry_every_field() -> None:
    """Translated puts and deletes differ from the originals in their keys only."""
    put: dict[str, Any] = {
        "key": b"k",
        "value": b"v",
        "lease": 7,
        "prev_kv": True,
        "ignore_value": True,
        "ignore_lease": True,
    }
    delete: dict[str, Any] = {"key": b"k", "range_end": b"l", "prev_kv": True}
    assert (set(put), set(delete)) == (field_names(PutOp), field_names(DeleteOp))
    assert prefix_op(b"p/", PutOp(**put)) == PutOp(**{**put, "key": b"p/k"})
    assert prefix_op(b"p/", DeleteOp(**delete)) == DeleteOp(
        **{**delete, "key": b"p/k", "range_end": b"p/l"}
    )


def test_prefix_compare_carries_every_field() -> None:
    """A translated comparison differs from the original in key and range_end only."""
    values: dict[str, Any] = {
        "key": b"k",
        "range_end": b"l",
        "target": CompareTarget.VALUE,
        "result": CompareResult.NOT_EQUAL,
        "target_value": b"v",
    }
    assert set(values) == field_names(Compare)
    translated = prefix_compare(b"p/", Compare(**values))
    assert translated == Compare(**{**values, "key": b"p/k", "range_end": b"p/l"})


def test_unprefix_responses_carry_every_field() -> None:
    """Translated responses differ from the originals in their keys only."""
    get: dict[str, Any] = {"header": HEADER, "kvs": [kv(b"p/a")], "count": 9, "more": True}
    put: dict[str, Any] = {"header": HEADER, "prev_kv": kv(b"p/a")}
    delete: dict[str, Any] = {"header": HEADER, "deleted": 3, "prev_kvs": [kv(b"p/a")]}
    txn: dict[str, Any] = {"header": HEADER, "succeeded": True, "responses": [PutResponse(HEADER)]}
    assert set(get) == field_names(GetResponse)
    assert set(put) == field_names(PutResponse)
    assert set(delete) == field_names(DeleteResponse)
    assert set(txn) == field_names(TxnResponse)
    assert field_names(KeyValue) == {
        "key",
        "value",
        "create_revision",
        "mod_revision",
        "version",
        "lease",
    }
    assert unprefix_response(b"p/", GetResponse(**get)) == GetResponse(**{**get, "kvs": [kv(b"a")]})
    assert unprefix_response(b"p/", PutResponse(**put)) == PutResponse(HEADER, kv(b"a"))
    assert unprefix_response(b"p/", DeleteResponse(**delete)) == DeleteResponse(
        **{**delete, "prev_kvs": [kv(b"a")]}
    )
    assert unprefix_response(b"p/", TxnResponse(**txn)) == TxnResponse(**txn)


def test_unprefix_watch_response_carries_every_field() -> None:
    """A translated watch response differs from the original in its event keys only."""
    values: dict[str, Any] = {
        "header": HEADER,
        "events": [Event(EventType.DELETE, kv(b"p/a"), kv(b"p/a"))],
        "compact_revision": 5,
        "created": True,
        "canceled": True,
        "is_progress_notify": True,
        "watch_id": 6,
        "cancel_reason": "because",
    }
    assert set(values) == field_names(WatchResponse)
    assert field_names(Event) == {"type", "kv", "prev_kv"}
    translated = unprefix_watch_response(b"p/", WatchResponse(**values))
    assert translated == WatchResponse(
        **{**values, "events": [Event(EventType.DELETE, kv(b"a"), kv(b"a"))]}
    )
