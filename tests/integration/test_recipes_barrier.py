"""Barrier and DoubleBarrier against a real etcd: Go's v3_barrier_test and v3_double_barrier_test.

Every test runs with the sync recipes and the asyncio ones (behind recipe_kits' blocking
facade), alone and inside a namespace, from real threads.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import pytest
from recipe_kits import SHORT, RecipeKit, still_waiting

from etcd_layers import errors
from etcd_layers.concurrency import (
    KeyExistsError,
    NotEnteredError,
    SessionExpiredError,
    TooManyClientsError,
)
from etcd_layers.testing import wait_until

WAIT = 20.0  # bound on every blocking step of a test
EXPIRING_TTL = 2  # etcd's smallest lease TTL with the default election timeout


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=12, thread_name_prefix="test-barrier") as executor:
        yield executor


def all_done(futures: list[Future[None]]) -> None:
    for future in futures:
        future.result(timeout=WAIT)


# --- Barrier ---------------------------------------------------------------------------------


def test_barrier_blocks_waiters_until_released(kit: RecipeKit, pool: ThreadPoolExecutor) -> None:
    """Go's testBarrier: 5 waiters block while it is held and all return once it is released."""
    name = kit.name(b"test-barrier")
    holder = kit.barrier(name)
    holder.hold()
    with pytest.raises(KeyExistsError):
        holder.hold()  # Go: "able to double-hold barrier"
    kit.raw.put(kit.ns + kit.name(b"x"), b"")  # move the revision forward
    released = [pool.submit(kit.barrier(name).wait, WAIT) for _ in range(5)]
    still_waiting(*released)
    holder.release()
    all_done(released)
    assert kit.keys(name) == []


def test_barrier_wait_on_a_missing_key_returns_at_once(kit: RecipeKit) -> None:
    """Go's TestBarrierWaitNonexistentKey: a key that merely starts with the name is no barrier."""
    name = kit.name(b"test-barrier")
    kit.raw.put(kit.ns + name + b"-0", b"")
    started = time.monotonic()
    for _ in range(5):
        kit.barrier(name).wait(WAIT)
    assert time.monotonic() - started < 5


def test_barrier_key_is_gos_layout(plain_kit: RecipeKit) -> None:
    """The held barrier is its key itself, empty and without a lease, as Go's Hold puts it."""
    name = plain_kit.name(b"b")
    plain_kit.barrier(name).hold()
    kv = plain_kit.raw.get(name).kvs[0]
    assert (kv.value, kv.lease) == (b"", 0)


def test_barrier_wait_times_out_while_held(plain_kit: RecipeKit) -> None:
    """wait(timeout) raises DeadlineExceededError (a TimeoutError) while the barrier is held."""
    name = plain_kit.name(b"b")
    plain_kit.barrier(name).hold()
    started = time.monotonic()
    with pytest.raises(errors.DeadlineExceededError) as raised:
        plain_kit.barrier(name).wait(0.5)
    assert isinstance(raised.value, TimeoutError)
    assert time.monotonic() - started < 5
    assert plain_kit.keys(name) == [name]


def test_barrier_arguments_are_checked_before_io(plain_kit: RecipeKit) -> None:
    """A bad key or timeout raises TypeError / ValueError without touching etcd."""
    with pytest.raises(TypeError):
        plain_kit.barrier(5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="key"):
        plain_kit.barrier(b"")
    with pytest.raises(ValueError, match="timeout"):
        plain_kit.barrier(b"b").wait(0)


# --- DoubleBarrier ---------------------------------------------------------------------------


def test_double_barrier_enters_and_leaves_together(
    kit: RecipeKit, pool: ThreadPoolExecutor
) -> None:
    """Go's TestDoubleBarrier: 10 participants, each with a session; none passes early."""
    name, waiters = kit.name(b"test-barrier"), 10
    entered, left = threading.Semaphore(0), threading.Semaphore(0)
    go_on = threading.Event()

    def participant() -> None:
        barrier = kit.double_barrier(kit.session(), name, waiters)
        barrier.enter(WAIT)
        entered.release()
        assert go_on.wait(WAIT)
        barrier.leave(WAIT)
        left.release()

    others = [pool.submit(participant) for _ in range(waiters - 1)]
    last = kit.double_barrier(kit.session(), name, waiters)
    assert not entered.acquire(timeout=SHORT)  # Go: "barrier did not enter-wait"
    last.enter(WAIT)
    for _ in range(waiters - 1):
        assert entered.acquire(timeout=WAIT)
    assert kit.raw.get(kit.ns + name + b"/ready").kvs
    go_on.set()
    assert not left.acquire(timeout=SHORT)  # Go: "barrier did not leave-wait"
    last.leave(WAIT)
    all_done(others)
    assert kit.keys(name + b"/") == []  # the last one out deleted ready too


def test_double_barrier_refuses_one_too_many(kit: RecipeKit, pool: ThreadPoolExecutor) -> None:
    """Go's TestDoubleBarrierTooManyClients: a full barrier refuses and leaves no extra key."""
    name, waiters = kit.name(b"test-barrier"), 4
    session = kit.session()
    barriers = [kit.double_barrier(session, name, waiters) for _ in range(waiters)]
    all_done([pool.submit(barrier.enter, WAIT) for barrier in barriers])
    with pytest.raises(TooManyClientsError):
        kit.double_barrier(session, name, waiters).enter(WAIT)
    assert len(kit.keys(name + b"/waiters/")) == waiters
    all_done([pool.submit(barrier.leave, WAIT) for barrier in barriers])
    assert kit.keys(name + b"/") == []


