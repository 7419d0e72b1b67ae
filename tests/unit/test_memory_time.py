"""MemoryEtcd on a ManualClock: lease TTLs, expiry in time order, keep-alives on clock time."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from etcd_layers import Client, Op, errors
from etcd_layers.base.transport import rpc_pb2
from etcd_layers.testing import ManualClock, MemoryEtcd
from etcd_layers.testing.memory._store import Store


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def etcd(clock: ManualClock) -> Iterator[MemoryEtcd]:
    with MemoryEtcd(clock=clock) as etcd:
        yield etcd


@pytest.fixture
def cli(etcd: MemoryEtcd) -> Iterator[Client]:
    with etcd.client(timeout=10) as cli:
        yield cli


def test_manual_clock_refuses_bad_steps(clock: ManualClock) -> None:
    """advance() takes a finite number >= 0."""
    with pytest.raises(TypeError, match="seconds must be a number"):
        clock.advance("1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="seconds must be a finite number"):
        clock.advance(-1)
    with pytest.raises(ValueError, match="seconds must be a finite number"):
        clock.advance(float("nan"))
    clock.advance(1.5)
    assert clock.now() == 1.5


def test_memory_etcd_checks_its_arguments() -> None:
    """The clock must be a ManualClock; min_lease_ttl a positive int."""
    with pytest.raises(TypeError, match="clock must be a ManualClock"):
        MemoryEtcd(clock=1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="min_lease_ttl must be >= 1"):
        MemoryEtcd(clock=ManualClock(), min_lease_ttl=0)


def test_lease_ttl_raised_to_the_minimum(cli: Client) -> None:
    """A TTL under min_lease_ttl is raised to it, as etcd does."""
    assert cli.grant(1).ttl == 2
    assert cli.grant(7).ttl == 7


def test_lease_expires_when_the_clock_reaches_its_deadline(
    clock: ManualClock, etcd: MemoryEtcd, cli: Client
) -> None:
    """Not before the deadline; at it, the lease's keys go in one revision."""
    lease = cli.grant(10)
    cli.put("a", "1", lease=lease.id)
    cli.put("b", "1", lease=lease.id)
    clock.advance(9.999)
    assert cli.time_to_live(lease.id).ttl == 0  # 0.001 s left, truncated as etcd does
    assert cli.get("a").count == 1
    before = etcd.revision
    clock.advance(0.001)
    assert cli.time_to_live(lease.id).ttl == -1
    assert cli.get("a", range_end="c").count == 0
    assert etcd.revision == before + 1


def test_expiries_happen_in_time_order(clock: ManualClock, etcd: MemoryEtcd, cli: Client) -> None:
    """One advance past several deadlines revokes the leases earliest first, one revision each."""
    late, early = cli.grant(9), cli.grant(3)
    cli.put("late", "x", lease=late.id)
    cli.put("early", "x", lease=early.id)
    start = etcd.revision
    clock.advance(60)
    history = cli.get("\0", from_key=True, revision=start + 1)
    assert [kv.key for kv in history.kvs] == [b"late"]  # "early" went first
    assert etcd.revision == start + 2


def test_keep_alive_never_bumps_the_revision(
    clock: ManualClock, etcd: MemoryEtcd, cli: Client
) -> None:
    """Renewals restart the TTL and leave the revision alone."""
    lease = cli.grant(5)
    clock.advance(4)
    before = etcd.revision
    response = cli.keep_alive_once(lease.id)
    assert (response.ttl, etcd.revision) == (5, before)
    clock.advance(4)
    assert cli.time_to_live(lease.id).ttl == 1


def test_running_keep_alive_survives_any_advance(clock: ManualClock, cli: Client) -> None:
    """While keep_alive() runs the lease never expires; once canceled, it does."""
    lease = cli.grant(5)
    cli.put("k", "v", lease=lease.id)
    with cli.keep_alive(lease.id):
        clock.advance(3600)
        assert cli.time_to_live(lease.id).ttl == 5
    clock.advance(5)
    assert cli.time_to_live(lease.id).ttl == -1
    assert cli.get("k").count == 0


