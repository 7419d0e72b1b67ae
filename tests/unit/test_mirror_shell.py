"""The Mirror and AsyncMirror shells over a recording fake with canned answers (no server).

The fake answers the load's range requests with canned pages and hands out scripted watches:
each yields its canned responses or raises its canned error, then waits until canceled. The
tests check what the shells ask (where each watch starts) and what they make of the answers:
a restarted watch applies nothing twice, a compaction reloads and reports the difference, a
closed client stops the mirror, a quiet prefix is proven by one read.
"""

from __future__ import annotations

import asyncio
import collections
import threading
from collections.abc import Callable, Coroutine, Generator, Iterator
from typing import Any, Final, TypeVar

import pytest

from etcd_layers import errors
from etcd_layers.base import (
    Event,
    EventType,
    GetOp,
    GetResponse,
    KeyValue,
    ResponseHeader,
    TxnOp,
    TxnResponse,
    WatchResponse,
)
from etcd_layers.mirror import AsyncMirror, Mirror

T = TypeVar("T")
WAIT: Final = 5.0
Item = WatchResponse | errors.EtcdError


def kv(key: bytes, revision: int) -> KeyValue:
    return KeyValue(key, b"v%d" % revision, mod_revision=revision)


def page(revision: int, *kvs: KeyValue) -> GetResponse:
    return GetResponse(ResponseHeader(revision=revision), list(kvs), len(kvs))


def puts(*kvs: KeyValue) -> WatchResponse:
    return WatchResponse(ResponseHeader(), [Event(EventType.PUT, one) for one in kvs])


def counts(total: int, modified: int) -> TxnResponse:
    header = ResponseHeader(revision=1)
    return TxnResponse(
        header, True, [GetResponse(header, count=total), GetResponse(header, count=modified)]
    )


class Fake:
    """Canned answers, and a record of the watches' start revisions and the ops sent."""

    def __init__(
        self,
        pages: list[GetResponse | errors.EtcdError],
        watches: list[list[Item] | errors.EtcdError],
    ) -> None:
        self.pages = collections.deque(pages)
        self.watches = collections.deque(watches)
        self.checks: collections.deque[TxnResponse] = collections.deque()
        self.starts: list[int] = []
        self.ops: list[object] = []
        self.gate = threading.Event()  # watches hand out nothing until it is set
        self.gate.set()

    def answer(self, op: object) -> object:
        self.ops.append(op)
        if isinstance(op, GetOp):
            answer = self.pages.popleft()
            if isinstance(answer, errors.EtcdError):
                raise answer
            return answer
        if isinstance(op, TxnOp) and self.checks:
            return self.checks.popleft()
        raise errors.UnavailableError("no canned answer")

    def script(self, options: dict[str, Any]) -> list[Item]:
        self.starts.append(options["start_revision"])
        if not self.watches:
            raise errors.CanceledError("the client is closed")
        script = self.watches.popleft()
        if isinstance(script, errors.EtcdError):
            raise script
        return script


class SyncWatch:
    def __init__(self, items: list[Item], gate: threading.Event) -> None:
        self.items = collections.deque(items)
        self.gate = gate
        self.canceled = threading.Event()

    def next(self, timeout: float | None = None) -> WatchResponse:
        if not self.gate.wait(timeout):
            raise TimeoutError
        if self.items:
            item = self.items.popleft()
            if isinstance(item, errors.EtcdError):
                raise item
            return item
        if self.canceled.wait(timeout):
            raise errors.CanceledError("canceled")
        raise TimeoutError

    def cancel(self) -> None:
        self.canceled.set()


class SyncFake:
    """A sync KV + Watcher over the canned answers."""

    def __init__(self, fake: Fake) -> None:
        self.fake = fake

    def do(self, op: object, *, timeout: float | None = None) -> object:
        return self.fake.answer(op)

    def watch(self, key: bytes, **options: Any) -> SyncWatch:
        return SyncWatch(self.fake.script(options), self.fake.gate)


class AsyncWatch:
    def __init__(self, items: list[Item], gate: threading.Event) -> None:
        self.items = collections.deque(items)
        self.gate = gate
        self.canceled = asyncio.Event()

    async def next(self, timeout: float | None = None) -> WatchResponse:
        if not self.gate.is_set():  # wait for it in a worker thread: the loop goes on
            opened = await asyncio.get_running_loop().run_in_executor(None, self.gate.wait, timeout)
            if not opened:
                raise TimeoutError
        if self.items:
            item = self.items.popleft()
            if isinstance(item, errors.EtcdError):
                raise item
            return item
        try:
            await asyncio.wait_for(self.canceled.wait(), timeout)
        except asyncio.TimeoutError:  # as the real watch: the builtin (3.10's differs)
            raise TimeoutError from None
        raise errors.CanceledError("canceled")

    async def cancel(self) -> None:
        self.canceled.set()


