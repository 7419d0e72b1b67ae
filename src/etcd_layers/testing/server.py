"""One etcd member process of a test cluster, behind its two fault proxies.

Finding the binaries is `binaries`, the command line `_flags`, launching and reaping
processes `_process`, and the JSON gateway `gateway`; their public names are re-exported
here, where they have always been.
"""

from __future__ import annotations

import functools
import logging
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Final

from etcd_layers.testing import _process as processes
from etcd_layers.testing._faultproxy import FaultProxy, Identify, RequestHead
from etcd_layers.testing._flags import State, member_args
from etcd_layers.testing._process import STOP_TIMEOUT, free_port
from etcd_layers.testing.binaries import (
    EtcdBinaryNotFoundError,
    etcd_version,
    find_etcd_binary,
    find_etcd_tool,
)
from etcd_layers.testing.gateway import GatewayError, b64, health, post_json, unb64
from etcd_layers.testing.tls import TLSFiles

__all__ = [
    "EtcdBinaryNotFoundError",
    "EtcdStartError",
    "GatewayError",
    "Member",
    "b64",
    "etcd_version",
    "find_etcd_binary",
    "find_etcd_tool",
    "member_args",
    "unb64",
]

logger = logging.getLogger("etcd_layers.testing")

_START_TIMEOUT: Final = 30.0
_BIND_ATTEMPTS: Final = 4  # a freed port can be taken by someone else before etcd binds it
_POLL_INTERVAL: Final = 0.05
_PROBE_TIMEOUT: Final = 2.0
_LOG_TAIL_LINES: Final = 40


class EtcdStartError(RuntimeError):
    """An etcd member did not start or did not become healthy in time; the message has its log."""


