"""The pure core of the admin calls: their gRPC methods, argument checks and conversions.

Nothing here does I/O; `_admin.AdminMixin` is the shell that sends the requests.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final
from urllib.parse import urlsplit

from etcd_layers.base import _convert
from etcd_layers.base._connection import parse_endpoint
from etcd_layers.base._methods import Method, method
from etcd_layers.base._proto import auth_pb2, rpc_pb2
from etcd_layers.base.admin_responses import (
    AlarmMember,
    AlarmResponse,
    AlarmType,
    Member,
    RolePermission,
    StatusResponse,
)
from etcd_layers.base.checks import check_int, key_range
from etcd_layers.base.keys import KEYSPACE_END, to_bytes
from etcd_layers.base.ops import Permission
from etcd_layers.errors import RoleEmptyError, UserEmptyError

_MAX_UINT64: Final = 2**64 - 1
_PEER_URL_SCHEMES: Final = ("http", "https", "unix", "unixs")

# --- methods ------------------------------------------------------------------------------

MEMBER_ADD: Final[Method[rpc_pb2.MemberAddResponse]] = method(
    "Cluster", "MemberAdd", rpc_pb2.MemberAddResponse
)
MEMBER_REMOVE: Final[Method[rpc_pb2.MemberRemoveResponse]] = method(
    "Cluster", "MemberRemove", rpc_pb2.MemberRemoveResponse
)
MEMBER_UPDATE: Final[Method[rpc_pb2.MemberUpdateResponse]] = method(
    "Cluster", "MemberUpdate", rpc_pb2.MemberUpdateResponse
)
MEMBER_LIST: Final[Method[rpc_pb2.MemberListResponse]] = method(
    "Cluster", "MemberList", rpc_pb2.MemberListResponse
)
MEMBER_PROMOTE: Final[Method[rpc_pb2.MemberPromoteResponse]] = method(
    "Cluster", "MemberPromote", rpc_pb2.MemberPromoteResponse
)
ALARM: Final[Method[rpc_pb2.AlarmResponse]] = method("Maintenance", "Alarm", rpc_pb2.AlarmResponse)
STATUS: Final[Method[rpc_pb2.StatusResponse]] = method(
    "Maintenance", "Status", rpc_pb2.StatusResponse
)
DEFRAGMENT: Final[Method[rpc_pb2.DefragmentResponse]] = method(
    "Maintenance", "Defragment", rpc_pb2.DefragmentResponse
)
HASH_KV: Final[Method[rpc_pb2.HashKVResponse]] = method(
    "Maintenance", "HashKV", rpc_pb2.HashKVResponse
)
MOVE_LEADER: Final[Method[rpc_pb2.MoveLeaderResponse]] = method(
    "Maintenance", "MoveLeader", rpc_pb2.MoveLeaderResponse
)
AUTH_ENABLE: Final[Method[rpc_pb2.AuthEnableResponse]] = method(
    "Auth", "AuthEnable", rpc_pb2.AuthEnableResponse
)
AUTH_DISABLE: Final[Method[rpc_pb2.AuthDisableResponse]] = method(
    "Auth", "AuthDisable", rpc_pb2.AuthDisableResponse
)
AUTH_STATUS: Final[Method[rpc_pb2.AuthStatusResponse]] = method(
    "Auth", "AuthStatus", rpc_pb2.AuthStatusResponse
)
USER_ADD: Final[Method[rpc_pb2.AuthUserAddResponse]] = method(
    "Auth", "UserAdd", rpc_pb2.AuthUserAddResponse
)
USER_GET: Final[Method[rpc_pb2.AuthUserGetResponse]] = method(
    "Auth", "UserGet", rpc_pb2.AuthUserGetResponse
)
USER_LIST: Final[Method[rpc_pb2.AuthUserListResponse]] = method(
    "Auth", "UserList", rpc_pb2.AuthUserListResponse
)
USER_DELETE: Final[Method[rpc_pb2.AuthUserDeleteResponse]] = method(
    "Auth", "UserDelete", rpc_pb2.AuthUserDeleteResponse
)
USER_CHANGE_PASSWORD: Final[Method[rpc_pb2.AuthUserChangePasswordResponse]] = method(
    "Auth", "UserChangePassword", rpc_pb2.AuthUserChangePasswordResponse
)
USER_GRANT_ROLE: Final[Method[rpc_pb2.AuthUserGrantRoleResponse]] = method(
    "Auth", "UserGrantRole", rpc_pb2.AuthUserGrantRoleResponse
)
USER_REVOKE_ROLE: Final[Method[rpc_pb2.AuthUserRevokeRoleResponse]] = method(
    "Auth", "UserRevokeRole", rpc_pb2.AuthUserRevokeRoleResponse
)
ROLE_ADD: Final[Method[rpc_pb2.AuthRoleAddResponse]] = method(
    "Auth", "RoleAdd", rpc_pb2.AuthRoleAddResponse
)
ROLE_GET: Final[Method[rpc_pb2.AuthRoleGetResponse]] = method(
    "Auth", "RoleGet", rpc_pb2.AuthRoleGetResponse
)
ROLE_LIST: Final[Method[rpc_pb2.AuthRoleListResponse]] = method(
    "Auth", "RoleList", rpc_pb2.AuthRoleListResponse
)
ROLE_DELETE: Final[Method[rpc_pb2.AuthRoleDeleteResponse]] = method(
    "Auth", "RoleDelete", rpc_pb2.AuthRoleDeleteResponse
)
ROLE_GRANT_PERMISSION: Final[Method[rpc_pb2.AuthRoleGrantPermissionResponse]] = method(
    "Auth", "RoleGrantPermission", rpc_pb2.AuthRoleGrantPermissionResponse
)
ROLE_REVOKE_PERMISSION: Final[Method[rpc_pb2.AuthRoleRevokePermissionResponse]] = method(
    "Auth", "RoleRevokePermission", rpc_pb2.AuthRoleRevokePermissionResponse
)


# --- argument checks (pure, before any I/O) ------------------------------------------------


class _EmptyUserNameError(UserEmptyError, ValueError):
    """An empty user name given to a call: both the server's error class and a ValueError."""


