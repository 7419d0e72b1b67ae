"""Every layer and concurrency type runs on MemoryEtcd (their asyncio forms: test_memory_async.py).

The key-translating layers run over both client kinds (the AsyncClient behind the suite's sync
facade); the types that check for a Protocol speaker (ordering, Session) take the Client, as
a facade with `__getattr__` speaks no Protocol on Python 3.12+.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import cast

import pytest
from conftest import AsyncClientFacade

from etcd_layers import Client, namespace, ordering
from etcd_layers import leasing as leasing_layer
from etcd_layers.concurrency import Election, Mutex, Session
from etcd_layers.testing import MemoryEtcd, wait_until

KINDS = ("Client", "AsyncClient")


@pytest.fixture(params=KINDS)
def client(request: pytest.FixtureRequest, etcd_memory: MemoryEtcd) -> Iterator[Client]:
    """A client of etcd_memory of each kind (the AsyncClient behind the suite's sync facade)."""
    if request.param == "Client":
        made = etcd_memory.client(timeout=10)
    else:
        made = cast(Client, AsyncClientFacade(lambda: etcd_memory.async_client(timeout=10)))
    try:
        yield made
    finally:
        made.close()


def test_memory_namespace_translates_every_call(client: Client, etcd_memory: MemoryEtcd) -> None:
    """Through namespace.wrap, keys land under the prefix and come back without it."""
    ns = namespace.wrap(client, "/tenant/")
    ns.put("k", "v")
    with etcd_memory.client() as raw:
        assert [kv.key for kv in raw.get("/tenant/", prefix=True).kvs] == [b"/tenant/k"]
        raw.put("/other", "x")
    assert [kv.key for kv in ns.get("", prefix=True).kvs] == [b"k"]
    watch = ns.watch("w")
    ns.put("w", "1")
    event = watch.next(timeout=5).events[0]
    assert (event.kv.key, event.kv.value) == (b"w", b"1")
    watch.cancel()


def test_memory_ordering_sees_no_violation(etcd_memory_client: Client) -> None:
    """ordering.wrap over MemoryEtcd: revisions only go forward, so nothing is reported."""
    violations: list[object] = []
    checked = ordering.wrap(etcd_memory_client, on_violation=lambda *args: violations.append(args))
    for index in range(20):
        checked.put("k", str(index))
        assert checked.get("k").kvs[0].value == str(index).encode()
    assert violations == []


def test_memory_leasing_serves_from_cache_and_sees_other_writers(etcd_memory: MemoryEtcd) -> None:
    """Two leasing clients on one prefix: a write by one reaches the other's next get."""
    with etcd_memory.client(timeout=10) as first_client, etcd_memory.client(timeout=10) as second:
        first = leasing_layer.wrap(first_client, "lease/", ttl=30)
        other = leasing_layer.wrap(second, "lease/", ttl=30)
        try:
            first.put("k", "1")
            assert first.get("k").kvs[0].value == b"1"
            assert first.get("k").kvs[0].value == b"1"  # now from the cache
            other.put("k", "2")
            wait_until(lambda: first.get("k").kvs[0].value == b"2", timeout=5)
        finally:
            first.close()
            other.close()


def test_memory_mutex_excludes_and_hands_over(
    etcd_memory_client: Client, etcd_memory: MemoryEtcd
) -> None:
    """Two sessions on one Mutex: the second gets it only when the first unlocks."""
    with (
        etcd_memory.client(timeout=10) as other_client,
        Session(etcd_memory_client, ttl=30) as first,
        Session(other_client, ttl=30) as second,
    ):
        holder, waiter = Mutex(first, "locks/x"), Mutex(second, "locks/x")
        holder.lock(timeout=5)
        assert not waiter.try_lock()
        with ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(waiter.lock, timeout=10)
            assert not waiting.done()
            holder.unlock()
            waiting.result(timeout=10)
        assert waiter.is_owner()
        waiter.unlock()


def test_memory_session_lives_through_clock_advances_until_orphaned(
    etcd_memory_client: Client, etcd_memory: MemoryEtcd
) -> None:
    """A session's keep-alive renews on clock time; orphaned, its lease and lock expire."""
    assert etcd_memory.clock is not None
    with etcd_memory.client(timeout=10) as other_client:
        session = Session(etcd_memory_client, ttl=10)
        mutex = Mutex(session, "locks/y")
        mutex.lock(timeout=5)
        etcd_memory.clock.advance(3600)
        assert not session.done.is_set()
        with Session(other_client, ttl=10) as other:
            assert not Mutex(other, "locks/y").try_lock()
            session.orphan()
            etcd_memory.clock.advance(10)
            assert Mutex(other, "locks/y").try_lock()
        session.close()


def test_memory_election_follows_leaders(
    etcd_memory_client: Client, etcd_memory: MemoryEtcd
) -> None:
    """Campaign, observe, resign: the second candidate leads once the first resigns."""
    with (
        etcd_memory.client(timeout=10) as other_client,
        Session(etcd_memory_client, ttl=30) as first,
        Session(other_client, ttl=30) as second,
    ):
        leader, follower = Election(first, "elect/x"), Election(second, "elect/x")
        leader.campaign("one", timeout=5)
        assert leader.leader().value == b"one"
        started = threading.Event()

        def campaign() -> None:
            started.set()
            follower.campaign("two", timeout=10)

        with ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(campaign)
            started.wait(5)
            leader.proclaim("one again")
            assert follower.leader().value == b"one again"
            leader.resign()
            waiting.result(timeout=10)
        assert follower.leader().value == b"two"
        follower.resign()


def test_memory_stack_of_every_layer(client: Client) -> None:
    """ordering over leasing over namespace runs on MemoryEtcd as on a real server."""
    leased = leasing_layer.wrap(namespace.wrap(client, "/t/"), "lease/", ttl=30)
    try:
        stack = ordering.wrap(leased)
        stack.put("k", "v")
        assert stack.get("k").kvs[0].value == b"v"
        assert stack.delete("k").deleted == 1
        assert stack.get("k").count == 0
    finally:
        leased.close()
