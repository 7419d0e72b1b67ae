"""Run one recipe test body against the sync recipes and the asyncio ones.

`RecipeKit(kind, ...)` makes sessions and recipes of its kind. For "async", the AsyncClient,
its AsyncSessions and the async recipes live on an event loop in a thread of the kit's own,
and are handed out behind `Blocking`, which runs each coroutine method on that loop and waits
for it, so a test drives both kinds from real threads with one body.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import Future, wait
from typing import Any, Final, TypeVar

import pytest

from etcd_layers import AsyncClient, Client, namespace
from etcd_layers.concurrency import (
    AsyncBarrier,
    AsyncDoubleBarrier,
    AsyncPriorityQueue,
    AsyncQueue,
    AsyncRWMutex,
    AsyncSession,
    Barrier,
    DoubleBarrier,
    PriorityQueue,
    Queue,
    RWMutex,
    Session,
)
from etcd_layers.testing import ClientOptions, EtcdServer, wait_until

T = TypeVar("T")

SHORT: Final = 1.0  # how long "it still waits" is watched for
KINDS: Final = ("sync", "async")
# Each kind, alone and inside a namespace: the recipes must work through any layer.
KINDS_AND_LAYERS: Final = ("sync", "async", "sync-namespace", "async-namespace")
LONG_TTL: Final = 5  # sessions that must outlive the test (kept alive all along)


def still_waiting(*futures: Future[Any], seconds: float = SHORT) -> None:
    """Assert that none of `futures` finishes within `seconds` (a failure's error is raised)."""
    done, _ = wait(futures, timeout=seconds)
    for future in done:
        future.result()  # raises what went wrong
    assert not done, f"{len(done)} of {len(futures)} finished while they should wait"


class Loop:
    """An event loop running in a thread of its own."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="tests.recipe-loop", daemon=True
        )
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run `coroutine` on the loop and return its result (or raise its error)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def close(self) -> None:
        """Cancel what still runs, then stop the loop and join its thread."""

        async def drain() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self.run(drain())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


class Blocking:
    """A sync facade over an object of the loop: its coroutine methods are run and waited for."""

    def __init__(self, target: Any, loop: Loop) -> None:
        self.target = target
        self._loop = loop

    def __getattr__(self, name: str) -> Any:
        value = getattr(self.target, name)
        if not inspect.iscoroutinefunction(value):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._loop.run(value(*args, **kwargs))

        return call


class RecipeKit:
    """Sessions and recipes of one kind on one etcd, optionally inside a namespace.

    `raw` is always a sync Client on the same endpoints, outside any namespace, for checks.
    """

    def __init__(
        self, kind: str, endpoints: list[str], options: ClientOptions, prefix: bytes
    ) -> None:
        """Make a kit of `kind` ("sync" or "async", "-namespace" for one inside a namespace).

        Inside a namespace, the namespace is `prefix + b"ns/"` and names start empty;
        otherwise names start with `prefix`. `name(n)` is what to give a recipe, and
        `ns + name(n)` is the key on the server.
        """
        self.kind = kind
        layered = kind.endswith("-namespace")
        ns = prefix + b"ns/" if layered else b""
        self.ns = ns
        self._base = b"" if layered else prefix
        self.raw = Client(endpoints, **options)
        self._loop: Loop | None = None
        self._closers: list[Callable[[], None]] = []
        if kind.startswith("async"):
            self._loop = Loop()
            acli = self._loop.run(_connected(endpoints, options))
            self._closers.append(lambda: self._run(acli.close()))
            self.client: Any = namespace.wrap(acli, ns) if ns else acli
        else:
            plain = Client(endpoints, **options)
            self._closers.append(plain.close)
            self.client = namespace.wrap(plain, ns) if ns else plain

    def name(self, name: bytes) -> bytes:
        """Return the name to give a recipe for `name`, unique to the test."""
        return self._base + name

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        assert self._loop is not None
        return self._loop.run(coroutine)

    def _blocking(self, target: Any) -> Any:
        assert self._loop is not None
        return Blocking(target, self._loop)

    def session(self, ttl: int = LONG_TTL) -> Any:
        """Open a session of the kit's kind; it is closed with the kit if still open."""
        if self._loop is None:
            session = Session(self.client, ttl=ttl)
            self._closers.append(session.close)
            return session
        opened = self._run(AsyncSession(self.client, ttl=ttl).open())
        self._closers.append(lambda: self._run(opened.close()))
        return self._blocking(opened)

    def session_ended(self, session: Any, timeout: float) -> bool:
        """Wait until `session` is done; return whether it is."""
        wait_until(session.done.is_set, timeout=timeout, message="the session ended")
        return True

    def barrier(self, key: bytes) -> Any:
        """A Barrier (or AsyncBarrier) on the kit's client."""
        if self._loop is None:
            return Barrier(self.client, key)
        return self._blocking(AsyncBarrier(self.client, key))

    def double_barrier(self, session: Any, key: bytes, count: int) -> Any:
        """A DoubleBarrier (or AsyncDoubleBarrier) on `session`."""
        if self._loop is None:
            return DoubleBarrier(session, key, count)
        return self._blocking(AsyncDoubleBarrier(session.target, key, count))

    def queue(self, prefix: bytes) -> Any:
        """A Queue (or AsyncQueue) on the kit's client."""
        if self._loop is None:
            return Queue(self.client, prefix)
        return self._blocking(AsyncQueue(self.client, prefix))

    def priority_queue(self, prefix: bytes) -> Any:
        """A PriorityQueue (or AsyncPriorityQueue) on the kit's client."""
        if self._loop is None:
            return PriorityQueue(self.client, prefix)
        return self._blocking(AsyncPriorityQueue(self.client, prefix))

    def rwmutex(self, session: Any, prefix: bytes) -> Any:
        """An RWMutex (or AsyncRWMutex) on `session`."""
        if self._loop is None:
            return RWMutex(session, prefix)
        return self._blocking(AsyncRWMutex(session.target, prefix))

    def keys(self, name: bytes) -> list[bytes]:
        """The keys under the recipe name `name` as the server has them, in key order."""
        return [kv.key for kv in self.raw.get(self.ns + name, prefix=True).kvs]

    def close(self) -> None:
        """Close every session, the clients and the loop."""
        try:
            for close in reversed(self._closers):
                close()
        finally:
            if self._loop is not None:
                self._loop.close()
            self.raw.close()


async def _connected(endpoints: list[str], options: ClientOptions) -> AsyncClient:
    client = AsyncClient(endpoints, **options)
    try:
        return await client.connect()
    except BaseException:
        await client.close()
        raise


# The fixtures every recipe module uses: import them by name (pytest finds imported fixtures).


def make_kit(
    request: pytest.FixtureRequest, server: EtcdServer, prefix: bytes
) -> Iterator[RecipeKit]:
    """A RecipeKit of the fixture's parameter on `server`, closed after the test."""
    kit = RecipeKit(request.param, server.endpoints, server.client_options(), prefix)
    try:
        yield kit
    finally:
        kit.close()


@pytest.fixture(params=KINDS_AND_LAYERS)
def kit(
    request: pytest.FixtureRequest, etcd_server: EtcdServer, etcd_key_prefix: bytes
) -> Iterator[RecipeKit]:
    """Each client kind, plain and through layers."""
    yield from make_kit(request, etcd_server, etcd_key_prefix)


@pytest.fixture(params=KINDS)
def plain_kit(
    request: pytest.FixtureRequest, etcd_server: EtcdServer, etcd_key_prefix: bytes
) -> Iterator[RecipeKit]:
    """Each client kind, on the client itself."""
    yield from make_kit(request, etcd_server, etcd_key_prefix)
