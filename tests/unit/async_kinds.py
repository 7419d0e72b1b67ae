"""Run a sync layer test against the async layer too: an async speaker over a sync recording fake,
and a blocking facade over the async layer built on it.

`AsyncOver(fake)` speaks the async Protocols: each of its calls is a coroutine function that
calls the sync fake's method of that name (so the fake records, and answers, as in the sync
tests). `Blocking(layer, loop)` runs the async layer's coroutines to their end on `loop`, so
one test body checks what both kinds of layer send, return and raise.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable, Coroutine, Generator, Iterator
from typing import Any, Final

# The calls an AsyncClient makes coroutines of (the rest, `watch`, `switch_endpoint`,
# `endpoints` and plain attributes, are what the fake has).
ASYNC_CALLS: Final = (
    "put",
    "get",
    "delete",
    "txn",
    "do",
    "compact",
    "close",
    "set_endpoints",
    "grant",
    "revoke",
    "leases",
    "keep_alive_once",
    "keep_alive",
    "time_to_live",
    "request_progress",
    "member_list",
    "user_add",
    "snapshot",
    "role_get",
    "role_grant_permission",
    "role_revoke_permission",
)


def _async_call(name: str) -> Callable[..., Coroutine[Any, Any, Any]]:
    async def call(self: AsyncOver, *args: Any, **kwargs: Any) -> Any:
        return getattr(self.wrapped_fake, name)(*args, **kwargs)

    call.__name__ = call.__qualname__ = name
    return call


class AsyncWatchOver:
    """An async watch over the sync fake's watch handle: it hands out the fake's responses."""

    def __init__(self, watch: Any) -> None:
        self.wrapped_fake = watch

    async def __aiter__(self) -> AsyncIterator[Any]:
        for response in self.wrapped_fake:
            yield response

    async def next(self, timeout: float | None = None) -> Any:
        return self.wrapped_fake.next(timeout)

    async def cancel(self) -> None:
        self.wrapped_fake.cancel()

    async def __aenter__(self) -> AsyncWatchOver:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.cancel()


class AsyncWatchStartOver:
    """What `AsyncOver.watch()` returns: awaited or entered, an AsyncWatchOver."""

    def __init__(self, start: Callable[[], Any]) -> None:
        self.start = start
        self.watch: AsyncWatchOver | None = None

    async def _started(self) -> AsyncWatchOver:
        self.watch = AsyncWatchOver(self.start())
        return self.watch

    def __await__(self) -> Generator[Any, None, AsyncWatchOver]:
        return self._started().__await__()

    async def __aenter__(self) -> AsyncWatchOver:
        return await self._started()

    async def __aexit__(self, *exc_info: object) -> None:
        assert self.watch is not None
        await self.watch.cancel()


class AsyncOver:
    """An async speaker whose calls are coroutine functions calling the sync fake's methods."""

    def __init__(self, fake: Any) -> None:
        self.wrapped_fake = fake

    def watch(self, key: bytes, **options: Any) -> AsyncWatchStartOver:
        return AsyncWatchStartOver(lambda: self.wrapped_fake.watch(key, **options))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.wrapped_fake, name)  # endpoints, switch_endpoint, markers ...


for _name in ASYNC_CALLS:
    setattr(AsyncOver, _name, _async_call(_name))


class BlockingWatch:
    """A sync facade over an async watch handle (or the start that gives one)."""

    def __init__(self, start: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.handle = loop.run_until_complete(_awaited(start))

    def __iter__(self) -> Iterator[Any]:
        iterator = self.handle.__aiter__()
        while True:
            try:
                yield self.loop.run_until_complete(iterator.__anext__())
            except StopAsyncIteration:
                return

    def next(self, timeout: float | None = None) -> Any:
        return self.loop.run_until_complete(self.handle.next(timeout))

    def cancel(self) -> None:
        self.loop.run_until_complete(self.handle.cancel())

    def __enter__(self) -> BlockingWatch:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.loop.run_until_complete(self.handle.__aexit__(None, None, None))


async def _awaited(start: Any) -> Any:
    return await start


class Blocking:
    """A sync facade over an async layer: coroutine calls run to their end on `loop`.

    Attributes the layer refuses raise its AttributeError; plain attributes are the layer's.
    """

    def __init__(self, layer: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.layer = layer
        self.loop = loop

    def __getattr__(self, name: str) -> Any:
        value = getattr(self.layer, name)
        if name == "watch":
            return lambda *args, **kwargs: BlockingWatch(value(*args, **kwargs), self.loop)
        if not inspect.iscoroutinefunction(value):
            return value
        return lambda *args, **kwargs: self.loop.run_until_complete(value(*args, **kwargs))

    def __enter__(self) -> Blocking:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.loop.run_until_complete(self.layer.__aexit__(None, None, None))


KINDS: Final = ("sync", "async")


def layer_of_kind(kind: str, wrap: Callable[..., Any], fake: Any, *args: Any, **kwargs: Any) -> Any:
    """Return `wrap(fake, ...)` for "sync", or `wrap(AsyncOver(fake), ...)` behind `Blocking`."""
    if kind == "sync":
        return wrap(fake, *args, **kwargs)
    loop = asyncio.new_event_loop()
    _LOOPS.append(loop)
    return Blocking(wrap(AsyncOver(fake), *args, **kwargs), loop)


_LOOPS: list[asyncio.AbstractEventLoop] = []


def close_loops() -> None:
    """Close every loop `layer_of_kind` made (a fixture calls it after each test)."""
    while _LOOPS:
        _LOOPS.pop().close()