class AsyncStart:
    def __init__(self, start: Callable[[], AsyncWatch]) -> None:
        self.start = start

    def __await__(self) -> Generator[Any, None, AsyncWatch]:
        return self._started().__await__()

    async def _started(self) -> AsyncWatch:
        return self.start()


class AsyncFake:
    """An async KV + Watcher over the canned answers."""

    def __init__(self, fake: Fake) -> None:
        self.fake = fake

    async def do(self, op: object, *, timeout: float | None = None) -> object:
        return self.fake.answer(op)

    def watch(self, key: bytes, **options: Any) -> AsyncStart:
        return AsyncStart(lambda: AsyncWatch(self.fake.script(options), self.fake.gate))


class Loop:
    """An event loop in a thread of its own, for driving an AsyncMirror from the test."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="test.mirror.loop")
        self.thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(WAIT * 2)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(WAIT)
        self.loop.close()


class Driven:
    """One mirror of either kind, driven from the test thread."""

    def __init__(self, mirror: Any, loop: Loop | None) -> None:
        self.mirror = mirror
        self.loop = loop

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        method = getattr(self.mirror, name)
        if self.loop is None:
            return method(*args, **kwargs)

        async def on_loop() -> Any:
            result = method(*args, **kwargs)
            return await result if asyncio.iscoroutine(result) else result

        return self.loop.run(on_loop())


@pytest.fixture(params=("Mirror", "AsyncMirror"))
def open_mirror(request: pytest.FixtureRequest) -> Iterator[Callable[[Fake], Driven]]:
    """Build a started mirror of each kind on a fake; close it (and its loop) afterwards."""
    opened: list[Driven] = []
    loop = Loop() if request.param == "AsyncMirror" else None

    def build(fake: Fake) -> Driven:
        if loop is None:
            driven = Driven(Mirror(SyncFake(fake), b"p/", timeout=WAIT), None)  # type: ignore[arg-type]
        else:
            mirror = AsyncMirror(AsyncFake(fake), b"p/", timeout=WAIT)  # type: ignore[arg-type]
            loop.run(mirror.start())
            driven = Driven(mirror, loop)
        opened.append(driven)
        return driven

    try:
        yield build
    finally:
        for driven in opened:
            driven.call("close")
        if loop is not None:
            loop.close()


class Seen:
    def __init__(self) -> None:
        self.batches: list[list[Event]] = []

    def __call__(self, events: list[Event]) -> None:
        self.batches.append(events)


def test_a_restarted_watch_applies_nothing_twice(open_mirror: Callable[[Fake], Driven]) -> None:
    """A watch that ends is restarted after the last event; events it repeats are skipped."""
    fake = Fake(
        [page(10, kv(b"a", 5))],
        [[puts(kv(b"b", 11)), errors.CanceledError("ended")], [puts(kv(b"b", 11), kv(b"c", 12))]],
    )
    fake.gate.clear()
    m = open_mirror(fake)
    seen = Seen()
    m.call("subscribe", seen)
    fake.gate.set()
    m.call("wait", 12, timeout=WAIT)
    assert fake.starts == [11, 12]
    assert m.call("items") == {b"a": b"v5", b"b": b"v11", b"c": b"v12"}
    assert [[event.kv.mod_revision for event in batch] for batch in seen.batches] == [[11], [12]]
    assert m.call("get_kv", "c") == kv(b"c", 12)


def test_a_compaction_reloads_and_reports_the_difference(
    open_mirror: Callable[[Fake], Driven],
) -> None:
    """A compacted watch reloads the prefix; subscribers get the difference, in key order."""
    fake = Fake(
        [page(10, kv(b"a", 5), kv(b"b", 6)), page(20, kv(b"a", 5), kv(b"c", 18))],
        [[errors.CompactedError("compacted", 15)], []],
    )
    fake.gate.clear()
    m = open_mirror(fake)
    seen = Seen()
    m.call("subscribe", seen)
    fake.gate.set()
    m.call("wait", 20, timeout=WAIT)
    assert fake.starts == [11, 21]
    assert m.call("snapshot") == (20, {b"a": kv(b"a", 5), b"c": kv(b"c", 18)})
    assert seen.batches == [
        [
            Event(EventType.DELETE, KeyValue(b"b", mod_revision=20), kv(b"b", 6)),
            Event(EventType.PUT, kv(b"c", 18), None),
        ]
    ]


def test_a_failed_reload_is_retried(open_mirror: Callable[[Fake], Driven]) -> None:
    """A reload that fails is tried again (after a back-off), not skipped for a restart."""
    fake = Fake(
        [page(10, kv(b"a", 5)), errors.UnavailableError("down"), page(20, kv(b"b", 19))],
        [[errors.CompactedError("compacted", 15)], []],
    )
    m = open_mirror(fake)
    m.call("wait", 20, timeout=WAIT)
    assert fake.starts == [11, 21]
    assert m.call("items") == {b"b": b"v19"}


def test_a_closed_client_stops_the_mirror(open_mirror: Callable[[Fake], Driven]) -> None:
    """A watch that cannot start again because the client is closed ends the mirror."""
    fake = Fake([page(10, kv(b"a", 5))], [[errors.CanceledError("ended")]])
    m = open_mirror(fake)
    with pytest.raises(errors.CanceledError):
        m.call("wait", 11, timeout=WAIT)
    assert m.mirror.closed
    assert m.call("get", b"a") == b"v5"  # the copy stays readable


def test_a_failing_restart_is_retried(open_mirror: Callable[[Fake], Driven]) -> None:
    """A watch that fails to start again is retried after a back-off, from the same place."""
    fake = Fake(
        [page(10)],
        [[errors.UnavailableError("down")], errors.UnavailableError("down"), [puts(kv(b"k", 11))]],
    )
    m = open_mirror(fake)
    m.call("wait", 11, timeout=WAIT)
    assert fake.starts == [11, 11, 11]
    assert m.call("get", "k") == b"v11"


def test_wait_proves_a_quiet_prefix_with_one_read(open_mirror: Callable[[Fake], Driven]) -> None:
    """A revision outside the prefix is confirmed by counting keys at it."""
    fake = Fake([page(10, kv(b"a", 5))], [[]])
    fake.checks.append(counts(total=1, modified=0))
    m = open_mirror(fake)
    m.call("wait", 15, timeout=WAIT)
    assert m.mirror.revision == 15
    (check,) = [op for op in fake.ops if isinstance(op, TxnOp)]
    _total, modified = check.success
    assert isinstance(modified, GetOp)
    assert (modified.revision, modified.min_mod_revision) == (15, 11)


def test_wait_times_out_while_the_prefix_is_not_proven_quiet(
    open_mirror: Callable[[Fake], Driven],
) -> None:
    """A key changed after the copy's revision: the wait goes on, and times out (builtin)."""
    fake = Fake([page(10, kv(b"a", 5))], [[]])
    fake.checks.append(counts(total=1, modified=1))
    m = open_mirror(fake)
    with pytest.raises(TimeoutError):
        m.call("wait", 15, timeout=0.3)
    assert m.mirror.revision == 10


