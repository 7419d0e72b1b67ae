"""The retry rule without a server: decide() by tables, the back-off, the ending error."""

from __future__ import annotations

import itertools
import math

import pytest

from etcd_layers import errors
from etcd_layers.base.retry import (
    DEADLINE_SLACK,
    MAX_RETRY_BACKOFF,
    RETRY_BACKOFF,
    Backoff,
    Retry,
    decide,
    failure,
    never_sent,
    next_action,
    retrying_since,
)

REFUSED = errors.UnavailableError(
    "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:2379: "
    "Failed to connect to remote host: Connection refused"
)
DROPPED = errors.UnavailableError("Socket closed")
READ, WRITE = True, False

# (label, error, idempotent, pinned, unary, expected) with sent=False, time left, no credentials
TABLE: list[tuple[str, errors.EtcdError, bool, bool, bool, Retry]] = [
    ("read, transport failure", DROPPED, READ, False, True, Retry.ELSEWHERE),
    ("read, never sent", REFUSED, READ, False, True, Retry.ELSEWHERE),
    ("write, never sent", REFUSED, WRITE, False, True, Retry.ELSEWHERE),
    ("write, may have been sent", DROPPED, WRITE, False, True, Retry.RAISE),
    ("pinned read, transport failure", DROPPED, READ, True, True, Retry.HERE),
    ("pinned write, never sent", REFUSED, WRITE, True, True, Retry.HERE),
    ("pinned write, may have been sent", DROPPED, WRITE, True, True, Retry.RAISE),
    ("stream read, transport failure", DROPPED, READ, False, False, Retry.ELSEWHERE),
    ("read, leader changed", errors.LeaderChangedError("x"), READ, False, True, Retry.ELSEWHERE),
    ("read, not leader", errors.NotLeaderError("x"), READ, False, True, Retry.ELSEWHERE),
    ("read, member stopping", errors.StoppedError("x"), READ, False, True, Retry.ELSEWHERE),
    ("read, no leader", errors.NoLeaderError("x"), READ, False, True, Retry.ELSEWHERE),
    (
        "read, request timed out",
        errors.RequestTimeoutError("x"),
        READ,
        False,
        True,
        Retry.ELSEWHERE,
    ),
    ("write, leader changed", errors.LeaderChangedError("x"), WRITE, False, True, Retry.RAISE),
    ("pinned read, leader changed", errors.LeaderChangedError("x"), READ, True, True, Retry.RAISE),
    (
        "stream read, leader changed",
        errors.LeaderChangedError("x"),
        READ,
        False,
        False,
        Retry.RAISE,
    ),
    ("read, unhealthy", errors.UnhealthyError("x"), READ, False, True, Retry.RAISE),
    ("read, key error", errors.CompactedError("x", 3), READ, False, True, Retry.RAISE),
    ("read, closed", errors.ClosedError("x"), READ, False, True, Retry.RAISE),
    ("read, deadline", errors.DeadlineExceededError("x"), READ, False, True, Retry.RAISE),
    ("read, permission", errors.PermissionDeniedError("x"), READ, False, True, Retry.RAISE),
]


@pytest.mark.parametrize(
    ("label", "error", "idempotent", "pinned", "unary", "expected"),
    TABLE,
    ids=[row[0] for row in TABLE],
)
def test_decide_follows_the_retry_rule(
    label: str,
    error: errors.EtcdError,
    idempotent: bool,
    pinned: bool,
    unary: bool,
    expected: Retry,
) -> None:
    """Reads fail over, writes only when never sent, pinned calls stay, streams skip refusals."""
    action = decide(
        error, idempotent=idempotent, sent=False, left=math.inf, pinned=pinned, unary=unary
    )
    assert action is expected


@pytest.mark.parametrize("idempotent", [READ, WRITE])
def test_decide_raises_a_transport_failure_once_the_answer_began(idempotent: bool) -> None:
    """A stream whose answer began to arrive is never sent again (the snapshot's rule)."""
    for error in (DROPPED, REFUSED):
        assert decide(error, idempotent=idempotent, sent=True, left=math.inf) is Retry.RAISE


