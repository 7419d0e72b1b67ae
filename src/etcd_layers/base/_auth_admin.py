"""Auth administration calls (auth enable/disable/status, users, roles), written once as flows.

`AuthAdminMixin` makes them Client methods; `_aio_calls` makes them AsyncClient coroutines.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from etcd_layers.base import _convert
from etcd_layers.base._admin_core import (
    AUTH_DISABLE,
    AUTH_ENABLE,
    AUTH_STATUS,
    ROLE_ADD,
    ROLE_DELETE,
    ROLE_GET,
    ROLE_GRANT_PERMISSION,
    ROLE_LIST,
    ROLE_REVOKE_PERMISSION,
    USER_ADD,
    USER_CHANGE_PASSWORD,
    USER_DELETE,
    USER_GET,
    USER_GRANT_ROLE,
    USER_LIST,
    USER_REVOKE_ROLE,
    check_password,
    check_permission,
    check_role_name,
    check_user_name,
    permission_range,
    role_permission,
)
from etcd_layers.base._flow import Flow, call, login, sync_call
from etcd_layers.base._proto import auth_pb2, rpc_pb2
from etcd_layers.base.admin_responses import (
    AuthDisableResponse,
    AuthEnableResponse,
    AuthRoleAddResponse,
    AuthRoleDeleteResponse,
    AuthRoleGetResponse,
    AuthRoleGrantPermissionResponse,
    AuthRoleListResponse,
    AuthRoleRevokePermissionResponse,
    AuthStatusResponse,
    AuthUserAddResponse,
    AuthUserChangePasswordResponse,
    AuthUserDeleteResponse,
    AuthUserGetResponse,
    AuthUserGrantRoleResponse,
    AuthUserListResponse,
    AuthUserRevokeRoleResponse,
)
from etcd_layers.base.checks import check_bool
from etcd_layers.base.keys import StrOrBytes
from etcd_layers.base.ops import Permission

if TYPE_CHECKING:
    from etcd_layers.base._connection import Connection


def auth_enable(*, timeout: float | None = None) -> Flow[AuthEnableResponse]:
    """Enable authentication (a `root` user with the `root` role must exist).

    A client given a user name and password logs in right after, so its next calls
    carry a token.

    Raises:
        RootUserNotExistError: there is no root user.
        RootRoleNotExistError: the root user lacks the root role.
    """
    message = yield from call(AUTH_ENABLE, rpc_pb2.AuthEnableRequest(), idempotent=False)
    yield from login()
    return AuthEnableResponse(_convert.header(message.header))


def auth_disable(*, timeout: float | None = None) -> Flow[AuthDisableResponse]:
    """Disable authentication (needs the root role while auth is enabled)."""
    message = yield from call(AUTH_DISABLE, rpc_pb2.AuthDisableRequest(), idempotent=False)
    return AuthDisableResponse(_convert.header(message.header))


def auth_status(*, timeout: float | None = None) -> Flow[AuthStatusResponse]:
    """Return whether auth is enabled, and the auth store's revision.

    Raises:
        NotCapableError: the server predates etcd 3.5, which added this RPC.
    """
    message = yield from call(AUTH_STATUS, rpc_pb2.AuthStatusRequest(), idempotent=True)
    return AuthStatusResponse(
        _convert.header(message.header), message.enabled, message.authRevision
    )


def user_add(
    name: str,
    password: str = "",
    *,
    no_password: bool = False,
    timeout: float | None = None,
) -> Flow[AuthUserAddResponse]:
    """Add a user.

    Args:
        name: the user's name.
        password: the user's password (sent to etcd, which stores a bcrypt hash).
        no_password: a user that cannot log in with a password (only by the common
            name of a TLS client certificate); `password` must then be empty.
        timeout: seconds (None: the client's default).

    Raises:
        UserAlreadyExistError: a user with this name exists.
    """
    user = check_user_name(name)
    secret = check_password(password)
    if check_bool(no_password, "no_password") and secret:
        raise ValueError("password must be empty with no_password=True")
    request = rpc_pb2.AuthUserAddRequest(
        name=user, password=secret, options=auth_pb2.UserAddOptions(no_password=no_password)
    )
    message = yield from call(USER_ADD, request, idempotent=False)
    return AuthUserAddResponse(_convert.header(message.header))


def user_delete(name: str, *, timeout: float | None = None) -> Flow[AuthUserDeleteResponse]:
    """Delete a user.

    Raises:
        UserNotFoundError: no user has this name.
    """
    request = rpc_pb2.AuthUserDeleteRequest(name=check_user_name(name))
    message = yield from call(USER_DELETE, request, idempotent=False)
    return AuthUserDeleteResponse(_convert.header(message.header))


def user_get(name: str, *, timeout: float | None = None) -> Flow[AuthUserGetResponse]:
    """Return the roles granted to a user.

    Raises:
        UserNotFoundError: no user has this name.
    """
    request = rpc_pb2.AuthUserGetRequest(name=check_user_name(name))
    message = yield from call(USER_GET, request, idempotent=True)
    return AuthUserGetResponse(_convert.header(message.header), list(message.roles))


def user_list(*, timeout: float | None = None) -> Flow[AuthUserListResponse]:
    """Return the names of every user."""
    message = yield from call(USER_LIST, rpc_pb2.AuthUserListRequest(), idempotent=True)
    return AuthUserListResponse(_convert.header(message.header), list(message.users))


def user_change_password(
    name: str, password: str, *, timeout: float | None = None
) -> Flow[AuthUserChangePasswordResponse]:
    """Set a user's password.

    Raises:
        UserNotFoundError: no user has this name.
    """
    request = rpc_pb2.AuthUserChangePasswordRequest(
        name=check_user_name(name), password=check_password(password)
    )
    message = yield from call(USER_CHANGE_PASSWORD, request, idempotent=False)
    return AuthUserChangePasswordResponse(_convert.header(message.header))


def user_grant_role(
    user: str, role: str, *, timeout: float | None = None
) -> Flow[AuthUserGrantRoleResponse]:
    """Grant a role to a user.

    Raises:
        UserNotFoundError: no user has this name.
        RoleNotFoundError: no role has this name.
    """
    request = rpc_pb2.AuthUserGrantRoleRequest(
        user=check_user_name(user, "user"), role=check_role_name(role)
    )
    message = yield from call(USER_GRANT_ROLE, request, idempotent=False)
    return AuthUserGrantRoleResponse(_convert.header(message.header))


def user_revoke_role(
    user: str, role: str, *, timeout: float | None = None
) -> Flow[AuthUserRevokeRoleResponse]:
    """Revoke a role from a user.

    Raises:
        UserNotFoundError: no user has this name.
        RoleNotGrantedError: the user does not have this role.
    """
    request = rpc_pb2.AuthUserRevokeRoleRequest(
        name=check_user_name(user, "user"), role=check_role_name(role)
    )
    message = yield from call(USER_REVOKE_ROLE, request, idempotent=False)
    return AuthUserRevokeRoleResponse(_convert.header(message.header))


def role_add(name: str, *, timeout: float | None = None) -> Flow[AuthRoleAddResponse]:
    """Add a role (with no permission yet).

    Raises:
        RoleAlreadyExistError: a role with this name exists.
    """
    request = rpc_pb2.AuthRoleAddRequest(name=check_role_name(name, "name"))
    message = yield from call(ROLE_ADD, request, idempotent=False)
    return AuthRoleAddResponse(_convert.header(message.header))


def role_delete(name: str, *, timeout: float | None = None) -> Flow[AuthRoleDeleteResponse]:
    """Delete a role (it is revoked from every user that had it).

    Raises:
        RoleNotFoundError: no role has this name.
    """
    request = rpc_pb2.AuthRoleDeleteRequest(role=check_role_name(name, "name"))
    message = yield from call(ROLE_DELETE, request, idempotent=False)
    return AuthRoleDeleteResponse(_convert.header(message.header))


def role_get(name: str, *, timeout: float | None = None) -> Flow[AuthRoleGetResponse]:
    """Return a role's permissions.

    Raises:
        RoleNotFoundError: no role has this name.
    """
    request = rpc_pb2.AuthRoleGetRequest(role=check_role_name(name, "name"))
    message = yield from call(ROLE_GET, request, idempotent=True)
    return AuthRoleGetResponse(
        _convert.header(message.header), [role_permission(perm) for perm in message.perm]
    )


def role_list(*, timeout: float | None = None) -> Flow[AuthRoleListResponse]:
    """Return the names of every role."""
    message = yield from call(ROLE_LIST, rpc_pb2.AuthRoleListRequest(), idempotent=True)
    return AuthRoleListResponse(_convert.header(message.header), list(message.roles))


def role_grant_permission(
    role: str,
    key: StrOrBytes,
    *,
    range_end: StrOrBytes | None = None,
    prefix: bool = False,
    perm: Permission = Permission.READWRITE,
    timeout: float | None = None,
) -> Flow[AuthRoleGrantPermissionResponse]:
    """Grant a role access to a key, a range [key, range_end), or every key under a prefix.

    `prefix=True` with an empty key grants every key (sent as etcdctl does).

    Raises:
        RoleNotFoundError: no role has this name.
    """
    name = check_role_name(role)
    raw_key, raw_end = permission_range(key, range_end, prefix)
    request = rpc_pb2.AuthRoleGrantPermissionRequest(
        name=name,
        perm=auth_pb2.Permission(
            permType=check_permission(perm).value,  # type: ignore[arg-type]  # wire value
            key=raw_key,
            range_end=raw_end,
        ),
    )
    message = yield from call(ROLE_GRANT_PERMISSION, request, idempotent=False)
    return AuthRoleGrantPermissionResponse(_convert.header(message.header))


def role_revoke_permission(
    role: str,
    key: StrOrBytes,
    *,
    range_end: StrOrBytes | None = None,
    prefix: bool = False,
    timeout: float | None = None,
) -> Flow[AuthRoleRevokePermissionResponse]:
    """Revoke the permission granted with the same key, range_end and prefix.

    Raises:
        RoleNotFoundError: no role has this name.
        PermissionNotGrantedError: the role has no permission on exactly that range.
    """
    name = check_role_name(role)
    raw_key, raw_end = permission_range(key, range_end, prefix)
    request = rpc_pb2.AuthRoleRevokePermissionRequest(role=name, key=raw_key, range_end=raw_end)
    message = yield from call(ROLE_REVOKE_PERMISSION, request, idempotent=False)
    return AuthRoleRevokePermissionResponse(_convert.header(message.header))


class AuthAdminMixin:
    """Authentication and role-based access administration."""

    _conn: Connection

    auth_enable = sync_call(auth_enable)
    auth_disable = sync_call(auth_disable)
    auth_status = sync_call(auth_status)
    user_add = sync_call(user_add)
    user_delete = sync_call(user_delete)
    user_get = sync_call(user_get)
    user_list = sync_call(user_list)
    user_change_password = sync_call(user_change_password)
    user_grant_role = sync_call(user_grant_role)
    user_revoke_role = sync_call(user_revoke_role)
    role_add = sync_call(role_add)
    role_delete = sync_call(role_delete)
    role_get = sync_call(role_get)
    role_list = sync_call(role_list)
    role_grant_permission = sync_call(role_grant_permission)
    role_revoke_permission = sync_call(role_revoke_permission)
