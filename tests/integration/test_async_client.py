"""The AsyncClient's own behaviour against real etcd: connecting, cancellation, concurrency.

What both clients share (every KV, lease and admin call, TLS, auth, failover and the retry
rule) runs in the sync modules, parametrized over both kinds (see conftest.py).
"""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from etcd_layers import AsyncClient, Op, errors
from etcd_layers.base import (
    AsyncKV,
    AsyncLease,
    AsyncWatcher,
    GetResponse,
    MoveLeaderResponse,
)
from etcd_layers.testing import EtcdServer

pytestmark = pytest.mark.asyncio

TIMEOUT = 10.0


def _dead_endpoint() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


async def test_async_client_fixture_is_connected(
    etcd_async_client: AsyncClient, etcd_key_prefix: bytes
) -> None:
    """The etcd_async_client fixture gives a client connected on the test's loop."""
    assert etcd_async_client.connection is not None
    await etcd_async_client.put(etcd_key_prefix, "v")
    response = await etcd_async_client.get(etcd_key_prefix)
    assert isinstance(response, GetResponse)
    assert response.kvs[0].value == b"v"


async def test_async_client_speaks_every_async_protocol(etcd_async_client: AsyncClient) -> None:
    """The AsyncClient is an AsyncKV, an AsyncWatcher and an AsyncLease."""
    assert isinstance(etcd_async_client, AsyncKV)
    assert isinstance(etcd_async_client, AsyncWatcher)
    assert isinstance(etcd_async_client, AsyncLease)


async def test_async_client_async_with_connects_and_closes(
    etcd_server: EtcdServer, etcd_key_prefix: bytes
) -> None:
    """`async with` connects on entry; after the block every call raises CanceledError."""
    async with AsyncClient(etcd_server.endpoints, timeout=TIMEOUT) as cli:
        assert cli.connection is not None
        await cli.txn(success=[Op.put(etcd_key_prefix, "v")])
        assert (await cli.do(Op.get(etcd_key_prefix))).count == 1
    with pytest.raises(errors.CanceledError):
        await cli.get(etcd_key_prefix)
    await cli.close()  # idempotent


async def test_async_client_never_connected_call_connects_first(
    etcd_server: EtcdServer, etcd_key_prefix: bytes
) -> None:
    """A call on a client that never connected connects, then answers."""
    cli = AsyncClient(etcd_server.endpoints, timeout=TIMEOUT)
    try:
        assert cli.connection is None
        assert (await cli.get(etcd_key_prefix)).count == 0
        assert cli.connection is not None
    finally:
        await cli.close()


async def test_async_client_bad_arguments_raise_before_connecting() -> None:
    """Bad arguments raise at once, without dialing (the endpoint does not answer)."""
    cli = AsyncClient([_dead_endpoint()], dial_timeout=30)
    started = time.monotonic()
    with pytest.raises(errors.EmptyKeyError):
        await cli.get("")
    with pytest.raises(TypeError):
        await cli.do("get k")  # type: ignore[call-overload]  # hostile by design
    with pytest.raises(ValueError, match="ttl"):
        await cli.grant(-1)
    with pytest.raises(ValueError, match="timeout"):
        await cli.member_list(timeout=0)
    assert time.monotonic() - started < 1
    assert cli.connection is None
    await cli.close()


async def test_async_client_connect_raises_unavailable_after_dial_timeout() -> None:
    """With no endpoint answering, connect() raises UnavailableError after dial_timeout."""
    cli = AsyncClient([_dead_endpoint()], dial_timeout=0.5)
    started = time.monotonic()
    with pytest.raises(errors.UnavailableError):
        await cli.connect()
    assert time.monotonic() - started < 5
    await cli.close()


