"""Pytest fixtures that start real etcd servers and clusters (an entry-point plugin)."""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import os
import re
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import TYPE_CHECKING, Final

import pytest

from etcd_layers.testing.cluster import EtcdCluster, EtcdServer
from etcd_layers.testing.server import EtcdBinaryNotFoundError, find_etcd_binary

if TYPE_CHECKING:
    from etcd_layers import AsyncClient, Client
    from etcd_layers.testing.memory import MemoryEtcd

__all__ = [
    "EtcdClusterFactory",
    "etcd_async_client",
    "etcd_client",
    "etcd_cluster",
    "etcd_cluster_factory",
    "etcd_key_prefix",
    "etcd_memory",
    "etcd_memory_async_client",
    "etcd_memory_client",
    "etcd_server",
    "require_etcd",
]

_FALSE_VALUES: Final = frozenset({"", "0", "false", "no", "off"})
_UNSAFE_KEY_CHARS: Final = re.compile(r"[^A-Za-z0-9_.\-]+")
_MAX_NAME: Final = 60
_prefix_numbers = itertools.count()


def require_etcd() -> str:
    """Return the etcd binary's path, or skip the calling test (fail it when `$CI` is set)."""
    try:
        return find_etcd_binary()
    except EtcdBinaryNotFoundError as err:
        reason = str(err)  # reported outside the handler: the chained traceback is noise
    if os.environ.get("CI", "").strip().lower() not in _FALSE_VALUES:
        pytest.fail(f"{reason} ($CI is set, so this fails instead of skipping)", pytrace=False)
    pytest.skip(reason)


class EtcdClusterFactory:
    """Starts clusters for one test and closes them all afterwards (`etcd_cluster_factory`)."""

    def __init__(self) -> None:
        self._clusters: list[EtcdCluster] = []

    def __call__(
        self,
        size: int = 3,
        *,
        tls: bool = False,
        extra_args: Sequence[str] = (),
        name_prefix: str = "etcd",
        log_level: str = "warn",
        start_timeout: float = 30.0,
    ) -> EtcdCluster:
        """Start and return an `EtcdCluster`; the arguments are `EtcdCluster`'s."""
        require_etcd()
        cluster = EtcdCluster(
            size,
            tls=tls,
            extra_args=extra_args,
            name_prefix=name_prefix,
            log_level=log_level,
            start_timeout=start_timeout,
        )
        self._clusters.append(cluster)
        return cluster.start()

    def close(self) -> None:
        """Close every cluster made, even if closing one of them fails."""
        with contextlib.ExitStack() as stack:
            for cluster in self._clusters:
                stack.callback(cluster.close)
        self._clusters.clear()


@pytest.fixture(scope="session")
def etcd_server() -> Iterator[EtcdServer]:
    """A one-member etcd server shared by the whole session."""
    require_etcd()
    with EtcdServer() as server:
        yield server


@pytest.fixture(scope="module")
def etcd_cluster() -> Iterator[EtcdCluster]:
    """A three-member etcd cluster shared by one test module."""
    require_etcd()
    with EtcdCluster(3) as cluster:
        yield cluster


@pytest.fixture
def etcd_cluster_factory() -> Iterator[EtcdClusterFactory]:
    """Make clusters of any size and options inside one test; all are closed after it."""
    factory = EtcdClusterFactory()
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture
def etcd_client(etcd_server: EtcdServer) -> Iterator[Client]:
    """An `etcd_layers.Client` connected to `etcd_server`, closed after the test."""
    # Imported here: loading the plugin must not import gRPC for suites that never use it.
    from etcd_layers import Client  # noqa: PLC0415

    client = Client(endpoints=etcd_server.endpoints, **etcd_server.client_options())
    try:
        yield client
    finally:
        client.close()


async def _etcd_async_client(etcd_server: EtcdServer) -> AsyncIterator[AsyncClient]:
    """An `etcd_layers.AsyncClient` connected to `etcd_server` on the test's loop, closed after."""
    from etcd_layers import AsyncClient  # noqa: PLC0415  # as etcd_client: no gRPC at load

    client = AsyncClient(endpoints=etcd_server.endpoints, **etcd_server.client_options())
    try:
        await client.connect()
        yield client
    finally:
        await client.close()


def _needs_pytest_asyncio() -> None:
    pytest.skip("the etcd_async_client fixture needs pytest-asyncio (in etcd-layers[test])")


# pytest-asyncio runs the async fixture on the test's event loop; without it (a suite that
# never uses asyncio) the fixture skips the test that asks for it.
if importlib.util.find_spec("pytest_asyncio") is not None:
    import pytest_asyncio

    etcd_async_client = pytest_asyncio.fixture(_etcd_async_client, name="etcd_async_client")
else:
    etcd_async_client = pytest.fixture(_needs_pytest_asyncio, name="etcd_async_client")


@pytest.fixture
def etcd_memory() -> Iterator[MemoryEtcd]:
    """A `MemoryEtcd` on a `ManualClock` (`etcd_memory.clock`), one per test, closed after it."""
    from etcd_layers.testing.memory import ManualClock, MemoryEtcd  # noqa: PLC0415  # no gRPC at load

    with MemoryEtcd(clock=ManualClock()) as etcd:
        yield etcd


@pytest.fixture
def etcd_memory_client(etcd_memory: MemoryEtcd) -> Iterator[Client]:
    """A Client of `etcd_memory`, closed after the test."""
    with etcd_memory.client() as client:
        yield client


async def _etcd_memory_async_client(etcd_memory: MemoryEtcd) -> AsyncIterator[AsyncClient]:
    """An AsyncClient of `etcd_memory`, on the test's loop, closed after the test."""
    client = etcd_memory.async_client()
    try:
        yield client
    finally:
        await client.close()


if importlib.util.find_spec("pytest_asyncio") is not None:
    etcd_memory_async_client = pytest_asyncio.fixture(
        _etcd_memory_async_client, name="etcd_memory_async_client"
    )
else:
    etcd_memory_async_client = pytest.fixture(
        _needs_pytest_asyncio, name="etcd_memory_async_client"
    )


@pytest.fixture
def etcd_key_prefix(request: pytest.FixtureRequest) -> bytes:
    """A key prefix unique to this test within the session, e.g. `b"/test/7/test_put/"`."""
    name = _UNSAFE_KEY_CHARS.sub("_", request.node.name)[:_MAX_NAME]
    return f"/test/{next(_prefix_numbers)}/{name}/".encode()
