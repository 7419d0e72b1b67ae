"""The recipes under faults on 3 members: restarts, lost holders, many threads, processes."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from recipe_kits import KINDS, RecipeKit, still_waiting

from etcd_layers.testing import EtcdCluster, Member, wait_until

WAIT = 30.0  # bound on every blocking step of a test
TTL = 2  # etcd's smallest lease TTL with the default election timeout


@pytest.fixture(autouse=True)
def _restore(etcd_cluster: EtcdCluster) -> Iterator[None]:
    """Undo every fault a test left, so the module's cluster starts each test whole."""
    yield
    for member in etcd_cluster.members:
        member.client_proxy.unblackhole()
        if not member.is_running:
            member.start()
    etcd_cluster.wait_healthy()


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=24, thread_name_prefix="test-recipes") as executor:
        yield executor


def follower_of(cluster: EtcdCluster) -> Member:
    """A member that is not the leader."""
    leader = wait_until(cluster.leader, timeout=WAIT)
    return next(member for member in cluster.members if member is not leader)


def kit_on(kind: str, cluster: EtcdCluster, members: list[Member], prefix: bytes) -> RecipeKit:
    """A kit whose clients reach only `members`."""
    endpoints = [member.endpoint for member in members]
    return RecipeKit(kind, endpoints, cluster.client_options(), prefix)


@pytest.mark.parametrize("kind", KINDS)
def test_dequeue_waiting_through_a_member_restart_gets_the_item(
    etcd_cluster: EtcdCluster, etcd_key_prefix: bytes, pool: ThreadPoolExecutor, kind: str
) -> None:
    """A reader waiting on an empty queue through one member gets the item put while it was down."""
    member = follower_of(etcd_cluster)
    others = [m for m in etcd_cluster.members if m is not member]
    reader_kit = kit_on(kind, etcd_cluster, [member], etcd_key_prefix)
    writer_kit = kit_on("sync", etcd_cluster, others, etcd_key_prefix)
    try:
        name = reader_kit.name(b"q")
        reading = pool.submit(reader_kit.queue(name).dequeue, WAIT)
        still_waiting(reading, seconds=0.5)  # by now the reader is watching
        member.kill()
        writer_kit.queue(name).enqueue(b"while-down")
        still_waiting(reading, seconds=0.5)
        member.start()
        assert reading.result(timeout=WAIT) == b"while-down"
        assert writer_kit.keys(name + b"/") == []
    finally:
        reader_kit.close()
        writer_kit.close()


@pytest.mark.parametrize("kind", KINDS)
def test_barrier_and_double_barrier_waiting_through_a_member_restart(
    etcd_cluster: EtcdCluster, etcd_key_prefix: bytes, pool: ThreadPoolExecutor, kind: str
) -> None:
    """Waiters on a restarting member see a release and a completed count made while it was down."""
    member = follower_of(etcd_cluster)
    others = [m for m in etcd_cluster.members if m is not member]
    waiter_kit = kit_on(kind, etcd_cluster, [member], etcd_key_prefix)
    other_kit = kit_on("sync", etcd_cluster, others, etcd_key_prefix)
    try:
        gate, group = waiter_kit.name(b"gate"), waiter_kit.name(b"group")
        other_kit.barrier(gate).hold()
        waiting = pool.submit(waiter_kit.barrier(gate).wait, WAIT)
        first = waiter_kit.double_barrier(waiter_kit.session(ttl=10), group, 2)
        entering = pool.submit(first.enter, WAIT)
        wait_until(lambda: other_kit.keys(group + b"/waiters/") != [], timeout=WAIT)
        still_waiting(waiting, entering, seconds=0.5)
        member.kill()
        other_kit.barrier(gate).release()
        other_kit.double_barrier(other_kit.session(), group, 2).enter(WAIT)
        member.start()
        waiting.result(timeout=WAIT)
        entering.result(timeout=WAIT)
    finally:
        waiter_kit.close()
        other_kit.close()


