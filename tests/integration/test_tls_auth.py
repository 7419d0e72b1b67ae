"""TLS and user authentication against real etcd: certificates, tokens, renewal and RBAC."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from etcd_layers import Client, errors
from etcd_layers.base import _methods
from etcd_layers.base._proto import rpc_pb2
from etcd_layers.testing import EtcdCluster, EtcdServer, generate_tls_files, wait_until
from etcd_layers.testing.plugin import require_etcd

ROOT_PASSWORD = "root-secret"
USER = "alice"
USER_PASSWORD = "alice-secret"
USER_PREFIX = b"/alice/"
TOKEN_TTL = 2  # seconds a simple token lives unused (--auth-token-ttl)
FAILING_DIAL = 1.0  # dial_timeout where the connection must fail


@pytest.fixture(params=("Client", "AsyncClient"))
def connect(
    request: pytest.FixtureRequest, make_client: Callable[..., Client]
) -> Callable[..., Client]:
    """Connect a client of each kind in turn (the AsyncClient behind its facade, conftest.py)."""
    return functools.partial(make_client, request.param)


# --- TLS -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_server() -> Iterator[EtcdServer]:
    """A one-member server that serves clients over TLS and demands a client certificate."""
    require_etcd()
    with EtcdServer(tls=True) as server:
        yield server


def _tls_files(server: EtcdServer) -> tuple[str, str, str]:
    assert server.tls is not None
    return server.tls.ca_cert, server.tls.client_cert, server.tls.client_key


def test_tls_client_with_ca_and_certificate_works(
    connect: Callable[..., Client], tls_server: EtcdServer, etcd_key_prefix: bytes
) -> None:
    """With the CA and a client certificate, calls and keep-alive streams work over TLS."""
    ca_cert, cert, key = _tls_files(tls_server)
    with connect(tls_server.endpoints, ca_cert=ca_cert, cert=cert, key=key, timeout=5) as cli:
        cli.put(etcd_key_prefix, "secure")
        assert cli.get(etcd_key_prefix).kvs[0].value == b"secure"
        lease_id = cli.grant(10).id
        with cli.keep_alive(lease_id) as ka:
            assert ka.next(timeout=1).id == lease_id
        cli.revoke(lease_id)


def test_tls_https_scheme_and_server_name(
    connect: Callable[..., Client], tls_server: EtcdServer
) -> None:
    """An https:// endpoint works, and server_name picks the name checked in the certificate."""
    ca_cert, cert, key = _tls_files(tls_server)
    endpoint = f"https://{tls_server.endpoint}"
    with connect(endpoint, ca_cert=ca_cert, cert=cert, key=key, server_name="localhost") as cli:
        assert cli.endpoints == [tls_server.endpoint]
        cli.get("k", timeout=5)


def test_tls_without_client_certificate_raises_unavailable(
    connect: Callable[..., Client], tls_server: EtcdServer
) -> None:
    """The server demands a client certificate: without one the constructor raises."""
    ca_cert, _, _ = _tls_files(tls_server)
    with pytest.raises(errors.UnavailableError):
        connect(tls_server.endpoints, ca_cert=ca_cert, dial_timeout=FAILING_DIAL)


def test_tls_with_wrong_ca_raises_unavailable(
    connect: Callable[..., Client], tls_server: EtcdServer, tmp_path: Path
) -> None:
    """A CA that did not sign the server's certificate fails the handshake: no answer."""
    _, cert, key = _tls_files(tls_server)
    other = generate_tls_files(tmp_path)
    with pytest.raises(errors.UnavailableError):
        connect(
            tls_server.endpoints,
            ca_cert=other.ca_cert,
            cert=cert,
            key=key,
            dial_timeout=FAILING_DIAL,
        )


def test_tls_with_wrong_server_name_raises_unavailable(
    connect: Callable[..., Client], tls_server: EtcdServer
) -> None:
    """A server_name the certificate does not name fails the handshake."""
    ca_cert, cert, key = _tls_files(tls_server)
    with pytest.raises(errors.UnavailableError):
        connect(
            tls_server.endpoints,
            ca_cert=ca_cert,
            cert=cert,
            key=key,
            server_name="not-the-server.invalid",
            dial_timeout=FAILING_DIAL,
        )


def test_tls_plaintext_client_raises_unavailable(
    connect: Callable[..., Client], tls_server: EtcdServer
) -> None:
    """A client without TLS gets no answer from a TLS server."""
    with pytest.raises(errors.UnavailableError):
        connect(tls_server.endpoints, dial_timeout=FAILING_DIAL)


# --- auth ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def auth_server() -> Iterator[EtcdServer]:
    """A one-member server with auth enabled, short-lived simple tokens, and a user `alice`.

    `alice` may read and write only keys under USER_PREFIX (and use leases).
    """
    require_etcd()
    extra = ["--auth-token=simple", f"--auth-token-ttl={TOKEN_TTL}", "--bcrypt-cost=4"]
    with EtcdServer(extra_args=extra) as server:
        with Client(server.endpoints, username="root", password=ROOT_PASSWORD) as root:
            root.user_add("root", ROOT_PASSWORD)
            root.user_grant_role("root", "root")
            root.user_add(USER, USER_PASSWORD)
            root.role_add(USER)
            root.role_grant_permission(USER, USER_PREFIX, prefix=True)
            root.user_grant_role(USER, USER)
            root.auth_enable()
        yield server


