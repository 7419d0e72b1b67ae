"""Benchmark: the recipes' cost against the requests they need, and queue throughput.

Run: .venv/bin/python bench/bench_recipes.py [--rounds N] [--calls N] [--items N]

Starts its own etcd (etcd_layers.testing) and talks to the member directly. The first table
times, interleaved one by one (which goes first flips every round), each recipe operation
against the bare requests Go's algorithm sends for it, on the same client:

- Queue enqueue + dequeue: a put-if-absent txn; a first-by-mod-revision get; a claim txn.
- PriorityQueue enqueue + dequeue: a last-key get, the sequence txn; a first-key get, a claim.
- RWMutex rlock + runlock (uncontended): a put-if-absent txn, the blocker read, a delete.

The ratio is the recipe's overhead over its requests (flow, driver, checks). The second table
is throughput: items per second through one Queue by 4 producer and 4 consumer threads (sync),
our batched read against Go's one-item read, alternating, and by 4 + 4 tasks (asyncio).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from etcd_layers import AsyncClient, Client, Compare, Op, SortOrder, SortTarget
from etcd_layers.concurrency import (
    AsyncQueue,
    PriorityQueue,
    Queue,
    RWMutex,
    Session,
)
from etcd_layers.concurrency._recipe_driver import run_recipe
from etcd_layers.concurrency._recipes import DEQUEUE_BATCH, dequeue, oldest_item
from etcd_layers.testing import EtcdServer

PREFIX = b"/bench/recipes/"
WORKERS = 4


def interleaved(
    pairs: dict[str, tuple[Callable[[], object], Callable[[], object]]], rounds: int, calls: int
) -> dict[str, tuple[float, float]]:
    """Return {case: (bare median, recipe median)} in seconds, the two alternating call by call."""
    clock = time.perf_counter
    samples: dict[str, tuple[list[float], list[float]]] = {case: ([], []) for case in pairs}
    for bare, recipe in pairs.values():  # warm up every path
        for _ in range(max(5, calls // 10)):
            bare()
            recipe()
    for round_ in range(rounds):
        for case, (bare, recipe) in pairs.items():
            bare_samples, recipe_samples = samples[case]
            for _ in range(calls):
                order = ((bare, bare_samples), (recipe, recipe_samples))
                for call, into in order if round_ % 2 == 0 else order[::-1]:
                    started = clock()
                    call()
                    into.append(clock() - started)
    return {case: (statistics.median(b), statistics.median(r)) for case, (b, r) in samples.items()}


def bare_queue(cli: Client, prefix: bytes) -> Callable[[], object]:
    """Go's Queue requests for one enqueue and one dequeue, sent by hand."""
    counter = iter(range(10**12))

    def run() -> object:
        key = prefix + b"/" + str(time.time_ns() + next(counter)).encode()
        cli.txn([Compare.version(key) == 0], [Op.put(key, b"v")])
        first = cli.do(
            Op.get(
                prefix + b"/",
                prefix=True,
                sort_target=SortTarget.MOD,
                sort_order=SortOrder.ASCEND,
                limit=1,
            )
        ).kvs[0]
        return cli.txn(
            [Compare.mod_revision(first.key) == first.mod_revision], [Op.delete(first.key)]
        )

    return run


def bare_priority_queue(cli: Client, prefix: bytes) -> Callable[[], object]:
    """Go's PriorityQueue requests for one enqueue and one dequeue, sent by hand."""
    level = prefix + b"/00001"

    def run() -> object:
        last = cli.do(
            Op.get(
                level + b"/",
                prefix=True,
                sort_target=SortTarget.KEY,
                sort_order=SortOrder.DESCEND,
                limit=1,
            )
        )
        number = int(last.kvs[0].key.rsplit(b"/", 1)[1]) + 1 if last.kvs else 0
        key = level + b"/" + b"%016d" % number
        base = b"__" + level
        cli.txn(
            [Compare.mod_revision(base) < last.header.revision + 1],
            [Op.put(base, b""), Op.put(key, b"v")],
        )
        first = cli.do(Op.get(prefix + b"/", prefix=True, limit=1)).kvs[0]
        return cli.txn(
            [Compare.mod_revision(first.key) == first.mod_revision], [Op.delete(first.key)]
        )

    return run


def bare_rwmutex(cli: Client, prefix: bytes, lease_id: int) -> Callable[[], object]:
    """Go's RWMutex requests for one uncontended rlock and runlock, sent by hand."""

    def run() -> object:
        key = prefix + b"/read/" + str(time.time_ns()).encode()
        created = cli.txn([Compare.version(key) == 0], [Op.put(key, b"", lease=lease_id)])
        cli.txn(
            [],
            [
                Op.get(
                    prefix + b"/write/",
                    prefix=True,
                    sort_target=SortTarget.MOD,
                    sort_order=SortOrder.DESCEND,
                    limit=1,
                    max_mod_revision=created.header.revision - 1,
                ),
                Op.get(key),
            ],
        )
        return cli.delete(key)

    return run


