"""What an endpoint update sends: the Ops of one txn, checked before any I/O (pure)."""

from __future__ import annotations

from collections.abc import Iterable

from etcd_layers.base.checks import check_int
from etcd_layers.base.ops import Op
from etcd_layers.naming._values import Update, UpdateOp, check_key, encode_endpoint

__all__ = ["lease_of", "plan_update"]


def plan_update(target: str, updates: Iterable[Update], lease: object) -> list[Op]:
    """Return the txn's Ops for `updates` (Go's `Manager.Update`), ADDs under `lease`.

    Raises:
        TypeError: an update that is not an Update, or a bad lease.
        ValueError: a key outside `target + "/"`, or a negative lease.
    """
    lease_id = check_int(lease, "lease")
    ops: list[Op] = []
    for update in updates:
        if not isinstance(update, Update):
            raise TypeError(f"updates must be Update values, not {type(update).__name__}")
        key = check_key(target, update.key)
        if update.op == UpdateOp.ADD:
            ops.append(Op.put(key, encode_endpoint(update.endpoint), lease=lease_id))
        else:  # Update checked its op when it was built
            ops.append(Op.delete(key))
    return ops


def lease_of(session: object) -> int:
    """Return the lease id of a session (anything with an int `lease_id`).

    Raises:
        TypeError: `session` has no int `lease_id`.
    """
    lease_id = getattr(session, "lease_id", None)
    if isinstance(lease_id, bool) or not isinstance(lease_id, int):
        raise TypeError(f"session must have an int lease_id, not {type(session).__name__}")
    return check_int(lease_id, "session.lease_id")
