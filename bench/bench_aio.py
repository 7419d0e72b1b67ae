"""Benchmark AsyncClient against the floor of raw `grpc.aio` calls, interleaved in one run.

Run from the repository root::

    .venv/bin/python bench/bench_aio.py [--rounds 10] [--calls 200] [--tasks-seconds 2]
        [--watch-rounds 3] [--events 5000] [--replay 10000]

It starts its own one-member etcd (etcd_layers.testing) and talks to the member's port
directly (the test rig's fault proxy would add a hop inside this process). Everything runs on
one asyncio event loop. The floor is raw `grpc.aio` on a channel of its own, with a
pre-serialized request and no decoding ("raw"; "parsed" adds protobuf parsing), using the
registered-method fast path when the installed grpcio has one. Measured, interleaved call by
call (single calls) or round by round (the rest), the order rotating:

* single get and put: median latency; target within 1.05x of the raw floor;
* 64 gets in flight from 64 tasks on one client, against 64 tasks on the raw channel:
  throughput; target at least 0.95x;
* a 1000-key range: median latency; target within 1.10x of the raw floor. The "read" rows
  also touch every key and value (ours converts them lazily; the floor parses with protobuf);
* watch, live (a writer in a child process, so its CPU is not counted here, puts `--events`
  keys as fast as etcd takes them: one event per response) and replay (`--replay` events of
  history, up to 1000 per response): CPU per event (time.process_time from the first event to
  the last: every thread of this process, gRPC's included) and events/s, against one raw
  `grpc.aio` Watch stream read by one task, each response parsed and its events counted.
  Target: CPU per event within 1.25x (events/s: at least 0.95x, issue 19's). A third reader,
  "raw + task hop", hands the floor's responses to a second task: it prices that hop alone.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import inspect
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

import grpc
import grpc.aio

from etcd_layers import AsyncClient
from etcd_layers.base._methods import PUT, RANGE, WATCH_PATH
from etcd_layers.base._proto import rpc_pb2
from etcd_layers.base.keys import prefix_end
from etcd_layers.testing import EtcdServer

TASKS: Final = 64
WRITER_CONCURRENCY: Final = 64
VALUE: Final = b"v" * 64
CHILD_TIMEOUT: Final = 120.0
FLOOR: Final = "raw grpc.aio"
HOP: Final = "raw + task hop"
OURS: Final = "AsyncClient"
# grpcio's fast path for methods known in advance (absent from older grpcio and the stubs).
REGISTERED: Final = (
    "_registered_method" in inspect.signature(grpc.aio.Channel.unary_unary).parameters
)

Contender = Callable[[], Awaitable[object]]


def fast_path(channel: grpc.aio.Channel, kind: str, path: str, parse: Any = None) -> Any:
    """A `kind` ("unary_unary", "stream_stream") multi-callable taking serialized requests."""
    extra = {"_registered_method": True} if REGISTERED else {}
    make = getattr(channel, kind)
    return make(path, request_serializer=None, response_deserializer=parse, **extra)


# --- unary calls --------------------------------------------------------------------------


async def interleaved(
    contenders: dict[str, Contender], rounds: int, calls: int
) -> dict[str, float]:
    """Median latency of each contender, awaiting them in turn one call at a time.

    Alternating call by call (rotating who goes first) gives every contender the same share of
    whatever else the shared machine is doing at that moment.
    """
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for call in contenders.values():  # warm up every path
        for _ in range(max(10, calls // 10)):
            await call()
    items = list(contenders.items())
    clock = time.perf_counter
    for index in range(rounds * calls):
        shift = index % len(items)
        for name, call in items[shift:] + items[:shift]:
            started = clock()
            await call()
            samples[name].append(clock() - started)
    return {name: statistics.median(values) for name, values in samples.items()}


async def throughput(call: Contender, tasks: int, seconds: float) -> float:
    """Calls per second of `tasks` tasks each awaiting `call` in a loop for `seconds`."""
    loop = asyncio.get_running_loop()
    stop = loop.time() + seconds
    counts = [0] * tasks

    async def work(index: int) -> None:
        while loop.time() < stop:
            await call()
            counts[index] += 1

    started = time.perf_counter()
    await asyncio.gather(*(work(i) for i in range(tasks)))
    return sum(counts) / (time.perf_counter() - started)


async def unary(endpoint: str, args: argparse.Namespace) -> tuple[dict[str, float], float, float]:
    """The single-call and range medians, and the 64-task throughputs (client, floor)."""
    async with (
        AsyncClient(endpoints=[endpoint]) as cli,
        grpc.aio.insecure_channel(endpoint) as channel,
    ):
        raw_range = fast_path(channel, "unary_unary", RANGE.path)
        parsed_range = fast_path(channel, "unary_unary", RANGE.path, RANGE.parse)
        raw_put = fast_path(channel, "unary_unary", PUT.path)
        await cli.put("bench/one", b"x" * 100)
        for i in range(1000):
            await cli.put(b"bench/many/%04d" % i, b"v" * 100)
        one = rpc_pb2.RangeRequest(key=b"bench/one").SerializeToString()
        many = rpc_pb2.RangeRequest(
            key=b"bench/many/", range_end=b"bench/many0"
        ).SerializeToString()
        put = rpc_pb2.PutRequest(key=b"bench/put", value=b"x" * 100).SerializeToString()

        async def client_read_all() -> int:
            response = await cli.get("bench/many/", prefix=True)
            return sum(len(kv.key) + len(kv.value) for kv in response.kvs)

        async def floor_read_all() -> int:
            response = await parsed_range(many)
            return sum(len(kv.key) + len(kv.value) for kv in response.kvs)

        medians = await interleaved(
            {
                "get client": lambda: cli.get("bench/one"),
                "get floor raw": lambda: raw_range(one),
                "get floor parsed": lambda: parsed_range(one),
                "put client": lambda: cli.put("bench/put", b"x" * 100),
                "put floor raw": lambda: raw_put(put),
            },
            args.rounds,
            args.calls,
        )
        medians |= await interleaved(
            {
                "1000-key get client": lambda: cli.get("bench/many/", prefix=True),
                "1000-key get floor raw": lambda: raw_range(many),
                "1000-key get floor parsed": lambda: parsed_range(many),
                "1000-key get client, read": client_read_all,
                "1000-key get floor parsed, read": floor_read_all,
            },
            args.rounds,
            max(10, args.calls // 10),
        )
        calls = {"ours": lambda: cli.get("bench/one"), "floor": lambda: raw_range(one)}
        rates: dict[str, list[float]] = {"ours": [], "floor": []}
        for round_ in range(4):  # ours, floor, floor, ours, ...
            for name in ("ours", "floor") if round_ % 2 == 0 else ("floor", "ours"):
                rates[name].append(await throughput(calls[name], TASKS, args.tasks_seconds))
    return medians, statistics.mean(rates["ours"]), statistics.mean(rates["floor"])


# --- watch --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One measured read of `events` events."""

    phase: str
    reader: str
    events: int
    seconds: float
    cpu: float