class GoReadQueue:
    """A Queue whose dequeue reads one item at a time, as Go's does (for comparison only)."""

    def __init__(self, client: Client, prefix: bytes) -> None:
        self.client, self.queue = client, Queue(client, prefix)

    def enqueue(self, value: str) -> None:
        self.queue.enqueue(value)

    def dequeue(self, timeout: float | None = None) -> bytes:
        go_read = replace(oldest_item(self.queue.prefix), limit=1)
        return run_recipe(dequeue(go_read), self.client, timeout, "dequeue")


def sync_throughput(queue: Queue | GoReadQueue, items: int) -> float:
    """Items per second through `queue`, WORKERS producer and consumer threads."""
    share = items // WORKERS
    start = threading.Barrier(2 * WORKERS + 1)

    def produce() -> None:
        start.wait()
        for index in range(share):
            queue.enqueue(str(index))

    def consume() -> None:
        start.wait()
        for _ in range(share):
            queue.dequeue(30)

    with ThreadPoolExecutor(max_workers=2 * WORKERS) as pool:
        futures = [pool.submit(produce) for _ in range(WORKERS)]
        futures += [pool.submit(consume) for _ in range(WORKERS)]
        start.wait()
        began = time.perf_counter()
        for future in futures:
            future.result()
    return share * WORKERS / (time.perf_counter() - began)


async def async_throughput(endpoints: list[str], prefix: bytes, items: int) -> float:
    """Items per second through one AsyncQueue, WORKERS producer and consumer tasks."""
    async with AsyncClient(endpoints) as acli:
        queue = AsyncQueue(acli, prefix)
        share = items // WORKERS

        async def produce() -> None:
            for index in range(share):
                await queue.enqueue(str(index))

        async def consume() -> None:
            for _ in range(share):
                await queue.dequeue(30)

        began = time.perf_counter()
        await asyncio.gather(
            *(produce() for _ in range(WORKERS)), *(consume() for _ in range(WORKERS))
        )
        return share * WORKERS / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--items", type=int, default=800)
    args = parser.parse_args()
    with EtcdServer() as server:
        endpoints = [server.member.direct_endpoint]
        with Client(endpoints) as cli, Session(cli, ttl=30) as session:
            queue, priority = Queue(cli, PREFIX + b"q"), PriorityQueue(cli, PREFIX + b"pq")
            rwmutex = RWMutex(session, PREFIX + b"rw")

            def queue_pair() -> object:
                queue.enqueue(b"v")
                return queue.dequeue(5)

            def priority_pair() -> object:
                priority.enqueue(b"v", 1)
                return priority.dequeue(5)

            def rw_pair() -> object:
                rwmutex.rlock(5)
                rwmutex.runlock()
                return None

            medians = interleaved(
                {
                    "Queue enqueue+dequeue": (bare_queue(cli, PREFIX + b"bq"), queue_pair),
                    "PriorityQueue enqueue+dequeue": (
                        bare_priority_queue(cli, PREFIX + b"bpq"),
                        priority_pair,
                    ),
                    "RWMutex rlock+runlock": (
                        bare_rwmutex(cli, PREFIX + b"brw", session.lease_id),
                        rw_pair,
                    ),
                },
                args.rounds,
                args.calls,
            )
            print(f"{'operation':32} {'bare ms':>8} {'recipe ms':>10} {'ratio':>6}")
            for case, (bare, recipe) in medians.items():
                print(f"{case:32} {bare * 1e3:8.3f} {recipe * 1e3:10.3f} {recipe / bare:6.2f}")
            rates: dict[str, list[float]] = {"batch": [], "go": []}
            for round_ in range(args.rounds):  # Go's one-item read and ours, alternating
                order = ["batch", "go"] if round_ % 2 == 0 else ["go", "batch"]
                for kind in order:
                    name = PREFIX + f"tq{round_}{kind}".encode()
                    tested = Queue(cli, name) if kind == "batch" else GoReadQueue(cli, name)
                    rates[kind].append(sync_throughput(tested, args.items))
        async_rate = asyncio.run(async_throughput(endpoints, PREFIX + b"atq", args.items))
        batch, go = statistics.median(rates["batch"]), statistics.median(rates["go"])
        print(f"Queue throughput, {WORKERS}+{WORKERS} threads, sync (median of {args.rounds}):")
        print(f"  reading {DEQUEUE_BATCH} items at once:   {batch:8.0f} items/s")
        print(f"  reading 1 item (Go's read): {go:8.0f} items/s  ratio {batch / go:.2f}")
        print(f"Queue throughput, {WORKERS}+{WORKERS} tasks (asyncio): {async_rate:8.0f} items/s")


if __name__ == "__main__":
    main()
