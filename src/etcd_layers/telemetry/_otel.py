"""The OpenTelemetry instruments: a span and a duration per request, counters for the rest.

Spans follow OpenTelemetry's semantic conventions for RPC: named `etcdserverpb.KV/Range`, kind
CLIENT, with `rpc.system` ("grpc"), `rpc.service`, `rpc.method`, `server.address` and
`server.port` (the endpoint that answered, or the last one tried), `error.type` (the error's
class) on failure, and etcd's own `etcd.revision` (the response header's revision) and
`etcd.retries` (attempts after the first). One span covers the whole request, retries included:
each attempt is an event `etcd.attempt` on it. With `opentelemetry-instrumentation-grpc` on as
well, its per-attempt CLIENT spans become children of ours, and ours turns INTERNAL so that a
request is counted once as an RPC. That package records no metrics, so nothing is counted twice.

Metrics (meter "etcd_layers"):
    rpc.client.duration (ms, histogram): per request, retries included; rpc.* and error.type.
    etcd.client.retries (counter): attempts after the first; etcd.client.failovers (counter):
        attempts sent to another endpoint than the one before.
    etcd.client.watch.resumptions (counter): watch streams re-opened after a break.
    etcd.client.watch.lag ({revision}, histogram): per watch response with events, how far its
        newest event is behind the store's revision in its header.
    etcd.client.keepalive.losses (counter): leases whose keep-alive ended as they expired.
    etcd.leasing.hits / etcd.leasing.misses / etcd.leasing.revocations (observable counters:
        the totals of the process's leasing clients, read at collection time).
    etcd.ordering.violations (counter).
    etcd.mirror.lag ({revision}, histogram): per batch a Mirror applies, how far its copy is behind
        the store's revision in the watch response's header.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import grpc
import grpc.aio
from opentelemetry import metrics, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

__all__ = ["Instruments", "sdk_configured"]

T = TypeVar("T")
_SCOPE: Final = "etcd_layers"
_KEYED: Final = frozenset({"Range", "Put", "DeleteRange"})


def sdk_configured() -> bool:
    """Whether the global providers are an SDK's, not the API's proxies or no-ops."""
    tracer = type(trace.get_tracer_provider()).__module__
    meter = type(metrics.get_meter_provider()).__module__
    return not (
        tracer.startswith("opentelemetry.trace") and meter.startswith("opentelemetry.metrics")
    )


@dataclass(slots=True)
class _Attempts:
    """What the attempt interceptor saw of one request: its attempts and their endpoints."""

    count: int = 0
    failovers: int = 0
    endpoint: str = ""

    def attempt(self, address: str) -> None:
        if self.count and address != self.endpoint:
            self.failovers += 1
        self.count += 1
        self.endpoint = address


@dataclass(slots=True)
class _Outcome:
    """The response a request's block hands back to its span (None: none yet)."""

    response: Any = None


_CURRENT: contextvars.ContextVar[_Attempts | None] = contextvars.ContextVar(
    "etcd_layers_attempts", default=None
)


def _rpc_names(path: str) -> tuple[str, str]:
    service, _, method = path.strip("/").partition("/")
    return service, method


def _grpc_instrumented() -> Callable[[], bool]:
    """A check for opentelemetry-instrumentation-grpc's client side being on (False: absent)."""
    try:
        from opentelemetry.instrumentation.grpc import (  # noqa: PLC0415 (optional)
            GrpcAioInstrumentorClient,
            GrpcInstrumentorClient,
        )
    except ImportError:
        return lambda: False
    sync = GrpcInstrumentorClient()  # type: ignore[no-untyped-call]  # a singleton
    aio = GrpcAioInstrumentorClient()  # type: ignore[no-untyped-call]
    return lambda: sync.is_instrumented_by_opentelemetry or aio.is_instrumented_by_opentelemetry


