"""The mirror's pure core: applying watch batches once, progress, the reload diff, recovery."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from etcd_layers import errors
from etcd_layers.base import (
    Event,
    EventType,
    GetOp,
    GetResponse,
    KeyValue,
    ResponseHeader,
    TxnResponse,
)
from etcd_layers.mirror._common import Subscribers, deliver, replay_events
from etcd_layers.mirror._store import (
    Recovery,
    Store,
    diff,
    is_quiet,
    mod_revision_of,
    pack,
    quiet_check,
    recovery_for,
    unpack,
)


def put(key: bytes, value: bytes, revision: int) -> Event:
    return Event(EventType.PUT, KeyValue(key, value, mod_revision=revision))


def delete(key: bytes, revision: int) -> Event:
    return Event(EventType.DELETE, KeyValue(key, mod_revision=revision))


def loaded(revision: int, *kvs: KeyValue) -> Store:
    store = Store()
    store.add_page(GetResponse(ResponseHeader(revision=revision), list(kvs)))
    return store


def test_store_load_takes_the_first_page_revision() -> None:
    """A load's revision is the header revision of its pages."""
    store = loaded(10, KeyValue(b"a", b"1", mod_revision=3))
    store.add_page(GetResponse(ResponseHeader(revision=10), [KeyValue(b"b", b"2", mod_revision=4)]))
    assert (store.revision, store.values) == (10, {b"a": b"1", b"b": b"2"})


def test_store_apply_puts_and_deletes_and_moves_the_revision() -> None:
    """A batch's puts and deletes land in the copy; the revision is its last event's."""
    store = loaded(10, KeyValue(b"a", b"1", mod_revision=3))
    events = [put(b"b", b"2", 11), delete(b"a", 12), put(b"b", b"3", 12)]
    assert store.apply(events) == events
    assert (store.revision, store.values, list(store.kvs())) == (12, {b"b": b"3"}, [b"b"])


def test_store_apply_skips_events_it_already_has() -> None:
    """A batch resent after a resumed or restarted watch is not applied twice."""
    store = loaded(10)
    store.apply([put(b"a", b"1", 11), put(b"a", b"2", 12)])
    assert store.apply([put(b"a", b"1", 11), put(b"a", b"2", 12)]) == []
    fresh = store.apply([put(b"a", b"2", 12), put(b"a", b"3", 13)])
    assert [event.kv.mod_revision for event in fresh] == [13]
    assert (store.revision, store.values) == (13, {b"a": b"3"})


def test_store_apply_of_nothing_changes_nothing() -> None:
    """An empty batch leaves the copy and its revision alone."""
    store = loaded(4)
    assert store.apply([]) == []
    assert store.revision == 4


@given(
    create=st.integers(0, 2**63 - 1),
    mod=st.integers(0, 2**63 - 1),
    version=st.integers(0, 2**63 - 1),
    lease=st.integers(0, 2**63 - 1),
)
def test_pack_keeps_every_field(create: int, mod: int, version: int, lease: int) -> None:
    """A KeyValue packed into one int unpacks to itself (etcd's fields are int64)."""
    kv = KeyValue(b"k", b"v", create, mod, version, lease)
    assert unpack(b"k", b"v", pack(kv)) == kv
    assert mod_revision_of(pack(kv)) == mod


def test_store_kv_gives_the_whole_key_value() -> None:
    """kv(key) rebuilds the KeyValue the copy took in; None for a missing key."""
    full = KeyValue(b"a", b"1", create_revision=2, mod_revision=3, version=2, lease=77)
    store = loaded(10, full)
    assert (store.kv(b"a"), store.kv(b"b")) == (full, None)


def test_store_confirm_moves_the_revision_but_not_what_is_skipped() -> None:
    """A proven revision is reported; events up to it that still come are applied."""
    store = loaded(10)
    assert store.confirm(15) is True
    assert store.confirm(12) is False
    assert (store.revision, store.applied) == (15, 10)
    made_and_removed = [put(b"k", b"1", 12), delete(b"k", 13)]
    assert store.apply(made_and_removed) == made_and_removed
    assert (store.revision, store.applied, store.values) == (15, 13, {})


def test_quiet_check_counts_all_keys_and_the_recently_modified_at_the_revision() -> None:
    """The proof reads, at the awaited revision, every key and those modified since applied."""
    check = quiet_check(b"p/", 10, 15)
    total, modified = check.success
    assert isinstance(total, GetOp)
    assert isinstance(modified, GetOp)
    assert (total.key, total.count_only, total.revision, total.min_mod_revision) == (
        b"p/",
        True,
        15,
        0,
    )
    assert (modified.count_only, modified.revision, modified.min_mod_revision) == (True, 15, 11)


