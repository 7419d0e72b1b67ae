"""Benchmark Client.watch against the floor of a raw grpcio Watch stream reading the same events.

Run from the repository root::

    .venv/bin/python bench/bench_watch.py [--events 5000] [--replay-events 10000] [--rounds 5]
        [--phases live,replay]

It starts its own one-member etcd (etcd_layers.testing) and talks to the member's port
directly (the test rig's fault proxy would add a hop inside this process). Two phases, each
run `--rounds` times with the readers interleaved (the order rotates every round):

* live: a writer in a child process (so its CPU is not counted here) puts `--events` keys as
  fast as etcd takes them while the watch reads them: one event per response.
* replay: a watch from the first revision of `--replay-events` keys written earlier reads
  them from history: etcd sends up to 1000 events per response, so per-event costs dominate.

Readers (every one hands each event to the same consumer, `consume`, which reads the
event's type, key and value, so the floor does the work a real consumer of raw messages
would, and no reader is credited for leaving fields unread):

* raw grpcio (the floor): one Watch stream read in the consumer's thread; each response is
  parsed by protobuf and its events consumed, nothing else.
* raw + thread: the floor read by a second thread and handed to the consumer through a
  queue.SimpleQueue, still without conversion. It prices the thread hop alone.
* etcd_layers: Client.watch, iterating WatchResponses. Its stream thread reads, joins,
  converts every event into Event/KeyValue values and hands them to the consumer.

Reported per run: events/s (first event to last) and CPU per event (time.process_time over
the same span: every thread of this process, gRPC's included). The summary gives medians
and the ratios to the floor. Targets (issue 19): events/s >= 0.95x the floor's, CPU per
event <= 1.25x, in both phases.
"""

from __future__ import annotations

import argparse
import asyncio
import queue
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final

import grpc

from etcd_layers import Client
from etcd_layers.base._connection import serialize
from etcd_layers.base._methods import PUT, WATCH_PATH
from etcd_layers.base._proto import rpc_pb2
from etcd_layers.base.keys import prefix_end
from etcd_layers.testing import EtcdServer

WRITER_CONCURRENCY: Final = 64
VALUE: Final = b"v" * 64
CHILD_TIMEOUT: Final = 120.0
FLOOR: Final = "raw grpcio"
HOP: Final = "raw + thread"
OURS: Final = "etcd_layers"


@dataclass(frozen=True)
class Run:
    """One measured read of `events` events."""

    phase: str
    reader: str
    events: int
    seconds: float
    cpu: float

    @property
    def rate(self) -> float:
        """Events per second, first event to last."""
        return self.events / self.seconds

    @property
    def cpu_per_event(self) -> float:
        """CPU seconds of this process per event."""
        return self.cpu / self.events


class Clock:
    """Wall and CPU time from the first event to the last."""

    def __init__(self) -> None:
        self.wall = 0.0
        self.cpu = 0.0

    def start(self) -> None:
        """Mark the first event."""
        self.wall = time.perf_counter()
        self.cpu = time.process_time()

    def run(self, phase: str, reader: str, events: int) -> Run:
        """The Run from the first event to now."""
        wall, cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu
        return Run(phase, reader, events, wall, cpu)


@dataclass(frozen=True)
class Read:
    """What to read: `count` events under `prefix`, from `start_revision` (0: from now)."""

    endpoint: str
    prefix: bytes
    count: int
    start_revision: int
    phase: str
    begin: Callable[[], object]  # called once the watch is confirmed (starts the writer)


# --- the writer (a child process) -----------------------------------------------------------


async def write(endpoint: str, prefix: bytes, count: int) -> None:
    """Put `count` keys under `prefix`, WRITER_CONCURRENCY at a time."""
    async with grpc.aio.insecure_channel(endpoint) as channel:
        put = channel.unary_unary(
            PUT.path, request_serializer=serialize, response_deserializer=PUT.parse
        )
        indexes = iter(range(count))

        async def worker() -> None:
            for index in indexes:
                await put(rpc_pb2.PutRequest(key=prefix + b"%08d" % index, value=VALUE))

        await asyncio.gather(*(worker() for _ in range(WRITER_CONCURRENCY)))


