"""Run a sync layer test against the async layer too: a blocking facade over an async layer.

`async_layer_of(make_layer, etcd_server)` builds the layer over an AsyncClient that runs on
the event loop of conftest's `AsyncClientFacade`, and hands it out behind `BlockingLayer`,
which awaits each coroutine call on that loop, so one test body checks both kinds of layer.
`Store` (conftest's `store` fixture) is where a test's clients and layers connect: the real
`etcd_server` or a MemoryEtcd, with clients of one kind (see conftest.ALL_KINDS).
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, Final, TypeVar, cast

import pytest
from conftest import MEMORY_KINDS, AsyncClientFacade

from etcd_layers import AsyncClient, Client
from etcd_layers.testing import EtcdServer

T = TypeVar("T")
Run = Callable[[Coroutine[Any, Any, Any]], Any]

HAS_WATCH: Final = hasattr(AsyncClient, "watch")


def _skip_watch(self: AsyncClient, key: bytes, **options: object) -> Any:
    pytest.skip("AsyncClient.watch comes in another phase of issue 14")


class AsyncClientUntilWatch(AsyncClient):
    """An AsyncClient for `namespace.wrap` while AsyncClient.watch is not built (issue 14).

    `namespace.wrap` needs a `watch`; this one skips the test that calls it. (Typed Any, so
    that it type-checks with and without the real one.)
    """

    watch: Any = _skip_watch


ASYNC_CLIENT: Final[type[AsyncClient]] = AsyncClient if HAS_WATCH else AsyncClientUntilWatch


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


class BlockingWatch:
    """A sync facade over an async watch handle (given the start that yields it)."""

    def __init__(self, start: Any, run: Run) -> None:
        self.run = run
        self.handle = run(_awaited(start))

    def __iter__(self) -> Iterator[Any]:
        iterator = self.handle.__aiter__()
        while True:
            try:
                yield self.run(iterator.__anext__())
            except StopAsyncIteration:
                return

    def next(self, timeout: float | None = None) -> Any:
        return self.run(self.handle.next(timeout))

    def cancel(self) -> None:
        self.run(self.handle.cancel())

    def __enter__(self) -> BlockingWatch:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.cancel()


class BlockingLayer:
    """A sync facade over an async layer: coroutine calls are awaited through `run`."""

    def __init__(self, layer: Any, run: Run) -> None:
        self.layer = layer
        self.run = run

    def __getattr__(self, name: str) -> Any:
        value = getattr(self.layer, name)  # a namespace's refusal raises AttributeError here
        if name == "watch":
            return lambda *args, **kwargs: BlockingWatch(value(*args, **kwargs), self.run)
        if not inspect.iscoroutinefunction(value):
            return value
        return lambda *args, **kwargs: self.run(value(*args, **kwargs))

    def __enter__(self) -> BlockingLayer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.run(self.layer.__aexit__(None, None, None))


@contextlib.contextmanager
def async_layer_of(
    make_layer: Callable[[AsyncClient], object], etcd_server: EtcdServer, **options: Any
) -> Iterator[Any]:
    """Yield `make_layer(acli)` behind BlockingLayer, `acli` a connected AsyncClient."""
    options = {**etcd_server.client_options(), **options}
    facade = AsyncClientFacade(lambda: ASYNC_CLIENT(etcd_server.endpoints, **options))
    try:
        yield BlockingLayer(make_layer(facade.client), facade.run)
    finally:
        facade.close()


class Store:
    """Where one test's clients connect, and of which kind they are (one of ALL_KINDS).

    A real server (`server`) for the kinds "Client" and "AsyncClient", a MemoryEtcd
    (`memory`) for "memory" (its sync client) and "memory-async" (its asyncio client, behind
    a sync facade). Every client or layer made here is closed with the store.
    """

    def __init__(self, kind: str, *, server: EtcdServer | None = None, memory: Any = None) -> None:
        self.kind = kind
        self.server = server
        self.memory = memory
        self._closers: list[Callable[[], object]] = []

    @property
    def is_async(self) -> bool:
        """Whether the store's clients (and layers) are of the asyncio kind."""
        return self.kind in ("AsyncClient", "memory-async")

    def client(self, **options: Any) -> Client:
        """A new client of the store's kind (an asyncio one behind its sync facade).

        `options` are `Client`'s keywords; a MemoryEtcd's clients take none (only `timeout`
        is accepted, and ignored: nothing there waits on a network).
        """
        if not self.is_async:
            return self.sync_client(**options)
        client = cast(Client, AsyncClientFacade(self._async_maker(**options)))
        self._closers.append(client.close)
        return client

    def sync_client(self, **options: Any) -> Client:
        """A new sync client on the store, to seed and inspect what a test's layer did."""
        if self.memory is not None:
            client = cast(Client, self.memory.client())
        else:
            assert self.server is not None
            client = Client(self.server.endpoints, **{**self.server.client_options(), **options})
        self._closers.append(client.close)
        return client

    def _async_maker(self, **options: Any) -> Callable[[], Any]:
        if self.memory is not None:
            return cast(Callable[[], Any], self.memory.async_client)
        server = self.server
        assert server is not None
        return lambda: ASYNC_CLIENT(server.endpoints, **{**server.client_options(), **options})

    @contextlib.contextmanager
    def layer(self, make_layer: Callable[[Any], object], **options: Any) -> Iterator[Any]:
        """Yield `make_layer(client)` over a new client of the store's kind.

        An async layer comes behind `BlockingLayer`, so that one test body checks both kinds.
        """
        if not self.is_async:
            yield make_layer(self.client(**options))
            return
        facade = AsyncClientFacade(self._async_maker(**options))
        try:
            yield BlockingLayer(make_layer(facade.client), facade.run)
        finally:
            facade.close()

    def close(self) -> None:
        """Close every client made here, the last made first."""
        with contextlib.ExitStack() as stack:
            for close in self._closers:
                stack.callback(close)
        self._closers.clear()


def is_memory(kind: str) -> bool:
    """Whether `kind` runs on MemoryEtcd."""
    return kind in MEMORY_KINDS
