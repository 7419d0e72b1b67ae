"""Benchmark: Client.get/put against the floor of the same gRPC channel with no conversion.

Run: .venv/bin/python bench/bench_client.py [--rounds N] [--calls N] [--telemetry]

Starts its own etcd (etcd_layers.testing). Measures, in one run and interleaved round by
round, the Client and two floors on the same channel with a pre-serialized request:
"raw" (response bytes not parsed at all) and "parsed" (protobuf parsing only, no conversion
into etcd_layers' response objects). Prints median latencies and ratios, and the
throughput of 16 threads sharing one client against 16 threads on the raw channel.

With --telemetry, also a get with etcd_layers.telemetry on (the OpenTelemetry SDK, spans batched
to a discarding exporter, metrics to an in-memory reader) against the same get with it off,
interleaved. The cost of telemetry being off (one module-attribute test and one call frame per
request) is measured against the code without it by `bench/ab.py BASE_REV bench_client.py`.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from collections.abc import Callable

from etcd_layers import Client
from etcd_layers.base._proto import rpc_pb2
from etcd_layers.testing import EtcdCluster


def _identity(data: bytes) -> bytes:
    return data


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
    parser.add_argument("--threads-seconds", type=float, default=3.0)
    parser.add_argument("--telemetry", action="store_true", help="also measure telemetry on")
    args = parser.parse_args()
    if args.telemetry:
        _telemetry_rows(args.rounds, args.calls)
        return
    with EtcdCluster(1) as cluster, Client(cluster.endpoints) as cli:
        # The floor uses the client's own channel (same connection, same options).
        channel = cli._conn.endpoints[0].channel
        raw_range = channel.unary_unary(
            "/etcdserverpb.KV/Range", request_serializer=_identity, response_deserializer=_identity
        )
        parsed_range = channel.unary_unary(
            "/etcdserverpb.KV/Range",
            request_serializer=_identity,
            response_deserializer=rpc_pb2.RangeResponse.FromString,
        )
        raw_put = channel.unary_unary(
            "/etcdserverpb.KV/Put", request_serializer=_identity, response_deserializer=_identity
        )
        cli.put("bench/one", b"x" * 100)
        for i in range(1000):
            cli.put(b"bench/many/%04d" % i, b"v" * 100)
        one = rpc_pb2.RangeRequest(key=b"bench/one").SerializeToString()
        many = rpc_pb2.RangeRequest(
            key=b"bench/many/", range_end=b"bench/many0"
        ).SerializeToString()
        put = rpc_pb2.PutRequest(key=b"bench/put", value=b"x" * 100).SerializeToString()

        medians = _interleaved(
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
        prefix = _interleaved(
            {
                "1000-key get client": lambda: cli.get("bench/many/", prefix=True),
                "1000-key get floor raw": lambda: raw_range(many),
                "1000-key get floor parsed": lambda: parsed_range(many),
            },
            args.rounds,
            max(10, args.calls // 10),
        )
        medians.update(prefix)
        client_tput = _throughput(lambda: cli.get("bench/one"), 16, args.threads_seconds)
        raw_tput = _throughput(lambda: raw_range(one), 16, args.threads_seconds)
        client_tput_2 = _throughput(lambda: cli.get("bench/one"), 16, args.threads_seconds)
        raw_tput_2 = _throughput(lambda: raw_range(one), 16, args.threads_seconds)

    print(f"{'case':32} {'median':>12}")
    for name, value in medians.items():
        print(f"{name:32} {value * 1e6:10.1f}us")
    rows = [
        ("get / raw floor", medians["get client"] / medians["get floor raw"], "<= 1.05"),
        ("get / parsed floor", medians["get client"] / medians["get floor parsed"], ""),
        ("put / raw floor", medians["put client"] / medians["put floor raw"], "<= 1.05"),
        (
            "1000-key get / raw floor",
            medians["1000-key get client"] / medians["1000-key get floor raw"],
            "<= 1.10",
        ),
        (
            "1000-key get / parsed floor",
            medians["1000-key get client"] / medians["1000-key get floor parsed"],
            "",
        ),
        (
            "16-thread throughput client/raw",
            (client_tput + client_tput_2) / (raw_tput + raw_tput_2),
            ">= 0.90",
        ),
    ]
    print()
    print(f"{'ratio':34} {'value':>7}  target")
    for name, ratio, target in rows:
        print(f"{name:34} {ratio:7.3f}  {target}")
    print(
        f"\n16 threads: client {(client_tput + client_tput_2) / 2:.0f}/s, "
        f"raw channel {(raw_tput + raw_tput_2) / 2:.0f}/s"
    )


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
    with EtcdCluster(1) as cluster:
        telemetry.enable(tracer_provider=tracer_provider, meter_provider=meter_provider)
        on = telemetry.active
        instrumented = Client(cluster.endpoints)  # its channels note each attempt
        telemetry.reset()
        plain = Client(cluster.endpoints)
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
