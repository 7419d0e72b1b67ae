"""AsyncClient.keep_alive against real etcd: renewals, ends, and faults injected while it runs."""

from __future__ import annotations

import asyncio
import itertools
import statistics
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from layer_kinds import Backend

from etcd_layers import AsyncClient, errors
from etcd_layers.base import AsyncKeepAlive, KeepAliveStats
from etcd_layers.testing import EtcdCluster, EtcdServer

MISSING_LEASE = 0x7E57_0000_0000_0ABC

pytestmark = pytest.mark.asyncio


@pytest.fixture
def acli(backend_async_client: AsyncClient) -> AsyncClient:
    """A connected AsyncClient on the session's server, then on a MemoryEtcd."""
    return backend_async_client


@pytest_asyncio.fixture
async def cluster_client(etcd_cluster: EtcdCluster) -> AsyncIterator[AsyncClient]:
    """An AsyncClient on every member of the module's cluster."""
    async with AsyncClient(endpoints=etcd_cluster.endpoints, timeout=10) as cli:
        yield cli


@pytest_asyncio.fixture
async def observer(etcd_cluster: EtcdCluster) -> AsyncIterator[AsyncClient]:
    """A second client that checks leases from outside the keep-alive under test."""
    async with AsyncClient(endpoints=etcd_cluster.endpoints, timeout=2) as cli:
        yield cli


@pytest.fixture
def _restore(etcd_cluster: EtcdCluster) -> Iterator[None]:
    """Undo the faults a test left."""
    yield
    for member in etcd_cluster.members:
        member.client_proxy.unblackhole()
        if not member.is_running:
            member.start()
    etcd_cluster.wait_healthy()


def _now() -> float:
    return asyncio.get_running_loop().time()


async def _alive(observer: AsyncClient, lease_id: int) -> bool:
    return (await observer.time_to_live(lease_id)).ttl > 0


async def _next_from_other_member(ka: AsyncKeepAlive, member_id: int, timeout: float) -> int:
    """Read renewals until one comes from a member other than `member_id`; return its id."""
    deadline = _now() + timeout
    while _now() < deadline:
        response = await ka.next(timeout=max(deadline - _now(), 0.01))
        if response.header.member_id != member_id:
            return response.header.member_id
    raise AssertionError(f"no renewal from a member other than {member_id:x} in {timeout}s")


# --- the basics, on the session's one-member server ----------------------------------------


async def test_async_keep_alive_returns_after_the_first_renewal(acli: AsyncClient) -> None:
    """keep_alive returns once the server confirmed a renewal, which it yields first."""
    lease_id = (await acli.grant(30)).id
    async with await acli.keep_alive(lease_id) as ka:
        first = await ka.next(timeout=0.5)
        assert (first.id, first.ttl) == (lease_id, 30)
    await acli.revoke(lease_id)


async def test_async_keep_alive_stats_count_leases_and_handles(
    backend: Backend, acli: AsyncClient
) -> None:
    """keep_alive_stats() counts the leases and handles kept alive and the renewals."""
    async with backend.make_async_client()() as cli:
        assert cli.keep_alive_stats() == KeepAliveStats()
        lease_id = (await cli.grant(30)).id
        async with await cli.keep_alive(lease_id), await cli.keep_alive(lease_id):
            stats = cli.keep_alive_stats()
            assert (stats.leases, stats.handles) == (1, 2)
            assert 1 <= stats.confirmed <= stats.sent
        assert cli.keep_alive_stats().leases == 0
        await cli.revoke(lease_id)


async def test_async_keep_alive_missing_lease_raises_at_once(acli: AsyncClient) -> None:
    """keep_alive of a lease that does not exist raises LeaseNotFoundError right away."""
    started = _now()
    with pytest.raises(errors.LeaseNotFoundError):
        await acli.keep_alive(MISSING_LEASE)
    assert _now() - started < 1.0


async def test_async_keep_alive_checks_arguments_before_any_io(etcd_server: EtcdServer) -> None:
    """Bad lease ids and timeouts raise before connecting."""
    cli = AsyncClient(endpoints=etcd_server.endpoints)
    with pytest.raises(ValueError, match="lease_id"):
        await cli.keep_alive(-1)
    with pytest.raises(TypeError, match="lease_id"):
        await cli.keep_alive("1")  # type: ignore[arg-type]  # the wrong type on purpose
    with pytest.raises(ValueError, match="timeout"):
        await cli.keep_alive(1, timeout=0)
    assert cli.connection is None
    await cli.close()


