"""Lock-free leasing hits (leasing/_served.py, leasing/_stats.py): published, withdrawn, counted."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from etcd_layers.base.ops import Op
from etcd_layers.base.responses import GetResponse, KeyValue, PutResponse, ResponseHeader
from etcd_layers.leasing._cache import LeaseCache
from etcd_layers.leasing._evaluate import answer_get
from etcd_layers.leasing._protocol import Acquired, Written
from etcd_layers.leasing._served import keys_only_view, op_view, options_view
from etcd_layers.leasing._stats import Tally

LEASE = 7


class Clock:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def header(revision: int) -> ResponseHeader:
    return ResponseHeader(1, 2, revision, 3)


def acquired(key: bytes, revision: int, value: bytes | None = b"v") -> Acquired:
    kvs = [] if value is None else [KeyValue(key, value, 2, 2, 1)]
    return Acquired(GetResponse(header(revision), kvs, len(kvs)), True, False, revision)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def owning(clock: Clock, key: bytes = b"k", max_keys: int | None = None) -> LeaseCache:
    """A cache in a live session that owns `key` and has answered it once (published)."""
    cache = LeaseCache(max_keys, clock=clock)
    cache.start_session(LEASE, clock.now + 10)
    cache.set_watching(watching=True)
    assert cache.add(key, acquired(key, 5), LEASE)
    assert cache.lookup(key) is not None
    return cache


def test_a_hit_publishes_the_shared_answer_for_lock_free_reads(clock: Clock) -> None:
    """After one hit under the lock, the same response object is served without it."""
    cache = owning(clock)
    shared = cache.lookup(b"k")
    assert shared is not None
    assert cache.published.plain(b"k") is shared
    assert cache.published.view(b"k", False) is shared
    assert cache.published.view(b"k", True) is cache.lookup(b"k", keys_only=True)
    assert cache.published.plain(b"other") is None
    assert cache.stats().hits == 6  # every answer given counts, with or without the lock
    assert len(cache.published) == 1


def test_a_bounded_cache_publishes_nothing_so_hits_keep_its_recency(clock: Clock) -> None:
    """With max_keys, every hit goes under the lock: the LRU order must be updated."""
    cache = owning(clock, max_keys=2)
    assert cache.published.plain(b"k") is None
    assert cache.lookup(b"k") is not None
    assert cache.stats().hits == 2


def _begin_write(cache: LeaseCache, clock: Clock) -> None:
    cache.begin_writes(frozenset({b"k"}), ())


def _begin_range_write(cache: LeaseCache, clock: Clock) -> None:
    cache.begin_writes(frozenset(), ((b"a", b"z"),))


def _revoke(cache: LeaseCache, clock: Clock) -> None:
    cache.revoke(b"k", 5, 9)


def _forget(cache: LeaseCache, clock: Clock) -> None:
    cache.forget(b"k", 9)


def _session_lost(cache: LeaseCache, clock: Clock) -> None:
    assert cache.end_session(LEASE)


def _closed(cache: LeaseCache, clock: Clock) -> None:
    cache.close()


def _watch_stopped(cache: LeaseCache, clock: Clock) -> None:
    cache.set_watching(watching=False)


def _lease_timed_out(cache: LeaseCache, clock: Clock) -> None:
    clock.now += 10  # past the serving window: no event at all, only time


@pytest.mark.parametrize(
    "event",
    [
        _begin_write,
        _begin_range_write,
        _revoke,
        _forget,
        _session_lost,
        _closed,
        _watch_stopped,
        _lease_timed_out,
    ],
)
def test_every_reason_to_stop_answering_withdraws_the_published_answer(
    clock: Clock, event: Callable[[LeaseCache, Clock], None]
) -> None:
    """What makes the locked lookup refuse also makes the lock-free one refuse, at once."""
    cache = owning(clock)
    hits = cache.stats().hits
    event(cache, clock)
    assert cache.published.plain(b"k") is None
    assert cache.published.view(b"k", True) is None
    assert cache.lookup(b"k") is None
    assert cache.stats().hits == hits


def test_a_write_of_ours_republishes_the_new_state_on_the_next_hit(clock: Clock) -> None:
    """While the write is in flight nothing is served; then the written state is."""
    cache = owning(clock)
    ticket = cache.begin_writes(frozenset({b"k"}), ())
    after = KeyValue(b"k", b"w", 2, 8, 2)
    cache.end_writes(ticket, Written(PutResponse(header(8)), 8, {b"k": after}, frozenset()))
    response = cache.lookup(b"k")
    assert response is not None
    assert response.kvs == [after]
    assert response.header.revision == 8
    assert cache.published.plain(b"k") is response


def test_a_higher_floor_withdraws_answers_until_rebuilt_at_it(clock: Clock) -> None:
    """No answer from memory carries a revision below one the client has returned."""
    cache = owning(clock)
    cache.raise_floor(4)  # not above the answer's revision: it stays
    assert cache.published.plain(b"k") is not None
    cache.raise_floor(12)
    assert cache.published.plain(b"k") is None
    response = cache.lookup(b"k")
    assert response is not None
    assert response.header.revision == 12
    assert cache.published.plain(b"k") is response


@pytest.mark.parametrize("value", [b"v", b"", None])
def test_keys_only_view_is_what_etcd_answers(value: bytes | None) -> None:
    """As answer_get (etcd's Range): the value emptied, everything else kept."""
    kvs = [] if value is None else [KeyValue(b"k", value, 2, 3, 1, 0)]
    plain = GetResponse(header(5), kvs, len(kvs))
    view = keys_only_view(plain)
    kv = None if value is None else kvs[0]
    assert view == answer_get(Op.get(b"k", keys_only=True), kv, header(5))
    if not value:
        assert view is plain


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, False),
        ({"keys_only": True}, True),
        ({"serializable": True, "keys_only": False}, False),
        ({"timeout": 2.5}, False),
        ({"keys_only": 1}, None),  # not a bool: the general path refuses it
        ({"serializable": "yes"}, None),
        ({"count_only": True}, None),
        ({"limit": 1}, None),
        ({"prefix": True}, None),
    ],
)
def test_options_view_names_the_published_answer_or_none(
    options: dict[str, object], expected: bool | None
) -> None:
    assert options_view(options) is expected


