"""Benchmark Mirror against reading the same data by hand: loading, following, looking up.

Run from the repository root::

    .venv/bin/python bench/bench_mirror.py [--keys 100000] [--events 20000] [--rounds 5]

It starts its own one-member etcd (etcd_layers.testing) and talks to the member's port
directly. Three measurements, the readers interleaved in every round (the order rotates):

* load: `--keys` keys (64-byte values) under one prefix. The floor reads them with
  `mirror.get_pages` into a dict (key -> value), as a hand-written cache would; the Mirror
  is constructed on the prefix (its paginated load, plus the watch it starts) and closed.
  Target: the Mirror takes at most 1.2x the floor's wall time.
* follow: a child process writes `--events` puts in txns of 128 (so each watch response
  carries 128 events and per-event costs dominate) while this process follows them. The
  floor is a raw `Client.watch` read by a thread that looks at each event's key and value;
  the Mirror applies them into its copy (its own thread, under its lock, skipping none).
  Reported: CPU per event of this process (time.process_time, first event to last; the
  writer's CPU is in the child). Target: the Mirror adds at most 2 us per event.
  The pure core's share (`Store.apply` alone, batches of 128) is timed separately.
* get: `Mirror.get(key)` against `dict.get(key)` on the same 100k-key dict. Target: <= 2x.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import threading
import time
import timeit
from collections.abc import Callable
from typing import Final

from etcd_layers import Client, Op, mirror
from etcd_layers.base import Event, EventType, KeyValue
from etcd_layers.mirror._store import Store
from etcd_layers.testing import EtcdServer

VALUE: Final = b"v" * 64
TXN_OPS: Final = 128  # etcd's default --max-txn-ops
CHILD_TIMEOUT: Final = 300.0


def fill(cli: Client, prefix: bytes, count: int) -> None:
    """Put `count` keys under `prefix`, TXN_OPS per txn."""
    for start in range(0, count, TXN_OPS):
        ops = [
            Op.put(prefix + b"%08d" % i, VALUE) for i in range(start, min(count, start + TXN_OPS))
        ]
        cli.txn(success=ops, timeout=30)


# --- load ------------------------------------------------------------------------------------


def load_floor(cli: Client, prefix: bytes) -> float:
    """Seconds to read the prefix with get_pages into a dict."""
    started = time.perf_counter()
    copy: dict[bytes, bytes] = {}
    for page in mirror.get_pages(cli, prefix, timeout=60):
        for kv in page.kvs:
            copy[kv.key] = kv.value
    elapsed = time.perf_counter() - started
    assert copy
    return elapsed


def load_mirror(cli: Client, prefix: bytes) -> float:
    """Seconds to construct a Mirror of the prefix (its load and its watch's start)."""
    started = time.perf_counter()
    m = mirror.Mirror(cli, prefix, timeout=60)
    elapsed = time.perf_counter() - started
    assert len(m)
    m.close()
    return elapsed


# --- follow ----------------------------------------------------------------------------------


def start_writer(endpoint: str, prefix: bytes, count: int) -> subprocess.Popen[bytes]:
    """A child process that fills `prefix` with `count` keys."""
    command = [sys.executable, __file__, "--write", endpoint, prefix.decode(), str(count)]
    return subprocess.Popen(command)


def follow_floor(cli: Client, endpoint: str, prefix: bytes, count: int) -> float:
    """CPU seconds per event of a raw watch read by a thread that looks at every event."""
    marks: list[float] = []
    with cli.watch(prefix, prefix=True) as watch:

        def read() -> None:
            seen = 0
            for response in watch:
                if not seen:
                    marks.append(time.process_time())
                for event in response.events:
                    _ = event.kv.key, event.kv.value
                seen += len(response.events)
                if seen >= count:
                    marks.append(time.process_time())
                    return

        thread = threading.Thread(target=read, name="bench.raw-watch")
        thread.start()
        writer = start_writer(endpoint, prefix, count)
        thread.join(CHILD_TIMEOUT)
        writer.wait(CHILD_TIMEOUT)
    return (marks[1] - marks[0]) / count


def follow_mirror(cli: Client, endpoint: str, prefix: bytes, count: int) -> float:
    """CPU seconds per event of a Mirror following the same writes."""
    marks: list[float] = []
    with mirror.Mirror(cli, prefix) as m:

        def first(events: list[Event]) -> None:
            if not marks:
                marks.append(time.process_time())
                unsubscribe()  # only the first batch: the rest is the Mirror's own work

        unsubscribe = m.subscribe(first)
        writer = start_writer(endpoint, prefix, count)
        writer.wait(CHILD_TIMEOUT)
        last = cli.get(b"any").header.revision
        deadline = time.monotonic() + CHILD_TIMEOUT
        while len(m) < count and time.monotonic() < deadline:  # bounded by the deadline
            m.wait(last, timeout=CHILD_TIMEOUT)
        marks.append(time.process_time())
        assert len(m) == count
    return (marks[1] - marks[0]) / count


def apply_core(events_per_batch: int = TXN_OPS, batches: int = 200) -> float:
    """Seconds per event of Store.apply alone (the pure core), batches of puts."""
    prepared = [
        [
            Event(
                EventType.PUT,
                KeyValue(b"k%08d" % (b * events_per_batch + i), VALUE, mod_revision=b + 2),
            )
            for i in range(events_per_batch)
        ]
        for b in range(batches)
    ]
    store = Store()
    started = time.perf_counter()
    for batch in prepared:
        store.apply(batch)
    return (time.perf_counter() - started) / (events_per_batch * batches)


# --- get -------------------------------------------------------------------------------------


def get_ratio(m: mirror.Mirror, key: bytes, number: int = 1_000_000) -> tuple[float, float]:
    """Seconds per Mirror.get and per dict.get (on a copy of the same dict)."""
    copy = m.items()
    ours = min(timeit.repeat("m.get(key)", globals={"m": m, "key": key}, number=number, repeat=3))
    floor = min(
        timeit.repeat("d.get(key)", globals={"d": copy, "key": key}, number=number, repeat=3)
    )
    return ours / number, floor / number


def rotate(readers: list[tuple[str, Callable[[], float]]], rounds: int) -> dict[str, list[float]]:
    """Run each reader once a round, the order rotating; return each one's results.

    One round first is not counted: it warms up what runs once per client (the first
    watch starts the client's watch stream and its thread).
    """
    for _, run in readers:
        run()
    results: dict[str, list[float]] = {name: [] for name, _ in readers}
    for round_ in range(rounds):
        order = readers[round_ % len(readers) :] + readers[: round_ % len(readers)]
        for name, run in order:
            results[name].append(run())
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--write", nargs=3, metavar=("ENDPOINT", "PREFIX", "COUNT"))
    options = parser.parse_args()
    if options.write:
        endpoint, prefix, count = options.write
        with Client([endpoint]) as cli:
            fill(cli, prefix.encode(), int(count))
        return
    with EtcdServer() as server:
        endpoint = server.member.direct_endpoint
        with Client([endpoint], timeout=60) as cli:
            fill(cli, b"/load/", options.keys)
            load = rotate(
                [
                    ("get_pages", lambda: load_floor(cli, b"/load/")),
                    ("Mirror", lambda: load_mirror(cli, b"/load/")),
                ],
                options.rounds,
            )
            counter = iter(range(10_000))
            follow = rotate(
                [
                    (
                        "raw watch",
                        lambda: follow_floor(
                            cli, endpoint, b"/raw/%d/" % next(counter), options.events
                        ),
                    ),
                    (
                        "Mirror",
                        lambda: follow_mirror(
                            cli, endpoint, b"/mirror/%d/" % next(counter), options.events
                        ),
                    ),
                ],
                options.rounds,
            )
            core = [apply_core() for _ in range(options.rounds)]
            with mirror.Mirror(cli, b"/load/") as m:
                gets = [
                    get_ratio(m, b"/load/%08d" % (options.keys // 2)) for _ in range(options.rounds)
                ]
    print(f"load of {options.keys} keys (median of {options.rounds}, seconds):")
    floor, ours = statistics.median(load["get_pages"]), statistics.median(load["Mirror"])
    ratios = [b / a for a, b in zip(load["get_pages"], load["Mirror"], strict=True)]
    print(
        f"  get_pages into a dict {floor:.3f}  Mirror {ours:.3f}"
        f"  ratio of medians {ours / floor:.2f}x, median ratio {statistics.median(ratios):.2f}x"
        f" (per round: {', '.join(f'{r:.2f}' for r in ratios)}; target <= 1.2x)"
    )
    floor, ours = statistics.median(follow["raw watch"]), statistics.median(follow["Mirror"])
    print(f"follow {options.events} events in txns of {TXN_OPS} (median CPU per event):")
    print(
        f"  raw watch {floor * 1e6:.2f} us  Mirror {ours * 1e6:.2f} us  overhead"
        f" {(ours - floor) * 1e6:+.2f} us/event (target <= 2 us)"
    )
    print(f"  Store.apply alone: {statistics.median(core) * 1e6:.3f} us/event")
    ours, floor = statistics.median(g[0] for g in gets), statistics.median(g[1] for g in gets)
    print(
        f"get: Mirror.get {ours * 1e9:.0f} ns  dict.get {floor * 1e9:.0f} ns  ratio"
        f" {ours / floor:.2f}x (target <= 2x)"
    )


if __name__ == "__main__":
    main()
