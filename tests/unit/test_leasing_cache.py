"""The leasing cache (leasing/_cache.py): what memory may answer, keep and give back."""

from __future__ import annotations

import copy
import pickle

import pytest

from etcd_layers.base.ops import Op
from etcd_layers.base.responses import (
    GetResponse,
    KeyValue,
    PutResponse,
    ResponseHeader,
)
from etcd_layers.leasing._cache import REVOKE_BACKOFF, LeaseCache
from etcd_layers.leasing._entry import Lookup
from etcd_layers.leasing._protocol import Acquired, Written
from etcd_layers.leasing._releases import Release
from etcd_layers.leasing._stats import LeasingStats

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


def written(
    revision: int, states: dict[bytes, KeyValue | None], lost: frozenset[bytes] = frozenset()
) -> Written:
    return Written(PutResponse(header(revision)), revision, states, lost)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cache(clock: Clock) -> LeaseCache:
    cache = LeaseCache(clock=clock)
    cache.start_session(LEASE, clock.now + 10)
    cache.set_watching(watching=True)
    return cache


def drain(cache: LeaseCache) -> list[Release]:
    releases = []
    while (release := cache.next_release(0)) is not None:
        releases.append(release)
    return releases


# --- answering --------------------------------------------------------------------------------


def test_cache_lookup_answers_an_acquired_key_with_one_shared_response(cache: LeaseCache) -> None:
    """A hit hands out the same immutable response object every time."""
    assert cache.add(b"k", acquired(b"k", 5), LEASE)
    first = cache.lookup(b"k")
    assert first is not None
    assert first.kvs == [KeyValue(b"k", b"v", 2, 2, 1)]
    assert first.count == 1
    assert cache.lookup(b"k") is first
    assert cache.lookup(b"other") is None


def test_cache_responses_refuse_mutation_but_copy_to_plain_lists(cache: LeaseCache) -> None:
    """A caller cannot corrupt the shared response; copies are ordinary lists."""
    cache.add(b"k", acquired(b"k", 5), LEASE)
    response = cache.lookup(b"k")
    assert response is not None
    with pytest.raises(TypeError, match="read-only"):
        response.kvs.append(KeyValue(b"x"))
    with pytest.raises(TypeError, match="read-only"):
        response.kvs[0] = KeyValue(b"x")
    with pytest.raises(TypeError, match="read-only"):
        response.kvs.clear()
    copied = copy.deepcopy(response)
    copied.kvs.append(KeyValue(b"x"))
    assert type(pickle.loads(pickle.dumps(response)).kvs) is list
    assert response.kvs == [KeyValue(b"k", b"v", 2, 2, 1)]


def test_cache_answers_a_missing_key_it_owns_as_absent(cache: LeaseCache) -> None:
    """Owning a key that does not exist is answered too: no kvs, count 0."""
    cache.add(b"k", acquired(b"k", 5, value=None), LEASE)
    response = cache.lookup(b"k")
    assert response == GetResponse(header(5), [], 0, False)


def test_cache_header_revision_never_falls_below_the_floor(cache: LeaseCache) -> None:
    """An answer from memory carries at least the highest revision the client returned."""
    cache.add(b"k", acquired(b"k", 5), LEASE)
    cache.raise_floor(9)
    response = cache.lookup(b"k")
    assert response is not None
    assert response.header == header(9)
    found, answer = cache.answer(Op.get(b"k", keys_only=True))
    assert found is Lookup.HIT
    assert answer is not None
    assert answer.header.revision == 9
    assert answer.kvs == [KeyValue(b"k", b"", 2, 2, 1)]


def test_cache_stops_answering_when_the_session_may_have_expired(
    cache: LeaseCache, clock: Clock
) -> None:
    """Past the session's validity nothing is answered, and a renewal restores it."""
    cache.add(b"k", acquired(b"k", 5), LEASE)
    clock.now += 10
    assert cache.lookup(b"k") is None
    assert cache.answer(Op.get(b"k"))[0] is Lookup.HELD
    assert cache.may_acquire(b"j") == 0
    cache.renewed(LEASE, clock.now + 5)
    assert cache.lookup(b"k") is not None