@pytest.mark.parametrize(("timeout", "error"), [(0, ValueError), ("1", TypeError)])
def test_options_view_checks_the_timeout(timeout: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="timeout"):
        options_view({"timeout": timeout})


@pytest.mark.parametrize(
    ("op", "expected"),
    [
        (Op.get(b"k"), False),
        (Op.get(b"k", keys_only=True, serializable=True, limit=3), True),
        (Op.get(b"k", count_only=True), None),
        (Op.get(b"k", revision=3), None),
        (Op.get(b"k", prefix=True), None),
        (Op.get(b"k", min_mod_revision=2), None),
        (Op.get(b"k", max_create_revision=2), None),
    ],
)
def test_op_view_names_the_published_answer_or_none(op: Op, expected: bool | None) -> None:
    assert isinstance(op, type(Op.get(b"k")))
    assert op_view(op) is expected


def test_tally_loses_no_count_across_threads_and_reads() -> None:
    """Bumps from several threads, with reads in between, add up exactly."""
    tally = Tally()
    threads, bumps = 4, 20_000
    reads: list[int] = []

    def work() -> None:
        for turn in range(bumps):
            tally.bump()
            if turn % 5_000 == 0:
                reads.append(tally.value())

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=30)
    assert not any(worker.is_alive() for worker in workers)
    assert tally.value() == threads * bumps
    assert tally.value() == threads * bumps  # reading changes nothing
    assert all(0 < seen <= threads * bumps for seen in reads)
