"""Client.watch against a real etcd: every option, notifications, fragments, cancel and close."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest

from etcd_layers import Client, EventType, Op, errors
from etcd_layers.base import _methods, watch_mux
from etcd_layers.base._proto import rpc_pb2
from etcd_layers.base._watch_handle import ClientWatch
from etcd_layers.base.responses import WatchResponse
from etcd_layers.testing import EtcdServer, wait_until
from etcd_layers.testing.plugin import require_etcd

TIMEOUT = 5.0
LARGE_VALUE = b"x" * 1000
# etcd fragments a watch response larger than --max-request-bytes + 512 KiB of gRPC overhead.
MAX_REQUEST_BYTES = 64 * 1024
FRAGMENTED_KEYS = 1300  # about 1.3 MB of prev_kv values in one delete: three fragments
ROOT_PASSWORD = "root-secret"
USER = "watcher"
USER_PASSWORD = "watcher-secret"
USER_PREFIX = b"/watcher/"
TOKEN_TTL = 2  # seconds a simple token lives unused (--auth-token-ttl)


@pytest.fixture
def etcd_client(both_clients: Client) -> Client:
    """The tests on it run against the Client and the AsyncClient (behind its sync facade)."""
    return both_clients


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


@pytest.fixture(params=("Client", "AsyncClient"))
def tuned_client(
    request: pytest.FixtureRequest, tuned_server: EtcdServer, make_client: Callable[..., Client]
) -> Iterator[Client]:
    """A client of each kind in turn on `tuned_server` (the AsyncClient behind its facade)."""
    cli = make_client(request.param, endpoints=tuned_server.endpoints)
    try:
        yield cli
    finally:
        cli.close()


@pytest.fixture(scope="module")
def auth_server() -> Iterator[EtcdServer]:
    """A server with auth on, short-lived simple tokens, and a user limited to USER_PREFIX."""
    require_etcd()
    extra = ["--auth-token=simple", f"--auth-token-ttl={TOKEN_TTL}", "--bcrypt-cost=4"]
    with EtcdServer(extra_args=extra) as server:
        with Client(server.endpoints, username="root", password=ROOT_PASSWORD) as root:
            root.user_add("root", ROOT_PASSWORD)
            root.user_grant_role("root", "root")
            root.user_add(USER, USER_PASSWORD)
            root.role_add(USER)
            root.role_grant_permission(USER, USER_PREFIX, prefix=True)
            root.user_grant_role(USER, USER)
            root.auth_enable()
        yield server


@pytest.fixture(params=("Client", "AsyncClient"))
def user_client(
    request: pytest.FixtureRequest, auth_server: EtcdServer, make_client: Callable[..., Client]
) -> Iterator[Client]:
    """A client of each kind, logged in as the user limited to USER_PREFIX."""
    cli = make_client(
        request.param, auth_server.endpoints, username=USER, password=USER_PASSWORD, timeout=5
    )
    try:
        yield cli
    finally:
        cli.close()


def events_of(watch: ClientWatch, count: int) -> list[tuple[EventType, bytes, bytes]]:
    """Read `count` events (type, key, value) from `watch`, each within TIMEOUT."""
    found: list[tuple[EventType, bytes, bytes]] = []
    while len(found) < count:
        response = watch.next(timeout=TIMEOUT)
        found += [(e.type, e.kv.key, e.kv.value) for e in response.events]
    return found


def assert_silent(watch: ClientWatch, seconds: float = 0.3) -> None:
    """Nothing arrives on `watch` within `seconds`."""
    with pytest.raises(TimeoutError):
        watch.next(timeout=seconds)


# --- keys, ranges and events ---------------------------------------------------------------


def test_watch_key_delivers_puts_and_deletes_in_order(
    etcd_client: Client, etcd_key_prefix: bytes
) -> None:
    """A watch on one key yields its puts and its delete, in order, with full metadata."""
    key = etcd_key_prefix + b"k"
    with etcd_client.watch(key) as watch:
        first = etcd_client.put(key, "1").header.revision
        second = etcd_client.put(key, b"2").header.revision
        deleted = etcd_client.delete(key).header.revision
        responses = [watch.next(timeout=TIMEOUT) for _ in range(3)]
    events = [event for response in responses for event in response.events]
    assert [(e.type, e.kv.value, e.kv.mod_revision) for e in events] == [
        (EventType.PUT, b"1", first),
        (EventType.PUT, b"2", second),
        (EventType.DELETE, b"", deleted),
    ]
    assert [e.kv.version for e in events] == [1, 2, 0]
    assert events[0].kv.create_revision == first
    assert all(e.kv.key == key for e in events)
    assert all(e.prev_kv is None for e in events)
    assert [r.header.revision for r in responses] == [first, second, deleted]


def test_watch_key_ignores_other_keys(etcd_client: Client, etcd_key_prefix: bytes) -> None:
    """A single-key watch does not see a key that merely starts with it."""
    key = etcd_key_prefix + b"k"
    with etcd_client.watch(key) as watch:
        etcd_client.put(key + b"x", "other")
        etcd_client.put(key, "mine")
        assert events_of(watch, 1) == [(EventType.PUT, key, b"mine")]


def test_watch_prefix_sees_every_key_under_it(etcd_client: Client, etcd_key_prefix: bytes) -> None:
    """prefix=True watches every key that starts with the key, and nothing else."""
    with etcd_client.watch(etcd_key_prefix + b"p/", prefix=True) as watch:
        etcd_client.put(etcd_key_prefix + b"p0", "outside")
        etcd_client.put(etcd_key_prefix + b"p/a", "1")
        etcd_client.put(etcd_key_prefix + b"p/b/c", "2")
        assert [key for _, key, _ in events_of(watch, 2)] == [
            etcd_key_prefix + b"p/a",
            etcd_key_prefix + b"p/b/c",
        ]
        assert_silent(watch)


def test_watch_range_end_is_exclusive(etcd_client: Client, etcd_key_prefix: bytes) -> None:
    """range_end watches [key, range_end): the end key itself is left out."""
    with etcd_client.watch(etcd_key_prefix + b"b", range_end=etcd_key_prefix + b"d") as watch:
        for name in (b"a", b"b", b"c", b"d"):
            etcd_client.put(etcd_key_prefix + name, name)
        assert [value for _, _, value in events_of(watch, 2)] == [b"b", b"c"]
        assert_silent(watch)


def test_watch_from_key_sees_every_later_key(etcd_client: Client, etcd_key_prefix: bytes) -> None:
    """from_key=True watches every key >= the key."""
    with etcd_client.watch(etcd_key_prefix + b"m", from_key=True) as watch:
        etcd_client.put(etcd_key_prefix + b"a", "before")
        etcd_client.put(etcd_key_prefix + b"m", "at")
        etcd_client.put(etcd_key_prefix + b"z", "after")
        assert [value for _, _, value in events_of(watch, 2)] == [b"at", b"after"]


def test_watch_start_revision_replays_history(etcd_client: Client, etcd_key_prefix: bytes) -> None:
    """start_revision replays every change from that revision on, then follows new ones."""
    key = etcd_key_prefix + b"k"
    first = etcd_client.put(key, "1").header.revision
    etcd_client.put(key, "2")
    with etcd_client.watch(key, start_revision=first) as watch:
        etcd_client.put(key, "3")
        assert [value for _, _, value in events_of(watch, 3)] == [b"1", b"2", b"3"]


def test_watch_prev_kv_carries_the_previous_value(
    etcd_client: Client, etcd_key_prefix: bytes
) -> None:
    """prev_kv=True gives each event the key-value pair as it was before."""
    key = etcd_key_prefix + b"k"
    etcd_client.put(key, "old")
    with etcd_client.watch(key, prev_kv=True) as watch:
        etcd_client.put(key, "new")
        etcd_client.delete(key)
        events = [e for _ in range(2) for e in watch.next(timeout=TIMEOUT).events]
    assert [e.prev_kv.value if e.prev_kv else None for e in events] == [b"old", b"new"]


def test_watch_filter_put_leaves_out_puts(etcd_client: Client, etcd_key_prefix: bytes) -> None:
    """filter_put=True delivers only deletes."""
    key = etcd_key_prefix + b"k"
    with etcd_client.watch(key, filter_put=True) as watch:
        etcd_client.put(key, "1")
        etcd_client.delete(key)
        assert [kind for kind, _, _ in events_of(watch, 1)] == [EventType.DELETE]
        assert_silent(watch)


def test_watch_filter_delete_leaves_out_deletes(
    etcd_client: Client, etcd_key_prefix: bytes
) -> None:
    """filter_delete=True delivers only puts."""
    key = etcd_key_prefix + b"k"
    with etcd_client.watch(key, filter_delete=True) as watch:
        etcd_client.put(key, "1")
        etcd_client.delete(key)
        etcd_client.put(key, "2")
        assert events_of(watch, 2) == [(EventType.PUT, key, b"1"), (EventType.PUT, key, b"2")]


def test_watch_txn_events_arrive_in_one_response(
    etcd_client: Client, etcd_key_prefix: bytes
) -> None:
    """The events of one txn share a revision and arrive together."""
    with etcd_client.watch(etcd_key_prefix, prefix=True) as watch:
        etcd_client.txn(success=[Op.put(etcd_key_prefix + b"%d" % i, "v") for i in range(5)])
        response = watch.next(timeout=TIMEOUT)
    assert len(response.events) == 5
    assert len({e.kv.mod_revision for e in response.events}) == 1


# --- confirmation and progress -------------------------------------------------------------


def test_watch_returns_only_once_confirmed(etcd_client: Client, etcd_key_prefix: bytes) -> None:
    """A write made right after watch() returns is always delivered."""
    for index in range(5):
        key = etcd_key_prefix + b"%d" % index
        with etcd_client.watch(key) as watch:
            etcd_client.put(key, "v")
            assert events_of(watch, 1) == [(EventType.PUT, key, b"v")]


def test_watch_created_notify_yields_the_confirmation_first(
    etcd_client: Client, etcd_key_prefix: bytes
) -> None:
    """created_notify=True yields the server's confirmation before any event."""
    key = etcd_key_prefix + b"k"
    before = etcd_client.put(etcd_key_prefix + b"other", "v").header.revision
    with etcd_client.watch(key, created_notify=True) as watch:
        etcd_client.put(key, "v")
        created = watch.next(timeout=TIMEOUT)
        assert created.created
        assert created.events == []
        assert created.header.revision >= before
        assert len(watch.next(timeout=TIMEOUT).events) == 1


