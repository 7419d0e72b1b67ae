"""The command line and environment of one test member, with only flags its etcd understands."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Final, Literal

from etcd_layers.testing.tls import TLSFiles

HEARTBEAT_INTERVAL_MS: Final = 50
ELECTION_TIMEOUT_MS: Final = 500
SNAPSHOT_COUNT: Final = 10_000

State = Literal["new", "existing"]


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


def child_env() -> dict[str, str]:
    """Return the environment for a member: ours, without the ETCD_* variables."""
    # etcd reads ETCD_* variables as flags and refuses a variable that shadows a flag we pass.
    keep = {"ETCD_UNSUPPORTED_ARCH"}
    return {k: v for k, v in os.environ.items() if not k.startswith("ETCD_") or k in keep}
