"""AsyncClient.watch against a real etcd: every option, cancellation, back-pressure, loop lag."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from layer_kinds import Backend

from etcd_layers import AsyncClient, EventType, Op, errors
from etcd_layers.base import AsyncWatch, watch_mux
from etcd_layers.testing import EtcdServer

TIMEOUT = 5.0
LARGE_VALUE = b"x" * 1000
MAX_REQUEST_BYTES = 64 * 1024  # as test_watch.py: etcd fragments early
FRAGMENTED_KEYS = 1300

pytestmark = pytest.mark.asyncio


@pytest.fixture(scope="module")
def tuned_server() -> Iterator[EtcdServer]:
    """A server that sends progress notifications every 300 ms and fragments early."""
    with EtcdServer(
        extra_args=[
            "--experimental-watch-progress-notify-interval=300ms",
            f"--max-request-bytes={MAX_REQUEST_BYTES}",
        ]
    ) as server:
        yield server


@pytest.fixture
def acli(backend_async_client: AsyncClient) -> AsyncClient:
    """A connected AsyncClient on the session's server, then on a MemoryEtcd."""
    return backend_async_client


@pytest_asyncio.fixture
async def tuned_client(tuned_server: EtcdServer) -> AsyncIterator[AsyncClient]:
    """An AsyncClient on `tuned_server`."""
    async with AsyncClient(endpoints=tuned_server.endpoints) as cli:
        yield cli


async def events_of(watch: AsyncWatch, count: int) -> list[tuple[EventType, bytes, bytes]]:
    """Read `count` events (type, key, value) from `watch`, each within TIMEOUT."""
    found: list[tuple[EventType, bytes, bytes]] = []
    while len(found) < count:
        response = await watch.next(timeout=TIMEOUT)
        found += [(e.type, e.kv.key, e.kv.value) for e in response.events]
    return found


async def assert_silent(watch: AsyncWatch, seconds: float = 0.3) -> None:
    """Nothing arrives on `watch` within `seconds`."""
    with pytest.raises(TimeoutError):
        await watch.next(timeout=seconds)


# --- keys, ranges and options --------------------------------------------------------------


async def test_async_watch_key_delivers_puts_and_deletes_in_order(
    acli: AsyncClient, etcd_key_prefix: bytes
) -> None:
    """`async with cli.watch(key)` yields the key's puts and deletes in order, nothing else."""
    key = etcd_key_prefix + b"k"
    async with acli.watch(key) as watch:
        await acli.put(key, "1")
        await acli.put(etcd_key_prefix + b"other", "x")
        await acli.delete(key)
        assert await events_of(watch, 2) == [
            (EventType.PUT, key, b"1"),
            (EventType.DELETE, key, b""),
        ]
        await assert_silent(watch)


async def test_async_watch_is_awaitable(acli: AsyncClient, etcd_key_prefix: bytes) -> None:
    """`w = await cli.watch(...)` returns a confirmed watch that `async for` reads."""
    watch = await acli.watch(etcd_key_prefix, prefix=True)
    await acli.put(etcd_key_prefix + b"a", "1")
    async for response in watch:
        assert [e.kv.key for e in response.events] == [etcd_key_prefix + b"a"]
        break
    await watch.cancel()
    assert [r async for r in watch] == []


@pytest.mark.parametrize(
    ("kwargs", "seen", "unseen"),
    [
        ({"prefix": True}, [b"a", b"a/b"], [b"b"]),
        ({"range_end": "c"}, [b"a", b"b"], [b"c"]),
        ({"from_key": True}, [b"a", b"z"], []),
    ],
)
async def test_async_watch_ranges(
    acli: AsyncClient,
    etcd_key_prefix: bytes,
    kwargs: dict[str, object],
    seen: list[bytes],
    unseen: list[bytes],
) -> None:
    """prefix, range_end (exclusive) and from_key select the keys as for the sync client."""
    options = dict(kwargs)
    if "range_end" in options:
        options["range_end"] = etcd_key_prefix + b"c"
    async with acli.watch(etcd_key_prefix + b"a", **options) as watch:  # type: ignore[arg-type]
        for suffix in unseen + seen:
            await acli.put(etcd_key_prefix + suffix, "v")
        keys = [key for _, key, _ in await events_of(watch, len(seen))]
        assert keys == [etcd_key_prefix + suffix for suffix in seen]
        await assert_silent(watch)


