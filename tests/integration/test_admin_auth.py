"""Auth administration against real etcd: users, roles, permissions, and their enforcement."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import pytest

from etcd_layers import Client, Permission, errors
from etcd_layers.base import RolePermission
from etcd_layers.testing import EtcdCluster, EtcdServer, requires_etcd, requires_etcd_before
from etcd_layers.testing.plugin import EtcdClusterFactory, require_etcd

TIMEOUT = 10.0
ROOT_PASSWORD = "root-secret"
FAST_BCRYPT = ["--bcrypt-cost=4"]  # the lowest cost etcd accepts: logins are on every test
NO_AUTH_STATUS = "AuthStatus is an RPC added in etcd 3.5"
_names = itertools.count()


def unique(kind: str) -> str:
    """A user or role name no other test of the module uses."""
    return f"{kind}-{next(_names)}"


def enable_auth(server: EtcdCluster) -> Client:
    """Make root, give it the root role and enable auth, all through the admin calls."""
    root = Client(
        endpoints=server.endpoints, username="root", password=ROOT_PASSWORD, timeout=TIMEOUT
    )
    try:
        root.user_add("root", ROOT_PASSWORD)
        root.user_grant_role("root", "root")
        root.auth_enable()  # the client logs in right after, so it can go on as root
    except BaseException:
        root.close()
        raise
    return root


@pytest.fixture(scope="module")
def server() -> Iterator[EtcdServer]:
    """A server of this module's own: auth is enabled on it, which no other module expects."""
    require_etcd()
    with EtcdServer(extra_args=FAST_BCRYPT) as started:
        yield started


@pytest.fixture(scope="module")
def first_root(server: EtcdServer) -> Iterator[Client]:
    """The Client that enabled auth on the module's server, logged in as root."""
    with enable_auth(server) as client:
        yield client


@pytest.fixture(params=("Client", "AsyncClient"))
def root(
    request: pytest.FixtureRequest,
    first_root: Client,
    server: EtcdServer,
    make_client: Callable[..., Client],
) -> Iterator[Client]:
    """A root client of each kind (see conftest.py) on the module's server, auth enabled."""
    if request.param == "Client":
        yield first_root
        return
    with make_client(
        request.param, server.endpoints, username="root", password=ROOT_PASSWORD, timeout=TIMEOUT
    ) as client:
        yield client


def login(server: EtcdServer, user: str, password: str) -> Client:
    """A client logged in as `user`."""
    return Client(endpoints=server.endpoints, username=user, password=password, timeout=TIMEOUT)


def user_with_role(root: Client, role: str) -> tuple[str, str]:
    """Add a user holding `role`; return its name and password."""
    user, password = unique("user"), "pw"
    root.user_add(user, password)
    root.user_grant_role(user, role)
    return user, password


# --- status and users -----------------------------------------------------------------------


@requires_etcd(3, 5, reason=NO_AUTH_STATUS)
def test_auth_status_reports_auth_enabled(root: Client) -> None:
    """Once enabled, auth_status says so and names a non-zero auth revision."""
    status = root.auth_status()
    assert status.enabled
    assert status.auth_revision > 0


@requires_etcd_before(3, 5, reason=NO_AUTH_STATUS)
def test_auth_status_on_an_older_etcd_raises_not_capable(root: Client) -> None:
    """etcd 3.4 does not know the RPC: NotCapableError, and the client stays usable."""
    with pytest.raises(errors.NotCapableError, match="AuthStatus"):
        root.auth_status()
    assert "root" in root.user_list().users


def test_user_add_lists_the_user_without_roles(root: Client) -> None:
    """A new user is listed and holds no role yet."""
    user = unique("user")
    root.user_add(user, "pw")
    assert user in root.user_list().users
    assert root.user_get(user).roles == []


def test_user_add_of_an_existing_user_raises(root: Client) -> None:
    """A user name can be taken once."""
    user = unique("user")
    root.user_add(user, "pw")
    with pytest.raises(errors.UserAlreadyExistError):
        root.user_add(user, "other")


