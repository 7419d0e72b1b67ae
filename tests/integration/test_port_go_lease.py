"""Go clientv3's lease integration tests (lease/lease_test.go), ported to our API.

Faults follow Go's: where Go stops the client's member, these tests mostly black-hole its
client proxy instead, which cuts the client off the same way and costs no restart. Go's
TestLeaseWithRequireLeader is not ported: our keep-alive deliberately keeps renewing through
members that have a leader (see base/_keepalive.py), where Go ends it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

import pytest
from conftest import BACKENDS, memory_backend, skip_real_only
from layer_kinds import Backend

from etcd_layers import Client, errors
from etcd_layers.base.protocols import KeepAlive
from etcd_layers.testing import EtcdCluster, Member, wait_until

TIMEOUT = 10.0  # for anything that should happen; a fault fails the test instead of hanging it
MAX_LEASE_TTL = 9_000_000_000  # etcd's MaxLeaseTTL, in seconds


@pytest.fixture(scope="module", params=BACKENDS)
def backend_of_module(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """The module's `etcd_cluster`, then a MemoryEtcd (on real time)."""
    if request.param == "memory":
        with memory_backend() as backend:
            yield backend
        return
    backend = Backend(server=request.getfixturevalue("etcd_cluster"))
    try:
        yield backend
    finally:
        backend.close()


@pytest.fixture(scope="module")
def shared(backend_of_module: Backend) -> Iterator[Client]:
    """A client on one member (Go's RandClient), not the one faults cut off; tests share it.

    One member, because etcd 3.5 answers leases() from the member's own state: through a
    client balancing over members, a lease granted or revoked on one member may not be
    listed yet by the next.
    """
    cluster = backend_of_module.server
    if cluster is None:
        yield backend_of_module.client(timeout=TIMEOUT)
        return
    with Client([cluster.members[1].endpoint], timeout=TIMEOUT) as client:
        yield client


@pytest.fixture
def cli(request: pytest.FixtureRequest, backend_of_module: Backend, shared: Client) -> Client:
    """The shared client (a test marked real_only is skipped on MemoryEtcd)."""
    skip_real_only(request, backend_of_module.name)
    return shared


@pytest.fixture(scope="module")
def closed(etcd_cluster: EtcdCluster) -> Client:
    """A client that has been closed."""
    client = Client(etcd_cluster.endpoints, timeout=TIMEOUT)
    client.close()
    return client


@pytest.fixture
def prefix(etcd_key_prefix: bytes) -> bytes:
    """The test's own key prefix."""
    return etcd_key_prefix


@pytest.fixture
def lease_id(cli: Client) -> Iterator[int]:
    """A lease of 10 s, revoked after the test if it still exists."""
    lease = cli.grant(10).id
    yield lease
    with contextlib.suppress(errors.LeaseNotFoundError):
        cli.revoke(lease)


@contextlib.contextmanager
def cut_off(member: Member) -> Iterator[None]:
    """Black-hole `member`'s client proxy (and drop what is open) for the block."""
    member.client_proxy.blackhole()
    member.client_proxy.drop_connections()
    try:
        yield
    finally:
        member.client_proxy.unblackhole()


def drain_until_error(keep_alive: KeepAlive, within: float) -> BaseException:
    """Read renewals until the keep-alive raises; return what it raised (bounded by `within`)."""
    ends = time.monotonic() + within
    while True:
        left = ends - time.monotonic()
        assert left > 0, "the keep-alive did not end in time"
        try:
            keep_alive.next(timeout=left)
        except TimeoutError:
            raise AssertionError("the keep-alive did not end in time") from None
        except errors.EtcdError as err:
            return err


# --- grant, revoke, put (TestLeaseNotFoundError, TestLeaseGrant, TestLeaseRevoke) ---------------


def test_lease_put_with_a_missing_lease_raises_lease_not_found(cli: Client, prefix: bytes) -> None:
    """A put attached to a lease that was never granted raises LeaseNotFoundError."""
    with pytest.raises(errors.LeaseNotFoundError):
        cli.put(prefix + b"foo", b"bar", lease=500)
    assert cli.get(prefix + b"foo").count == 0


def test_lease_grant_above_the_max_ttl_raises_ttl_too_large(cli: Client) -> None:
    """A TTL above etcd's MaxLeaseTTL raises LeaseTTLTooLargeError."""
    with pytest.raises(errors.LeaseTTLTooLargeError):
        cli.grant(MAX_LEASE_TTL + 1)


def test_lease_grant_gives_a_lease_keys_can_use(cli: Client, prefix: bytes) -> None:
    """A granted lease has an id and the TTL asked for, and a put can attach to it."""
    granted = cli.grant(10)
    assert granted.id > 0
    assert granted.ttl == 10
    cli.put(prefix + b"foo", b"bar", lease=granted.id)
    assert cli.get(prefix + b"foo").kvs[0].lease == granted.id
    cli.revoke(granted.id)


