"""The retry rule: whether a failed attempt is sent again, to which endpoint, after what wait.

A pure core (no grpc, threads or clock): every shell that sends requests (unary calls, calls
pinned to one endpoint, the snapshot stream, keep-alive requests, the watch stream) asks
`decide()` what to do with a failure and waits `Backoff.next()` seconds before trying again.

The rule (documented in README "Retries"): a request is re-sent only when re-sending cannot
apply it twice.

* A read (idempotent) is retried after a transport failure (gRPC UNAVAILABLE that did not come
  from etcd itself) and, if it is a unary call that may go to any endpoint, after etcd refused
  it for a passing reason (leader changed, no leader yet unless require_leader is set, member
  stopping, read-index timeout), until the call's deadline.
* A write is re-sent only when the failure proves the request never left this process: no
  connection to the endpoint could be made. Any other failure of a write is raised to the
  caller, who alone knows whether the write is safe to repeat.
* A request refused because the auth token is invalid or outdated is re-sent once after logging
  in again: etcd checks the token before it applies anything.

Example, the loop every shell runs (the sync shell waits on its stop event, an asyncio shell
would `await asyncio.sleep`):

    backoff = Backoff()
    while True:
        try:
            return attempt(endpoint)
        except EtcdError as error:
            action = decide(error, idempotent=True, sent=False, left=deadline_left)
            if action is Retry.RAISE:
                raise failure(error, left=deadline_left) from error
            ...  # Retry.LOGIN: log in, try again at once; else wait backoff.next()
"""

from __future__ import annotations

import enum
from typing import Final

from etcd_layers.errors import (
    AuthOldRevisionError,
    DeadlineExceededError,
    EtcdError,
    InvalidAuthTokenError,
    LeaderChangedError,
    NoLeaderError,
    NotLeaderError,
    RequestTimeoutError,
    StoppedError,
    UnavailableError,
)

# The first wait before a retry; each retry of the same call doubles it, up to the maximum.
RETRY_BACKOFF: Final = 0.05
MAX_RETRY_BACKOFF: Final = 0.5  # Go's retryConnWait
MAX_STREAM_BACKOFF: Final = 1.0  # between a watch stream that failed and the next one
# How close to its deadline a call may be when etcd answers "request timed out" for that
# deadline to count as the cause (the server's copy of it expires a moment before ours).
DEADLINE_SLACK: Final = 0.05

# How gRPC's status details begin when a call failed before it was given to any connection:
# the load balancer had no connected subchannel to pick (its last connection error follows:
# refused, a TLS handshake failure, no SETTINGS frame before the connect timeout ...), or the
# name did not resolve. Printed from grpcio 1.85 (older wordings kept): "failed to connect to
# all addresses; last error: UNKNOWN: ipv4:127.0.0.1:2379: Failed to connect to remote host:
# Connection refused", "errors resolving no-such-host.invalid:2379: [...]". A failure on a live
# connection reads differently ("Stream removed (Socket closed)") and may follow a request the
# server received, so it never matches: the hints are prefixes, not substrings.
NEVER_SENT_PREFIXES: Final = (
    "failed to connect to all addresses",
    "errors resolving",
    "dns resolution failed",
    "failed to pick subchannel",
    "empty address list",
)

# etcd's passing refusals of a read: a leader change or election in progress, a stopping
# member, a read-index timeout. Go's client retries reads on any Unavailable status.
_PASSING_REFUSALS: Final = (LeaderChangedError, NotLeaderError, StoppedError, RequestTimeoutError)


class Retry(enum.Enum):
    """What to do with a failed attempt."""

    RAISE = "raise"  # the call fails with failure(error)
    HERE = "here"  # send again to the same endpoint, after the back-off
    ELSEWHERE = "elsewhere"  # send again to the next endpoint, after the back-off
    LOGIN = "login"  # log in again, then send again at once


class Backoff:
    """The waits between the retries of one call: RETRY_BACKOFF, doubling up to the maximum.

    Not shared between calls or threads: each call (or stream reconnect loop) makes its own.
    """

    __slots__ = ("_next",)

    def __init__(self) -> None:
        self._next = RETRY_BACKOFF

    def next(self) -> float:
        """Return the seconds to wait before the next retry, and double the one after."""
        wait = self._next
        self._next = doubled(wait)
        return wait

    def reset(self) -> None:
        """Start again from RETRY_BACKOFF (a stream that worked for a while)."""
        self._next = RETRY_BACKOFF


