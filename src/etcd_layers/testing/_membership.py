"""What the members of a running test cluster say about it: health, leader and member list."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Final

from etcd_layers.testing.gateway import GatewayError
from etcd_layers.testing.server import EtcdStartError, Member

_POLL_INTERVAL: Final = 0.05
_PROBE_TIMEOUT: Final = 1.0


def wait_healthy(members: Sequence[Member], timeout: float) -> None:
    """Wait until every started member of `members` reports itself healthy.

    Raises:
        EtcdStartError: A member's process exited, or not all were healthy in time; the
            message has the log tails of the members that were not.
    """
    deadline = time.monotonic() + timeout
    while True:
        started = [member for member in members if member.pid is not None]
        alive = [member.check_process() for member in started]  # every one, not all()
        unhealthy = [
            member
            for member, running in zip(started, alive, strict=True)
            if not running or not member.is_healthy(_PROBE_TIMEOUT)
        ]
        if not unhealthy:
            return
        if time.monotonic() >= deadline:
            tails = "\n".join(member.log_tail() for member in unhealthy)
            names = ", ".join(member.name for member in unhealthy)
            raise EtcdStartError(f"etcd members not healthy within {timeout:g}s: {names}\n{tails}")
        time.sleep(_POLL_INTERVAL)


def find_leader(members: Sequence[Member]) -> Member | None:
    """Return the member that the running `members` name as leader, or None if none does."""
    for member in members:
        if not member.is_running:
            continue
        try:
            status = member.gateway("/v3/maintenance/status", direct=True, timeout=2.0)
        except (OSError, ValueError, GatewayError):
            continue
        leader_id = int(str(status.get("leader", "0")))
        for candidate in members:
            if leader_id and candidate.is_running and _member_id_or_none(candidate) == leader_id:
                return candidate
    return None


def _member_id_or_none(member: Member) -> int | None:
    try:
        return member.member_id
    except (OSError, ValueError, KeyError, GatewayError):
        return None


def member_list(members: Sequence[Member]) -> list[Mapping[str, object]]:
    """Return the member list as the first running member that answers tells it.

    Raises:
        RuntimeError: no running member answered.
    """
    last_error: BaseException | None = None
    for ours in members:
        if not ours.is_running:
            continue
        try:
            answer = ours.gateway("/v3/cluster/member/list", direct=True)
        except (OSError, ValueError, GatewayError) as err:
            last_error = err
            continue
        listed = answer.get("members", [])
        if isinstance(listed, list):
            return [entry for entry in listed if isinstance(entry, dict)]
    raise RuntimeError("no running member answered the member list") from last_error


def joining_initial_cluster(member: Member, members: Sequence[Member]) -> str:
    """Return `--initial-cluster` for `member` joining the cluster of `members`.

    A joining member must list exactly the members etcd knows, itself included (etcd
    compares peer URLs), so the cluster is asked rather than our list trusted.

    Raises:
        RuntimeError: `member` is not in the cluster's member list yet, or nobody answered.
    """
    by_url = {ours.peer_url: ours for ours in members}
    entries = []
    found = False
    for listed in member_list(members):
        raw_urls = listed.get("peerURLs")
        urls = [str(url) for url in raw_urls] if isinstance(raw_urls, list) else []
        ours = next((by_url[url] for url in urls if url in by_url), None)
        found = found or ours is member
        name = ours.name if ours is not None else str(listed.get("name") or listed.get("ID"))
        entries += [f"{name}={url}" for url in urls]
    if not found:
        raise RuntimeError(
            f"member {member.name} is not in the cluster's member list: "
            f"member_add([{member.peer_url!r}]) before starting it"
        )
    return ",".join(entries)
