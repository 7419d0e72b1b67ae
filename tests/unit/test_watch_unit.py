"""The watch core without a server: resume points, fragments, cancel reasons, the multiplexer."""

from __future__ import annotations

import copy
import dataclasses
import itertools
import pickle

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from etcd_layers import errors
from etcd_layers.base import _convert, _watch_recovery, watch_mux
from etcd_layers.base._proto import kv_pb2, rpc_pb2
from etcd_layers.base._watch_recovery import After, after_stream, next_backoff
from etcd_layers.base._watch_state import (
    FragmentJoiner,
    ResumePoint,
    cancel_error,
    is_auth_refusal,
)
from etcd_layers.base.responses import (
    Event,
    EventType,
    KeyValue,
    ResponseHeader,
    WatchResponse,
)
from etcd_layers.base.watch_actions import Abort, Action, Confirm, Deliver, End, Send
from etcd_layers.base.watch_mux import Phase, WatchEntry, WatchMux

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
    event = _convert.event(kv_pb2.Event(type=kv_pb2.Event.DELETE, kv=kv, prev_kv=kv))
    assert event.type is EventType.DELETE
    assert (event.kv.key, event.kv.value, event.kv.mod_revision, event.kv.lease) == (
        b"k",
        b"v",
        5,
        9,
    )
    assert event.prev_kv == event.kv
    assert _convert.event(kv_pb2.Event(kv=kv)).prev_kv is None


