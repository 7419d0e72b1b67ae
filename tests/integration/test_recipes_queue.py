"""Queue and PriorityQueue against a real etcd: Go's v3_queue_test, both kinds, and in a namespace.

Readers and writers are real threads; the async recipes run behind recipe_kits' facade.
"""

from __future__ import annotations

import random
import re
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from recipe_kits import RecipeKit

from etcd_layers import Client, errors, leasing, namespace, ordering
from etcd_layers.concurrency import Barrier, PriorityQueue, Queue, RWMutex, Session

WAIT = 20.0  # bound on every blocking step of a test
CLIENTS = 3  # Go's manyQueueClients
ITEMS_PER_CLIENT = 2  # Go's queueItemsPerClient


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=16, thread_name_prefix="test-queue") as executor:
        yield executor


def test_queue_one_reader_one_writer_keeps_fifo_order(
    kit: RecipeKit, pool: ThreadPoolExecutor
) -> None:
    """Go's TestQueueOneReaderOneWriter: a reader waiting on an empty queue gets 0..4 in order."""
    name = kit.name(b"testq")
    reader = kit.queue(name)
    got = pool.submit(lambda: [reader.dequeue(WAIT) for _ in range(5)])
    writer = kit.queue(name)
    for index in range(5):
        writer.enqueue(str(index))
    assert got.result(timeout=WAIT) == [b"0", b"1", b"2", b"3", b"4"]
    assert kit.keys(name + b"/") == []


@pytest.mark.parametrize(
    ("readers", "writers"), [(CLIENTS, 1), (1, CLIENTS), (CLIENTS, CLIENTS), (8, 8)]
)
def test_queue_readers_and_writers_each_item_once(
    kit: RecipeKit, pool: ThreadPoolExecutor, readers: int, writers: int
) -> None:
    """Go's testQueueNReaderMWriter: every item enqueued is dequeued exactly once."""
    name = kit.name(b"q")
    queue_each(kit, pool, [kit.queue(name) for _ in range(readers)], writers, name)


def read_items(queue: Any, count: int) -> list[bytes]:
    """Dequeue `count` items from `queue`."""
    return [queue.dequeue(WAIT) for _ in range(count)]


def write_items(queue: Any, items: list[tuple[Any, ...]]) -> None:
    """Enqueue each item's arguments into `queue`."""
    for arguments in items:
        queue.enqueue(*arguments)


def queue_each(
    kit: RecipeKit, pool: ThreadPoolExecutor, reader_queues: list[Any], writers: int, name: bytes
) -> None:
    """Write ITEMS_PER_CLIENT distinct items from each writer; read them all, once each."""
    total = writers * ITEMS_PER_CLIENT
    share = [
        total // len(reader_queues) + (i < total % len(reader_queues))
        for i in range(len(reader_queues))
    ]
    reads = [
        pool.submit(read_items, queue, count)
        for queue, count in zip(reader_queues, share, strict=True)
    ]
    writes = [
        pool.submit(write_items, kit.queue(name), [(f"{w}-{i}",) for i in range(ITEMS_PER_CLIENT)])
        for w in range(writers)
    ]
    for future in writes:
        future.result(timeout=WAIT)
    got = Counter(item for future in reads for item in future.result(timeout=WAIT))
    assert got == Counter(
        f"{w}-{i}".encode() for w in range(writers) for i in range(ITEMS_PER_CLIENT)
    )
    assert kit.keys(name + b"/") == []


def test_queue_dequeue_times_out_on_an_empty_queue(plain_kit: RecipeKit) -> None:
    """dequeue(timeout) raises DeadlineExceededError (a TimeoutError) and takes nothing."""
    name = plain_kit.name(b"q")
    started = time.monotonic()
    with pytest.raises(errors.DeadlineExceededError) as raised:
        plain_kit.queue(name).dequeue(0.5)
    assert isinstance(raised.value, TimeoutError)
    assert time.monotonic() - started < 5
    plain_kit.queue(name).enqueue(b"later")
    assert plain_kit.queue(name).dequeue(WAIT) == b"later"


def test_queue_keys_are_gos_layout(plain_kit: RecipeKit) -> None:
    """An item is `prefix/<Unix ns>` without a lease; a Go-written item is served too."""
    name = plain_kit.name(b"q")
    before = time.time_ns()
    plain_kit.queue(name).enqueue(b"py")
    kv = plain_kit.raw.get(name + b"/", prefix=True).kvs[0]
    assert re.fullmatch(re.escape(name) + rb"/[0-9]{19}", kv.key)
    assert int(kv.key.rsplit(b"/", 1)[1]) >= before
    assert (kv.value, kv.lease) == (b"py", 0)
    plain_kit.raw.put(name + b"/1", b"go")  # as Go's Enqueue, with an old clock
    assert plain_kit.queue(name).dequeue(WAIT) == b"py"  # served by mod revision, not key
    assert plain_kit.queue(name).dequeue(WAIT) == b"go"


def test_queue_does_not_serve_a_sibling_prefix(plain_kit: RecipeKit) -> None:
    """Items of queue "q2" are not items of queue "q" (Go reads the bare prefix; we add "/")."""
    name = plain_kit.name(b"q")
    plain_kit.queue(name + b"2").enqueue(b"other")
    with pytest.raises(errors.DeadlineExceededError):
        plain_kit.queue(name).dequeue(0.5)


