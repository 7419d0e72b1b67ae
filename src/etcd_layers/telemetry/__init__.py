"""OpenTelemetry for the clients and the layers: spans for requests, metrics for what they do.

With the `otel` extra (`pip install etcd_layers[otel]`, the OpenTelemetry API) and an
OpenTelemetry SDK configured, each unary request of `Client` and `AsyncClient` is a span and the
clients and layers report metrics (see `etcd_layers.telemetry._otel` for the names). Clients turn
it on by themselves when they are built with an SDK's providers installed globally; `enable()`
does it explicitly, with providers of your own if you like. Without the extra, or with no SDK
configured, nothing is instrumented and the cost is one `is None` test per request.

Keys are not recorded unless asked (`enable(record_keys=True)` or the environment variable
`ETCD_LAYERS_OTEL_RECORD_KEYS=1`); values and credentials never are.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from etcd_layers.telemetry._otel import Instruments

__all__ = ["active", "disable", "enable", "enabled", "observe_counter", "refresh", "reset"]

active: Instruments | None = None
"""The instruments every request and layer reports to, or None: telemetry is off."""

_explicit = False  # enable() or disable() was called: refresh() leaves the choice alone

# Counters read when the SDK collects, not counted on the hot path: name -> (unit, read).
observed: dict[str, tuple[str, Callable[[], int]]] = {}


def observe_counter(name: str, unit: str, read: Callable[[], int]) -> None:
    """Report `read()` (a count that only grows) as the counter `name` whenever metrics are read.

    For counts a layer keeps anyway (the leasing cache's hits, say), so that counting them for
    OpenTelemetry costs nothing per request.
    """
    observed[name] = (unit, read)
    if active is not None:
        active.observe_counter(name, unit, read)


def enable(
    *,
    tracer_provider: object | None = None,
    meter_provider: object | None = None,
    record_keys: bool | None = None,
) -> None:
    """Instrument every client and layer from now on.

    Args:
        tracer_provider: an OpenTelemetry TracerProvider (None: the global one).
        meter_provider: an OpenTelemetry MeterProvider (None: the global one).
        record_keys: put the key of a KV request on its span (None: as
            `ETCD_LAYERS_OTEL_RECORD_KEYS` says; off when unset).

    Raises:
        ImportError: the OpenTelemetry API is not installed (install the `otel` extra).
    """
    global active, _explicit  # noqa: PLW0603 (one module attribute: the hot path's test)
    try:
        from etcd_layers.telemetry._otel import Instruments  # noqa: PLC0415 (an extra)
    except ImportError as err:  # pragma: no cover - the test extras install the API
        raise ImportError(
            "etcd_layers.telemetry needs the OpenTelemetry API: pip install 'etcd_layers[otel]'"
        ) from err
    keys = _keys_from_env() if record_keys is None else bool(record_keys)
    active = Instruments(tracer_provider, meter_provider, record_keys=keys)
    _explicit = True


def disable() -> None:
    """Stop instrumenting: requests and layers report nothing from now on."""
    global active, _explicit
    active, _explicit = None, True


def reset() -> None:
    """Back to the default: off until a client finds an OpenTelemetry SDK configured globally."""
    global active, _explicit
    active, _explicit = None, False


def enabled() -> bool:
    """Whether requests and layers report to OpenTelemetry now."""
    return active is not None


def refresh() -> None:
    """Turn telemetry on if an OpenTelemetry SDK is configured globally (clients call this).

    Does nothing once `enable()` or `disable()` chose, or when it is already on, or when the
    OpenTelemetry API is not installed, or when only the API's no-op providers are installed.
    """
    global active  # noqa: PLW0603 (one module attribute: the hot path's test)
    if _explicit or active is not None:
        return
    try:
        from etcd_layers.telemetry._otel import Instruments, sdk_configured  # noqa: PLC0415
    except ImportError:
        return
    if sdk_configured():
        active = Instruments(None, None, record_keys=_keys_from_env())


def _keys_from_env() -> bool:
    value = os.environ.get("ETCD_LAYERS_OTEL_RECORD_KEYS", "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise ValueError(
        f"ETCD_LAYERS_OTEL_RECORD_KEYS must be 1/true/yes/on or 0/false/no/off, not {value!r}"
    )
