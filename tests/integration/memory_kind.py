"""Where the tests get their MemoryEtcd: one factory, so every suite builds it the same way."""

from __future__ import annotations

from typing import Any

from etcd_layers.testing import ManualClock, MemoryEtcd


def memory_etcd(*, manual_clock: bool = True, **options: Any) -> MemoryEtcd:
    """A new `etcd_layers.testing.MemoryEtcd`, on a `ManualClock` or on real time.

    `options` are MemoryEtcd's other keywords.
    """
    return MemoryEtcd(clock=ManualClock() if manual_clock else None, **options)
