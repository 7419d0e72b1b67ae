"""Random operation sequences through a namespace on a real etcd, checked with a plain client."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from etcd_layers import Client, Compare, Op, namespace
from etcd_layers.base import KEYSPACE_END, EventType, GetResponse, KeyValue, Watch, prefix_end
from etcd_layers.namespace import KVWatcherLease
from etcd_layers.testing import EtcdServer

TIMEOUT = 5.0
MAX_DRAIN = 200  # watch responses read at most per example
ROOT = b"/namespace-property/" + uuid.uuid4().hex.encode() + b"/"
_examples = itertools.count()

KEY = st.lists(st.sampled_from(b"\x00\x01a\xfe\xff"), max_size=3).map(bytes)
VALUE = st.binary(max_size=3)
# Namespaces at each example's base: plain, ending in 0xff (no carry), and a zero byte.
SUFFIX = st.sampled_from([b"ns/", b"n\xff", b"n\xff\xff", b"\x00"])


@st.composite
def ranges(draw: st.DrawFn) -> tuple[bytes, dict[str, Any]]:
    """A key and range options, as a user passes them to get/delete/Compare."""
    key = draw(KEY)
    mode = draw(st.sampled_from(["single", "prefix", "from_key", "range"]))
    if mode == "single":
        return key or b"k", {}
    if mode == "prefix":
        return key, {"prefix": True}
    if mode == "from_key":
        return key, {"from_key": True}
    return key or b"k", {"range_end": draw(st.one_of(KEY.filter(bool), st.just(KEYSPACE_END)))}


OPERATIONS = st.one_of(
    st.tuples(st.just("put"), KEY.filter(bool), VALUE, st.booleans()),
    st.tuples(st.just("get"), ranges()),
    st.tuples(st.just("delete"), ranges(), st.booleans()),
    st.tuples(st.just("txn"), ranges(), KEY.filter(bool), ranges(), ranges()),
    st.tuples(st.just("outside"), st.integers(min_value=0, max_value=20), VALUE),
)


def in_user_range(key: bytes, begin: bytes, end: bytes) -> bool:
    """Whether a user key falls in a resolved [begin, end) as etcd reads it."""
    if not end:
        return key == begin
    if end == KEYSPACE_END:
        return key >= begin
    return begin <= key < end


def resolved(user_range: tuple[bytes, dict[str, Any]]) -> tuple[bytes, bytes]:
    """The (key, range_end) the user's arguments mean, as Op.get resolves them."""
    op = Op.get(user_range[0], **user_range[1])
    return op.key, op.range_end


Pair = tuple[bytes, bytes, int]  # key, value, mod_revision
Seen = tuple[EventType, bytes, bytes, int, "tuple[bytes, bytes] | None"]  # an event, flattened


@dataclass
class Run:
    """One example: the namespace, the keys around it, and what the plain client expects."""

    raw: Client
    prefix: bytes
    base: bytes
    ns: KVWatcherLease
    siblings: dict[bytes, tuple[bytes, int]] = field(default_factory=dict)

    def write_outside(self, key: bytes, value: bytes) -> None:
        revision = self.raw.put(key, value).header.revision
        self.siblings[key] = (value, revision)

    def expected_get(self, revision: int, user_range: tuple[bytes, bytes]) -> list[Pair]:
        """The pairs of a user range at `revision`, read by the plain client, prefix cut."""
        response = self.raw.get(self.prefix, prefix=True, revision=revision)
        cut = len(self.prefix)
        return [
            (kv.key[cut:], kv.value, kv.mod_revision)
            for kv in response.kvs
            if in_user_range(kv.key[cut:], *user_range)
        ]


def pairs(kvs: list[KeyValue]) -> list[Pair]:
    return [(kv.key, kv.value, kv.mod_revision) for kv in kvs]


def sibling_keys(prefix: bytes, base: bytes) -> list[bytes]:
    """Keys sorting just before and just after the namespace, none of them inside it."""
    end = prefix_end(prefix)
    candidates = [
        base,
        prefix[:-1],
        prefix[:-1] + bytes([max(prefix[-1] - 1, 0)]) + b"\xff",
        end,  # clientv3 would carry b"n\xff" into b"o\x00", admitting exactly this key
        end + b"\x00",
        end + b"\xff",
    ]
    return sorted({key for key in candidates if not key.startswith(prefix)})


@pytest.fixture(scope="module")
def raw(etcd_server: EtcdServer) -> Iterator[Client]:
    with Client(endpoints=etcd_server.endpoints, **etcd_server.client_options()) as client:
        yield client