def test_lease_grant_with_a_chosen_id_and_again_raises_lease_exists(cli: Client) -> None:
    """A grant may choose its id; granting that id again raises LeaseExistsError."""
    chosen = cli.grant(10).id + 12345
    assert cli.grant(10, lease_id=chosen).id == chosen
    with pytest.raises(errors.LeaseExistsError):
        cli.grant(10, lease_id=chosen)
    cli.revoke(chosen)


def test_lease_revoked_lease_cannot_be_used_by_a_put(cli: Client, prefix: bytes) -> None:
    """After revoke, a put attached to the lease raises LeaseNotFoundError."""
    lease = cli.grant(10).id
    cli.revoke(lease)
    with pytest.raises(errors.LeaseNotFoundError):
        cli.put(prefix + b"foo", b"bar", lease=lease)


def test_lease_revoke_deletes_the_attached_keys(cli: Client, prefix: bytes) -> None:
    """Revoking a lease deletes every key attached to it, and only those."""
    lease = cli.grant(10).id
    cli.put(prefix + b"a", b"", lease=lease)
    cli.put(prefix + b"b", b"", lease=lease)
    cli.put(prefix + b"c", b"")
    cli.revoke(lease)
    assert [kv.key for kv in cli.get(prefix, prefix=True).kvs] == [prefix + b"c"]


def test_lease_put_with_another_lease_moves_the_key_to_it(cli: Client, prefix: bytes) -> None:
    """A key put again with a second lease is no longer deleted by the first (TestV3LeaseSwitch)."""
    first, second = cli.grant(10).id, cli.grant(10).id
    cli.put(prefix + b"k", b"", lease=first)
    cli.put(prefix + b"k", b"", lease=second)
    cli.revoke(first)
    assert cli.get(prefix + b"k").kvs[0].lease == second
    cli.revoke(second)
    assert cli.get(prefix + b"k").count == 0


def test_lease_revoke_of_a_missing_lease_raises_lease_not_found(cli: Client) -> None:
    """Revoking a lease twice raises LeaseNotFoundError the second time."""
    lease = cli.grant(10).id
    cli.revoke(lease)
    with pytest.raises(errors.LeaseNotFoundError):
        cli.revoke(lease)


def test_lease_expiry_deletes_the_attached_keys(cli: Client, prefix: bytes) -> None:
    """A lease left to expire deletes its keys (within its TTL and the expiry check)."""
    lease = cli.grant(1).id
    cli.put(prefix + b"k", b"", lease=lease)
    wait_until(lambda: cli.get(prefix + b"k").count == 0, timeout=TIMEOUT)
    assert cli.time_to_live(lease).ttl == -1


def test_lease_bad_arguments_are_refused_before_any_io(closed: Client) -> None:
    """A negative TTL or lease id raises ValueError, even on a closed client."""
    with pytest.raises(ValueError, match="ttl"):
        closed.grant(-1)
    with pytest.raises(ValueError, match="lease_id"):
        closed.revoke(-1)
    with pytest.raises(ValueError, match="lease_id"):
        closed.keep_alive(-1)
    with pytest.raises(TypeError, match="lease_id"):
        closed.time_to_live("1")  # type: ignore[arg-type]  # the wrong type on purpose


# --- keep-alive (TestLeaseKeepAliveOnce, TestLeaseKeepAlive, TestLeaseKeepAliveOneSecond,
# TestLeaseKeepAliveNotFound, TestLeaseKeepAliveFullResponseQueue) ----------------------------


def test_lease_keep_alive_once_renews_the_lease(cli: Client, lease_id: int) -> None:
    """keep_alive_once answers with the lease's id and its full TTL."""
    response = cli.keep_alive_once(lease_id)
    assert (response.id, response.ttl) == (lease_id, 10)


def test_lease_keep_alive_once_of_lease_zero_raises_lease_not_found(cli: Client) -> None:
    """keep_alive_once of lease 0, which never exists, raises LeaseNotFoundError."""
    with pytest.raises(errors.LeaseNotFoundError):
        cli.keep_alive_once(0)


def test_lease_keep_alive_once_of_a_revoked_lease_raises_lease_not_found(cli: Client) -> None:
    """keep_alive_once of a revoked lease raises LeaseNotFoundError."""
    lease = cli.grant(10).id
    cli.revoke(lease)
    with pytest.raises(errors.LeaseNotFoundError):
        cli.keep_alive_once(lease)


