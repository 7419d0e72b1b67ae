"""get_pages, Syncer and Mirror on a real etcd, for both client kinds, plain and in a namespace."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from mirror_kinds import (
    KINDS,
    Follower,
    Reader,
    expected_items,
    key_in,
    open_mirror,
    open_reader,
)

from etcd_layers import Client, Op, errors, mirror
from etcd_layers.base import Event, EventType, KeyValue
from etcd_layers.testing import EtcdServer, wait_until

TIMEOUT = 10.0
WRITES = 150  # puts and deletes of the writer thread, at most


@pytest.fixture
def writer(etcd_server: EtcdServer) -> Iterator[Client]:
    """A plain client that writes what the mirrors follow."""
    with Client(etcd_server.endpoints, timeout=TIMEOUT, **etcd_server.client_options()) as cli:
        yield cli


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    """Each mirror kind in turn."""
    return str(request.param)


@pytest.fixture(params=("Client", "AsyncClient", "Client-namespace", "AsyncClient-namespace"))
def reader(
    request: pytest.FixtureRequest, etcd_server: EtcdServer, etcd_key_prefix: bytes
) -> Iterator[Reader]:
    """get_pages and Syncer on each client kind, plain or through a namespace of the prefix.

    Through a namespace, the test's keys are read under the prefix `b""`.
    """
    client_kind, _, through = str(request.param).partition("-")
    with open_reader(client_kind, etcd_server.endpoints, etcd_server.client_options()) as got:
        yield got.wrap(etcd_key_prefix) if through else got


def in_reader(request: pytest.FixtureRequest, prefix: bytes) -> bytes:
    """The prefix as the reader of this test names it."""
    return b"" if str(request.node.callspec.params["reader"]).endswith("namespace") else prefix


def follow(
    kind: str, server: EtcdServer, prefix: bytes, **options: Any
) -> contextlib.AbstractContextManager[Follower]:
    """open_mirror on the server."""
    return open_mirror(kind, server.endpoints, prefix, server.client_options(), **options)


# -- get_pages and Syncer ------------------------------------------------------------------------


def test_get_pages_reads_one_snapshot_while_writers_run(
    request: pytest.FixtureRequest, reader: Reader, writer: Client, etcd_key_prefix: bytes
) -> None:
    """Pages read while a writer rewrites every key are one snapshot: a get at its revision."""
    keys = [etcd_key_prefix + b"%03d" % i for i in range(40)]
    writer.txn(success=[Op.put(key, "0") for key in keys])
    stop = threading.Event()

    def rewrite() -> None:
        for round_ in range(1, 200):
            if stop.is_set():
                return
            writer.txn(success=[Op.put(key, str(round_)) for key in keys[round_ % 7 :: 7]])

    thread = threading.Thread(target=rewrite, name="test.mirror.rewriter")
    thread.start()
    try:
        wait_until(lambda: writer.get(keys[1]).kvs[0].value != b"0", timeout=TIMEOUT)
        pages = reader.pages(
            mirror.get_pages(reader.client, in_reader(request, etcd_key_prefix), 3)
        )
    finally:
        stop.set()
        thread.join(TIMEOUT)
    revision = pages[0].header.revision
    assert {page.header.revision for page in pages} == {revision}
    assert [len(page.kvs) for page in pages] == [3] * 13 + [1]
    snapshot = writer.get(etcd_key_prefix, prefix=True, revision=revision).kvs
    cut = len(etcd_key_prefix) - len(in_reader(request, etcd_key_prefix))
    assert [(kv.key, kv.mod_revision) for page in pages for kv in page.kvs] == [
        (kv.key[cut:], kv.mod_revision) for kv in snapshot
    ]


def test_get_pages_at_a_compacted_revision_raises_compacted_error(
    request: pytest.FixtureRequest, reader: Reader, writer: Client, etcd_key_prefix: bytes
) -> None:
    """A read at a revision compacted away raises CompactedError from the iteration."""
    old = writer.put(etcd_key_prefix + b"a", "1").header.revision
    writer.compact(writer.put(etcd_key_prefix + b"a", "2").header.revision)
    pages = mirror.get_pages(reader.client, in_reader(request, etcd_key_prefix), revision=old)
    with pytest.raises(errors.CompactedError):
        reader.pages(pages)


def test_get_pages_of_an_empty_prefix_is_one_empty_page(
    request: pytest.FixtureRequest, reader: Reader, etcd_key_prefix: bytes
) -> None:
    """Nothing under the prefix: one page, empty, with its revision."""
    pages = reader.pages(mirror.get_pages(reader.client, in_reader(request, etcd_key_prefix)))
    assert [(page.kvs, page.more) for page in pages] == [([], False)]
    assert pages[0].header.revision > 0


def test_syncer_base_then_updates(
    request: pytest.FixtureRequest, reader: Reader, writer: Client, etcd_key_prefix: bytes
) -> None:
    """Go's TestMirrorSync: the base holds foo at its revision; the updates the next put."""
    # Go syncs the whole keyspace ("") of a cluster of its own: here, the test's namespace.
    ns = reader.wrap(etcd_key_prefix) if in_reader(request, etcd_key_prefix) else reader
    created = writer.put(etcd_key_prefix + b"foo", "bar").header.revision
    syncer = mirror.Syncer(ns.client, "", 0)
    pages = ns.pages(syncer.sync_base())
    assert [page.kvs for page in pages] == [
        [KeyValue(b"foo", b"bar", create_revision=created, mod_revision=created, version=1)]
    ]
    assert syncer.revision == created
    with ns.watch(syncer.sync_updates()) as watch:
        modified = writer.put(etcd_key_prefix + b"foo", "bar").header.revision
        response = watch.next(timeout=TIMEOUT)
    assert response.events[0].kv == KeyValue(
        b"foo", b"bar", create_revision=created, mod_revision=modified, version=2
    )


