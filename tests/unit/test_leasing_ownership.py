"""The session's pure decisions (leasing/_ownership.py), shared by the sync and asyncio shells."""

from __future__ import annotations

import pytest

from etcd_layers.base.ops import GetOp
from etcd_layers.base.responses import Event, EventType, GetResponse, KeyValue, ResponseHeader
from etcd_layers.errors import CanceledError, LeaseNotFoundError, UnavailableError
from etcd_layers.leasing._cache import LeaseCache
from etcd_layers.leasing._ownership import (
    BACKGROUND_TIMEOUT,
    MAX_RETRY_BACKOFF,
    REMEMBERED_LEASES,
    Failure,
    SessionState,
    apply_event,
    next_backoff,
    orphans,
    renewal_failure,
    serving_window,
)
from etcd_layers.leasing._protocol import REVOKE, Acquired
from etcd_layers.leasing._releases import Release

P = b"lease/"
LEASE = 0x51


def header(revision: int) -> ResponseHeader:
    return ResponseHeader(1, 2, revision, 3)


def owning_cache(now: float = 10.0) -> tuple[LeaseCache, SessionState]:
    """A cache with a session of LEASE that owns key b"k" (incarnation 5)."""
    cache = LeaseCache(clock=lambda: now)
    state = SessionState(60)
    cache.start_session(LEASE, state.granted(LEASE, 60, now))
    cache.set_watching(watching=True)
    kv = KeyValue(b"k", b"v", 2, 2, 1)
    assert cache.add(b"k", Acquired(GetResponse(header(5), [kv], 1), True, False, 5), LEASE)
    return cache, state


def test_granted_and_renewed_windows_start_when_the_request_was_sent() -> None:
    state = SessionState(60)
    assert state.granted(LEASE, 30, 100.0) == 100.0 + serving_window(30)
    assert (state.lease_id, state.granted_ttl, state.last_sent) == (LEASE, 30, 100.0)
    assert state.due() == pytest.approx(110.0)
    assert state.renewed(45, 112.0) == 112.0 + serving_window(45)
    assert state.due() == pytest.approx(127.0)


def test_renewal_timeout_is_a_quarter_of_the_ttl_within_bounds() -> None:
    state = SessionState(60)
    state.granted(LEASE, 2, 0.0)
    assert state.renewal_timeout() == 0.5
    state.granted(LEASE, 1, 0.0)
    assert state.renewal_timeout() == 0.25
    state.granted(LEASE, 600, 0.0)
    assert state.renewal_timeout() == BACKGROUND_TIMEOUT
    assert SessionState(4).revoke_timeout() == 2.0


def test_a_failed_renewal_is_a_loss_only_a_whole_ttl_after_the_last_one_sent() -> None:
    state = SessionState(60)
    state.granted(LEASE, 60, 10.0)
    assert not state.failure_is_loss(69.9)
    assert state.failure_is_loss(70.0)


def test_recent_session_leases_are_remembered_as_ours() -> None:
    state = SessionState(60)
    for lease in range(1, REMEMBERED_LEASES + 2):
        state.granted(lease, 60, 0.0)
    assert state.is_ours(REMEMBERED_LEASES + 1)
    assert state.is_ours(2)
    assert not state.is_ours(1)  # forgotten: the oldest
    assert not state.is_ours(0)  # no lease is nobody's


def test_backoff_doubles_up_to_its_cap() -> None:
    assert next_backoff(0.1) == 0.2
    assert next_backoff(MAX_RETRY_BACKOFF) == MAX_RETRY_BACKOFF


def test_revoke_of_our_key_forgets_it_and_queues_its_release() -> None:
    cache, state = owning_cache()
    apply_event(cache, P, state, Event(EventType.PUT, KeyValue(b"lease/k", REVOKE, 5, 9, 2, LEASE)))
    assert cache.lookup(b"k") is None
    assert cache.take_release() == Release(b"k", 5)
    assert cache.stats().revocations == 1


def test_revoke_of_someone_elses_key_is_not_ours_to_answer_but_forgets_it() -> None:
    cache, state = owning_cache()
    event = Event(EventType.PUT, KeyValue(b"lease/k", REVOKE, 7, 9, 2, LEASE + 1))
    apply_event(cache, P, state, event)
    assert cache.take_release() is None
    assert cache.stats().revocations == 0
    assert cache.lookup(b"k") is None  # someone else owns it now


def test_delete_of_our_leasing_key_forgets_the_key() -> None:
    cache, state = owning_cache()
    apply_event(cache, P, state, Event(EventType.DELETE, KeyValue(b"lease/k", b"", 0, 9, 0)))
    assert cache.answer(GetOp(b"k"))[1] is None
    assert cache.take_release() is None


def test_events_outside_the_prefix_are_ignored() -> None:
    cache, state = owning_cache()
    apply_event(cache, P, state, Event(EventType.DELETE, KeyValue(b"other/k", b"", 0, 9, 0)))
    assert cache.lookup(b"k") is not None


def test_orphans_are_our_leasing_keys_in_a_listing() -> None:
    state = SessionState(60)
    state.granted(LEASE, 60, 0.0)
    listing = [
        KeyValue(b"lease/a", b"", 3, 3, 1, LEASE),
        KeyValue(b"lease/b", b"", 4, 4, 1, LEASE + 1),
        KeyValue(b"lease/c", b"", 6, 6, 1, 0),
    ]
    assert list(orphans(P, state, listing)) == [(b"a", 3)]


def test_the_cache_tells_an_asyncio_shell_of_each_queued_release() -> None:
    """`on_release` is called once per release queued; `take_release` never waits."""
    told: list[int] = []
    cache = LeaseCache(on_release=lambda: told.append(1))
    cache.release_unless_cached(b"a", 3)
    cache.release_unless_cached(b"a", 3)  # queued already: not told again
    assert told == [1]
    release = cache.take_release()
    assert release == Release(b"a", 3)
    assert cache.take_release() is None
    cache.retry_release(release)
    assert told == [1, 1]
    cache.close()
    cache.release_unless_cached(b"b", 4)
    assert told == [1, 1]


def test_what_a_failed_renewal_means() -> None:
    """Lost at once when the lease is not found; closed with the client; else lost after a TTL."""
    state = SessionState(60)
    state.granted(LEASE, 60, 10.0)
    assert renewal_failure(LeaseNotFoundError("gone"), state, 11.0) is Failure.LOST
    assert renewal_failure(CanceledError("closed"), state, 11.0) is Failure.CLOSED
    assert renewal_failure(UnavailableError("down"), state, 69.0) is Failure.RETRY
    assert renewal_failure(UnavailableError("down"), state, 70.0) is Failure.LOST