def doubled(wait: float, maximum: float = MAX_RETRY_BACKOFF) -> float:
    """Return the wait after `wait`: twice it, at least twice RETRY_BACKOFF, at most `maximum`.

    The one doubling rule of every back-off. A `wait` of 0 (the stream before ended on purpose)
    counts as RETRY_BACKOFF, so a failing endpoint is never retried in a tight loop.
    """
    return min(max(wait, RETRY_BACKOFF) * 2, maximum)


def is_transport_failure(error: EtcdError) -> bool:
    """Whether the connection failed, not etcd (etcd's own refusals are subclasses)."""
    return type(error) is UnavailableError


def is_auth_refusal(error: EtcdError) -> bool:
    """Whether etcd refused the request for its token, before applying anything."""
    return isinstance(error, (InvalidAuthTokenError, AuthOldRevisionError))


def never_sent(error: EtcdError) -> bool:
    """Whether a transport failure proves the request never left this process."""
    return str(error).lower().startswith(NEVER_SENT_PREFIXES)


def is_passing_refusal(error: EtcdError, *, require_leader: bool = False) -> bool:
    """Whether etcd refused a read for a reason another member or a moment later may not have.

    With require_leader, a member without a leader must fail fast instead.
    """
    if isinstance(error, NoLeaderError):
        return not require_leader
    return isinstance(error, _PASSING_REFUSALS)


def _own_deadline(error: EtcdError, left: float) -> bool:
    # etcd reports the call's own deadline, reached while proposing, as "request timed out":
    # that is this call's deadline, as API.md says, whoever saw it first.
    return isinstance(error, RequestTimeoutError) and left < DEADLINE_SLACK


def decide(
    error: EtcdError,
    *,
    idempotent: bool,
    sent: bool,
    left: float,
    pinned: bool = False,
    unary: bool = True,
    require_leader: bool = False,
    can_login: bool = False,
) -> Retry:
    """Decide what a call does after an attempt failed with `error`.

    Args:
        error: the attempt's failure.
        idempotent: re-sending cannot apply the request twice (a read).
        sent: the request is known to have reached the server (part of a stream's answer
            arrived); False when only the error can tell.
        left: seconds until the call's deadline (`math.inf` without one).
        pinned: the call must use one endpoint (maintenance calls): no failover.
        unary: a unary call, which a passing refusal by etcd sends elsewhere; streams raise it.
        require_leader: the client asked for a leader (NoLeaderError is then final).
        can_login: credentials were given and this call has not logged in again yet.
    """
    if is_auth_refusal(error):
        return Retry.LOGIN if can_login else Retry.RAISE
    if _own_deadline(error, left):
        return Retry.RAISE
    if is_transport_failure(error):
        if sent or not (idempotent or never_sent(error)):
            return Retry.RAISE
        return Retry.HERE if pinned else Retry.ELSEWHERE
    if (
        unary
        and idempotent
        and not pinned
        and is_passing_refusal(error, require_leader=require_leader)
    ):
        return Retry.ELSEWHERE
    return Retry.RAISE


def failure(error: EtcdError, *, left: float) -> EtcdError:
    """Return the error a call ends with after `decide` said RAISE for `error`."""
    if _own_deadline(error, left):
        return DeadlineExceededError(f"deadline exceeded ({error})")
    return error


def next_action(
    error: EtcdError,
    *,
    left: float,
    idempotent: bool,
    sent: bool,
    pinned: bool = False,
    unary: bool = True,
    require_leader: bool = False,
    can_login: bool = False,
) -> Retry:
    """Return what `decide` answers for `error`; for RAISE, raise the call's final error.

    The step both connection shells take after a failed attempt (arguments as `decide`).

    Raises:
        EtcdError: `failure(error)`: `error` itself, or a DeadlineExceededError from it.
    """
    action = decide(
        error,
        idempotent=idempotent,
        sent=sent,
        left=left,
        pinned=pinned,
        unary=unary,
        require_leader=require_leader,
        can_login=can_login,
    )
    if action is not Retry.RAISE:
        return action
    final = failure(error, left=left)
    if final is error:
        raise error
    raise final from error


def retrying_since(
    error: EtcdError, *, now: float, started: float | None, bounded: bool, dial_timeout: float
) -> float:
    """Return when a call's first attempt failed: `started`, or `now` for the first failure.

    Raises:
        EtcdError: `error`, once a call without a deadline has retried for `dial_timeout`.
    """
    if started is None:
        return now
    if not bounded and now - started > dial_timeout:
        raise error
    return started