@pytest.mark.parametrize(
    ("total", "modified", "count", "quiet"),
    [(3, 0, 3, True), (3, 1, 3, False), (2, 0, 3, False), (4, 0, 3, False)],
)
def test_is_quiet_needs_no_recent_change_and_the_same_count(
    total: int, modified: int, count: int, quiet: bool
) -> None:
    """Quiet: nothing modified after applied, and as many keys as the copy holds."""
    header = ResponseHeader(revision=15)
    response = TxnResponse(
        header, True, [GetResponse(header, count=total), GetResponse(header, count=modified)]
    )
    assert is_quiet(response, count) is quiet


# key -> mod revision; in etcd a key's mod revision fixes its value (here derived from both)
STATES = st.dictionaries(st.sampled_from([b"a", b"b", b"c", b"d"]), st.integers(1, 4))


def kvs_of(state: dict[bytes, int]) -> dict[bytes, KeyValue]:
    return {key: KeyValue(key, key + b"%d" % rev, mod_revision=rev) for key, rev in state.items()}


@given(old=STATES, new=STATES)
def test_diff_turns_the_old_copy_into_the_new_snapshot(
    old: dict[bytes, int], new: dict[bytes, int]
) -> None:
    """Applying the reload diff to the old copy gives the snapshot, reporting only changes."""
    store = loaded(5, *kvs_of(old).values())
    snapshot = loaded(9, *kvs_of(new).values())
    before = store.kvs()
    events = diff(store, snapshot)
    store.replace(events, snapshot.revision)
    assert store.kvs() == snapshot.kvs()
    assert store.values == snapshot.values
    assert store.revision == 9
    keys = [event.kv.key for event in events]
    assert keys == sorted(keys)
    for event in events:
        assert event.prev_kv == before.get(event.kv.key)
        if event.type is EventType.DELETE:
            assert event.kv.mod_revision == 9
        else:
            assert event.kv != before.get(event.kv.key)
    unchanged = {key for key, kv in before.items() if snapshot.kv(key) == kv}
    assert unchanged.isdisjoint(keys)


def test_diff_reports_a_rewrite_with_the_same_value() -> None:
    """A key put again (a new mod revision, the same value) is reported: it changed."""
    old = loaded(5, KeyValue(b"a", b"1", mod_revision=2))
    new = loaded(9, KeyValue(b"a", b"1", mod_revision=7))
    assert [(e.type, e.kv.mod_revision) for e in diff(old, new)] == [(EventType.PUT, 7)]


@pytest.mark.parametrize(
    ("error", "starting", "recovery"),
    [
        (errors.CompactedError("compacted", 10), False, Recovery.RELOAD),
        (errors.CompactedError("compacted", 10), True, Recovery.RELOAD),
        (errors.CanceledError("ended"), False, Recovery.RESTART),
        (errors.CanceledError("closed"), True, Recovery.STOP),
        (errors.UnavailableError("down"), True, Recovery.RESTART),
        (errors.EtcdError("other"), False, Recovery.RESTART),
    ],
)
def test_recovery_for_each_watch_failure(
    error: errors.EtcdError, starting: bool, recovery: Recovery
) -> None:
    """Compaction reloads, a closed client stops, anything else restarts the watch."""
    assert recovery_for(error, starting=starting) is recovery


def test_deliver_logs_a_failing_callback_and_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    """A callback that raises is logged; the subscribers after it still get the events."""
    seen: list[list[Event]] = []
    subscribers = Subscribers()

    def broken(events: list[Event]) -> None:
        raise RuntimeError("boom")

    subscribers.add(broken)
    subscribers.add(seen.append)
    events = [put(b"a", b"1", 2)]
    deliver(subscribers.entries, events)
    assert seen == [events]
    assert seen[0] is not events  # each callback gets a list of its own
    assert "callback failed" in caplog.text


def test_subscribers_remove_only_the_one_subscription() -> None:
    """Removing a subscription leaves another of the same callback in place (and is idempotent)."""
    subscribers = Subscribers()
    first = subscribers.add(print)
    second = subscribers.add(print)
    subscribers.remove(first)
    subscribers.remove(first)
    assert subscribers.entries == (second,)


def test_replay_events_are_puts_in_key_order() -> None:
    """A replay hands out the copy as PUT events, sorted by key."""
    kvs = {b"b": KeyValue(b"b", b"2"), b"a": KeyValue(b"a", b"1")}
    assert [(e.type, e.kv.key) for e in replay_events(kvs)] == [
        (EventType.PUT, b"a"),
        (EventType.PUT, b"b"),
    ]