class Instruments:
    """The tracer and the instruments every client and layer reports to."""

    def __init__(
        self, tracer_provider: object | None, meter_provider: object | None, *, record_keys: bool
    ) -> None:
        self.record_keys = record_keys
        self.tracer = trace.get_tracer(_SCOPE, tracer_provider=tracer_provider)  # type: ignore[arg-type]
        meter = metrics.get_meter(_SCOPE, meter_provider=meter_provider)  # type: ignore[arg-type]
        self.duration = meter.create_histogram(
            "rpc.client.duration", unit="ms", description="etcd requests, retries included"
        )
        self.retries = meter.create_counter("etcd.client.retries", unit="{retry}")
        self.failovers = meter.create_counter("etcd.client.failovers", unit="{failover}")
        self.watch_resumptions = meter.create_counter(
            "etcd.client.watch.resumptions", unit="{resumption}"
        )
        self.watch_lag = meter.create_histogram("etcd.client.watch.lag", unit="{revision}")
        self.keepalive_losses = meter.create_counter("etcd.client.keepalive.losses", unit="{lease}")
        self.ordering_violations = meter.create_counter(
            "etcd.ordering.violations", unit="{violation}"
        )
        self.mirror_lag = meter.create_histogram("etcd.mirror.lag", unit="{revision}")
        self._grpc_instrumented = _grpc_instrumented()
        self._meter = meter
        from etcd_layers.telemetry import observed  # noqa: PLC0415 (the package imports us)

        for name, (unit, read) in list(observed.items()):
            self.observe_counter(name, unit, read)

    def observe_counter(self, name: str, unit: str, read: Callable[[], int]) -> None:
        """Report `read()` as the cumulative counter `name` at each collection."""

        def collect(_options: metrics.CallbackOptions) -> list[metrics.Observation]:
            return [metrics.Observation(read())]

        self._meter.create_observable_counter(name, callbacks=[collect], unit=unit)

    # --- requests ------------------------------------------------------------------------

    def _start(self, path: str, request: Any) -> tuple[Any, dict[str, Any], _Attempts, Any]:
        service, method = _rpc_names(path)
        attributes: dict[str, Any] = {
            "rpc.system": "grpc",
            "rpc.service": service,
            "rpc.method": method,
        }
        kind = SpanKind.INTERNAL if self._grpc_instrumented() else SpanKind.CLIENT
        span = self.tracer.start_span(f"{service}/{method}", kind=kind, attributes=attributes)
        if self.record_keys and method in _KEYED:
            span.set_attribute("etcd.key", request.key.decode("utf-8", "backslashreplace"))
        attempts = _Attempts()
        return span, attributes, attempts, _CURRENT.set(attempts)

    def _end(
        self,
        span: Any,
        attributes: dict[str, Any],
        attempts: _Attempts,
        started: float,
        response: Any = None,
        error: BaseException | None = None,
    ) -> None:
        elapsed_ms = (time.perf_counter() - started) * 1000
        retries = max(attempts.count - 1, 0)
        if attempts.endpoint:
            host, _, port = attempts.endpoint.rpartition(":")
            span.set_attribute("server.address", host)
            if port.isdigit():
                span.set_attribute("server.port", int(port))
        span.set_attribute("etcd.retries", retries)
        if error is not None:
            attributes = {**attributes, "error.type": type(error).__name__}
            span.set_attribute("error.type", type(error).__name__)
            span.set_status(Status(StatusCode.ERROR, str(error)))
        elif response is not None and response.HasField("header"):
            span.set_attribute("etcd.revision", response.header.revision)
        span.end()
        self.duration.record(elapsed_ms, attributes)
        if retries:
            self.retries.add(retries, attributes)
        if attempts.failovers:
            self.failovers.add(attempts.failovers, attributes)

    @contextlib.contextmanager
    def _request(self, path: str, request: Any) -> Iterator[_Outcome]:
        """The span and the measures of one request, around the block that sends it."""
        span, attributes, attempts, token = self._start(path, request)
        started = time.perf_counter()
        outcome = _Outcome()
        try:
            with trace.use_span(span, end_on_exit=False):
                yield outcome
        except BaseException as error:
            self._end(span, attributes, attempts, started, error=error)
            raise
        finally:
            _CURRENT.reset(token)
        self._end(span, attributes, attempts, started, response=outcome.response)

    def sync_call(self, path: str, request: Any, call: Callable[[], T]) -> T:
        """Run `call()` (one request, retries included) inside its span and measure it."""
        with self._request(path, request) as outcome:
            outcome.response = response = call()
        return response

    async def async_call(self, path: str, request: Any, call: Callable[[], Awaitable[T]]) -> T:
        """The asyncio twin of `sync_call`."""
        with self._request(path, request) as outcome:
            outcome.response = response = await call()
        return response

    # --- the channels' attempt interceptors ----------------------------------------------

    def interceptor(self, address: str) -> grpc.UnaryUnaryClientInterceptor:
        """The interceptor that notes each attempt a request makes on `address`'s channel."""
        return _SyncAttempts(address)

    def aio_interceptor(self, address: str) -> grpc.aio.UnaryUnaryClientInterceptor:
        """The grpc.aio twin of `interceptor`."""
        return _AioAttempts(address)

    # --- what the streams and layers report ----------------------------------------------

    def watch_resumed(self, watches: int) -> None:
        """A watch stream was re-opened after a break, carrying `watches` watches."""
        self.watch_resumptions.add(1, {"etcd.watches": watches})

    def watch_response(self, header_revision: int, newest_event_revision: int) -> None:
        """A watch response with events arrived: record how far behind the store it is."""
        self.watch_lag.record(max(header_revision - newest_event_revision, 0))


def _note_attempt(address: str) -> None:
    attempts = _CURRENT.get()
    if attempts is not None:
        attempts.attempt(address)
        trace.get_current_span().add_event("etcd.attempt", {"server.address": address})


class _SyncAttempts(grpc.UnaryUnaryClientInterceptor):
    """Notes the unary attempts of the request in progress (streams pass untouched)."""

    def __init__(self, address: str) -> None:
        self.address = address

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        _note_attempt(self.address)
        return continuation(details, request)


class _AioAttempts(grpc.aio.UnaryUnaryClientInterceptor):
    """The grpc.aio twin of _SyncAttempts."""

    def __init__(self, address: str) -> None:
        self.address = address

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        _note_attempt(self.address)
        return await continuation(details, request)
