"""What follows the end of a watch stream: the pure decision and the reconnect back-off."""

from __future__ import annotations

import enum
from typing import Final

from etcd_layers.base._watch_state import is_auth_refusal
from etcd_layers.base.retry import MAX_STREAM_BACKOFF, RETRY_BACKOFF, doubled
from etcd_layers.errors import DeadlineExceededError, EtcdError, NoLeaderError, UnavailableError

# The watch's reconnect back-off is the retry rule's (base.retry): the wait before the next
# stream doubles from BACKOFF up to MAX_BACKOFF after each stream that failed before answering.
BACKOFF: Final = RETRY_BACKOFF
MAX_BACKOFF: Final = MAX_STREAM_BACKOFF

# Why this client ended a stream itself (None: the stream failed).
IDLE: Final = "no watch left"
MOVED: Final = "endpoints changed"
DEAD: Final = "no answer to a progress probe"
REAUTH: Final = "the auth token was refused"
CLOSED: Final = "client closed"
INTERRUPTED: Final = "a consumer reading the stream was interrupted"


def next_backoff(backoff: float) -> float:
    """Return the wait before the stream after one that failed, given the last wait.

    A wait of 0 (the stream before ended on purpose) counts as BACKOFF, so a failing
    endpoint is never retried in a tight loop.
    """
    return doubled(backoff, MAX_BACKOFF)


class After(enum.Enum):
    """What the stream thread does once a stream ended."""

    NEXT = "open the next stream at once"
    FAILOVER = "mark the endpoint failed and back off"
    REAUTH = "log in again, then open the next stream"
    FAIL = "end every watch with the stream's error and back off"


def after_stream(
    reason: str | None,
    error: EtcdError | None,
    *,
    transport_failure: bool,
    has_credentials: bool,
) -> After:
    """Decide what follows a stream that ended.

    Args:
        reason: why this client ended the stream itself (None: it failed or ended cleanly).
        error: the stream's error, translated (None: the server ended it cleanly).
        transport_failure: the error's status is one a new stream may cure (the shell's
            gRPC codes: UNAVAILABLE, INTERNAL, and a CANCELLED we did not ask for).
        has_credentials: the client can log in again.
    """
    if reason in (IDLE, MOVED, CLOSED, INTERRUPTED):
        return After.NEXT
    if reason == REAUTH:
        return After.REAUTH
    if error is None or reason == DEAD:
        return After.FAILOVER
    # As clientv3's isHaltErr: retry transport failures, but end the watches on any other
    # error, and on a lost leader when require_leader asked for that.
    if transport_failure and not isinstance(error, NoLeaderError):
        return After.FAILOVER
    if is_auth_refusal(error) and has_credentials:
        return After.REAUTH
    return After.FAIL


def unconfirmed(
    *,
    bounded: bool,
    timeout: float | None,
    default_timeout: float | None,
    dial_timeout: float,
    addresses: list[str],
) -> EtcdError:
    """Return the error of a watch the server did not confirm in time.

    Args:
        bounded: the call had a deadline: `timeout`, or else the client's `default_timeout`.
        timeout: the call's own timeout (None: the client's default applied, if any).
        default_timeout: the client's default timeout.
        dial_timeout: the wait for a stream when the call had no deadline.
        addresses: the client's endpoints, named in the error.
    """
    if bounded:
        limit = default_timeout if timeout is None else timeout
        return DeadlineExceededError(f"the watch was not confirmed within {limit:g}s")
    return UnavailableError(
        f"the watch was not confirmed within dial_timeout ({dial_timeout:g}s)"
        f": no endpoint of {addresses} answered"
    )