def test_watch_without_created_notify_yields_no_confirmation(
    etcd_client: Client, etcd_key_prefix: bytes
) -> None:
    """Without created_notify the first response is the first event."""
    key = etcd_key_prefix + b"k"
    with etcd_client.watch(key) as watch:
        etcd_client.put(key, "v")
        first = watch.next(timeout=TIMEOUT)
    assert not first.created
    assert len(first.events) == 1


def test_watch_progress_notify_delivers_periodic_notifications(
    tuned_client: Client, etcd_key_prefix: bytes
) -> None:
    """progress_notify=True yields empty progress responses at the current revision."""
    revision = tuned_client.put(etcd_key_prefix + b"other", "v").header.revision
    with tuned_client.watch(etcd_key_prefix + b"k", progress_notify=True) as watch:
        response = watch.next(timeout=TIMEOUT)
    assert response.is_progress_notify
    assert response.events == []
    assert response.header.revision >= revision


def test_watch_without_progress_notify_gets_no_notifications(
    tuned_client: Client, etcd_key_prefix: bytes
) -> None:
    """Without progress_notify (and no request_progress) no notification is delivered."""
    with tuned_client.watch(etcd_key_prefix + b"k") as watch:
        assert_silent(watch, 1.0)  # more than three of the server's notification intervals


