"""Go clientv3's watch integration tests (watch_test.go, watch_fragment_test.go), ported.

As Go's `runWatchTest`, most tests watch through one member of a three-member cluster and
write through another, so that a fault on the watcher's member leaves the writes alone.
Tests that check a revision in a response write through the watcher's member instead, whose
store then has that revision when it answers.
"""

from __future__ import annotations

import contextlib
import threading
import time
import urllib.request
from collections.abc import Iterator

import pytest

from etcd_layers import Client, EventType, errors
from etcd_layers.base import Event
from etcd_layers.base.protocols import Watch
from etcd_layers.testing import EtcdCluster, Member, wait_until
from etcd_layers.testing.plugin import require_etcd

TIMEOUT = 10.0  # for anything that should happen; a fault fails the test instead of hanging it
QUIET = 0.3  # how long "nothing more arrives" is watched for
PROGRESS_INTERVAL = 0.2  # --experimental-watch-progress-notify-interval of the module's cluster
LARGE_VALUE = b"a" * (1024 * 1024)  # watch_fragment_test.go's values
LARGE_KEYS = 3  # three 1 MiB values: one response of 3 MiB, two above a 1.5 MiB receive limit
RECEIVE_LIMIT = 1536 * 1024


@pytest.fixture(scope="module")
def cluster() -> Iterator[EtcdCluster]:
    """Three members that send progress notifications every 200 ms."""
    require_etcd()
    interval = f"--experimental-watch-progress-notify-interval={int(PROGRESS_INTERVAL * 1000)}ms"
    with EtcdCluster(3, extra_args=[interval]) as etcd:
        yield etcd


@pytest.fixture(scope="module")
def watched(cluster: EtcdCluster) -> Member:
    """The member the watcher talks to (Go's wclientMember)."""
    return cluster.members[0]


@pytest.fixture(scope="module")
def watcher(cluster: EtcdCluster, watched: Member) -> Iterator[Client]:
    """A client on the watcher's member only (tests share it)."""
    with Client([watched.endpoint], timeout=TIMEOUT, **cluster.client_options()) as cli:
        yield cli


@pytest.fixture(scope="module")
def writer(cluster: EtcdCluster) -> Iterator[Client]:
    """A client on another member (Go's kvMember), so writes survive faults on the watcher's."""
    with Client([cluster.members[1].endpoint], timeout=TIMEOUT) as cli:
        yield cli


@pytest.fixture
def prefix(etcd_key_prefix: bytes) -> bytes:
    """The test's own key prefix."""
    return etcd_key_prefix


def events_of(watch: Watch, count: int) -> list[Event]:
    """Read responses until `count` events arrived (each response within TIMEOUT)."""
    found: list[Event] = []
    while len(found) < count:
        found += watch.next(timeout=TIMEOUT).events
    return found


def assert_silent(watch: Watch, seconds: float = QUIET) -> None:
    """Nothing arrives on `watch` within `seconds`."""
    with pytest.raises(TimeoutError):
        watch.next(timeout=seconds)


def put_and_watch(writer: Client, watch: Watch, key: bytes, value: bytes) -> None:
    """Put `key` and check that the next response carries it (Go's putAndWatch)."""
    writer.put(key, value)
    response = watch.next(timeout=TIMEOUT)
    assert response.events, response
    assert (response.events[0].kv.key, response.events[0].kv.value) == (key, value)


def watcher_total(member: Member) -> int:
    """The member's etcd_debugging_mvcc_watcher_total gauge (watches it serves now)."""
    url = f"http://{member.direct_endpoint}/metrics"
    with urllib.request.urlopen(url, timeout=5) as answer:  # plain http: the member's loopback port
        for line in answer.read().decode().splitlines():
            if line.startswith("etcd_debugging_mvcc_watcher_total "):
                return int(float(line.split()[1]))
    raise AssertionError("no etcd_debugging_mvcc_watcher_total metric")


@contextlib.contextmanager
def cut_off(member: Member) -> Iterator[None]:
    """Black-hole `member`'s client proxy (and drop what is open) for the block."""
    member.client_proxy.blackhole()
    member.client_proxy.drop_connections()
    try:
        yield
    finally:
        member.client_proxy.unblackhole()


