"""Run a module's sync tests against both client kinds: the Client, and the AsyncClient.

A module opts in by overriding its client fixture with `both_clients` (see test_kv.py). The
AsyncClient is driven through `AsyncClientFacade`, a thin sync facade that runs it on an event
loop in a thread of its own, so one test body checks both clients' answers and errors.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any, Final, TypeVar, cast

import pytest

from etcd_layers import AsyncClient, Client
from etcd_layers.testing import EtcdServer

T = TypeVar("T")

CLIENT_KINDS: Final = ("Client", "AsyncClient")


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


@pytest.fixture(params=CLIENT_KINDS)
def both_clients(request: pytest.FixtureRequest, etcd_server: EtcdServer) -> Iterator[Client]:
    """A client on `etcd_server` of each kind in turn (the AsyncClient behind its facade)."""
    client = client_of_kind(request.param, etcd_server.endpoints, **etcd_server.client_options())
    try:
        yield client
    finally:
        client.close()