@pytest.mark.parametrize("kind", KINDS)
def test_rwmutex_writer_waiting_through_a_member_restart_gets_the_lock(
    etcd_cluster: EtcdCluster, etcd_key_prefix: bytes, pool: ThreadPoolExecutor, kind: str
) -> None:
    """A writer waiting through a restarting member gets the lock once the reader lets go."""
    member = follower_of(etcd_cluster)
    others = [m for m in etcd_cluster.members if m is not member]
    waiter_kit = kit_on(kind, etcd_cluster, [member], etcd_key_prefix)
    holder_kit = kit_on("sync", etcd_cluster, others, etcd_key_prefix)
    try:
        name = waiter_kit.name(b"rw")
        reader = holder_kit.rwmutex(holder_kit.session(), name)
        reader.rlock(WAIT)
        # The TTL outlives the restart: the writer's session renews again once it is back.
        writer = waiter_kit.rwmutex(waiter_kit.session(ttl=10), name)
        writing = pool.submit(writer.lock, WAIT)
        wait_until(lambda: holder_kit.keys(name + b"/write/") != [], timeout=WAIT)
        member.kill()
        reader.runlock()  # while the writer's member is down
        member.start()
        writing.result(timeout=WAIT)
        writer.unlock()
        assert holder_kit.keys(name + b"/") == []
    finally:
        waiter_kit.close()
        holder_kit.close()


@pytest.mark.parametrize("kind", KINDS)
def test_rwmutex_partitioned_writer_loses_the_lock_to_a_waiting_reader(
    etcd_cluster: EtcdCluster, etcd_key_prefix: bytes, pool: ThreadPoolExecutor, kind: str
) -> None:
    """A writer cut off from its member loses its key with its lease; a reader then gets in."""
    member = etcd_cluster.members[0]
    doomed_kit = kit_on(kind, etcd_cluster, [member], etcd_key_prefix)
    kit = kit_on(kind, etcd_cluster, etcd_cluster.members[1:], etcd_key_prefix)
    try:
        name = kit.name(b"rw")
        doomed_session = doomed_kit.session(ttl=TTL)
        doomed_kit.rwmutex(doomed_session, name).lock(WAIT)
        reader = kit.rwmutex(kit.session(), name)
        reading = pool.submit(reader.rlock, WAIT)
        started = time.monotonic()
        member.client_proxy.blackhole()
        reading.result(timeout=WAIT)
        assert time.monotonic() - started < TTL + 5
        member.client_proxy.unblackhole()
        assert doomed_kit.session_ended(doomed_session, timeout=TTL + 5)
        reader.runlock()
    finally:
        member.client_proxy.unblackhole()
        doomed_kit.close()
        kit.close()


@pytest.mark.parametrize("kind", KINDS)
def test_many_threads_on_three_members_share_one_queue(
    etcd_cluster: EtcdCluster, etcd_key_prefix: bytes, pool: ThreadPoolExecutor, kind: str
) -> None:
    """10 writers and 10 readers spread over the members move 100 items, each exactly once."""
    kits = [kit_on(kind, etcd_cluster, [m], etcd_key_prefix) for m in etcd_cluster.members]
    try:
        name = kits[0].name(b"q")
        per_writer, writers = 10, 10
        items = Counter(f"{w}-{i}".encode() for w in range(writers) for i in range(per_writer))

        def write(index: int) -> None:
            queue = kits[index % 3].queue(name)
            for item in range(per_writer):
                queue.enqueue(f"{index}-{item}")

        def read(index: int) -> list[bytes]:
            queue = kits[index % 3].queue(name)
            return [queue.dequeue(WAIT) for _ in range(per_writer)]

        reads = [pool.submit(read, index) for index in range(writers)]
        for future in [pool.submit(write, index) for index in range(writers)]:
            future.result(timeout=WAIT * 2)
        got = Counter(item for future in reads for item in future.result(timeout=WAIT * 2))
        assert got == items
        assert kits[0].keys(name + b"/") == []
    finally:
        for kit in kits:
            kit.close()