def test_request_progress_notifies_every_watch(etcd_client: Client, etcd_key_prefix: bytes) -> None:
    """request_progress() gives every watch of the client one progress notification."""
    revision = etcd_client.put(etcd_key_prefix + b"other", "v").header.revision
    with (
        etcd_client.watch(etcd_key_prefix + b"a") as first,
        etcd_client.watch(etcd_key_prefix + b"b") as second,
    ):
        etcd_client.request_progress()
        for watch in (first, second):
            response = watch.next(timeout=TIMEOUT)
            assert response.is_progress_notify
            assert response.header.revision >= revision
            assert_silent(watch)


def test_request_progress_without_watches_does_nothing(etcd_client: Client) -> None:
    """request_progress() on a client with no watch returns without error."""
    etcd_client.request_progress(timeout=1.0)
    with pytest.raises(ValueError, match="timeout"):
        etcd_client.request_progress(timeout=0)


# --- fragments -----------------------------------------------------------------------------


def test_watch_fragment_joins_a_large_txn_into_one_response(
    tuned_client: Client, etcd_key_prefix: bytes
) -> None:
    """fragment=True: a response etcd splits into fragments arrives whole."""
    for start in range(0, FRAGMENTED_KEYS, 50):  # each txn stays below --max-request-bytes
        tuned_client.txn(
            success=[
                Op.put(etcd_key_prefix + b"%05d" % i, LARGE_VALUE)
                for i in range(start, min(start + 50, FRAGMENTED_KEYS))
            ]
        )
    fragments_before = tuned_client.watch_stats().fragments
    with tuned_client.watch(etcd_key_prefix, prefix=True, prev_kv=True, fragment=True) as watch:
        deleted = tuned_client.txn(success=[Op.delete(etcd_key_prefix, prefix=True)])
        response = watch.next(timeout=TIMEOUT)
        assert_silent(watch)
    assert tuned_client.watch_stats().fragments - fragments_before >= 3  # etcd really fragmented it
    assert len(response.events) == FRAGMENTED_KEYS
    assert [e.kv.key for e in response.events] == [
        etcd_key_prefix + b"%05d" % i for i in range(FRAGMENTED_KEYS)
    ]
    assert {e.kv.mod_revision for e in response.events} == {deleted.header.revision}
    assert all(e.prev_kv is not None and e.prev_kv.value == LARGE_VALUE for e in response.events)


