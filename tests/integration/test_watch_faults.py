"""Watches under faults on a real 3-member cluster: every event exactly once, in order."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from etcd_layers import Client, errors, namespace
from etcd_layers.base.protocols import Watch
from etcd_layers.testing import EtcdCluster, Member, wait_until

TIMEOUT = 10.0
WRITER_LIMIT = 5000  # puts at most, whatever happens
RECOVERY = 20.0  # seconds a watch may take to deliver everything after a fault


@pytest.fixture(params=("Client", "AsyncClient"))
def connect(
    request: pytest.FixtureRequest, make_client: Callable[..., Client]
) -> Callable[..., Client]:
    """Connect the watching client of each kind in turn (the AsyncClient behind its facade)."""
    return functools.partial(make_client, request.param)


@pytest.fixture(autouse=True)
def _restore(etcd_cluster: EtcdCluster) -> Iterator[None]:
    """Undo every fault a test left, so the module's cluster starts each test whole."""
    yield
    etcd_cluster.heal()
    for member in etcd_cluster.members:
        member.client_proxy.unblackhole()
        if not member.is_running:
            member.start()
    etcd_cluster.wait_healthy()


class Writer:
    """Puts unique keys under a prefix from its own thread, straight to the members' ports.

    It bypasses the fault proxies, so faults hit only the watch under test. A put that fails
    may still have been applied: such keys are looked up once the writer stops. It starts
    writing on entering its `with` block: create the watch first.
    """

    def __init__(self, members: list[Member], prefix: bytes) -> None:
        self._client = Client(endpoints=[m.direct_endpoint for m in members], timeout=2.0)
        self._prefix = prefix
        self._applied: list[tuple[bytes, int]] = []
        self._uncertain: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="test.watch.writer")

    def __enter__(self) -> Writer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(TIMEOUT)
        self._client.close()

    @property
    def count(self) -> int:
        """How many puts were confirmed so far."""
        return len(self._applied)

    def wait_for_more(self, count: int) -> None:
        """Wait until `count` more puts than now were confirmed."""
        target = self.count + count
        wait_until(lambda: self.count >= target, timeout=TIMEOUT, message="writer stalled")

    def _run(self) -> None:
        for index in range(WRITER_LIMIT):
            if self._stop.is_set():
                return
            key = self._prefix + b"%06d" % index
            try:
                self._applied.append((key, self._client.put(key, b"v").header.revision))
            except errors.EtcdError:
                self._uncertain.append(key)

    def stop(self) -> list[tuple[bytes, int]]:
        """Stop writing; return every applied (key, mod_revision), in revision order."""
        self._stop.set()
        self._thread.join(TIMEOUT)
        assert not self._thread.is_alive()
        applied = list(self._applied)
        for key in self._uncertain:
            kvs = self._client.get(key, timeout=TIMEOUT).kvs
            applied += [(kv.key, kv.mod_revision) for kv in kvs]
        return sorted(applied, key=lambda item: item[1])


class Collector:
    """Reads a watch in its own thread, recording (key, mod_revision) of every event."""

    def __init__(self, watch: Watch) -> None:
        self.watch = watch
        self.events: list[tuple[bytes, int]] = []
        self.error: errors.EtcdError | None = None
        self._thread = threading.Thread(target=self._run, name="test.watch.collector")
        self._thread.start()

    def _run(self) -> None:
        try:
            for response in self.watch:
                self.events += [(e.kv.key, e.kv.mod_revision) for e in response.events]
        except errors.EtcdError as err:  # handed to the test thread by finish()
            self.error = err

    def wait_for(self, count: int) -> None:
        """Wait until at least `count` events arrived."""
        wait_until(lambda: len(self.events) >= count, timeout=RECOVERY)

    def finish(self, expected: list[tuple[bytes, int]]) -> list[tuple[bytes, int]]:
        """Wait until every expected event arrived, then stop; return what was received."""
        wait_until(
            lambda: len(self.events) >= len(expected) or self.error is not None,
            timeout=RECOVERY,
            message=lambda: f"{len(self.events)} of {len(expected)} events arrived",
        )
        self.watch.cancel()
        self._thread.join(TIMEOUT)
        assert self.error is None
        return self.events


def follower_of(cluster: EtcdCluster) -> Member:
    """A member that is not the leader."""
    leader = wait_until(cluster.leader, timeout=TIMEOUT)
    return next(member for member in cluster.members if member is not leader)


def member_at(cluster: EtcdCluster, endpoint: str) -> Member:
    """The member whose proxied endpoint is `endpoint`."""
    return next(member for member in cluster.members if member.endpoint == endpoint)


