"""Where the tests get their MemoryEtcd: one factory, so every suite builds it the same way."""

from __future__ import annotations

import importlib
from typing import Any

import pytest


def memory_etcd(*, manual_clock: bool = True, **options: Any) -> Any:
    """A new `etcd_layers.testing.MemoryEtcd`, on a `ManualClock` or on real time.

    `options` are MemoryEtcd's other keywords.
    """
    testing = importlib.import_module("etcd_layers.testing")
    if not hasattr(testing, "MemoryEtcd"):
        pytest.fail("etcd_layers.testing.MemoryEtcd is not built yet (issue 15)", pytrace=False)
    return testing.MemoryEtcd(clock=testing.ManualClock() if manual_clock else None, **options)
