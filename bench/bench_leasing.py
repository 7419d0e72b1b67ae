"""Benchmark: a get answered from the leasing cache against a locked dict and the server.

Run: .venv/bin/python bench/bench_leasing.py [--rounds N] [--block N] [--server-calls N]

Starts its own etcd (etcd_layers.testing) and talks to the member directly (not through the
fault proxy). Measures, in one run and interleaved round by round (which contender goes first
flips every round), the median time of:

* cached get:  `leasing.wrap(client, prefix).get(key)` of an owned key (answered from memory);
* floor:       a dict lookup under a threading.Lock that returns a shared immutable response
               (the cached GetResponse itself): the least a thread-safe cache can do;
* full stack:  `ordering.wrap(leasing.wrap(namespace.wrap(client, ns), prefix)).get(key)` on a
               hit (the namespace layer sits below leasing and is not called on a hit);
* the other hit paths: keys_only, serializable, `do(Op.get(key))`, and a txn answered from
  memory;
* uncached:    a linearizable `Client.get(key)` of the same key (one round trip).

Calls that take a microsecond are timed in blocks of `--block` calls (the block's mean is one
sample); server calls one by one. Targets (issue 19): a cached get at most 2x the floor, the
full stack at most 3x the floor, and a cached get at least 100x faster than the server.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from collections.abc import Callable

from etcd_layers import Client, Compare, Op, leasing, namespace, ordering
from etcd_layers.testing import EtcdServer

KEY = b"/bench/leasing/key"
PREFIX = b"/bench/leasing-owners/"
NAMESPACE = b"/bench/tenant/"
VALUE = b"x" * 100


def _block_samples(call: Callable[[], object], block: int, blocks: int) -> list[float]:
    samples = []
    clock = time.perf_counter
    for _ in range(blocks):
        started = clock()
        for _ in range(block):
            call()
        samples.append((clock() - started) / block)
    return samples


def _single_samples(call: Callable[[], object], count: int) -> list[float]:
    samples = []
    clock = time.perf_counter
    for _ in range(count):
        started = clock()
        call()
        samples.append(clock() - started)
    return samples


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds")
    parser.add_argument("--block", type=int, default=20_000, help="fast calls per sample")
    parser.add_argument("--blocks", type=int, default=5, help="fast samples per round")
    parser.add_argument("--server-calls", type=int, default=200, help="server calls per round")
    args = parser.parse_args()

    with EtcdServer() as server:
        client = Client(endpoints=[server.member.direct_endpoint])
        client.put(KEY, VALUE)
        client.put(NAMESPACE + KEY, VALUE)
        kv = leasing.wrap(client, PREFIX, ttl=60)
        inner = leasing.wrap(namespace.wrap(client, NAMESPACE), PREFIX, ttl=60)
        stack = ordering.wrap(inner)
        for layer in (kv, stack):
            layer.get(KEY)  # own it
        assert kv.stats.acquisitions == inner.stats.acquisitions == 1

        lock = threading.Lock()
        shared = kv.get(KEY)  # the shared, immutable answer a cache hands out
        table = {KEY: shared}

        def floor() -> object:
            with lock:
                return table[KEY]

        get_op = Op.get(KEY)
        txn = Op.txn([Compare.version(KEY) > 0], [Op.get(KEY)])
        fast: dict[str, Callable[[], object]] = {
            "cached get": lambda: kv.get(KEY),
            "locked dict lookup": floor,
            "full stack get": lambda: stack.get(KEY),
            "cached get, keys_only": lambda: kv.get(KEY, keys_only=True),
            "cached get, serializable": lambda: kv.get(KEY, serializable=True),
            "cached do(Op.get)": lambda: kv.do(get_op),
            "cached txn": lambda: kv.do(txn),
        }
        slow: dict[str, Callable[[], object]] = {"uncached Client.get": lambda: client.get(KEY)}
        samples: dict[str, list[float]] = {name: [] for name in (*fast, *slow)}
        for call in fast.values():  # warm up
            _block_samples(call, args.block // 10 or 1, 1)
        _single_samples(slow["uncached Client.get"], 20)
        hits_before = kv.stats.hits + inner.stats.hits
        for round_ in range(args.rounds):
            order: list[tuple[str, Callable[[], object], bool]] = [
                *((name, call, True) for name, call in fast.items()),
                *((name, call, False) for name, call in slow.items()),
            ]
            if round_ % 2:
                order.reverse()
            for name, call, is_fast in order:
                if is_fast:
                    samples[name] += _block_samples(call, args.block, args.blocks)
                else:
                    samples[name] += _single_samples(call, args.server_calls)
        served = kv.stats.hits + inner.stats.hits - hits_before
        misses = kv.stats.misses + inner.stats.misses
        medians = {name: statistics.median(values) for name, values in samples.items()}
        stack.close()
        kv.close()
        client.close()

    _report(medians, served, misses)


def _report(medians: dict[str, float], served: int, misses: int) -> None:
    dict_floor = medians["locked dict lookup"]
    print(f"{'case':<28}{'median':>12}{'x floor':>10}")
    for name, value in medians.items():
        print(f"{name:<28}{value * 1e6:>9.3f} us{value / dict_floor:>9.2f}x")
    cached = medians["cached get"]
    speedup = medians["uncached Client.get"] / cached
    over_floor = cached / dict_floor
    stack_over_floor = medians["full stack get"] / dict_floor
    print()
    print(f"cached get vs uncached: {speedup:,.0f}x faster (target >= 100x)")
    print(f"cached get vs locked dict lookup: {over_floor:.2f}x (target <= 2x)")
    print(f"full stack get vs locked dict lookup: {stack_over_floor:.2f}x (target <= 3x)")
    print(f"answered from memory during the run: {served:,} calls ({misses} misses in all)")
    met = speedup >= 100 and over_floor <= 2 and stack_over_floor <= 3
    print(f"targets {'met' if met else 'MISSED'}")


if __name__ == "__main__":
    main()
