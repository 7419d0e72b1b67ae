"""Benchmark: a get answered from the leasing cache against the server and a locked dict.

Run: .venv/bin/python bench/bench_leasing.py [--rounds N] [--block N] [--server-calls N]

Starts its own etcd (etcd_layers.testing) and talks to the member directly (not through the
fault proxy). Measures, in one run and interleaved round by round (which contender goes first
flips every round), the median time of:

* cached:   `leasing.wrap(client, prefix).get(key)` of an owned key (answered from memory);
* uncached: a linearizable `Client.get(key)` of the same key (one round trip);
* floor:    a dict lookup under a threading.Lock, the least a thread-safe cache can do.

Calls that take a microsecond are timed in blocks of `--block` calls (the block's mean is one
sample); server calls one by one. Targets: cached at least 100x faster than uncached, and
within 20x of the floor. Also reports a cached get with an option (keys_only) and a txn
answered from memory, for scale.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from collections.abc import Callable

from etcd_layers import Client, Compare, Op, leasing
from etcd_layers.testing import EtcdServer

KEY = b"/bench/leasing/key"
PREFIX = b"/bench/leasing-owners/"
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
        kv = leasing.wrap(client, PREFIX, ttl=60)
        assert isinstance(kv, leasing.LeasingKV)
        kv.get(KEY)  # own it
        assert kv.stats.acquisitions == 1

        lock = threading.Lock()
        table = {KEY: kv.get(KEY)}

        def floor() -> object:
            with lock:
                return table[KEY]

        txn = Op.txn([Compare.version(KEY) > 0], [Op.get(KEY)])
        fast: dict[str, Callable[[], object]] = {
            "cached get": lambda: kv.get(KEY),
            "locked dict lookup": floor,
            "cached get, keys_only": lambda: kv.get(KEY, keys_only=True),
            "cached txn": lambda: kv.do(txn),
        }
        slow: dict[str, Callable[[], object]] = {"uncached Client.get": lambda: client.get(KEY)}
        samples: dict[str, list[float]] = {name: [] for name in (*fast, *slow)}
        for call in fast.values():  # warm up
            _block_samples(call, args.block // 10 or 1, 1)
        _single_samples(slow["uncached Client.get"], 20)
        hits_before = kv.stats.hits
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
        served = kv.stats.hits - hits_before
        medians = {name: statistics.median(values) for name, values in samples.items()}
        kv.close()

    print(f"{'case':<26}{'median':>14}")
    for name, value in medians.items():
        print(f"{name:<26}{value * 1e6:>11.3f} us")
    cached = medians["cached get"]
    speedup = medians["uncached Client.get"] / cached
    over_floor = cached / medians["locked dict lookup"]
    print()
    print(f"cached vs uncached: {speedup:,.0f}x faster (target >= 100x)")
    print(f"cached vs locked dict lookup: {over_floor:.1f}x slower (target <= 20x)")
    print(f"answered from memory during the run: {served:,} calls")
    verdict = "met" if speedup >= 100 and over_floor <= 20 else "MISSED"
    print(f"targets {verdict}")


if __name__ == "__main__":
    main()
