"""OpenTelemetry spans and metrics, and the log records, of both clients against a real etcd.

The SDK's in-memory exporters collect what a scripted sequence reports: KV calls, a failover
(a dead endpoint listed first), a watch whose stream is cut and resumes, a lost keep-alive, and
the layers' counters. The log records of a sequence with credentials are checked at DEBUG for
any credential.
"""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from conftest import CLIENT_KINDS, client_of_kind
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from etcd_layers import Client, Compare, Op, errors, leasing, mirror, ordering, telemetry
from etcd_layers.testing import EtcdServer

TIMEOUT = 10.0


@dataclass
class Collected:
    """What the in-memory exporters hold."""

    spans: InMemorySpanExporter
    reader: InMemoryMetricReader
    tracer_provider: TracerProvider

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    def metrics(self) -> dict[str, list[Any]]:
        """Each metric's data points, by name."""
        found: dict[str, list[Any]] = {}
        data = self.reader.get_metrics_data()
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    found.setdefault(metric.name, []).extend(metric.data.data_points)
        return found

    def total(self, name: str) -> float:
        return float(sum(point.value for point in self.metrics().get(name, [])))


@pytest.fixture
def otel() -> Iterator[Collected]:
    """Telemetry on, into in-memory exporters, for this test only."""
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    telemetry.enable(
        tracer_provider=tracer_provider, meter_provider=MeterProvider(metric_readers=[reader])
    )
    try:
        yield Collected(spans, reader, tracer_provider)
    finally:
        telemetry.reset()


def _dead_endpoint() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


@pytest.mark.parametrize("kind", CLIENT_KINDS)
def test_spans_and_metrics_of_a_sequence_with_failover_and_watch_resume(
    kind: str, otel: Collected, etcd_server: EtcdServer, etcd_key_prefix: bytes
) -> None:
    key = etcd_key_prefix + b"k"
    endpoints = [_dead_endpoint(), *etcd_server.endpoints]  # round robin meets the dead one
    with client_of_kind(kind, endpoints, timeout=TIMEOUT) as cli:
        put = cli.put(key, "v1")
        for _ in range(4):  # round robin: one of the first requests meets the dead endpoint
            assert cli.get(key).kvs[0].value == b"v1"
        cli.txn([Compare.value(key) == "v1"], [Op.put(key, "v2")], [])
        with pytest.raises(errors.FutureRevisionError):
            cli.compact(put.header.revision + 100)
        with cli.watch(key, start_revision=put.header.revision) as watch:
            values: list[bytes] = []
            while b"v2" not in values:
                values += [e.kv.value for e in watch.next(timeout=TIMEOUT).events]
            etcd_server.member.client_proxy.drop_connections()  # the stream breaks, resumes
            cli.get(key)  # a read is retried; once it answers, a put finds a live connection
            cli.put(key, "v3")
            while b"v3" not in values:
                values += [e.kv.value for e in watch.next(timeout=TIMEOUT).events]
            assert values == [b"v1", b"v2", b"v3"]  # nothing lost, nothing repeated

    spans = otel.finished()
    by_name: dict[str, list[ReadableSpan]] = {}
    for span in spans:
        by_name.setdefault(span.name, []).append(span)
    assert len(by_name["etcdserverpb.KV/Put"]) == 2
    assert len(by_name["etcdserverpb.KV/Range"]) == 5  # 4, and one after the drop
    assert len(by_name["etcdserverpb.KV/Txn"]) == 1
    put_span = by_name["etcdserverpb.KV/Put"][0]
    attributes = dict(put_span.attributes or {})
    assert put_span.kind is SpanKind.CLIENT
    assert attributes["rpc.system"] == "grpc"
    assert attributes["rpc.service"] == "etcdserverpb.KV"
    assert attributes["rpc.method"] == "Put"
    assert attributes["etcd.revision"] == put.header.revision
    assert f"{attributes['server.address']}:{attributes['server.port']}" in etcd_server.endpoints
    assert "etcd.key" not in attributes  # keys only on request
    # The failover: the request that met the dead endpoint first (refused before anything was
    # sent, so even a put goes on) tried the live one next; later ones skip the dead one.
    # (The get just after the drop may retry too.)
    retried = [s for s in spans if (s.attributes or {}).get("etcd.retries")]
    attempts = [(e.name, dict(e.attributes or {})) for e in retried[0].events]
    assert attempts == [
        ("etcd.attempt", {"server.address": endpoints[0]}),
        ("etcd.attempt", {"server.address": endpoints[1]}),
    ]
    # The failed compaction: its error class on the span, and an error status.
    (compact,) = by_name["etcdserverpb.KV/Compact"]
    assert (compact.attributes or {})["error.type"] == "FutureRevisionError"
    assert compact.status.status_code is StatusCode.ERROR

    metrics = otel.metrics()
    durations = metrics["rpc.client.duration"]
    assert sum(point.count for point in durations) == len(spans)
    assert any(point.attributes.get("error.type") == "FutureRevisionError" for point in durations)
    assert otel.total("etcd.client.retries") >= 1
    assert otel.total("etcd.client.failovers") >= 1
    assert otel.total("etcd.client.watch.resumptions") >= 1
    assert sum(point.count for point in metrics["etcd.client.watch.lag"]) >= 2


