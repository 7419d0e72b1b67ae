"""Run a sync layer test against the async layer too: a blocking facade over an async layer.

`async_layer_of(make_layer, etcd_server)` builds the layer over an AsyncClient that runs on
the event loop of conftest's `AsyncClientFacade`, and hands it out behind `BlockingLayer`,
which awaits each coroutine call on that loop, so one test body checks both kinds of layer.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, Final, TypeVar

import pytest
from conftest import AsyncClientFacade

from etcd_layers import AsyncClient
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