@pytest.mark.parametrize("kind", KINDS)
def test_many_threads_rwmutex_counter_is_exact(
    etcd_cluster: EtcdCluster, etcd_key_prefix: bytes, pool: ThreadPoolExecutor, kind: str
) -> None:
    """12 threads, each with a session, increment under the write lock and read under the read."""
    kits = [kit_on(kind, etcd_cluster, [m], etcd_key_prefix) for m in etcd_cluster.members]
    try:
        name, counter = kits[0].name(b"rw"), etcd_key_prefix + b"counter"
        kits[0].raw.put(counter, b"0")
        torn: list[int] = []
        guard = threading.Lock()
        inside_writers = [0]

        def work(index: int) -> None:
            kit = kits[index % 3]
            rwmutex = kit.rwmutex(kit.session(), name)
            for step in range(4):
                if (index + step) % 2:
                    rwmutex.lock(WAIT)
                    with guard:
                        inside_writers[0] += 1
                        if inside_writers[0] > 1:
                            torn.append(index)
                    value = int(kit.raw.get(counter).kvs[0].value)
                    kit.raw.put(counter, str(value + 1))
                    with guard:
                        inside_writers[0] -= 1
                    rwmutex.unlock()
                else:
                    rwmutex.rlock(WAIT)
                    with guard:
                        if inside_writers[0]:
                            torn.append(index)
                    rwmutex.runlock()

        for future in [pool.submit(work, index) for index in range(12)]:
            future.result(timeout=120)
        assert torn == []
        assert kits[0].raw.get(counter).kvs[0].value == b"24"  # 12 threads x 2 writes
        assert kits[0].keys(name + b"/") == []
    finally:
        for kit in kits:
            kit.close()


READER_PROCESS = textwrap.dedent(
    """
    import asyncio, json, sys
    from etcd_layers import AsyncClient, Client
    from etcd_layers.concurrency import AsyncQueue, Queue
    kind, endpoints, options, name, count = json.loads(sys.argv[1])

    async def read_async():
        async with AsyncClient(endpoints, **options) as acli:
            queue = AsyncQueue(acli, name.encode())
            print("ready", flush=True)
            return [(await queue.dequeue(30)).decode() for _ in range(count)]

    if kind == "async":
        got = asyncio.run(read_async())
    else:
        with Client(endpoints, **options) as cli:
            queue = Queue(cli, name.encode())
            print("ready", flush=True)
            got = [queue.dequeue(30).decode() for _ in range(count)]
    print(json.dumps(got), flush=True)
    """
)


def test_processes_share_one_queue(etcd_cluster: EtcdCluster, etcd_key_prefix: bytes) -> None:
    """4 Python processes, sync and asyncio, on the 3 members, dequeue 40 items, once each."""
    name = (etcd_key_prefix + b"q").decode()
    options = {k: str(v) for k, v in etcd_cluster.client_options().items()}
    processes = []
    for index, kind in enumerate(["sync", "async", "sync", "async"]):
        member = etcd_cluster.members[index % 3]
        argument = json.dumps([kind, [member.endpoint], options, name, 10])
        processes.append(
            subprocess.Popen(
                [sys.executable, "-c", READER_PROCESS, argument],
                stdout=subprocess.PIPE,
                text=True,
            )
        )
    try:
        for process in processes:
            assert process.stdout is not None
            assert process.stdout.readline().strip() == "ready"
        kit = kit_on("sync", etcd_cluster, etcd_cluster.members, etcd_key_prefix)
        try:
            queue = kit.queue(kit.name(b"q"))
            for index in range(40):
                queue.enqueue(f"item-{index}")
        finally:
            kit.close()
        got = []
        for process in processes:
            out, _ = process.communicate(timeout=60)
            assert process.returncode == 0
            got.extend(json.loads(out.strip().splitlines()[-1]))
        assert sorted(got) == sorted(f"item-{index}" for index in range(40))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