@pytest.mark.parametrize("kind", CLIENT_KINDS)
def test_a_lost_keep_alive_and_the_layers_are_counted(
    kind: str, otel: Collected, etcd_server: EtcdServer, etcd_key_prefix: bytes
) -> None:
    with client_of_kind(kind, etcd_server.endpoints, timeout=TIMEOUT) as cli:
        lease = cli.grant(5)  # renewed every few seconds: the loss shows soon
        with cli.keep_alive(lease.id) as keep:
            assert keep.next(timeout=TIMEOUT).ttl > 0
            cli.revoke(lease.id)
            with pytest.raises(errors.LeaseNotFoundError):  # noqa: PT012 (a bounded loop)
                for _ in range(100):  # the next renewal finds the lease gone
                    keep.next(timeout=TIMEOUT)
        assert otel.total("etcd.client.keepalive.losses") == 1

    # The layers' counters (sync stacks: the layers' code is one for both kinds).
    with Client(etcd_server.endpoints, timeout=TIMEOUT) as plain:
        plain.put(etcd_key_prefix + b"cached", "v")
        seen = {"violations": 0}

        def count(*_args: object) -> None:
            seen["violations"] += 1

        with leasing.wrap(plain, etcd_key_prefix + b"lease/", ttl=30) as lkv:
            hits_before = otel.total("etcd.leasing.hits")
            lkv.get(etcd_key_prefix + b"cached")  # a miss: acquires the key
            lkv.get(etcd_key_prefix + b"cached")  # a hit
            assert otel.total("etcd.leasing.hits") >= hits_before + 1
            assert otel.total("etcd.leasing.misses") >= 1
        ordered = ordering.wrap(plain, on_violation=count)
        assert ordered.get(etcd_key_prefix + b"cached").kvs
        assert otel.total("etcd.ordering.violations") == seen["violations"] == 0
        with mirror.Mirror(plain, etcd_key_prefix + b"m/") as copy:
            copy.wait(plain.put(etcd_key_prefix + b"m/k", "v").header.revision, timeout=TIMEOUT)
        lags = otel.metrics()["etcd.mirror.lag"]
        assert sum(point.count for point in lags) >= 1


def test_keys_are_on_spans_only_when_asked(etcd_server: EtcdServer, etcd_key_prefix: bytes) -> None:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    telemetry.enable(tracer_provider=provider, meter_provider=MeterProvider(), record_keys=True)
    try:
        with Client(etcd_server.endpoints) as cli:
            cli.put(etcd_key_prefix + b"visible", "secret-value")
    finally:
        telemetry.reset()
    (span,) = [s for s in spans.get_finished_spans() if s.name == "etcdserverpb.KV/Put"]
    attributes = dict(span.attributes or {})
    assert attributes["etcd.key"] == (etcd_key_prefix + b"visible").decode()
    assert "secret-value" not in repr(attributes)  # values never


GLOBAL_SDK_SCRIPT = """
import json, sys
from opentelemetry import trace, metrics
from opentelemetry.instrumentation.grpc import GrpcInstrumentorClient
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from etcd_layers import Client, telemetry

spans = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(spans))
trace.set_tracer_provider(provider)
reader = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
if sys.argv[2] == "grpc":
    GrpcInstrumentorClient().instrument()
with Client([sys.argv[1]]) as cli:  # finds the global SDK: instrumented without enable()
    cli.put(sys.argv[3], "v")
names = [m.name for r in reader.get_metrics_data().resource_metrics
         for s in r.scope_metrics for m in s.metrics]
print(json.dumps({
    "enabled": telemetry.enabled(),
    "metrics": names,
    "spans": [
        {"name": s.name, "kind": s.kind.name, "id": s.context.span_id,
         "parent": s.parent.span_id if s.parent else None}
        for s in spans.get_finished_spans()
    ],
}))
"""