def test_syncer_base_reads_every_key_in_pages(
    request: pytest.FixtureRequest, reader: Reader, writer: Client, etcd_key_prefix: bytes
) -> None:
    """Go's TestMirrorSyncBase: 2000 keys come back once each, over the default page size."""
    keys = [etcd_key_prefix + b"test%d" % i for i in range(2000)]
    for start in range(0, len(keys), 100):  # Go writes them from 50 goroutines
        writer.txn(success=[Op.put(key, "test") for key in keys[start : start + 100]])
    syncer = mirror.Syncer(reader.client, in_reader(request, etcd_key_prefix) + b"test")
    pages = reader.pages(syncer.sync_base())
    assert [len(page.kvs) for page in pages] == [1000, 1000]
    assert len({kv.key for page in pages for kv in page.kvs}) == 2000
    assert [page.more for page in pages] == [True, False]


def test_syncer_updates_from_a_given_revision_replay_history(
    request: pytest.FixtureRequest, reader: Reader, writer: Client, etcd_key_prefix: bytes
) -> None:
    """A Syncer given a revision watches from the one after it, history included."""
    first = writer.put(etcd_key_prefix + b"k", "1").header.revision
    second = writer.put(etcd_key_prefix + b"k", "2").header.revision
    syncer = mirror.Syncer(reader.client, in_reader(request, etcd_key_prefix), first)
    assert [kv.value for page in reader.pages(syncer.sync_base()) for kv in page.kvs] == [b"1"]
    with reader.watch(syncer.sync_updates()) as watch:
        events = watch.next(timeout=TIMEOUT).events
    assert [(e.kv.value, e.kv.mod_revision) for e in events] == [(b"2", second)]


# -- Mirror ------------------------------------------------------------------------------------


def test_mirror_loads_the_prefix_in_pages(
    kind: str, etcd_server: EtcdServer, writer: Client, etcd_key_prefix: bytes
) -> None:
    """A new mirror holds every key of its prefix, nothing else, at the load's revision."""
    writer.txn(success=[Op.put(etcd_key_prefix + b"%02d" % i, str(i)) for i in range(25)])
    writer.put(etcd_key_prefix[:-1] + b"~outside", "x")
    revision = writer.get("any").header.revision
    with follow(kind, etcd_server, etcd_key_prefix, page_size=7) as m:
        assert m.items() == expected_items(writer, etcd_key_prefix, kind)
        assert len(m) == 25
        assert m.get(key_in(kind, etcd_key_prefix, b"03")) == b"3"
        assert m.get(key_in(kind, etcd_key_prefix, b"04").decode()) == b"4"  # str keys too
        assert m.get(key_in(kind, etcd_key_prefix, b"99")) is None
        assert m.revision >= revision


