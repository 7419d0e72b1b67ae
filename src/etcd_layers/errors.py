"""The exception hierarchy of etcd_layers and the one translation from gRPC errors into it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Final

import grpc


class EtcdError(Exception):
    """Base of every error raised by etcd_layers."""


# --- request validation (raised before any I/O as well as by the server) -------------------


class EmptyKeyError(EtcdError, ValueError):
    """A key was empty where etcd needs one (no prefix, from_key or range given)."""


class InvalidSortOptionError(EtcdError, ValueError):
    """A sort order or sort target outside SortOrder / SortTarget."""


class ValueProvidedError(EtcdError, ValueError):
    """A put with ignore_value=True also carried a value."""


class LeaseProvidedError(EtcdError, ValueError):
    """A put with ignore_lease=True also carried a lease."""


class KeyNotFoundError(EtcdError):
    """A put with ignore_value or ignore_lease named a key that does not exist."""


class TooManyOpsError(EtcdError):
    """A txn carries more operations than the server allows (--max-txn-ops)."""


class DuplicateKeyError(EtcdError):
    """A txn writes the same key twice in one branch."""


class RequestTooLargeError(EtcdError):
    """A request or response exceeds a message-size limit (client's or server's)."""


class InvalidClientAPIVersionError(EtcdError):
    """The server does not accept this client's API version."""


# --- mvcc ---------------------------------------------------------------------------------


class CompactedError(EtcdError):
    """The requested revision has been compacted away.

    `compact_revision` is the first revision still available when the server says so
    (watch), and 0 otherwise (a get at a compacted revision).
    """

    def __init__(self, message: str, compact_revision: int = 0) -> None:
        super().__init__(message, compact_revision)
        self.compact_revision = compact_revision

    def __str__(self) -> str:
        return str(self.args[0])


class FutureRevisionError(EtcdError):
    """The requested revision is above the store's current revision."""


class NoSpaceError(EtcdError):
    """The backend database exceeded its quota (a NOSPACE alarm is active)."""


# --- leases -------------------------------------------------------------------------------


class LeaseNotFoundError(EtcdError):
    """The lease does not exist: never granted, revoked, or expired."""


class LeaseExistsError(EtcdError):
    """A grant asked for a lease id that is already in use."""


class LeaseTTLTooLargeError(EtcdError):
    """A grant asked for a TTL above the server's maximum."""


class WatchCanceledError(EtcdError):
    """The server canceled a watch."""


# --- cluster membership -------------------------------------------------------------------


class MemberExistError(EtcdError):
    """A member with that id already exists."""


class PeerURLExistError(EtcdError):
    """A member with one of those peer URLs already exists."""


class MemberNotEnoughStartedError(EtcdError):
    """Reconfiguration refused: too few members are started to keep quorum."""


class MemberBadURLsError(EtcdError):
    """The given member URLs are invalid."""


class MemberNotFoundError(EtcdError):
    """No member has that id."""


class MemberNotLearnerError(EtcdError):
    """Only a learner member can be promoted."""


class LearnerNotReadyError(EtcdError):
    """The learner is not yet in sync with the leader and cannot be promoted."""


class TooManyLearnersError(EtcdError):
    """The cluster already has the maximum number of learners."""


class NotSupportedForLearnerError(EtcdError):
    """The RPC was sent to a learner, which does not serve it."""


class BadLeaderTransfereeError(EtcdError):
    """move_leader named a member that cannot become leader."""


# --- auth ---------------------------------------------------------------------------------


class AuthError(EtcdError):
    """Base of the authentication and authorisation errors."""


class AuthFailedError(AuthError):
    """Authentication failed: wrong user name or password."""


class InvalidAuthTokenError(AuthError):
    """The auth token is invalid or expired (the client logs in again by itself)."""


class AuthOldRevisionError(AuthError):
    """The token predates a change of the auth store (the client logs in again by itself)."""


class PermissionDeniedError(AuthError):
    """The user lacks the permission the request needs."""


class AuthNotEnabledError(AuthError):
    """An auth operation needs auth to be enabled."""


class InvalidAuthMgmtError(AuthError):
    """An invalid auth management operation (for example revoking root's root role)."""


class UserEmptyError(AuthError):
    """A user name is empty."""


class UserAlreadyExistError(AuthError):
    """A user with that name already exists."""


class UserNotFoundError(AuthError):
    """No user has that name."""


class RoleEmptyError(AuthError):
    """A role name is empty."""


class RoleAlreadyExistError(AuthError):
    """A role with that name already exists."""


class RoleNotFoundError(AuthError):
    """No role has that name."""


class RoleNotGrantedError(AuthError):
    """The role is not granted to the user."""