async def test_async_keep_alive_renews_about_every_third_of_the_ttl(acli: AsyncClient) -> None:
    """Renewals of a 3 s lease arrive about a second apart, each restoring the full TTL."""
    lease_id = (await acli.grant(3)).id
    async with await acli.keep_alive(lease_id) as ka:
        await ka.next(timeout=1)
        times = []
        for _ in range(4):
            assert (await ka.next(timeout=3)).ttl == 3
            times.append(_now())
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert 0.7 < statistics.median(gaps) < 1.3, gaps
    await acli.revoke(lease_id)


async def test_async_keep_alive_next_timeout_and_cancelled_wait(acli: AsyncClient) -> None:
    """next(timeout) raises builtin TimeoutError; a canceled next() loses no renewal."""
    lease_id = (await acli.grant(3)).id
    async with await acli.keep_alive(lease_id) as ka:
        await ka.next(timeout=1)
        with pytest.raises(TimeoutError) as caught:
            await ka.next(timeout=0.1)
        assert type(caught.value) is TimeoutError
        waiting = asyncio.ensure_future(ka.next())
        await asyncio.sleep(0.1)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert (await ka.next(timeout=3)).id == lease_id
    await acli.revoke(lease_id)


async def test_async_keep_alive_revoked_lease_raises_lease_not_found(acli: AsyncClient) -> None:
    """When the lease is revoked elsewhere, iteration raises LeaseNotFoundError, then stops."""
    lease_id = (await acli.grant(2)).id
    ka = await acli.keep_alive(lease_id)
    await acli.revoke(lease_id)
    with pytest.raises(errors.LeaseNotFoundError):  # noqa: PT012  # drains queued renewals
        for _ in range(10):
            await ka.next(timeout=3)
    assert [r async for r in ka] == []
    with pytest.raises(errors.CanceledError):
        await ka.next(timeout=1)


async def test_async_keep_alive_cancel_ends_iteration_and_renewals(acli: AsyncClient) -> None:
    """cancel() ends a running `async for` and stops renewing, so the lease expires."""
    lease_id = (await acli.grant(2)).id
    ka = await acli.keep_alive(lease_id)
    received = []

    async def read() -> None:
        async for response in ka:
            received.append(response)

    reader = asyncio.ensure_future(read())
    while not received:
        await asyncio.sleep(0.01)
    await ka.cancel()
    await asyncio.wait_for(reader, 5)
    with pytest.raises(errors.CanceledError):
        await ka.next(timeout=1)
    await ka.cancel()  # idempotent
    deadline = _now() + 6
    while (await acli.time_to_live(lease_id)).ttl != -1:
        assert _now() < deadline, "the lease was still renewed after cancel()"
        await asyncio.sleep(0.2)


async def test_async_keep_alive_close_ends_every_keep_alive(etcd_server: EtcdServer) -> None:
    """close() ends every keep-alive and its tasks; later keep_alive calls raise CanceledError."""
    cli = AsyncClient(endpoints=etcd_server.endpoints)
    leases = [(await cli.grant(30)).id for _ in range(2)]
    handles = [await cli.keep_alive(lease_id) for lease_id in leases]
    await cli.close()
    names = {task.get_name() for task in asyncio.all_tasks()}
    assert not any(name.startswith("etcd_layers.aio.keepalive") for name in names)
    for handle in handles:
        assert [r async for r in handle] == []
        with pytest.raises(errors.CanceledError):
            await handle.next(timeout=1)
    with pytest.raises(errors.CanceledError):
        await cli.keep_alive(leases[0])
    async with AsyncClient(endpoints=etcd_server.endpoints) as other:
        for lease_id in leases:
            await other.revoke(lease_id)


# --- faults, on the module's three-member cluster ------------------------------------------


@pytest.mark.usefixtures("_restore")
async def test_async_keep_alive_survives_dropped_connections(
    etcd_cluster: EtcdCluster, cluster_client: AsyncClient, observer: AsyncClient
) -> None:
    """Dropping every client connection repeatedly never lets the lease lapse."""
    lease_id = (await cluster_client.grant(3)).id
    async with await cluster_client.keep_alive(lease_id) as ka:
        for _ in range(3):
            for member in etcd_cluster.members:
                member.client_proxy.drop_connections()
            started = _now()
            while _now() - started < 1.5:  # renewals must resume: next() would time out
                await ka.next(timeout=3)
            assert await _alive(observer, lease_id)
    await cluster_client.revoke(lease_id)


