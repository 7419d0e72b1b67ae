"""Maintenance against real etcd: status, hash_kv, defragment, move_leader, alarms, snapshots."""

from __future__ import annotations

import contextlib
import hashlib
import io
import shutil
import socket
import struct
import subprocess
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import cast

import pytest

from etcd_layers import Client, errors
from etcd_layers.base import AlarmMember, AlarmType
from etcd_layers.base._connection import Connection, Endpoint
from etcd_layers.base._proto import rpc_pb2
from etcd_layers.base.deadline import Deadline
from etcd_layers.testing import EtcdCluster, Member, find_etcd_tool, requires_etcd, wait_until
from etcd_layers.testing.plugin import EtcdClusterFactory

TIMEOUT = 10.0
VALUE = b"v" * 100_000  # large values fill a backend quickly
QUOTA = 2 * 1024 * 1024


@pytest.fixture(scope="module", params=("Client", "AsyncClient"))
def client(
    request: pytest.FixtureRequest, etcd_cluster: EtcdCluster, make_client: Callable[..., Client]
) -> Iterator[Client]:
    """A client of each kind (see conftest.py) on every member of the module's cluster."""
    with make_client(
        request.param, endpoints=etcd_cluster.endpoints, **etcd_cluster.client_options()
    ) as cli:
        yield cli


def leader_of(client: Client, cluster: EtcdCluster) -> int:
    """The leader's member id, once every member names the same one."""

    def agreed() -> int:
        leaders = {client.status(m.endpoint, timeout=2).leader for m in cluster.members}
        return leaders.pop() if len(leaders) == 1 else 0

    return wait_until(agreed, timeout=TIMEOUT, ignore=(errors.EtcdError,))


def fill(client: Client, prefix: bytes, count: int) -> int:
    """Put `count` large values under `prefix`; return the last revision."""
    revision = 0
    for index in range(count):
        revision = client.put(prefix + b"%d" % index, VALUE).header.revision
    return revision


# --- status / hash_kv / defragment ---------------------------------------------------------


def test_status_answers_from_the_named_member(client: Client, etcd_cluster: EtcdCluster) -> None:
    """Each member reports its own id, version, sizes and raft position, and one leader."""
    statuses = [client.status(member.endpoint) for member in etcd_cluster.members]
    assert [s.header.member_id for s in statuses] == [m.member_id for m in etcd_cluster.members]
    for status in statuses:
        assert status.version.startswith("3.")
        assert 0 < status.db_size_in_use <= status.db_size
        assert status.raft_index > 0
        assert status.raft_applied_index > 0
        assert status.raft_term > 0
        assert status.errors == []
        assert not status.is_learner
    assert len({status.leader for status in statuses}) == 1
    assert statuses[0].leader in {m.member_id for m in etcd_cluster.members}


def test_status_never_fails_over_to_another_member(
    client: Client, etcd_cluster: EtcdCluster
) -> None:
    """A status aimed at an unreachable member fails instead of being answered by another."""
    silent = etcd_cluster.members[2]
    silent.client_proxy.drop_connections()
    silent.client_proxy.blackhole()
    try:
        with pytest.raises((errors.DeadlineExceededError, errors.UnavailableError)):
            client.status(silent.endpoint, timeout=1.0)
        assert client.status(etcd_cluster.members[0].endpoint).header.member_id == (
            etcd_cluster.members[0].member_id
        )
    finally:
        silent.client_proxy.unblackhole()


def test_hash_kv_matches_on_every_member(
    client: Client, etcd_cluster: EtcdCluster, etcd_key_prefix: bytes
) -> None:
    """Members that applied the same history hash it alike at the same revision."""
    for index in range(5):
        revision = client.put(etcd_key_prefix + b"%d" % index, b"x").header.revision

    def hashes() -> set[int]:
        return {client.hash_kv(m.endpoint, revision).hash for m in etcd_cluster.members}

    # A member still applying the last put answers FutureRevisionError for a moment.
    found = wait_until(hashes, timeout=TIMEOUT, ignore=(errors.FutureRevisionError,))
    assert len(found) == 1
    assert client.hash_kv(etcd_cluster.members[0].endpoint, revision).header.revision >= revision


def test_hash_kv_below_the_compaction_raises_compacted(
    client: Client, etcd_cluster: EtcdCluster, etcd_key_prefix: bytes
) -> None:
    """Hashing at a compacted revision raises CompactedError."""
    first = client.put(etcd_key_prefix + b"k", b"1").header.revision
    second = client.put(etcd_key_prefix + b"k", b"2").header.revision
    client.compact(second, physical=True)
    endpoint = etcd_cluster.members[0].endpoint
    wait_until(lambda: client.hash_kv(endpoint).compact_revision >= second, timeout=TIMEOUT)
    with pytest.raises(errors.CompactedError):
        client.hash_kv(endpoint, first)


