"""An N-member etcd cluster on loopback for tests, with every member behind fault proxies."""

from __future__ import annotations

import atexit
import contextlib
import itertools
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Final

from etcd_layers._compat import Self
from etcd_layers.testing import _membership as membership
from etcd_layers.testing._faultproxy import RequestHead
from etcd_layers.testing._flags import State
from etcd_layers.testing._layout import ClientOptions, ClusterLayout
from etcd_layers.testing._peers import Partitions, pid_owning, sender_url
from etcd_layers.testing.binaries import etcd_version, find_etcd_binary
from etcd_layers.testing.server import Member
from etcd_layers.testing.tls import generate_tls_files

__all__ = ["ClientOptions", "EtcdCluster", "EtcdServer"]

logger = logging.getLogger("etcd_layers.testing")

MAX_SIZE: Final = 5
_START_TIMEOUT: Final = 30.0


# Strong references: a cluster a test forgot to close stays alive until exit closes it.
_open_clusters: set[EtcdCluster] = set()


@atexit.register
def _close_open_clusters() -> None:
    """Close clusters a test run left open, so no process or temp dir outlives it."""
    for cluster in list(_open_clusters):
        try:
            cluster.close()
        except (OSError, RuntimeError):
            logger.exception("closing %r at exit failed", cluster)