def test_user_delete_removes_the_user(root: Client) -> None:
    """A deleted user is no longer listed and cannot be read."""
    user = unique("user")
    root.user_add(user, "pw")
    root.user_delete(user)
    assert user not in root.user_list().users
    with pytest.raises(errors.UserNotFoundError):
        root.user_get(user)


def test_user_grant_and_revoke_role_change_the_user_roles(root: Client) -> None:
    """Granted roles show in user_get; a revoked one is gone."""
    user, first, second = unique("user"), unique("role"), unique("role")
    root.user_add(user, "pw")
    root.role_add(first)
    root.role_add(second)
    root.user_grant_role(user, first)
    root.user_grant_role(user, second)
    assert sorted(root.user_get(user).roles) == sorted([first, second])
    root.user_revoke_role(user, first)
    assert root.user_get(user).roles == [second]


def test_user_revoke_role_not_granted_raises(root: Client) -> None:
    """Revoking a role the user does not hold raises RoleNotGrantedError."""
    user, role = unique("user"), unique("role")
    root.user_add(user, "pw")
    root.role_add(role)
    with pytest.raises(errors.RoleNotGrantedError):
        root.user_revoke_role(user, role)


def test_user_change_password_replaces_the_old_one(root: Client, server: EtcdServer) -> None:
    """After a change, the new password logs in and the old one is refused."""
    user = unique("user")
    root.user_add(user, "old-password")
    root.user_change_password(user, "new-password")
    with login(server, user, "new-password") as client:
        assert client.endpoints == server.endpoints
    with pytest.raises(errors.AuthFailedError):
        login(server, user, "old-password")


# --- roles and permissions ----------------------------------------------------------------


def test_role_add_lists_the_role_and_role_delete_removes_it(root: Client) -> None:
    """A role is listed once added and gone once deleted."""
    role = unique("role")
    root.role_add(role)
    assert role in root.role_list().roles
    root.role_delete(role)
    assert role not in root.role_list().roles
    with pytest.raises(errors.RoleNotFoundError):
        root.role_get(role)


def test_role_grant_permission_stores_each_kind_of_range(root: Client) -> None:
    """A single key, a range, a prefix and "every key" are stored as etcdctl stores them."""
    role = unique("role")
    root.role_add(role)
    root.role_grant_permission(role, "single", perm=Permission.READ)
    root.role_grant_permission(role, "a", range_end="c", perm=Permission.WRITE)
    root.role_grant_permission(role, b"/p/", prefix=True)
    root.role_grant_permission(role, "", prefix=True, perm=Permission.READ)
    assert set(root.role_get(role).perm) == {
        RolePermission(Permission.READ, b"single", b""),
        RolePermission(Permission.WRITE, b"a", b"c"),
        RolePermission(Permission.READWRITE, b"/p/", b"/p0"),
        RolePermission(Permission.READ, b"\x00", b"\x00"),
    }


def test_role_revoke_permission_removes_exactly_that_range(root: Client) -> None:
    """Revoking with the same key and prefix removes the permission; a second revoke raises."""
    role = unique("role")
    root.role_add(role)
    root.role_grant_permission(role, "/keep/", prefix=True)
    root.role_grant_permission(role, "/drop/", prefix=True)
    root.role_revoke_permission(role, "/drop/", prefix=True)
    assert root.role_get(role).perm == [RolePermission(Permission.READWRITE, b"/keep/", b"/keep0")]
    with pytest.raises(errors.PermissionNotGrantedError):
        root.role_revoke_permission(role, "/drop/", prefix=True)


# --- enforcement --------------------------------------------------------------------------


