"""MemoryEtcd.serve(): the real Client, AsyncClient and etcdctl against the in-memory store."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from etcd_layers import AsyncClient, Client, errors
from etcd_layers.testing import EtcdBinaryNotFoundError, MemoryEtcd, find_etcd_tool


@pytest.fixture
def served(etcd_memory: MemoryEtcd) -> str:
    return etcd_memory.serve()


@pytest.fixture
def client(served: str) -> Iterator[Client]:
    with Client(endpoints=[served], timeout=10) as client:
        yield client


@pytest.fixture
def etcdctl() -> str:
    try:
        return find_etcd_tool("etcdctl")
    except EtcdBinaryNotFoundError:
        pytest.skip("no etcdctl binary")


def run_etcdctl(etcdctl: str, endpoint: str, *args: str) -> str:
    done = subprocess.run(
        [etcdctl, f"--endpoints={endpoint}", "--command-timeout=10s", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
        env={"ETCDCTL_API": "3"},
    )
    return done.stdout


def test_memory_serve_answers_the_real_client_as_in_process(
    etcd_memory: MemoryEtcd, client: Client
) -> None:
    """A served store gives the real Client the answers the in-process client gets."""
    client.put("k", "v")
    with etcd_memory.client() as local:
        assert client.get("k") == local.get("k")
        watch = client.watch("k", prev_kv=True)
        local.put("k", "w")
        event = watch.next(timeout=5).events[0]
        assert (event.kv.value, event.prev_kv and event.prev_kv.value) == (b"w", b"v")
        watch.cancel()
    assert etcd_memory.serve() == client.endpoints[0]  # served once


def test_memory_serve_is_a_one_member_cluster(served: str, client: Client) -> None:
    """member_list and status answer as the one member, which leads."""
    members = client.member_list().members
    assert len(members) == 1
    assert members[0].client_urls == [f"http://{served}"]
    status = client.status(served)
    assert status.leader == members[0].id == status.header.member_id


@pytest.mark.parametrize("call", ["auth_status", "alarm_list", "defragment"])
def test_memory_serve_unimplemented_calls_raise_not_capable(
    served: str, client: Client, call: str
) -> None:
    """Calls the store does not serve raise NotCapableError, through serve() and in-process."""
    method = getattr(client, call)
    with pytest.raises(errors.NotCapableError):
        method(served) if call == "defragment" else method()


def test_memory_in_process_unimplemented_calls_raise_not_capable(
    etcd_memory: MemoryEtcd, tmp_path: Path
) -> None:
    """In-process too, auth and maintenance calls other than status are not capable."""
    with etcd_memory.client(timeout=5) as local:
        with pytest.raises(errors.NotCapableError):
            local.auth_status()
        with pytest.raises(errors.NotCapableError):
            local.alarm_list()
        with pytest.raises(errors.NotCapableError):
            local.snapshot(tmp_path / "snapshot.db")
        assert local.status(local.endpoints[0]).version == "3.5.1"


def test_memory_serve_answers_the_async_client(served: str, etcd_memory: MemoryEtcd) -> None:
    """The AsyncClient over gRPC sees the store and its leases."""

    async def scenario() -> None:
        async with AsyncClient(endpoints=[served], timeout=10) as client:
            lease = await client.grant(30)
            await client.put("k", "v", lease=lease.id)
            found = await client.time_to_live(lease.id, keys=True)
            assert found.keys == [b"k"]

    asyncio.run(scenario())
    assert etcd_memory.revision == 2


def test_memory_serve_speaks_to_etcdctl(etcdctl: str, served: str, client: Client) -> None:
    """etcdctl puts, gets, lists members and reads status from the served store."""
    run_etcdctl(etcdctl, served, "put", "k", "from-etcdctl")
    assert client.get("k").kvs[0].value == b"from-etcdctl"
    client.put("k2", "from-python")
    got = json.loads(run_etcdctl(etcdctl, served, "get", "k", "--prefix", "-w", "json"))
    assert got["count"] == 2
    assert got["header"]["revision"] == client.get("k").header.revision
    assert "memory" in run_etcdctl(etcdctl, served, "member", "list")
    status = json.loads(run_etcdctl(etcdctl, served, "endpoint", "status", "-w", "json"))
    assert status[0]["Status"]["version"] == "3.5.1"
    lease = run_etcdctl(etcdctl, served, "lease", "grant", "30")
    assert "granted with TTL(30s)" in lease


def test_memory_close_ends_watches_and_clients() -> None:
    """close() ends the in-process clients and their watches and stops serving."""
    etcd = MemoryEtcd()
    served = etcd.serve()
    local = etcd.client(timeout=5)
    watch = local.watch("k")
    etcd.close()
    with pytest.raises(errors.EtcdError):
        watch.next(timeout=5)
    with pytest.raises(errors.ClosedError):
        local.get("k")
    with pytest.raises(errors.ClosedError):
        etcd.client()
    with pytest.raises(errors.UnavailableError):
        Client(endpoints=[served], dial_timeout=0.5)


def test_memory_in_process_client_follows_sync_endpoints(etcd_memory: MemoryEtcd) -> None:
    """sync_endpoints() moves an in-process client to the member's URL; it keeps working."""
    with etcd_memory.client(timeout=5) as local:
        assert local.endpoints == ["memory:2379"]
        local.sync_endpoints()
        assert local.endpoints == ["memory:2379"]
        served = etcd_memory.serve()
        local.sync_endpoints()
        assert local.endpoints == [served]
        local.put("k", "v")
        assert local.get("k").kvs[0].value == b"v"
