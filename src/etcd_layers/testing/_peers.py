"""Naming the member behind a peer connection, and which peer connections a partition cuts."""

from __future__ import annotations

import contextlib
import os
import socket
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

from etcd_layers.testing._faultproxy import RequestHead


class Partitions:
    """The pairs of members whose peer traffic is cut, and the members whose clients are.

    Members are named by their names. Not thread-safe: the cluster's owner changes it.
    """

    __slots__ = ("_cut", "_isolated_clients")

    def __init__(self) -> None:
        self._cut: set[frozenset[str]] = set()
        self._isolated_clients: set[str] = set()

    def cut(self, member: str, peers: Iterable[str]) -> None:
        """Cut `member` off from each of `peers` (itself excepted), both ways."""
        for peer in peers:
            if peer != member:
                self._cut.add(frozenset((member, peer)))

    def is_cut(self, member: str, peer: str) -> bool:
        """Whether peer traffic between `member` and `peer` is cut."""
        return frozenset((member, peer)) in self._cut

    def isolate_clients(self, member: str) -> None:
        """Note that `member`'s client proxy is black-holed."""
        self._isolated_clients.add(member)

    def heal(self) -> set[str]:
        """Undo every cut; return the members whose client proxies must be opened again."""
        isolated = set(self._isolated_clients)
        self._cut.clear()
        self._isolated_clients.clear()
        return isolated

    def forget(self, member: str) -> None:
        """Drop every cut that involves `member` (it left the cluster)."""
        self._cut = {pair for pair in self._cut if member not in pair}
        self._isolated_clients.discard(member)


def sender_url(head: RequestHead) -> str | None:
    """Return the peer URL a rafthttp request names its sender by (None: it names none)."""
    urls = head.headers.get("x-peerurls")
    if not urls:
        return None
    return urls.split(",")[0].strip().rstrip("/")


def pid_owning(
    client_address: tuple[str, int], proxy_port: int, candidates: Mapping[int, object]
) -> int | None:
    """Return which of `candidates` owns the socket `client_address` -> 127.0.0.1:`proxy_port`.

    Linux only (through /proc); None elsewhere or when no candidate owns it.
    """
    if not sys.platform.startswith("linux") or not candidates:
        return None
    host, port = client_address
    try:
        packed = socket.inet_aton(host)
        table = Path("/proc/net/tcp").read_text()
    except OSError:
        return None
    # /proc/net/tcp prints each IPv4 address as a native-endian hex word.
    local = f"{int.from_bytes(packed, sys.byteorder):08X}:{port:04X}"
    remote = f"{int.from_bytes(socket.inet_aton('127.0.0.1'), sys.byteorder):08X}:{proxy_port:04X}"
    inode = next(
        (
            fields[9]
            for fields in (line.split() for line in table.splitlines()[1:])
            if len(fields) > 9 and fields[1] == local and fields[2] == remote
        ),
        None,
    )
    if inode is None:
        return None
    wanted = f"socket:[{inode}]"
    for pid in candidates:
        fd_dir = f"/proc/{pid}/fd"
        with contextlib.suppress(OSError):
            for fd in os.listdir(fd_dir):
                with contextlib.suppress(OSError):
                    if os.readlink(f"{fd_dir}/{fd}") == wanted:
                        return pid
    return None