class Dropper:
    """A thread that drops the member's client connections every 10 ms until stopped."""

    def __init__(self, member: Member, limit: float = 2.0) -> None:
        self._member = member
        self._stop = threading.Event()
        self.dropping = threading.Event()  # set once the first drop is done
        self._limit = limit  # seconds: spinning on drops may starve reconnection (as in Go)
        self._thread = threading.Thread(target=self._run, name="test-dropper")
        self._thread.start()
        assert self.dropping.wait(TIMEOUT)

    def _run(self) -> None:
        ends = time.monotonic() + self._limit
        while time.monotonic() < ends:
            self._member.client_proxy.drop_connections()
            self.dropping.set()
            if self._stop.wait(0.01):
                return

    def stop(self) -> None:
        """Stop dropping and wait for the thread."""
        self._stop.set()
        self._thread.join()


# --- keys and ranges (TestWatchMultiWatcher, TestWatchRange) -----------------------------------


def test_watch_multi_watcher_each_watch_sees_only_its_keys(
    watcher: Client, writer: Client, prefix: bytes
) -> None:
    """Key watches and a prefix watch on threads each get exactly the updates they watch."""
    updates = 4
    keys = [prefix + b"foo", prefix + b"bar", prefix + b"baz"]
    seen: dict[bytes, list[bytes]] = {}
    failures: list[BaseException] = []
    ready = threading.Barrier(len(keys) + 2, timeout=TIMEOUT)

    def follow(name: bytes, count: int, prefix: bool = False) -> None:
        try:
            with watcher.watch(name, prefix=prefix) as watch:
                ready.wait()
                seen[name] = [e.kv.value for e in events_of(watch, count)]
                assert_silent(watch)  # and nothing more
        except BaseException as err:  # noqa: BLE001  # handed to the test thread
            failures.append(err)
            ready.abort()

    threads = [threading.Thread(target=follow, args=(key, updates)) for key in keys]
    threads.append(threading.Thread(target=follow, args=(prefix + b"b", 2 * updates, True)))
    for thread in threads:
        thread.start()
    ready.wait()
    for i in range(updates):
        for key in keys:
            writer.put(key, key[len(prefix) :] + b"-%d" % i)
    for thread in threads:
        thread.join(TIMEOUT)
    assert not failures, failures
    for key in keys:
        assert seen[key] == [key[len(prefix) :] + b"-%d" % i for i in range(updates)]
    expected = sorted(b"%s-%d" % (k, i) for k in (b"bar", b"baz") for i in range(updates))
    assert sorted(seen[prefix + b"b"]) == expected


def test_watch_range_delivers_the_keys_inside_it(
    watcher: Client, writer: Client, prefix: bytes
) -> None:
    """A watch on [a, c) reports a, b and bar."""
    with watcher.watch(prefix + b"a", range_end=prefix + b"c") as watch:
        for key in (b"a", b"b", b"bar"):
            put_and_watch(writer, watch, prefix + key, key)
        writer.put(prefix + b"c", b"c")
        assert_silent(watch)


# --- reconnection (TestWatchReconnRequest, TestWatchReconnInit, TestWatchReconnRunning) --------


def test_watch_created_while_connections_keep_dropping_still_works(
    cluster: EtcdCluster, writer: Client, watched: Member, prefix: bytes
) -> None:
    """A watch created while its member's connections keep being dropped works afterwards."""
    with Client([watched.endpoint], timeout=TIMEOUT) as cli:
        cli.get(b"_")  # connected: the watch stream must be opened while the drops go on
        dropper = Dropper(watched)
        try:
            watch = cli.watch(prefix + b"a", timeout=TIMEOUT)
        finally:
            dropper.stop()
        with watch:
            writer.get(b"_", timeout=30)  # as Go: the cluster is stable again
            put_and_watch(writer, watch, prefix + b"a", b"a")


def test_watch_resumes_when_connections_drop_before_any_event(
    watcher: Client, writer: Client, watched: Member, prefix: bytes
) -> None:
    """Connections dropped before the first event: the watch still delivers it."""
    with watcher.watch(prefix + b"a") as watch:
        watched.client_proxy.drop_connections()
        put_and_watch(writer, watch, prefix + b"a", b"a")


def test_watch_resumes_when_connections_drop_after_an_event(
    watcher: Client, writer: Client, watched: Member, prefix: bytes
) -> None:
    """Connections dropped after an event: the next event arrives, the first is not repeated."""
    with watcher.watch(prefix + b"a") as watch:
        put_and_watch(writer, watch, prefix + b"a", b"a")
        watched.client_proxy.drop_connections()
        put_and_watch(writer, watch, prefix + b"a", b"b")
        assert_silent(watch)


