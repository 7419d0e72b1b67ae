"""AsyncClient watches under faults on a real 3-member cluster: every event exactly once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import pytest

from etcd_layers import AsyncClient, errors
from etcd_layers.base import AsyncWatch
from etcd_layers.testing import EtcdCluster, Member, wait_until

TIMEOUT = 10.0
WRITER_LIMIT = 5000  # puts at most, whatever happens
RECOVERY = 20.0  # seconds a watch may take to deliver everything after a fault

pytestmark = pytest.mark.asyncio


@pytest.fixture(autouse=True)
def _restore(etcd_cluster: EtcdCluster) -> Iterator[None]:
    """Undo every fault a test left, so the module's cluster starts each test whole."""
    yield
    etcd_cluster.heal()
    for member in etcd_cluster.members:
        member.client_proxy.unblackhole()
        if not member.is_running:
            member.start()
    etcd_cluster.wait_healthy()


async def wait_for(condition: Callable[[], bool], what: str, timeout: float = RECOVERY) -> None:
    """Wait until `condition()` is true, polling the event loop."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


class Writer:
    """Puts unique keys under a prefix from a task, straight to the members' ports.

    It bypasses the fault proxies, so faults hit only the watch under test. A put that fails
    may still have been applied: such keys are looked up once the writer stops.
    """

    def __init__(self, members: list[Member], prefix: bytes) -> None:
        self._client = AsyncClient(endpoints=[m.direct_endpoint for m in members], timeout=2.0)
        self._prefix = prefix
        self.applied: list[tuple[bytes, int]] = []
        self._uncertain: list[bytes] = []
        self._task: asyncio.Task[None] | None = None
        self._stop = False  # a flag, not task.cancel(): a canceled put may still be applied

    async def __aenter__(self) -> Writer:
        await self._client.connect()
        self._task = asyncio.ensure_future(self._run())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._stop = True
        if self._task is not None:
            await asyncio.wait_for(self._task, TIMEOUT)
        await self._client.close()

    async def wait_for_more(self, count: int) -> None:
        """Wait until `count` more puts than now were confirmed."""
        target = len(self.applied) + count
        await wait_for(lambda: len(self.applied) >= target, "the writer", TIMEOUT)

    async def _run(self) -> None:
        for index in range(WRITER_LIMIT):
            if self._stop:
                return
            key = self._prefix + b"%06d" % index
            try:
                self.applied.append((key, (await self._client.put(key, b"v")).header.revision))
            except errors.EtcdError:
                self._uncertain.append(key)

    async def stop(self) -> list[tuple[bytes, int]]:
        """Stop writing; return every applied (key, mod_revision), in revision order."""
        assert self._task is not None
        self._stop = True
        await asyncio.wait_for(self._task, TIMEOUT)
        applied = list(self.applied)
        for key in self._uncertain:
            kvs = (await self._client.get(key, timeout=TIMEOUT)).kvs
            applied += [(kv.key, kv.mod_revision) for kv in kvs]
        return sorted(applied, key=lambda item: item[1])


class Collector:
    """Reads a watch in a task, recording (key, mod_revision) of every event."""

    def __init__(self, watch: AsyncWatch) -> None:
        self.watch = watch
        self.events: list[tuple[bytes, int]] = []
        self.error: errors.EtcdError | None = None
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        try:
            async for response in self.watch:
                self.events += [(e.kv.key, e.kv.mod_revision) for e in response.events]
        except errors.EtcdError as err:
            self.error = err

    async def wait_for(self, count: int) -> None:
        """Wait until at least `count` events arrived."""
        await wait_for(lambda: len(self.events) >= count, f"{count} events")

    async def finish(self, expected: list[tuple[bytes, int]]) -> list[tuple[bytes, int]]:
        """Wait until every expected event arrived, then stop; return what was received."""
        await wait_for(
            lambda: len(self.events) >= len(expected) or self.error is not None,
            f"{len(expected)} events",
        )
        await self.watch.cancel()
        await asyncio.wait_for(self._task, TIMEOUT)
        assert self.error is None
        return self.events


def follower_of(cluster: EtcdCluster) -> Member:
    """A member that is not the leader."""
    leader = wait_until(cluster.leader, timeout=TIMEOUT)
    return next(member for member in cluster.members if member is not leader)


async def test_async_watch_survives_dropped_connections_exactly_once(
    etcd_cluster: EtcdCluster, etcd_key_prefix: bytes
) -> None:
    """Dropping every client connection three times mid-stream loses and repeats nothing."""
    async with AsyncClient(endpoints=etcd_cluster.endpoints) as cli:
        collector = Collector(await cli.watch(etcd_key_prefix, prefix=True))
        async with Writer(etcd_cluster.members, etcd_key_prefix) as writer:
            for _ in range(3):
                await writer.wait_for_more(30)
                await collector.wait_for(len(writer.applied))
                for member in etcd_cluster.members:
                    member.client_proxy.drop_connections()
            await writer.wait_for_more(30)
            expected = await writer.stop()
            assert await collector.finish(expected) == expected
        assert cli.watch_stats().streams >= 4


async def test_async_watch_resumes_after_its_member_restarts(
    etcd_cluster: EtcdCluster, etcd_key_prefix: bytes
) -> None:
    """A watch on a single member resumes after the member is killed and restarted."""
    member = follower_of(etcd_cluster)
    others = [m for m in etcd_cluster.members if m is not member]
    async with AsyncClient(endpoints=[member.endpoint]) as cli:
        collector = Collector(await cli.watch(etcd_key_prefix, prefix=True))
        async with Writer(others, etcd_key_prefix) as writer:
            await writer.wait_for_more(30)
            await asyncio.to_thread(member.kill)
            await writer.wait_for_more(50)  # written while the watch has no server
            await asyncio.to_thread(member.start)
            await writer.wait_for_more(30)
            expected = await writer.stop()
            assert await collector.finish(expected) == expected
        assert cli.watch_stats().streams >= 2


async def test_async_watch_fails_over_when_its_member_dies(
    etcd_cluster: EtcdCluster, etcd_key_prefix: bytes
) -> None:
    """Killing the member a watch streams from moves it to another endpoint, losing nothing."""
    async with AsyncClient(endpoints=etcd_cluster.endpoints) as cli:
        collector = Collector(await cli.watch(etcd_key_prefix, prefix=True))
        async with Writer(etcd_cluster.members, etcd_key_prefix) as writer:
            await writer.wait_for_more(30)
            await collector.wait_for(1)
            serving = next(
                m for m in etcd_cluster.members if m.endpoint == cli.watch_stats().endpoint
            )
            await asyncio.to_thread(serving.kill)
            await writer.wait_for_more(30)
            expected = await writer.stop()
            assert await collector.finish(expected) == expected
        assert cli.watch_stats().endpoint != serving.endpoint


async def test_async_watch_moves_off_a_black_holed_member(
    etcd_cluster: EtcdCluster, etcd_key_prefix: bytes
) -> None:
    """The liveness probe notices a black-holed member and the watch resumes elsewhere."""
    async with AsyncClient(endpoints=etcd_cluster.endpoints) as cli:
        collector = Collector(await cli.watch(etcd_key_prefix, prefix=True))
        async with Writer(etcd_cluster.members, etcd_key_prefix) as writer:
            await writer.wait_for_more(20)
            await collector.wait_for(1)
            serving = next(
                m for m in etcd_cluster.members if m.endpoint == cli.watch_stats().endpoint
            )
            serving.client_proxy.blackhole()
            await writer.wait_for_more(30)
            expected = await writer.stop()
            assert await collector.finish(expected) == expected
        assert cli.watch_stats().probes >= 1
        assert cli.watch_stats().endpoint != serving.endpoint


async def test_async_watch_moves_with_set_endpoints(
    etcd_cluster: EtcdCluster, etcd_key_prefix: bytes
) -> None:
    """set_endpoints moves a running watch to the new endpoint, losing and repeating nothing."""
    first, second, _ = etcd_cluster.members
    async with AsyncClient(endpoints=[first.endpoint]) as cli:
        collector = Collector(await cli.watch(etcd_key_prefix, prefix=True))
        async with Writer(etcd_cluster.members, etcd_key_prefix) as writer:
            await writer.wait_for_more(20)
            await cli.set_endpoints(second.endpoint)
            await writer.wait_for_more(30)
            expected = await writer.stop()
            assert await collector.finish(expected) == expected
        assert cli.watch_stats().endpoint == second.endpoint


async def test_async_watch_not_confirmed_within_the_default_timeout(
    etcd_cluster: EtcdCluster, etcd_key_prefix: bytes
) -> None:
    """With its only member black-holed, watch() raises DeadlineExceededError after the
    client's default timeout, and the client works again once the member answers."""
    member = etcd_cluster.members[0]
    async with AsyncClient(endpoints=[member.endpoint], timeout=1.0) as cli:
        member.client_proxy.blackhole()
        started = asyncio.get_running_loop().time()
        with pytest.raises(errors.DeadlineExceededError, match="within 1s"):
            await cli.watch(etcd_key_prefix)
        assert asyncio.get_running_loop().time() - started < 3.0
        member.client_proxy.unblackhole()
        async with cli.watch(etcd_key_prefix, prefix=True, timeout=RECOVERY) as watch:
            await cli.put(etcd_key_prefix + b"k", "v", timeout=RECOVERY)
            assert len((await watch.next(timeout=RECOVERY)).events) == 1
