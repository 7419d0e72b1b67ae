"""RWMutex against a real etcd: Go's testRWMutex (v3_lock_test), fairness, timeouts, lost holders.

Both kinds (the async one behind recipe_kits' facade), alone and inside a namespace, from real
threads.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from recipe_kits import RecipeKit, still_waiting

from etcd_layers import errors
from etcd_layers.concurrency import LockNotHeldError, SessionExpiredError
from etcd_layers.testing import wait_until

WAIT = 20.0  # bound on every blocking step of a test
REVOKED_TTL = 3  # renewed every second, so a session notices a revoke within about one


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=12, thread_name_prefix="test-rwmutex") as executor:
        yield executor


class Occupancy:
    """Who is inside the lock right now; records every overlap that breaks its rule."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.readers = 0
        self.writers = 0
        self.most_readers = 0
        self.violations: list[str] = []

    def enter(self, write: bool) -> None:
        with self._lock:
            if self.writers or (write and self.readers):
                self.violations.append(f"write={write} with {self.readers}r {self.writers}w")
            if write:
                self.writers += 1
            else:
                self.readers += 1
                self.most_readers = max(self.most_readers, self.readers)

    def leave(self, write: bool) -> None:
        with self._lock:
            if write:
                self.writers -= 1
            else:
                self.readers -= 1


def test_rwmutex_readers_share_and_writers_exclude(
    kit: RecipeKit, pool: ThreadPoolExecutor
) -> None:
    """Go's testRWMutex: 5 holders, each with a session, randomly read or write; no overlap."""
    name = kit.name(b"test-rwmutex")
    occupancy = Occupancy()
    rng = random.Random(5)
    kinds = [rng.random() < 0.5 for _ in range(5)]

    def holder(write: bool) -> None:
        rwmutex = kit.rwmutex(kit.session(), name)
        for _ in range(3):
            (rwmutex.lock if write else rwmutex.rlock)(WAIT)
            occupancy.enter(write)
            time.sleep(0.02)  # hold it a while, so that the others queue behind
            occupancy.leave(write)
            (rwmutex.unlock if write else rwmutex.runlock)()

    for future in [pool.submit(holder, write) for write in kinds]:
        future.result(timeout=60)
    assert occupancy.violations == []
    assert kit.keys(name + b"/") == []


def test_rwmutex_readers_hold_at_once(kit: RecipeKit) -> None:
    """Several readers hold the read lock together while no writer queued before them."""
    name = kit.name(b"rw")
    readers = [kit.rwmutex(kit.session(), name) for _ in range(3)]
    for reader in readers:
        reader.rlock(WAIT)
    assert len(kit.keys(name + b"/read/")) == 3
    for reader in readers:
        reader.runlock()


def test_rwmutex_writer_is_not_starved_by_later_readers(
    kit: RecipeKit, pool: ThreadPoolExecutor
) -> None:
    """A reader that comes after a waiting writer waits for that writer."""
    name = kit.name(b"rw")
    session = kit.session()
    first_reader, writer, late_reader = (kit.rwmutex(session, name) for _ in range(3))
    first_reader.rlock(WAIT)
    writing = pool.submit(writer.lock, WAIT)
    wait_until(lambda: kit.keys(name + b"/write/") != [], timeout=WAIT, message="writer queued")
    with pytest.raises(errors.DeadlineExceededError):
        late_reader.rlock(0.5)  # behind the writer
    assert len(kit.keys(name + b"/read/")) == 1  # the late reader withdrew its key
    reading = pool.submit(late_reader.rlock, WAIT)
    still_waiting(writing, reading)
    first_reader.runlock()
    writing.result(timeout=WAIT)
    still_waiting(reading)  # the writer holds it now
    writer.unlock()
    reading.result(timeout=WAIT)
    late_reader.runlock()


def test_rwmutex_lock_timeout_leaves_no_key(plain_kit: RecipeKit) -> None:
    """A lock() that times out raises DeadlineExceededError (a TimeoutError) and withdraws."""
    name = plain_kit.name(b"rw")
    reader = plain_kit.rwmutex(plain_kit.session(), name)
    reader.rlock(WAIT)
    started = time.monotonic()
    with pytest.raises(errors.DeadlineExceededError) as raised:
        plain_kit.rwmutex(plain_kit.session(), name).lock(0.5)
    assert isinstance(raised.value, TimeoutError)
    assert time.monotonic() - started < 5
    assert plain_kit.keys(name + b"/write/") == []


