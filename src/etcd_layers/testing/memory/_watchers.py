"""Watch streams: their watchers, history replay, and the responses each commit makes (pure)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from etcd_layers.base.transport import kv_pb2, rpc_pb2
from etcd_layers.testing.memory._keyspace import Change, Keyspace

Header = Callable[[int], rpc_pb2.ResponseHeader]
Outgoing = list[tuple[int, rpc_pb2.WatchResponse]]  # (stream id, response)

MAX_REQUEST_BYTES: Final = 1536 * 1024  # etcd's --max-request-bytes default: fragments' size
WATCH_BATCH_MAX_REVISIONS: Final = 1000  # etcd's watchBatchMaxRevs: revisions per catch-up
_EMPTY_RANGE: Final = "mvcc: watcher range is empty"
_DUPLICATE_ID: Final = "mvcc: duplicate watch ID provided on the WatchStream"
_PUT: Final = kv_pb2.Event.PUT
_DELETE: Final = kv_pb2.Event.DELETE


@dataclass(slots=True)
class _Watcher:
    stream: int
    watch_id: int
    key: bytes
    range_end: bytes | None  # None: one key; b"": every key from `key` on
    start: int
    prev_kv: bool
    no_put: bool
    no_delete: bool
    progress_notify: bool
    fragment: bool

    def matches(self, key: bytes) -> bool:
        if self.range_end is None:
            return key == self.key
        return self.key <= key and (not self.range_end or key < self.range_end)


@dataclass(slots=True)
class _Stream:
    next_id: int = 0
    watchers: dict[int, _Watcher] = field(default_factory=dict)


class Watches:
    """Every watch stream of a store and its watchers, answering as etcd's watch server."""

    def __init__(self, keyspace: Keyspace, header: Header) -> None:
        self._keyspace = keyspace
        self._header = header
        self._streams: dict[int, _Stream] = {}
        self._next_stream = 0

    def open_stream(self) -> int:
        """Start a stream; return its id."""
        self._next_stream += 1
        self._streams[self._next_stream] = _Stream()
        return self._next_stream

    def close_stream(self, stream: int) -> None:
        """End a stream and its watchers."""
        self._streams.pop(stream, None)

    @property
    def watcher_count(self) -> int:
        """How many watchers all streams have."""
        return sum(len(stream.watchers) for stream in self._streams.values())

    def request(self, stream: int, request: rpc_pb2.WatchRequest) -> list[rpc_pb2.WatchResponse]:
        """Answer one request of a stream (v3rpc/watch.go's recvLoop)."""
        state = self._streams.get(stream)
        if state is None:
            return []
        kind = request.WhichOneof("request_union")
        current = self._keyspace.revision
        if kind == "create_request":
            return self._create(stream, state, request.create_request)
        if kind == "cancel_request":
            watch_id = request.cancel_request.watch_id
            if state.watchers.pop(watch_id, None) is None:
                return []  # etcd answers nothing for an unknown id
            return [
                rpc_pb2.WatchResponse(
                    header=self._header(current), watch_id=watch_id, canceled=True
                )
            ]
        if kind == "progress_request":
            # etcd 3.5: one response for the whole stream, on no watch id (-1).
            return [rpc_pb2.WatchResponse(header=self._header(current), watch_id=-1)]
        return []

    def _create(
        self, stream: int, state: _Stream, create: rpc_pb2.WatchCreateRequest
    ) -> list[rpc_pb2.WatchResponse]:
        keyspace = self._keyspace
        current = keyspace.revision
        key = create.key or b"\x00"  # the smallest key
        end: bytes | None = create.range_end or None
        if end == b"\x00":
            end = b""  # every key from `key` on
        created = rpc_pb2.WatchResponse(header=self._header(current), created=True)
        error = None
        watch_id = create.watch_id
        if end and key >= end:
            error = _EMPTY_RANGE
        elif watch_id == 0:
            while state.next_id in state.watchers:
                state.next_id += 1
            watch_id = state.next_id
            state.next_id += 1
        elif watch_id in state.watchers:
            error = _DUPLICATE_ID
        if error is not None:
            created.watch_id, created.canceled, created.cancel_reason = -1, True, error
            return [created]
        filters = set(create.filters)
        watcher = _Watcher(
            stream=stream,
            watch_id=watch_id,
            key=key,
            range_end=end,
            start=create.start_revision or current + 1,
            prev_kv=create.prev_kv,
            no_put=rpc_pb2.WatchCreateRequest.NOPUT in filters,
            no_delete=rpc_pb2.WatchCreateRequest.NODELETE in filters,
            progress_notify=create.progress_notify,
            fragment=create.fragment,
        )
        created.watch_id = watch_id
        responses = [created]
        if watcher.start < keyspace.compact_revision:
            # mvcc's chooseAll: the history is gone; the watch ends, naming the compaction.
            responses.append(
                rpc_pb2.WatchResponse(
                    header=self._header(0),
                    watch_id=watch_id,
                    canceled=True,
                    compact_revision=keyspace.compact_revision,
                )
            )
            return responses
        state.watchers[watch_id] = watcher
        if watcher.start <= current:
            responses.extend(self._catch_up(watcher, current))
        return responses

    def _catch_up(self, watcher: _Watcher, current: int) -> list[rpc_pb2.WatchResponse]:
        """The history since the watcher's start, in batches of up to 1000 revisions."""
        responses = []
        events: list[kv_pb2.Event] = []
        revisions = 0
        for revision, changes in self._keyspace.changes_since(watcher.start):
            found = self._events(watcher, revision, changes)
            if found:
                events.extend(found)
                revisions += 1
                if revisions == WATCH_BATCH_MAX_REVISIONS:
                    responses.extend(self._responses(watcher, current, events))
                    events, revisions = [], 0
        if events:
            responses.extend(self._responses(watcher, current, events))
        return responses

    def commit(self, revision: int, changes: list[Change]) -> Outgoing:
        """The responses the changes of a new revision make, one per watcher that sees any."""
        outgoing: Outgoing = []
        for state in self._streams.values():
            for watcher in state.watchers.values():
                if watcher.start > revision:
                    continue
                events = self._events(watcher, revision, changes)
                if events:
                    for response in self._responses(watcher, revision, events):
                        outgoing.append((watcher.stream, response))
        return outgoing

    def progress(self) -> Outgoing:
        """Progress notifications for every watcher that asked for them (progress_notify)."""
        current = self._keyspace.revision
        return [
            (watcher.stream, rpc_pb2.WatchResponse(header=self._header(current), watch_id=w_id))
            for state in self._streams.values()
            for w_id, watcher in state.watchers.items()
            if watcher.progress_notify
        ]

    def _events(
        self, watcher: _Watcher, revision: int, changes: list[Change]
    ) -> list[kv_pb2.Event]:
        events = []
        for key, value in changes:
            if not watcher.matches(key):
                continue
            if value is None:
                if watcher.no_delete:
                    continue
                event = kv_pb2.Event(
                    type=_DELETE, kv=kv_pb2.KeyValue(key=key, mod_revision=revision)
                )
            else:
                if watcher.no_put:
                    continue
                event = kv_pb2.Event(type=_PUT, kv=value)
            if watcher.prev_kv and (value is None or value.create_revision != revision):
                previous = self._previous(key, revision)
                if previous is not None:
                    event.prev_kv.CopyFrom(previous)
            events.append(event)
        return events

    def _previous(self, key: bytes, revision: int) -> kv_pb2.KeyValue | None:
        """The key before `revision`, as etcd reads it when it sends the event."""
        if revision - 1 < self._keyspace.compact_revision:
            return None
        return self._keyspace.get(key, revision - 1)

    def _responses(
        self, watcher: _Watcher, revision: int, events: list[kv_pb2.Event]
    ) -> list[rpc_pb2.WatchResponse]:
        response = rpc_pb2.WatchResponse(
            header=self._header(revision), watch_id=watcher.watch_id, events=events
        )
        if not watcher.fragment or len(events) < 2 or response.ByteSize() < MAX_REQUEST_BYTES:
            return [response]
        return _fragments(response)


def _fragments(whole: rpc_pb2.WatchResponse) -> list[rpc_pb2.WatchResponse]:
    """Split the events as etcd's sendFragments, so each part stays under the size limit."""
    parts = []
    events = list(whole.events)
    index = 0
    while index < len(events):
        part = rpc_pb2.WatchResponse(header=whole.header, watch_id=whole.watch_id, fragment=True)
        while index < len(events):
            part.events.append(events[index])
            if len(part.events) > 1 and part.ByteSize() >= MAX_REQUEST_BYTES:
                del part.events[-1]
                break
            index += 1
        parts.append(part)
    parts[-1].fragment = False
    return parts
