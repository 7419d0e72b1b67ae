"""Run a sync layer test against the async layer too: a blocking facade over an async layer.

`Store.layer(make_layer)` builds the layer over an AsyncClient that runs on the event loop
of conftest's `AsyncClientFacade`, and hands it out behind `BlockingLayer`, which awaits each
coroutine call on that loop, so one test body checks both kinds of layer. `Backend`
(conftest's `backend` fixture) is what a test's clients connect to: the real `etcd_server`
or a MemoryEtcd; `Store` (the `store` fixture) adds the kind of client.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, Final, TypeVar, cast

import pytest
from conftest import AsyncClientFacade

from etcd_layers import AsyncClient, Client
from etcd_layers.testing import EtcdCluster

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


class Backend:
    """The store a test's clients connect to: the real `server`, or a MemoryEtcd (`memory`).

    Every client made here is closed with it.
    """

    def __init__(self, *, server: EtcdCluster | None = None, memory: Any = None) -> None:
        self.server = server
        self.memory = memory
        self._closers: list[Callable[[], object]] = []

    @property
    def name(self) -> str:
        """ "memory" for a MemoryEtcd, "etcd" for a real server (see conftest.BACKENDS)."""
        return "etcd" if self.memory is None else "memory"

    def client(self, **options: Any) -> Client:
        """A new sync client (`options` are Client's keywords; a MemoryEtcd's takes `timeout`)."""
        if self.memory is not None:
            client = cast(Client, self.memory.client(timeout=options.get("timeout")))
        else:
            assert self.server is not None
            client = Client(self.server.endpoints, **{**self.server.client_options(), **options})
        self._closers.append(client.close)
        return client

    def make_async_client(self, **options: Any) -> Callable[[], AsyncClient]:
        """A maker of AsyncClients (to call on the event loop that will use the client)."""
        if self.memory is not None:
            memory = self.memory
            return lambda: cast(AsyncClient, memory.async_client(timeout=options.get("timeout")))
        server = self.server
        assert server is not None
        return lambda: ASYNC_CLIENT(server.endpoints, **{**server.client_options(), **options})

    def async_client(self, **options: Any) -> Client:
        """A new AsyncClient behind its sync facade (see conftest.AsyncClientFacade)."""
        facade = AsyncClientFacade(self.make_async_client(**options))
        self._closers.append(facade.close)
        return cast(Client, facade)

    def close(self) -> None:
        """Close every client made here."""
        with contextlib.ExitStack() as stack:
            for close in self._closers:
                stack.callback(close)
        self._closers.clear()


class Store:
    """A backend and a kind of client ("Client" or "AsyncClient"): what one test runs on."""

    def __init__(self, backend: Backend, kind: str) -> None:
        self.backend = backend
        self.kind = kind

    def client(self, **options: Any) -> Client:
        """A new client of the store's kind (an AsyncClient behind its sync facade)."""
        if self.kind == "AsyncClient":
            return self.backend.async_client(**options)
        return self.backend.client(**options)

    @contextlib.contextmanager
    def layer(self, make_layer: Callable[[Any], object], **options: Any) -> Iterator[Any]:
        """Yield `make_layer(client)` over a new client of the store's kind.

        An async layer comes behind `BlockingLayer`, so that one test body checks both kinds.
        """
        if self.kind != "AsyncClient":
            yield make_layer(self.client(**options))
            return
        facade = AsyncClientFacade(self.backend.make_async_client(**options))
        try:
            yield BlockingLayer(make_layer(facade.client), facade.run)
        finally:
            facade.close()