def test_watch_survives_dropped_connections_exactly_once(
    etcd_cluster: EtcdCluster, etcd_key_prefix: bytes, connect: Callable[..., Client]
) -> None:
    """Dropping every client connection three times mid-stream loses and repeats nothing."""
    with connect(endpoints=etcd_cluster.endpoints) as cli:
        collector = Collector(cli.watch(etcd_key_prefix, prefix=True))
        with Writer(etcd_cluster.members, etcd_key_prefix) as writer:
            for _ in range(3):
                writer.wait_for_more(30)
                collector.wait_for(writer.count)  # the stream is up again before the next drop
                for member in etcd_cluster.members:
                    member.client_proxy.drop_connections()
            writer.wait_for_more(30)
            expected = writer.stop()
            assert collector.finish(expected) == expected
            assert cli.watch_stats().streams >= 4


def test_watch_resumes_after_its_member_restarts(
    etcd_cluster: EtcdCluster, etcd_key_prefix: bytes, connect: Callable[..., Client]
) -> None:
    """A watch on a single member resumes after the member is killed and restarted."""
    member = follower_of(etcd_cluster)
    others = [m for m in etcd_cluster.members if m is not member]
    with connect(endpoints=[member.endpoint]) as cli:
        collector = Collector(cli.watch(etcd_key_prefix, prefix=True))
        with Writer(others, etcd_key_prefix) as writer:
            writer.wait_for_more(30)
            member.kill()
            writer.wait_for_more(50)  # written while the watch has no server
            member.start()
            writer.wait_for_more(30)
            expected = writer.stop()
            assert collector.finish(expected) == expected
            assert cli.watch_stats().streams >= 2


def test_watch_that_saw_nothing_resumes_from_its_creation(
    etcd_cluster: EtcdCluster, etcd_key_prefix: bytes, connect: Callable[..., Client]
) -> None:
    """A watch broken before any event still gets a write made while it was down."""
    member = follower_of(etcd_cluster)
    others = [m for m in etcd_cluster.members if m is not member]
    key = etcd_key_prefix + b"k"
    with (
        connect(endpoints=[member.endpoint]) as cli,
        Client(endpoints=[m.direct_endpoint for m in others]) as writer,
    ):
        watch = cli.watch(key)
        member.kill()
        revision = writer.put(key, "while down").header.revision
        member.start()
        response = watch.next(timeout=RECOVERY)
        assert [(e.kv.value, e.kv.mod_revision) for e in response.events] == [
            (b"while down", revision)
        ]
        with pytest.raises(TimeoutError):
            watch.next(timeout=0.5)
        assert cli.watch_stats().streams >= 2


def test_watch_fails_over_when_its_member_dies(
    etcd_cluster: EtcdCluster, etcd_key_prefix: bytes, connect: Callable[..., Client]
) -> None:
    """Killing the member a watch streams from moves it to another endpoint, losing nothing."""
    with connect(endpoints=etcd_cluster.endpoints) as cli:
        collector = Collector(cli.watch(etcd_key_prefix, prefix=True))
        with Writer(etcd_cluster.members, etcd_key_prefix) as writer:
            writer.wait_for_more(30)
            victim = member_at(etcd_cluster, cli.watch_stats().endpoint)
            victim.kill()
            writer.wait_for_more(50)
            expected = writer.stop()
            assert collector.finish(expected) == expected
            assert cli.watch_stats().endpoint != victim.endpoint


def test_watch_notices_a_black_holed_member_within_seconds(
    etcd_cluster: EtcdCluster, etcd_key_prefix: bytes, connect: Callable[..., Client]
) -> None:
    """A member that goes silent (black hole) is left within seconds, under continuous writes."""
    with connect(endpoints=etcd_cluster.endpoints) as cli:
        collector = Collector(cli.watch(etcd_key_prefix, prefix=True))
        with Writer(etcd_cluster.members, etcd_key_prefix) as writer:
            writer.wait_for_more(30)
            victim = member_at(etcd_cluster, cli.watch_stats().endpoint)
            victim.client_proxy.blackhole()
            started = time.monotonic()
            stalled_at = len(collector.events)
            wait_until(
                lambda: (
                    len(collector.events) > stalled_at + 20
                    and cli.watch_stats().endpoint != victim.endpoint
                ),
                timeout=TIMEOUT,
                message="the watch did not leave the black-holed member",
            )
            noticed = time.monotonic() - started
            expected = writer.stop()
            assert collector.finish(expected) == expected
            assert noticed < 6.0
            assert cli.watch_stats().probes >= 1


