"""What time does to leases, on a real etcd (real time) and on MemoryEtcd (a ManualClock).

Each test runs the same calls on both; where the real server waits for time to pass, the
MemoryEtcd's clock is advanced by as much. The answers are compared as the differential test
compares them (`differential.Side.view`): revisions counted from the test's start, leases
named by the order they were granted in.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, Final

import pytest
from differential import Side, closing
from memory_kind import memory_etcd

from etcd_layers import Client, Op
from etcd_layers.testing import EtcdServer, ManualClock, wait_until
from etcd_layers.testing.plugin import require_etcd

# The rig's servers tick every 50 ms: etcd's minimum lease TTL is then 1 s (1.5 elections).
MIN_LEASE_TTL: Final = 1
EXPIRY_WAIT: Final = 15.0  # seconds a real lease may take to expire past its TTL on a busy machine


@pytest.fixture(scope="module")
def real() -> Iterator[Side]:
    """A real server of the module's own (its store is reset by every test)."""
    require_etcd()
    with (
        EtcdServer(name_prefix="time") as server,
        closing(Side("real", Client(server.endpoints, **server.client_options()))) as side,
    ):
        yield side


@pytest.fixture
def memory() -> Iterator[tuple[Side, ManualClock]]:
    """A MemoryEtcd on a ManualClock, as a side, with its clock."""
    etcd = memory_etcd(min_lease_ttl=MIN_LEASE_TTL)
    with etcd, closing(Side("memory", etcd.client())) as side:
        assert etcd.clock is not None
        yield side, etcd.clock


@pytest.fixture
def sides(real: Side, memory: tuple[Side, ManualClock]) -> tuple[Side, Side, ManualClock]:
    """Both sides, reset (no keys, no leases; revisions counted from here), and the clock."""
    for side in (real, memory[0]):
        side.reset()
    return real, *memory


def grant(sides: tuple[Side, ...], ttl: int, name: str) -> None:
    """Grant a lease of `ttl` on every side, known to the test as `name`."""
    for side in sides:
        side.name_lease(side.client.grant(ttl).id, name)


def views(sides: tuple[Side, ...], call: Any) -> list[object]:
    """`call(side)`'s answer on each side, as views."""
    return [side.view(call(side)) for side in sides]


def expired(side: Side, name: str) -> bool:
    return side.client.time_to_live(side.lease_in(name)).ttl == -1


def test_expiry_deletes_the_leases_keys_in_one_revision_in_expiry_order(
    sides: tuple[Side, Side, ManualClock],
) -> None:
    real, mem, clock = sides
    both = (real, mem)
    grant(both, 1, "short")
    grant(both, 3, "long")
    watches = [side.client.watch(b"k", prefix=True, prev_kv=True, filter_put=True) for side in both]
    for side in both:
        for name, keys in (("short", (b"k1", b"k2", b"k3")), ("long", (b"k4", b"k5"))):
            lease = side.lease_in(name)
            side.client.txn(success=[Op.put(key, b"v", lease=lease) for key in keys])
        side.client.put(b"k6", b"no lease")
    wait_until(lambda: expired(real, "long"), timeout=EXPIRY_WAIT, interval=0.1)
    clock.advance(3.0)  # both leases' deadlines pass: they expire in deadline order
    got: list[list[object]] = [[], []]
    for side, watch, events in zip(both, watches, got, strict=True):
        with watch:
            for _ in range(2):  # one response per expiry: each deletes its keys at one revision
                response = watch.next(timeout=5.0)
                events.append(
                    [(e.kv.key, side.rev_out(e.kv.mod_revision)) for e in response.events]
                )
                events.append(side.view(response.events))
    assert got[0] == got[1]
    assert got[0][0] == [(b"k1", 5), (b"k2", 5), (b"k3", 5)]
    assert got[0][2] == [(b"k4", 6), (b"k5", 6)]
    gets = views(both, lambda side: side.client.get(b"k", prefix=True))
    assert gets[0] == gets[1]
    assert [kv.key for kv in mem.client.get(b"k", prefix=True).kvs] == [b"k6"]
    assert (
        views(both, lambda side: side.client.leases())
        == [("LeaseLeasesResponse", {"header": 6, "leases": []})] * 2
    )


@pytest.mark.parametrize(("ttl", "after"), [(5, 0.3), (5, 1.4), (3, 2.6)])
def test_time_to_live_truncates_the_remaining_seconds(
    sides: tuple[Side, Side, ManualClock], ttl: int, after: float
) -> None:
    # etcd answers int(seconds left): 5 s granted, 0.3 s later, 4; MemoryEtcd the same on its
    # clock. The real wait stays 0.4 s clear of the next whole second, for a busy machine.
    real, mem, clock = sides
    both = (real, mem)
    grant(both, ttl, "lease")
    granted = time.monotonic()
    clock.advance(after)
    time.sleep(max(0.0, granted + after - time.monotonic()))
    answers = [side.client.time_to_live(side.lease_in("lease")) for side in both]
    assert time.monotonic() - granted < after + 0.4, "the machine was too slow to tell"
    assert [(a.ttl, a.granted_ttl) for a in answers] == [(int(ttl - after), ttl)] * 2


def test_ttl_below_the_minimum_is_raised_to_it_and_expires_then(
    sides: tuple[Side, Side, ManualClock],
) -> None:
    real, mem, clock = sides
    both = (real, mem)
    answers = [side.client.grant(0) for side in both]
    assert [a.ttl for a in answers] == [MIN_LEASE_TTL] * 2
    for side, answer in zip(both, answers, strict=True):
        side.name_lease(answer.id, "lease")
    clock.advance(MIN_LEASE_TTL - 0.5)
    assert not expired(mem, "lease")
    clock.advance(0.5)  # expires once the clock is not before its deadline, as etcd
    assert expired(mem, "lease")
    wait_until(lambda: expired(real, "lease"), timeout=EXPIRY_WAIT, interval=0.1)


def test_keep_alive_holds_a_lease_past_its_ttl_until_canceled(
    sides: tuple[Side, Side, ManualClock],
) -> None:
    real, mem, clock = sides
    both = (real, mem)
    grant(both, 1, "lease")
    handles = [side.client.keep_alive(side.lease_in("lease")) for side in both]
    first = [side.view(h.next(timeout=5.0)) for side, h in zip(both, handles, strict=True)]
    assert (
        first[0] == first[1] == ("LeaseKeepAliveResponse", {"header": 1, "id": "lease", "ttl": 1})
    )
    time.sleep(2.5)  # the real lease lives on past its TTL, renewed
    clock.advance(10.0)  # the memory one on clock time, however far the clock moves
    assert [expired(side, "lease") for side in both] == [False, False]
    for handle in handles:
        handle.cancel()
    clock.advance(1.0)
    assert expired(mem, "lease")
    wait_until(lambda: expired(real, "lease"), timeout=EXPIRY_WAIT, interval=0.1)