def check_get(run: Run, user_range: tuple[bytes, dict[str, Any]]) -> None:
    response = run.ns.get(user_range[0], **user_range[1])
    expected = run.expected_get(response.header.revision, resolved(user_range))
    assert pairs(response.kvs) == expected
    assert response.count == len(expected)


def check_delete(run: Run, user_range: tuple[bytes, dict[str, Any]], prev_kv: bool) -> None:
    before = run.expected_get(run.raw.get(run.base).header.revision, resolved(user_range))
    response = run.ns.delete(user_range[0], prev_kv=prev_kv, **user_range[1])
    assert response.deleted == len(before)
    assert pairs(response.prev_kvs) == (before if prev_kv else [])


def check_txn(
    run: Run,
    compared: tuple[bytes, dict[str, Any]],
    put_key: bytes,
    read: tuple[bytes, dict[str, Any]],
    deleted: tuple[bytes, dict[str, Any]],
) -> None:
    compare_key, compare_options = compared
    if compare_options.get("from_key"):  # a Compare has no from_key: spell it as a range
        # from_key on b"" starts at b"\x00" (an empty key with a range_end is refused).
        compare_key, compare_options = compare_key or KEYSPACE_END, {"range_end": KEYSPACE_END}
    compare_range = (compare_key, compare_options)
    # Over a range with no keys etcd compares version 0: "> 0" holds iff the range has keys.
    holds = bool(run.expected_get(run.raw.get(run.base).header.revision, resolved(compare_range)))
    response = run.ns.txn(
        [Compare.version(compare_range[0], **compare_range[1]) > 0],
        [Op.put(put_key, b"txn"), Op.get(read[0], **read[1])],
        [Op.delete(deleted[0], **deleted[1])],
    )
    assert response.succeeded == holds
    if holds:
        got = response.responses[1]
        assert isinstance(got, GetResponse)
        expected = run.expected_get(response.header.revision, resolved(read))
        assert pairs(got.kvs) == expected


def drain(watch: Watch, revision: int, cut: int = 0) -> list[Seen]:
    """Read events up to and including `revision`, cutting `cut` bytes off each key.

    Bounded in count and time.
    """
    events: list[Seen] = []
    for _ in range(MAX_DRAIN):
        response = watch.next(timeout=TIMEOUT)
        for event in response.events:
            prev = event.prev_kv
            events.append(
                (
                    event.type,
                    event.kv.key[cut:],
                    event.kv.value,
                    event.kv.mod_revision,
                    None if prev is None else (prev.key[cut:], prev.value),
                )
            )
        if events and events[-1][3] == revision:
            return events
    raise AssertionError(f"the watch did not reach revision {revision}")


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(suffix=SUFFIX, operations=st.lists(OPERATIONS, max_size=10))
def test_namespace_random_operations_never_leave_the_prefix(
    raw: Client, suffix: bytes, operations: list[tuple[Any, ...]]
) -> None:
    """Nothing outside the prefix is created, changed, deleted, returned or watched."""
    base = ROOT + str(next(_examples)).encode() + b"/"
    prefix = base + suffix
    run = Run(raw, prefix, base, namespace.wrap(raw, prefix))
    outside = sibling_keys(prefix, base)
    for key in outside:
        run.write_outside(key, b"seed")
    raw_watch = raw.watch(prefix, prefix=True, prev_kv=True)
    ns_watch = run.ns.watch("", prefix=True, prev_kv=True)
    try:
        for operation in operations:
            kind = operation[0]
            if kind == "put":
                _, key, value, prev_kv = operation
                response = run.ns.put(key, value, prev_kv=prev_kv)
                assert response.prev_kv is None or response.prev_kv.key == key
            elif kind == "get":
                check_get(run, operation[1])
            elif kind == "delete":
                check_delete(run, operation[1], operation[2])
            elif kind == "txn":
                check_txn(run, *operation[1:])
            else:
                _, index, value = operation
                run.write_outside(outside[index % len(outside)], value)
        last = run.ns.put(b"\x01last", b"").header.revision  # every watch must reach it
        assert drain(ns_watch, last) == drain(raw_watch, last, cut=len(prefix))
        for key, (value, revision) in run.siblings.items():
            assert [(kv.value, kv.mod_revision) for kv in raw.get(key).kvs] == [(value, revision)]
        everything = raw.get(base, prefix=True, keys_only=True).kvs
        assert {kv.key for kv in everything if not kv.key.startswith(prefix)} == set(outside)
    finally:
        raw_watch.cancel()
        ns_watch.cancel()
        raw.delete(base, prefix=True)