def test_watch_delivers_the_writes_made_while_it_was_cut_off(
    cluster: EtcdCluster, writer: Client, watched: Member, prefix: bytes
) -> None:
    """Writes made while the watcher's member was unreachable arrive, in order, once it is
    reachable again: the watch resumes after the last revision it delivered."""
    with Client([watched.endpoint], timeout=TIMEOUT) as cli, cli.watch(prefix + b"a") as watch:
        with cut_off(watched):
            for value in (b"1", b"2", b"3"):
                writer.put(prefix + b"a", value)
        assert [e.kv.value for e in events_of(watch, 3)] == [b"1", b"2", b"3"]
        assert_silent(watch)


def test_watch_resumed_after_a_drop_keeps_its_options(
    watcher: Client, writer: Client, watched: Member, prefix: bytes
) -> None:
    """A resumed watch keeps prev_kv and its filters (Go re-sends the same create request)."""
    key = prefix + b"a"
    writer.put(key, b"old")
    with watcher.watch(key, prev_kv=True, filter_delete=True) as watch:
        watched.client_proxy.drop_connections()
        writer.delete(key)
        writer.put(key, b"new")
        writer.put(key, b"newer")
        events = events_of(watch, 2)
        assert [e.type for e in events] == [EventType.PUT, EventType.PUT]
        assert events[0].prev_kv is None  # the key did not exist before this put
        assert events[1].prev_kv is not None
        assert events[1].prev_kv.value == b"new"
        assert_silent(watch)


def test_watch_resume_from_a_start_revision_replays_from_it(
    watcher: Client, watched: Member, prefix: bytes
) -> None:
    """A watch from a past revision, cut off after its confirmation, replays from that revision."""
    # TestWatchResumeInitRev: had the resume started from the wrong revision, a=4 would come first.
    key = prefix + b"a"
    watcher.put(prefix + b"b", b"2")
    first = watcher.put(key, b"3").header.revision
    current = watcher.put(key, b"4").header.revision
    with watcher.watch(key, start_revision=first - 1, created_notify=True) as watch:
        created = watch.next(timeout=TIMEOUT)
        assert created.created
        assert created.header.revision == current
        watched.client_proxy.drop_connections()
        events = events_of(watch, 2)
        assert [e.kv.value for e in events] == [b"3", b"4"]
        assert_silent(watch)


def test_watch_resumed_on_a_restarted_member_is_complete_or_compacted(
    cluster: EtcdCluster, prefix: bytes
) -> None:
    """A watch whose member restarts after a compaction delivers every event in order, or
    raises CompactedError (TestWatchResumeCompacted); it never skips or repeats an event."""
    leader = wait_until(cluster.leader, timeout=TIMEOUT, message="a leader")
    follower = next(m for m in cluster.members if m is not leader)
    key = prefix + b"foo"
    puts = 5
    with (
        Client([follower.endpoint], timeout=TIMEOUT) as watching,
        Client([leader.endpoint], timeout=TIMEOUT) as writing,
    ):
        start = writing.get(key).header.revision + 1
        watch = watching.watch(key, start_revision=start, timeout=TIMEOUT)
        follower.kill()
        try:
            revisions = [writing.put(key, b"bar").header.revision for _ in range(puts)]
            writing.compact(revisions[2])
        finally:
            follower.start()
        compacted = read_in_order(watch, revisions)
        if compacted is None:
            watch.cancel()
        else:
            assert compacted.compact_revision == revisions[2]
            with pytest.raises(errors.CanceledError):
                watch.next(timeout=TIMEOUT)


def read_in_order(watch: Watch, revisions: list[int]) -> errors.CompactedError | None:
    """Read an event at each of `revisions`, in order; return the CompactedError that ended
    the watch first, if one did."""
    expected = iter(revisions)
    delivered = 0
    try:
        while delivered < len(revisions):
            for event in watch.next(timeout=TIMEOUT).events:
                assert event.kv.mod_revision == next(expected)
                delivered += 1
    except errors.CompactedError as compacted:
        return compacted
    return None


# --- cancel (TestWatchCancelImmediate, TestWatchCancelInit, TestWatchCancelRunning) ------------