# --- cancel, timeouts, errors and close ----------------------------------------------------


def test_watch_cancel_ends_iteration(etcd_client: Client, etcd_key_prefix: bytes) -> None:
    """Iterating a watch stops once another thread cancels it."""
    key = etcd_key_prefix + b"k"
    watch = etcd_client.watch(key)
    seen: list[WatchResponse] = []

    def consume() -> None:
        seen.extend(watch)

    consumer = threading.Thread(target=consume)
    consumer.start()
    etcd_client.put(key, "v")
    wait_until(lambda: seen, timeout=TIMEOUT)
    watch.cancel()
    consumer.join(TIMEOUT)
    assert not consumer.is_alive()
    assert [e.kv.value for r in seen for e in r.events] == [b"v"]


def test_watch_cancel_is_idempotent_and_stops_delivery(
    etcd_client: Client, etcd_key_prefix: bytes
) -> None:
    """cancel() twice is harmless; writes after it are not delivered."""
    key = etcd_key_prefix + b"k"
    watch = etcd_client.watch(key)
    watch.cancel()
    watch.cancel()
    etcd_client.put(key, "v")
    with pytest.raises(errors.CanceledError):
        watch.next(timeout=TIMEOUT)
    assert list(watch) == []


def test_watch_with_block_cancels_on_exit(both_clients: Client, etcd_key_prefix: bytes) -> None:
    """Leaving a `with` block cancels the watch."""
    with both_clients.watch(etcd_key_prefix + b"k") as watch:
        if isinstance(both_clients, Client):  # the AsyncClient's comes through the facade
            assert isinstance(watch, ClientWatch)
    with pytest.raises(errors.CanceledError):
        watch.next(timeout=TIMEOUT)


def test_watch_next_times_out_with_builtin_timeout_error(
    etcd_client: Client, etcd_key_prefix: bytes
) -> None:
    """next(timeout=...) raises the builtin TimeoutError when nothing arrives, and can go on."""
    key = etcd_key_prefix + b"k"
    with etcd_client.watch(key) as watch:
        with pytest.raises(TimeoutError) as caught:
            watch.next(timeout=0.1)
        assert type(caught.value) is TimeoutError
        etcd_client.put(key, "v")
        assert len(watch.next(timeout=TIMEOUT).events) == 1


def test_watch_next_after_cancel_drops_what_was_queued(
    etcd_client: Client, etcd_key_prefix: bytes
) -> None:
    """Once canceled, next() raises CanceledError even with responses still queued."""
    key = etcd_key_prefix + b"k"
    watch = etcd_client.watch(key)
    etcd_client.put(key, "v")
    wait_until(lambda: watch.pending_events == 1, timeout=TIMEOUT)
    watch.cancel()
    with pytest.raises(errors.CanceledError):
        watch.next(timeout=TIMEOUT)
    assert watch.pending_events == 0


def test_watch_compacted_revision_raises_compacted_error(
    etcd_client: Client, etcd_key_prefix: bytes
) -> None:
    """Watching from a compacted revision raises CompactedError with the first kept revision."""
    key = etcd_key_prefix + b"k"
    first = etcd_client.put(key, "1").header.revision
    last = etcd_client.put(key, "2").header.revision
    etcd_client.compact(last)
    watch = etcd_client.watch(key, start_revision=first)
    with pytest.raises(errors.CompactedError) as caught:
        list(watch)
    assert caught.value.compact_revision == last
    with pytest.raises(errors.CanceledError):
        watch.next(timeout=TIMEOUT)


