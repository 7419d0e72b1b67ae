"""The asyncio stream handles' pieces without a server: watch arguments, queues, the start."""

from __future__ import annotations

import asyncio
from typing import cast

import pytest

from etcd_layers import errors
from etcd_layers.base import AsyncKeepAlive, LeaseKeepAliveResponse, ResponseHeader
from etcd_layers.base._aio_keepalive_handle import AsyncKeepAliveHandle, AsyncResponseQueue
from etcd_layers.base._aio_watch_handle import AsyncClientWatch, AsyncClientWatchStart
from etcd_layers.base._proto import rpc_pb2
from etcd_layers.base._watcher import watch_request

pytestmark = pytest.mark.asyncio


def _response(ttl: int) -> LeaseKeepAliveResponse:
    return LeaseKeepAliveResponse(ResponseHeader(), id=7, ttl=ttl)


def _request(key: object = "k", **kwargs: object) -> rpc_pb2.WatchCreateRequest:
    options: dict[str, object] = {
        "range_end": None,
        "prefix": False,
        "from_key": False,
        "start_revision": 0,
        "prev_kv": False,
        "filter_put": False,
        "filter_delete": False,
        "progress_notify": False,
        "fragment": False,
        "created_notify": False,
        "timeout": None,
    }
    options.update(kwargs)
    create, _ = watch_request(key, **options)  # type: ignore[arg-type]  # a table of options
    return create


# --- watch_request: the argument checks both clients share ---------------------------------


async def test_watch_request_builds_the_create_request() -> None:
    """Every server-side option lands in the create request, ranges translated."""
    create = _request(
        "a", prefix=True, start_revision=5, prev_kv=True, filter_put=True, fragment=True
    )
    assert (create.key, create.range_end, create.start_revision) == (b"a", b"b", 5)
    assert create.prev_kv
    assert create.fragment
    assert list(create.filters) == [rpc_pb2.WatchCreateRequest.NOPUT]


async def test_watch_request_keeps_client_options_apart() -> None:
    """created_notify and the timeout stay with the client; progress_notify goes to both."""
    create, options = watch_request(
        "k",
        range_end=None,
        prefix=False,
        from_key=False,
        start_revision=0,
        prev_kv=False,
        filter_put=False,
        filter_delete=True,
        progress_notify=True,
        fragment=False,
        created_notify=True,
        timeout=2.0,
    )
    assert create.progress_notify
    assert list(create.filters) == [rpc_pb2.WatchCreateRequest.NODELETE]
    assert (options.created_notify, options.progress_notify, options.timeout) == (True, True, 2.0)


@pytest.mark.parametrize(
    ("key", "kwargs", "error"),
    [
        ("", {}, errors.EmptyKeyError),
        (7, {}, TypeError),
        ("k", {"prefix": True, "from_key": True}, ValueError),
        ("k", {"start_revision": -1}, ValueError),
        ("k", {"fragment": 0}, TypeError),
        ("k", {"timeout": 0}, ValueError),
    ],
)
async def test_watch_request_refuses_bad_arguments(
    key: object, kwargs: dict[str, object], error: type[Exception]
) -> None:
    """A bad argument raises the sync client's error."""
    with pytest.raises(error):
        _request(key, **kwargs)


# --- AsyncResponseQueue ---------------------------------------------------------------------


async def test_async_queue_keeps_the_newest_responses() -> None:
    """A full queue drops the oldest responses, as the sync one does."""
    queue = AsyncResponseQueue(size=3)
    for ttl in range(1, 6):
        queue.put(_response(ttl))
    assert [(await queue.get(timeout=0.01)).ttl for _ in range(3)] == [3, 4, 5]


async def test_async_queue_get_raises_builtin_timeout_error() -> None:
    """get on an empty queue raises the builtin TimeoutError."""
    with pytest.raises(TimeoutError) as caught:
        await AsyncResponseQueue().get(timeout=0.01)
    assert type(caught.value) is TimeoutError


async def test_async_queue_wakes_a_waiting_get() -> None:
    """A response put while a get waits is returned to it."""
    queue = AsyncResponseQueue()
    waiting = asyncio.ensure_future(queue.get(timeout=None))
    await asyncio.sleep(0)
    queue.put(_response(9))
    assert (await waiting).ttl == 9


async def test_async_queue_canceled_get_takes_nothing() -> None:
    """Cancelling a waiting get leaves the next response for the next get."""
    queue = AsyncResponseQueue()
    waiting = asyncio.ensure_future(queue.get(timeout=None))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    queue.put(_response(4))
    assert (await queue.get(timeout=0)).ttl == 4


async def test_async_queue_failure_comes_after_queued_responses_then_canceled() -> None:
    """fail() is raised once after what was queued; then get raises CanceledError."""
    queue = AsyncResponseQueue()
    queue.put(_response(1))
    queue.fail(errors.LeaseNotFoundError("gone"))
    assert (await queue.get(timeout=0)).ttl == 1
    with pytest.raises(errors.LeaseNotFoundError):
        await queue.get(timeout=0)
    with pytest.raises(errors.CanceledError):
        await queue.get(timeout=0)


async def test_async_queue_wait_first_raises_an_end_before_any_response() -> None:
    """wait_first raises the end when nothing was delivered, and is False on timeout."""
    queue = AsyncResponseQueue()
    assert not await queue.wait_first(0.01)
    queue.fail(errors.LeaseNotFoundError("gone"))
    with pytest.raises(errors.LeaseNotFoundError):
        await queue.wait_first(0.01)


async def test_async_handle_cancel_drops_what_is_queued_and_ends_iteration() -> None:
    """cancel() ends the handle at once: iteration yields nothing more; it tells its owner."""
    canceled: list[AsyncKeepAliveHandle] = []
    handle = AsyncKeepAliveHandle(7, canceled.append)
    assert isinstance(handle, AsyncKeepAlive)
    handle.responses.put(_response(3))
    async with handle:
        pass
    assert canceled == [handle]
    assert [r async for r in handle] == []
    with pytest.raises(errors.CanceledError):
        await handle.next(timeout=0.01)


# --- AsyncClientWatchStart ------------------------------------------------------------------------


class _FakeWatch:
    """Records its cancel."""

    def __init__(self) -> None:
        self.canceled = 0

    async def cancel(self) -> None:
        self.canceled += 1


async def test_watch_start_is_awaitable_and_an_async_context_manager() -> None:
    """Awaiting starts the watch once; `async with` returns it and cancels it on exit."""
    starts: list[_FakeWatch] = []

    async def start() -> AsyncClientWatch:
        starts.append(_FakeWatch())
        return cast(AsyncClientWatch, starts[-1])  # the start only hands it over

    awaited = AsyncClientWatchStart(start)
    first: object = await awaited
    assert first is starts[0]
    again: object = await awaited
    assert again is first  # started once
    async with AsyncClientWatchStart(start) as watch:
        entered: object = watch
        assert entered is starts[1]
    assert [fake.canceled for fake in starts] == [0, 1]
