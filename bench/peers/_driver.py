"""The line protocol every peer driver speaks to bench_peers.py, and the timing around its calls.

Stdlib only: each driver runs in its own client library's virtualenv. A driver supplies an
object with `get`, `put`, `range`, `watch` and `close` (plain methods for a sync client,
coroutine functions for an asyncio one) and calls `serve` or `serve_async`. The coordinator
writes one JSON object per line on stdin and reads one JSON answer per line on stdout:

- `{"op": "setup", ...}` once: the endpoint, the keys and the watch history (`Setup`);
- `{"op": "get" | "put" | "range" | <extra>, "n": N}`: N calls, answered with each call's
  wall time in seconds, `{"samples": [...]}`;
- `{"op": "threads", "threads": T, "seconds": S}`: T threads (an asyncio client: T tasks)
  sharing the one client call `get` for S seconds: `{"calls": C, "seconds": S}`;
- `{"op": "watch"}`: one replay of the watch history from its start revision, timed from the
  watch call until the last event is in the consumer's hands: `{"seconds": W, "cpu": C}`
  (C is `time.process_time()`: every thread of the driver's process);
- `{"op": "quit"}`.

An operation the client cannot do raises `Unsupported`: the answer is `{"na": reason}`. Any
other exception is answered `{"error": ...}`. Whatever the library prints goes to stderr, so
stdout carries the protocol alone.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TextIO, TypeVar

_T = TypeVar("_T")


class Unsupported(Exception):  # noqa: N818 (a verdict, not an error)
    """The client library cannot perform this measurement (the message says why)."""


@dataclass(frozen=True)
class Setup:
    """What the coordinator seeded and where: every driver measures the same keys."""

    endpoint: str  # host:port of the etcd client URL
    get_key: bytes  # one key holding `value`
    put_key: bytes  # the key every put writes
    value: bytes  # the value every put writes
    range_prefix: bytes  # 1000 keys under this prefix
    range_count: int
    watch_prefix: bytes  # `watch_count` puts under this prefix, from `watch_start`
    watch_start: int
    watch_count: int

    @property
    def host(self) -> str:
        """The endpoint's host."""
        return self.endpoint.rsplit(":", 1)[0]

    @property
    def port(self) -> int:
        """The endpoint's port."""
        return int(self.endpoint.rsplit(":", 1)[1])

    @property
    def range_end(self) -> bytes:
        """The end of `range_prefix`'s range (the prefix with its last byte incremented)."""
        return prefix_end(self.range_prefix)

    @property
    def watch_end(self) -> bytes:
        """The end of `watch_prefix`'s range."""
        return prefix_end(self.watch_prefix)


def prefix_end(prefix: bytes) -> bytes:
    """The range end that selects every key starting with `prefix` (no 0xff byte in it)."""
    return prefix[:-1] + bytes([prefix[-1] + 1])


class SyncDriver(Protocol):
    """A sync client under test: each method is one measured call."""

    def get(self) -> None:
        """Get `get_key` and read its value."""

    def put(self) -> None:
        """Put `value` at `put_key`."""

    def range(self) -> None:
        """Get the `range_prefix` keys and read every key and value."""

    def watch(self) -> None:
        """Watch `watch_prefix` from `watch_start`; return once `watch_count` events are read."""

    def close(self) -> None:
        """Release the client."""


class AsyncDriver(Protocol):
    """An asyncio client under test: each coroutine is one measured call."""

    async def get(self) -> None:
        """As `SyncDriver.get`."""

    async def put(self) -> None:
        """As `SyncDriver.put`."""

    async def range(self) -> None:
        """As `SyncDriver.range`."""

    async def watch(self) -> None:
        """As `SyncDriver.watch`."""

    async def close(self) -> None:
        """As `SyncDriver.close`."""


def _protocol_out() -> TextIO:
    """Keep the real stdout for the protocol and send everything else printed to stderr."""
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return out


def _setup(message: dict[str, Any]) -> Setup:
    return Setup(
        endpoint=message["endpoint"],
        get_key=message["get_key"].encode(),
        put_key=message["put_key"].encode(),
        value=message["value"].encode(),
        range_prefix=message["range_prefix"].encode(),
        range_count=message["range_count"],
        watch_prefix=message["watch_prefix"].encode(),
        watch_start=message["watch_start"],
        watch_count=message["watch_count"],
    )


