"""MemoryEtcd: an in-memory etcd 3.5 for tests, a drop-in replacement for a real server.

from etcd_layers.testing import ManualClock, MemoryEtcd

clock = ManualClock()
with MemoryEtcd(clock=clock) as etcd:
    cli = etcd.client()
    lease = cli.grant(5)
    cli.put("k", "v", lease=lease.id)
    clock.advance(5)                 # the lease runs out: "k" is deleted in one revision
    assert cli.get("k").count == 0
"""

from __future__ import annotations

from etcd_layers.testing.memory._clock import ManualClock
from etcd_layers.testing.memory._etcd import MemoryEtcd

__all__ = ["ManualClock", "MemoryEtcd"]