class Clock:
    """Wall and CPU time from the first event to the last."""

    def __init__(self) -> None:
        self.wall = self.cpu = 0.0

    def start(self) -> None:
        """Mark the first event."""
        self.wall, self.cpu = time.perf_counter(), time.process_time()

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


async def write(endpoint: str, prefix: bytes, count: int) -> None:
    """Put `count` keys under `prefix`, WRITER_CONCURRENCY at a time (the child process)."""
    async with grpc.aio.insecure_channel(endpoint) as channel:
        put = fast_path(channel, "unary_unary", PUT.path)
        indexes = iter(range(count))

        async def worker() -> None:
            for index in indexes:
                request = rpc_pb2.PutRequest(key=prefix + b"%08d" % index, value=VALUE)
                await put(request.SerializeToString())

        await asyncio.gather(*(worker() for _ in range(WRITER_CONCURRENCY)))


def start_writer(endpoint: str, prefix: bytes, count: int) -> subprocess.Popen[bytes]:
    """Start a child process that puts `count` keys under `prefix`."""
    return subprocess.Popen(
        [sys.executable, __file__, "--write", endpoint, prefix.decode(), str(count)]
    )


async def wait_writer(writer: subprocess.Popen[bytes]) -> None:
    """Wait for a writer to finish successfully."""
    if await asyncio.to_thread(writer.wait, CHILD_TIMEOUT) != 0:
        raise RuntimeError("the writer failed")


