"""The keep-alive schedule without a server or clock: what is sent, lost and delivered when."""

from __future__ import annotations

import pytest

from etcd_layers.base import KeepAliveStats
from etcd_layers.base._keepalive_schedule import (
    FIRST_ANSWER_WAIT,
    MAX_ANSWER_WAIT,
    MIN_ANSWER_WAIT,
    TICK,
    LeaseState,
    Schedule,
)


def test_schedule_sends_a_new_lease_at_once_and_not_again_before_its_answer() -> None:
    """An added lease is due now; while its request is unanswered nothing more is sent."""
    schedule: Schedule[str] = Schedule()
    schedule.add(7, "handle")
    assert schedule.due(0.0, streaming=True).send == [7]
    assert schedule.due(0.1, streaming=True).send == []


def test_schedule_sends_nothing_without_a_stream() -> None:
    """With no stream open, leases wait (and no request counts as unanswered)."""
    schedule: Schedule[str] = Schedule()
    schedule.add(7, "handle")
    due = schedule.due(0.0, streaming=False)
    assert (due.send, due.stalled, due.wait) == ([], False, TICK)


def test_schedule_renews_at_a_third_of_the_ttl() -> None:
    """After an answer with TTL 9, the next renewal is due 3 seconds later."""
    schedule: Schedule[str] = Schedule()
    schedule.add(7, "handle")
    schedule.due(0.0, streaming=True)
    assert schedule.answered(7, 9, 0.5) == (["handle"], False)
    assert schedule.due(3.4, streaming=True).send == []
    assert schedule.due(3.5, streaming=True).send == [7]


def test_schedule_reports_a_stall_after_the_answer_wait() -> None:
    """A request unanswered for its answer wait stalls the stream."""
    schedule: Schedule[str] = Schedule()
    schedule.add(7, "handle")
    schedule.due(0.0, streaming=True)
    assert not schedule.due(FIRST_ANSWER_WAIT - 0.01, streaming=True).stalled
    assert schedule.due(FIRST_ANSWER_WAIT, streaming=True).stalled


def test_schedule_resends_unanswered_requests_on_a_new_stream() -> None:
    """attached() makes every unanswered request due again at once."""
    schedule: Schedule[str] = Schedule()
    schedule.add(7, "handle")
    schedule.due(0.0, streaming=True)
    schedule.attached(0.2)
    assert schedule.due(0.2, streaming=True).send == [7]


def test_schedule_loses_a_lease_not_confirmed_within_its_ttl() -> None:
    """A lease whose last confirmed request is a TTL old is lost and no longer scheduled."""
    schedule: Schedule[str] = Schedule()
    schedule.add(7, "handle")
    schedule.due(0.0, streaming=True)
    schedule.answered(7, 3, 0.1)
    due = schedule.due(3.0, streaming=False)
    assert [lease.lease_id for lease in due.lost] == [7]
    assert due.lost[0].handles == ["handle"]
    assert schedule.stats().leases == 0


def test_schedule_answer_for_a_missing_lease_ends_it() -> None:
    """TTL 0 (etcd's answer for a missing lease) ends every handle of the lease."""
    schedule: Schedule[str] = Schedule()
    schedule.add(7, "one")
    schedule.add(7, "two")
    schedule.due(0.0, streaming=True)
    assert schedule.answered(7, 0, 0.1) == (["one", "two"], True)
    assert schedule.answered(7, 10, 0.2) == ([], False)  # no longer kept alive


def test_schedule_drops_a_lease_with_its_last_handle() -> None:
    """remove() stops renewing only when no handle of the lease is left."""
    schedule: Schedule[str] = Schedule()
    schedule.add(7, "one")
    schedule.add(7, "two")
    schedule.remove(7, "one")
    assert schedule.stats().leases == 1
    schedule.remove(7, "two")
    assert schedule.stats() == KeepAliveStats()


@pytest.mark.parametrize(
    ("ttl", "wait"),
    [(0, FIRST_ANSWER_WAIT), (1, MIN_ANSWER_WAIT), (9, 3.0), (600, MAX_ANSWER_WAIT)],
)
def test_lease_answer_wait_is_a_third_of_the_ttl_within_bounds(ttl: int, wait: float) -> None:
    """The answer wait is TTL/3, bounded, and FIRST_ANSWER_WAIT before any TTL is known."""
    assert LeaseState(1, ttl=ttl).answer_wait() == wait


def test_schedule_counts_what_it_did() -> None:
    """stats() counts requests sent, confirmations, stalls and losses."""
    schedule: Schedule[str] = Schedule()
    schedule.add(1, "a")
    schedule.add(2, "b")
    schedule.due(0.0, streaming=True)
    schedule.answered(1, 9, 0.1)
    schedule.due(FIRST_ANSWER_WAIT, streaming=True)  # lease 2 unanswered: a stall
    assert schedule.stats() == KeepAliveStats(
        leases=2, handles=2, sent=2, confirmed=1, stalls=1, lost=0
    )
