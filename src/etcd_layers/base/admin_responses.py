"""Typed, immutable responses of the cluster, maintenance and auth administration calls."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from etcd_layers.base.ops import Permission
from etcd_layers.base.responses import ResponseHeader

# --- cluster ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Member:
    """One member of the cluster.

    `name` and `client_urls` are empty until a newly added member has started.
    """

    id: int
    name: str = ""
    peer_urls: list[str] = field(default_factory=list)
    client_urls: list[str] = field(default_factory=list)
    is_learner: bool = False


@dataclass(frozen=True, slots=True)
class MemberListResponse:
    """Every member of the cluster."""

    header: ResponseHeader
    members: list[Member] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class MemberAddResponse:
    """The member just added (`member`) and the member list after the change."""

    header: ResponseHeader
    member: Member
    members: list[Member] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class MemberRemoveResponse:
    """The member list after a member was removed."""

    header: ResponseHeader
    members: list[Member] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class MemberUpdateResponse:
    """The member list after a member's peer URLs were changed."""

    header: ResponseHeader
    members: list[Member] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class MemberPromoteResponse:
    """The member list after a learner was promoted to a voting member."""

    header: ResponseHeader
    members: list[Member] = field(default_factory=list)


# --- maintenance --------------------------------------------------------------------------


class AlarmType(enum.IntEnum):
    """The kind of an alarm a member raised (etcd's AlarmType)."""

    NONE = 0  # in alarm_disarm: every kind
    NOSPACE = 1  # the backend database exceeded its quota
    CORRUPT = 2  # the members' stores disagree


@dataclass(frozen=True, slots=True)
class AlarmMember:
    """One raised alarm: which member raised which kind."""

    member_id: int
    alarm: AlarmType


@dataclass(frozen=True, slots=True)
class AlarmResponse:
    """The alarms listed (alarm_list) or deactivated (alarm_disarm)."""

    header: ResponseHeader
    alarms: list[AlarmMember] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class StatusResponse:
    """One member's status.

    Attributes:
        header: `header.member_id` is the member that answered.
        version: the member's etcd version, e.g. "3.5.1".
        db_size: bytes allocated by the backend database file.
        leader: the member id of the leader the member knows (0: none).
        raft_index: the member's committed raft index.
        raft_term: the member's raft term.
        raft_applied_index: the member's applied raft index.
        errors: the alarm messages active on the member.
        db_size_in_use: bytes of the database file actually in use (the rest is free
            space that defragment() would give back).
        is_learner: whether the member is a learner.
    """

    header: ResponseHeader
    version: str = ""
    db_size: int = 0
    leader: int = 0
    raft_index: int = 0
    raft_term: int = 0
    raft_applied_index: int = 0
    errors: list[str] = field(default_factory=list)
    db_size_in_use: int = 0
    is_learner: bool = False


@dataclass(frozen=True, slots=True)
class DefragmentResponse:
    """The answer to a defragmentation of one member's backend."""

    header: ResponseHeader


@dataclass(frozen=True, slots=True)
class HashKVResponse:
    """The hash of one member's key-value store up to a revision.

    Members that applied the same history give the same hash for the same revision.
    """

    header: ResponseHeader
    hash: int = 0
    compact_revision: int = 0


@dataclass(frozen=True, slots=True)
class MoveLeaderResponse:
    """The answer to a leadership transfer."""

    header: ResponseHeader


@dataclass(frozen=True, slots=True)
class SnapshotResponse:
    """A backend snapshot that was received in full and verified.

    Attributes:
        header: the header of the stream's first message.
        size: bytes written: the database followed by its 32-byte sha256, the layout
            `etcdctl snapshot save` writes and `etcdutl snapshot restore` verifies.
        sha256: the database's sha256 digest, as the server sent it and the client
            recomputed it.
    """

    header: ResponseHeader
    size: int
    sha256: bytes


# --- auth ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RolePermission:
    r"""Access granted by a role to a key or key range (etcd's authpb.Permission).

    `range_end` is empty for a single key and b"\x00" for every key >= `key`;
    `key == range_end == b"\x00"` means every key.
    """

    perm_type: Permission
    key: bytes
    range_end: bytes = b""


@dataclass(frozen=True, slots=True)
class AuthEnableResponse:
    """The answer to enabling auth."""

    header: ResponseHeader


@dataclass(frozen=True, slots=True)
class AuthDisableResponse:
    """The answer to disabling auth."""

    header: ResponseHeader


@dataclass(frozen=True, slots=True)
class AuthStatusResponse:
    """Whether auth is enabled, and the auth store's revision."""

    header: ResponseHeader
    enabled: bool = False
    auth_revision: int = 0


@dataclass(frozen=True, slots=True)
class AuthUserAddResponse:
    """The answer to adding a user."""

    header: ResponseHeader


@dataclass(frozen=True, slots=True)
class AuthUserGetResponse:
    """The roles granted to a user."""

    header: ResponseHeader
    roles: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class AuthUserListResponse:
    """The names of every user."""

    header: ResponseHeader
    users: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class AuthUserDeleteResponse:
    """The answer to deleting a user."""

    header: ResponseHeader


@dataclass(frozen=True, slots=True)
class AuthUserChangePasswordResponse:
    """The answer to changing a user's password."""

    header: ResponseHeader


@dataclass(frozen=True, slots=True)
class AuthUserGrantRoleResponse:
    """The answer to granting a role to a user."""

    header: ResponseHeader


@dataclass(frozen=True, slots=True)
class AuthUserRevokeRoleResponse:
    """The answer to revoking a role from a user."""

    header: ResponseHeader


@dataclass(frozen=True, slots=True)
class AuthRoleAddResponse:
    """The answer to adding a role."""

    header: ResponseHeader


@dataclass(frozen=True, slots=True)
class AuthRoleGetResponse:
    """The permissions of a role (`perm`, etcd's field name; also as `permissions`)."""

    header: ResponseHeader
    perm: list[RolePermission] = field(default_factory=list)

    @property
    def permissions(self) -> list[RolePermission]:
        """The role's permissions (the same list as `perm`)."""
        return self.perm


@dataclass(frozen=True, slots=True)
class AuthRoleListResponse:
    """The names of every role."""

    header: ResponseHeader
    roles: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class AuthRoleDeleteResponse:
    """The answer to deleting a role."""

    header: ResponseHeader


@dataclass(frozen=True, slots=True)
class AuthRoleGrantPermissionResponse:
    """The answer to granting a permission to a role."""

    header: ResponseHeader


@dataclass(frozen=True, slots=True)
class AuthRoleRevokePermissionResponse:
    """The answer to revoking a permission from a role."""

    header: ResponseHeader