def test_cache_ignores_renewals_of_another_lease(cache: LeaseCache, clock: Clock) -> None:
    """A late renewal of an old session does not revive the cache."""
    clock.now += 10
    cache.renewed(LEASE + 1, clock.now + 5)
    assert cache.may_acquire(b"k") == 0


def test_cache_end_session_forgets_everything_at_once(cache: LeaseCache) -> None:
    """Losing the session clears the cache and counts the loss."""
    cache.add(b"k", acquired(b"k", 5), LEASE)
    assert cache.end_session(LEASE)
    assert cache.lookup(b"k") is None
    assert cache.may_acquire(b"k") == 0
    assert not cache.end_session(LEASE)
    assert cache.stats().session_losses == 1
    assert drain(cache) == []  # the lease took its leasing keys with it


def test_cache_snapshot_answers_only_when_every_key_is_owned(cache: LeaseCache) -> None:
    """A txn is answered from memory only if all its keys are cached and idle."""
    cache.add(b"a", acquired(b"a", 5), LEASE)
    cache.add(b"b", acquired(b"b", 6, value=None), LEASE)
    snapshot = cache.snapshot([b"a", b"b"])
    assert snapshot is not None
    states, snapshot_header = snapshot
    assert states == {b"a": KeyValue(b"a", b"v", 2, 2, 1), b"b": None}
    assert snapshot_header.revision == 6
    assert cache.snapshot([b"a", b"c"]) is None


# --- acquiring --------------------------------------------------------------------------------


def test_cache_refuses_an_acquisition_overtaken_by_its_revocation(cache: LeaseCache) -> None:
    """A REVOKE seen before the acquire's answer is cached wins: the answer is not cached."""
    cache.revoke(b"k", 5, 6)
    assert not cache.add(b"k", acquired(b"k", 5), LEASE)
    assert cache.lookup(b"k") is None
    assert Release(b"k", 5) in drain(cache)


def test_cache_backs_off_acquiring_a_revoked_key(cache: LeaseCache, clock: Clock) -> None:
    """As clientv3: a revoked key is not acquired again for the back-off period."""
    cache.add(b"k", acquired(b"k", 5), LEASE)
    cache.revoke(b"k", 5, 6)
    assert cache.lookup(b"k") is None
    assert cache.may_acquire(b"k") == 0
    assert cache.may_acquire(b"other") == LEASE
    clock.now += REVOKE_BACKOFF
    assert cache.may_acquire(b"k") == LEASE
    assert cache.add(b"k", acquired(b"k", 8), LEASE)


def test_cache_revoke_queues_the_release_and_counts_it(cache: LeaseCache) -> None:
    """The owner's answer to REVOKE is to delete that incarnation of its leasing key."""
    cache.add(b"k", acquired(b"k", 5), LEASE)
    cache.revoke(b"k", 5, 6)
    assert drain(cache) == [Release(b"k", 5)]
    assert cache.stats().revocations == 1


def test_cache_refuses_an_acquisition_under_another_session(cache: LeaseCache) -> None:
    """An answer that arrives after the session changed is released, not cached."""
    cache.end_session(LEASE)
    cache.start_session(LEASE + 1, 1e9)
    assert not cache.add(b"k", acquired(b"k", 5), LEASE)
    assert drain(cache) == [Release(b"k", 5)]


def test_cache_refuses_acquisitions_while_not_watching(cache: LeaseCache) -> None:
    """Without the revocation watch nothing may be cached, and what was cached is given back."""
    cache.add(b"k", acquired(b"k", 5), LEASE)
    cache.set_watching(watching=False)
    assert cache.lookup(b"k") is None
    assert cache.may_acquire(b"j") == 0
    assert not cache.add(b"j", acquired(b"j", 9), LEASE)
    assert set(drain(cache)) == {Release(b"k", 5), Release(b"j", 9)}


