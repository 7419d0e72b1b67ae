"""Run a module's sync tests against both client kinds, on a real etcd and on MemoryEtcd.

A module opts in by overriding its client fixture with `both_clients` (see test_kv.py), or by
building its clients and layers from `backend` and `store` (layer_kinds.Backend, Store). The
AsyncClient is driven through `AsyncClientFacade`, a thin sync facade that runs it on an event
loop in a thread of its own, so one test body checks both clients' answers and errors. Each
such test runs on both BACKENDS: the session's real server, and a MemoryEtcd of its own
(`etcd_layers.testing`, on real time). A test that only a real server can show (faults,
several members, a restart, auth, TLS, admin calls) is marked `real_only` and skipped on
MemoryEtcd.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from typing import TYPE_CHECKING, Any, Final, TypeVar, cast

import pytest
import pytest_asyncio
from recipe_kits import kit, plain_kit  # noqa: F401 (the recipe modules' fixtures)

from etcd_layers import AsyncClient, Client

if TYPE_CHECKING:
    from layer_kinds import Backend, Store

T = TypeVar("T")

CLIENT_KINDS: Final = ("Client", "AsyncClient")
BACKENDS: Final = ("etcd", "memory")  # the session's real server, or a MemoryEtcd of the test's
REAL_ONLY: Final = "real_only: shows what only a real etcd server does"
# The rig's servers tick every 50 ms, which makes etcd's minimum lease TTL 1 s: the same here.
MEMORY_MIN_LEASE_TTL: Final = 1


class AsyncClientFacade:
    """A sync facade over an AsyncClient whose event loop runs in a thread of its own.

    Coroutine methods are awaited on that loop and their results (or errors) returned to the
    calling thread; other attributes are the AsyncClient's.
    """

    def __init__(self, make: Callable[[], AsyncClient]) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="tests.async-facade", daemon=True
        )
        self._thread.start()
        try:
            self.client = self.run(self._connect(make))
        except BaseException:
            self._stop()
            raise

    @staticmethod
    async def _connect(make: Callable[[], AsyncClient]) -> AsyncClient:
        client = make()  # on the loop: its channels belong to it
        try:
            return await client.connect()
        except BaseException:
            await client.close()
            raise

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Await `coroutine` on the facade's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def __getattr__(self, name: str) -> Any:
        value = getattr(self.client, name)
        if name == "watch":  # checks its arguments at once; awaiting it starts the watch

            def start(*args: Any, **kwargs: Any) -> SyncStreamFacade:
                return SyncStreamFacade(self, self.run(_awaited(value(*args, **kwargs))))

            return start
        if not inspect.iscoroutinefunction(value):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            result = self.run(value(*args, **kwargs))
            return SyncStreamFacade(self, result) if name == "keep_alive" else result

        return call

    def close(self) -> None:
        """Close the client, then stop the loop and its thread."""
        try:
            self.run(self.client.close())
        finally:
            self._stop()

    def _stop(self) -> None:
        async def drain() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self.run(drain())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def __enter__(self) -> AsyncClientFacade:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


async def _awaited(awaitable: Awaitable[T]) -> T:
    return await awaitable


class SyncStreamFacade:
    """A sync facade over an AsyncClient's watch or keep-alive, driven on the facade's loop.

    Iteration, `next()` and `cancel()` run on the loop, so another thread may cancel a
    blocked reader as with the sync handles; other attributes are the handle's.
    """

    def __init__(self, facade: AsyncClientFacade, handle: Any) -> None:
        self._facade = facade
        self._handle = handle

    def __iter__(self) -> Iterator[Any]:
        while True:
            try:
                yield self._facade.run(_awaited(self._handle.__anext__()))
            except StopAsyncIteration:
                return

    def next(self, timeout: float | None = None) -> Any:
        """The handle's next(), awaited on the loop."""
        return self._facade.run(self._handle.next(timeout))

    def cancel(self) -> None:
        """The handle's cancel(), awaited on the loop."""
        self._facade.run(self._handle.cancel())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)

    def __enter__(self) -> SyncStreamFacade:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.cancel()


def client_of_kind(kind: str, *args: Any, **kwargs: Any) -> Client:
    """Return a connected Client, or an AsyncClient behind its sync facade, typed as Client."""
    if kind == "Client":
        return Client(*args, **kwargs)
    return cast(Client, AsyncClientFacade(lambda: AsyncClient(*args, **kwargs)))


@pytest.fixture(scope="session")
def make_client() -> Callable[..., Client]:
    """`client_of_kind`, for module-scoped fixtures parametrized over CLIENT_KINDS."""
    return client_of_kind


def skip_real_only(request: pytest.FixtureRequest, backend: str) -> None:
    """Skip the requesting test on MemoryEtcd when it is marked `real_only`.

    A test marked `memory_differs(reason)` is expected to fail there (strictly: once
    MemoryEtcd answers as etcd does, the mark must go).
    """
    if backend != "memory":
        return
    if request.node.get_closest_marker("real_only") is not None:
        pytest.skip(REAL_ONLY)
    differs = request.node.get_closest_marker("memory_differs")
    if differs is not None:
        request.applymarker(pytest.mark.xfail(strict=True, reason=differs.args[0]))


@contextlib.contextmanager
def memory_backend() -> Iterator[Backend]:
    """A MemoryEtcd on real time, as a Backend; it and every client made on it close after."""
    from layer_kinds import Backend
    from memory_kind import memory_etcd

    with memory_etcd(manual_clock=False, min_lease_ttl=MEMORY_MIN_LEASE_TTL) as etcd:
        made = Backend(memory=etcd)
        try:
            yield made
        finally:
            made.close()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """What the test's clients connect to: `etcd_server`, then a MemoryEtcd on real time."""
    from layer_kinds import Backend

    skip_real_only(request, request.param)
    if request.param == "memory":
        with memory_backend() as made:
            yield made
        return
    made = Backend(server=request.getfixturevalue("etcd_server"))
    try:
        yield made
    finally:
        made.close()


@pytest.fixture(params=CLIENT_KINDS)
def store(request: pytest.FixtureRequest, backend: Backend) -> Store:
    """The backend, with clients of each kind in turn (see layer_kinds.Store)."""
    from layer_kinds import Store

    return Store(backend, request.param)


@pytest_asyncio.fixture
async def backend_async_client(backend: Backend) -> AsyncIterator[AsyncClient]:
    """A connected AsyncClient on `backend`, on the test's event loop, closed after the test.

    A module runs its asyncio tests on both backends by overriding `etcd_async_client` with it
    (and `etcd_client` with `backend.client()`, for the sync side of mixed tests).
    """
    client = backend.make_async_client()()
    try:
        yield await client.connect()
    finally:
        await client.close()


@pytest.fixture
def both_clients(store: Store) -> Client:
    """A client of each kind in turn (an asyncio one behind its facade), closed after the test."""
    return store.client()