class Member:
    """One etcd member of a test cluster: a process, its data dir, and two fault proxies.

    Members are made by `EtcdCluster` (at start, or by `EtcdCluster.new_member()`);
    they are not meant to be constructed directly. The proxies outlive the process:
    while a member is stopped, its endpoint still accepts connections and closes
    them at once, as its port stays reserved for the restart.

    Attributes:
        name: The member's `--name`.
        client_proxy: The proxy in front of the client port.
        peer_proxy: The proxy in front of the peer port; it also partitions peers.
        data_dir: The member's `--data-dir`, kept across `stop()`/`start()`.
        log_path: The file the member logs to (appended to across restarts).
    """

    def __init__(
        self,
        name: str,
        *,
        directory: Path,
        binary: str,
        version: tuple[int, int, int],
        token: str,
        tls: TLSFiles | None,
        extra_args: Sequence[str],
        log_level: str,
        identify: Callable[[Member, RequestHead], str | None],
        default_initial_cluster: Callable[[Member], str],
        first_state: State,
    ) -> None:
        self.name = name
        self.data_dir = directory / f"{name}.etcd"
        self.log_path = directory / f"{name}.log"
        self._tls = tls
        self._ssl_context = tls.client_ssl_context() if tls is not None else None
        # The command line, short of what changes from one launch to the next.
        self._command = functools.partial(
            member_args,
            binary=binary,
            version=version,
            name=name,
            data_dir=self.data_dir,
            token=token,
            tls=tls,
            log_level=log_level,
            extra_args=tuple(extra_args),
        )
        self._default_initial_cluster = default_initial_cluster
        self._first_state: State = first_state
        self._client_port = free_port()
        self._peer_port = free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self._log_offset = 0
        self._launch: tuple[str, State] | None = None
        self._bind_failures = 0
        self._had_data = False
        self._member_id: int | None = None
        peer_identify: Identify = functools.partial(identify, self)
        self.client_proxy = FaultProxy(("127.0.0.1", self._client_port), name=f"{name}-client")
        try:
            self.peer_proxy = FaultProxy(
                ("127.0.0.1", self._peer_port), name=f"{name}-peer", identify=peer_identify
            )
        except BaseException:
            self.client_proxy.close()
            raise

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.is_running else "stopped"
        return f"<Member {self.name} {self.endpoint} ({state})>"

    # -- addresses ----------------------------------------------------------------------

    @property
    def scheme(self) -> str:
        """`"https"` for a TLS cluster, else `"http"`."""
        return "https" if self._tls is not None else "http"

    @property
    def endpoint(self) -> str:
        """The proxied client endpoint, `127.0.0.1:port` (what clients should use)."""
        return self.client_proxy.endpoint

    @property
    def direct_endpoint(self) -> str:
        """The member's own client port, bypassing the proxy."""
        return f"127.0.0.1:{self._client_port}"

    @property
    def client_url(self) -> str:
        """The proxied client URL, with scheme (as the member advertises it)."""
        return f"{self.scheme}://{self.endpoint}"

    @property
    def direct_client_url(self) -> str:
        """The direct client URL, with scheme."""
        return f"{self.scheme}://{self.direct_endpoint}"

    @property
    def peer_url(self) -> str:
        """The proxied peer URL (as the member advertises it; use it with `member_add`)."""
        return f"http://{self.peer_proxy.endpoint}"

    @property
    def direct_peer_url(self) -> str:
        """The member's own peer URL, bypassing the proxy."""
        return f"http://127.0.0.1:{self._peer_port}"

    # -- process ------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """The process id while the process has been started and not reaped, else None."""
        return self._process.pid if self._process is not None else None

    @property
    def is_running(self) -> bool:
        """Whether the member's process is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def has_data(self) -> bool:
        """Whether the data dir holds a member (so a start rejoins as `existing`)."""
        return (self.data_dir / "member").is_dir()

    def start(
        self,
        *,
        initial_cluster: str | None = None,
        state: State | None = None,
        wait: bool = True,
        timeout: float = _START_TIMEOUT,
    ) -> None:
        """Start the member's process, keeping its data dir.

        A member that has run before restarts from its data (etcd then ignores the
        initial-cluster flags). A member made by `EtcdCluster.new_member()` joins as
        `existing` with the cluster's member list, which must already name it
        (`member_add(member.peer_url)` first).

        Args:
            initial_cluster: `--initial-cluster`; the default is derived as above.
            state: `--initial-cluster-state`; `"existing"` when the member has data.
            wait: Wait until `/health` is true; with False, only until the ports are bound
                (use False to restart several members of a cluster that lost quorum).
            timeout: Seconds to wait.

        Raises:
            RuntimeError: It is already running.
            EtcdStartError: It exited, or did not get there within `timeout`.
        """
        self.begin(initial_cluster=initial_cluster, state=state)
        if wait:
            self.wait_healthy(timeout)
        else:
            self.wait_bound(timeout)

    def begin(self, *, initial_cluster: str | None = None, state: State | None = None) -> None:
        """Launch the process like `start()`, without waiting for anything.

        `check_process()` then tells whether it still runs (and relaunches it if it
        lost a port race); `is_healthy()` whether it serves.

        Raises:
            RuntimeError: It is already running.
        """
        if self.is_running:
            raise RuntimeError(f"member {self.name} is already running")
        if state is None:
            state = "existing" if self.has_data else self._first_state
        if initial_cluster is None:
            initial_cluster = self._default_initial_cluster(self)
        self._launch = (initial_cluster, state)
        self._bind_failures = 0
        self._had_data = self.has_data
        self._spawn()

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop the process gracefully: SIGTERM, then SIGKILL after `timeout` seconds."""
        process = self._process
        if process is None:
            return
        if not processes.terminate(process, timeout):
            logger.warning("member %s ignored SIGTERM for %gs; killing it", self.name, timeout)
        self.kill()

    def kill(self) -> None:
        """Kill the process at once (SIGKILL), like a crash or a power cut."""
        process = self._process
        if process is None:
            return
        processes.kill(process)
        self._process = None

    def close(self) -> None:
        """Kill the process and close both proxies (the data dir is left to the cluster)."""
        try:
            self.kill()
        finally:
            try:
                self.client_proxy.close()
            finally:
                self.peer_proxy.close()

    # -- health -------------------------------------------------------------------------

    def is_healthy(self, timeout: float = _PROBE_TIMEOUT) -> bool:
        """Whether `GET /health` on the direct client port says `"health": "true"`."""
        return health(self.direct_client_url, timeout=timeout, ssl_context=self._ssl_context)

    def wait_healthy(self, timeout: float = _START_TIMEOUT) -> None:
        """Wait until the member reports itself healthy (it has a leader and serves reads).

        Raises:
            EtcdStartError: Its process exited, or it was not healthy within `timeout`;
                the message has the tail of its log.
        """
        self._wait(timeout, self.is_healthy, "healthy")

    def wait_bound(self, timeout: float = _START_TIMEOUT) -> None:
        """Wait until the process accepts connections on its client and peer ports.

        Raises:
            EtcdStartError: Its process exited, or the ports were not bound in time.
        """
        self._wait(timeout, self._ports_bound, "listening")

    def _wait(self, timeout: float, ready: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.check_process() and ready():
                return
            if time.monotonic() >= deadline:
                raise EtcdStartError(
                    f"etcd member {self.name} was not {what} within {timeout:g}s\n{self.log_tail()}"
                )
            time.sleep(_POLL_INTERVAL)

    def check_process(self) -> bool:
        """Return whether the process runs; relaunch it on fresh ports if it lost a port race.

        Raises:
            EtcdStartError: The process exited for another reason, or lost too many races.
        """
        process = self._process
        if process is None:
            raise EtcdStartError(f"etcd member {self.name} is not running")
        code = process.poll()
        if code is None:
            return True
        if (
            processes.lost_port_race(processes.read_log(self.log_path, self._log_offset))
            and self._launch is not None
            and self._bind_failures < _BIND_ATTEMPTS - 1
        ):
            self._bind_failures += 1
            logger.info("member %s lost a port race; restarting on new ports", self.name)
            self.kill()
            self._client_port = free_port()
            self._peer_port = free_port()
            # Everyone reaches the member through its proxies, so only they learn the new ports.
            self.client_proxy.target = ("127.0.0.1", self._client_port)
            self.peer_proxy.target = ("127.0.0.1", self._peer_port)
            if not self._had_data:
                # A first start must not find half a member from the failed attempt.
                shutil.rmtree(self.data_dir, ignore_errors=True)
            self._spawn()
            return False
        self.kill()
        raise EtcdStartError(
            f"etcd member {self.name} exited with status {code}\n{self.log_tail()}"
        )

    def _ports_bound(self) -> bool:
        return processes.ports_bound((self._client_port, self._peer_port), _PROBE_TIMEOUT)

    def _spawn(self) -> None:
        assert self._launch is not None
        initial_cluster, state = self._launch
        args = self._command(
            client_port=self._client_port,
            advertise_client_port=self.client_proxy.port,
            peer_port=self._peer_port,
            advertise_peer_port=self.peer_proxy.port,
            initial_cluster=initial_cluster,
            state=state,
        )
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self._process = processes.launch(args, self.log_path, self.data_dir.parent)

    # -- logs ---------------------------------------------------------------------------

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """Return the last `lines` lines of the member's log, headed by its path."""
        return processes.log_tail(self.log_path, lines)

    # -- JSON gateway -------------------------------------------------------------------

    def gateway(
        self,
        path: str,
        body: Mapping[str, object] | None = None,
        *,
        timeout: float = 5.0,
        direct: bool = False,
    ) -> dict[str, object]:
        """POST `body` as JSON to etcd's gRPC JSON gateway and return the decoded answer.

        For example `member.gateway("/v3/kv/range", {"key": b64(b"k")})`. Bytes fields
        are base64 in both directions (see `b64`) and 64-bit integers come back as strings.
        This needs no gRPC client, so it works as a reference and in the rig's own tests.

        Args:
            path: For example `/v3/kv/put`, `/v3/maintenance/status`.
            body: The request message as JSON.
            timeout: Seconds for the whole request.
            direct: Bypass the client proxy.

        Raises:
            GatewayError: etcd answered with an error.
            OSError: The member could not be reached.
        """
        base = self.direct_client_url if direct else self.client_url
        return post_json(base, path, body, timeout=timeout, ssl_context=self._ssl_context)

    @property
    def member_id(self) -> int:
        """The member's raft id, asked of the member itself once and then remembered.

        Raises:
            OSError: The member is not reachable (on first use).
            GatewayError: It cannot answer (on first use).
        """
        if self._member_id is None:
            header = self.gateway("/v3/maintenance/status", direct=True)["header"]
            assert isinstance(header, dict)
            self._member_id = int(header["member_id"])
        return self._member_id
