"""The rule of `reject_old_cluster=True`: which member versions a client refuses, as Go's.

Go's clientv3 (`Config.RejectOldCluster`) asks every endpoint for its status once connected and
fails with ErrOldCluster ("etcdclient: old cluster version") if one runs a version older than
3.4; a status that fails, or a version it cannot read, fails the connection too. Both clients
call `refusal` with each endpoint's answer; only the I/O is theirs.
"""

from __future__ import annotations

from typing import Final

from etcd_layers.errors import OldClusterError

__all__ = ["OLDEST_ACCEPTED", "refusal"]

OLDEST_ACCEPTED: Final = (3, 4)


def refusal(endpoint: str, version: str) -> OldClusterError | None:
    """Return the error to raise for a member at `endpoint` running `version`, or None.

    As Go reads it: the major and minor number of "major.minor[.patch...]"; a version with
    fewer than two parts counts as 0.0, so it is refused.
    """
    parts = version.split(".")
    major, minor = 0, 0
    if len(parts) >= 2:
        try:
            major, minor = int(parts[0]), int(parts[1])
        except ValueError:
            return OldClusterError(
                f"etcdclient: cannot read the version {version!r} of the member at {endpoint}"
            )
    if (major, minor) < OLDEST_ACCEPTED:
        oldest = ".".join(map(str, OLDEST_ACCEPTED))
        return OldClusterError(
            f"etcdclient: old cluster version: the member at {endpoint} runs etcd "
            f"{version or '(unknown)'}, older than {oldest}"
        )
    return None
