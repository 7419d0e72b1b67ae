"""The values the watch multiplexer hands its shells: actions to carry out, stream ends, stats."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeAlias

from etcd_layers.base._proto import rpc_pb2
from etcd_layers.base._watch_state import K
from etcd_layers.base.responses import WatchResponse
from etcd_layers.errors import EtcdError


@dataclass(frozen=True, slots=True)
class WatchStats:
    """Counters of one client's watch stream, for tests and monitoring."""

    streams: int = 0  # streams opened
    fragments: int = 0  # fragment messages received (each joined into one response)
    pauses: int = 0  # times a watch was paused because its consumer fell behind
    probes: int = 0  # progress requests sent to probe a silent stream
    endpoint: str = ""  # the endpoint of the latest stream


@dataclass(slots=True)
class Send:
    """Send `request` on the current stream."""

    request: rpc_pb2.WatchRequest


@dataclass(slots=True)
class Deliver(Generic[K]):
    """Queue `response` for the consumer of `watch`."""

    watch: K
    response: WatchResponse


@dataclass(slots=True)
class Confirm(Generic[K]):
    """The server confirmed `watch` for the first time: `watch()` may return."""

    watch: K


@dataclass(slots=True)
class End(Generic[K]):
    """`watch` is over; `error`, if any, is raised to its consumer after what it holds."""

    watch: K
    error: EtcdError | None


@dataclass(slots=True)
class Abort:
    """End the current stream on purpose, for `reason`."""

    reason: str


Action: TypeAlias = Send | Deliver[K] | Confirm[K] | End[K] | Abort


@dataclass(frozen=True, slots=True)
class StreamEnd:
    """How a stream ended: the reason this client gave (None: it failed) and if it answered.

    `carried` counts the watches it carried that go on: the next stream creates them again
    from their resume points.
    """

    reason: str | None
    answered: bool
    carried: int = 0