def test_lease_keep_alive_yields_renewals_until_the_client_closes(
    backend_of_module: Backend, lease_id: int
) -> None:
    """keep_alive yields renewals of the lease; close() ends its iteration."""
    client = backend_of_module.client(timeout=TIMEOUT)
    keep_alive = client.keep_alive(lease_id)
    first = keep_alive.next(timeout=TIMEOUT)
    assert first.id == lease_id
    assert first.ttl > 0
    client.close()
    started = time.monotonic()
    assert list(keep_alive) == []
    with pytest.raises(errors.CanceledError):
        keep_alive.next(timeout=TIMEOUT)
    assert time.monotonic() - started < 1.0


def test_lease_keep_alive_cancel_ends_its_iteration(cli: Client, lease_id: int) -> None:
    """After cancel(), a keep-alive's iteration stops and next() raises CanceledError."""
    keep_alive = cli.keep_alive(lease_id)
    keep_alive.cancel()
    assert list(keep_alive) == []
    with pytest.raises(errors.CanceledError):
        keep_alive.next(timeout=TIMEOUT)


def test_lease_keep_alive_of_a_one_second_lease_renews_repeatedly(cli: Client) -> None:
    """A keep-alive of a 1 s lease yields three renewals in a row, and keeps the lease."""
    lease = cli.grant(1).id
    with cli.keep_alive(lease) as keep_alive:
        renewals = [keep_alive.next(timeout=TIMEOUT) for _ in range(3)]
        assert all(r.id == lease and r.ttl > 0 for r in renewals)
        assert cli.time_to_live(lease).ttl >= 0
    cli.revoke(lease)


def test_lease_keep_alive_of_a_revoked_lease_ends_without_stopping_the_others(
    cli: Client,
) -> None:
    """Revoking one of several kept-alive leases ends only its keep-alive."""
    leases = [cli.grant(2).id for _ in range(3)]
    keep_alives = [cli.keep_alive(lease) for lease in leases]
    try:
        cli.revoke(leases[1])
        ended = drain_until_error(keep_alives[1], TIMEOUT)
        assert isinstance(ended, errors.LeaseNotFoundError)
        for keep_alive in (keep_alives[0], keep_alives[2]):
            keep_alive.next(timeout=TIMEOUT)  # what was queued
            assert keep_alive.next(timeout=TIMEOUT).ttl > 0  # and a renewal after the revoke
    finally:
        for keep_alive in keep_alives:
            keep_alive.cancel()
        for lease in (leases[0], leases[2]):
            cli.revoke(lease)


def test_lease_keep_alive_of_a_missing_lease_raises_at_once(cli: Client) -> None:
    """keep_alive of a lease that does not exist raises LeaseNotFoundError from the call."""
    lease = cli.grant(10).id
    cli.revoke(lease)
    with pytest.raises(errors.LeaseNotFoundError):
        cli.keep_alive(lease)


def test_lease_keep_alive_renews_at_a_third_of_the_ttl_even_unread(cli: Client) -> None:
    """A keep-alive nobody reads still renews only every third of the TTL, not constantly."""
    lease = cli.grant(30).id
    keep_alive = cli.keep_alive(lease)
    try:
        # The first renewal set the TTL back to 30; the next one is due after 10 s.
        wait_until(lambda: cli.time_to_live(lease).ttl < 29, timeout=TIMEOUT)
    finally:
        keep_alive.cancel()
        cli.revoke(lease)


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.grant(5),
        lambda c: c.revoke(1),
        lambda c: c.keep_alive(1),
        lambda c: c.keep_alive_once(1),
        lambda c: c.time_to_live(1),
        lambda c: c.leases(),
    ],
    ids=["grant", "revoke", "keep_alive", "keep_alive_once", "time_to_live", "leases"],
)
def test_lease_call_after_close_raises_canceled_at_once(
    closed: Client, call: Callable[[Client], object]
) -> None:
    """Every lease call on a closed client raises CanceledError without waiting."""
    started = time.monotonic()
    with pytest.raises(errors.CanceledError):
        call(closed)
    assert time.monotonic() - started < 1.0


# --- faults (TestLeaseKeepAliveCloseAfterDisconnectRevoke, TestLeaseKeepAliveInitTimeout,
# TestLeaseKeepAliveTTLTimeout, TestLeaseRenewLostQuorum) ------------------------------------


@pytest.mark.real_only  # cuts the client off its member
def test_lease_keep_alive_ends_after_a_revoke_while_cut_off(
    etcd_cluster: EtcdCluster, cli: Client
) -> None:
    """A keep-alive cut off from its member while the lease is revoked ends with
    LeaseNotFoundError once it can reach it again, within the lease's TTL."""
    member = etcd_cluster.members[0]
    lease = cli.grant(3).id
    with Client([member.endpoint], timeout=TIMEOUT) as client:
        keep_alive = client.keep_alive(lease)
        assert keep_alive.next(timeout=TIMEOUT).id == lease
        with cut_off(member):
            cli.revoke(lease)
        ended = drain_until_error(keep_alive, 3 + TIMEOUT)
        assert isinstance(ended, errors.LeaseNotFoundError)


