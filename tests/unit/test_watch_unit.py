"""Watch bookkeeping without a server: resume points, fragments, cancel reasons, dispatch."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import cast

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from etcd_layers import errors
from etcd_layers.base import _watch
from etcd_layers.base._connection import Connection, Endpoint
from etcd_layers.base._proto import kv_pb2, rpc_pb2
from etcd_layers.base._watch import ClientWatch, _Phase, _Session, _WatchStream
from etcd_layers.base._watch_state import (
    FragmentJoiner,
    ResumePoint,
    cancel_error,
    is_auth_refusal,
)
from etcd_layers.base.responses import EventType

# --- ResumePoint ---------------------------------------------------------------------------


def test_resume_point_starts_at_the_requested_revision() -> None:
    """A watch with start_revision resumes there until it delivered something."""
    point = ResumePoint(start_revision=7)
    point.created(header_revision=100)
    assert point.next_revision == 7


def test_resume_point_from_now_starts_after_the_creation_revision() -> None:
    """A watch "from now on" resumes right after the revision of its first confirmation."""
    point = ResumePoint()
    assert point.next_revision == 0
    point.created(header_revision=41)
    point.created(header_revision=99)  # a re-creation after a reconnect changes nothing
    assert point.next_revision == 42


def test_resume_point_moves_past_the_last_delivered_event() -> None:
    """After events, a watch resumes right after the last one delivered."""
    point = ResumePoint()
    point.created(header_revision=10)
    point.delivered(last_mod_revision=15)
    assert point.next_revision == 16


@given(start=st.integers(0, 50), created=st.integers(1, 50), events=st.lists(st.integers(1, 99)))
@example(start=0, created=5, events=[3])
def test_resume_point_never_moves_back(start: int, created: int, events: list[int]) -> None:
    """Whatever arrives, the resume revision only grows, and passes every delivered event."""
    point = ResumePoint(start_revision=start)
    point.created(created)
    seen = [point.next_revision]
    for revision in events:
        point.delivered(revision)
        seen.append(point.next_revision)
    assert seen == sorted(seen)
    assert all(point.next_revision > revision for revision in events)


# --- FragmentJoiner ------------------------------------------------------------------------


def test_fragment_joiner_passes_a_whole_response_through() -> None:
    """A response that is not a fragment comes back at once."""
    joiner: FragmentJoiner[int] = FragmentJoiner()
    assert joiner.add(1, [1, 2], more=False) == [1, 2]
    assert 1 not in joiner


@given(events=st.lists(st.integers(), min_size=1), cuts=st.lists(st.integers(0, 50)))
def test_fragment_joiner_rebuilds_the_response(events: list[int], cuts: list[int]) -> None:
    """Fragments cut anywhere join back into the original events, in order."""
    bounds = sorted({0, len(events), *(cut % (len(events) + 1) for cut in cuts)})
    parts = [events[a:b] for a, b in itertools.pairwise(bounds)]
    joiner: FragmentJoiner[int] = FragmentJoiner()
    results = [joiner.add(3, part, more=i < len(parts) - 1) for i, part in enumerate(parts)]
    assert results[:-1] == [None] * (len(parts) - 1)
    assert results[-1] == events
    assert joiner.pending() == 0


def test_fragment_joiner_keeps_watches_apart() -> None:
    """Fragments of two watches interleaved are joined per watch id."""
    joiner: FragmentJoiner[str] = FragmentJoiner()
    assert joiner.add(1, ["a1"], more=True) is None
    assert joiner.add(2, ["b1"], more=True) is None
    assert joiner.add(1, ["a2"], more=False) == ["a1", "a2"]
    assert joiner.pending() == 1
    assert joiner.add(2, ["b2"], more=False) == ["b1", "b2"]


def test_fragment_joiner_discard_drops_a_partial_response() -> None:
    """discard() forgets what was received, so half a revision is never delivered."""
    joiner: FragmentJoiner[str] = FragmentJoiner()
    joiner.add(1, ["a1"], more=True)
    joiner.discard(1)
    joiner.discard(1)
    assert joiner.add(1, ["b"], more=False) == ["b"]


# --- cancel reasons ------------------------------------------------------------------------


def test_cancel_error_for_compaction_carries_the_compact_revision() -> None:
    """A cancel with compact_revision is a CompactedError naming the first kept revision."""
    error = cancel_error("", 42)
    assert isinstance(error, errors.CompactedError)
    assert error.compact_revision == 42
    assert "42" in str(error)


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        (
            "rpc error: code = PermissionDenied desc = etcdserver: permission denied",
            errors.PermissionDeniedError,
        ),
        ("etcdserver: permission denied", errors.PermissionDeniedError),
        ("etcdserver: invalid auth token", errors.InvalidAuthTokenError),
        ("mvcc: something new", errors.WatchCanceledError),
        ("", errors.WatchCanceledError),
    ],
)
def test_cancel_error_maps_the_reason_to_a_typed_error(
    reason: str, expected: type[errors.EtcdError]
) -> None:
    """The server's cancel reason becomes the matching EtcdError, WatchCanceledError if unknown."""
    error = cancel_error(reason, 0)
    assert type(error) is expected
    assert str(error)