class _EmptyRoleNameError(RoleEmptyError, ValueError):
    """An empty role name given to a call: both the server's error class and a ValueError."""


def check_member_id(value: object, name: str = "member_id", *, allow_zero: bool = False) -> int:
    """Return a member id (a uint64; 0 only where it means "every member").

    Raises:
        TypeError: not an int.
        ValueError: negative, zero where not allowed, or above 2**64 - 1.
    """
    member_id = check_int(value, name)
    if member_id > _MAX_UINT64:
        raise ValueError(f"{name} must fit in 64 bits, got {member_id}")
    if member_id == 0 and not allow_zero:
        raise ValueError(f"{name} must be a member's id, not 0")
    return member_id


def check_peer_urls(peer_urls: object) -> list[str]:
    """Return the peer URLs of a member_add/member_update, checked as etcd's types.NewURLs does.

    A single str is taken as one URL.

    Raises:
        TypeError: not a str or a sequence of str.
        ValueError: no URL, or one that is not `http(s)://host:port` (or unix/unixs).
    """
    if isinstance(peer_urls, str):
        peer_urls = [peer_urls]
    if isinstance(peer_urls, (bytes, bytearray)) or not isinstance(peer_urls, Iterable):
        raise TypeError(f"peer_urls must be a list of str, not {type(peer_urls).__name__}")
    urls: list[str] = []
    for given in peer_urls:
        if not isinstance(given, str):
            raise TypeError(f"peer_urls must hold str, not {type(given).__name__}")
        url = given.strip()
        parts = urlsplit(url)
        if parts.scheme not in _PEER_URL_SCHEMES:
            raise ValueError(f"peer URL scheme must be http, https, unix or unixs: {url!r}")
        if parts.scheme in ("http", "https"):
            try:
                port = parts.port
            except ValueError:
                port = None
            if not parts.hostname or port is None:
                raise ValueError(f"peer URL must have the form scheme://host:port: {url!r}")
            if parts.path:
                raise ValueError(f"peer URL must not contain a path: {url!r}")
        urls.append(url)
    if not urls:
        raise ValueError("peer_urls must name at least one URL")
    return urls


def check_user_name(value: object, name: str = "name") -> str:
    """Return a user name.

    Raises:
        TypeError: not a str.
        UserEmptyError: empty (also a ValueError).
    """
    if not isinstance(value, str):
        raise TypeError(f"{name} must be str, not {type(value).__name__}")
    if not value:
        raise _EmptyUserNameError(f"{name} must not be empty")
    return value