def test_cache_keeps_an_acquisition_another_attempt_found_held(cache: LeaseCache) -> None:
    """A concurrent get that finds our fresh leasing key does not release the cached key."""
    cache.add(b"k", acquired(b"k", 5), LEASE)
    cache.release_unless_cached(b"k", 5)
    assert drain(cache) == []
    assert cache.lookup(b"k") is not None


def test_cache_refuses_an_acquisition_already_being_released(cache: LeaseCache) -> None:
    """If the other attempt queued the release first, the late answer is not cached."""
    cache.release_unless_cached(b"k", 5)
    assert not cache.add(b"k", acquired(b"k", 5), LEASE)


def test_cache_forget_drops_only_older_incarnations(cache: LeaseCache) -> None:
    """A delete of the leasing key at revision r forgets a key acquired before r only."""
    cache.add(b"k", acquired(b"k", 5), LEASE)
    cache.forget(b"k", 4)
    assert cache.lookup(b"k") is not None
    cache.forget(b"k", 6)
    assert cache.lookup(b"k") is None


def test_cache_evicts_the_least_recently_used_key_and_releases_it(clock: Clock) -> None:
    """With max_keys, an acquisition beyond it gives back the least recently used key."""
    cache = LeaseCache(2, clock=clock)
    cache.start_session(LEASE, clock.now + 10)
    cache.set_watching(watching=True)
    cache.add(b"a", acquired(b"a", 5), LEASE)
    cache.add(b"b", acquired(b"b", 6), LEASE)
    assert cache.lookup(b"a") is not None  # b is now the least recently used
    cache.add(b"c", acquired(b"c", 7), LEASE)
    assert cache.lookup(b"b") is None
    assert cache.lookup(b"a") is not None
    assert drain(cache) == [Release(b"b", 6)]
    assert cache.stats().evictions == 1


# --- writes -----------------------------------------------------------------------------------


def test_cache_does_not_answer_a_key_while_our_write_to_it_is_in_flight(cache: LeaseCache) -> None:
    """Between sending a write and learning its outcome, reads go to the server."""
    cache.add(b"k", acquired(b"k", 5), LEASE)
    ticket = cache.begin_writes(frozenset({b"k"}), ())
    assert ticket.owned == {b"k": 5}
    assert ticket.refresh == (b"k",)
    assert cache.lookup(b"k") is None
    assert cache.answer(Op.get(b"k"))[0] is Lookup.HELD
    new = KeyValue(b"k", b"w", 2, 9, 2)
    cache.end_writes(ticket, written(9, {b"k": new}))
    response = cache.lookup(b"k")
    assert response is not None
    assert response.kvs == [new]
    assert response.header.revision == 9


def test_cache_keeps_the_newest_state_when_writes_finish_out_of_order(cache: LeaseCache) -> None:
    """A write answered late cannot roll the cached state back."""
    cache.add(b"k", acquired(b"k", 5), LEASE)
    first = cache.begin_writes(frozenset({b"k"}), ())
    second = cache.begin_writes(frozenset({b"k"}), ())
    newer = KeyValue(b"k", b"2", 2, 11, 3)
    cache.end_writes(second, written(11, {b"k": newer}))
    assert cache.lookup(b"k") is None  # the first write is still in flight
    cache.end_writes(first, written(10, {b"k": KeyValue(b"k", b"1", 2, 10, 2)}))
    response = cache.lookup(b"k")
    assert response is not None
    assert response.kvs == [newer]


def test_cache_drops_and_releases_a_key_whose_write_outcome_is_unknown(cache: LeaseCache) -> None:
    """An error after sending leaves the state unknown: the key is given back."""
    cache.add(b"k", acquired(b"k", 5), LEASE)
    ticket = cache.begin_writes(frozenset({b"k"}), ())
    cache.end_writes(ticket, None)
    assert cache.lookup(b"k") is None
    assert drain(cache) == [Release(b"k", 5)]


