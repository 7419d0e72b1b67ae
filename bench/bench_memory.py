"""Benchmark: MemoryEtcd against a real etcd, against building the answer by hand, and its memory.

Run: .venv/bin/python bench/bench_memory.py [--rounds N] [--calls N] [--keys N]

Measures, in one run:
1. a one-key `get` through `MemoryEtcd().client()` against the same get through a `Client` of a
   real etcd on loopback (started here with etcd_layers.testing), interleaved call by call and
   in turns of 50 calls (target: at least 20x faster);
2. a `get(prefix=True)` of 100k keys through the in-memory client, its KeyValues built, against
   building the same GetResponse from a list of rows, interleaved run by run (target: within 2x);
3. the store's memory (tracemalloc) with N live keys and 4 older versions of each, after
   compacting that history away, and after deleting every key and compacting: it follows the
   live keys plus the uncompacted history.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
import tracemalloc
from collections.abc import Callable, Mapping

from etcd_layers import Client, Op
from etcd_layers.base.responses import GetResponse, KeyValue
from etcd_layers.testing import EtcdServer, MemoryEtcd

TURN = 50  # calls per turn in the second interleaving of the get comparison


def _interleaved(
    contenders: Mapping[str, Callable[[], object]], rounds: int, calls: int, block: int = 1
) -> dict[str, float]:
    """Median time of each contender, taking turns `block` calls at a time (rotating who is first).

    With block=1 the contenders alternate call by call; a larger block lets each run a short
    burst of its own, as it would in a test suite (right after a gRPC call, the next few
    microseconds of Python run on cold caches: see the README's Performance notes).
    """
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for call in contenders.values():  # warm up every path
        for _ in range(max(3, calls // 10)):
            call()
    items = list(contenders.items())
    for index in range(max(1, rounds * calls // block)):
        shift = index % len(items)
        for name, call in items[shift:] + items[:shift]:
            for _ in range(block):
                started = time.perf_counter()
                call()
                samples[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in samples.items()}


def _fill(client: Client, prefix: bytes, count: int, value: bytes) -> None:
    batch = 128  # etcd's txn op limit
    for start in range(0, count, batch):
        ops = [
            Op.put(prefix + b"%07d" % index, value)
            for index in range(start, min(count, start + batch))
        ]
        client.txn([], ops, [])


def _get_vs_real(rounds: int, calls: int) -> dict[str, float]:
    with EtcdServer() as server, Client(server.endpoints) as real, MemoryEtcd() as etcd:
        memory = etcd.client()
        for client in (real, memory):
            client.put("bench/one", b"x" * 100)
        contenders = {
            "get real etcd": lambda: real.get("bench/one"),
            "get MemoryEtcd": lambda: memory.get("bench/one"),
        }
        by_call = _interleaved(contenders, rounds, calls)
        by_turn = _interleaved(contenders, rounds, calls, block=TURN)
        return {
            **{f"{name}, call by call": value for name, value in by_call.items()},
            **{f"{name}, {TURN}-call turns": value for name, value in by_turn.items()},
        }


def _range_vs_list(rounds: int, keys: int) -> dict[str, float]:
    with MemoryEtcd() as etcd:
        client = etcd.client()
        _fill(client, b"range/", keys, b"v" * 32)
        rows = [
            (kv.key, kv.value, kv.create_revision, kv.mod_revision, kv.version, kv.lease)
            for kv in client.get("range/", prefix=True).kvs
        ]
        header = client.get("range/", prefix=True).header

        def memory() -> int:
            response = client.get("range/", prefix=True)
            return sum(1 for _ in response.kvs)  # build every KeyValue

        def by_hand() -> int:
            response = GetResponse(header, [KeyValue(*row) for row in rows], len(rows), False)
            return sum(1 for _ in response.kvs)

        def memory_lazy() -> int:
            return client.get("range/", prefix=True).count  # KeyValues not built

        return _interleaved(
            {
                "100k range MemoryEtcd": memory,
                "100k range from a list": by_hand,
                "100k range MemoryEtcd, unread": memory_lazy,
            },
            rounds,
            1,
        )


def _traced(measure: Callable[[], object]) -> int:
    gc.collect()
    measure()
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


def _memory(keys: int) -> dict[str, float]:
    tracemalloc.start()
    empty = _traced(lambda: None)
    etcd = MemoryEtcd()
    client = etcd.client()
    start = _traced(lambda: None)
    for _ in range(5):  # 1 live version + 4 in the history
        _fill(client, b"mem/", keys, b"v" * 32)
    with_history = _traced(lambda: None)
    client.compact(etcd.revision)
    live_only = _traced(lambda: None)
    client.delete("mem/", prefix=True)
    client.compact(etcd.revision)
    emptied = _traced(lambda: None)
    etcd.close()
    tracemalloc.stop()
    return {
        "store + client, empty": start - empty,
        "live keys + 4x history": with_history - start,
        "live keys (history compacted)": live_only - start,
        "no keys (deleted, compacted)": emptied - start,
    }


def main() -> None:
    """Run the three measurements and print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--range-rounds", type=int, default=7)
    args = parser.parse_args()

    gets = _get_vs_real(args.rounds, args.calls)
    ranges = _range_vs_list(args.range_rounds, args.keys)
    memory = _memory(args.keys // 5)

    print(f"{'case':42} {'median':>12}")
    for name, value in {**gets, **ranges}.items():
        print(f"{name:42} {value * 1e6:10.1f}us")
    print()
    for turns in ("call by call", f"{TURN}-call turns"):
        speedup = gets[f"get real etcd, {turns}"] / gets[f"get MemoryEtcd, {turns}"]
        label = f"get: real etcd / MemoryEtcd, {turns}"
        print(f"{label:48} {speedup:6.1f}x   (target >= 20x)")
    ratio = ranges["100k range MemoryEtcd"] / ranges["100k range from a list"]
    print(f"{'100k range: MemoryEtcd / from a list':48} {ratio:6.2f}x   (target <= 2x)")
    print(f"\nmemory ({args.keys // 5} keys, 32-byte values), tracemalloc:")
    for name, value in memory.items():
        print(f"  {name:32} {value / 1e6:8.2f} MB")
    per_key = memory["live keys (history compacted)"] / (args.keys // 5)
    per_version = (memory["live keys + 4x history"] - memory["live keys (history compacted)"]) / (
        4 * (args.keys // 5)
    )
    print(f"  {'per live key':32} {per_key:8.0f} B")
    print(f"  {'per uncompacted old version':32} {per_version:8.0f} B")


if __name__ == "__main__":
    main()
