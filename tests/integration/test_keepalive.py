"""Client.keep_alive against real etcd: renewals, ends, and faults injected while it runs."""

from __future__ import annotations

import itertools
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator

import pytest

from etcd_layers import Client, errors
from etcd_layers.base import KeepAlive, KeepAliveStats, LeaseKeepAliveResponse
from etcd_layers.testing import EtcdCluster, EtcdServer, Member, wait_until

MISSING_LEASE = 0x7E57_0000_0000_0ABC


@pytest.fixture
def etcd_client(both_clients: Client) -> Client:
    """The tests on it run against the Client and the AsyncClient (behind its sync facade)."""
    return both_clients


@pytest.fixture
def sync_cluster_client(etcd_cluster: EtcdCluster) -> Iterator[Client]:
    """A Client on every member of the module's cluster."""
    with Client(etcd_cluster.endpoints, timeout=10) as cli:
        yield cli


@pytest.fixture(params=("Client", "AsyncClient"))
def cluster_client(
    request: pytest.FixtureRequest, etcd_cluster: EtcdCluster, make_client: Callable[..., Client]
) -> Iterator[Client]:
    """A client of each kind in turn on every member (the AsyncClient behind its facade)."""
    cli = make_client(request.param, etcd_cluster.endpoints, timeout=10)
    try:
        yield cli
    finally:
        cli.close()


@pytest.fixture
def observer(etcd_cluster: EtcdCluster) -> Iterator[Client]:
    """A second client that checks leases from outside the keep-alive under test."""
    with Client(etcd_cluster.endpoints, timeout=2) as cli:
        yield cli


def _keep_alive_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("etcd_layers.keepalive.")]


def _member_serving(cluster: EtcdCluster, response: LeaseKeepAliveResponse) -> Member:
    return next(m for m in cluster.members if m.member_id == response.header.member_id)


def _alive(observer: Client, lease_id: int) -> bool:
    """Whether the lease exists, asked of a member that answers (a read fails over)."""
    return observer.time_to_live(lease_id).ttl > 0