def test_watch_cancel_before_any_event_ends_it_at_once(watcher: Client, prefix: bytes) -> None:
    """After cancel(), next() raises CanceledError at once and iteration stops."""
    watch = watcher.watch(prefix + b"a")
    watch.cancel()
    started = time.monotonic()
    with pytest.raises(errors.CanceledError):
        watch.next(timeout=TIMEOUT)
    assert list(watch) == []
    assert time.monotonic() - started < 1.0


def test_watch_cancel_after_an_event_ends_it(
    watcher: Client, writer: Client, prefix: bytes
) -> None:
    """A watch canceled after a put ends; what was queued is not delivered after cancel()."""
    watch = watcher.watch(prefix + b"a")
    writer.put(prefix + b"a", b"a")
    watch.cancel()
    with pytest.raises(errors.CanceledError):
        watch.next(timeout=TIMEOUT)


def test_watch_cancel_reaches_the_server(watcher: Client, watched: Member, prefix: bytes) -> None:
    """Canceled watches are canceled on the server too (TestWatchCancelOnServer)."""
    count = 10
    watches = [watcher.watch(prefix + b"%d" % i, created_notify=True) for i in range(count)]
    for watch in watches:
        assert watch.next(timeout=TIMEOUT).created
    most = watcher_total(watched)
    assert most >= count
    for watch in watches:
        watch.cancel()
    wait_until(lambda: watcher_total(watched) <= most - count, timeout=TIMEOUT)