class EtcdCluster(ClusterLayout):
    """A real etcd cluster of `size` members on 127.0.0.1 for tests.

    Every member listens on free loopback ports and advertises its proxies'
    ports instead (`Member.client_proxy`, `Member.peer_proxy`), so clients,
    member lists and peer traffic all pass through `FaultProxy`s: tests can drop
    connections, black-hole a member, or partition peers (`partition`,
    `isolate`, `heal`). Members use fast raft timings (50 ms heartbeat, 500 ms
    election), `--unsafe-no-fsync` on etcd 3.5+, log to `<base_dir>/<name>.log`,
    and keep their data dir across `Member.stop()` / `Member.start()`. Everything
    lives in a fresh temp dir that `close()` deletes.

    Args:
        size: Members to start, 1 to 5.
        tls: Serve clients over TLS with client-certificate auth, using certificates made
            at start (see `tls`). Peer traffic stays plain HTTP so partitions can see it.
        extra_args: More etcd flags for every member, for example
            `["--auth-token=simple", "--quota-backend-bytes=16777216"]`; they come last, so
            they override the rig's own flags.
        name_prefix: Members are named `<name_prefix>0`, `<name_prefix>1`, ...
        base_dir: Where to make the temp dir (default: the system's temp dir).
        binary: The etcd binary (default: `find_etcd_binary()`).
        log_level: etcd's `--log-level`.
        start_timeout: Seconds `start()` waits for every member to be healthy.

    Raises:
        TypeError: `size` is not an int, or `extra_args` is a single string.
        ValueError: `size` is outside 1..5.
    """

    def __init__(
        self,
        size: int = 1,
        *,
        tls: bool = False,
        extra_args: Sequence[str] = (),
        name_prefix: str = "etcd",
        base_dir: str | os.PathLike[str] | None = None,
        binary: str | None = None,
        log_level: str = "warn",
        start_timeout: float = _START_TIMEOUT,
    ) -> None:
        super().__init__()
        given: object = size  # checked at run time too: callers may not use mypy
        if isinstance(given, bool) or not isinstance(given, int):
            raise TypeError(f"size must be int, not {type(given).__name__}")
        if not 1 <= size <= MAX_SIZE:
            raise ValueError(f"size must be between 1 and {MAX_SIZE}, not {size}")
        if isinstance(extra_args, str | bytes):
            raise TypeError("extra_args must be a sequence of flags, not a single string")
        self._size = size
        self._use_tls = tls
        self._extra_args = tuple(extra_args)
        self._name_prefix = name_prefix
        self._parent_dir = base_dir
        self._binary = binary
        self._log_level = log_level
        self._start_timeout = start_timeout
        self._names = itertools.count()
        self._bootstrap_names: frozenset[str] = frozenset()
        self._bootstrap = ""
        self._token = f"etcd-layers-{uuid.uuid4().hex[:12]}"  # keeps clusters from joining up
        self._partitions = Partitions()
        self._logged_peer_head = False
        self._started = False
        self._closed = False

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> Self:
        """Start every member and wait until all are healthy.

        Returns:
            The cluster itself, so `cluster = EtcdCluster(3).start()` reads well.

        Raises:
            RuntimeError: The cluster was started before.
            EtcdBinaryNotFoundError: No etcd binary was found.
            EtcdStartError: A member exited or the cluster was not healthy in time; the
                message has the members' log tails. Everything started is cleaned up.
        """
        if self._started:
            raise RuntimeError("an EtcdCluster can be started only once")
        self._started = True
        binary = self._binary if self._binary is not None else find_etcd_binary()
        self._binary = binary
        self._version = etcd_version(binary)
        if self._parent_dir is not None:
            os.makedirs(self._parent_dir, exist_ok=True)
        self._base_dir = Path(tempfile.mkdtemp(prefix="etcd_layers-", dir=self._parent_dir))
        _open_clusters.add(self)
        try:
            if self._use_tls:
                tls_dir = self._base_dir / "tls"
                tls_dir.mkdir()
                self._tls = generate_tls_files(tls_dir)
            for _ in range(self._size):
                self._members.append(self._make_member("new"))
            self._bootstrap_names = frozenset(member.name for member in self._members)
            self._bootstrap = self.initial_cluster()
            for member in self._members:
                member.begin(initial_cluster=self._bootstrap, state="new")
            self.wait_healthy(self._start_timeout)
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Kill every member, close every proxy and delete the temp dir (idempotent).

        Members are killed rather than stopped: their data is deleted right after,
        so a graceful shutdown would only cost time.
        """
        if self._closed:
            return
        self._closed = True
        _open_clusters.discard(self)
        for member in self._members:
            member.kill()  # all at once first, so no member waits for a dying peer
        with contextlib.ExitStack() as stack:  # runs every step even if one fails
            if self._base_dir is not None:
                stack.callback(shutil.rmtree, self._base_dir, ignore_errors=True)
            for member in self._members:
                stack.callback(member.close)

    def __enter__(self) -> Self:
        if not self._started:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "started" if self._started else "not started"
        names = ", ".join(member.name for member in self._members)
        return f"<{type(self).__name__} [{names}] {state}>"

    def wait_healthy(self, timeout: float = _START_TIMEOUT) -> None:
        """Wait until every started member reports itself healthy.

        Members stopped on purpose (`stop()`/`kill()` and not started again) are skipped.

        Raises:
            EtcdStartError: A member's process exited, or not all were healthy in time;
                the message has the log tails of the members that were not.
        """
        membership.wait_healthy(self._members, timeout)

    def leader(self) -> Member | None:
        """Return the member that the running members name as leader, or None if none does."""
        return membership.find_leader(self._members)

    # -- partitions -----------------------------------------------------------------------

    def partition(self, member: Member, peers: Iterable[Member]) -> None:
        """Cut peer traffic between `member` and each of `peers`, both ways.

        Each member's peer proxy identifies the sender of every incoming
        connection (rafthttp names it in `X-PeerURLs`) and black-holes those
        from cut-off peers; open connections between newly cut pairs are closed
        so they reconnect and meet the partition. Client traffic is untouched.
        Partitions add up until `heal()`.
        """
        self._check_members(member, *peers)
        self._partitions.cut(member.name, [peer.name for peer in peers if peer is not member])
        self._apply_partitions()

    def isolate(self, member: Member, *, clients: bool = False) -> None:
        """Partition `member` from all other members; with `clients`, black-hole its clients too."""
        self.partition(member, [peer for peer in self._members if peer is not member])
        if clients:
            member.client_proxy.blackhole()
            self._partitions.isolate_clients(member.name)

    def heal(self) -> None:
        """Undo every `partition` and `isolate` (including black-holed client proxies)."""
        isolated = self._partitions.heal()
        self._apply_partitions()
        for member in self._members:
            if member.name in isolated:
                member.client_proxy.unblackhole()

    def _apply_partitions(self) -> None:
        for member in self._members:
            member.peer_proxy.set_blocked(
                peer.peer_url
                for peer in self._members
                if self._partitions.is_cut(member.name, peer.name)
            )

    def _check_members(self, *members: Member) -> None:
        for member in members:
            if not any(member is ours for ours in self._members):
                raise ValueError(f"{member!r} is not a member of this cluster")

    def _identify_peer(self, receiver: Member, head: RequestHead) -> str | None:
        """Name the member that opened a connection to `receiver`'s peer proxy by its peer URL."""
        url = sender_url(head)
        if url is not None:
            if not self._logged_peer_head:
                self._logged_peer_head = True
                logger.info(
                    "first peer request to %s: %s %s", receiver.name, head.request_line,
                    dict(head.headers),
                )  # fmt: skip
            return url
        # Requests outside rafthttp (version probes, lease renewals forwarded to the leader)
        # carry no sender headers: find the process that owns the other end of the socket.
        by_pid = {member.pid: member for member in tuple(self._members) if member.pid is not None}
        pid = pid_owning(head.client_address, receiver.peer_proxy.port, by_pid)
        return by_pid[pid].peer_url if pid is not None else None

    # -- members joining later ------------------------------------------------------------

    def new_member(self, name: str | None = None) -> Member:
        """Make a member that is not started yet, with its own ports and proxies.

        It is added to `members` at once (so `close()` cleans it up). To grow the
        cluster, `member_add([member.peer_url])` through any client, then
        `member.start()`: it joins as `existing` with the cluster's member list.
        etcd refuses to add a voting member ("unhealthy cluster") until every
        member has been connected to the leader for 5 seconds, so right after a
        (re)start of a multi-member cluster, wait or retry; a one-member
        cluster takes a second member at once.

        Raises:
            RuntimeError: The cluster is not running.
            ValueError: A member of that name exists.
        """
        if not self._started or self._closed:
            raise RuntimeError("the cluster is not running")
        if name is not None and any(member.name == name for member in self._members):
            raise ValueError(f"a member named {name!r} exists already")
        member = self._make_member("existing", name)
        self._members.append(member)
        return member

    def remove(self, member: Member) -> None:
        """Kill `member`, close its proxies, delete its data and drop it from `members`.

        This is the local half of `member_remove`, which the caller sends first.
        """
        self._check_members(member)
        self._members = [ours for ours in self._members if ours is not member]
        self._partitions.forget(member.name)
        try:
            member.close()
        finally:
            shutil.rmtree(member.data_dir, ignore_errors=True)
            self._apply_partitions()

    def initial_cluster(self, members: Iterable[Member] | None = None) -> str:
        """Return `--initial-cluster` (`name=peer_url,...`) for `members`, all by default."""
        chosen = self._members if members is None else list(members)
        return ",".join(f"{member.name}={member.peer_url}" for member in chosen)

    def _default_initial_cluster(self, member: Member) -> str:
        if member.name in self._bootstrap_names:
            return self._bootstrap
        return membership.joining_initial_cluster(member, self._members)

    def _make_member(self, first_state: State, name: str | None = None) -> Member:
        assert self._base_dir is not None
        assert self._binary is not None
        assert self._version is not None
        if name is None:
            taken = {member.name for member in self._members}
            name = next(
                candidate
                for candidate in (f"{self._name_prefix}{n}" for n in self._names)
                if candidate not in taken
            )
        return Member(
            name,
            directory=self._base_dir,
            binary=self._binary,
            version=self._version,
            token=self._token,
            tls=self._tls,
            extra_args=self._extra_args,
            log_level=self._log_level,
            identify=self._identify_peer,
            default_initial_cluster=self._default_initial_cluster,
            first_state=first_state,
        )