async def test_async_client_cancelled_call_leaves_client_usable(
    etcd_server: EtcdServer, etcd_key_prefix: bytes
) -> None:
    """Cancelling a task stuck in a call cancels it; the client goes on answering."""
    member = etcd_server.members[0]
    async with AsyncClient([member.client_proxy.endpoint], timeout=TIMEOUT) as cli:
        await cli.put(etcd_key_prefix, "v")
        member.client_proxy.blackhole()
        try:
            discarded = member.client_proxy.discarded_bytes
            stuck = asyncio.ensure_future(cli.get(etcd_key_prefix))
            for _ in range(100):  # until the request went into the hole
                if member.client_proxy.discarded_bytes > discarded:
                    break
                await asyncio.sleep(0.05)
            assert not stuck.done()
            stuck.cancel()
            with pytest.raises(asyncio.CancelledError):
                await stuck
        finally:
            member.client_proxy.unblackhole()
        member.client_proxy.drop_connections()  # the swallowed bytes would garble the stream
        response = await cli.get(etcd_key_prefix)
        assert response.kvs[0].value == b"v"


async def test_async_client_cancelled_retry_wait_leaves_client_usable(
    etcd_server: EtcdServer, etcd_key_prefix: bytes
) -> None:
    """Cancelling a call that waits to retry (its endpoint refuses) leaves the client usable."""
    async with AsyncClient(etcd_server.endpoints, timeout=TIMEOUT) as cli:
        await cli.set_endpoints(_dead_endpoint())
        waiting = asyncio.ensure_future(cli.get(etcd_key_prefix))
        await asyncio.sleep(0.3)
        assert not waiting.done()
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await cli.set_endpoints(*etcd_server.endpoints)
        assert (await cli.get(etcd_key_prefix)).count == 0


async def test_async_client_serves_many_concurrent_tasks(
    etcd_async_client: AsyncClient, etcd_key_prefix: bytes
) -> None:
    """200 tasks writing and reading at once on one client all get their own answers."""

    async def one(index: int) -> bytes:
        key = etcd_key_prefix + b"%03d" % index
        await etcd_async_client.put(key, b"%d" % index)
        return (await etcd_async_client.get(key)).kvs[0].value

    values = await asyncio.gather(*(one(index) for index in range(200)))
    assert values == [b"%d" % index for index in range(200)]
    assert (await etcd_async_client.get(etcd_key_prefix, prefix=True)).count == 200


async def test_async_client_keep_alive_once_renews(etcd_async_client: AsyncClient) -> None:
    """keep_alive_once renews a lease, and raises LeaseNotFoundError once it is revoked."""
    lease = await etcd_async_client.grant(30)
    assert (await etcd_async_client.keep_alive_once(lease.id)).ttl == 30
    await etcd_async_client.revoke(lease.id)
    with pytest.raises(errors.LeaseNotFoundError):
        await etcd_async_client.keep_alive_once(lease.id)


async def test_async_client_move_leader_runs_its_flow_steps(
    etcd_async_client: AsyncClient, etcd_server: EtcdServer
) -> None:
    """A multi-step flow (find the leader, then move) runs over the async connection."""
    status = await etcd_async_client.status(etcd_server.endpoint)
    # On one member the flow finds the leader itself, which accepts keeping the leadership
    # (etcd answers that with an empty header).
    moved = await etcd_async_client.move_leader(status.leader)
    assert isinstance(moved, MoveLeaderResponse)


async def test_async_client_from_env_connects_as_etcdctl_would(
    etcd_server: EtcdServer, etcd_key_prefix: bytes
) -> None:
    """from_env reads ETCDCTL_* variables and connects on entry."""
    environ = {"ETCDCTL_ENDPOINTS": ",".join(etcd_server.endpoints)}
    async with AsyncClient.from_env(environ, timeout=TIMEOUT) as cli:
        assert cli.endpoints == etcd_server.endpoints
        assert (await cli.get(etcd_key_prefix)).count == 0


async def test_async_client_auto_sync_replaces_the_endpoints(etcd_server: EtcdServer) -> None:
    """With auto_sync_interval, the endpoints follow the member list; close() stops the task."""
    dead = _dead_endpoint()
    async with AsyncClient(
        [*etcd_server.endpoints, dead], timeout=TIMEOUT, auto_sync_interval=0.1
    ) as cli:
        for _ in range(100):
            if cli.endpoints == etcd_server.endpoints:
                break
            await asyncio.sleep(0.05)
        assert cli.endpoints == etcd_server.endpoints
    assert [t for t in asyncio.all_tasks() if t.get_name() == "etcd_layers.aio.autosync"] == []
