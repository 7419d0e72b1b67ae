"""The asyncio stream usage of API.md (watch, keep-alive, snapshot), checked by mypy, never run."""

from __future__ import annotations

from etcd_layers import AsyncClient, EventType
from etcd_layers.base import (
    AsyncKeepAlive,
    AsyncLease,
    AsyncWatch,
    AsyncWatcher,
    KeepAliveStats,
)
from etcd_layers.base.admin_responses import SnapshotResponse
from etcd_layers.base.watch_actions import WatchStats


async def watch_usage(cli: AsyncClient) -> None:
    watcher: AsyncWatcher = cli
    async with cli.watch("k", prefix=True, prev_kv=True, created_notify=True) as w:
        async for response in w:
            for event in response.events:
                assert event.type in (EventType.PUT, EventType.DELETE)
            break
        assert (await w.next(timeout=1.0)).header.revision > 0
    await w.cancel()
    awaited: AsyncWatch = await watcher.watch("k", start_revision=3)
    await awaited.cancel()
    await cli.request_progress()
    stats: WatchStats = cli.watch_stats()
    assert stats.streams >= 0


async def keep_alive_usage(cli: AsyncClient) -> None:
    leases: AsyncLease = cli
    lease = await cli.grant(10)
    ka: AsyncKeepAlive = await leases.keep_alive(lease.id)
    async for renewal in ka:
        assert renewal.ttl > 0
    assert (await ka.next(timeout=1.0)).id == lease.id
    await ka.cancel()
    async with await cli.keep_alive(lease.id, timeout=2.0):
        pass
    stats: KeepAliveStats = cli.keep_alive_stats()
    assert stats.leases >= 0


async def snapshot_usage(cli: AsyncClient) -> None:
    saved: SnapshotResponse = await cli.snapshot("backup.db", timeout=60)
    assert len(saved.sha256) == 32