class Seen:
    """A subscriber that records every batch, and the revisions of its events."""

    def __init__(self) -> None:
        self.batches: list[list[Event]] = []

    def __call__(self, events: list[Event]) -> None:
        self.batches.append(events)

    @property
    def revisions(self) -> list[int]:
        """Each revision seen, once per revision, in the order seen."""
        seen: list[int] = []
        for batch in self.batches:
            for event in batch:
                if not seen or seen[-1] != event.kv.mod_revision:
                    seen.append(event.kv.mod_revision)
        return seen


def write_mix(writer: Client, prefix: bytes, count: int) -> list[int]:
    """Put, overwrite and delete keys under `prefix`; return the revision of each write."""
    revisions = []
    for i in range(count):
        key = prefix + b"%02d" % (i % 12)
        if i % 5 == 4:
            response: Any = writer.delete(key)
            if not response.deleted:
                continue  # a delete of nothing makes no revision
        else:
            response = writer.put(key, b"v%d" % i)
        revisions.append(response.header.revision)
    return revisions


def test_mirror_follows_a_writer_and_reports_each_revision_once(
    kind: str, etcd_server: EtcdServer, writer: Client, etcd_key_prefix: bytes
) -> None:
    """A writer thread's changes all arrive, each revision once and in order; the copy is exact."""
    writer.put(etcd_key_prefix + b"00", "before")
    with follow(kind, etcd_server, etcd_key_prefix) as m:
        seen = Seen()
        m.subscribe(seen)
        revisions: list[int] = []
        thread = threading.Thread(
            target=lambda: revisions.extend(write_mix(writer, etcd_key_prefix, WRITES)),
            name="test.mirror.writer",
        )
        thread.start()
        thread.join(60)
        assert not thread.is_alive()
        m.wait(revisions[-1], timeout=TIMEOUT)
        assert seen.revisions == revisions
        assert m.items() == expected_items(writer, etcd_key_prefix, kind)
        assert m.revision >= revisions[-1]


def test_mirror_wait_gives_read_your_writes(
    kind: str, etcd_server: EtcdServer, writer: Client, etcd_key_prefix: bytes
) -> None:
    """After wait(write's revision), the mirror shows the write."""
    with follow(kind, etcd_server, etcd_key_prefix) as m:
        for i in range(5):
            revision = writer.put(etcd_key_prefix + b"k", str(i)).header.revision
            m.wait(revision, timeout=TIMEOUT)
            assert m.get(key_in(kind, etcd_key_prefix, b"k")) == str(i).encode()


def test_mirror_wait_for_a_revision_outside_its_prefix_returns(
    kind: str, etcd_server: EtcdServer, writer: Client, etcd_key_prefix: bytes
) -> None:
    """A revision that changed no mirrored key is confirmed by a progress notification."""
    with follow(kind, etcd_server, etcd_key_prefix) as m:
        revision = writer.put(etcd_key_prefix[:-1] + b"~elsewhere", "x").header.revision
        m.wait(revision, timeout=TIMEOUT)
        assert m.revision >= revision


def test_mirror_wait_times_out_with_the_builtin_timeout_error(
    kind: str, etcd_server: EtcdServer, etcd_key_prefix: bytes
) -> None:
    """Waiting for a revision nobody writes ends with TimeoutError after the timeout."""
    with follow(kind, etcd_server, etcd_key_prefix) as m, pytest.raises(TimeoutError):
        m.wait(m.revision + 10_000, timeout=0.5)


def test_mirror_callback_sees_the_change_applied(
    kind: str, etcd_server: EtcdServer, writer: Client, etcd_key_prefix: bytes
) -> None:
    """Inside a callback, get() already returns the new value."""
    key = key_in(kind, etcd_key_prefix, b"k")
    with follow(kind, etcd_server, etcd_key_prefix) as m:
        inside: list[bytes | None] = []
        m.subscribe(lambda events: inside.append(m.get(key)))
        m.wait(writer.put(etcd_key_prefix + b"k", "new").header.revision, timeout=TIMEOUT)
        wait_until(lambda: inside == [b"new"], timeout=TIMEOUT)


