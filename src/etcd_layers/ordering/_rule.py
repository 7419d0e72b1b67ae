"""The ordering rule for a stale response: a request that may have written is never sent again."""

from __future__ import annotations

from etcd_layers.base.ops import Op, op_writes
from etcd_layers.base.responses import Response
from etcd_layers.errors import OrderViolationError


def stale_write_error(op: Op, response: Response, seen: int) -> OrderViolationError | None:
    """Return the error that fails `op`, whose `response` is older than `seen`, if `op` may write.

    None means `op` only reads, so the policy (`on_violation`) decides whether to send it again.
    Go's ordering replays a txn whose branch wrote (etcd issue 22086); a request that may have
    written is never sent twice here, and the policy is not asked.
    """
    if not op_writes(op):
        return None
    kind = type(op).__name__.removesuffix("Op").lower()
    return OrderViolationError(
        f"{kind} response has revision {response.header.revision}, older than revision "
        f"{seen} already seen; a request that may write is not sent again",
        response,
        seen,
    )
