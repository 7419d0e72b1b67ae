"""The keep-alive handle's response queue and its ends, without a server."""

from __future__ import annotations

import pytest

from etcd_layers import errors
from etcd_layers.base import KeepAlive, LeaseKeepAliveResponse, ResponseHeader
from etcd_layers.base._keepalive_handle import KeepAliveHandle, ResponseQueue


def _response(ttl: int) -> LeaseKeepAliveResponse:
    return LeaseKeepAliveResponse(ResponseHeader(), id=7, ttl=ttl)


def test_queue_drops_the_oldest_response_when_full() -> None:
    """A full queue keeps the newest responses, in order."""
    queue = ResponseQueue(size=3)
    for ttl in range(1, 6):
        queue.put(_response(ttl))
    assert [queue.get(timeout=0.01).ttl for _ in range(3)] == [3, 4, 5]


def test_queue_empty_get_raises_builtin_timeout_error() -> None:
    """get on an empty queue raises the builtin TimeoutError, not an EtcdError."""
    with pytest.raises(TimeoutError) as caught:
        ResponseQueue().get(timeout=0.01)
    assert type(caught.value) is TimeoutError


def test_queue_failure_comes_after_queued_responses_and_once() -> None:
    """A failure is raised after what was queued before it, then CanceledError follows."""
    queue = ResponseQueue()
    queue.put(_response(5))
    queue.fail(errors.LeaseNotFoundError("lost"))
    queue.put(_response(6))  # ignored: the queue has ended
    assert queue.get(timeout=0.01).ttl == 5
    with pytest.raises(errors.LeaseNotFoundError):
        queue.get(timeout=0.01)
    with pytest.raises(errors.CanceledError):
        queue.get(timeout=0.01)


def test_queue_stop_drops_queued_responses() -> None:
    """stop() ends at once: queued responses are dropped and its error is raised next."""
    queue = ResponseQueue()
    queue.put(_response(5))
    queue.stop(errors.ClosedError("closed"))
    with pytest.raises(errors.ClosedError):
        queue.get(timeout=0.01)


def test_queue_first_end_wins() -> None:
    """A second end does not replace the first."""
    queue = ResponseQueue()
    queue.fail(errors.LeaseNotFoundError("lost"))
    queue.stop(errors.ClosedError("closed"))
    with pytest.raises(errors.LeaseNotFoundError):
        queue.get(timeout=0.01)


def test_queue_wait_first_reports_delivery_end_or_timeout() -> None:
    """wait_first returns True after a delivery, False on timeout, and raises an early end."""
    assert ResponseQueue().wait_first(timeout=0.01) is False
    delivered = ResponseQueue()
    delivered.put(_response(5))
    assert delivered.wait_first(timeout=0.01) is True
    assert delivered.get(timeout=0.01).ttl == 5  # the first response stays queued
    lost = ResponseQueue()
    lost.fail(errors.LeaseNotFoundError("missing"))
    with pytest.raises(errors.LeaseNotFoundError):
        lost.wait_first(timeout=0.01)


def test_handle_cancel_ends_iteration_and_tells_its_owner() -> None:
    """cancel() tells the owner once per call, and iteration then yields nothing."""
    canceled: list[KeepAliveHandle] = []
    handle = KeepAliveHandle(7, canceled.append)
    assert isinstance(handle, KeepAlive)
    handle.responses.put(_response(5))
    handle.cancel()
    assert canceled == [handle]
    assert list(handle) == []
    with pytest.raises(errors.CanceledError):
        handle.next(timeout=0.01)


def test_handle_next_checks_its_timeout() -> None:
    """next() refuses a timeout that is not a positive number."""
    handle = KeepAliveHandle(7, lambda _handle: None)
    with pytest.raises(ValueError, match="timeout"):
        handle.next(timeout=0)
    with pytest.raises(TypeError, match="timeout"):
        handle.next(timeout="1")  # type: ignore[arg-type]  # the wrong type on purpose