def _sync_threads(call: Callable[[], None], threads: int, seconds: float) -> dict[str, Any]:
    counts = [0] * threads
    failures: list[BaseException] = []
    start = threading.Barrier(threads + 1)
    stop = [0.0]

    def work(index: int) -> None:
        start.wait()
        try:
            while time.perf_counter() < stop[0]:
                call()
                counts[index] += 1
        except Exception as exc:  # noqa: BLE001 (reported to the coordinator)
            failures.append(exc)

    workers = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(threads)]
    for worker in workers:
        worker.start()
    stop[0] = time.perf_counter() + seconds
    began = time.perf_counter()
    start.wait()
    for worker in workers:
        worker.join(timeout=seconds + 60)
    elapsed = time.perf_counter() - began
    if failures:
        raise failures[0]
    return {"calls": sum(counts), "seconds": elapsed}


def _answer(out: TextIO, answer: dict[str, Any]) -> None:
    out.write(json.dumps(answer) + "\n")
    out.flush()


def _messages() -> Any:
    for line in sys.stdin:
        if line.strip():
            yield json.loads(line)


def _failure(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, Unsupported):
        return {"na": str(exc)}
    return {"error": f"{type(exc).__name__}: {exc}"[:300]}


def _ready(driver: _T | None) -> _T:
    if driver is None:
        raise RuntimeError("no setup yet")
    return driver


def serve(make: Callable[[Setup], SyncDriver]) -> None:
    """Answer the coordinator's requests with a sync driver built by `make`."""
    out = _protocol_out()
    driver: SyncDriver | None = None
    for message in _messages():
        op = message["op"]
        if op == "quit":
            break
        try:
            if op == "setup":
                driver = make(_setup(message))
                answer: dict[str, Any] = {"ok": True}
            elif op == "threads":
                answer = _sync_threads(_ready(driver).get, message["threads"], message["seconds"])
            elif op == "watch":
                wall, cpu = time.perf_counter(), time.process_time()
                _ready(driver).watch()
                answer = {
                    "seconds": time.perf_counter() - wall,
                    "cpu": time.process_time() - cpu,
                }
            else:
                call: Callable[[], None] = getattr(_ready(driver), op)
                samples = []
                for _ in range(message["n"]):
                    began = time.perf_counter()
                    call()
                    samples.append(time.perf_counter() - began)
                answer = {"samples": samples}
        except Exception as exc:  # noqa: BLE001 (reported to the coordinator)
            answer = _failure(exc)
        _answer(out, answer)
    if driver is not None:
        driver.close()


async def _async_threads(
    call: Callable[[], Awaitable[None]], tasks: int, seconds: float
) -> dict[str, Any]:
    counts = [0] * tasks
    stop = time.perf_counter() + seconds

    async def work(index: int) -> None:
        while time.perf_counter() < stop:
            await call()
            counts[index] += 1

    began = time.perf_counter()
    await asyncio.gather(*(work(i) for i in range(tasks)))
    return {"calls": sum(counts), "seconds": time.perf_counter() - began}


async def _async_op(driver: AsyncDriver, message: dict[str, Any]) -> dict[str, Any]:
    op = message["op"]
    if op == "threads":
        return await _async_threads(driver.get, message["threads"], message["seconds"])
    if op == "watch":
        wall, cpu = time.perf_counter(), time.process_time()
        await driver.watch()
        return {"seconds": time.perf_counter() - wall, "cpu": time.process_time() - cpu}
    call: Callable[[], Awaitable[None]] = getattr(driver, op)
    samples = []
    for _ in range(message["n"]):
        began = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - began)
    return {"samples": samples}


def serve_async(make: Callable[[Setup], Awaitable[AsyncDriver]]) -> None:
    """Answer the coordinator's requests with an asyncio driver built by `make`, on one loop."""
    out = _protocol_out()
    loop = asyncio.new_event_loop()
    driver: AsyncDriver | None = None
    try:
        for message in _messages():
            op = message["op"]
            if op == "quit":
                break
            try:
                if op == "setup":
                    driver = loop.run_until_complete(make(_setup(message)))
                    answer: dict[str, Any] = {"ok": True}
                else:
                    answer = loop.run_until_complete(_async_op(_ready(driver), message))
            except Exception as exc:  # noqa: BLE001 (reported to the coordinator)
                answer = _failure(exc)
            _answer(out, answer)
        if driver is not None:
            loop.run_until_complete(driver.close())
    finally:
        loop.close()