def test_defragment_gives_free_space_back_on_each_member(
    client: Client, etcd_cluster: EtcdCluster, etcd_key_prefix: bytes
) -> None:
    """After deleting and compacting, defragmenting each member shrinks its database file."""
    fill(client, etcd_key_prefix, 20)
    grown = {m.endpoint: client.status(m.endpoint).db_size for m in etcd_cluster.members}
    revision = client.delete(etcd_key_prefix, prefix=True).header.revision
    client.compact(revision, physical=True)

    def shrunk(member: Member) -> bool:
        # Compaction is applied by every member on its own; defragment until it shows.
        client.defragment(member.endpoint, timeout=TIMEOUT)
        return client.status(member.endpoint).db_size < grown[member.endpoint]

    for member in etcd_cluster.members:
        wait_until(lambda member=member: shrunk(member), timeout=TIMEOUT)  # type: ignore[misc]
        status = client.status(member.endpoint)
        assert status.db_size_in_use <= status.db_size


# --- move_leader --------------------------------------------------------------------------


def test_move_leader_transfers_leadership(etcd_cluster: EtcdCluster) -> None:
    """move_leader finds the leader itself, even from a client that only knows a follower."""
    with Client(endpoints=etcd_cluster.endpoints, **etcd_cluster.client_options()) as probe:
        leader = leader_of(probe, etcd_cluster)
    followers = [m for m in etcd_cluster.members if m.member_id != leader]
    target = followers[1].member_id
    with Client(endpoints=[followers[0].endpoint], **etcd_cluster.client_options()) as cli:
        cli.move_leader(target, timeout=TIMEOUT)
        wait_until(
            lambda: all(
                cli.status(m.endpoint, timeout=2).leader == target for m in etcd_cluster.members
            ),
            timeout=TIMEOUT,
            ignore=(errors.EtcdError,),
        )


def test_move_leader_to_a_stranger_raises_bad_transferee(client: Client) -> None:
    """Leadership cannot move to a member id the cluster does not have."""
    with pytest.raises(errors.BadLeaderTransfereeError):
        client.move_leader(0xBAD, timeout=TIMEOUT)


# --- alarms -------------------------------------------------------------------------------


def test_alarm_list_is_empty_on_a_healthy_cluster(client: Client) -> None:
    """No member of a healthy cluster has raised an alarm."""
    assert client.alarm_list().alarms == []


@requires_etcd(3, 5, reason="etcd 3.4 leaves the AlarmResponse header empty")
def test_alarm_list_answers_with_a_header(client: Client) -> None:
    """The alarm list carries the answering member's header, like every response."""
    header = client.alarm_list().header
    assert header.cluster_id != 0
    assert header.member_id != 0