async def test_async_watch_start_revision_and_prev_kv(
    acli: AsyncClient, etcd_key_prefix: bytes
) -> None:
    """start_revision replays history; prev_kv carries the value before each event."""
    key = etcd_key_prefix + b"k"
    first = await acli.put(key, "1")
    await acli.put(key, "2")
    async with acli.watch(key, start_revision=first.header.revision, prev_kv=True) as watch:
        events = (await watch.next(timeout=TIMEOUT)).events
        if len(events) < 2:
            events += (await watch.next(timeout=TIMEOUT)).events
        assert [e.kv.value for e in events] == [b"1", b"2"]
        assert events[1].prev_kv is not None
        assert events[1].prev_kv.value == b"1"


@pytest.mark.parametrize(
    ("option", "kept"), [("filter_put", EventType.DELETE), ("filter_delete", EventType.PUT)]
)
async def test_async_watch_filters(
    acli: AsyncClient, etcd_key_prefix: bytes, option: str, kept: EventType
) -> None:
    """filter_put / filter_delete leave out the events they name."""
    key = etcd_key_prefix + b"k"
    async with acli.watch(key, **{option: True}) as watch:  # type: ignore[arg-type]
        await acli.put(key, "v")
        await acli.delete(key)
        assert [kind for kind, _, _ in await events_of(watch, 1)] == [kept]
        await assert_silent(watch)


async def test_async_watch_created_notify_yields_the_confirmation(
    acli: AsyncClient, etcd_key_prefix: bytes
) -> None:
    """created_notify=True yields the confirmation first; without it, none is yielded."""
    async with acli.watch(etcd_key_prefix + b"k", created_notify=True) as watch:
        assert (await watch.next(timeout=TIMEOUT)).created
    async with acli.watch(etcd_key_prefix + b"k") as watch:
        await assert_silent(watch)


async def test_async_watch_progress_notify_and_request_progress(
    tuned_client: AsyncClient, etcd_key_prefix: bytes
) -> None:
    """progress_notify delivers periodic notices; request_progress notifies every watch."""
    async with tuned_client.watch(etcd_key_prefix + b"p", progress_notify=True) as watch:
        assert (await watch.next(timeout=TIMEOUT)).is_progress_notify
    async with (
        tuned_client.watch(etcd_key_prefix + b"a") as first,
        tuned_client.watch(etcd_key_prefix + b"b") as second,
    ):
        await tuned_client.request_progress()
        assert (await first.next(timeout=TIMEOUT)).is_progress_notify
        assert (await second.next(timeout=TIMEOUT)).is_progress_notify


async def test_async_watch_fragment_joins_a_large_txn(
    tuned_client: AsyncClient, etcd_key_prefix: bytes
) -> None:
    """fragment=True: a response etcd splits into fragments arrives whole."""
    for start in range(0, FRAGMENTED_KEYS, 50):
        await tuned_client.txn(
            success=[
                Op.put(etcd_key_prefix + b"%05d" % i, LARGE_VALUE)
                for i in range(start, min(start + 50, FRAGMENTED_KEYS))
            ]
        )
    before = tuned_client.watch_stats().fragments
    async with tuned_client.watch(
        etcd_key_prefix, prefix=True, prev_kv=True, fragment=True
    ) as watch:
        await tuned_client.txn(success=[Op.delete(etcd_key_prefix, prefix=True)])
        response = await watch.next(timeout=TIMEOUT)
        await assert_silent(watch)
    assert tuned_client.watch_stats().fragments - before >= 3
    assert len(response.events) == FRAGMENTED_KEYS