def test_mirror_callback_failure_is_logged_and_following_goes_on(
    kind: str,
    etcd_server: EtcdServer,
    writer: Client,
    etcd_key_prefix: bytes,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A callback that raises is logged; the mirror and the other subscribers go on."""
    caplog.set_level(logging.ERROR, logger="etcd_layers.mirror")

    def broken(events: list[Event]) -> None:
        raise RuntimeError("subscriber bug")

    with follow(kind, etcd_server, etcd_key_prefix) as m:
        seen = Seen()
        m.subscribe(broken)
        m.subscribe(seen)
        first = writer.put(etcd_key_prefix + b"a", "1").header.revision
        second = writer.put(etcd_key_prefix + b"a", "2").header.revision
        m.wait(second, timeout=TIMEOUT)
        wait_until(lambda: seen.revisions == [first, second], timeout=TIMEOUT)
        assert m.get(key_in(kind, etcd_key_prefix, b"a")) == b"2"
    assert "subscriber bug" in caplog.text


def test_mirror_subscribe_with_replay_then_unsubscribe(
    kind: str, etcd_server: EtcdServer, writer: Client, etcd_key_prefix: bytes
) -> None:
    """replay=True delivers the content first; after unsubscribing nothing more comes."""
    writer.put(etcd_key_prefix + b"b", "2")
    writer.put(etcd_key_prefix + b"a", "1")
    with follow(kind, etcd_server, etcd_key_prefix) as m:
        seen = Seen()
        unsubscribe = m.subscribe(seen, replay=True)
        assert [[(e.type, e.kv.key, e.kv.value) for e in b] for b in seen.batches] == [
            [
                (EventType.PUT, key_in(kind, etcd_key_prefix, b"a"), b"1"),
                (EventType.PUT, key_in(kind, etcd_key_prefix, b"b"), b"2"),
            ]
        ]
        m.wait(writer.put(etcd_key_prefix + b"c", "3").header.revision, timeout=TIMEOUT)
        wait_until(lambda: len(seen.batches) == 2, timeout=TIMEOUT)
        unsubscribe()
        m.wait(writer.put(etcd_key_prefix + b"d", "4").header.revision, timeout=TIMEOUT)
        assert len(seen.batches) == 2


def test_mirror_with_prev_kv_reports_what_a_delete_removed(
    kind: str, etcd_server: EtcdServer, writer: Client, etcd_key_prefix: bytes
) -> None:
    """prev_kv=True: a delete event carries the pair as it was."""
    writer.put(etcd_key_prefix + b"k", "old")
    with follow(kind, etcd_server, etcd_key_prefix, prev_kv=True) as m:
        seen = Seen()
        m.subscribe(seen)
        m.wait(writer.delete(etcd_key_prefix + b"k").header.revision, timeout=TIMEOUT)
        wait_until(lambda: len(seen.batches) == 1, timeout=TIMEOUT)
        (event,) = seen.batches[0]
        assert event.type is EventType.DELETE
        assert event.prev_kv is not None
        assert event.prev_kv.value == b"old"
        assert m.get(key_in(kind, etcd_key_prefix, b"k")) is None


def test_mirror_close_stops_following(
    kind: str, etcd_server: EtcdServer, writer: Client, etcd_key_prefix: bytes
) -> None:
    """After close() the copy stays as it was, and wait() raises CanceledError."""
    with follow(kind, etcd_server, etcd_key_prefix) as m:
        m.wait(writer.put(etcd_key_prefix + b"k", "1").header.revision, timeout=TIMEOUT)
        m.close()
        assert m.closed
        revision = writer.put(etcd_key_prefix + b"k", "2").header.revision
        with pytest.raises(errors.CanceledError):
            m.wait(revision, timeout=TIMEOUT)
        assert m.get(key_in(kind, etcd_key_prefix, b"k")) == b"1"
        m.close()  # idempotent


def test_mirror_stops_when_its_client_closes(
    etcd_server: EtcdServer, writer: Client, etcd_key_prefix: bytes
) -> None:
    """Closing the client under a mirror ends its following; the copy stays readable."""
    cli = Client(etcd_server.endpoints, **etcd_server.client_options())
    m = mirror.Mirror(cli, etcd_key_prefix)
    m.wait(writer.put(etcd_key_prefix + b"k", "1").header.revision, timeout=TIMEOUT)
    cli.close()
    wait_until(lambda: m.closed, timeout=TIMEOUT)
    assert m.get(etcd_key_prefix + b"k") == b"1"
    m.close()


def test_mirror_load_failure_raises_from_the_constructor(etcd_server: EtcdServer) -> None:
    """A mirror that cannot load raises at once (no thread is left behind)."""
    cli = Client(etcd_server.endpoints, **etcd_server.client_options())
    cli.close()
    before = threading.active_count()
    with pytest.raises(errors.CanceledError):
        mirror.Mirror(cli, "x/")
    assert threading.active_count() == before
