"""Real etcd servers and clusters for tests, each member behind a fault-injecting TCP proxy.

Start a cluster, reach it through its proxies, and break it on purpose::

    from etcd_layers import Client
    from etcd_layers.testing import EtcdCluster, wait_until

    with EtcdCluster(3) as cluster:
        with Client(endpoints=cluster.endpoints, **cluster.client_options()) as cli:
            cli.put("k", "v")
            first, second, third = cluster.members
            first.client_proxy.drop_connections()  # every open connection closes now
            cluster.isolate(third)                  # peer traffic to and from it is cut
            wait_until(lambda: not third.is_healthy(), timeout=10)
            cluster.heal()
            second.stop()                           # SIGTERM; its data dir is kept
            second.start()                          # rejoins and catches up

`EtcdServer()` is the one-member case. The pytest plugin (`etcd_layers.testing.plugin`,
registered as an entry point) provides the fixtures `etcd_server`, `etcd_cluster`,
`etcd_cluster_factory`, `etcd_client` and `etcd_key_prefix`. `requires_etcd(3, 5, reason=...)`
skips a test of a server feature that an older etcd (such as `$ETCD_BIN` set to 3.4) lacks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from etcd_layers.testing._faultproxy import FaultProxy, RequestHead
from etcd_layers.testing._versions import (
    etcd_binary_version,
    requires_etcd,
    requires_etcd_before,
)
from etcd_layers.testing._wait import wait_until
from etcd_layers.testing.cluster import ClientOptions, EtcdCluster, EtcdServer
from etcd_layers.testing.server import (
    EtcdBinaryNotFoundError,
    EtcdStartError,
    GatewayError,
    Member,
    b64,
    etcd_version,
    find_etcd_binary,
    find_etcd_tool,
    unb64,
)
from etcd_layers.testing.tls import TLSFiles, generate_tls_files

if TYPE_CHECKING:
    from etcd_layers.testing.memory import ManualClock, MemoryEtcd

__all__ = [
    "ClientOptions",
    "EtcdBinaryNotFoundError",
    "EtcdCluster",
    "EtcdServer",
    "EtcdStartError",
    "FaultProxy",
    "GatewayError",
    "ManualClock",
    "Member",
    "MemoryEtcd",
    "RequestHead",
    "TLSFiles",
    "b64",
    "etcd_binary_version",
    "etcd_version",
    "find_etcd_binary",
    "find_etcd_tool",
    "generate_tls_files",
    "requires_etcd",
    "requires_etcd_before",
    "unb64",
    "wait_until",
]


def __getattr__(name: str) -> object:
    # MemoryEtcd loads on first use: importing the testing rig (and so its pytest plugin) must
    # not import gRPC for suites that never use it.
    if name in ("ManualClock", "MemoryEtcd"):
        from etcd_layers.testing import memory  # noqa: PLC0415

        return getattr(memory, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