# --- many watches, ends and errors ---------------------------------------------------------


async def test_async_watch_many_watches_share_one_stream(
    acli: AsyncClient, etcd_key_prefix: bytes
) -> None:
    """A hundred watches from concurrent tasks run on one stream, each seeing its own key."""
    streams = acli.watch_stats().streams
    keys = [etcd_key_prefix + b"%03d" % i for i in range(100)]
    watches = await asyncio.gather(*(acli.watch(key) for key in keys))
    await asyncio.gather(*(acli.put(key, key) for key in keys))
    for key, watch in zip(keys, watches, strict=True):
        assert await events_of(watch, 1) == [(EventType.PUT, key, key)]
        await watch.cancel()
    assert acli.watch_stats().streams - streams <= 1


async def test_async_watch_canceling_next_cancels_only_that_wait(
    acli: AsyncClient, etcd_key_prefix: bytes
) -> None:
    """A canceled `await w.next()` leaves the watch running: the next event still arrives."""
    key = etcd_key_prefix + b"k"
    async with acli.watch(key) as watch:
        waiting = asyncio.ensure_future(watch.next())
        await asyncio.sleep(0.1)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await acli.put(key, "after")
        assert await events_of(watch, 1) == [(EventType.PUT, key, b"after")]


async def test_async_watch_timeout_of_next_keeps_the_event(
    acli: AsyncClient, etcd_key_prefix: bytes
) -> None:
    """next(timeout) raises builtin TimeoutError, and loses nothing that arrives later."""
    key = etcd_key_prefix + b"k"
    async with acli.watch(key) as watch:
        with pytest.raises(TimeoutError):
            await watch.next(timeout=0.2)
        await acli.put(key, "v")
        assert await events_of(watch, 1) == [(EventType.PUT, key, b"v")]


async def test_async_watch_canceling_the_start_withdraws_the_watch(
    acli: AsyncClient, etcd_key_prefix: bytes
) -> None:
    """Cancelling the task awaiting watch() leaves the client usable."""
    task = asyncio.ensure_future(acli.watch(etcd_key_prefix + b"x"))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with acli.watch(etcd_key_prefix + b"k") as watch:
        await acli.put(etcd_key_prefix + b"k", "v")
        assert len(await events_of(watch, 1)) == 1


async def test_async_watch_cancel_ends_iteration_and_next(
    acli: AsyncClient, etcd_key_prefix: bytes
) -> None:
    """After cancel(), `async for` stops, next() raises CanceledError, and cancel is idempotent."""
    key = etcd_key_prefix + b"k"
    watch = await acli.watch(key)
    await acli.put(key, "dropped")
    await watch.cancel()
    await watch.cancel()
    assert [r async for r in watch] == []
    with pytest.raises(errors.CanceledError):
        await watch.next(timeout=1)


async def test_async_watch_compacted_revision_raises_compacted_error(
    acli: AsyncClient, etcd_key_prefix: bytes
) -> None:
    """Watching from a compacted revision raises CompactedError from the iteration."""
    key = etcd_key_prefix + b"k"
    first = await acli.put(key, "1")
    last = await acli.put(key, "2")
    await acli.compact(last.header.revision)
    watch = await acli.watch(key, start_revision=first.header.revision)
    with pytest.raises(errors.CompactedError) as caught:
        await watch.next(timeout=TIMEOUT)
    assert caught.value.compact_revision == last.header.revision
    with pytest.raises(errors.CanceledError):
        await watch.next(timeout=1)