def test_lease_ids_given_or_chosen(cli: Client) -> None:
    """A given id is used; a taken one is refused; chosen ids are positive and distinct."""
    assert cli.grant(5, lease_id=42).id == 42
    with pytest.raises(errors.LeaseExistsError, match="etcdserver: lease already exists"):
        cli.grant(5, lease_id=42)
    chosen = {cli.grant(5).id for _ in range(3)}
    assert len(chosen) == 3
    assert all(lease_id > 0 for lease_id in chosen)
    assert sorted(status.id for status in cli.leases().leases) == sorted({42} | chosen)


def test_revoke_and_unknown_leases(cli: Client) -> None:
    """Revoking twice fails with etcd's error; time_to_live of a gone lease answers TTL -1."""
    lease = cli.grant(5)
    cli.revoke(lease.id)
    with pytest.raises(errors.LeaseNotFoundError, match="requested lease not found"):
        cli.revoke(lease.id)
    assert cli.time_to_live(lease.id).ttl == -1
    with pytest.raises(errors.LeaseNotFoundError):
        cli.put("k", "v", lease=lease.id)


def test_store_expire_takes_the_time_it_is_given() -> None:
    """The core reads no clock: expire(now) revokes what ran out by `now`, in deadline order."""
    store = Store(min_lease_ttl=1)
    first = store.lease_grant(rpc_pb2.LeaseGrantRequest(TTL=2), now=0.0).ID
    second = store.lease_grant(rpc_pb2.LeaseGrantRequest(TTL=1), now=0.5).ID
    assert store.next_expiry() == 1.5
    assert store.expire(1.0) == []
    assert store.expire(2.0) == [second, first]
    assert store.next_expiry() is None


def test_progress_notifications_follow_the_clock(
    clock: ManualClock, etcd: MemoryEtcd, cli: Client
) -> None:
    """A watch with progress_notify gets an empty response after 600 clock seconds."""
    watch = cli.watch("k", progress_notify=True)
    quiet = cli.watch("q")
    clock.advance(599)
    cli.put("k", "v")
    assert watch.next(timeout=5).events[0].kv.value == b"v"
    clock.advance(1)
    progress = watch.next(timeout=5)
    assert (progress.events, progress.header.revision) == ([], etcd.revision)
    clock.advance(10**9)  # one notification for the whole step, however many intervals
    assert watch.next(timeout=5).events == []
    with pytest.raises(TimeoutError):
        watch.next(timeout=0.05)
    with pytest.raises(TimeoutError):
        quiet.next(timeout=0.05)
    watch.cancel()
    quiet.cancel()


def test_fragmented_watch_responses_arrive_whole(cli: Client) -> None:
    """A txn too large for one watch response reaches a fragment watch as one response."""
    watch = cli.watch("big/", prefix=True, fragment=True)
    value = b"x" * (600 * 1024)
    cli.txn([], [Op.put(f"big/{index}", value) for index in range(3)], [])
    response = watch.next(timeout=5)
    assert [event.kv.key for event in response.events] == [f"big/{i}".encode() for i in range(3)]
    assert cli.watch_stats().fragments >= 1
    watch.cancel()


def test_manual_clock_steps_add_up_exactly() -> None:
    """Ten advance(0.1) reach a deadline one second away, as one advance(1) does."""
    clock = ManualClock()
    with MemoryEtcd(clock=clock, min_lease_ttl=1) as etcd, etcd.client() as cli:
        lease = cli.grant(1)
        for _ in range(9):
            clock.advance(0.1)
        assert cli.time_to_live(lease.id).granted_ttl == 1
        clock.advance(0.1)
        assert clock.now() == 1.0
        assert cli.time_to_live(lease.id).ttl == -1