def test_rwmutex_writer_whose_session_ends_hands_over(
    plain_kit: RecipeKit, pool: ThreadPoolExecutor
) -> None:
    """A writer whose lease is revoked loses the lock with its key; a waiting reader gets it."""
    name = plain_kit.name(b"rw")
    doomed_session = plain_kit.session(ttl=REVOKED_TTL)
    plain_kit.rwmutex(doomed_session, name).lock(WAIT)
    reader = plain_kit.rwmutex(plain_kit.session(), name)
    reading = pool.submit(reader.rlock, WAIT)
    still_waiting(reading)
    plain_kit.raw.revoke(doomed_session.lease_id)
    reading.result(timeout=WAIT)
    assert plain_kit.session_ended(doomed_session, timeout=10)
    reader.runlock()


def test_rwmutex_waiter_fails_when_its_own_session_ends(
    plain_kit: RecipeKit, pool: ThreadPoolExecutor
) -> None:
    """A waiter whose lease is revoked stops waiting with SessionExpiredError."""
    name = plain_kit.name(b"rw")
    holder = plain_kit.rwmutex(plain_kit.session(), name)
    holder.lock(WAIT)
    session = plain_kit.session(ttl=REVOKED_TTL)
    waiting = pool.submit(plain_kit.rwmutex(session, name).rlock, WAIT)
    wait_until(lambda: plain_kit.keys(name + b"/read/") != [], timeout=WAIT, message="queued")
    plain_kit.raw.revoke(session.lease_id)
    with pytest.raises(SessionExpiredError):
        waiting.result(timeout=10)
    holder.unlock()


def test_rwmutex_keys_are_gos_layout(plain_kit: RecipeKit) -> None:
    """Readers put `prefix/read/<ns>`, writers `prefix/write/<ns>`, on the session's lease."""
    name = plain_kit.name(b"rw")
    session = plain_kit.session()
    reader, writer = plain_kit.rwmutex(session, name), plain_kit.rwmutex(session, name)
    reader.rlock(WAIT)
    read_kv = plain_kit.raw.get(name + b"/read/", prefix=True).kvs[0]
    assert re.fullmatch(re.escape(name) + rb"/read/[0-9]{19}", read_kv.key)
    assert read_kv.lease == session.lease_id
    reader.runlock()
    writer.lock(WAIT)
    (write_kv,) = plain_kit.raw.get(name + b"/", prefix=True).kvs
    assert re.fullmatch(re.escape(name) + rb"/write/[0-9]{19}", write_kv.key)
    writer.unlock()


def test_rwmutex_misuse_raises_typed_errors(plain_kit: RecipeKit) -> None:
    """Releasing what is not held raises LockNotHeldError; a second lock raises RuntimeError."""
    rwmutex = plain_kit.rwmutex(plain_kit.session(), plain_kit.name(b"rw"))
    with pytest.raises(LockNotHeldError):
        rwmutex.unlock()
    rwmutex.rlock(WAIT)
    with pytest.raises(LockNotHeldError):
        rwmutex.unlock()  # it holds a read lock
    with pytest.raises(RuntimeError):
        rwmutex.lock(WAIT)
    rwmutex.runlock()
    with pytest.raises(ValueError, match="timeout"):
        rwmutex.lock(-1)


def test_rwmutex_waits_for_a_writer_key_put_as_go_puts_it(
    plain_kit: RecipeKit, pool: ThreadPoolExecutor
) -> None:
    """A key `prefix/write/<ns>` put by another program (Go's Lock) blocks readers until deleted."""
    name = plain_kit.name(b"rw")
    lease = plain_kit.raw.grant(10).id
    go_writer = name + b"/write/" + str(time.time_ns()).encode()
    plain_kit.raw.put(go_writer, b"", lease=lease)
    reader = plain_kit.rwmutex(plain_kit.session(), name)
    reading = pool.submit(reader.rlock, WAIT)
    still_waiting(reading)
    plain_kit.raw.delete(go_writer)  # Go's Unlock
    reading.result(timeout=WAIT)
    reader.runlock()
    plain_kit.raw.revoke(lease)
