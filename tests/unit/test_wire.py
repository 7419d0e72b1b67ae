"""The hand-written request encoder (base._wire) against protobuf's own serialization."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from google.protobuf.message import Message
from hypothesis import given, settings
from hypothesis import strategies as st

from etcd_layers.base import _convert, _wire
from etcd_layers.base.ops import Op, SortOrder, SortTarget

keys = st.binary(min_size=1, max_size=140)  # past 127 bytes, a length takes two bytes
ints = st.one_of(st.integers(0, 200), st.integers(0, 2**63 - 1))
revisions = st.one_of(st.just(0), ints)


@st.composite
def gets(draw: st.DrawFn) -> Op:
    key = draw(keys)
    ranged = draw(st.sampled_from(["one", "prefix", "from_key", "range_end"]))
    return Op.get(
        key,
        prefix=ranged == "prefix",
        from_key=ranged == "from_key",
        range_end=draw(keys) if ranged == "range_end" else None,
        limit=draw(revisions),
        revision=draw(revisions),
        sort_order=draw(st.sampled_from([None, *SortOrder])),
        sort_target=draw(st.sampled_from([None, *SortTarget])),
        serializable=draw(st.booleans()),
        keys_only=draw(st.booleans()),
        count_only=draw(st.booleans()),
        min_mod_revision=draw(revisions),
        max_mod_revision=draw(revisions),
        min_create_revision=draw(revisions),
        max_create_revision=draw(revisions),
    )


@st.composite
def puts(draw: st.DrawFn) -> Op:
    ignore_value = draw(st.booleans())
    ignore_lease = draw(st.booleans())
    return Op.put(
        draw(keys),
        b"" if ignore_value else draw(st.binary(max_size=300)),
        lease=0 if ignore_lease else draw(revisions),
        prev_kv=draw(st.booleans()),
        ignore_value=ignore_value,
        ignore_lease=ignore_lease,
    )


@st.composite
def deletes(draw: st.DrawFn) -> Op:
    ranged = draw(st.sampled_from(["one", "prefix", "range_end"]))
    return Op.delete(
        draw(keys),
        prefix=ranged == "prefix",
        range_end=draw(keys) if ranged == "range_end" else None,
        prev_kv=draw(st.booleans()),
    )


single_ops = st.one_of(gets(), puts(), deletes())


@settings(max_examples=300, deadline=None)
@given(single_ops)
def test_every_op_serializes_as_protobuf_does(op: Op) -> None:
    """Byte for byte, the encoder's request is protobuf's serialization of _convert's message."""
    encoders: dict[str, tuple[Callable[[Any], bytes], Callable[[Any], Message]]] = {
        "GetOp": (_wire.range_request, _convert.range_request),
        "PutOp": (_wire.put_request, _convert.put_request),
        "DeleteOp": (_wire.delete_request, _convert.delete_request),
    }
    ours, theirs = encoders[type(op).__name__]
    assert ours(op) == theirs(op).SerializeToString()


def test_an_empty_nested_txn_is_still_the_ops_member() -> None:
    """An empty txn inside a txn is sent as a request_txn, not as an op of no kind."""
    request = _convert.txn_request(Op.txn(success=[Op.txn()], failure=[Op.txn(success=[Op.txn()])]))
    assert request.success[0].HasField("request_txn")
    assert request.failure[0].request_txn.success[0].HasField("request_txn")
