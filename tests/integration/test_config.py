"""Clients from Client.from_env and Client.from_config against real TLS, auth and plain servers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from etcd_layers import Client, errors
from etcd_layers.testing import EtcdServer
from etcd_layers.testing.plugin import require_etcd

ROOT_PASSWORD = "root-secret"
USER = "carol"
USER_PASSWORD = "carol-secret"
USER_PREFIX = b"/carol/"


@pytest.fixture(scope="module")
def secure_server() -> Iterator[EtcdServer]:
    """A TLS server that demands a client certificate, with auth on and a user held to a prefix."""
    require_etcd()
    with EtcdServer(tls=True, extra_args=["--auth-token=simple", "--bcrypt-cost=4"]) as server:
        assert server.tls is not None
        files = server.tls
        with Client(
            server.endpoints, ca_cert=files.ca_cert, cert=files.client_cert, key=files.client_key
        ) as root:
            root.user_add("root", ROOT_PASSWORD)
            root.user_grant_role("root", "root")
            root.user_add(USER, USER_PASSWORD)
            root.role_add(USER)
            root.role_grant_permission(USER, USER_PREFIX, prefix=True)
            root.user_grant_role(USER, USER)
            root.auth_enable()
        yield server


def _secure_environ(server: EtcdServer) -> dict[str, str]:
    assert server.tls is not None
    return {
        "ETCDCTL_API": "3",
        "ETCDCTL_ENDPOINTS": ",".join(server.endpoints),
        "ETCDCTL_CACERT": server.tls.ca_cert,
        "ETCDCTL_CERT": server.tls.client_cert,
        "ETCDCTL_KEY": server.tls.client_key,
        "ETCDCTL_DIAL_TIMEOUT": "5s",
        "ETCDCTL_COMMAND_TIMEOUT": "5s",
    }


def _check_logged_in_as_user(cli: Client) -> None:
    """The client writes inside the user's prefix and is refused outside it: it is the user."""
    cli.put(USER_PREFIX + b"k", "v")
    assert cli.get(USER_PREFIX + b"k").kvs[0].value == b"v"
    with pytest.raises(errors.PermissionDeniedError):
        cli.put("/elsewhere", "v")


def test_from_env_tls_and_auth_client_works(secure_server: EtcdServer) -> None:
    """etcdctl's variables for TLS files and "user:password" give a working, logged-in client."""
    environ = {**_secure_environ(secure_server), "ETCDCTL_USER": f"{USER}:{USER_PASSWORD}"}
    with Client.from_env(environ) as cli:
        _check_logged_in_as_user(cli)


def test_from_env_password_from_its_own_variable_or_an_override(secure_server: EtcdServer) -> None:
    """ETCDCTL_PASSWORD, or a password= override, completes a bare ETCDCTL_USER."""
    environ = {**_secure_environ(secure_server), "ETCDCTL_USER": USER}
    with Client.from_env({**environ, "ETCDCTL_PASSWORD": USER_PASSWORD}) as cli:
        _check_logged_in_as_user(cli)
    with Client.from_env(environ, password=USER_PASSWORD) as cli:
        _check_logged_in_as_user(cli)


def test_from_env_wrong_password_raises_auth_failed(secure_server: EtcdServer) -> None:
    """The environment's credentials are really used: a wrong password fails the login."""
    environ = {**_secure_environ(secure_server), "ETCDCTL_USER": f"{USER}:wrong"}
    with pytest.raises(errors.AuthFailedError):
        Client.from_env(environ)


def test_from_config_tls_and_auth_client_works(secure_server: EtcdServer, tmp_path: Path) -> None:
    """A Go clientv3/yaml file with TLS files and credentials gives a working, logged-in client."""
    assert secure_server.tls is not None
    files = secure_server.tls
    path = tmp_path / "client.yaml"
    path.write_text(
        f"endpoints: [{', '.join(secure_server.endpoints)}]\n"
        "dial-timeout: 5000000000\n"  # as Go writes a time.Duration: nanoseconds
        "dial-keep-alive-time: 10s\n"
        f"username: {USER}\npassword: {USER_PASSWORD}\n"
        f"cert-file: {files.client_cert}\nkey-file: {files.client_key}\n"
        f"trusted-ca-file: {files.ca_cert}\n",
        encoding="utf-8",
    )
    with Client.from_config(path, timeout=5) as cli:
        _check_logged_in_as_user(cli)


def test_from_env_plain_client_works(etcd_server: EtcdServer, etcd_key_prefix: bytes) -> None:
    """Endpoints alone from the environment give a plaintext client, as etcdctl's default."""
    environ = {"ETCDCTL_ENDPOINTS": ",".join(etcd_server.endpoints)}
    with Client.from_env(environ, timeout=5) as cli:
        cli.put(etcd_key_prefix, "plain")
        assert cli.get(etcd_key_prefix).kvs[0].value == b"plain"


def test_from_config_plain_client_works(
    etcd_server: EtcdServer, etcd_key_prefix: bytes, tmp_path: Path
) -> None:
    """A file with insecure-transport: true gives a plaintext client; overrides win."""
    path = tmp_path / "client.yaml"
    path.write_text(
        "endpoints: ['127.0.0.1:1']\ninsecure-transport: true\ndial-timeout: 1s\n",
        encoding="utf-8",
    )
    with Client.from_config(path, endpoints=etcd_server.endpoints, timeout=5) as cli:
        assert cli.endpoints == etcd_server.endpoints
        cli.put(etcd_key_prefix, "plain")
        assert cli.get(etcd_key_prefix).kvs[0].value == b"plain"