def test_is_auth_refusal_knows_token_errors() -> None:
    """Refusals that a new token can cure are recognised; others are not."""
    assert is_auth_refusal(errors.PermissionDeniedError("x"))
    assert is_auth_refusal(errors.InvalidAuthTokenError("x"))
    assert not is_auth_refusal(errors.CompactedError("x", 3))


# --- conversion ----------------------------------------------------------------------------


def test_event_conversion_keeps_every_field() -> None:
    """A protobuf event becomes an Event with its KeyValue and optional prev_kv."""
    kv = kv_pb2.KeyValue(
        key=b"k", value=b"v", create_revision=2, mod_revision=5, version=3, lease=9
    )
    event = _watch._event(kv_pb2.Event(type=kv_pb2.Event.DELETE, kv=kv, prev_kv=kv))
    assert event.type is EventType.DELETE
    assert (event.kv.key, event.kv.value, event.kv.mod_revision, event.kv.lease) == (
        b"k",
        b"v",
        5,
        9,
    )
    assert event.prev_kv == event.kv
    assert _watch._event(kv_pb2.Event(kv=kv)).prev_kv is None


# --- dispatch, with a recording connection and no network --------------------------------


class RecordingConnection:
    """The parts of Connection a watch stream uses; records hooks, never connects."""

    default_timeout: float | None = None
    dial_timeout = 1.0
    has_credentials = False

    def __init__(self) -> None:
        self.hooks: list[Callable[[], None]] = []

    def add_close_hook(self, hook: Callable[[], None]) -> None:
        self.hooks.append(hook)

    def add_endpoint_listener(self, listener: Callable[[], None]) -> None:
        self.hooks.append(listener)

    def check_open(self) -> None:
        pass


def make_stream() -> tuple[_WatchStream, _Session]:
    """A watch stream with a session whose requests are recorded, not sent."""
    stream = _WatchStream(cast(Connection, RecordingConnection()))
    session = _Session(cast(Endpoint, type("FakeEndpoint", (), {"address": "fake:1"})()))
    return stream, session


def add_watch(
    stream: _WatchStream,
    key: bytes,
    *,
    start: int = 0,
    created_notify: bool = False,
    progress_notify: bool = False,
) -> ClientWatch:
    """Register a watch as add() does, without waiting for its confirmation."""
    watch = ClientWatch(
        stream,
        rpc_pb2.WatchCreateRequest(key=key, start_revision=start),
        created_notify=created_notify,
        progress_notify=progress_notify,
    )
    with stream.lock:
        stream._watches[watch] = None
        stream._pending.append(watch)
        if stream._session is not None:
            stream._send_next_create(stream._session)
    return watch


def sent(session: _Session) -> list[rpc_pb2.WatchRequest]:
    """Every request the session sent so far (and forget them); the end marker is left out."""
    requests = []
    while not session.requests.empty():
        request = session.requests.get()
        if request is not None:
            requests.append(request)
    return requests


def created(watch_id: int, revision: int = 10) -> rpc_pb2.WatchResponse:
    return rpc_pb2.WatchResponse(
        watch_id=watch_id, created=True, header=rpc_pb2.ResponseHeader(revision=revision)
    )