class EtcdServer(EtcdCluster):
    """A single-member `EtcdCluster`, with shortcuts for its one member.

    Args:
        tls: As for `EtcdCluster`.
        extra_args: As for `EtcdCluster`.
        name_prefix: As for `EtcdCluster`.
        base_dir: As for `EtcdCluster`.
        binary: As for `EtcdCluster`.
        log_level: As for `EtcdCluster`.
        start_timeout: As for `EtcdCluster`.
    """

    def __init__(
        self,
        *,
        tls: bool = False,
        extra_args: Sequence[str] = (),
        name_prefix: str = "etcd",
        base_dir: str | os.PathLike[str] | None = None,
        binary: str | None = None,
        log_level: str = "warn",
        start_timeout: float = _START_TIMEOUT,
    ) -> None:
        super().__init__(
            1,
            tls=tls,
            extra_args=extra_args,
            name_prefix=name_prefix,
            base_dir=base_dir,
            binary=binary,
            log_level=log_level,
            start_timeout=start_timeout,
        )

    @property
    def member(self) -> Member:
        """The one member.

        Raises:
            RuntimeError: The server was never started.
        """
        if not self._members:
            raise RuntimeError("the server has not been started")
        return self._members[0]

    @property
    def endpoint(self) -> str:
        """The member's proxied client endpoint, `127.0.0.1:port`."""
        return self.member.endpoint
