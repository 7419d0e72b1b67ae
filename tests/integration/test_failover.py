"""Endpoints against a real three-member cluster: balancing, failover, the retry rule, leaders."""

from __future__ import annotations

import contextlib
import functools
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from etcd_layers import Client, Op, errors
from etcd_layers.testing import EtcdCluster, Member, wait_until

CALL_TIMEOUT = 10.0  # long enough that a fault, not the deadline, ends a stuck call


CLIENT_KINDS = ("Client", "AsyncClient")  # see conftest.py


@pytest.fixture(params=CLIENT_KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    """Each client kind in turn: the Client, and the AsyncClient behind its facade."""
    return str(request.param)


@pytest.fixture
def client(
    etcd_cluster: EtcdCluster, kind: str, make_client: Callable[..., Client]
) -> Iterator[Client]:
    """A client of each kind on every member, with a deadline on every call."""
    with make_client(kind, etcd_cluster.endpoints, timeout=CALL_TIMEOUT) as cli:
        yield cli


@pytest.fixture
def observer(etcd_cluster: EtcdCluster) -> Iterator[Client]:
    """A second client that checks what reached the cluster, on members that stay reachable."""
    with Client(etcd_cluster.endpoints[1:], timeout=5) as cli:
        yield cli


def _dead_endpoint() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


@dataclass
class _Call:
    """A client call run on its own thread, with what it returned or raised."""

    thread: threading.Thread
    result: object = None
    error: BaseException | None = None

    @property
    def done(self) -> bool:
        return not self.thread.is_alive()


def _start(call: Callable[[], object]) -> _Call:
    record = _Call(threading.Thread(name="test-call"))

    def run() -> None:
        try:
            record.result = call()
        except BaseException as err:  # noqa: BLE001  # handed to the test thread to assert on
            record.error = err

    record.thread = threading.Thread(target=run, name="test-call")
    record.thread.start()
    return record


@contextlib.contextmanager
def _stuck_in_black_hole(
    cluster: EtcdCluster, call: Callable[[Client], object], connect: Callable[..., Client]
) -> Iterator[tuple[Client, _Call]]:
    """Run `call` on a client whose request is swallowed by the first member's black hole.

    The client starts with that member as its only endpoint, so the request can only go
    there: the proxy's count of discarded bytes shows it went into the hole. Then the other
    members become endpoints too, where a client breaking the retry rule would re-send it.
    Yields the client and the running call; the caller ends it (drop_connections) inside.
    """
    dark = cluster.members[0]
    with connect([dark.endpoint], timeout=CALL_TIMEOUT) as cli:  # connected once it returns
        dark.client_proxy.blackhole()
        try:
            discarded = dark.client_proxy.discarded_bytes
            running = _start(lambda: call(cli))
            wait_until(lambda: dark.client_proxy.discarded_bytes > discarded, timeout=5)
            assert not running.done, (running.result, running.error)
            cli.set_endpoints(*cluster.endpoints)
            yield cli, running
        finally:
            dark.client_proxy.unblackhole()


def _member_ids(cluster: EtcdCluster) -> dict[int, Member]:
    return {member.member_id: member for member in cluster.members}


def test_client_balances_requests_over_endpoints(etcd_cluster: EtcdCluster, client: Client) -> None:
    """Consecutive requests are answered by every member in turn."""
    answered = {client.get("balance").header.member_id for _ in range(6)}
    assert answered == set(_member_ids(etcd_cluster))


def test_read_fails_over_when_a_member_is_stopped(
    etcd_cluster: EtcdCluster, client: Client, etcd_key_prefix: bytes
) -> None:
    """With one member stopped, every read is answered by the others."""
    client.put(etcd_key_prefix, "v")
    stopped = etcd_cluster.members[0]
    stopped.stop()
    try:
        for _ in range(6):
            assert client.get(etcd_key_prefix).kvs[0].value == b"v"
    finally:
        stopped.start()


def test_write_is_resent_when_it_never_left(
    etcd_server: EtcdCluster, etcd_key_prefix: bytes
) -> None:
    """A write to an endpoint that refuses connections is sent to the next one instead."""
    with Client([etcd_server.endpoints[0], _dead_endpoint()], timeout=CALL_TIMEOUT) as cli:
        for index in range(4):  # round robin reaches the dead endpoint
            cli.put(etcd_key_prefix + str(index).encode(), "v")
        assert cli.get(etcd_key_prefix, prefix=True).count == 4


def test_read_in_flight_fails_over_when_its_connection_drops(
    etcd_cluster: EtcdCluster,
    observer: Client,
    etcd_key_prefix: bytes,
    kind: str,
    make_client: Callable[..., Client],
) -> None:
    """A read whose connection breaks mid-call is re-sent to a live member and succeeds."""
    observer.put(etcd_key_prefix, "v")
    connect = functools.partial(make_client, kind)
    with _stuck_in_black_hole(etcd_cluster, lambda cli: cli.get(etcd_key_prefix), connect) as (
        _,
        stuck,
    ):
        etcd_cluster.members[0].client_proxy.drop_connections()
        stuck.thread.join(CALL_TIMEOUT)
    assert stuck.error is None
    assert stuck.result is not None
    assert stuck.result.kvs[0].value == b"v"  # type: ignore[attr-defined]  # a GetResponse


@dataclass(frozen=True)
class _Write:
    """A write, and how to tell whether it was applied."""

    name: str
    prepare: Callable[[Client, bytes, int], None]
    send: Callable[[Client, bytes, int], object]
    applied: Callable[[Client, bytes, int], bool]


def _nothing(cli: Client, key: bytes, lease_id: int) -> None:
    pass


def _put(cli: Client, key: bytes, lease_id: int) -> None:
    cli.put(key, "v")


def _grant(cli: Client, key: bytes, lease_id: int) -> None:
    cli.grant(30, lease_id=lease_id)


def _key_exists(cli: Client, key: bytes, lease_id: int) -> bool:
    return cli.get(key).count == 1


def _lease_exists(cli: Client, key: bytes, lease_id: int) -> bool:
    return cli.time_to_live(lease_id).ttl != -1


WRITES = [
    _Write("put", _nothing, _put, _key_exists),
    _Write(
        "delete",
        _put,
        lambda cli, key, n: cli.delete(key),
        lambda cli, key, n: not _key_exists(cli, key, n),
    ),
    _Write("txn", _nothing, lambda cli, key, n: cli.txn(success=[Op.put(key, "v")]), _key_exists),
    _Write("grant", _nothing, _grant, _lease_exists),
    _Write(
        "revoke",
        _grant,
        lambda cli, key, n: cli.revoke(n),
        lambda cli, key, n: not _lease_exists(cli, key, n),
    ),
]


@pytest.mark.parametrize("write", WRITES, ids=[write.name for write in WRITES])
def test_write_in_flight_is_not_resent_when_its_connection_drops(
    etcd_cluster: EtcdCluster,
    observer: Client,
    etcd_key_prefix: bytes,
    write: _Write,
    kind: str,
    make_client: Callable[..., Client],
) -> None:
    """A write whose connection breaks mid-call raises UnavailableError and is never re-sent."""
    key, lease_id = etcd_key_prefix, 0x7E57_1000_0000_0000 + len(write.name)
    write.prepare(observer, key, lease_id)
    connect = functools.partial(make_client, kind)
    with _stuck_in_black_hole(
        etcd_cluster, lambda cli: write.send(cli, key, lease_id), connect
    ) as (
        cli,
        stuck,
    ):
        etcd_cluster.members[0].client_proxy.drop_connections()
        stuck.thread.join(CALL_TIMEOUT)
        assert stuck.done
        assert isinstance(stuck.error, errors.UnavailableError), stuck.error
        assert not write.applied(observer, key, lease_id)
        cli.get("k")  # the client is still usable, through the other members
    assert not write.applied(observer, key, lease_id)  # the hole swallowed the only copy
    if write.name in ("grant", "revoke"):
        with contextlib.suppress(errors.LeaseNotFoundError):
            observer.revoke(lease_id)


def test_set_endpoints_takes_effect_for_the_next_request(
    etcd_cluster: EtcdCluster, kind: str, make_client: Callable[..., Client]
) -> None:
    """After set_endpoints, requests go to the new endpoints only."""
    first, second, third = etcd_cluster.members
    with make_client(kind, [first.endpoint], timeout=5) as cli:
        assert cli.get("k").header.member_id == first.member_id
        cli.set_endpoints(f"http://{second.endpoint}", third.endpoint)
        assert cli.endpoints == [second.endpoint, third.endpoint]
        answered = {cli.get("k").header.member_id for _ in range(4)}
        assert answered == {second.member_id, third.member_id}


def test_set_endpoints_does_not_fail_calls_in_flight(
    etcd_cluster: EtcdCluster, client: Client, etcd_key_prefix: bytes
) -> None:
    """Reads and writes running on other threads while the endpoints change all succeed."""
    first, second, third = etcd_cluster.endpoints
    stop = threading.Event()
    failures: list[BaseException] = []
    done = [0]

    def work(worker: int) -> None:
        key = etcd_key_prefix + str(worker).encode()
        for count in range(100_000):  # bounded; the test's flips end it far sooner
            if stop.is_set():
                return
            try:
                client.put(key, str(count))
                client.get(key)
            except errors.EtcdError as err:
                failures.append(err)
                return
            done[0] += 1

    workers = [threading.Thread(target=work, args=(n,), name=f"test-work-{n}") for n in range(3)]
    for worker in workers:
        worker.start()
    try:
        for flip in range(60):
            client.set_endpoints(*((first, second) if flip % 2 else (third,)))
            target = done[0] + 3  # a few calls complete between two changes

            def progressed(target: int = target) -> bool:
                return bool(failures) or done[0] >= target

            wait_until(progressed, timeout=5)
    finally:
        stop.set()
        for worker in workers:
            worker.join(CALL_TIMEOUT)
    assert failures == []


def test_set_endpoints_checks_its_arguments(client: Client) -> None:
    """set_endpoints refuses no endpoint or a malformed one and keeps the old endpoints."""
    before = client.endpoints
    with pytest.raises(ValueError, match="endpoints"):
        client.set_endpoints()
    with pytest.raises(ValueError, match="host:port"):
        client.set_endpoints("no-port")
    with pytest.raises(TypeError, match="endpoint"):
        client.set_endpoints(2379)  # type: ignore[arg-type]  # the wrong type on purpose
    assert client.endpoints == before
    client.get("k")


def test_require_leader_fails_fast_on_a_member_without_leader(
    etcd_cluster: EtcdCluster, kind: str, make_client: Callable[..., Client]
) -> None:
    """With require_leader, a call on a member that lost its leader raises NoLeaderError at once."""
    survivor, *stopped = etcd_cluster.members
    with make_client(kind, [survivor.endpoint], require_leader=True, timeout=10) as cli:
        cli.get("k")
        for member in stopped:
            member.stop()
        try:

            def no_leader() -> bool:
                try:
                    cli.get("k", timeout=2)
                except errors.NoLeaderError:
                    return True
                except errors.DeadlineExceededError:  # still waiting for the lost leader
                    return False
                return False

            wait_until(no_leader, timeout=10)
            started = time.monotonic()
            with pytest.raises(errors.NoLeaderError):
                cli.get("k")
            assert time.monotonic() - started < 1.0
        finally:
            for member in stopped:
                member.start(wait=False)
            etcd_cluster.wait_healthy()
        wait_until(lambda: cli.get("k"), timeout=10, ignore=(errors.NoLeaderError,))
