"""Run a Mirror test against each kind: Mirror and AsyncMirror, each plain and in a namespace.

`open_mirror(kind, ...)` yields a `Follower`: the Mirror itself, or an AsyncMirror on an
AsyncClient whose event loop runs in a thread of its own (conftest's `AsyncClientFacade`),
behind a blocking facade, so one test body checks both. In the namespace kinds the mirror is
built on `namespace.wrap(client, prefix)` over the prefix `""`: its keys are relative.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final, Protocol

from conftest import AsyncClientFacade

from etcd_layers import AsyncClient, Client, namespace
from etcd_layers.base import Event
from etcd_layers.mirror import AsyncMirror, Mirror

KINDS: Final = ("Mirror", "AsyncMirror", "Mirror-namespace", "AsyncMirror-namespace")


class Follower(Protocol):
    """What the tests use of a Mirror (the sync one's signatures)."""

    @property
    def revision(self) -> int: ...
    @property
    def closed(self) -> bool: ...
    def get(self, key: bytes | str) -> bytes | None: ...
    def items(self) -> dict[bytes, bytes]: ...
    def __len__(self) -> int: ...
    def wait(self, revision: int, *, timeout: float | None = None) -> None: ...
    def subscribe(
        self, callback: Callable[[list[Event]], object], *, replay: bool = False
    ) -> Callable[[], None]: ...
    def close(self) -> None: ...


class BlockingMirror:
    """An AsyncMirror driven from a test thread: coroutines run on the facade's loop."""

    def __init__(self, mirror: AsyncMirror, facade: AsyncClientFacade) -> None:
        self.mirror = mirror
        self.facade = facade

    @property
    def revision(self) -> int:
        return self.mirror.revision

    @property
    def closed(self) -> bool:
        return self.mirror.closed

    def get(self, key: bytes | str) -> bytes | None:
        return self.mirror.get(key)

    def items(self) -> dict[bytes, bytes]:
        return self.facade.run(_call(self.mirror.items))

    def __len__(self) -> int:
        return len(self.mirror)

    def wait(self, revision: int, *, timeout: float | None = None) -> None:
        self.facade.run(self.mirror.wait(revision, timeout=timeout))

    def subscribe(
        self, callback: Callable[[list[Event]], object], *, replay: bool = False
    ) -> Callable[[], None]:
        unsubscribe = self.facade.run(_call(self.mirror.subscribe, callback, replay=replay))
        return lambda: self.facade.run(_call(unsubscribe))

    def close(self) -> None:
        self.facade.run(self.mirror.close())


async def _call(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return function(*args, **kwargs)  # on the loop: the mirror's task is not running meanwhile


def is_namespaced(kind: str) -> bool:
    """Whether `kind` mirrors through a namespace."""
    return kind.endswith("-namespace")


@contextlib.contextmanager
def open_mirror(
    kind: str,
    endpoints: list[str],
    prefix: bytes,
    client_options: Mapping[str, Any] | None = None,
    **mirror_options: Any,
) -> Iterator[Follower]:
    """Yield a started mirror of `prefix` of `kind` on a client of `endpoints`; close both."""
    options = client_options or {}
    if kind.startswith("AsyncMirror"):
        facade = AsyncClientFacade(lambda: AsyncClient(endpoints, **options))
        try:
            speaker: Any = facade.client
            if is_namespaced(kind):
                speaker = namespace.wrap(speaker, prefix)
            mirror = AsyncMirror(speaker, b"" if is_namespaced(kind) else prefix, **mirror_options)
            facade.run(mirror.start())
            try:
                yield BlockingMirror(mirror, facade)
            finally:
                facade.run(mirror.close())
        finally:
            facade.close()
        return
    with Client(endpoints, **options) as cli:
        layer: Any = namespace.wrap(cli, prefix) if is_namespaced(kind) else cli
        with Mirror(layer, b"" if is_namespaced(kind) else prefix, **mirror_options) as m:
            yield m


def expected_items(writer: Client, prefix: bytes, kind: str) -> dict[bytes, bytes]:
    """A fresh read of `prefix`, keyed as the mirror of `kind` keys it."""
    cut = len(prefix) if is_namespaced(kind) else 0
    return {kv.key[cut:]: kv.value for kv in writer.get(prefix, prefix=True).kvs}


def key_in(kind: str, prefix: bytes, key: bytes) -> bytes:
    """`prefix + key` as the mirror of `kind` names it."""
    return key if is_namespaced(kind) else prefix + key


async def _collect(pages: Any) -> list[Any]:
    return [page async for page in pages]


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


class Reader:
    """get_pages and Syncer on a client of one kind (the AsyncClient used as itself)."""

    def __init__(self, client: Any, facade: AsyncClientFacade | None) -> None:
        self.client = client
        self.facade = facade

    def wrap(self, prefix: bytes) -> Reader:
        """The same reader through `namespace.wrap(client, prefix)`."""
        return Reader(namespace.wrap(self.client, prefix), self.facade)

    def pages(self, pages: Any) -> list[Any]:
        """Every page of an iterator from get_pages or sync_base, read to the end."""
        if self.facade is None:
            return list(pages)
        return self.facade.run(_collect(pages))

    def watch(self, start: Any) -> Any:
        """A sync view of what sync_updates returned (a Watch, or an async watch start)."""
        if self.facade is None:
            return start
        from conftest import SyncStreamFacade

        return SyncStreamFacade(self.facade, self.facade.run(_awaited(start)))


@contextlib.contextmanager
def open_reader(kind: str, endpoints: list[str], options: Mapping[str, Any]) -> Iterator[Reader]:
    """Yield a Reader on a client of `kind` ("Client" or "AsyncClient")."""
    if kind == "AsyncClient":
        facade = AsyncClientFacade(lambda: AsyncClient(endpoints, **options))
        try:
            yield Reader(facade.client, facade)
        finally:
            facade.close()
        return
    with Client(endpoints, **options) as cli:
        yield Reader(cli, None)
