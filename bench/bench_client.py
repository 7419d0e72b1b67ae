"""Benchmark: Client's unary calls against the raw grpcio floor (issue 19's definitions).

Run: .venv/bin/python bench/bench_client.py [--rounds N] [--calls N] [--telemetry]

Starts its own etcd (etcd_layers.testing) and talks to the member directly (not through the
test rig's fault proxy). The floor is raw grpcio on a channel of its own, on grpcio's fastest
call path (registered methods where the installed grpcio has them), with pre-serialized
requests and no decoding. Measured in one run, interleaved call by call (the order rotates):
get, serializable get, put, delete (of an absent key) and a txn of 3 value compares and 3
gets, each against its floor; a 1000-key prefix get with every key and value read against the
floor that parses the response with protobuf (and, for scale, that also reads every key and
value); then the throughput of 16 and 64 threads sharing one client against as many threads
on the floor's one channel, alternated twice.

With --telemetry, also a get with etcd_layers.telemetry on (the OpenTelemetry SDK, spans batched
to a discarding exporter, metrics to an in-memory reader) against the same get with it off,
interleaved. The cost of telemetry being off (one module-attribute test and one call frame per
request) is measured against the code without it by `bench/ab.py BASE_REV bench_client.py`.
"""

from __future__ import annotations

import argparse
import inspect
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any, Final

import grpc

from etcd_layers import Client, Compare, Op
from etcd_layers.base._methods import DELETE_RANGE, PUT, RANGE, TXN
from etcd_layers.base._proto import rpc_pb2
from etcd_layers.testing import EtcdServer


def _time_calls(call: Callable[[], object], count: int) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return samples


