"""Member processes: launch them logging to a file, reap them, and kill any left at exit."""

from __future__ import annotations

import atexit
import contextlib
import re
import signal
import socket
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from etcd_layers.testing._flags import child_env

STOP_TIMEOUT: Final = 10.0
_ADDRESS_IN_USE: Final = re.compile(r"address already in use", re.IGNORECASE)

# Every process started here, so that an interpreter exiting without close() leaves none behind.
_live_processes: set[subprocess.Popen[bytes]] = set()
_live_lock = threading.Lock()


def free_port() -> int:
    """Return a port that was free a moment ago (callers retry if it is taken meanwhile)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ports_bound(ports: Sequence[int], timeout: float) -> bool:
    """Whether something accepts connections on every one of `ports` on 127.0.0.1."""
    for port in ports:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=timeout).close()
        except OSError:
            return False
    return True


def launch(args: Sequence[str], log_path: Path, cwd: Path) -> subprocess.Popen[bytes]:
    """Start `args` with its output appended to `log_path`, after a line naming the command."""
    with log_path.open("ab") as log:
        log.write(f"--- starting: {' '.join(args)}\n".encode())
        log.flush()
        # The child keeps its own copy of the log descriptor; ours closes right away.
        process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=child_env(),
            cwd=cwd,
        )
    with _live_lock:
        _live_processes.add(process)
    return process


def terminate(process: subprocess.Popen[bytes], timeout: float) -> bool:
    """Send SIGTERM and wait up to `timeout`; return whether the process exited."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
    return True


def kill(process: subprocess.Popen[bytes]) -> None:
    """Kill the process at once (SIGKILL) and reap it."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(STOP_TIMEOUT)
    with _live_lock:
        _live_processes.discard(process)


def read_log(path: Path, offset: int) -> str:
    """Return the log at `path` from byte `offset` on ("" when it cannot be read)."""
    try:
        with path.open("rb") as log:
            log.seek(offset)
            return log.read().decode("utf-8", "replace")
    except OSError:
        return ""


def log_tail(path: Path, lines: int) -> str:
    """Return the last `lines` lines of the log at `path`, headed by its path."""
    tail = "\n".join(read_log(path, 0).splitlines()[-lines:])
    return f"--- last {lines} lines of {path} ---\n{tail}"


def lost_port_race(log: str) -> bool:
    """Whether a log says the process exited because a port it was given was taken."""
    return _ADDRESS_IN_USE.search(log) is not None


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
            process.wait(STOP_TIMEOUT)