def test_watch_future_start_revision_waits_for_it(
    etcd_client: Client, etcd_key_prefix: bytes
) -> None:
    """A start_revision above the current one delivers changes from that revision on."""
    key = etcd_key_prefix + b"k"
    current = etcd_client.put(key, "0").header.revision
    with etcd_client.watch(key, start_revision=current + 2) as watch:
        etcd_client.put(key, "1")
        etcd_client.put(key, "2")
        assert events_of(watch, 1) == [(EventType.PUT, key, b"2")]


def test_client_close_ends_every_watch(etcd_server: EtcdServer, etcd_key_prefix: bytes) -> None:
    """close() of the client stops iteration of its watches; next() then raises CanceledError."""
    before = set(threading.enumerate())
    cli = Client(endpoints=etcd_server.endpoints)
    first = cli.watch(etcd_key_prefix + b"a")
    second = cli.watch(etcd_key_prefix + b"b")
    ended = threading.Event()

    def consume() -> None:
        for _ in first:
            pass
        ended.set()

    consumer = threading.Thread(target=consume)
    consumer.start()
    cli.close()
    consumer.join(TIMEOUT)
    assert ended.is_set()
    with pytest.raises(errors.CanceledError):
        second.next(timeout=TIMEOUT)
    with pytest.raises(errors.CanceledError):
        cli.watch(etcd_key_prefix + b"c")
    started = [thread for thread in threading.enumerate() if thread not in before]
    assert not [thread for thread in started if thread.name.startswith("etcd_layers.watch.")]


