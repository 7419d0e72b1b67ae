"""get_pages' pure page cursor, and the argument checks of get_pages, Syncer and Mirror."""

from __future__ import annotations

import bisect
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from etcd_layers import Compare, mirror
from etcd_layers.base import (
    KV,
    CompareResult,
    CompareTarget,
    GetOp,
    GetResponse,
    KeyValue,
    ResponseHeader,
    prefix_end,
)
from etcd_layers.mirror._pages import at_snapshot, first_page, next_page

KEYS = st.lists(st.binary(min_size=1, max_size=4), unique=True).map(sorted)


def serve(keys: list[bytes], op: GetOp, revision: int) -> GetResponse:
    """Answer a range over the sorted `keys` as etcd does: key order, `limit`, `more`."""
    start = bisect.bisect_left(keys, op.key)
    end = len(keys) if op.range_end in (b"\x00",) else bisect.bisect_left(keys, op.range_end)
    inside = keys[start:end]
    page = inside[: op.limit] if op.limit else inside
    kvs = [KeyValue(key, mod_revision=1) for key in page]
    return GetResponse(ResponseHeader(revision=revision), kvs, len(inside), len(page) < len(inside))


@given(keys=KEYS, prefix=st.binary(max_size=2), page_size=st.integers(1, 5))
def test_pages_cover_every_key_under_the_prefix_once_in_order(
    keys: list[bytes], prefix: bytes, page_size: int
) -> None:
    """Following next_page from first_page reads exactly the prefix's keys, in key order."""
    op: GetOp | None = first_page(prefix, page_size, 0)
    seen: list[bytes] = []
    revisions: set[int] = set()
    requests = 0
    while op is not None:
        requests += 1
        assert requests <= len(keys) // page_size + 1  # bounded: a page per page_size keys
        assert op.limit == page_size
        revisions.add(op.revision)
        response = serve(keys, op, revision=7)
        seen += [kv.key for kv in response.kvs]
        op = next_page(op, response)
    assert seen == [key for key in keys if key.startswith(prefix)]
    assert revisions <= {0, 7}  # the first page names none; every later one the first's


def test_later_pages_keep_the_revision_given() -> None:
    """A revision given for the first page is the one every page reads at."""
    op = first_page("a/", 2, 5)
    response = serve([b"a/1", b"a/2", b"a/3"], op, revision=9)
    follow = next_page(op, response)
    assert follow is not None
    assert (follow.key, follow.revision, follow.range_end) == (b"a/2\x00", 5, prefix_end(b"a/"))


def test_a_page_without_more_is_the_last() -> None:
    """No request follows a page that says there is no more."""
    op = first_page(b"a", 10, 0)
    assert next_page(op, serve([b"a1"], op, revision=3)) is None


def test_an_empty_prefix_reads_every_key() -> None:
    """The prefix "" ranges from the smallest key to the end of the keyspace."""
    op = first_page("", 10, 0)
    assert (op.key, op.range_end) == (b"\x00", b"\x00")


class Recorder:
    """A KV + Watcher that records calls; any call is a test failure here."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def do(self, op: object, **options: Any) -> None:
        self.calls.append("do")
        raise AssertionError("no I/O expected")

    def watch(self, key: object, **options: Any) -> None:
        self.calls.append("watch")
        raise AssertionError("no I/O expected")


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({"prefix": 3}, TypeError),
        ({"prefix": "a", "page_size": 0}, ValueError),
        ({"prefix": "a", "page_size": "10"}, TypeError),
        ({"prefix": "a", "page_size": True}, TypeError),
        ({"prefix": "a", "revision": -1}, ValueError),
        ({"prefix": "a", "timeout": 0}, ValueError),
    ],
)
def test_get_pages_refuses_bad_arguments_before_io(
    arguments: dict[str, Any], error: type[Exception]
) -> None:
    """get_pages checks its arguments at the call, before any request."""
    kv = Recorder()
    with pytest.raises(error):
        mirror.get_pages(kv, **arguments)  # type: ignore[call-overload]
    assert kv.calls == []


def test_get_pages_refuses_what_speaks_no_kv() -> None:
    """An object without do() is refused with a TypeError."""
    with pytest.raises(TypeError, match="KV"):
        mirror.get_pages(object(), "a")  # type: ignore[call-overload]


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({"prefix": b"a", "page_size": 0}, ValueError),
        ({"prefix": b"a", "prev_kv": 1}, TypeError),
        ({"prefix": 1}, TypeError),
        ({"prefix": b"a", "timeout": -1}, ValueError),
    ],
)
def test_mirror_refuses_bad_arguments_before_io(
    arguments: dict[str, Any], error: type[Exception]
) -> None:
    """Mirror and AsyncMirror check their arguments before any request."""
    for kind in (mirror.Mirror, mirror.AsyncMirror):
        kv = Recorder()
        with pytest.raises(error):
            kind(kv, **arguments)  # type: ignore[arg-type]
        assert kv.calls == []


def test_mirror_refuses_a_kv_without_watch() -> None:
    """A Mirror needs a Watcher as well as a KV."""

    class OnlyKV:
        def do(self, op: object) -> None:
            raise AssertionError("no I/O expected")

    with pytest.raises(TypeError, match="watch"):
        mirror.Mirror(OnlyKV(), "a")  # type: ignore[arg-type]


def test_syncer_updates_need_a_revision() -> None:
    """sync_updates before sync_base (with no revision given) is refused, as Go panics."""
    syncer: mirror.Syncer[KV] = mirror.Syncer(cast(KV, Recorder()), "a")
    assert syncer.revision == 0
    with pytest.raises(RuntimeError, match="sync_base"):
        syncer.sync_updates()


def test_syncer_refuses_bad_arguments() -> None:
    """Syncer checks its prefix, revision and client when built."""
    with pytest.raises(ValueError, match="revision"):
        mirror.Syncer(cast(KV, Recorder()), "a", revision=-2)
    with pytest.raises(TypeError):
        mirror.Syncer(cast(KV, Recorder()), 5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Watcher"):
        mirror.Syncer(cast(KV, type("K", (), {"do": lambda self: None})()), "a")


def test_compare_key_exists_and_missing_are_version_comparisons() -> None:
    """Compare.key_exists/key_missing are Go's clientv3util.KeyExists/KeyMissing."""
    exists, missing = Compare.key_exists("k"), Compare.key_missing(b"k")
    assert (exists.key, exists.target, exists.result, exists.target_value) == (
        b"k",
        CompareTarget.VERSION,
        CompareResult.GREATER,
        0,
    )
    assert (missing.key, missing.target, missing.result, missing.target_value) == (
        b"k",
        CompareTarget.VERSION,
        CompareResult.EQUAL,
        0,
    )
    with pytest.raises(TypeError):
        Compare.key_exists(1)  # type: ignore[arg-type]


def test_at_snapshot_reports_the_revision_read_at() -> None:
    """A later page's header names the snapshot's revision, not the store's newest."""
    op = first_page("a", 1, 5)
    page = GetResponse(ResponseHeader(member_id=3, revision=9), [KeyValue(b"a1")])
    fixed = at_snapshot(op, page)
    assert (fixed.header.revision, fixed.header.member_id, fixed.kvs) == (5, 3, page.kvs)
    first = first_page("a", 1, 0)
    assert at_snapshot(first, page) is page