def test_rbac_limits_a_user_to_its_prefix(
    root: Client, server: EtcdServer, etcd_key_prefix: bytes
) -> None:
    """A user whose role covers one prefix reads and writes there and nowhere else."""
    role = unique("role")
    inside, outside = etcd_key_prefix + b"mine/", etcd_key_prefix + b"theirs/"
    root.role_add(role)
    root.role_grant_permission(role, inside, prefix=True)
    root.put(outside + b"k", b"root's")
    user, password = user_with_role(root, role)

    with login(server, user, password) as client:
        client.put(inside + b"k", b"v")
        assert client.get(inside, prefix=True).kvs[0].value == b"v"
        with pytest.raises(errors.PermissionDeniedError):
            client.put(outside + b"k", b"v")
        with pytest.raises(errors.PermissionDeniedError):
            client.get(outside + b"k")
        with pytest.raises(errors.PermissionDeniedError):
            client.get(etcd_key_prefix, prefix=True)  # a range reaching past the prefix
    assert root.get(outside + b"k").kvs[0].value == b"root's"


def test_rbac_read_permission_on_every_key_refuses_writes(
    root: Client, server: EtcdServer, etcd_key_prefix: bytes
) -> None:
    """READ on every key (empty key with prefix) lets a user read anything and write nothing."""
    role = unique("role")
    root.role_add(role)
    root.role_grant_permission(role, "", prefix=True, perm=Permission.READ)
    root.put(etcd_key_prefix + b"k", b"v")
    user, password = user_with_role(root, role)

    with login(server, user, password) as client:
        assert client.get(etcd_key_prefix + b"k").kvs[0].value == b"v"
        assert client.get("", prefix=True, count_only=True).count >= 1
        with pytest.raises(errors.PermissionDeniedError):
            client.put(etcd_key_prefix + b"k", b"w")


def test_rbac_revoked_permission_is_enforced_on_a_logged_in_client(
    root: Client, server: EtcdServer, etcd_key_prefix: bytes
) -> None:
    """A permission revoked while a user's client is logged in stops working for it."""
    role = unique("role")
    root.role_add(role)
    root.role_grant_permission(role, etcd_key_prefix, prefix=True)
    user, password = user_with_role(root, role)

    with login(server, user, password) as client:
        client.put(etcd_key_prefix + b"k", b"v")
        root.role_revoke_permission(role, etcd_key_prefix, prefix=True)
        with pytest.raises(errors.PermissionDeniedError):
            client.put(etcd_key_prefix + b"k", b"w")
    assert root.get(etcd_key_prefix + b"k").kvs[0].value == b"v"


def test_rbac_refuses_a_client_without_credentials(server: EtcdServer, root: Client) -> None:
    """With auth enabled, a request carrying no user is refused."""
    with (
        Client(endpoints=server.endpoints, timeout=TIMEOUT) as anonymous,
        pytest.raises(errors.UserEmptyError),
    ):
        anonymous.get("k")


# --- enabling and disabling (servers of their own) ------------------------------------------


def test_auth_enable_without_a_root_user_raises(
    etcd_cluster_factory: EtcdClusterFactory, etcd_key_prefix: bytes
) -> None:
    """etcd refuses to enable auth before a root user exists; auth stays disabled."""
    cluster = etcd_cluster_factory(1)
    with Client(endpoints=cluster.endpoints, timeout=TIMEOUT) as cli:
        with pytest.raises(errors.RootUserNotExistError):
            cli.auth_enable()
        # Still disabled: a request carrying no user is served (auth_status needs etcd 3.5).
        assert cli.put(etcd_key_prefix + b"k", b"v").header.revision > 0


def test_auth_disable_lets_clients_without_credentials_back_in(
    etcd_cluster_factory: EtcdClusterFactory, etcd_key_prefix: bytes
) -> None:
    """After auth_disable, a client with no user reads and writes again."""
    cluster = etcd_cluster_factory(1, extra_args=FAST_BCRYPT)
    with enable_auth(cluster) as root_client:
        with Client(endpoints=cluster.endpoints, timeout=TIMEOUT) as anonymous:
            with pytest.raises(errors.UserEmptyError):
                anonymous.put(etcd_key_prefix + b"k", b"v")
            root_client.auth_disable()
            assert anonymous.put(etcd_key_prefix + b"k", b"v").header.revision > 0
        # The client logged in as root goes on working too (its token is no longer needed).
        assert root_client.get(etcd_key_prefix + b"k").kvs[0].value == b"v"