def test_nospace_alarm_is_disarmed_after_compaction_and_defragment(
    etcd_cluster_factory: EtcdClusterFactory, etcd_key_prefix: bytes
) -> None:
    """A full quota raises NOSPACE; once space is freed, disarming it lets writes through."""
    server = etcd_cluster_factory(1, extra_args=[f"--quota-backend-bytes={QUOTA}"])
    endpoint = server.members[0].endpoint
    member_id = server.members[0].member_id
    with Client(endpoints=server.endpoints, timeout=TIMEOUT) as cli:
        with pytest.raises(errors.NoSpaceError):  # noqa: PT012  # the loop is bounded
            for index in range(10 * QUOTA // len(VALUE)):
                cli.put(etcd_key_prefix + b"%d" % index, VALUE)
        assert cli.alarm_list().alarms == [AlarmMember(member_id, AlarmType.NOSPACE)]
        with pytest.raises(errors.NoSpaceError):  # the alarm holds every write back
            cli.put(etcd_key_prefix + b"small", b"x")

        revision = cli.delete(etcd_key_prefix, prefix=True).header.revision
        cli.compact(revision, physical=True)
        cli.defragment(endpoint)
        assert cli.status(endpoint).db_size < QUOTA
        disarmed = cli.alarm_disarm(member_id, AlarmType.NOSPACE)

        assert disarmed.alarms == [AlarmMember(member_id, AlarmType.NOSPACE)]
        assert cli.alarm_list().alarms == []
        assert cli.put(etcd_key_prefix + b"small", b"x").header.revision > revision


# --- snapshot -----------------------------------------------------------------------------


def restore_into(member: Member, snapshot: Path) -> None:
    """Replace a stopped member's data with `snapshot`, restored by etcdutl, and start it."""
    member.stop()
    shutil.rmtree(member.data_dir)
    subprocess.run(  # our own etcdutl and arguments, no shell
        [
            find_etcd_tool("etcdutl"),
            "snapshot",
            "restore",
            str(snapshot),
            f"--data-dir={member.data_dir}",
            f"--name={member.name}",
            f"--initial-cluster={member.name}={member.peer_url}",
            f"--initial-advertise-peer-urls={member.peer_url}",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    member.start()


def test_snapshot_restores_into_a_fresh_etcd_with_every_key(
    client: Client,
    etcd_cluster: EtcdCluster,
    etcd_cluster_factory: EtcdClusterFactory,
    etcd_key_prefix: bytes,
    tmp_path: Path,
) -> None:
    """A saved snapshot passes etcdutl's integrity check and brings every key back."""
    written = {etcd_key_prefix + b"%03d" % i: b"value-%d" % i for i in range(50)}
    for key, value in written.items():
        client.put(key, value)
    path = tmp_path / "backup.db"

    response = client.snapshot(path, endpoint=etcd_cluster.members[1].endpoint)

    data = path.read_bytes()
    assert response.size == len(data)
    assert response.sha256 == data[-32:] == hashlib.sha256(data[:-32]).digest()
    fresh = etcd_cluster_factory(1)
    restore_into(fresh.members[0], path)
    with Client(endpoints=fresh.endpoints, timeout=TIMEOUT) as restored:
        kvs = restored.get(etcd_key_prefix, prefix=True).kvs
    assert {kv.key: kv.value for kv in kvs} == written


def test_snapshot_into_a_file_object_ends_with_its_sha256(client: Client) -> None:
    """A binary file object receives the database followed by its sha256."""
    buffer = io.BytesIO()
    response = client.snapshot(buffer)
    data = buffer.getvalue()
    assert len(data) == response.size > 32
    assert data[-32:] == response.sha256 == hashlib.sha256(data[:-32]).digest()
    assert response.header.cluster_id in (0, client.member_list().header.cluster_id)


class CuttingRelay:
    """A TCP relay to one member that resets each connection after passing `limit` bytes back.

    It cuts a real stream at a fixed point, whatever the machine's load: the rig's proxy
    can only drop connections at a moment, by which time gRPC may have buffered it all.
    After `limit` bytes it holds the stream and resets only once `cut_when()` is true (or
    after TIMEOUT): a reset that overtakes data the client has not read yet discards it, and
    the cut would then land before the first message instead of mid-stream.
    """

    def __init__(self, target: str, limit: int, cut_when: Callable[[], bool]) -> None:
        host, _, port = target.rpartition(":")
        self._target = (host, int(port))
        self._limit = limit
        self._cut_when = cut_when
        self._closed = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(TIMEOUT)
        self.endpoint = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self.relayed = 0
        self._sockets: list[socket.socket] = []
        self._threads = [threading.Thread(target=self._accept, name="cutting-relay")]
        self._threads[0].start()

    def _accept(self) -> None:
        try:
            downstream, _ = self._listener.accept()  # the one connection of the test
        except OSError:
            return
        self._sockets.append(downstream)
        try:
            upstream = socket.create_connection(self._target, timeout=TIMEOUT)
        except OSError:
            self.close_sockets()
            return
        self._sockets.append(upstream)
        forward = threading.Thread(
            target=self._pump, args=(downstream, upstream, None), name="cutting-relay-up"
        )
        self._threads.append(forward)
        forward.start()
        self._pump(upstream, downstream, self._limit)

    def _pump(self, source: socket.socket, sink: socket.socket, limit: int | None) -> None:
        try:
            while limit is None or self.relayed < limit:  # each recv is bounded by TIMEOUT
                data = source.recv(16 * 1024)
                if not data:
                    return
                if limit is not None:
                    data = data[: limit - self.relayed]
                    self.relayed += len(data)
                sink.sendall(data)
            with contextlib.suppress(AssertionError):  # cut anyway after TIMEOUT
                wait_until(lambda: self._closed.is_set() or self._cut_when(), timeout=TIMEOUT)
        except OSError:
            pass  # the other direction closed the sockets
        finally:
            self.close_sockets()

    def close_sockets(self) -> None:
        """Reset both connections at once."""
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            # close() alone does not reset a socket that another pump thread is blocked on in
            # recv(): the kernel keeps it open until that recv returns. SHUT_RD wakes it and
            # sends nothing, so the reset goes out now rather than when the client next talks.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RD)
            sock.close()

    def close(self) -> None:
        """Stop relaying and join the threads."""
        self._closed.set()
        self._listener.close()
        self.close_sockets()
        for thread in self._threads:
            thread.join(TIMEOUT)


def test_snapshot_cut_by_the_network_raises_and_leaves_no_file(
    client: Client, etcd_cluster: EtcdCluster, etcd_key_prefix: bytes, tmp_path: Path
) -> None:
    """A connection reset mid-stream fails the snapshot; nothing is left at the path."""
    fill(client, etcd_key_prefix, 20)  # about 2 MB: far more than the relay lets through
    path = tmp_path / "cut.db"

    def under_way() -> bool:  # the client has written part of the stream to its temp file
        with contextlib.suppress(FileNotFoundError):
            return any(part.stat().st_size for part in tmp_path.glob(".cut.db.*.part"))
        return False

    relay = CuttingRelay(etcd_cluster.members[0].endpoint, limit=256 * 1024, cut_when=under_way)
    try:
        with pytest.raises(errors.UnavailableError):
            client.snapshot(path, endpoint=relay.endpoint, timeout=TIMEOUT)
    finally:
        relay.close()
    assert relay.relayed == 256 * 1024  # the stream was under way when it was cut
    assert list(tmp_path.iterdir()) == []


Messages = Iterable[rpc_pb2.SnapshotResponse]


class SnapshotRewriter:
    """A connection whose snapshot streams pass through `rewrite`; the rest is the real one."""

    def __init__(
        self, conn: Connection, rewrite: Callable[[Messages], Iterator[rpc_pb2.SnapshotResponse]]
    ) -> None:
        self.conn = conn
        self.rewrite = rewrite

    def __getattr__(self, name: str) -> object:
        return getattr(self.conn, name)

    def snapshot_messages(
        self, endpoint: Endpoint, deadline: Deadline
    ) -> Iterator[rpc_pb2.SnapshotResponse]:
        return self.rewrite(self.conn.snapshot_messages(endpoint, deadline))


@contextlib.contextmanager
def rewriting_client(
    cluster: EtcdCluster, rewrite: Callable[[Messages], Iterator[rpc_pb2.SnapshotResponse]]
) -> Iterator[Client]:
    """A client over a real connection whose snapshot streams `rewrite` changes."""
    with Client(endpoints=cluster.endpoints, **cluster.client_options()) as real:
        yield Client.from_connection(cast(Connection, SnapshotRewriter(real.connection, rewrite)))


def test_snapshot_with_a_corrupted_chunk_raises_and_leaves_no_file(
    client: Client, etcd_cluster: EtcdCluster, etcd_key_prefix: bytes, tmp_path: Path
) -> None:
    """One flipped bit in the real stream fails the checksum; nothing is left at the path."""
    fill(client, etcd_key_prefix, 2)  # at least two chunks

    def corrupt_second(messages: Messages) -> Iterator[rpc_pb2.SnapshotResponse]:
        for index, message in enumerate(messages):
            if index == 1:
                blob = bytearray(message.blob)
                blob[len(blob) // 2] ^= 0x01
                message = rpc_pb2.SnapshotResponse(  # noqa: PLW2901  # the corruption
                    header=message.header,
                    remaining_bytes=message.remaining_bytes,
                    blob=bytes(blob),
                )
            yield message

    path = tmp_path / "corrupt.db"
    with (
        rewriting_client(etcd_cluster, corrupt_second) as rewriting,
        pytest.raises(errors.SnapshotError, match="checksum mismatch"),
    ):
        rewriting.snapshot(path)
    assert list(tmp_path.iterdir()) == []


def test_snapshot_stream_ending_early_raises_and_leaves_no_file(
    client: Client, etcd_cluster: EtcdCluster, etcd_key_prefix: bytes, tmp_path: Path
) -> None:
    """A stream that ends cleanly before its last chunk fails; nothing is left at the path."""
    fill(client, etcd_key_prefix, 2)  # at least two chunks

    def first_only(messages: Messages) -> Iterator[rpc_pb2.SnapshotResponse]:
        for message in messages:
            yield message
            return

    path = tmp_path / "short.db"
    with (
        rewriting_client(etcd_cluster, first_only) as rewriting,
        pytest.raises(errors.SnapshotError, match="ended after"),
    ):
        rewriting.snapshot(path)
    assert list(tmp_path.iterdir()) == []