def _next_from_other_member(ka: KeepAlive, member_id: int, timeout: float) -> int:
    """Read renewals until one comes from a member other than `member_id`; return its id."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = ka.next(timeout=max(deadline - time.monotonic(), 0.01))
        if response.header.member_id != member_id:
            return response.header.member_id
    raise AssertionError(f"no renewal from a member other than {member_id:x} in {timeout}s")


# --- the basics, on the session's one-member server ----------------------------------------


def test_keep_alive_returns_after_the_first_renewal(etcd_client: Client) -> None:
    """keep_alive returns once the server confirmed a renewal, which it yields first."""
    lease_id = etcd_client.grant(30).id
    with etcd_client.keep_alive(lease_id) as ka:
        first = ka.next(timeout=0.5)  # already queued: no waiting for a renewal period
        assert (first.id, first.ttl) == (lease_id, 30)
        assert first.header.member_id != 0
    etcd_client.revoke(lease_id)


def test_keep_alive_stats_count_leases_handles_and_renewals(etcd_server: EtcdServer) -> None:
    """keep_alive_stats() counts the leases and handles kept alive and the renewals confirmed."""
    with Client(etcd_server.endpoints) as cli:
        assert cli.keep_alive_stats() == KeepAliveStats()
        lease_id = cli.grant(30).id
        with cli.keep_alive(lease_id), cli.keep_alive(lease_id):
            stats = cli.keep_alive_stats()
            assert (stats.leases, stats.handles) == (1, 2)
            assert 1 <= stats.confirmed <= stats.sent
        assert cli.keep_alive_stats().leases == 0
        cli.revoke(lease_id)


def test_keep_alive_missing_lease_raises_at_once(etcd_client: Client) -> None:
    """keep_alive of a lease that does not exist raises LeaseNotFoundError right away."""
    started = time.monotonic()
    with pytest.raises(errors.LeaseNotFoundError):
        etcd_client.keep_alive(MISSING_LEASE)
    assert time.monotonic() - started < 1.0


def test_keep_alive_checks_arguments_before_any_io(etcd_client: Client) -> None:
    """Bad lease ids and timeouts raise TypeError/ValueError and leave the client usable."""
    with pytest.raises(ValueError, match="lease_id"):
        etcd_client.keep_alive(-1)
    with pytest.raises(TypeError, match="lease_id"):
        etcd_client.keep_alive("1")  # type: ignore[arg-type]  # the wrong type on purpose
    with pytest.raises(ValueError, match="timeout"):
        etcd_client.keep_alive(1, timeout=0)
    lease_id = etcd_client.grant(30).id
    with etcd_client.keep_alive(lease_id) as ka:
        with pytest.raises(ValueError, match="timeout"):
            ka.next(timeout=-1)
        assert ka.next(timeout=1).id == lease_id
    etcd_client.revoke(lease_id)


def test_keep_alive_renews_about_every_third_of_the_ttl(etcd_client: Client) -> None:
    """Renewals of a 3 s lease arrive about a second apart, each restoring the full TTL."""
    lease_id = etcd_client.grant(3).id
    with etcd_client.keep_alive(lease_id) as ka:
        ka.next(timeout=1)
        times = []
        for _ in range(4):
            assert ka.next(timeout=3).ttl == 3
            times.append(time.monotonic())
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert 0.7 < statistics.median(gaps) < 1.3, gaps  # a half TTL (1.5 s) would fail
    etcd_client.revoke(lease_id)


def test_keep_alive_keeps_the_lease_past_its_ttl(etcd_client: Client) -> None:
    """A 3 s lease under keep-alive still exists well past its TTL."""
    lease_id = etcd_client.grant(3).id
    started = time.monotonic()
    with etcd_client.keep_alive(lease_id) as ka:
        while time.monotonic() - started < 4.5:
            ka.next(timeout=2)
        assert etcd_client.time_to_live(lease_id).ttl > 0
    etcd_client.revoke(lease_id)


def test_keep_alive_next_timeout_raises_builtin_timeout_error(etcd_client: Client) -> None:
    """next(timeout) raises the builtin TimeoutError when no renewal arrives in time."""
    lease_id = etcd_client.grant(30).id
    with etcd_client.keep_alive(lease_id) as ka:
        ka.next(timeout=1)
        with pytest.raises(TimeoutError) as caught:
            ka.next(timeout=0.1)
        assert type(caught.value) is TimeoutError
    etcd_client.revoke(lease_id)


def test_keep_alive_revoked_lease_raises_lease_not_found(etcd_client: Client) -> None:
    """When the lease is revoked elsewhere, iteration raises LeaseNotFoundError, then stops."""
    lease_id = etcd_client.grant(2).id
    ka = etcd_client.keep_alive(lease_id)
    etcd_client.revoke(lease_id)
    with pytest.raises(errors.LeaseNotFoundError):  # noqa: PT012  # drains queued renewals
        for _ in range(10):
            ka.next(timeout=3)
    assert list(ka) == []
    with pytest.raises(errors.CanceledError):
        ka.next(timeout=1)


def test_keep_alive_cancel_ends_iteration(etcd_client: Client) -> None:
    """cancel() from another thread ends a running iteration; next() then raises CanceledError."""
    lease_id = etcd_client.grant(30).id
    ka = etcd_client.keep_alive(lease_id)
    received: list[LeaseKeepAliveResponse] = []
    reader = threading.Thread(target=lambda: received.extend(ka), name="test-reader")
    reader.start()
    wait_until(lambda: received, timeout=2, message="the first renewal is read")
    ka.cancel()
    reader.join(timeout=5)
    assert not reader.is_alive()
    with pytest.raises(errors.CanceledError):
        ka.next(timeout=1)
    ka.cancel()  # idempotent
    etcd_client.revoke(lease_id)


def test_keep_alive_cancel_stops_renewing(etcd_client: Client) -> None:
    """After cancel() the lease is no longer renewed and expires."""
    lease_id = etcd_client.grant(2).id
    etcd_client.keep_alive(lease_id).cancel()
    wait_until(lambda: etcd_client.time_to_live(lease_id).ttl == -1, timeout=6)


def test_keep_alive_several_handles_on_one_lease(etcd_client: Client) -> None:
    """Two handles on one lease both receive renewals; canceling one leaves the other running."""
    lease_id = etcd_client.grant(2).id
    first = etcd_client.keep_alive(lease_id)
    second = etcd_client.keep_alive(lease_id)
    assert first.next(timeout=1).id == second.next(timeout=1).id == lease_id
    first.cancel()
    started = time.monotonic()
    while time.monotonic() - started < 3:  # longer than the TTL
        assert second.next(timeout=2).id == lease_id
    assert etcd_client.time_to_live(lease_id).ttl > 0
    second.cancel()
    etcd_client.revoke(lease_id)


def test_keep_alive_runs_on_one_named_stream_per_client(
    etcd_cluster: EtcdCluster, sync_cluster_client: Client
) -> None:
    """Keep-alives of several leases share one stream (one member answers) and two threads."""
    before = _keep_alive_threads()
    leases = [sync_cluster_client.grant(30).id for _ in range(3)]
    handles = [sync_cluster_client.keep_alive(lease_id) for lease_id in leases]
    # Round robin would send separate streams to different members.
    members = {handle.next(timeout=1).header.member_id for handle in handles}
    assert len(members) == 1
    added = Counter(_keep_alive_threads()) - Counter(before)
    assert sorted(added.elements()) == [
        "etcd_layers.keepalive.receive",
        "etcd_layers.keepalive.send",
    ]
    for handle in handles:
        handle.cancel()
    for lease_id in leases:
        sync_cluster_client.revoke(lease_id)


def test_keep_alive_close_ends_every_keep_alive(etcd_server: EtcdCluster) -> None:
    """close() ends every keep-alive and its threads; later keep_alive calls raise CanceledError."""
    cli = Client(etcd_server.endpoints)
    before = len(_keep_alive_threads())
    leases = [cli.grant(30).id for _ in range(2)]
    handles = [cli.keep_alive(lease_id) for lease_id in leases]
    assert len(_keep_alive_threads()) == before + 2
    cli.close()
    assert len(_keep_alive_threads()) == before
    for handle in handles:
        assert [r.id for r in handle] in ([], [handle.lease_id])  # at most the queued first
        with pytest.raises(errors.CanceledError):
            handle.next(timeout=1)
    with pytest.raises(errors.CanceledError):
        cli.keep_alive(leases[0])
    with Client(etcd_server.endpoints) as other:
        for lease_id in leases:
            other.revoke(lease_id)


# --- faults, on the module's three-member cluster ------------------------------------------


def test_keep_alive_survives_dropped_connections(
    etcd_cluster: EtcdCluster, cluster_client: Client, observer: Client
) -> None:
    """Dropping every client connection repeatedly never lets the lease lapse."""
    lease_id = cluster_client.grant(3).id
    with cluster_client.keep_alive(lease_id) as ka:
        for _ in range(3):
            for member in etcd_cluster.members:
                member.client_proxy.drop_connections()
            started = time.monotonic()
            while time.monotonic() - started < 1.5:  # renewals must resume: next() would time out
                ka.next(timeout=3)
            assert _alive(observer, lease_id)
    cluster_client.revoke(lease_id)


def test_keep_alive_survives_member_restarts(
    etcd_cluster: EtcdCluster, cluster_client: Client, observer: Client
) -> None:
    """Restarting each member in turn, the one serving the stream included, keeps the lease."""
    lease_id = cluster_client.grant(3).id
    member_ids = [member.member_id for member in etcd_cluster.members]  # asked while they run
    with cluster_client.keep_alive(lease_id) as ka:
        for member, member_id in zip(etcd_cluster.members, member_ids, strict=True):
            member.stop()
            try:
                # A renewal confirmed after the stop came through a live member.
                _next_from_other_member(ka, member_id, timeout=3)
                assert _alive(observer, lease_id)
            finally:
                member.start()
            ka.next(timeout=3)
            assert _alive(observer, lease_id)
    cluster_client.revoke(lease_id)


def test_keep_alive_moves_off_a_black_holed_member(
    etcd_cluster: EtcdCluster, cluster_client: Client
) -> None:
    """When the member serving the stream is black-holed, renewals resume through another."""
    lease_id = cluster_client.grant(3).id
    with cluster_client.keep_alive(lease_id) as ka:
        serving = _member_serving(etcd_cluster, ka.next(timeout=1))
        serving.client_proxy.blackhole()
        try:
            _next_from_other_member(ka, serving.member_id, timeout=3)
            started = time.monotonic()
            while time.monotonic() - started < 4:  # past the TTL with the member still dark
                ka.next(timeout=3)
            # Asked of the members still in the light: a read sent to the dark one would
            # spend the observer's whole timeout, whichever client kept the lease alive.
            lit = [m.endpoint for m in etcd_cluster.members if m is not serving]
            with Client(lit, timeout=2) as outside:
                assert outside.time_to_live(lease_id).ttl > 0
        finally:
            serving.client_proxy.unblackhole()
    cluster_client.revoke(lease_id)


def test_keep_alive_moves_with_set_endpoints(etcd_cluster: EtcdCluster, observer: Client) -> None:
    """set_endpoints moves a running keep-alive to the new endpoints without losing the lease."""
    first, second, _ = etcd_cluster.members
    with Client([first.endpoint]) as cli:
        lease_id = cli.grant(3).id
        with cli.keep_alive(lease_id) as ka:
            assert ka.next(timeout=1).header.member_id == first.member_id
            cli.set_endpoints(second.endpoint)
            assert _next_from_other_member(ka, first.member_id, 3) == second.member_id
            assert _alive(observer, lease_id)
        cli.revoke(lease_id)


def test_keep_alive_without_confirmation_within_ttl_raises(
    etcd_cluster: EtcdCluster, cluster_client: Client
) -> None:
    """With every member black-holed, iteration raises LeaseNotFoundError about a TTL later."""
    lease_id = cluster_client.grant(2).id
    ka = cluster_client.keep_alive(lease_id)
    for member in etcd_cluster.members:
        member.client_proxy.blackhole()
    started = time.monotonic()
    try:
        with pytest.raises(errors.LeaseNotFoundError, match="may be gone"):  # noqa: PT012
            for _ in range(10):
                ka.next(timeout=4)
        assert time.monotonic() - started < 3.0
    finally:
        for member in etcd_cluster.members:
            member.client_proxy.unblackhole()
    with pytest.raises(errors.CanceledError):
        ka.next(timeout=1)


def test_keep_alive_first_renewal_times_out_with_no_endpoint(
    etcd_cluster: EtcdCluster, cluster_client: Client
) -> None:
    """With every member black-holed, keep_alive raises DeadlineExceededError at its timeout."""
    lease_id = cluster_client.grant(10).id
    for member in etcd_cluster.members:
        member.client_proxy.blackhole()
    started = time.monotonic()
    try:
        with pytest.raises(errors.DeadlineExceededError):
            cluster_client.keep_alive(lease_id, timeout=1)
        assert 0.9 < time.monotonic() - started < 3.0
    finally:
        for member in etcd_cluster.members:
            member.client_proxy.unblackhole()
    with cluster_client.keep_alive(lease_id, timeout=5) as ka:  # usable once members answer
        assert ka.next(timeout=1).id == lease_id
    cluster_client.revoke(lease_id)