@pytest.mark.parametrize(
    "error", [errors.InvalidAuthTokenError("x"), errors.AuthOldRevisionError("x")]
)
@pytest.mark.parametrize(("can_login", "expected"), [(True, Retry.LOGIN), (False, Retry.RAISE)])
def test_decide_logs_in_again_once_on_a_token_refusal(
    error: errors.EtcdError, can_login: bool, expected: Retry
) -> None:
    """A refused token means one login and a new attempt, for reads and writes alike."""
    for idempotent in (READ, WRITE):
        action = decide(error, idempotent=idempotent, sent=False, left=1.0, can_login=can_login)
        assert action is expected


def test_decide_with_require_leader_raises_no_leader() -> None:
    """With require_leader, a member without a leader fails the read at once."""
    action = decide(
        errors.NoLeaderError("x"), idempotent=True, sent=False, left=1.0, require_leader=True
    )
    assert action is Retry.RAISE


def test_request_timed_out_at_the_deadline_is_the_calls_deadline() -> None:
    """etcd's 'request timed out' right at the call's deadline ends it as DeadlineExceeded."""
    error = errors.RequestTimeoutError("etcdserver: request timed out")
    left = DEADLINE_SLACK / 2
    assert decide(error, idempotent=True, sent=False, left=left) is Retry.RAISE
    ending = failure(error, left=left)
    assert isinstance(ending, errors.DeadlineExceededError)
    assert failure(error, left=1.0) is error
    assert failure(DROPPED, left=0.0) is DROPPED


def test_never_sent_matches_only_connection_failures_before_sending() -> None:
    """Only gRPC's 'no connection could be made' wordings prove a request never left."""
    assert never_sent(REFUSED)
    assert never_sent(errors.UnavailableError("DNS resolution failed for x:1"))
    assert not never_sent(DROPPED)
    assert not never_sent(errors.UnavailableError("x: failed to connect to all addresses"))


def test_backoff_doubles_up_to_its_cap_and_resets() -> None:
    """Waits start at RETRY_BACKOFF, double, stop at MAX_RETRY_BACKOFF, and reset."""
    backoff = Backoff()
    waits = [backoff.next() for _ in range(8)]
    assert waits[:4] == [RETRY_BACKOFF, RETRY_BACKOFF * 2, RETRY_BACKOFF * 4, RETRY_BACKOFF * 8]
    assert waits[-1] == MAX_RETRY_BACKOFF
    assert all(b >= a for a, b in itertools.pairwise(waits))
    backoff.reset()
    assert backoff.next() == RETRY_BACKOFF


def test_next_action_returns_a_retry_and_raises_a_final_error() -> None:
    """next_action passes on decide()'s retries and raises what failure() makes of RAISE."""
    unavailable = errors.UnavailableError("failed to connect to all addresses")
    assert next_action(unavailable, left=1.0, idempotent=True, sent=False) is Retry.ELSEWHERE
    assert next_action(unavailable, left=1.0, idempotent=True, sent=False, pinned=True) is (
        Retry.HERE
    )
    refused = errors.InvalidAuthTokenError("etcdserver: invalid auth token")
    assert next_action(refused, left=1.0, idempotent=False, sent=True, can_login=True) is (
        Retry.LOGIN
    )
    lost = errors.UnavailableError("Socket closed")
    with pytest.raises(errors.UnavailableError) as raised:
        next_action(lost, left=1.0, idempotent=False, sent=False)
    assert raised.value is lost  # the write's own error, never re-sent
    timed_out = errors.RequestTimeoutError("etcdserver: request timed out")
    with pytest.raises(errors.DeadlineExceededError) as expired:
        next_action(timed_out, left=0.0, idempotent=True, sent=False)
    assert expired.value.__cause__ is timed_out


def test_retrying_since_keeps_the_first_failure_and_ends_at_dial_timeout() -> None:
    """The first failure starts the clock; without a deadline retries end after dial_timeout."""
    error = errors.UnavailableError("failed to connect to all addresses")
    assert retrying_since(error, now=5.0, started=None, bounded=False, dial_timeout=2.0) == 5.0
    assert retrying_since(error, now=6.9, started=5.0, bounded=False, dial_timeout=2.0) == 5.0
    assert retrying_since(error, now=9.0, started=5.0, bounded=True, dial_timeout=2.0) == 5.0
    with pytest.raises(errors.UnavailableError) as raised:
        retrying_since(error, now=7.5, started=5.0, bounded=False, dial_timeout=2.0)
    assert raised.value is error