def check_role_name(value: object, name: str = "role") -> str:
    """Return a role name.

    Raises:
        TypeError: not a str.
        RoleEmptyError: empty (also a ValueError).
    """
    if not isinstance(value, str):
        raise TypeError(f"{name} must be str, not {type(value).__name__}")
    if not value:
        raise _EmptyRoleNameError(f"{name} must not be empty")
    return value


def check_password(value: object) -> str:
    """Return a password (any str; etcd itself accepts an empty one).

    Raises:
        TypeError: not a str.
    """
    if not isinstance(value, str):
        raise TypeError(f"password must be str, not {type(value).__name__}")
    return value


def check_alarm(value: object) -> AlarmType:
    """Return an AlarmType.

    Raises:
        TypeError: not an AlarmType (or int).
        ValueError: an int that names no alarm.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"alarm must be an AlarmType, not {type(value).__name__}")
    try:
        return AlarmType(value)
    except ValueError:
        names = [alarm.name for alarm in AlarmType]
        raise ValueError(f"alarm must be one of {names}, got {value!r}") from None


def check_permission(value: object) -> Permission:
    """Return a Permission.

    Raises:
        TypeError: not a Permission (or int).
        ValueError: an int that names no permission.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"perm must be a Permission, not {type(value).__name__}")
    try:
        return Permission(value)
    except ValueError:
        names = [perm.name for perm in Permission]
        raise ValueError(f"perm must be one of {names}, got {value!r}") from None


def check_endpoint(value: object) -> str:
    """Return an endpoint as `host:port` (a scheme is accepted and stripped).

    Raises:
        TypeError: not a str.
        ValueError: not `host:port`.
    """
    address, _ = parse_endpoint(value)
    return address


def permission_range(key: object, range_end: object, prefix: object) -> tuple[bytes, bytes]:
    r"""Return etcd's (key, range_end) for a role permission, as etcdctl sends them.

    `prefix=True` with an empty key, or an empty key with a `range_end`, starts at b"\x00":
    etcd keeps permissions as intervals, and etcdctl sends [b"\x00", b"\x00") for "every key".

    Raises:
        TypeError: a wrong type.
        ValueError: `prefix` with `range_end`; an empty key that names no range.
    """
    if range_end is None or prefix is not False or to_bytes(key, name="key"):
        return key_range(key, range_end, prefix, False)
    # An empty key with a range_end: refused for KV ranges, but etcdctl's permission [b"", end).
    return KEYSPACE_END, to_bytes(range_end, name="range_end")


def endpoints_from_members(members: Iterable[Member]) -> list[str]:
    """Return the `host:port` client endpoints of the started voting members, in order.

    As clientv3's Sync, members that have not started (no name or no client URL yet) and
    learners (which refuse most requests) are left out; duplicates are dropped.
    """
    endpoints: list[str] = []
    for member in members:
        if not member.name or member.is_learner:
            continue
        for url in member.client_urls:
            try:
                address = check_endpoint(url)
            except ValueError:
                continue  # not host:port (a unix socket): this client cannot dial it
            if address not in endpoints:
                endpoints.append(address)
    return endpoints


# --- conversions (pure) -------------------------------------------------------------------


def member(message: rpc_pb2.Member) -> Member:
    """Return a Member."""
    return Member(
        message.ID,
        message.name,
        list(message.peerURLs),
        list(message.clientURLs),
        message.isLearner,
    )


def members(messages: Iterable[rpc_pb2.Member]) -> list[Member]:
    """Return a list of Members."""
    return [member(message) for message in messages]


def status_response(message: rpc_pb2.StatusResponse) -> StatusResponse:
    """Return a StatusResponse."""
    return StatusResponse(
        _convert.header(message.header),
        version=message.version,
        db_size=message.dbSize,
        leader=message.leader,
        raft_index=message.raftIndex,
        raft_term=message.raftTerm,
        raft_applied_index=message.raftAppliedIndex,
        errors=list(message.errors),
        db_size_in_use=message.dbSizeInUse,
        is_learner=message.isLearner,
    )


def alarm_response(message: rpc_pb2.AlarmResponse) -> AlarmResponse:
    """Return an AlarmResponse."""
    return AlarmResponse(
        _convert.header(message.header),
        [AlarmMember(alarm.memberID, AlarmType(alarm.alarm)) for alarm in message.alarms],
    )


def role_permission(message: auth_pb2.Permission) -> RolePermission:
    """Return a RolePermission."""
    return RolePermission(Permission(message.permType), message.key, message.range_end)