class PermissionNotGrantedError(AuthError):
    """The permission is not granted to the role."""


class PermissionNotGivenError(AuthError):
    """A permission grant named no permission."""


class RootUserNotExistError(AuthError):
    """Enabling auth needs a root user."""


class RootRoleNotExistError(AuthError):
    """Enabling auth needs the root user to have the root role."""


# --- availability and leadership ----------------------------------------------------------


class UnavailableError(EtcdError):
    """No endpoint could be reached, or the member could not serve the request."""


class NoLeaderError(UnavailableError):
    """The member has no leader (with require_leader=True, or during an election)."""


class NotLeaderError(UnavailableError):
    """The request needs the leader and this member is not it."""


class LeaderChangedError(UnavailableError):
    """The leader changed while the request was being served."""


class StoppedError(UnavailableError):
    """The member is stopping."""


class UnhealthyError(UnavailableError):
    """The cluster is unhealthy (for example a reconfiguration would lose quorum)."""


class CorruptError(EtcdError):
    """The cluster has detected data corruption."""


class SnapshotError(EtcdError):
    """A snapshot stream was cut short, out of order, or failed its sha256 checksum."""


class NotCapableError(EtcdError):
    """The cluster's version does not support the request.

    etcd says so itself ("etcdserver: not capable"), or an older server does not know the
    RPC at all (gRPC UNIMPLEMENTED), as etcd 3.4 answers `auth_status`, added in 3.5.
    """


class OldClusterError(EtcdError):
    """`reject_old_cluster=True` and a member runs etcd older than 3.4 (Go's ErrOldCluster)."""


class RequestTimeoutError(EtcdError):
    """The server timed out serving the request (it may or may not have been applied)."""


class TooManyRequestsError(EtcdError):
    """The server is overloaded: too many requests in flight."""


class DowngradeError(EtcdError):
    """A cluster downgrade request was refused."""


class DeadlineExceededError(EtcdError, TimeoutError):
    """The call's deadline (the client's or the server's) passed before it completed."""


class CanceledError(EtcdError):
    """The call, watch or keep-alive was canceled, or the client is closed."""


# --- layers -------------------------------------------------------------------------------


class OrderViolationError(EtcdError):
    """A response's revision is older than one this client already saw.

    `response` is the offending response and `prev_revision` the revision seen before.
    """

    def __init__(self, message: str, response: object = None, prev_revision: int = 0) -> None:
        super().__init__(message, response, prev_revision)
        self.response = response
        self.prev_revision = prev_revision

    def __str__(self) -> str:
        return str(self.args[0])


class NoGreaterRevisionError(OrderViolationError):
    """Every endpoint tried answered with a revision older than one already seen."""


class ClosedError(CanceledError):
    """The client (or layer) is closed."""


