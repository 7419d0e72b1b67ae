"""The service registry on a real etcd: Go's endpoints tests, sessions, Go's stored bytes.

Each test runs on EndpointManager (a Client) and AsyncEndpointManager (an AsyncClient, driven
from the test thread), each plain and through a namespace.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from conftest import AsyncClientFacade

from etcd_layers import AsyncClient, Client, Op, errors, namespace
from etcd_layers.concurrency import AsyncSession, Session
from etcd_layers.naming import (
    AsyncEndpointManager,
    Endpoint,
    EndpointManager,
    Update,
    UpdateOp,
)
from etcd_layers.testing import EtcdServer

TIMEOUT = 10.0
KINDS = ("sync", "async", "sync-namespace", "async-namespace")


class BlockingWatch:
    """An AsyncEndpointWatch driven from the test thread."""

    def __init__(self, watch: Any, facade: AsyncClientFacade) -> None:
        self.watch = watch
        self.facade = facade
        facade.run(watch.start())

    def next(self, timeout: float | None = None) -> list[Update]:
        return self.facade.run(self.watch.next(timeout))

    def cancel(self) -> None:
        self.facade.run(self.watch.cancel())

    def __enter__(self) -> BlockingWatch:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.cancel()


class BlockingManager:
    """An AsyncEndpointManager driven from the test thread."""

    def __init__(self, manager: AsyncEndpointManager, facade: AsyncClientFacade) -> None:
        self.manager = manager
        self.facade = facade

    def __getattr__(self, name: str) -> Any:
        value = getattr(self.manager, name)
        if name == "watch":
            return lambda **kwargs: BlockingWatch(value(**kwargs), self.facade)
        if not inspect.iscoroutinefunction(value):
            return value
        return lambda *args, **kwargs: self.facade.run(value(*args, **kwargs))


@dataclass
class Registry:
    """A manager of one kind, its target, the raw prefix its keys live under, and sessions."""

    manager: Any
    target: str
    raw: bytes  # what to put before `target` to name its keys on the plain writer
    session: Any

    def key(self, name: str) -> str:
        """The key of endpoint `name` of the target."""
        return f"{self.target}/{name}"


@pytest.fixture(params=KINDS)
def registry(
    request: pytest.FixtureRequest, etcd_server: EtcdServer, etcd_key_prefix: bytes
) -> Iterator[Registry]:
    """A registry of each kind on target "foo" (under the test's prefix, or a namespace)."""
    kind = str(request.param)
    through = kind.endswith("namespace")
    target = "foo" if through else etcd_key_prefix.decode() + "foo"
    raw = etcd_key_prefix if through else b""
    options = etcd_server.client_options()
    if kind.startswith("async"):
        facade = AsyncClientFacade(lambda: AsyncClient(etcd_server.endpoints, **options))
        try:
            speaker: Any = (
                namespace.wrap(facade.client, etcd_key_prefix) if through else facade.client
            )

            @contextlib.contextmanager
            def async_session(ttl: int) -> Iterator[Any]:
                session = facade.run(AsyncSession(speaker, ttl=ttl).__aenter__())
                try:
                    yield session
                finally:
                    facade.run(session.close())

            manager = BlockingManager(AsyncEndpointManager(speaker, target), facade)
            yield Registry(manager, target, raw, async_session)
        finally:
            facade.close()
        return
    with Client(etcd_server.endpoints, **options) as cli:
        layer: Any = namespace.wrap(cli, etcd_key_prefix) if through else cli
        yield Registry(
            EndpointManager(layer, target), target, raw, lambda ttl: Session(layer, ttl=ttl)
        )


@pytest.fixture
def writer(etcd_server: EtcdServer) -> Iterator[Client]:
    """A plain client, to look at and write the stored bytes directly."""
    with Client(etcd_server.endpoints, timeout=TIMEOUT, **etcd_server.client_options()) as cli:
        yield cli


def test_endpoint_manager_watch(registry: Registry) -> None:
    """Go's TestEndpointManager: a watch sees an add, then its delete (after the empty set)."""
    em = registry.manager
    with em.watch() as watch:
        assert watch.next(timeout=TIMEOUT) == []  # the current set comes first, even empty
        e1 = Endpoint("127.0.0.1", "metadata")
        em.add_endpoint(registry.key("a1"), e1)
        assert watch.next(timeout=TIMEOUT) == [Update(UpdateOp.ADD, registry.key("a1"), e1)]
        em.delete_endpoint(registry.key("a1"))
        assert watch.next(timeout=TIMEOUT) == [
            Update(UpdateOp.DELETE, registry.key("a1"), Endpoint(""))
        ]


def test_endpoint_manager_atomicity(registry: Registry, writer: Client) -> None:
    """Go's TestEndpointManagerAtomicity: two adds in one update are one batch; two deletes too."""
    em = registry.manager
    em.update(
        [
            Update(UpdateOp.ADD, registry.key("host"), Endpoint("127.0.0.1:2000")),
            Update(UpdateOp.ADD, registry.key("host2"), Endpoint("127.0.0.1:2001")),
        ]
    )
    with em.watch() as watch:
        assert len(watch.next(timeout=TIMEOUT)) == 2
        raw = registry.raw + registry.target.encode()
        writer.txn(success=[Op.delete(raw + b"/host"), Op.delete(raw + b"/host2")])
        updates = watch.next(timeout=TIMEOUT)
        assert [update.op for update in updates] == [UpdateOp.DELETE, UpdateOp.DELETE]


def test_endpoint_manager_crud(registry: Registry) -> None:
    """Go's TestEndpointManagerCRUD: add, list, delete, and an update of an add and a delete."""
    em = registry.manager
    k1, k2, k3 = registry.key("a1"), registry.key("a2"), registry.key("a3")
    e1, e2 = Endpoint("127.0.0.1", "metadata1"), Endpoint("127.0.0.2", "metadata2")
    em.add_endpoint(k1, e1)
    em.add_endpoint(k2, e2)
    assert em.list() == {k1: e1, k2: e2}
    em.delete_endpoint(k1)
    assert em.list() == {k2: e2}
    e3 = Endpoint("127.0.0.3", "metadata3")
    em.update([Update(UpdateOp.ADD, k3, e3), Update(UpdateOp.DELETE, k2, Endpoint(""))])
    assert em.list() == {k3: e3}


def test_registered_endpoint_goes_with_its_session(registry: Registry, writer: Client) -> None:
    """register() attaches the endpoint to the session's lease: closing it removes it."""
    em = registry.manager
    key = registry.key("node-1")
    with em.watch() as watch:
        assert watch.next(timeout=TIMEOUT) == []
        with registry.session(10) as session:
            em.register(key, Endpoint("10.0.0.1:8080"), session)
            assert watch.next(timeout=TIMEOUT)[0].op is UpdateOp.ADD
            stored = writer.get(registry.raw + key.encode()).kvs[0]
            assert stored.lease == session.lease_id
        assert watch.next(timeout=TIMEOUT) == [Update(UpdateOp.DELETE, key, Endpoint(""))]
    assert em.list() == {}


def test_registry_stores_what_go_stores_and_reads_what_go_wrote(
    registry: Registry, writer: Client
) -> None:
    """Values are Go's json.Marshal bytes; values Go wrote (or could not decode) are read as Go."""
    em = registry.manager
    raw = registry.raw + registry.target.encode()
    em.add_endpoint(registry.key("py"), Endpoint("10.0.0.1:8080", {"weight": 2, "zone": "<a>"}))
    assert writer.get(raw + b"/py").kvs[0].value == (
        b'{"Op":0,"Addr":"10.0.0.1:8080","Metadata":{"weight":2,"zone":"\\u003ca\\u003e"}}'
    )
    writer.put(raw + b"/go", b'{"Op":0,"Addr":"10.0.0.2:9090","Metadata":null}')
    writer.put(raw + b"/broken", b"not json")
    assert em.list() == {
        registry.key("py"): Endpoint("10.0.0.1:8080", {"weight": 2, "zone": "<a>"}),
        registry.key("go"): Endpoint("10.0.0.2:9090"),
    }


def test_registry_refuses_keys_outside_its_target(registry: Registry, writer: Client) -> None:
    """A key not under target + "/" is refused before any write (Go: InvalidArgument)."""
    with pytest.raises(ValueError, match="prefixed"):
        registry.manager.add_endpoint(registry.target + "x/a", Endpoint("a"))
    assert writer.get(registry.raw + registry.target.encode(), prefix=True).kvs == []


def test_endpoint_watch_cancel_ends_iteration(registry: Registry) -> None:
    """After cancel(), next() raises CanceledError."""
    watch = registry.manager.watch()
    assert watch.next(timeout=TIMEOUT) == []
    watch.cancel()
    with pytest.raises(errors.CanceledError):
        watch.next(timeout=TIMEOUT)


def test_endpoint_manager_refuses_bad_arguments(etcd_client: Client) -> None:
    """An empty target or a client that speaks no KV is refused when the manager is built."""
    with pytest.raises(ValueError, match="target"):
        EndpointManager(etcd_client, "")
    with pytest.raises(TypeError, match="KV"):
        EndpointManager(object(), "t")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="session"):
        EndpointManager(etcd_client, "t").register("t/a", Endpoint("a"), object())