@pytest.mark.parametrize("drop", [False, True], ids=["steady", "dropping"])
def test_watch_overlapping_creates_and_cancels_from_threads(
    watcher: Client, watched: Member, prefix: bytes, drop: bool
) -> None:
    """Watches created and canceled concurrently each get their event (TestWatchOverlap*)."""
    key = prefix + b"abc"
    revision = watcher.put(key, b"def").header.revision
    failures: list[BaseException] = []

    def one() -> None:
        try:
            with watcher.watch(key, start_revision=revision, timeout=TIMEOUT) as watch:
                if drop:
                    watched.client_proxy.drop_connections()
                assert watch.next(timeout=TIMEOUT).events[0].kv.value == b"def"
        except BaseException as err:  # noqa: BLE001  # handed to the test thread
            failures.append(err)

    threads = [threading.Thread(target=one, name=f"test-watch-{i}") for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(3 * TIMEOUT)
    assert not any(thread.is_alive() for thread in threads)
    assert not failures, failures


def test_watch_cancel_while_disconnected_ends_it_at_once(
    cluster: EtcdCluster, watched: Member, prefix: bytes
) -> None:
    """cancel() of a watch whose member is unreachable ends it at once."""
    with Client([watched.endpoint], timeout=TIMEOUT) as cli:
        watch = cli.watch(prefix + b"abc")
        watched.client_proxy.blackhole()
        try:
            watched.client_proxy.drop_connections()
            started = time.monotonic()
            watch.cancel()
            with pytest.raises(errors.CanceledError):
                watch.next(timeout=TIMEOUT)
            assert time.monotonic() - started < 1.0
        finally:
            watched.client_proxy.unblackhole()


# --- compaction (TestWatchCompactRevision) -----------------------------------------------------


def test_watch_from_a_compacted_revision_raises_compacted_then_ends(
    watcher: Client, prefix: bytes
) -> None:
    """A watch from before a compaction raises CompactedError with the compacted revision,
    then ends: next() raises CanceledError and iteration stops."""
    key = prefix + b"foo"
    revisions = [watcher.put(key, b"bar").header.revision for _ in range(5)]
    watcher.compact(revisions[3])
    watch = watcher.watch(key, start_revision=revisions[1])
    with pytest.raises(errors.CompactedError) as raised:
        watch.next(timeout=TIMEOUT)
    assert raised.value.compact_revision == revisions[3]
    with pytest.raises(errors.CanceledError):
        watch.next(timeout=TIMEOUT)
    assert list(watch) == []


def test_watch_again_from_the_reported_compact_revision_replays_from_it(
    watcher: Client, prefix: bytes
) -> None:
    """The compact_revision a CompactedError reports is still available: a watch from it
    replays the history from there on (as Go users re-watch from wr.CompactRevision)."""
    key = prefix + b"foo"
    revisions = [watcher.put(key, b"v%d" % i).header.revision for i in range(5)]
    watcher.compact(revisions[2])
    with pytest.raises(errors.CompactedError) as raised:
        watcher.watch(key, start_revision=revisions[0]).next(timeout=TIMEOUT)
    with watcher.watch(key, start_revision=raised.value.compact_revision) as watch:
        events = events_of(watch, 3)
    assert [e.kv.mod_revision for e in events] == revisions[2:]


# --- progress (TestWatchWithProgressNotify*, TestConfigurableWatchProgressNotifyInterval,
# TestWatchRequestProgress) ----------------------------------------------------------------------


def test_watch_progress_notify_arrives_at_the_configured_interval(
    watcher: Client, prefix: bytes
) -> None:
    """With progress_notify, an empty progress notification arrives within a second."""
    with watcher.watch(prefix + b"foo", progress_notify=True) as watch:
        response = watch.next(timeout=1.0 + 5 * PROGRESS_INTERVAL)
        assert response.is_progress_notify
        assert response.events == []


@pytest.mark.parametrize("on_put", [True, False], ids=["watched-key", "other-key"])
def test_watch_progress_notify_reports_the_revision_of_a_later_put(
    watcher: Client, prefix: bytes, on_put: bool
) -> None:
    """After a put, the watch reports its revision: with the event if it watches the key,
    else in a progress notification."""
    with watcher.watch(prefix + b"foo", prefix=on_put, progress_notify=True) as watch:
        assert watch.next(timeout=TIMEOUT).is_progress_notify
        revision = watcher.put(prefix + b"foox", b"bar").header.revision
        for _ in range(50):  # bounded: notifications come every PROGRESS_INTERVAL
            response = watch.next(timeout=TIMEOUT)
            if response.events or response.header.revision >= revision:
                break
        assert response.header.revision == revision
        if on_put:
            [event] = response.events
            assert (event.type, event.kv.key, event.kv.value) == (
                EventType.PUT,
                prefix + b"foox",
                b"bar",
            )
            assert event.kv.create_revision == event.kv.mod_revision == revision
        else:
            assert response.is_progress_notify
            assert response.events == []


@pytest.mark.parametrize("watches", [0, 1, 2])
def test_watch_request_progress_notifies_every_watch_at_the_current_revision(
    cluster: EtcdCluster, watched: Member, prefix: bytes, watches: int
) -> None:
    """request_progress() gives each watch a notification at the store's revision."""
    with Client([watched.endpoint], timeout=TIMEOUT) as cli:
        running = [cli.watch(prefix, prefix=True) for _ in range(watches)]
        cli.put(prefix + b"a", b"1")
        for watch in running:
            assert len(watch.next(timeout=TIMEOUT).events) == 1
        revision = cli.put(prefix[:-1] + b"-outside", b"1").header.revision  # not watched
        cli.request_progress()
        for watch in running:
            response = watch.next(timeout=TIMEOUT)
            assert response.is_progress_notify
            assert response.header.revision == revision
            watch.cancel()


# --- events and options (TestWatchEventType, TestWatchWithFilter, TestWatchWithCreated*) --------


def test_watch_event_types_of_create_modify_delete_and_expiry(
    watcher: Client, prefix: bytes
) -> None:
    """Create and modify are puts (version 1, then more), deletes and lease expiry are deletes."""
    with watcher.watch(prefix, prefix=True) as watch:
        watcher.put(prefix + b"toDelete", b"foo")
        watcher.put(prefix + b"toDelete", b"bar")
        watcher.delete(prefix + b"toDelete")
        lease = watcher.grant(1).id
        watcher.put(prefix + b"toExpire", b"foo", lease=lease)
        events = events_of(watch, 5)
    kinds = [(e.type, e.kv.key[len(prefix) :]) for e in events]
    assert kinds == [
        (EventType.PUT, b"toDelete"),
        (EventType.PUT, b"toDelete"),
        (EventType.DELETE, b"toDelete"),
        (EventType.PUT, b"toExpire"),
        (EventType.DELETE, b"toExpire"),
    ]
    # Go's IsCreate / IsModify: a put that created the key, and one that changed it.
    assert events[0].kv.create_revision == events[0].kv.mod_revision
    assert events[1].kv.create_revision != events[1].kv.mod_revision
    assert events[3].kv.create_revision == events[3].kv.mod_revision


def test_watch_filter_put_delivers_only_deletes(watcher: Client, prefix: bytes) -> None:
    """filter_put leaves the put out and delivers the delete."""
    with watcher.watch(prefix + b"a", filter_put=True) as watch:
        watcher.put(prefix + b"a", b"abc")
        watcher.delete(prefix + b"a")
        [event] = watch.next(timeout=TIMEOUT).events
        assert event.type == EventType.DELETE
        assert_silent(watch, 0.1)


def test_watch_filter_delete_delivers_only_puts(watcher: Client, prefix: bytes) -> None:
    """filter_delete delivers the put and leaves the delete out."""
    with watcher.watch(prefix + b"a", filter_delete=True) as watch:
        watcher.put(prefix + b"a", b"abc")
        watcher.delete(prefix + b"a")
        [event] = watch.next(timeout=TIMEOUT).events
        assert event.type == EventType.PUT
        assert_silent(watch, 0.1)


@pytest.mark.parametrize("range_end", [b"a", b"0"], ids=["equal", "below"])
def test_watch_of_an_empty_range_is_refused_by_etcd(
    watcher: Client, prefix: bytes, range_end: bytes
) -> None:
    """A range_end not above the key names no key; etcd cancels the watch at creation, so
    watch() raises WatchCanceledError (TestV3WatchWrongRange)."""
    with pytest.raises(errors.WatchCanceledError, match="range is empty"):
        watcher.watch(prefix + b"a", range_end=prefix + range_end, timeout=TIMEOUT)
    with watcher.watch(prefix + b"a", timeout=TIMEOUT) as watch:  # the client is still usable
        watcher.put(prefix + b"a", b"v")
        assert watch.next(timeout=TIMEOUT).events[0].kv.value == b"v"


def test_watch_created_notify_yields_a_created_response_first(
    watcher: Client, prefix: bytes
) -> None:
    """created_notify makes the server's confirmation the first response."""
    with watcher.watch(prefix + b"a", created_notify=True) as watch:
        response = watch.next(timeout=TIMEOUT)
        assert response.created
        assert response.events == []


def test_watch_created_notify_is_not_repeated_after_a_reconnect(
    watcher: Client, writer: Client, watched: Member, prefix: bytes
) -> None:
    """After the connection drops and the watch resumes, no second created response comes."""
    with watcher.watch(prefix + b"a", created_notify=True) as watch:
        assert watch.next(timeout=TIMEOUT).created
        watched.client_proxy.drop_connections()
        writer.put(prefix + b"a", b"after")
        response = watch.next(timeout=TIMEOUT)
        assert not response.created
        assert response.events[0].kv.value == b"after"


def test_watch_with_require_leader_on_a_member_without_leader_raises_no_leader(
    cluster: EtcdCluster, prefix: bytes
) -> None:
    """With require_leader, watch() on a member without a leader raises NoLeaderError;
    without it, the same watch replays history from that member (TestWatchWithRequireLeader)."""
    leader = wait_until(cluster.leader, timeout=TIMEOUT, message="a leader")
    member = next(m for m in cluster.members if m is not leader)
    key = prefix + b"foo"
    with (
        Client([member.endpoint], timeout=TIMEOUT) as live,
        Client([member.endpoint], timeout=TIMEOUT, require_leader=True) as strict,
    ):
        revision = live.put(key, b"bar").header.revision  # applied on that member
        cluster.isolate(member)
        try:

            def leaderless() -> bool:
                try:
                    strict.get(key, timeout=2.0)
                except errors.NoLeaderError:
                    return True
                except errors.DeadlineExceededError:
                    return False
                return False

            wait_until(leaderless, timeout=TIMEOUT, message="the member lost its leader")
            # etcd refuses the stream itself, so the watch is never confirmed: watch() raises
            # (Go delivers the error on the channel it has already returned).
            with pytest.raises(errors.NoLeaderError):
                strict.watch(key, start_revision=revision, timeout=TIMEOUT)
            with live.watch(key, start_revision=revision, timeout=TIMEOUT) as watch:
                assert watch.next(timeout=TIMEOUT).events[0].kv.value == b"bar"
        finally:
            cluster.heal()
    cluster.wait_healthy()


# --- closing (TestWatchErrConnClosed, TestWatchAfterClose, TestWatchCancelAndCloseClient,
# TestWatchStressResumeClose, TestWatchClose) ------------------------------------------------------


def test_watch_ends_when_the_client_closes(cluster: EtcdCluster, prefix: bytes) -> None:
    """close() ends a running watch: iteration stops and next() raises CanceledError."""
    cli = Client(cluster.endpoints, timeout=TIMEOUT)
    watch = cli.watch(prefix + b"foo")
    cli.close()
    started = time.monotonic()
    assert list(watch) == []
    with pytest.raises(errors.CanceledError):
        watch.next(timeout=TIMEOUT)
    assert time.monotonic() - started < 1.0


def test_watch_after_close_raises_canceled(cluster: EtcdCluster, prefix: bytes) -> None:
    """watch() on a closed client raises CanceledError at once."""
    cli = Client(cluster.endpoints, timeout=TIMEOUT)
    cli.close()
    with pytest.raises(errors.CanceledError):
        cli.watch(prefix + b"foo")


def test_watch_cancel_then_close_ends_the_watch_cleanly(
    cluster: EtcdCluster, prefix: bytes
) -> None:
    """Canceling a watch and closing the client at once raises nothing and ends the watch."""
    cli = Client(cluster.endpoints, timeout=TIMEOUT)
    watch = cli.watch(prefix + b"abc")
    ended = threading.Event()

    def consume() -> None:
        for _ in watch:
            pass
        ended.set()

    consumer = threading.Thread(target=consume, name="test-consumer")
    consumer.start()
    watch.cancel()
    cli.close()
    consumer.join(TIMEOUT)
    assert ended.is_set()


def test_watch_many_resuming_watches_then_close_is_clean(
    cluster: EtcdCluster, watched: Member, prefix: bytes
) -> None:
    """Many watches cut off and canceled while they resume, then close(): no error, no hang."""
    cli = Client([watched.endpoint], timeout=TIMEOUT)
    watches = [cli.watch(prefix + b"abc") for _ in range(200)]
    watched.client_proxy.drop_connections()
    for watch in watches:
        watch.cancel()
    started = time.monotonic()
    cli.close()
    assert time.monotonic() - started < TIMEOUT
    assert all(list(watch) == [] for watch in watches)


# --- fragments (watch_fragment_test.go) ---------------------------------------------------------


@pytest.fixture(scope="module")
def large_revision(writer: Client) -> int:
    """The revision before LARGE_KEYS puts of 1 MiB under b"/large/" (made once)."""
    before = writer.get(b"/large/").header.revision
    for i in range(LARGE_KEYS):
        writer.put(b"/large/foo%d" % i, LARGE_VALUE)
    return before + 1


@pytest.mark.parametrize("fragment", [False, True], ids=["whole", "fragmented"])
def test_watch_large_history_arrives_joined_without_a_receive_limit(
    watched: Member, large_revision: int, fragment: bool
) -> None:
    """Events larger together than etcd's request limit arrive as one response, fragmented
    or not (TestWatchFragmentDisable, TestWatchFragmentEnable)."""
    with (
        Client([watched.endpoint], timeout=TIMEOUT) as cli,
        cli.watch(b"/large/", prefix=True, start_revision=large_revision, fragment=fragment) as w,
    ):
        response = w.next(timeout=TIMEOUT)
        assert len(response.events) == LARGE_KEYS
        assert all(e.kv.value == LARGE_VALUE for e in response.events)


def test_watch_large_history_above_the_receive_limit_fails_without_fragments(
    watched: Member, large_revision: int
) -> None:
    """Unfragmented, a response above max_call_recv_msg_size ends the watch with
    RequestTooLargeError (TestWatchFragmentDisableWithGRPCLimit)."""
    with Client([watched.endpoint], timeout=TIMEOUT, max_call_recv_msg_size=RECEIVE_LIMIT) as cli:
        watch = cli.watch(b"/large/", prefix=True, start_revision=large_revision)
        with pytest.raises(errors.RequestTooLargeError):
            watch.next(timeout=TIMEOUT)


def test_watch_large_history_above_the_receive_limit_arrives_in_fragments(
    watched: Member, large_revision: int
) -> None:
    """Fragmented, the same history arrives, joined into one response of every event
    (TestWatchFragmentEnableWithGRPCLimit)."""
    with (
        Client([watched.endpoint], timeout=TIMEOUT, max_call_recv_msg_size=RECEIVE_LIMIT) as cli,
        cli.watch(b"/large/", prefix=True, start_revision=large_revision, fragment=True) as w,
    ):
        response = w.next(timeout=TIMEOUT)
        assert len(response.events) == LARGE_KEYS