def test_watch_moves_with_set_endpoints(
    etcd_cluster: EtcdCluster, etcd_key_prefix: bytes, connect: Callable[..., Client]
) -> None:
    """set_endpoints moves a running watch to the new endpoints without loss."""
    first, second, _ = etcd_cluster.members
    with connect(endpoints=[first.endpoint]) as cli:
        collector = Collector(cli.watch(etcd_key_prefix, prefix=True))
        with Writer(etcd_cluster.members, etcd_key_prefix) as writer:
            writer.wait_for_more(30)
            cli.set_endpoints(second.endpoint)
            wait_until(lambda: cli.watch_stats().endpoint == second.endpoint, timeout=TIMEOUT)
            first.client_proxy.blackhole()  # nothing may still flow through the old endpoint
            writer.wait_for_more(30)
            expected = writer.stop()
            assert collector.finish(expected) == expected


def test_watch_require_leader_raises_no_leader_error(
    etcd_cluster: EtcdCluster, etcd_key_prefix: bytes, connect: Callable[..., Client]
) -> None:
    """With require_leader, a watch on a member that lost its leader ends with NoLeaderError."""
    member = follower_of(etcd_cluster)
    with connect(endpoints=[member.endpoint], require_leader=True) as cli:
        watch = cli.watch(etcd_key_prefix + b"k")
        etcd_cluster.isolate(member)
        with pytest.raises(errors.NoLeaderError):
            watch.next(timeout=TIMEOUT)
        with pytest.raises(errors.CanceledError):
            watch.next(timeout=TIMEOUT)


def test_watch_not_confirmed_in_time_raises_deadline_exceeded(
    etcd_cluster: EtcdCluster, etcd_key_prefix: bytes, connect: Callable[..., Client]
) -> None:
    """watch() on a silent endpoint raises DeadlineExceededError after its timeout."""
    member = etcd_cluster.members[0]
    with connect(endpoints=[member.endpoint]) as cli:
        member.client_proxy.blackhole()
        started = time.monotonic()
        with pytest.raises(errors.DeadlineExceededError):
            cli.watch(etcd_key_prefix + b"k", timeout=1.0)
        assert time.monotonic() - started < 3.0
        member.client_proxy.unblackhole()
        key = etcd_key_prefix + b"k"
        with cli.watch(key, timeout=TIMEOUT) as watch:  # still usable
            cli.put(key, "v", timeout=TIMEOUT)
            assert len(watch.next(timeout=TIMEOUT).events) == 1


def test_watch_without_deadline_gives_up_after_dial_timeout(
    etcd_cluster: EtcdCluster, etcd_key_prefix: bytes, connect: Callable[..., Client]
) -> None:
    """With no deadline and no endpoint answering, watch() raises UnavailableError."""
    member = etcd_cluster.members[0]
    with connect(endpoints=[member.endpoint], dial_timeout=1.0) as cli:
        member.client_proxy.blackhole()
        started = time.monotonic()
        with pytest.raises(errors.UnavailableError):
            cli.watch(etcd_key_prefix + b"k")
        assert 0.9 < time.monotonic() - started < 3.0


@pytest.mark.parametrize("namespaced", [False, True])
def test_iterated_watch_keeps_every_event_while_other_watches_come_and_go(
    etcd_cluster: EtcdCluster,
    etcd_key_prefix: bytes,
    connect: Callable[..., Client],
    namespaced: bool,
) -> None:
    """An iterated watch, the only one of its client, then sharing the stream, then alone again
    (and its connection dropped meanwhile), gets every event once, in order; a second watch
    added meanwhile gets its own; cancel() from another thread ends the iteration."""
    with connect(endpoints=etcd_cluster.endpoints) as cli:
        watcher = namespace.wrap(cli, etcd_key_prefix) if namespaced else cli
        prefix = b"" if namespaced else etcd_key_prefix
        collector = Collector(watcher.watch(prefix, prefix=True))
        with Writer(etcd_cluster.members, etcd_key_prefix) as writer:
            writer.wait_for_more(30)
            with watcher.watch(prefix, prefix=True) as second:
                assert second.next(timeout=TIMEOUT).events
                writer.wait_for_more(30)
            writer.wait_for_more(30)
            collector.wait_for(writer.count)
            for member in etcd_cluster.members:
                member.client_proxy.drop_connections()
            writer.wait_for_more(30)
            expected = writer.stop()
        if namespaced:
            expected = [(key[len(etcd_key_prefix) :], revision) for key, revision in expected]
        assert collector.finish(expected) == expected