@pytest.mark.parametrize("failure", ["revoke", "expire"])
def test_double_barrier_participant_whose_session_ends_lets_the_others_leave(
    plain_kit: RecipeKit, pool: ThreadPoolExecutor, failure: str
) -> None:
    """Go's TestDoubleBarrierFailover: a participant whose lease ends counts as left."""
    kit, waiters = plain_kit, 5
    name = kit.name(b"test-barrier")
    doomed_session, shared = kit.session(ttl=EXPIRING_TTL), kit.session()
    doomed = kit.double_barrier(doomed_session, name, waiters)
    others = [kit.double_barrier(shared, name, waiters) for _ in range(waiters - 1)]
    entering = [pool.submit(barrier.enter, WAIT) for barrier in [doomed, *others]]
    all_done(entering)
    leaving = [pool.submit(barrier.leave, WAIT) for barrier in others]
    still_waiting(*leaving)
    if failure == "revoke":
        kit.raw.revoke(doomed_session.lease_id)  # as Go's s0.Close(): the key goes with the lease
    else:
        doomed_session.orphan()  # as a crashed process: no more renewals; the lease runs out
    all_done(leaving)
    # `ready` may stay (as in Go, when the lost one was the lowest); the next round puts it anew.
    assert kit.keys(name + b"/waiters/") == []


def test_double_barrier_enter_timeout_withdraws_the_key(plain_kit: RecipeKit) -> None:
    """An enter() that times out raises DeadlineExceededError and leaves no participant key."""
    name = plain_kit.name(b"b")
    barrier = plain_kit.double_barrier(plain_kit.session(), name, 3)
    with pytest.raises(errors.DeadlineExceededError):
        barrier.enter(0.5)
    assert plain_kit.keys(name + b"/") == []
    assert barrier.entered is None


def test_double_barrier_keys_are_gos_layout(plain_kit: RecipeKit) -> None:
    """Participants put `key/waiters/<ns>` on their lease; the count-th puts `key/ready`."""
    name = plain_kit.name(b"b")
    session = plain_kit.session()
    barrier = plain_kit.double_barrier(session, name, 1)
    barrier.enter(WAIT)
    waiters = plain_kit.raw.get(name + b"/waiters/", prefix=True).kvs
    assert len(waiters) == 1
    assert re.fullmatch(rb".*/waiters/[0-9]{19}", waiters[0].key)
    assert waiters[0].lease == session.lease_id
    assert plain_kit.raw.get(name + b"/ready").kvs
    with pytest.raises(NotEnteredError):
        plain_kit.double_barrier(session, name, 1).leave(WAIT)
    with pytest.raises(RuntimeError, match="entered"):
        barrier.enter(WAIT)  # one object is one participant
    barrier.leave(WAIT)
    assert plain_kit.keys(name + b"/") == []


def test_double_barrier_leave_waits_for_a_participant_still_inside(
    plain_kit: RecipeKit,
) -> None:
    """leave(timeout) raises while another participant stays in, and withdraws its own key."""
    name = plain_kit.name(b"b")
    first = plain_kit.double_barrier(plain_kit.session(), name, 2)
    second = plain_kit.double_barrier(plain_kit.session(), name, 2)
    with ThreadPoolExecutor(max_workers=1) as single:
        entering = single.submit(first.enter, WAIT)
        wait_until(lambda: len(plain_kit.keys(name + b"/waiters/")) == 1, timeout=WAIT)
        second.enter(WAIT)
        entering.result(timeout=WAIT)
    with pytest.raises(errors.DeadlineExceededError):
        first.leave(0.5)
    assert len(plain_kit.keys(name + b"/waiters/")) == 1  # only the second one is left
    second.leave(WAIT)
    assert plain_kit.keys(name + b"/") == []


def test_double_barrier_enter_fails_when_its_session_ends(
    plain_kit: RecipeKit, pool: ThreadPoolExecutor
) -> None:
    """A participant waiting in enter() whose lease is revoked raises SessionExpiredError."""
    name = plain_kit.name(b"b")
    session = plain_kit.session(ttl=3)
    entering = pool.submit(plain_kit.double_barrier(session, name, 2).enter, WAIT)
    wait_until(lambda: plain_kit.keys(name + b"/waiters/") != [], timeout=WAIT)
    plain_kit.raw.revoke(session.lease_id)
    with pytest.raises(SessionExpiredError):
        entering.result(timeout=10)
    assert plain_kit.keys(name + b"/") == []


def test_double_barrier_is_reusable_after_a_round(
    plain_kit: RecipeKit, pool: ThreadPoolExecutor
) -> None:
    """Two rounds on one key: the second waits for its own count, not the first's ready."""
    name = plain_kit.name(b"b")
    for _ in range(2):
        barriers = [plain_kit.double_barrier(plain_kit.session(), name, 2) for _ in range(2)]
        first = pool.submit(barriers[0].enter, WAIT)
        still_waiting(first)
        barriers[1].enter(WAIT)
        first.result(timeout=WAIT)
        all_done([pool.submit(barrier.leave, WAIT) for barrier in barriers])


def test_double_barrier_counts_a_participant_put_as_go_puts_it(plain_kit: RecipeKit) -> None:
    """A key `key/waiters/<ns>` on a lease (Go's Enter) counts; this one completes the count."""
    name = plain_kit.name(b"b")
    lease = plain_kit.raw.grant(10).id
    plain_kit.raw.put(name + b"/waiters/" + str(time.time_ns()).encode(), b"", lease=lease)
    plain_kit.double_barrier(plain_kit.session(), name, 2).enter(WAIT)  # second of two: no wait
    assert plain_kit.raw.get(name + b"/ready").kvs  # what Go's waiting Enter watches for
    plain_kit.raw.revoke(lease)