@pytest.fixture
def root(connect: Callable[..., Client], auth_server: EtcdServer) -> Iterator[Client]:
    """A client logged in as root."""
    with connect(auth_server.endpoints, username="root", password=ROOT_PASSWORD, timeout=5) as cli:
        yield cli


@pytest.fixture
def alice(connect: Callable[..., Client], auth_server: EtcdServer) -> Iterator[Client]:
    """A client logged in as the RBAC-limited user."""
    with connect(auth_server.endpoints, username=USER, password=USER_PASSWORD, timeout=5) as cli:
        yield cli


def _token(cli: Client) -> str:
    return dict(cli.connection.metadata)["token"]


def _token_rejected(server: EtcdServer, token: str) -> bool:
    """Whether a get carrying `token` is refused for its token (this probe renews a live one)."""
    with Client(server.endpoints) as probe:
        endpoint = probe.connection.endpoints[0]
        request = rpc_pb2.RangeRequest(key=USER_PREFIX).SerializeToString()
        try:
            with errors.translate_rpc_errors():
                endpoint.callable(_methods.RANGE)(request, timeout=5, metadata=(("token", token),))
        except errors.InvalidAuthTokenError:
            return True
    return False


def test_auth_wrong_password_raises_from_constructor(
    connect: Callable[..., Client], auth_server: EtcdServer
) -> None:
    """A wrong password raises AuthFailedError from connect(...) itself."""
    with pytest.raises(errors.AuthFailedError):
        connect(auth_server.endpoints, username=USER, password="wrong")


def test_auth_calls_carry_the_token(
    connect: Callable[..., Client], auth_server: EtcdServer, alice: Client
) -> None:
    """A logged-in client's calls pass the auth check that a client without token fails."""
    alice.put(USER_PREFIX + b"token", "v")
    assert alice.get(USER_PREFIX + b"token").count == 1
    with connect(auth_server.endpoints) as anonymous, pytest.raises(errors.UserEmptyError):
        anonymous.get(USER_PREFIX + b"token", timeout=5)


def test_auth_keep_alive_works_for_a_user(alice: Client) -> None:
    """A logged-in user's lease keep-alive stream renews the lease."""
    lease_id = alice.grant(10).id
    with alice.keep_alive(lease_id) as ka:
        assert ka.next(timeout=1).ttl == 10
    alice.revoke(lease_id)


def test_auth_credentials_accepted_without_auth(
    connect: Callable[..., Client], etcd_server: EtcdCluster
) -> None:
    """A cluster with auth disabled accepts a client given credentials."""
    with connect(etcd_server.endpoints, username="nobody", password="nothing") as cli:
        cli.get("k", timeout=5)


def test_auth_rbac_user_is_denied_outside_its_prefix(alice: Client) -> None:
    """A user limited to a prefix works inside it and gets PermissionDeniedError outside."""
    alice.put(USER_PREFIX + b"inside", "v")
    assert alice.get(USER_PREFIX + b"inside").kvs[0].value == b"v"
    with pytest.raises(errors.PermissionDeniedError):
        alice.get("/outside")
    with pytest.raises(errors.PermissionDeniedError):
        alice.put("/outside", "v")
    alice.get(USER_PREFIX + b"inside")  # still usable


def test_auth_expired_token_is_renewed(auth_server: EtcdServer, alice: Client) -> None:
    """Once the token expired unused, the next call logs in again and succeeds."""
    alice.put(USER_PREFIX + b"expiry", "v")
    old = _token(alice)
    # Each probe renews a live token, so probe less often than it expires (TTL + 1 s sweep).
    wait_until(lambda: _token_rejected(auth_server, old), timeout=15, interval=TOKEN_TTL + 1.5)
    assert alice.get(USER_PREFIX + b"expiry").kvs[0].value == b"v"
    assert _token(alice) != old


def test_auth_invalidated_token_is_renewed(root: Client, alice: Client) -> None:
    """A password change invalidates the user's tokens; with the same password it logs in again."""
    alice.put(USER_PREFIX + b"invalidated", "v")
    old = _token(alice)
    root.user_change_password(USER, USER_PASSWORD)
    assert alice.get(USER_PREFIX + b"invalidated").kvs[0].value == b"v"
    assert _token(alice) != old


def test_auth_changed_password_raises_auth_failed(
    connect: Callable[..., Client], root: Client, auth_server: EtcdServer
) -> None:
    """When the password changed, the client cannot log in again: AuthFailedError."""
    root.user_add("bob", "bob-old")
    root.user_grant_role("bob", USER)
    try:
        with connect(auth_server.endpoints, username="bob", password="bob-old", timeout=5) as bob:
            bob.get(USER_PREFIX)
            root.user_change_password("bob", "bob-new")
            with pytest.raises(errors.AuthFailedError):
                bob.get(USER_PREFIX)
    finally:
        root.user_delete("bob")
