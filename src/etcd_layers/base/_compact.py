"""The KV call beside do(), compact, written once as a flow for both clients."""

from __future__ import annotations

from etcd_layers.base import _convert, _methods
from etcd_layers.base._flow import Flow, call
from etcd_layers.base._proto import rpc_pb2
from etcd_layers.base.checks import check_bool, check_int
from etcd_layers.base.responses import CompactResponse

__all__ = ["compact"]


def compact(
    revision: int, *, physical: bool = False, timeout: float | None = None
) -> Flow[CompactResponse]:
    """Discard history before `revision` (see KV.compact)."""
    request = rpc_pb2.CompactionRequest(
        revision=check_int(revision, "revision"), physical=check_bool(physical, "physical")
    )
    message = yield from call(_methods.COMPACT, request, idempotent=False)
    return _convert.compact_response(message)