@pytest.mark.usefixtures("_restore")
async def test_async_keep_alive_survives_a_member_restart(
    etcd_cluster: EtcdCluster, cluster_client: AsyncClient, observer: AsyncClient
) -> None:
    """Stopping the member serving the stream moves renewals to another; the lease lives."""
    lease_id = (await cluster_client.grant(3)).id
    async with await cluster_client.keep_alive(lease_id) as ka:
        serving_id = (await ka.next(timeout=1)).header.member_id
        serving = next(m for m in etcd_cluster.members if m.member_id == serving_id)
        await asyncio.to_thread(serving.stop)
        await _next_from_other_member(ka, serving_id, timeout=4)
        assert await _alive(observer, lease_id)
        await asyncio.to_thread(serving.start)
        await ka.next(timeout=3)
        assert await _alive(observer, lease_id)
    await cluster_client.revoke(lease_id)


@pytest.mark.usefixtures("_restore")
async def test_async_keep_alive_moves_off_a_black_holed_member(
    etcd_cluster: EtcdCluster, cluster_client: AsyncClient
) -> None:
    """When the member serving the stream is black-holed, renewals resume through another."""
    lease_id = (await cluster_client.grant(3)).id
    async with await cluster_client.keep_alive(lease_id) as ka:
        serving_id = (await ka.next(timeout=1)).header.member_id
        serving = next(m for m in etcd_cluster.members if m.member_id == serving_id)
        serving.client_proxy.blackhole()
        await _next_from_other_member(ka, serving_id, timeout=3)
        started = _now()
        while _now() - started < 4:  # past the TTL with the member still dark
            await ka.next(timeout=3)
        # Asked of the members still in the light (a read sent to the dark one would spend
        # the whole timeout).
        lit = [m.endpoint for m in etcd_cluster.members if m is not serving]
        async with AsyncClient(endpoints=lit, timeout=2) as outside:
            assert await _alive(outside, lease_id)
    assert cluster_client.keep_alive_stats().stalls >= 1
    await cluster_client.revoke(lease_id)


@pytest.mark.usefixtures("_restore")
async def test_async_keep_alive_without_confirmation_within_ttl_raises(
    etcd_cluster: EtcdCluster, cluster_client: AsyncClient
) -> None:
    """With every member black-holed, iteration raises LeaseNotFoundError about a TTL later."""
    lease_id = (await cluster_client.grant(2)).id
    ka = await cluster_client.keep_alive(lease_id)
    for member in etcd_cluster.members:
        member.client_proxy.blackhole()
    started = _now()
    with pytest.raises(errors.LeaseNotFoundError, match="may be gone"):  # noqa: PT012
        for _ in range(10):
            await ka.next(timeout=4)
    assert _now() - started < 3.0
    with pytest.raises(errors.CanceledError):
        await ka.next(timeout=1)


async def test_async_keep_alive_moves_with_set_endpoints(
    etcd_cluster: EtcdCluster, observer: AsyncClient
) -> None:
    """set_endpoints moves a running keep-alive to the new endpoints without losing the lease."""
    first, second, _ = etcd_cluster.members
    async with AsyncClient(endpoints=[first.endpoint]) as cli:
        lease_id = (await cli.grant(3)).id
        async with await cli.keep_alive(lease_id) as ka:
            assert (await ka.next(timeout=1)).header.member_id == first.member_id
            await cli.set_endpoints(second.endpoint)
            assert await _next_from_other_member(ka, first.member_id, 3) == second.member_id
            assert await _alive(observer, lease_id)
        await cli.revoke(lease_id)


async def test_async_keep_alive_canceled_start_stops_renewing(
    backend: Backend, acli: AsyncClient
) -> None:
    """Cancelling the task awaiting keep_alive() leaves no handle behind; the client works on."""
    async with backend.make_async_client()() as cli:
        lease_id = (await cli.grant(30)).id
        task = asyncio.ensure_future(cli.keep_alive(lease_id))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert cli.keep_alive_stats().handles == 0
        async with await cli.keep_alive(lease_id) as ka:
            assert (await ka.next(timeout=1)).id == lease_id
        await cli.revoke(lease_id)