@pytest.mark.parametrize("prev_kv", [False, True])
def test_watch_response_conversion_builds_ordinary_values(prev_kv: bool) -> None:
    """Drafted watch values are exactly the dataclasses: equal, hashed, printed, copied, frozen."""
    message = rpc_pb2.WatchResponse(
        header=rpc_pb2.ResponseHeader(cluster_id=1, member_id=2, revision=9, raft_term=4),
        watch_id=3,
    )
    kv = kv_pb2.KeyValue(
        key=b"k", value=b"v", create_revision=2, mod_revision=5, version=3, lease=7
    )
    message.events.add(type=kv_pb2.Event.DELETE, kv=kv, prev_kv=kv_pb2.KeyValue(key=b"k"))
    message.events.add(kv=kv)
    response = _convert.events_response(message, _convert.events(message.events, prev_kv=prev_kv))
    value = KeyValue(b"k", b"v", 2, 5, 3, 7)
    previous = KeyValue(b"k") if prev_kv else None
    expected = WatchResponse(
        ResponseHeader(1, 2, 9, 4),
        [Event(EventType.DELETE, value, previous), Event(EventType.PUT, value)],
        watch_id=3,
    )
    assert response == expected
    assert repr(response) == repr(expected)
    assert hash(response.header) == hash(expected.header)
    assert [hash(e) for e in response.events] == [hash(e) for e in expected.events]
    assert type(response) is WatchResponse
    assert type(response.header) is ResponseHeader
    assert {type(e) for e in response.events} == {Event}
    assert {type(e.kv) for e in response.events} == {KeyValue}
    assert pickle.loads(pickle.dumps(response)) == expected
    assert copy.deepcopy(response) == expected
    assert dataclasses.replace(response.events[0].kv, key=b"x") == dataclasses.replace(
        value, key=b"x"
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        response.events[0].kv.key = b"x"  # type: ignore[misc]  # frozen: the point of the test
    with pytest.raises(dataclasses.FrozenInstanceError):
        response.events[0].type = EventType.PUT  # type: ignore[misc]  # frozen, as above


# --- the multiplexer, driven with plain values ---------------------------------------------


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Harness:
    """Drives a WatchMux as a shell would, recording every action instead of doing I/O."""

    def __init__(self, *, queue_limit: int | None = None, reauthenticates: bool = False) -> None:
        self.clock = Clock()
        self.mux: WatchMux[str] = WatchMux(
            clock=self.clock, queue_limit=queue_limit, reauthenticates=reauthenticates
        )
        self.entries: dict[str, WatchEntry[str]] = {}
        self.requests: list[rpc_pb2.WatchRequest] = []
        self.queues: dict[str, list[WatchResponse]] = {}
        self.confirmed: set[str] = set()
        self.ended: dict[str, errors.EtcdError | None] = {}
        self.aborts: list[str] = []
        self.actions: list[Action[str]] = []

    def apply(self, actions: list[Action[str]]) -> list[Action[str]]:
        self.actions += actions
        for action in actions:
            if isinstance(action, Send):
                self.requests.append(action.request)
            elif isinstance(action, Deliver):
                self.queues[action.watch].append(action.response)
            elif isinstance(action, Confirm):
                self.confirmed.add(action.watch)
            elif isinstance(action, End):
                self.ended[action.watch] = action.error
            else:
                assert isinstance(action, Abort)
                self.aborts.append(action.reason)
        return actions

    def add(
        self,
        name: str,
        *,
        start: int = 0,
        created_notify: bool = False,
        progress_notify: bool = False,
    ) -> WatchEntry[str]:
        create = rpc_pb2.WatchCreateRequest(key=name.encode(), start_revision=start)
        entry = WatchEntry(
            name, create, created_notify=created_notify, progress_notify=progress_notify
        )
        self.entries[name] = entry
        self.queues[name] = []
        self.apply(self.mux.add(entry))
        return entry

    def open(self, endpoint: str = "fake:1") -> None:
        self.apply(self.mux.open_stream(endpoint))

    def receive(self, message: rpc_pb2.WatchResponse) -> list[Action[str]]:
        return self.apply(self.mux.on_message(message))

    def sent(self) -> list[rpc_pb2.WatchRequest]:
        """Every request sent so far (and forget them)."""
        requests, self.requests = self.requests, []
        return requests

    def read(self, name: str) -> WatchResponse:
        """Take the oldest queued response of `name`, as its consumer would."""
        response = self.queues[name].pop(0)
        self.apply(self.mux.consumed(self.entries[name], len(response.events) or 1))
        return response


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


def test_mux_sends_creates_one_at_a_time_and_matches_answers_in_order() -> None:
    """The second create leaves only after the first is confirmed, and ids go to the right one."""
    h = Harness()
    first = h.add("a")
    second = h.add("b")
    h.open()
    assert [r.create_request.key for r in h.sent()] == [b"a"]
    h.receive(created(5))
    assert [r.create_request.key for r in h.sent()] == [b"b"]
    h.receive(created(6))
    assert (first.server_id, second.server_id) == (5, 6)
    assert first.phase is second.phase is Phase.ACTIVE
    assert first.confirmed
    assert second.confirmed
    assert h.confirmed == {"a", "b"}


def test_mux_delivers_events_and_moves_the_resume_point() -> None:
    """Events reach their watch in order; the resume point follows the last one."""
    h = Harness()
    watch = h.add("a")
    h.open()
    h.receive(created(0, revision=10))
    h.receive(events(0, 11, 12))
    h.receive(events(0, 13))
    assert [e.kv.mod_revision for e in h.read("a").events] == [11, 12]
    assert [e.kv.mod_revision for e in h.read("a").events] == [13]
    assert watch.resume.next_revision == 14


def test_mux_recreates_watches_from_their_resume_point_on_a_new_stream() -> None:
    """After a broken stream each watch is created again after its last delivered event."""
    h = Harness()
    quiet = h.add("q")
    busy = h.add("b", start=3)
    h.open()
    h.receive(created(0, revision=10))
    h.receive(created(1, revision=10))
    h.receive(events(1, 4, 9))
    h.mux.close_stream()
    h.sent()
    h.open()
    assert [r.create_request.start_revision for r in h.sent()] == [11]
    h.receive(created(0, revision=20))
    assert [r.create_request.start_revision for r in h.sent()] == [10]
    assert quiet.phase is Phase.ACTIVE
    assert busy.phase is Phase.CREATING
    assert h.mux.stats().streams == 2


def test_mux_pauses_a_full_watch_and_resumes_it_from_the_next_event() -> None:
    """A queue at its limit cancels the server watch; reading it down creates it again."""
    h = Harness(queue_limit=4)
    watch = h.add("a")
    h.open()
    h.receive(created(0))
    h.sent()
    for revision in (11, 12, 13, 14):
        h.receive(events(0, revision))
    assert watch.phase is Phase.PAUSED
    assert [r.cancel_request.watch_id for r in h.sent()] == [0]
    h.receive(events(0, 15))  # in flight before the cancel: dropped
    assert watch.pending == 4
    h.read("a")
    assert h.sent() == []  # still above half the limit
    h.read("a")
    assert [r.create_request.start_revision for r in h.sent()] == [15]
    h.receive(created(1))
    h.receive(events(1, 15))
    assert [h.read("a").events[0].kv.mod_revision for _ in range(3)] == [13, 14, 15]
    assert h.mux.stats().pauses == 1


def test_mux_joins_fragments_before_delivery() -> None:
    """Fragments of one response are delivered as one response."""
    h = Harness()
    watch = h.add("a")
    h.open()
    h.receive(created(0))
    h.receive(events(0, 11, 11, fragment=True))
    assert watch.pending == 0
    h.receive(events(0, 11))
    assert len(h.read("a").events) == 3
    assert h.mux.stats().fragments == 2


def test_mux_progress_broadcast_only_after_request_progress() -> None:
    """A stream-wide progress answer reaches the watches only if the user asked for one."""
    h = Harness()
    watch = h.add("a")
    h.open()
    h.receive(created(0))
    h.sent()
    broadcast = rpc_pb2.WatchResponse(watch_id=-1, header=rpc_pb2.ResponseHeader(revision=30))
    h.receive(broadcast)  # the answer to a liveness probe
    assert watch.pending == 0
    h.apply(h.mux.request_progress())
    assert [r.HasField("progress_request") for r in h.sent()] == [True]
    h.receive(broadcast)
    response = h.read("a")
    assert response.is_progress_notify
    assert response.header.revision == 30


def test_mux_request_progress_without_a_stream_is_sent_when_one_opens() -> None:
    """request_progress() between streams is sent first on the next stream."""
    h = Harness()
    h.add("a")
    assert h.mux.request_progress() == []
    h.open()
    assert [r.WhichOneof("request_union") for r in h.sent()] == [
        "progress_request",
        "create_request",
    ]


def test_mux_per_watch_progress_needs_progress_notify() -> None:
    """An empty response for a watch is a progress notification, kept only if asked for."""
    h = Harness()
    plain = h.add("a")
    h.add("b", progress_notify=True)
    h.open()
    h.receive(created(0))
    h.receive(created(1))
    for watch_id in (0, 1):
        h.receive(rpc_pb2.WatchResponse(watch_id=watch_id))
    assert plain.pending == 0
    assert h.read("b").is_progress_notify


def test_mux_created_notify_delivers_only_the_first_confirmation() -> None:
    """created_notify yields the confirmation once, not again after a reconnect."""
    h = Harness()
    h.add("a", created_notify=True)
    h.open()
    h.receive(created(3))
    assert h.read("a").created
    h.mux.close_stream()
    h.open()
    h.receive(created(4))
    assert h.queues["a"] == []


def test_mux_compaction_error_follows_queued_events() -> None:
    """A server cancel ends the watch after the events queued before it, then nothing more."""
    h = Harness()
    watch = h.add("a", start=2)
    h.open()
    h.receive(created(0))
    h.receive(events(0, 5))
    h.receive(rpc_pb2.WatchResponse(watch_id=0, canceled=True, compact_revision=9))
    assert len(h.read("a").events) == 1
    assert isinstance(h.ended["a"], errors.CompactedError)
    assert watch.phase is Phase.ENDED
    assert h.receive(events(0, 6)) == []


def test_mux_cancels_a_watch_confirmed_after_it_ended() -> None:
    """A watch canceled while its create was in flight is canceled on the server when confirmed."""
    h = Harness()
    h.add("a")
    h.add("b")
    h.open()
    h.sent()
    h.apply(h.mux.cancel(h.entries["a"]))
    assert h.ended == {"a": None}
    h.receive(created(7))
    assert [r.cancel_request.watch_id for r in h.sent()][:1] == [7]
    assert h.receive(events(7, 11)) == []


def test_mux_refused_create_fails_the_watch() -> None:
    """A create the server refuses ends the watch with the typed error before confirmation."""
    h = Harness()
    watch = h.add("a")
    h.open()
    refused = created(-1)
    refused.canceled = True
    refused.cancel_reason = (
        "rpc error: code = PermissionDenied desc = etcdserver: permission denied"
    )
    h.receive(refused)
    assert watch.phase is Phase.ENDED
    assert isinstance(h.ended["a"], errors.PermissionDeniedError)
    assert h.confirmed == set()


def test_mux_refused_create_with_credentials_logs_in_again_once() -> None:
    """With credentials, an auth refusal aborts the stream to log in; a second one ends it."""
    h = Harness(reauthenticates=True)
    watch = h.add("a")
    h.open()
    refused = created(-1)
    refused.canceled = True
    refused.cancel_reason = "etcdserver: invalid auth token"
    h.receive(refused)
    assert h.aborts == ["the auth token was refused"]
    assert watch.phase is Phase.PENDING
    assert h.mux.close_stream().reason == "the auth token was refused"
    h.open()
    h.receive(refused)
    assert isinstance(h.ended["a"], errors.InvalidAuthTokenError)


def test_mux_pause_whose_consumer_drains_at_once_starts_after_the_last_event() -> None:
    """A watch paused just as its consumer emptied the queue is re-created after its last event."""
    h = Harness(queue_limit=2)
    h.add("a")
    h.open()
    h.receive(created(0))
    h.sent()
    h.receive(events(0, 11, 12))  # full by the count: pause
    h.read("a")  # drained: resume
    requests = h.sent()
    assert [r.WhichOneof("request_union") for r in requests] == [
        "cancel_request",
        "create_request",
    ]
    assert requests[1].create_request.start_revision == 13


def test_mux_closes_the_stream_once_nothing_is_watched() -> None:
    """Canceling the last watch cancels it on the server and aborts the idle stream."""
    h = Harness()
    h.add("a")
    h.open()
    h.receive(created(4))
    h.sent()
    h.apply(h.mux.cancel(h.entries["a"]))
    assert [r.cancel_request.watch_id for r in h.sent()] == [4]
    assert h.aborts == ["no watch left"]
    assert h.mux.cancel(h.entries["a"]) == []  # idempotent


def test_mux_sole_only_for_the_one_active_watch_of_an_open_stream() -> None:
    """A consumer may read the stream itself only while its watch is the only one, active."""
    h = Harness()
    a = h.add("a")
    assert not h.mux.sole(a)  # no stream yet
    h.open()
    assert not h.mux.sole(a)  # its create is in flight
    h.receive(created(4))
    assert h.mux.sole(a)
    b = h.add("b")
    assert not h.mux.sole(a)
    assert not h.mux.sole(b)
    h.receive(created(5))
    h.apply(h.mux.cancel(b))
    assert h.mux.sole(a)
    h.apply(h.mux.abort(_watch_recovery.INTERRUPTED))
    assert not h.mux.sole(a)  # the stream is ending
    h.mux.close_stream()
    assert not h.mux.sole(a)


def test_mux_probe_sends_progress_after_silence_and_aborts_a_dead_stream() -> None:
    """Silence past PROBE_AFTER sends a probe; no answer within PROBE_TIMEOUT aborts."""
    h = Harness()
    h.add("a")
    h.open()
    h.sent()
    assert h.mux.tick() == []
    h.clock.now += watch_mux.PROBE_AFTER
    h.apply(h.mux.tick())
    assert [r.HasField("progress_request") for r in h.sent()] == [True]
    h.clock.now += watch_mux.PROBE_TIMEOUT
    h.apply(h.mux.tick())
    assert h.aborts == ["no answer to a progress probe"]
    assert h.mux.stats().probes == 1


def test_mux_probe_answered_keeps_the_stream() -> None:
    """Any message after a probe counts as its answer."""
    h = Harness()
    h.add("a")
    h.open()
    h.clock.now += watch_mux.PROBE_AFTER
    h.apply(h.mux.tick())
    h.clock.now += 0.1
    h.receive(created(0))
    h.clock.now += watch_mux.PROBE_TIMEOUT - 0.5
    h.apply(h.mux.tick())
    assert h.aborts == []


def test_mux_fail_all_ends_every_watch_with_the_error() -> None:
    """fail_all hands the stream's error to every watch."""
    h = Harness()
    h.add("a")
    h.add("b")
    error = errors.NoLeaderError("etcdserver: no leader")
    h.apply(h.mux.fail_all(error))
    assert h.ended == {"a": error, "b": error}
    assert not h.mux.watching


# --- exactly once, in order, whatever the stream does ---------------------------------------

STEPS = st.lists(
    st.sampled_from(["write", "write", "answer", "send", "fragments", "read", "disconnect"]),
    max_size=80,
)


class FakeServer:
    """A minimal etcd for one key range: revisions 1..head, one event each, and its watches."""

    def __init__(self, harness: Harness) -> None:
        self.h = harness
        self.head = 0
        self.inbox: list[rpc_pb2.WatchRequest] = []  # requests not yet processed
        self.watches: dict[int, int] = {}  # server watch id -> next revision it sends
        self.next_id = 0

    def collect(self) -> None:
        self.inbox += self.h.sent()

    def answer(self) -> None:
        """Process the oldest request, as etcd does: creates and cancels in order."""
        request = self.inbox.pop(0)
        if request.HasField("create_request"):
            start = request.create_request.start_revision or self.head + 1
            self.watches[self.next_id] = start
            self.h.receive(created(self.next_id, revision=self.head))
            self.next_id += 1
        elif request.HasField("cancel_request"):
            watch_id = request.cancel_request.watch_id
            if self.watches.pop(watch_id, None) is not None:
                self.h.receive(rpc_pb2.WatchResponse(watch_id=watch_id, canceled=True))

    def send(self, *, fragments: bool) -> None:
        """Send the next revisions (up to three) of the oldest server watch that has any."""
        for watch_id, start in self.watches.items():
            if start <= self.head:
                revisions = list(range(start, min(self.head, start + 2) + 1))
                self.watches[watch_id] = revisions[-1] + 1
                if fragments and len(revisions) > 1:
                    self.h.receive(events(watch_id, *revisions[:-1], fragment=True))
                    self.h.receive(events(watch_id, revisions[-1]))
                else:
                    self.h.receive(events(watch_id, *revisions))
                return

    def disconnect(self) -> None:
        self.h.mux.close_stream()
        self.h.sent()
        self.inbox.clear()
        self.watches.clear()
        self.h.open()


@given(steps=STEPS, limit=st.integers(1, 4))
@example(steps=["write"] * 5 + ["answer", "send", "send", "disconnect", "answer", "send"], limit=2)
def test_mux_delivers_every_event_exactly_once_in_order(steps: list[str], limit: int) -> None:
    """Across disconnects, pauses, fragments and in-flight messages, no event is lost or
    delivered twice, and events arrive in revision order."""
    h = Harness(queue_limit=limit)
    h.add("w", start=1)
    server = FakeServer(h)
    h.open()
    got: list[int] = []

    def read() -> None:
        got.extend(e.kv.mod_revision for e in h.read("w").events)

    for step in steps:
        server.collect()
        if step == "write":
            server.head += 1
        elif step == "answer" and server.inbox:
            server.answer()
        elif step in ("send", "fragments"):
            server.send(fragments=step == "fragments")
        elif step == "read" and h.queues["w"]:
            read()
        elif step == "disconnect":
            server.disconnect()
        assert got == list(range(1, len(got) + 1))
    for _ in range(10 * (server.head + 5)):  # then let everything flow: nothing is missing
        server.collect()
        if server.inbox:
            server.answer()
        server.send(fragments=False)
        while h.queues["w"]:
            read()
    assert got == list(range(1, server.head + 1))
    assert "w" not in h.ended


# --- after a stream ended --------------------------------------------------------------------

UNAVAILABLE = errors.UnavailableError("unavailable")


@pytest.mark.parametrize(
    ("reason", "error", "transport", "credentials", "expected"),
    [
        (_watch_recovery.IDLE, None, False, False, After.NEXT),
        (_watch_recovery.MOVED, UNAVAILABLE, True, False, After.NEXT),
        (_watch_recovery.CLOSED, None, False, False, After.NEXT),
        (_watch_recovery.INTERRUPTED, UNAVAILABLE, True, False, After.NEXT),
        (_watch_recovery.REAUTH, None, False, True, After.REAUTH),
        (_watch_recovery.DEAD, UNAVAILABLE, True, False, After.FAILOVER),
        (None, None, False, False, After.FAILOVER),  # the server ended it cleanly
        (None, UNAVAILABLE, True, False, After.FAILOVER),
        (None, errors.NoLeaderError("no leader"), True, False, After.FAIL),
        (None, errors.InvalidAuthTokenError("token"), False, True, After.REAUTH),
        (None, errors.InvalidAuthTokenError("token"), False, False, After.FAIL),
        (None, errors.EtcdError("other"), False, True, After.FAIL),
    ],
)
def test_after_stream_decides_what_follows(
    reason: str | None,
    error: errors.EtcdError | None,
    transport: bool,
    credentials: bool,
    expected: After,
) -> None:
    """The end of a stream leads to the next stream, a failover, a login, or failed watches."""
    assert (
        after_stream(reason, error, transport_failure=transport, has_credentials=credentials)
        is expected
    )


@given(backoff=st.floats(0, 10))
def test_next_backoff_doubles_within_bounds(backoff: float) -> None:
    """The wait after a failed stream doubles, never below twice BACKOFF nor above MAX_BACKOFF."""
    wait = next_backoff(backoff)
    assert 2 * _watch_recovery.BACKOFF <= wait <= _watch_recovery.MAX_BACKOFF
    assert wait == min(max(backoff, _watch_recovery.BACKOFF) * 2, _watch_recovery.MAX_BACKOFF)


@pytest.mark.parametrize(
    ("timeout", "default_timeout", "expected"),
    [
        (2.0, None, "within 2s"),
        (None, 5.0, "within 5s"),  # the client's default: a TypeError from {None:g} before
        (0.5, 5.0, "within 0.5s"),
    ],
)
def test_unconfirmed_watch_with_a_deadline_names_the_limit(
    timeout: float | None, default_timeout: float | None, expected: str
) -> None:
    """A watch not confirmed by its deadline raises DeadlineExceededError naming the limit."""
    error = _watch_recovery.unconfirmed(
        bounded=True,
        timeout=timeout,
        default_timeout=default_timeout,
        dial_timeout=5.0,
        addresses=["a:1"],
    )
    assert isinstance(error, errors.DeadlineExceededError)
    assert expected in str(error)


def test_unconfirmed_watch_without_a_deadline_is_unavailable() -> None:
    """With no deadline the wait was dial_timeout's, and the error names the endpoints."""
    error = _watch_recovery.unconfirmed(
        bounded=False, timeout=None, default_timeout=None, dial_timeout=3.0, addresses=["a:1"]
    )
    assert type(error) is errors.UnavailableError
    assert "dial_timeout (3s)" in str(error)
    assert "['a:1']" in str(error)