def events(watch_id: int, *revisions: int, fragment: bool = False) -> rpc_pb2.WatchResponse:
    return rpc_pb2.WatchResponse(
        watch_id=watch_id,
        fragment=fragment,
        header=rpc_pb2.ResponseHeader(revision=max(revisions)),
        events=[
            kv_pb2.Event(kv=kv_pb2.KeyValue(key=b"k%d" % r, mod_revision=r)) for r in revisions
        ],
    )


def start(stream: _WatchStream, session: _Session) -> None:
    with stream.lock:
        stream._start_session(session)


def test_stream_sends_creates_one_at_a_time_and_matches_answers_in_order() -> None:
    """The second create leaves only after the first is confirmed, and ids go to the right one."""
    stream, session = make_stream()
    first = add_watch(stream, b"a")
    second = add_watch(stream, b"b")
    start(stream, session)
    assert [r.create_request.key for r in sent(session)] == [b"a"]
    stream._handle(session, created(5))
    assert [r.create_request.key for r in sent(session)] == [b"b"]
    stream._handle(session, created(6))
    assert (first._server_id, second._server_id) == (5, 6)
    assert first._phase is second._phase is _Phase.ACTIVE
    assert first._confirmed
    assert second._confirmed


def test_stream_delivers_events_and_moves_the_resume_point() -> None:
    """Events reach their watch in order; the resume point follows the last one."""
    stream, session = make_stream()
    watch = add_watch(stream, b"a")
    start(stream, session)
    stream._handle(session, created(0, revision=10))
    stream._handle(session, events(0, 11, 12))
    stream._handle(session, events(0, 13))
    assert [e.kv.mod_revision for e in watch.next(timeout=1).events] == [11, 12]
    assert [e.kv.mod_revision for e in watch.next(timeout=1).events] == [13]
    assert watch._resume.next_revision == 14


def test_stream_recreates_watches_from_their_resume_point_on_a_new_stream() -> None:
    """After a broken stream each watch is created again after its last delivered event."""
    stream, session = make_stream()
    quiet = add_watch(stream, b"q")
    busy = add_watch(stream, b"b", start=3)
    start(stream, session)
    stream._handle(session, created(0, revision=10))
    stream._handle(session, created(1, revision=10))
    stream._handle(session, events(1, 4, 9))
    with stream.lock:
        stream._stop_session(session)
    _, again = make_stream()
    start(stream, again)
    assert [r.create_request.start_revision for r in sent(again)] == [11]
    stream._handle(again, created(0, revision=20))
    assert [r.create_request.start_revision for r in sent(again)] == [10]
    assert quiet._phase is _Phase.ACTIVE
    assert busy._phase is _Phase.CREATING