def start_writer(endpoint: str, prefix: bytes, count: int) -> subprocess.Popen[bytes]:
    """Start a child process that puts `count` keys under `prefix`."""
    command = [sys.executable, __file__, "--write", endpoint, prefix.decode(), str(count)]
    return subprocess.Popen(command)


def wait_writer(writer: subprocess.Popen[bytes]) -> None:
    """Wait for a writer to finish successfully."""
    if writer.wait(CHILD_TIMEOUT) != 0:
        raise RuntimeError("the writer failed")


# --- the consumer ----------------------------------------------------------------------------


def consume(events: Iterable[Any]) -> int:
    """Read each event's type, key and value, as a consumer would; return how many."""
    seen = 0
    for event in events:
        event.type  # noqa: B018  # read, as a consumer would
        kv = event.kv
        kv.key  # noqa: B018
        kv.value  # noqa: B018
        seen += 1
    return seen


# --- readers -------------------------------------------------------------------------------


def open_raw(
    read: Read, channel: grpc.Channel
) -> tuple[Iterator[rpc_pb2.WatchResponse], Callable[[], None]]:
    """Open a raw Watch stream; return its responses (after `created`) and how to close it."""
    requests: queue.SimpleQueue[rpc_pb2.WatchRequest | None] = queue.SimpleQueue()

    def feed() -> Iterator[rpc_pb2.WatchRequest]:
        while (request := requests.get()) is not None:
            yield request

    call = channel.stream_stream(
        WATCH_PATH,
        request_serializer=serialize,
        response_deserializer=rpc_pb2.WatchResponse.FromString,
    )(feed())
    create = rpc_pb2.WatchCreateRequest(
        key=read.prefix, range_end=prefix_end(read.prefix), start_revision=read.start_revision
    )
    requests.put(rpc_pb2.WatchRequest(create_request=create))
    if not next(call).created:
        raise RuntimeError("the watch was not created")

    def close() -> None:
        requests.put(None)
        call.cancel()

    return call, close


def read_raw(read: Read) -> Run:
    """The floor: read and count in this thread."""
    with grpc.insecure_channel(read.endpoint) as channel:
        responses, close = open_raw(read, channel)
        read.begin()
        clock = Clock()
        seen = 0
        for message in responses:
            if not seen:
                clock.start()
            seen += consume(message.events)
            if seen >= read.count:
                break
        run = clock.run(read.phase, FLOOR, seen)
        close()
    return run


def read_raw_thread(read: Read) -> Run:
    """The floor plus a thread hop: a reader thread hands responses over a SimpleQueue."""
    handed: queue.SimpleQueue[rpc_pb2.WatchResponse | None] = queue.SimpleQueue()
    with grpc.insecure_channel(read.endpoint) as channel:
        responses, close = open_raw(read, channel)

        def pump() -> None:
            try:
                for message in responses:
                    handed.put(message)
            except grpc.RpcError:
                handed.put(None)

        reader = threading.Thread(target=pump, name="bench.raw.reader")
        reader.start()
        read.begin()
        clock = Clock()
        seen = 0
        while seen < read.count:
            message = handed.get(timeout=CHILD_TIMEOUT)
            if message is None:
                raise RuntimeError("the stream ended")
            if not seen:
                clock.start()
            seen += consume(message.events)
        run = clock.run(read.phase, HOP, seen)
        close()
        reader.join(CHILD_TIMEOUT)
    return run


def read_client(read: Read) -> Run:
    """etcd_layers: iterate Client.watch."""
    with (
        Client(endpoints=[read.endpoint]) as cli,
        cli.watch(read.prefix, prefix=True, start_revision=read.start_revision) as watch,
    ):
        read.begin()
        clock = Clock()
        seen = 0
        for response in watch:
            if not seen:
                clock.start()
            seen += consume(response.events)
            if seen >= read.count:
                break
        return clock.run(read.phase, OURS, seen)


READERS: Final = {FLOOR: read_raw, HOP: read_raw_thread, OURS: read_client}