async def test_async_client_close_ends_every_watch(
    etcd_server: EtcdServer, etcd_key_prefix: bytes
) -> None:
    """close() ends every watch: iteration stops, next() raises CanceledError."""
    cli = AsyncClient(endpoints=etcd_server.endpoints)
    watches = [await cli.watch(etcd_key_prefix + b"%d" % i) for i in range(3)]
    await cli.close()
    for watch in watches:
        assert [r async for r in watch] == []
        with pytest.raises(errors.CanceledError):
            await watch.next(timeout=1)
    with pytest.raises(errors.CanceledError):
        await cli.watch(etcd_key_prefix)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"key": ""}, errors.EmptyKeyError),
        ({"key": 7}, TypeError),
        ({"key": "k", "prefix": True, "range_end": "z"}, ValueError),
        ({"key": "k", "start_revision": -1}, ValueError),
        ({"key": "k", "prev_kv": 1}, TypeError),
        ({"key": "k", "created_notify": "no"}, TypeError),
        ({"key": "k", "timeout": 0}, ValueError),
    ],
)
async def test_async_watch_bad_arguments_are_refused_before_any_io(
    etcd_server: EtcdServer, kwargs: dict[str, object], error: type[Exception]
) -> None:
    """watch() raises at once on a bad argument, before connecting or awaiting anything."""
    cli = AsyncClient(endpoints=etcd_server.endpoints)
    with pytest.raises(error):
        cli.watch(**kwargs)  # type: ignore[arg-type]  # wrong types on purpose
    assert cli.connection is None
    await cli.close()


# --- back-pressure and the event loop ------------------------------------------------------


async def test_async_watch_slow_consumer_is_paused_and_loses_nothing(
    backend: Backend, acli: AsyncClient, etcd_key_prefix: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A consumer that does not read holds a bounded queue while other watches flow, and
    reading later yields every event in order."""
    limit = 100
    monkeypatch.setattr(watch_mux, "QUEUE_LIMIT", limit)
    total = 1000
    async with backend.make_async_client()() as cli:
        slow = await cli.watch(etcd_key_prefix + b"s/", prefix=True)
        fast = await cli.watch(etcd_key_prefix + b"f")
        written = []
        for start in range(0, total, 100):
            puts = [
                acli.put(etcd_key_prefix + b"s/%05d" % i, "v") for i in range(start, start + 100)
            ]
            written += [r.header.revision for r in await asyncio.gather(*puts)]
        await acli.put(etcd_key_prefix + b"f", "ping")
        assert (await events_of(fast, 1))[0][2] == b"ping"
        assert slow.peak_pending_events < limit + 1000
        assert cli.watch_stats().pauses >= 1
        received: list[int] = []
        while len(received) < total:
            received += [e.kv.mod_revision for e in (await slow.next(timeout=TIMEOUT)).events]
        assert received == sorted(written)
        await assert_silent(slow)


async def test_async_watch_storm_keeps_the_event_loop_responsive(
    backend: Backend, acli: AsyncClient, etcd_key_prefix: bytes
) -> None:
    """While thousands of events arrive on many watches, a probe task's sleeps stay on time."""
    loop = asyncio.get_running_loop()
    lags: list[float] = []
    stop = asyncio.Event()

    async def probe() -> None:
        while not stop.is_set():
            before = loop.time()
            await asyncio.sleep(0.01)
            lags.append(loop.time() - before - 0.01)

    total, watchers = 4000, 4
    async with backend.make_async_client()() as writer:
        watches = [await acli.watch(etcd_key_prefix, prefix=True) for _ in range(watchers)]
        probing = asyncio.ensure_future(probe())
        for start in range(0, total, 100):  # 100 keys per txn: 40 revisions, 4000 events
            await writer.txn(
                success=[
                    Op.put(etcd_key_prefix + b"%05d" % i, "v") for i in range(start, start + 100)
                ]
            )
        for watch in watches:
            seen = 0
            while seen < total:
                seen += len((await watch.next(timeout=TIMEOUT)).events)
        stop.set()
        await probing
    assert lags
    assert max(lags) < 0.1, f"the event loop stalled for {max(lags):.3f}s"