def test_reads_take_str_and_bytes_keys(open_mirror: Callable[[Fake], Driven]) -> None:
    """get, get_kv, `in` and len answer from memory, for str and bytes keys alike."""
    m = open_mirror(Fake([page(10, kv(b"a", 5), kv(b"b", 6))], [[]]))
    assert (m.call("get", b"a"), m.call("get", "b"), m.call("get", "zz")) == (b"v5", b"v6", None)
    assert m.call("__contains__", "a")
    assert not m.call("__contains__", b"c")
    assert m.call("__len__") == 2
    with pytest.raises(TypeError):
        m.call("get", 3)


def test_pages_are_loaded_at_the_first_page_revision(
    open_mirror: Callable[[Fake], Driven],
) -> None:
    """A load of several pages asks for each later page at the first page's revision."""
    first = GetResponse(ResponseHeader(revision=10), [kv(b"a", 5)], 2, more=True)
    fake = Fake([first, page(12, kv(b"b", 6))], [[]])
    m = open_mirror(fake)
    gets = [op for op in fake.ops if isinstance(op, GetOp)]
    assert [(op.key, op.revision) for op in gets] == [(b"p/", 0), (b"a\x00", 10)]
    assert m.call("items") == {b"a": b"v5", b"b": b"v6"}
    assert m.mirror.revision == 10