def live(endpoint: str, reader: str, prefix: bytes, count: int) -> Run:
    """Read `count` events while a child process writes them."""
    writers: list[subprocess.Popen[bytes]] = []

    def begin() -> None:
        writers.append(start_writer(endpoint, prefix, count))

    run = READERS[reader](Read(endpoint, prefix, count, 0, "live", begin))
    wait_writer(writers[0])
    return run


def replay(endpoint: str, reader: str, prefix: bytes, count: int, revision: int) -> Run:
    """Read `count` events from history, starting at `revision`."""
    return READERS[reader](Read(endpoint, prefix, count, revision, "replay", lambda: None))


def current_revision(endpoint: str) -> int:
    """The store's revision now."""
    with Client(endpoints=[endpoint]) as cli:
        return cli.get(b"/", prefix=True, count_only=True).header.revision


# --- the report ----------------------------------------------------------------------------


def median_of(runs: list[Run], phase: str, reader: str, measure: Callable[[Run], float]) -> float:
    """The median of `measure` over the runs of one reader in one phase."""
    return statistics.median(measure(r) for r in runs if r.phase == phase and r.reader == reader)


def report(runs: list[Run]) -> None:
    """Print every run, then the medians and their ratios to the floor."""
    print(f"{'phase':<7} {'reader':<13} {'events':>7} {'events/s':>10} {'CPU us/event':>13}")
    for run in runs:
        print(
            f"{run.phase:<7} {run.reader:<13} {run.events:>7} {run.rate:>10.0f} "
            f"{run.cpu_per_event * 1e6:>13.1f}"
        )
    print("\nmedians (ratio to the raw grpcio floor)")
    for phase in sorted({run.phase for run in runs}):
        floor_rate = median_of(runs, phase, FLOOR, lambda r: r.rate)
        floor_cpu = median_of(runs, phase, FLOOR, lambda r: r.cpu_per_event)
        for reader in READERS:
            rate = median_of(runs, phase, reader, lambda r: r.rate)
            cpu = median_of(runs, phase, reader, lambda r: r.cpu_per_event)
            print(
                f"{phase:<7} {reader:<13} {rate:>8.0f} events/s ({rate / floor_rate:.2f}x)  "
                f"{cpu * 1e6:>6.1f} us CPU/event ({cpu / floor_cpu:.2f}x)"
            )
    print("targets for etcd_layers: events/s >= 0.95x, CPU/event <= 1.25x")


def main() -> None:
    """Run the benchmark (or, with --write, be the writer child)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=5000, help="events per live run")
    parser.add_argument(
        "--replay-events", type=int, default=10000, help="history events per replay run"
    )
    parser.add_argument(
        "--phases", default="live,replay", help="comma-separated phases to run (live, replay)"
    )
    parser.add_argument("--rounds", type=int, default=5, help="runs of each reader per phase")
    parser.add_argument("--write", nargs=3, metavar=("ENDPOINT", "PREFIX", "COUNT"))
    args = parser.parse_args()
    if args.write:
        endpoint, prefix, count = args.write
        asyncio.run(write(endpoint, prefix.encode(), int(count)))
        return
    runs: list[Run] = []
    readers = list(READERS)
    phases = set(args.phases.split(","))
    if not phases <= {"live", "replay"}:
        parser.error(f"unknown phases: {sorted(phases - {'live', 'replay'})}")
    with EtcdServer() as server:
        endpoint = server.member.direct_endpoint
        for round_ in range(args.rounds):
            order = readers[round_ % 3 :] + readers[: round_ % 3]
            if "live" in phases:
                for index, reader in enumerate(order):
                    prefix = b"/live/%d/%d/" % (round_, index)
                    runs.append(live(endpoint, reader, prefix, args.events))
            if "replay" in phases:
                history = b"/replay/%d/" % round_
                revision = current_revision(endpoint) + 1
                wait_writer(start_writer(endpoint, history, args.replay_events))
                for reader in order:
                    runs.append(replay(endpoint, reader, history, args.replay_events, revision))
    report(runs)


if __name__ == "__main__":
    main()