@pytest.mark.real_only  # cuts the client off its member
def test_lease_keep_alive_without_answers_ends_within_the_ttl(
    etcd_cluster: EtcdCluster, cli: Client
) -> None:
    """A keep-alive whose only member stops answering ends with LeaseNotFoundError about
    when the lease may have expired, not later."""
    member = etcd_cluster.members[0]
    ttl = 2
    lease = cli.grant(ttl).id
    with Client([member.endpoint], timeout=TIMEOUT) as client:
        keep_alive = client.keep_alive(lease)
        assert keep_alive.next(timeout=TIMEOUT).id == lease
        with cut_off(member):
            started = time.monotonic()
            ended = drain_until_error(keep_alive, TIMEOUT)
            assert isinstance(ended, errors.LeaseNotFoundError)
            assert time.monotonic() - started < ttl + 1.0
    with contextlib.suppress(errors.LeaseNotFoundError):
        cli.revoke(lease)


@pytest.mark.real_only  # cuts the client off its member
def test_lease_keep_alive_with_no_answer_for_its_first_request_raises(
    etcd_cluster: EtcdCluster, cli: Client, lease_id: int
) -> None:
    """keep_alive whose first renewal gets no answer raises DeadlineExceededError."""
    member = etcd_cluster.members[0]
    with Client([member.endpoint], timeout=TIMEOUT) as client, cut_off(member):
        started = time.monotonic()
        with pytest.raises(errors.DeadlineExceededError):
            client.keep_alive(lease_id, timeout=1.0)
        assert time.monotonic() - started < 3.0


def test_lease_keep_alive_survives_a_short_loss_of_quorum(etcd_cluster: EtcdCluster) -> None:
    """A keep-alive whose cluster loses quorum for less than the TTL renews again after."""
    ttl = 6
    first, *others = etcd_cluster.members
    with Client([first.endpoint], timeout=TIMEOUT) as client:
        lease = client.grant(ttl).id
        with client.keep_alive(lease) as keep_alive:
            keep_alive.next(timeout=TIMEOUT)  # the next renewal is due in ttl/3 s
            for member in others:
                member.kill()
            try:
                with pytest.raises(TimeoutError):  # no quorum: nothing can be renewed
                    keep_alive.next(timeout=ttl / 3 + 0.5)
            finally:
                for member in others:
                    member.start(wait=False)
            etcd_cluster.wait_healthy()
            renewed = keep_alive.next(timeout=ttl)
            assert (renewed.id, renewed.ttl > 0) == (lease, True)
        client.revoke(lease)


# --- inspection (TestLeaseTimeToLive, TestLeaseTimeToLiveLeaseNotFound, TestLeaseLeases) --------


def test_lease_time_to_live_lists_the_attached_keys(
    cli: Client, lease_id: int, prefix: bytes
) -> None:
    """time_to_live with keys=True gives the granted TTL, the TTL left and the keys."""
    keys = [prefix + b"foo1", prefix + b"foo2"]
    for key in keys:
        cli.put(key, b"bar", lease=lease_id)
    cli.get(b"abc")  # a linearized read: the puts reached every member
    response = cli.time_to_live(lease_id, keys=True)
    assert response.id == lease_id
    assert response.granted_ttl == 10
    assert 0 < response.ttl <= response.granted_ttl
    assert sorted(response.keys) == keys


def test_lease_time_to_live_without_keys_lists_none(
    cli: Client, lease_id: int, prefix: bytes
) -> None:
    """time_to_live without keys=True leaves the keys out."""
    cli.put(prefix + b"foo", b"bar", lease=lease_id)
    assert cli.time_to_live(lease_id).keys == []


def test_lease_time_to_live_of_a_revoked_lease_is_minus_one(cli: Client) -> None:
    """time_to_live of a revoked lease answers (no error) with TTL -1 and the lease's id."""
    lease = cli.grant(10).id
    cli.revoke(lease)
    response = cli.time_to_live(lease)
    assert (response.id, response.ttl) == (lease, -1)
    assert response.header.revision > 0


def test_lease_leases_lists_every_granted_lease(cli: Client) -> None:
    """leases() lists every lease granted (and no longer the revoked ones)."""
    granted = [cli.grant(10).id for _ in range(5)]
    listed = {status.id for status in cli.leases().leases}
    assert set(granted) <= listed
    for lease in granted:
        cli.revoke(lease)
    assert not set(granted) & {status.id for status in cli.leases().leases}