_BY_MESSAGE: Final[dict[str, type[EtcdError]]] = {  # every etcdserver error string, one a line
    "etcdserver: key is not provided": EmptyKeyError,
    "etcdserver: key not found": KeyNotFoundError,
    "etcdserver: value is provided": ValueProvidedError,
    "etcdserver: lease is provided": LeaseProvidedError,
    "etcdserver: too many operations in txn request": TooManyOpsError,
    "etcdserver: duplicate key given in txn request": DuplicateKeyError,
    "etcdserver: invalid client api version": InvalidClientAPIVersionError,
    "etcdserver: invalid sort option": InvalidSortOptionError,
    "etcdserver: mvcc: required revision has been compacted": CompactedError,
    "etcdserver: mvcc: required revision is a future revision": FutureRevisionError,
    "etcdserver: mvcc: database space exceeded": NoSpaceError,
    "etcdserver: requested lease not found": LeaseNotFoundError,
    "etcdserver: lease already exists": LeaseExistsError,
    "etcdserver: too large lease TTL": LeaseTTLTooLargeError,
    "etcdserver: watch canceled": WatchCanceledError,
    "etcdserver: member ID already exist": MemberExistError,
    "etcdserver: Peer URLs already exists": PeerURLExistError,
    "etcdserver: re-configuration failed due to not enough started members": (
        MemberNotEnoughStartedError
    ),
    "etcdserver: given member URLs are invalid": MemberBadURLsError,
    "etcdserver: member not found": MemberNotFoundError,
    "etcdserver: can only promote a learner member": MemberNotLearnerError,
    "etcdserver: can only promote a learner member which is in sync with leader": (
        LearnerNotReadyError
    ),
    "etcdserver: too many learner members in cluster": TooManyLearnersError,
    "etcdserver: request is too large": RequestTooLargeError,
    "etcdserver: too many requests": TooManyRequestsError,
    "etcdserver: root user does not exist": RootUserNotExistError,
    "etcdserver: root user does not have root role": RootRoleNotExistError,
    "etcdserver: user name already exists": UserAlreadyExistError,
    "etcdserver: user name is empty": UserEmptyError,
    "etcdserver: user name not found": UserNotFoundError,
    "etcdserver: role name already exists": RoleAlreadyExistError,
    "etcdserver: role name not found": RoleNotFoundError,
    "etcdserver: role name is empty": RoleEmptyError,
    "etcdserver: authentication failed, invalid user ID or password": AuthFailedError,
    "etcdserver: permission not given": PermissionNotGivenError,
    "etcdserver: permission denied": PermissionDeniedError,
    "etcdserver: role is not granted to the user": RoleNotGrantedError,
    "etcdserver: permission is not granted to the role": PermissionNotGrantedError,
    "etcdserver: authentication is not enabled": AuthNotEnabledError,
    "etcdserver: invalid auth token": InvalidAuthTokenError,
    "etcdserver: invalid auth management": InvalidAuthMgmtError,
    "etcdserver: revision of auth store is old": AuthOldRevisionError,
    "etcdserver: no leader": NoLeaderError,
    "etcdserver: not leader": NotLeaderError,
    "etcdserver: leader changed": LeaderChangedError,
    "etcdserver: not capable": NotCapableError,
    "etcdserver: server stopped": StoppedError,
    "etcdserver: request timed out": RequestTimeoutError,
    "etcdserver: request timed out, possibly due to previous leader failure": (RequestTimeoutError),
    "etcdserver: request timed out, possibly due to connection lost": RequestTimeoutError,
    "etcdserver: request timed out, waiting for the applied index took too long": (
        RequestTimeoutError
    ),
    "etcdserver: unhealthy cluster": UnhealthyError,
    "etcdserver: corrupt cluster": CorruptError,
    "etcdserver: rpc not supported for learner": NotSupportedForLearnerError,
    "etcdserver: bad leader transferee": BadLeaderTransfereeError,
    "etcdserver: cluster version not found during downgrade": DowngradeError,
    "etcdserver: wrong downgrade target version format": DowngradeError,
    "etcdserver: invalid downgrade target version": DowngradeError,
    "etcdserver: cluster has a downgrade job in progress": DowngradeError,
    "etcdserver: no inflight downgrade job": DowngradeError,
    "etcdserver: request canceled": CanceledError,
    "etcdserver: context deadline exceeded": DeadlineExceededError,
    "context deadline exceeded": DeadlineExceededError,
    "context canceled": CanceledError,
}

_BY_CODE: Final[dict[grpc.StatusCode, type[EtcdError]]] = {  # when the message is not in the table
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
    grpc.StatusCode.CANCELLED: CanceledError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.UNAUTHENTICATED: InvalidAuthTokenError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: TooManyRequestsError,
    grpc.StatusCode.OUT_OF_RANGE: CompactedError,
    # An RPC the server predates (etcd 3.4 has no Auth/AuthStatus). clientv3 passes the bare
    # gRPC status through; we give it the class etcd uses for "your version cannot do that".
    grpc.StatusCode.UNIMPLEMENTED: NotCapableError,
}

# gRPC's own wording when a message exceeds a size limit, on either side of the call.
_SIZE_LIMIT_HINTS: Final = ("larger than max", "message too large", "exceeds maximum")


def error_class(code: grpc.StatusCode | None, details: str) -> type[EtcdError]:
    """Return the EtcdError class for a gRPC status code and its details string."""
    cls = _BY_MESSAGE.get(details)
    if cls is not None:
        return cls
    if code is grpc.StatusCode.RESOURCE_EXHAUSTED and any(
        hint in details.lower() for hint in _SIZE_LIMIT_HINTS
    ):
        return RequestTooLargeError
    if code is None:
        return EtcdError
    return _BY_CODE.get(code, EtcdError)


def from_rpc_error(err: grpc.RpcError) -> EtcdError:
    """Return the most specific EtcdError for a failed RPC."""
    # Failed calls raise objects that are both RpcError and Call; the stubs cannot say so.
    code_of = getattr(err, "code", None)
    details_of = getattr(err, "details", None)
    code: grpc.StatusCode | None = code_of() if callable(code_of) else None
    details = (details_of() if callable(details_of) else None) or ""
    cls = error_class(code, details)
    message = details or (code.name if code is not None else str(err))
    return cls(message)


@contextlib.contextmanager
def translate_rpc_errors() -> Iterator[None]:
    """Re-raise any grpc.RpcError inside the block as its EtcdError."""
    try:
        yield
    except grpc.RpcError as err:
        raise from_rpc_error(err) from err
