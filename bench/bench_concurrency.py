"""Benchmark: the concurrency types against the requests they need, on a real etcd.

Run: .venv/bin/python bench/bench_concurrency.py [--rounds N] [--calls N] [--transfers N]

Starts its own etcd (etcd_layers.testing) and talks to the member directly.

(a) Uncontended `Mutex.lock()` + `unlock()` against the two requests they need, sent by hand
    through `cli.txn`/`cli.delete`: the enqueue txn (put the key unless it exists, read the
    oldest contender) and the delete. Interleaved one by one, the order flipping every round;
    the median of each. Target: at most 1.1x.
(b) stm() with 8 threads on 8 keys: each thread makes `--transfers` transfers between two
    keys (chosen before the call, so a retry reads the same keys), under each isolation
    level, with and without prefetch. Commits/s, retries per commit, and the requests per
    commit, counted by a KV proxy, against what Go's algorithm (stm.go) sends for the same
    attempts: 2 reads + 1 commit for a first attempt (1 + 1 with prefetch); a retry of the
    serializable levels only its commit (the failed commit's failure branch re-read the keys);
    a retry of REPEATABLE_READS its reads and commit again.
"""

from __future__ import annotations

import argparse
import random
import statistics
import threading
import time
from collections.abc import Callable
from typing import cast

from etcd_layers import Client, Compare, Op, SortOrder, SortTarget
from etcd_layers.base import KV, Response
from etcd_layers.base.ops import Op as OpType
from etcd_layers.concurrency import STM, Isolation, Mutex, Session, stm
from etcd_layers.testing import EtcdServer

PREFIX = b"/bench/concurrency/"
THREADS = 8


def _interleaved(
    raw: Callable[[], object], ours: Callable[[], object], rounds: int, calls: int
) -> tuple[float, float]:
    """Return (raw median, ours median) in seconds, the two alternating one by one."""
    clock = time.perf_counter
    raw_samples: list[float] = []
    our_samples: list[float] = []
    for _ in range(max(10, calls // 10)):
        raw()
        ours()
    for round_ in range(rounds):
        first, second = (raw, ours) if round_ % 2 == 0 else (ours, raw)
        first_samples, second_samples = (
            (raw_samples, our_samples) if round_ % 2 == 0 else (our_samples, raw_samples)
        )
        for _ in range(calls):
            started = clock()
            first()
            middle = clock()
            second()
            first_samples.append(middle - started)
            second_samples.append(clock() - middle)
    return statistics.median(raw_samples), statistics.median(our_samples)


def lock_unlock(cli: Client, rounds: int, calls: int) -> tuple[float, float]:
    """(a): the medians of the two hand-built requests and of Mutex.lock + unlock."""
    with Session(cli, ttl=30) as ours_session, Session(cli, ttl=30) as raw_session:
        mutex = Mutex(ours_session, PREFIX + b"lock")
        contenders = PREFIX + b"raw-lock/"
        key = contenders + format(raw_session.lease_id, "x").encode()
        holder = Op.get(
            contenders,
            prefix=True,
            sort_target=SortTarget.CREATE,
            sort_order=SortOrder.ASCEND,
            limit=1,
        )

        def raw() -> None:
            cli.txn(
                compare=[Compare.create_revision(key) == 0],
                success=[Op.put(key, b"", lease=raw_session.lease_id), holder],
                failure=[Op.get(key), holder],
            )
            cli.delete(key)

        def ours() -> None:
            mutex.lock()
            mutex.unlock()

        return _interleaved(raw, ours, rounds, calls)


class CountingKV:
    """A KV proxy that counts the requests sent through it (thread-safe)."""

    def __init__(self, kv: Client) -> None:
        self._kv = kv
        self._lock = threading.Lock()
        self.requests = 0

    def do(self, op: OpType, *, timeout: float | None = None) -> Response:
        with self._lock:
            self.requests += 1
        return self._kv.do(op, timeout=timeout)


def go_requests(isolation: Isolation, prefetch: bool, commits: int, attempts: int) -> int:
    """The requests Go's stm.go sends for `commits` transfers that took `attempts` attempts."""
    first = 2 if prefetch else 3  # the reads (one request with prefetch) and the commit
    retries = attempts - commits
    if isolation is Isolation.REPEATABLE_READS:
        return first * attempts
    return first * commits + retries  # serializable retries: only the commit


def transfers(
    cli: Client, isolation: Isolation, prefetch: bool, per_thread: int, seed: int
) -> tuple[int, int, int, float]:
    """(b) for one level: (commits, attempts, requests, seconds)."""
    keys = [PREFIX + f"account-{i}".encode() for i in range(THREADS)]
    cli.txn(success=[Op.put(key, "1000") for key in keys])
    counting = CountingKV(cli)
    kv = cast(KV, counting)
    attempts = [0] * THREADS
    start = threading.Barrier(THREADS + 1)

    def work(index: int) -> None:
        chooser = random.Random(seed + index)
        start.wait()
        for _ in range(per_thread):
            source, target = chooser.sample(keys, 2)
            amount = chooser.randrange(1, 10)

            def apply(
                tx: STM, source: bytes = source, target: bytes = target, amount: int = amount
            ) -> None:
                attempts[index] += 1
                src, dst = int(tx.get(source)), int(tx.get(target))
                tx.put(source, str(src - amount))
                tx.put(target, str(dst + amount))

            stm(kv, apply, isolation=isolation, prefetch=[source, target] if prefetch else ())

    threads = [threading.Thread(target=work, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    start.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    total = sum(int(cli.get(key).kvs[0].value) for key in keys)
    if isolation is not Isolation.READ_COMMITTED and total != 1000 * THREADS:
        raise AssertionError(f"{isolation.name}: the total moved to {total}")
    return THREADS * per_thread, sum(attempts), counting.requests, elapsed


def main() -> None:
    """Run the benchmark and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--transfers", type=int, default=40, help="per thread, per level")
    args = parser.parse_args()
    with EtcdServer() as server, Client([server.member.direct_endpoint]) as cli:
        raw, ours = lock_unlock(cli, args.rounds, args.calls)
        print("(a) uncontended lock + unlock (median; target <= 1.1x the two requests by hand):")
        print(f"    two requests by hand {raw * 1e6:9.1f} us")
        print(f"    Mutex lock + unlock  {ours * 1e6:9.1f} us   ratio {ours / raw:.3f}")
        print(f"\n(b) stm(), {THREADS} threads on {THREADS} keys, {args.transfers} transfers each:")
        print(
            f"    {'isolation':22} {'prefetch':8} {'commits/s':>9} {'retries/commit':>14}"
            f" {'requests/commit':>15} {'Go requests/commit':>18}"
        )
        for isolation in Isolation:
            for prefetch in (False, True):
                commits, attempts, requests, elapsed = transfers(
                    cli, isolation, prefetch, args.transfers, seed=7
                )
                go = go_requests(isolation, prefetch, commits, attempts)
                print(
                    f"    {isolation.name:22} {prefetch!s:8} {commits / elapsed:9.0f}"
                    f" {(attempts - commits) / commits:14.3f} {requests / commits:15.3f}"
                    f" {go / commits:18.3f}"
                )


if __name__ == "__main__":
    main()