async def open_floor(read: Read, channel: grpc.aio.Channel) -> Any:
    """Open a raw Watch stream on `channel` and return its call once the watch is created."""
    call = fast_path(channel, "stream_stream", WATCH_PATH, rpc_pb2.WatchResponse.FromString)()
    create = rpc_pb2.WatchCreateRequest(
        key=read.prefix, range_end=prefix_end(read.prefix), start_revision=read.start_revision
    )
    await call.write(rpc_pb2.WatchRequest(create_request=create).SerializeToString())
    if not (await call.read()).created:
        raise RuntimeError("the watch was not created")
    return call


async def read_floor(read: Read) -> Run:
    """The floor: one raw Watch stream read by this task, each response parsed and counted."""
    async with grpc.aio.insecure_channel(read.endpoint) as channel:
        call = await open_floor(read, channel)
        read.begin()
        clock, seen, eof = Clock(), 0, grpc.aio.EOF
        while seen < read.count:
            message = await call.read()
            if message is eof:
                raise RuntimeError("the stream ended")
            if not seen:
                clock.start()
            seen += len(message.events)
        run = clock.run(read.phase, FLOOR, seen)
        call.cancel()
    return run


async def read_hop(read: Read) -> Run:
    """The floor plus a task hop: a reader task hands responses over a deque and an Event.

    No conversion: it prices the handoff between two tasks alone (AsyncClient's has one).
    """
    async with grpc.aio.insecure_channel(read.endpoint) as channel:
        call = await open_floor(read, channel)
        handed: collections.deque[Any] = collections.deque()
        ready = asyncio.Event()

        async def pump() -> None:
            while (message := await call.read()) is not grpc.aio.EOF:
                handed.append(message)
                ready.set()

        pumping = asyncio.get_running_loop().create_task(pump())
        read.begin()
        clock, seen = Clock(), 0
        while seen < read.count:
            while not handed:
                ready.clear()
                await ready.wait()
            if not seen:
                clock.start()
            seen += len(handed.popleft().events)
        run = clock.run(read.phase, HOP, seen)
        call.cancel()
        pumping.cancel()
        with contextlib.suppress(asyncio.CancelledError, grpc.RpcError):
            await pumping
    return run


async def read_client(read: Read) -> Run:
    """Ours: iterate AsyncClient.watch."""
    async with (
        AsyncClient(endpoints=[read.endpoint]) as cli,
        cli.watch(read.prefix, prefix=True, start_revision=read.start_revision) as watch,
    ):
        read.begin()
        clock, seen = Clock(), 0
        async for response in watch:
            if not seen:
                clock.start()
            seen += len(response.events)
            if seen >= read.count:
                break
        return clock.run(read.phase, OURS, seen)


READERS: Final = {FLOOR: read_floor, HOP: read_hop, OURS: read_client}


async def watch(endpoint: str, args: argparse.Namespace) -> list[Run]:
    """The live and replay runs of every reader, the order rotating every round."""
    runs: list[Run] = []
    readers = list(READERS)
    for round_ in range(args.watch_rounds):
        order = readers[round_ % 3 :] + readers[: round_ % 3]
        for index, reader in enumerate(order):
            writers: list[subprocess.Popen[bytes]] = []
            prefix = b"/live/%d/%d/" % (round_, index)

            def begin(prefix: bytes = prefix, writers: list[Any] = writers) -> None:
                writers.append(start_writer(endpoint, prefix, args.events))

            runs.append(
                await READERS[reader](Read(endpoint, prefix, args.events, 0, "live", begin))
            )
            await wait_writer(writers[0])
        history = b"/replay/%d/" % round_
        async with AsyncClient(endpoints=[endpoint]) as cli:
            revision = (await cli.get(b"/", prefix=True, count_only=True)).header.revision + 1
        await wait_writer(start_writer(endpoint, history, args.replay))
        for reader in order:
            read = Read(endpoint, history, args.replay, revision, "replay", lambda: None)
            runs.append(await READERS[reader](read))
    return runs