def test_cache_drops_a_key_the_write_gave_its_own_lease(cache: LeaseCache) -> None:
    """A key with a lease of its own is never cached (clientv3 keeps a wrong entry)."""
    cache.add(b"k", acquired(b"k", 5), LEASE)
    ticket = cache.begin_writes(frozenset({b"k"}), ())
    cache.end_writes(ticket, written(9, {b"k": KeyValue(b"k", b"v", 2, 9, 2, lease=99)}))
    assert cache.lookup(b"k") is None
    assert drain(cache) == [Release(b"k", 5)]


def test_cache_drops_a_key_the_write_found_lost(cache: LeaseCache) -> None:
    """Ownership lost during a write: forget the key, nothing to release."""
    cache.add(b"k", acquired(b"k", 5), LEASE)
    ticket = cache.begin_writes(frozenset({b"k"}), ())
    cache.end_writes(ticket, written(9, {b"k": None}, lost=frozenset({b"k"})))
    assert cache.lookup(b"k") is None
    assert drain(cache) == []


def test_cache_range_write_holds_every_owned_key_in_the_range(cache: LeaseCache) -> None:
    """A range delete holds the owned keys it covers and refuses acquisitions inside it."""
    cache.add(b"a/1", acquired(b"a/1", 5), LEASE)
    cache.add(b"b", acquired(b"b", 6), LEASE)
    ticket = cache.begin_writes(frozenset(), ((b"a/", b"a0"),))
    assert ticket.refresh == (b"a/1",)
    assert cache.lookup(b"a/1") is None
    assert cache.lookup(b"b") is not None
    assert cache.may_acquire(b"a/2") == 0
    assert not cache.add(b"a/2", acquired(b"a/2", 7), LEASE)
    cache.end_writes(ticket, written(9, {b"a/1": None}))
    assert cache.lookup(b"a/1") == GetResponse(header(9), [], 0, False)
    assert cache.may_acquire(b"a/2") == LEASE


# --- releases and stats -----------------------------------------------------------------------


def test_cache_release_queue_is_deduplicated_and_retried(cache: LeaseCache) -> None:
    """The same incarnation is queued once; a failed release can be queued again."""
    cache.release_unless_cached(b"k", 5)
    cache.release_unless_cached(b"k", 5)
    assert cache.pending_releases() == 1
    release = cache.next_release(0)
    assert release == Release(b"k", 5)
    cache.retry_release(release)
    assert drain(cache) == [Release(b"k", 5)]


def test_cache_close_stops_everything(cache: LeaseCache) -> None:
    """After close nothing is answered, acquired or queued."""
    cache.add(b"k", acquired(b"k", 5), LEASE)
    cache.close()
    assert cache.closed
    assert cache.lookup(b"k") is None
    assert cache.may_acquire(b"k") == 0
    assert cache.next_release(0) is None


def test_cache_counts_hits_misses_and_acquisitions(cache: LeaseCache) -> None:
    """The counters add up what happened."""
    cache.answer(Op.get(b"k"))
    cache.add(b"k", acquired(b"k", 5), LEASE)
    cache.lookup(b"k")
    cache.answer(Op.get(b"k"))
    cache.count_miss()
    assert cache.stats() == LeasingStats(hits=2, misses=2, acquisitions=1, cached_keys=1)


def test_cache_unknown_range_write_drops_exactly_the_keys_in_the_range(cache: LeaseCache) -> None:
    """clientv3's EvictRange evicts the wrong key; here the range's keys, and only they, go."""
    cache.add(b"a/1", acquired(b"a/1", 5), LEASE)
    cache.add(b"a/2", acquired(b"a/2", 6), LEASE)
    cache.add(b"b", acquired(b"b", 7), LEASE)
    ticket = cache.begin_writes(frozenset(), ((b"a/", b"a0"),))
    cache.end_writes(ticket, None)
    assert cache.lookup(b"a/1") is None
    assert cache.lookup(b"a/2") is None
    assert cache.lookup(b"b") is not None
    assert set(drain(cache)) == {Release(b"a/1", 5), Release(b"a/2", 6)}