def _global_sdk_run(etcd_server: EtcdServer, key: bytes, mode: str) -> dict[str, Any]:
    """Run a client in a process of its own with an SDK installed globally (it can be only
    once per process), with or without opentelemetry-instrumentation-grpc on."""
    done = subprocess.run(
        [sys.executable, "-c", GLOBAL_SDK_SCRIPT, etcd_server.endpoints[0], mode, key.decode()],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_a_globally_configured_sdk_turns_telemetry_on(
    etcd_server: EtcdServer, etcd_key_prefix: bytes
) -> None:
    found = _global_sdk_run(etcd_server, etcd_key_prefix + b"k", "alone")
    assert found["enabled"]
    assert [(s["name"], s["kind"]) for s in found["spans"]] == [("etcdserverpb.KV/Put", "CLIENT")]
    assert "rpc.client.duration" in found["metrics"]


def test_with_grpc_instrumentation_a_request_is_one_rpc_span(
    etcd_server: EtcdServer, etcd_key_prefix: bytes
) -> None:
    """opentelemetry-instrumentation-grpc's span per attempt nests under ours, which turns
    INTERNAL: a request is counted once as an RPC, and the attempt is still seen."""
    spans = _global_sdk_run(etcd_server, etcd_key_prefix + b"k", "grpc")["spans"]
    ours = [s for s in spans if s["name"] == "etcdserverpb.KV/Put"]
    theirs = [s for s in spans if s["name"] == "/etcdserverpb.KV/Put"]
    assert len(ours) == len(theirs) == 1
    assert ours[0]["kind"] == "INTERNAL"
    assert theirs[0]["kind"] == "CLIENT"
    assert theirs[0]["parent"] == ours[0]["id"]
    assert [s["kind"] for s in spans].count("CLIENT") == 1


def test_without_telemetry_nothing_is_instrumented(etcd_server: EtcdServer) -> None:
    """No SDK configured globally: clients stay uninstrumented."""
    telemetry.reset()
    with Client(etcd_server.endpoints) as cli:
        cli.status(etcd_server.endpoints[0])
    assert not telemetry.enabled()


# --- logs -------------------------------------------------------------------------------------

PASSWORD = "pw-7f3a-never-logged"


@pytest.fixture(scope="module")
def auth_server() -> Iterator[EtcdServer]:
    """A server with auth on: root's password is PASSWORD."""
    with EtcdServer(extra_args=["--auth-token=simple", "--bcrypt-cost=4"]) as server:
        with Client(server.endpoints) as root:
            root.user_add("root", PASSWORD)
            root.user_grant_role("root", "root")
            root.auth_enable()
        yield server


@pytest.mark.parametrize("kind", CLIENT_KINDS)
def test_no_credential_in_any_log_record_at_debug(
    kind: str, auth_server: EtcdServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="etcd_layers")
    endpoints = [_dead_endpoint(), *auth_server.endpoints]
    with client_of_kind(
        kind, endpoints, username="root", password=PASSWORD, timeout=TIMEOUT
    ) as cli:
        cli.put("k", "value-never-logged")
        for _ in range(4):
            cli.get("k")
        with cli.watch("k") as watch:
            auth_server.member.client_proxy.drop_connections()
            cli.get("k")  # a read is retried across the drop; the put after it is not
            cli.put("k", "value-never-logged-2")
            assert watch.next(timeout=TIMEOUT).events
        lease = cli.grant(30)
        cli.revoke(lease.id)
        # The sync client shows its token (its connection's metadata): it must not be logged.
        token = dict(cli.connection.metadata).get("token") if kind == "Client" else None
        assert token or kind != "Client"
    records = [r for r in caplog.records if r.name.startswith("etcd_layers")]
    assert any(r.levelno == logging.INFO for r in records)  # the failover and the resume
    text = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in records)
    assert "etcd_layers.client" in text
    assert PASSWORD not in text
    assert "value-never-logged" not in text
    if token:
        assert token not in text
