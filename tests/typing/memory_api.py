"""Usage of MemoryEtcd from API.md and the README, checked by mypy and never executed."""

from __future__ import annotations

from etcd_layers import AsyncClient, Client
from etcd_layers.testing import ManualClock, MemoryEtcd


def memory_usage() -> None:
    clock = ManualClock()
    with MemoryEtcd(clock=clock, min_lease_ttl=2) as etcd:
        cli: Client = etcd.client()
        acli: AsyncClient = etcd.async_client()
        clock.advance(10.0)
        revision: int = etcd.revision
        endpoint: str = etcd.serve()
        del cli, acli, revision, endpoint
    etcd.close()
    real_time = MemoryEtcd()
    real_time.close()