def _interleaved(
    contenders: dict[str, Callable[[], object]], rounds: int, calls: int
) -> dict[str, float]:
    """Median latency of each contender, calling them in turn one call at a time.

    Alternating call by call (rotating who goes first) gives every contender the same share of
    whatever else the shared machine is doing at that moment.
    """
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for call in contenders.values():  # warm up every path
        _time_calls(call, max(10, calls // 10))
    items = list(contenders.items())
    for index in range(rounds * calls):
        shift = index % len(items)
        for name, call in items[shift:] + items[:shift]:
            started = time.perf_counter()
            call()
            samples[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in samples.items()}


def _throughput(call: Callable[[], object], threads: int, seconds: float) -> float:
    stop = time.monotonic() + seconds
    counts = [0] * threads

    def work(index: int) -> None:
        while time.monotonic() < stop:
            call()
            counts[index] += 1

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(counts) / seconds


def main() -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--threads-seconds", type=float, default=2.0)
    parser.add_argument("--telemetry", action="store_true", help="also measure telemetry on")
    args = parser.parse_args()
    if args.telemetry:
        _telemetry_rows(args.rounds, args.calls)
        return
    with EtcdServer() as server:
        endpoint = server.member.direct_endpoint
        with Client([endpoint]) as cli, grpc.insecure_channel(endpoint) as channel:
            _measure(cli, channel, args)


def _measure(cli: Client, channel: grpc.Channel, args: argparse.Namespace) -> None:
    """Seed the keys, measure every row interleaved and print the table."""
    floors = _Floors(channel)
    cli.put("bench/one", b"x" * 100)
    for name in ("a", "b", "c"):
        cli.put(f"bench/txn/{name}", name * 10)
    for i in range(1000):
        cli.put(b"bench/many/%04d" % i, b"v" * 100)
    one = rpc_pb2.RangeRequest(key=b"bench/one").SerializeToString()
    one_serializable = rpc_pb2.RangeRequest(key=b"bench/one", serializable=True)
    many = rpc_pb2.RangeRequest(key=b"bench/many/", range_end=b"bench/many0").SerializeToString()
    put = rpc_pb2.PutRequest(key=b"bench/put", value=b"x" * 100).SerializeToString()
    delete = rpc_pb2.DeleteRangeRequest(key=b"bench/absent").SerializeToString()
    txn = _txn_request().SerializeToString()
    txn_keys = [f"bench/txn/{name}" for name in ("a", "b", "c")]

    def client_txn() -> object:
        return cli.txn(
            compare=[Compare.value(key) == key[-1] * 10 for key in txn_keys],
            success=[Op.get(key) for key in txn_keys],
        )

    def client_read_all() -> int:
        return sum(len(kv.key) + len(kv.value) for kv in cli.get("bench/many/", prefix=True).kvs)

    def floor_read_all() -> int:
        answer = floors.parsed_range(many)
        return sum(len(kv.key) + len(kv.value) for kv in answer.kvs)

    medians = _interleaved(
        {
            "get client": lambda: cli.get("bench/one"),
            "get floor": lambda: floors.range(one),
            "serializable get client": lambda: cli.get("bench/one", serializable=True),
            "serializable get floor": lambda: floors.range(one_serializable.SerializeToString()),
            "put client": lambda: cli.put("bench/put", b"x" * 100),
            "put floor": lambda: floors.put(put),
            "delete client": lambda: cli.delete("bench/absent"),
            "delete floor": lambda: floors.delete(delete),
            "txn client": client_txn,
            "txn floor": lambda: floors.txn(txn),
        },
        args.rounds,
        args.calls,
    )
    medians.update(
        _interleaved(
            {
                "1000-key get client, all read": client_read_all,
                "1000-key get floor, parsed": lambda: floors.parsed_range(many),
                "1000-key get floor, parsed, all read": floor_read_all,
            },
            args.rounds,
            max(10, args.calls // 10),
        )
    )
    throughputs: dict[str, list[float]] = {}
    for _ in range(2):  # alternate, so both meet the same load twice
        for threads in (16, 64):
            for name, call in (
                ("client", lambda: cli.get("bench/one")),
                ("floor", lambda: floors.range(one)),
            ):
                rate = _throughput(call, threads, args.threads_seconds)
                throughputs.setdefault(f"{threads} threads {name}", []).append(rate)

    print(f"{'case':40} {'median':>12}")
    for name, value in medians.items():
        print(f"{name:40} {value * 1e6:10.1f}us")
    rows = [
        (f"{case} / floor", medians[f"{case} client"] / medians[f"{case} floor"], target)
        for case, target in (
            ("get", "<= 1.05"),
            ("serializable get", "<= 1.05"),
            ("put", "<= 1.05"),
            ("delete", "<= 1.05"),
            ("txn", "<= 1.08"),
        )
    ]
    read_all = medians["1000-key get client, all read"]
    rows.append(
        (
            "1000-key get / floor + parse",
            read_all / medians["1000-key get floor, parsed"],
            "<= 1.10",
        )
    )
    rows.append(
        (
            "1000-key get / floor + parse + read",
            read_all / medians["1000-key get floor, parsed, all read"],
            "",
        )
    )
    for threads in (16, 64):
        client_rate = sum(throughputs[f"{threads} threads client"])
        floor_rate = sum(throughputs[f"{threads} threads floor"])
        rows.append((f"{threads}-thread throughput / floor", client_rate / floor_rate, ">= 0.95"))
    print()
    print(f"{'ratio':40} {'value':>7}  target")
    for name, ratio, target in rows:
        print(f"{name:40} {ratio:7.3f}  {target}")
    for threads in (16, 64):
        client_rate = statistics.mean(throughputs[f"{threads} threads client"])
        floor_rate = statistics.mean(throughputs[f"{threads} threads floor"])
        print(f"{threads} threads: client {client_rate:.0f}/s, floor {floor_rate:.0f}/s")


def _txn_request() -> rpc_pb2.TxnRequest:
    """The floor's txn: what `client_txn` sends (3 value compares, 3 gets)."""
    request = rpc_pb2.TxnRequest()
    for name in ("a", "b", "c"):
        key = f"bench/txn/{name}".encode()
        request.compare.add(
            result=rpc_pb2.Compare.EQUAL,
            target=rpc_pb2.Compare.VALUE,
            key=key,
            value=name.encode() * 10,
        )
        request.success.add().request_range.key = key
    return request


class _Floors:
    """The floors: raw grpcio on a channel of its own, pre-serialized requests, no decoding.

    They take grpcio's fastest call path: registered methods where the installed grpcio has
    them.
    """

    def __init__(self, channel: grpc.Channel) -> None:
        self.range = _fast_path(channel, RANGE.path)
        self.parsed_range = _fast_path(channel, RANGE.path, RANGE.parse)
        self.put = _fast_path(channel, PUT.path)
        self.delete = _fast_path(channel, DELETE_RANGE.path)
        self.txn = _fast_path(channel, TXN.path)


REGISTERED: Final = "_registered_method" in inspect.signature(grpc.Channel.unary_unary).parameters


def _fast_path(channel: grpc.Channel, path: str, parse: Any = None) -> Any:
    """A unary multi-callable on `channel` taking serialized requests."""
    extra = {"_registered_method": True} if REGISTERED else {}
    return channel.unary_unary(path, request_serializer=None, response_deserializer=parse, **extra)


def _telemetry_rows(rounds: int, calls: int) -> None:
    """A get with telemetry on (an SDK configured) against the same get with it off."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    from etcd_layers import telemetry

    class Discard(SpanExporter):
        def export(self, spans: object) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(Discard()))  # as in production
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    with EtcdServer() as server:
        endpoints = [server.member.direct_endpoint]
        telemetry.enable(tracer_provider=tracer_provider, meter_provider=meter_provider)
        on = telemetry.active
        instrumented = Client(endpoints)  # its channels note each attempt
        telemetry.reset()
        plain = Client(endpoints)
        plain.put("bench/one", b"x" * 100)

        def get_on() -> object:
            telemetry.active = on
            try:
                return instrumented.get("bench/one")
            finally:
                telemetry.active = None

        with plain, instrumented:
            medians = _interleaved(
                {"get telemetry off": lambda: plain.get("bench/one"), "get telemetry on": get_on},
                rounds,
                calls,
            )
    off = _telemetry_off_cost(rounds, calls * 10)
    for name, value in medians.items():
        print(f"{name:32} {value * 1e6:10.1f}us")
    on_cost = medians["get telemetry on"] - medians["get telemetry off"]
    ratio = medians["get telemetry on"] / medians["get telemetry off"]
    print(f"\ntelemetry on / off: {ratio:.3f} ({on_cost * 1e6:+.1f}us per get)")
    print(
        f"telemetry off, its whole cost (Connection.call over its body, no I/O): "
        f"{off * 1e9:+.0f}ns per request = {off / medians['get telemetry off'] * 100:.3f}% "
        "of the get above"
    )


def _telemetry_off_cost(rounds: int, calls: int) -> float:
    """What telemetry being off adds to a request: `Connection.call` (the `is None` test and
    one call frame) over `Connection._call` (the request itself), on MemoryEtcd's in-process
    connection, so that no I/O hides the difference."""
    from etcd_layers.base import _methods
    from etcd_layers.base._proto import rpc_pb2 as wire
    from etcd_layers.testing import MemoryEtcd

    with MemoryEtcd() as etcd, etcd.client() as cli:
        cli.put("bench/one", b"x" * 100)
        conn = cli.connection
        request = wire.RangeRequest(key=b"bench/one")
        medians = _interleaved(
            {
                "call": lambda: conn.call(_methods.RANGE, request, None, idempotent=True),
                "body": lambda: conn._call(_methods.RANGE, request, None, True, None),
            },
            rounds,
            calls,
        )
    return medians["call"] - medians["body"]


if __name__ == "__main__":
    main()