def test_priority_queue_serves_lowest_priority_first(kit: RecipeKit) -> None:
    """Go's TestPrQueueOneReaderOneWriter: random priorities in 0..2 come out in order."""
    name = kit.name(b"testprq")
    queue = kit.priority_queue(name)
    rng = random.Random(17)
    priorities = [rng.randrange(3) for _ in range(8)]
    for index, priority in enumerate(priorities):
        queue.enqueue(f"{priority}-{index}", priority)
    got = [queue.dequeue(WAIT).decode() for _ in priorities]
    expected = sorted(
        (f"{p}-{i}" for i, p in enumerate(priorities)),
        key=lambda s: (int(s.split("-")[0]), int(s.split("-")[1])),
    )
    assert got == expected  # lowest priority first, first in first out within one


def test_priority_queue_many_readers_many_writers(kit: RecipeKit, pool: ThreadPoolExecutor) -> None:
    """Go's TestPrQueueManyReaderManyWriter: random priorities 0..1, every item read once."""
    name = kit.name(b"prq")
    rng = random.Random(7)
    total = CLIENTS * ITEMS_PER_CLIENT
    readers = [kit.priority_queue(name) for _ in range(CLIENTS)]
    reads = [pool.submit(read_items, queue, ITEMS_PER_CLIENT) for queue in readers]
    writes = [
        pool.submit(
            write_items,
            kit.priority_queue(name),
            [(f"{w}-{i}", rng.randrange(2)) for i in range(ITEMS_PER_CLIENT)],
        )
        for w in range(CLIENTS)
    ]
    for future in writes:
        future.result(timeout=WAIT)
    got = sorted(item for future in reads for item in future.result(timeout=WAIT))
    assert len(got) == total
    assert got == sorted(
        f"{w}-{i}".encode() for w in range(CLIENTS) for i in range(ITEMS_PER_CLIENT)
    )


def test_priority_queue_keys_are_gos_layout(plain_kit: RecipeKit) -> None:
    """Items are `prefix/%05d/%016d`, with the base key `__prefix/%05d`; Go's items mix in."""
    name = plain_kit.name(b"prq")
    queue = plain_kit.priority_queue(name)
    queue.enqueue(b"a", 3)
    queue.enqueue(b"b", 3)
    assert plain_kit.keys(name + b"/") == [
        name + b"/00003/0000000000000000",
        name + b"/00003/0000000000000001",
    ]
    assert plain_kit.raw.get(b"__" + name + b"/00003").kvs
    plain_kit.raw.put(name + b"/00001/0000000000000007", b"go")  # as Go's Enqueue at priority 1
    queue.enqueue(b"c", 1)  # numbered after Go's item
    assert plain_kit.keys(name + b"/00001/")[-1] == name + b"/00001/0000000000000008"
    assert [queue.dequeue(WAIT) for _ in range(4)] == [b"go", b"c", b"a", b"b"]


def test_priority_queue_checks_the_priority_before_io(plain_kit: RecipeKit) -> None:
    """A priority outside Go's uint16, or not an int, is refused with ValueError / TypeError."""
    queue = plain_kit.priority_queue(plain_kit.name(b"prq"))
    with pytest.raises(ValueError, match="priority"):
        queue.enqueue(b"x", 65536)
    with pytest.raises(ValueError, match="priority"):
        queue.enqueue(b"x", -1)
    with pytest.raises(TypeError, match="priority"):
        queue.enqueue(b"x", 1.5)
    with pytest.raises(TypeError, match="value"):
        queue.enqueue(5, 1)
    queue.enqueue(b"max", 65535)
    assert queue.dequeue(WAIT) == b"max"


def test_readme_recipes_example_runs(etcd_client: Client, etcd_key_prefix: bytes) -> None:
    """The README's recipes example runs as written, inside a namespace."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("**Recipes: barriers", 1)[1]
    source = section.split("```python\n", 1)[1].split("```", 1)[0]
    cli = namespace.wrap(etcd_client, etcd_key_prefix)
    exec(compile(source, "README.md", "exec"), {"cli": cli})  # our own README
    assert etcd_client.get(etcd_key_prefix + b"jobs/", prefix=True).kvs == []
    assert etcd_client.get(etcd_key_prefix + b"work/00000/", prefix=True).count == 1


def test_recipes_work_through_a_full_layer_stack(
    etcd_client: Client, etcd_key_prefix: bytes
) -> None:
    """Queue, PriorityQueue, Barrier and RWMutex through ordering over leasing over a namespace."""
    stack = ordering.wrap(leasing.wrap(namespace.wrap(etcd_client, etcd_key_prefix), "lease/"))
    try:
        queue = Queue(stack, "q")
        queue.enqueue(b"a")
        queue.enqueue(b"b")
        assert [queue.dequeue(WAIT), queue.dequeue(WAIT)] == [b"a", b"b"]
        priority = PriorityQueue(stack, "pq")
        priority.enqueue(b"late", 9)
        priority.enqueue(b"soon", 1)
        assert priority.dequeue(WAIT) == b"soon"
        barrier = Barrier(stack, "gate")
        barrier.hold()
        with pytest.raises(errors.DeadlineExceededError):
            barrier.wait(0.3)
        barrier.release()
        barrier.wait(WAIT)
        with Session(stack, ttl=5) as session:
            reader, writer = RWMutex(session, "rw"), RWMutex(session, "rw")
            reader.rlock(WAIT)
            with pytest.raises(errors.DeadlineExceededError):
                writer.lock(0.3)
            reader.runlock()
            writer.lock(WAIT)
            writer.unlock()
        assert etcd_client.get(etcd_key_prefix + b"pq/", prefix=True).count == 1
        assert etcd_client.get(etcd_key_prefix + b"rw/", prefix=True).count == 0
    finally:
        stack.close()