def test_watch_many_concurrent_watches_from_threads(
    etcd_client: Client, etcd_key_prefix: bytes
) -> None:
    """Watches created from many threads at once on one client each get their own events."""
    count = 16
    results: dict[int, list[bytes]] = {}
    failures: list[BaseException] = []
    barrier = threading.Barrier(count)

    def watch_and_write(index: int) -> None:
        key = etcd_key_prefix + b"%02d" % index
        try:
            barrier.wait(TIMEOUT)
            with etcd_client.watch(key) as watch:
                for round_ in range(3):
                    etcd_client.put(key, b"%d" % round_)
                results[index] = [value for _, _, value in events_of(watch, 3)]
        except (errors.EtcdError, AssertionError, TimeoutError) as err:  # for the test thread
            failures.append(err)

    threads = [threading.Thread(target=watch_and_write, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT * 3)
    assert failures == []
    assert results == {index: [b"0", b"1", b"2"] for index in range(count)}
    assert etcd_client.watch_stats().streams >= 1


def test_watch_all_keys_with_empty_prefix(etcd_client: Client, etcd_key_prefix: bytes) -> None:
    """An empty key with prefix=True watches every key."""
    with etcd_client.watch(b"", prefix=True) as watch:
        etcd_client.put(etcd_key_prefix + b"k", "v")
        keys = [key for _, key, _ in events_of(watch, 1)]
    assert keys == [etcd_key_prefix + b"k"]


# --- auth --------------------------------------------------------------------------------


def test_watch_outside_the_users_permission_is_refused(user_client: Client) -> None:
    """A watch on keys the user may not read raises PermissionDeniedError; others still work."""
    with pytest.raises(errors.PermissionDeniedError):
        user_client.watch("/elsewhere/", prefix=True)
    key = USER_PREFIX + b"allowed"
    with user_client.watch(key) as watch:
        user_client.put(key, "v")
        assert events_of(watch, 1) == [(EventType.PUT, key, b"v")]


def test_watch_created_after_the_token_expired_logs_in_again(
    auth_server: EtcdServer, user_client: Client
) -> None:
    """Once the stream's token expired, a new watch logs in again; the old one loses nothing."""
    first_key, second_key = USER_PREFIX + b"first", USER_PREFIX + b"second"
    with user_client.watch(first_key) as first:
        user_client.put(first_key, "before")
        token = dict(user_client.connection.metadata)["token"]
        streams = user_client.watch_stats().streams

        def expired() -> bool:
            # This probe renews a live token, so it runs less often than tokens expire.
            with Client(auth_server.endpoints) as probe:
                endpoint = probe.connection.endpoints[0]
                request = rpc_pb2.RangeRequest(key=USER_PREFIX).SerializeToString()
                try:
                    with errors.translate_rpc_errors():
                        endpoint.callable(_methods.RANGE)(
                            request, timeout=5, metadata=(("token", token),)
                        )
                except errors.InvalidAuthTokenError:
                    return True
            return False

        wait_until(expired, timeout=15, interval=TOKEN_TTL + 1.5)
        with user_client.watch(second_key) as second:
            user_client.put(first_key, "after")
            user_client.put(second_key, "after")
            assert events_of(first, 2) == [
                (EventType.PUT, first_key, b"before"),
                (EventType.PUT, first_key, b"after"),
            ]
            assert events_of(second, 1) == [(EventType.PUT, second_key, b"after")]
            assert_silent(first)
        assert user_client.watch_stats().streams > streams


# --- back-pressure -------------------------------------------------------------------------


def test_watch_slow_consumer_stays_bounded_and_loses_nothing(
    etcd_server: EtcdServer, etcd_key_prefix: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A consumer that does not read while thousands of events arrive holds a bounded queue,
    other watches keep flowing meanwhile, and reading later yields every event in order."""
    limit = 100
    monkeypatch.setattr(watch_mux, "QUEUE_LIMIT", limit)
    total = 2000
    with Client(endpoints=etcd_server.endpoints) as cli:
        slow = cli.watch(etcd_key_prefix + b"s/", prefix=True)
        fast = cli.watch(etcd_key_prefix + b"f")
        written = [
            cli.put(etcd_key_prefix + b"s/%05d" % i, "v").header.revision for i in range(total)
        ]
        cli.put(etcd_key_prefix + b"f", "ping")
        assert events_of(fast, 1)[0][2] == b"ping"  # not stuck behind the slow watch
        assert slow.peak_pending_events <= limit
        assert cli.watch_stats().pauses >= 1
        received: list[int] = []
        while len(received) < total:
            received += [e.kv.mod_revision for e in slow.next(timeout=TIMEOUT).events]
        assert received == written
        assert_silent(slow)
        # The bound: the limit, plus one response (etcd replays up to 1000 revisions in one).
        assert slow.peak_pending_events < limit + 1000


# --- arguments -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"key": ""}, errors.EmptyKeyError),
        ({"key": b""}, errors.EmptyKeyError),
        ({"key": 7}, TypeError),
        ({"key": "k", "range_end": 7}, TypeError),
        ({"key": "k", "prefix": True, "range_end": "z"}, ValueError),
        ({"key": "k", "prefix": True, "from_key": True}, ValueError),
        ({"key": "k", "from_key": True, "range_end": "z"}, ValueError),
        ({"key": "k", "start_revision": -1}, ValueError),
        ({"key": "k", "start_revision": 1.5}, TypeError),
        ({"key": "k", "start_revision": True}, TypeError),
        ({"key": "k", "prev_kv": 1}, TypeError),
        ({"key": "k", "filter_put": "yes"}, TypeError),
        ({"key": "k", "filter_delete": None}, TypeError),
        ({"key": "k", "progress_notify": 1}, TypeError),
        ({"key": "k", "fragment": 0}, TypeError),
        ({"key": "k", "created_notify": "no"}, TypeError),
        ({"key": "k", "prefix": "yes"}, TypeError),
        ({"key": "k", "timeout": 0}, ValueError),
        ({"key": "k", "timeout": -1.0}, ValueError),
        ({"key": "k", "timeout": "1"}, TypeError),
    ],
)
def test_watch_bad_arguments_are_refused_before_any_io(
    etcd_client: Client, etcd_key_prefix: bytes, kwargs: dict[str, object], error: type[Exception]
) -> None:
    """A bad argument raises at once, starts nothing, and leaves the client usable."""
    streams = etcd_client.watch_stats().streams
    with pytest.raises(error):
        etcd_client.watch(**kwargs)  # type: ignore[arg-type]  # wrong types on purpose
    assert etcd_client.watch_stats().streams == streams
    key = etcd_key_prefix + b"k"
    with etcd_client.watch(key) as watch:
        etcd_client.put(key, "v")
        assert len(watch.next(timeout=TIMEOUT).events) == 1


def test_watch_next_bad_timeout_is_refused(etcd_client: Client, etcd_key_prefix: bytes) -> None:
    """next() refuses a timeout that is not a positive number."""
    with etcd_client.watch(etcd_key_prefix + b"k") as watch:
        with pytest.raises(ValueError, match="timeout"):
            watch.next(timeout=0)
        with pytest.raises(TypeError, match="timeout"):
            watch.next(timeout="1")  # type: ignore[arg-type]  # wrong type on purpose