def test_stream_pauses_a_full_watch_and_resumes_it_from_the_next_event(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A queue at its limit cancels the server watch; reading it down creates it again."""
    monkeypatch.setattr(_watch, "QUEUE_LIMIT", 4)
    stream, session = make_stream()
    watch = add_watch(stream, b"a")
    start(stream, session)
    stream._handle(session, created(0))
    sent(session)
    for revision in (11, 12, 13, 14):
        stream._handle(session, events(0, revision))
    assert watch._phase is _Phase.PAUSED
    assert [r.cancel_request.watch_id for r in sent(session)] == [0]
    stream._handle(session, events(0, 15))  # in flight before the cancel: dropped
    assert watch.pending_events == 4
    watch.next(timeout=1)
    assert sent(session) == []  # still above half the limit
    watch.next(timeout=1)
    assert [r.create_request.start_revision for r in sent(session)] == [15]
    stream._handle(session, created(1))
    stream._handle(session, events(1, 15))
    assert [watch.next(timeout=1).events[0].kv.mod_revision for _ in range(3)] == [13, 14, 15]


def test_stream_joins_fragments_before_delivery() -> None:
    """Fragments of one response are delivered as one response."""
    stream, session = make_stream()
    watch = add_watch(stream, b"a")
    start(stream, session)
    stream._handle(session, created(0))
    stream._handle(session, events(0, 11, 11, fragment=True))
    assert watch.pending_events == 0
    stream._handle(session, events(0, 11))
    assert len(watch.next(timeout=1).events) == 3
    assert stream.stats.fragments == 2


def test_stream_progress_broadcast_only_after_request_progress() -> None:
    """A stream-wide progress answer reaches the watches only if the user asked for one."""
    stream, session = make_stream()
    watch = add_watch(stream, b"a")
    start(stream, session)
    stream._handle(session, created(0))
    sent(session)
    broadcast = rpc_pb2.WatchResponse(watch_id=-1, header=rpc_pb2.ResponseHeader(revision=30))
    stream._handle(session, broadcast)  # the answer to a liveness probe
    assert watch.pending_events == 0
    stream.request_progress()
    assert [r.HasField("progress_request") for r in sent(session)] == [True]
    stream._handle(session, broadcast)
    response = watch.next(timeout=1)
    assert response.is_progress_notify
    assert response.header.revision == 30


def test_stream_per_watch_progress_needs_progress_notify() -> None:
    """An empty response for a watch is a progress notification, kept only if asked for."""
    stream, session = make_stream()
    plain = add_watch(stream, b"a")
    notified = add_watch(stream, b"b", progress_notify=True)
    start(stream, session)
    stream._handle(session, created(0))
    stream._handle(session, created(1))
    for watch_id in (0, 1):
        stream._handle(session, rpc_pb2.WatchResponse(watch_id=watch_id))
    assert plain.pending_events == 0
    assert notified.next(timeout=1).is_progress_notify


def test_stream_compaction_error_follows_queued_events() -> None:
    """A server cancel is raised after the events queued before it, then the watch is over."""
    stream, session = make_stream()
    watch = add_watch(stream, b"a", start=2)
    start(stream, session)
    stream._handle(session, created(0))
    stream._handle(session, events(0, 5))
    stream._handle(session, rpc_pb2.WatchResponse(watch_id=0, canceled=True, compact_revision=9))
    assert len(watch.next(timeout=1).events) == 1
    with pytest.raises(errors.CompactedError):
        watch.next(timeout=1)
    with pytest.raises(errors.CanceledError):
        watch.next(timeout=1)
    assert list(watch) == []


def test_stream_cancels_a_watch_confirmed_after_it_ended() -> None:
    """A watch canceled while its create was in flight is canceled on the server when confirmed."""
    stream, session = make_stream()
    watch = add_watch(stream, b"a")
    start(stream, session)
    sent(session)
    watch.cancel()
    stream._handle(session, created(7))
    assert [r.cancel_request.watch_id for r in sent(session)] == [7]
    assert session.by_id == {}


def test_stream_refused_create_fails_the_watch() -> None:
    """A create the server refuses ends the watch with the typed error before confirmation."""
    stream, session = make_stream()
    watch = add_watch(stream, b"a")
    start(stream, session)
    refused = created(-1)
    refused.canceled = True
    refused.cancel_reason = (
        "rpc error: code = PermissionDenied desc = etcdserver: permission denied"
    )
    stream._handle(session, refused)
    assert watch._phase is _Phase.ENDED
    assert isinstance(watch._failure, errors.PermissionDeniedError)


class DrainedQueue:
    """A watch queue whose consumer is always just done: it records and reports empty."""

    def __init__(self) -> None:
        self.items: list[object] = []

    def put(self, item: object) -> None:
        self.items.append(item)

    def empty(self) -> bool:
        return True


def test_stream_pause_that_resumes_at_once_starts_after_the_last_event(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A watch paused just as its consumer emptied the queue is re-created after its last event."""
    monkeypatch.setattr(_watch, "QUEUE_LIMIT", 2)
    stream, session = make_stream()
    watch = add_watch(stream, b"a")
    start(stream, session)
    stream._handle(session, created(0))
    watch._items = DrainedQueue()  # type: ignore[assignment]  # a recording fake
    sent(session)
    stream._handle(session, events(0, 11, 12))  # full by the count: pause, drained: resume
    requests = sent(session)
    assert [r.WhichOneof("request_union") for r in requests] == [
        "cancel_request",
        "create_request",
    ]
    assert requests[1].create_request.start_revision == 13