# --- the report ---------------------------------------------------------------------------


def report(medians: dict[str, float], ours: float, floor: float, runs: list[Run]) -> None:
    """Print the medians, the watch runs, and every ratio against its target."""
    print(f"{'case':34} {'median':>10}")
    for name, value in medians.items():
        print(f"{name:34} {value * 1e6:8.1f}us")
    print(f"\n{TASKS} tasks: client {ours:.0f} gets/s, raw channel {floor:.0f} gets/s")
    print(f"\n{'phase':<7} {'reader':<14} {'events':>7} {'events/s':>10} {'CPU us/event':>13}")
    for run in runs:
        print(
            f"{run.phase:<7} {run.reader:<14} {run.events:>7} {run.events / run.seconds:>10.0f} "
            f"{run.cpu / run.events * 1e6:>13.1f}"
        )

    def watch_median(phase: str, reader: str, cpu: bool) -> float:
        chosen = [r for r in runs if r.phase == phase and r.reader == reader]
        return statistics.median((r.cpu if cpu else r.seconds) / r.events for r in chosen)

    def of(ours: str, floor: str) -> float:
        return medians[ours] / medians[floor]

    many = "1000-key get"
    rows: list[tuple[str, float, float]] = [  # name, ratio, limit (negative: at least)
        ("get / raw floor", of("get client", "get floor raw"), 1.05),
        ("get / parsed floor", of("get client", "get floor parsed"), 0.0),
        ("put / raw floor", of("put client", "put floor raw"), 1.05),
        (f"{many} / raw floor", of(f"{many} client", f"{many} floor raw"), 1.10),
        (f"{many} / parsed floor", of(f"{many} client", f"{many} floor parsed"), 0.0),
        (
            f"{many}, read / parsed, read",
            of(f"{many} client, read", f"{many} floor parsed, read"),
            0.0,
        ),
        (f"{TASKS}-task throughput / raw", ours / floor, -0.95),
    ]
    for phase in ("live", "replay") if runs else ():
        floor_cpu, floor_wall = watch_median(phase, FLOOR, True), watch_median(phase, FLOOR, False)
        rows += [
            (f"watch {phase} CPU/event", watch_median(phase, OURS, True) / floor_cpu, 1.25),
            (f"watch {phase} events/s", floor_wall / watch_median(phase, OURS, False), -0.95),
            ("  (raw + task hop) CPU/event", watch_median(phase, HOP, True) / floor_cpu, 0.0),
        ]
    print(f"\n{'ratio (AsyncClient / floor)':36} {'value':>7}  target")
    for name, ratio, limit in rows:
        if not limit:
            print(f"{name:36} {ratio:7.3f}")
            continue
        met = ratio >= -limit if limit < 0 else ratio <= limit
        target = f">= {-limit:.2f}" if limit < 0 else f"<= {limit:.2f}"
        print(f"{name:36} {ratio:7.3f}  {target}  {'met' if met else 'MISSED'}")


async def bench(endpoint: str, args: argparse.Namespace) -> None:
    """Run every measurement and print the report."""
    medians, ours, floor = await unary(endpoint, args)
    runs = await watch(endpoint, args) if args.watch_rounds else []
    report(medians, ours, floor, runs)


def main() -> None:
    """Run the benchmark (or, with --write, be the writer child)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--tasks-seconds", type=float, default=2.0)
    parser.add_argument("--watch-rounds", type=int, default=3)
    parser.add_argument("--events", type=int, default=5000, help="live events per run")
    parser.add_argument("--replay", type=int, default=10000, help="replayed events per run")
    parser.add_argument("--write", nargs=3, metavar=("ENDPOINT", "PREFIX", "COUNT"))
    args = parser.parse_args()
    if args.write:
        endpoint, prefix, count = args.write
        asyncio.run(write(endpoint, prefix.encode(), int(count)))
        return
    with EtcdServer() as server:
        asyncio.run(bench(server.member.direct_endpoint, args))


if __name__ == "__main__":
    main()
