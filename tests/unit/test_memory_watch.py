"""The in-memory etcd's watch core: history, filters, batches, compaction (no threads)."""

from __future__ import annotations

from etcd_layers.base.transport import kv_pb2, rpc_pb2
from etcd_layers.testing.memory._store import Store
from etcd_layers.testing.memory._watchers import MAX_REQUEST_BYTES

Create = rpc_pb2.WatchCreateRequest
PUT, DELETE = kv_pb2.Event.PUT, kv_pb2.Event.DELETE


def put(store: Store, key: bytes, value: bytes = b"v") -> None:
    store.put(rpc_pb2.PutRequest(key=key, value=value))


def watch(store: Store, create: Create) -> tuple[int, list[rpc_pb2.WatchResponse]]:
    stream = store.watch_open()
    store.watch_request(stream, rpc_pb2.WatchRequest(create_request=create))
    return stream, [response for _, response in store.take_outgoing()]


def events(responses: list[rpc_pb2.WatchResponse]) -> list[tuple[int, bytes, int]]:
    return [(e.type, e.kv.key, e.kv.mod_revision) for r in responses for e in r.events]


def test_watch_created_then_history_from_start_revision() -> None:
    """A watch from an old revision is created, then gets every change since, in one response."""
    store = Store()
    put(store, b"a")  # 2
    put(store, b"b")  # 3
    store.delete_range(rpc_pb2.DeleteRangeRequest(key=b"a"))  # 4
    _, responses = watch(store, Create(key=b"a", range_end=b"c", start_revision=3))
    created, history = responses
    assert (created.created, created.watch_id, created.header.revision) == (True, 0, 4)
    assert events([history]) == [(PUT, b"b", 3), (DELETE, b"a", 4)]
    assert history.header.revision == 4


def test_watch_one_response_per_revision_with_its_events_in_order() -> None:
    """The events of one txn arrive together, in op order; other keys are not seen."""
    store = Store()
    stream, _ = watch(store, Create(key=b"\x00", range_end=b"\x00"))
    ops = [rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=key)) for key in (b"z", b"a", b"m")]
    store.txn(rpc_pb2.TxnRequest(success=ops))
    outgoing = store.take_outgoing()
    assert [s for s, _ in outgoing] == [stream]
    assert events([outgoing[0][1]]) == [(PUT, b"z", 2), (PUT, b"a", 2), (PUT, b"m", 2)]


def test_watch_prev_kv_and_filters() -> None:
    """prev_kv carries the key before the change; NOPUT leaves the deletions only."""
    store = Store()
    put(store, b"k", b"old")
    _, [_] = watch(store, Create(key=b"k", prev_kv=True))
    _, [_] = watch(store, Create(key=b"k", filters=[Create.NOPUT]))
    put(store, b"k", b"new")
    store.delete_range(rpc_pb2.DeleteRangeRequest(key=b"k"))
    responses = [response for _, response in store.take_outgoing()]
    with_prev = [r for r in responses if r.events[0].prev_kv.key]
    assert [e.prev_kv.value for r in with_prev for e in r.events] == [b"old", b"new"]
    deletions = [r for r in responses if r.events[0].type == DELETE and not r.events[0].prev_kv.key]
    assert len(deletions) == 1
    assert len(responses) == 3  # the put the filtered watcher does not see sends nothing


def test_watch_from_a_compacted_revision_is_canceled_naming_it() -> None:
    """A watch from before the compact revision is created, then canceled with compact_revision."""
    store = Store()
    for value in (b"1", b"2", b"3"):
        put(store, b"k", value)
    store.compact(rpc_pb2.CompactionRequest(revision=3))
    _, [created, canceled] = watch(store, Create(key=b"k", start_revision=2))
    assert created.created
    assert (canceled.canceled, canceled.compact_revision, canceled.header.revision) == (True, 3, 0)
    _, [_, history] = watch(store, Create(key=b"k", start_revision=3))
    assert events([history]) == [(PUT, b"k", 3), (PUT, b"k", 4)]


def test_watch_cancel_and_progress_requests() -> None:
    """A cancel is confirmed (an unknown id gets no answer); progress answers on watch id -1."""
    store = Store()
    stream, _ = watch(store, Create(key=b"k"))
    store.watch_request(
        stream, rpc_pb2.WatchRequest(cancel_request=rpc_pb2.WatchCancelRequest(watch_id=7))
    )
    store.watch_request(
        stream, rpc_pb2.WatchRequest(cancel_request=rpc_pb2.WatchCancelRequest(watch_id=0))
    )
    store.watch_request(
        stream, rpc_pb2.WatchRequest(progress_request=rpc_pb2.WatchProgressRequest())
    )
    canceled, progress = (response for _, response in store.take_outgoing())
    assert (canceled.canceled, canceled.watch_id) == (True, 0)
    assert (progress.watch_id, progress.header.revision, list(progress.events)) == (-1, 1, [])
    put(store, b"k")
    assert store.take_outgoing() == []


def test_watch_refuses_empty_range_and_taken_ids() -> None:
    """An empty range, or a watch id in use, is answered created+canceled on id -1."""
    store = Store()
    stream, [empty] = watch(store, Create(key=b"b", range_end=b"a"))
    assert (empty.canceled, empty.watch_id, empty.cancel_reason) == (
        True,
        -1,
        "mvcc: watcher range is empty",
    )
    store.watch_request(stream, rpc_pb2.WatchRequest(create_request=Create(key=b"k", watch_id=5)))
    store.watch_request(stream, rpc_pb2.WatchRequest(create_request=Create(key=b"k", watch_id=5)))
    first, taken = (response for _, response in store.take_outgoing())
    assert (first.watch_id, first.canceled) == (5, False)
    assert taken.cancel_reason == "mvcc: duplicate watch ID provided on the WatchStream"


def test_watch_fragments_large_responses_when_asked() -> None:
    """With fragment, a response over the size limit comes in parts; the last is unflagged."""
    store = Store()
    _, [_] = watch(store, Create(key=b"\x00", range_end=b"\x00", fragment=True))
    big = b"x" * (MAX_REQUEST_BYTES // 3)
    ops = [
        rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"k%d" % i, value=big))
        for i in range(5)
    ]
    store.txn(rpc_pb2.TxnRequest(success=ops))
    parts = [response for _, response in store.take_outgoing()]
    assert len(parts) > 1
    assert [p.fragment for p in parts] == [True] * (len(parts) - 1) + [False]
    assert sum(len(p.events) for p in parts) == 5
    assert all(p.ByteSize() < MAX_REQUEST_BYTES for p in parts)


def test_watch_progress_notify_only_for_watchers_that_asked() -> None:
    """Store.progress() notifies the watchers created with progress_notify, at the revision."""
    store = Store()
    _, [_] = watch(store, Create(key=b"a", progress_notify=True))
    _, [_] = watch(store, Create(key=b"b"))
    store.progress()
    [(_, notification)] = store.take_outgoing()
    assert (notification.watch_id, notification.header.revision, len(notification.events)) == (
        0,
        1,
        0,
    )
