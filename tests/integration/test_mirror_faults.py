"""Mirrors under faults on a real 3-member cluster: dropped connections, restarts, compaction.

A writer thread puts and deletes keys straight to the members' ports while a mirror of each
kind follows through the fault proxies. At the end the copy equals a fresh read, and the
subscriber saw every revision of the prefix exactly once, in order (the history read back
by a plain watch); after a compaction it saw the difference instead, still in order.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import pytest
from mirror_kinds import KINDS, Follower, expected_items, is_namespaced, open_mirror

from etcd_layers import Client, errors
from etcd_layers.base import Event, EventType
from etcd_layers.testing import EtcdCluster, Member, wait_until

TIMEOUT = 10.0
RECOVERY = 30.0  # seconds a mirror may take to catch up after a fault
WRITER_LIMIT = 4000  # writes at most, whatever happens


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    """Each mirror kind in turn."""
    return str(request.param)


@pytest.fixture(autouse=True)
def _restore(etcd_cluster: EtcdCluster) -> Iterator[None]:
    """Undo every fault a test left, so the module's cluster starts each test whole."""
    yield
    for member in etcd_cluster.members:
        if not member.is_running:
            member.start()
    etcd_cluster.wait_healthy()


class Writer:
    """Puts and deletes keys under a prefix from its own thread, on the members it is given."""

    def __init__(self, members: list[Member], prefix: bytes) -> None:
        self.client = Client(endpoints=[m.direct_endpoint for m in members], timeout=2.0)
        self._prefix = prefix
        self.count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="test.mirror.writer")

    def __enter__(self) -> Writer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
        self.client.close()

    def _run(self) -> None:
        for index in range(WRITER_LIMIT):
            if self._stop.is_set():
                return
            key = self._prefix + b"%02d" % (index % 30)
            try:
                if index % 4 == 3:
                    self.client.delete(key)
                else:
                    self.client.put(key, b"%d" % index)
            except errors.EtcdError:
                continue  # applied or not: the history read back afterwards tells
            self.count += 1

    def wait_for_more(self, count: int) -> None:
        """Wait until `count` more writes than now were confirmed."""
        target = self.count + count
        wait_until(lambda: self.count >= target, timeout=TIMEOUT, message="writer stalled")

    def stop(self) -> int:
        """Stop writing; return the store revision after the last write."""
        self._stop.set()
        self._thread.join(TIMEOUT)
        assert not self._thread.is_alive()
        return self.client.get(b"any", timeout=TIMEOUT).header.revision


class Seen:
    """A subscriber recording every batch of events (thread-safe: one writer)."""

    def __init__(self) -> None:
        self.batches: list[list[Event]] = []

    def __call__(self, events: list[Event]) -> None:
        self.batches.append(events)

    def revisions(self) -> list[int]:
        """Each revision seen, once per run of events of that revision, in order."""
        seen: list[int] = []
        for batch in self.batches:
            for event in batch:
                if not seen or seen[-1] != event.kv.mod_revision:
                    seen.append(event.kv.mod_revision)
        return seen


def history(client: Client, prefix: bytes, start: int, end: int) -> list[int]:
    """The revisions in (start, end] that changed a key under `prefix`, read by a watch."""
    revisions: list[int] = []
    if end <= start:
        return revisions
    with client.watch(prefix, prefix=True, start_revision=start + 1) as watch:
        for _ in range(WRITER_LIMIT):  # bounded: at most one response per write
            for event in watch.next(timeout=TIMEOUT).events:
                if not revisions or revisions[-1] != event.kv.mod_revision:
                    revisions.append(event.kv.mod_revision)
            if revisions and revisions[-1] >= end:
                break
    return [revision for revision in revisions if revision <= end]


def check_exactly_once(
    m: Follower, seen: Seen, writer: Writer, prefix: bytes, kind: str, start: int
) -> None:
    """The mirror caught up with the writer, equals a fresh read, and saw each revision once."""
    end = writer.stop()
    m.wait(end, timeout=RECOVERY)
    assert m.items() == expected_items(writer.client, prefix, kind)
    assert seen.revisions() == history(writer.client, prefix, start, end)


def follower_of(cluster: EtcdCluster) -> Member:
    """A member that is not the leader."""
    leader = wait_until(cluster.leader, timeout=TIMEOUT)
    return next(member for member in cluster.members if member is not leader)


def test_mirror_survives_dropped_connections_exactly_once(
    kind: str, etcd_cluster: EtcdCluster, etcd_key_prefix: bytes
) -> None:
    """Dropping every client connection three times mid-stream loses and repeats nothing."""
    with open_mirror(kind, etcd_cluster.endpoints, etcd_key_prefix, {"timeout": TIMEOUT}) as m:
        seen = Seen()
        m.subscribe(seen)
        start = m.revision
        with Writer(etcd_cluster.members, etcd_key_prefix) as writer:
            for _ in range(3):
                writer.wait_for_more(40)
                for member in etcd_cluster.members:
                    member.client_proxy.drop_connections()
            writer.wait_for_more(40)
            check_exactly_once(m, seen, writer, etcd_key_prefix, kind, start)


def test_mirror_resumes_after_its_member_restarts_exactly_once(
    kind: str, etcd_cluster: EtcdCluster, etcd_key_prefix: bytes
) -> None:
    """A mirror on one member catches up after that member is killed and restarted."""
    member = follower_of(etcd_cluster)
    others = [m for m in etcd_cluster.members if m is not member]
    options = {"timeout": TIMEOUT}
    with open_mirror(kind, [member.endpoint], etcd_key_prefix, options) as m:
        seen = Seen()
        m.subscribe(seen)
        start = m.revision
        with Writer(others, etcd_key_prefix) as writer:
            writer.wait_for_more(30)
            member.kill()
            writer.wait_for_more(60)  # written while the mirror has no server
            member.start()
            writer.wait_for_more(30)
            check_exactly_once(m, seen, writer, etcd_key_prefix, kind, start)


def test_mirror_fails_over_as_members_die_in_turn_exactly_once(
    kind: str, etcd_cluster: EtcdCluster, etcd_key_prefix: bytes
) -> None:
    """Each member in turn is killed and restarted: whichever the watch used, it moves on."""
    with open_mirror(kind, etcd_cluster.endpoints, etcd_key_prefix, {"timeout": TIMEOUT}) as m:
        seen = Seen()
        m.subscribe(seen)
        start = m.revision
        with Writer(etcd_cluster.members, etcd_key_prefix) as writer:
            for member in etcd_cluster.members:
                writer.wait_for_more(20)
                member.kill()
                writer.wait_for_more(30)
                member.start()
                etcd_cluster.wait_healthy()
            writer.wait_for_more(20)
            check_exactly_once(m, seen, writer, etcd_key_prefix, kind, start)


def replayed(initial: dict[bytes, bytes], seen: Seen) -> dict[bytes, bytes]:
    """`initial` with every seen event applied in order."""
    state = dict(initial)
    for batch in seen.batches:
        for event in batch:
            if event.type is EventType.PUT:
                state[event.kv.key] = event.kv.value
            else:
                state.pop(event.kv.key, None)
    return state


def test_mirror_reloads_after_a_compaction_and_reports_the_difference(
    kind: str,
    etcd_cluster: EtcdCluster,
    etcd_key_prefix: bytes,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Its revision compacted away while cut off, a mirror reloads and reports the change."""
    caplog.set_level(logging.INFO, logger="etcd_layers.mirror")
    member = follower_of(etcd_cluster)
    others = [m for m in etcd_cluster.members if m is not member]
    options = {"timeout": TIMEOUT}
    with open_mirror(kind, [member.endpoint], etcd_key_prefix, options) as m:
        with Writer(others, etcd_key_prefix) as writer:
            writer.wait_for_more(40)
            seen = Seen()
            m.subscribe(seen, replay=True)
            member.kill()
            writer.wait_for_more(60)
            end = writer.stop()
            writer.client.compact(end, physical=True)
            member.start()
            m.wait(end, timeout=RECOVERY)
            final = m.items()
            assert final == expected_items(writer.client, etcd_key_prefix, kind)
        assert replayed({}, seen) == final
        assert "CompactedError" in caplog.text  # it did reload
        reload_batch = next(
            batch for batch in seen.batches if any(e.kv.mod_revision == m.revision for e in batch)
        )
        assert reload_batch
        for before, after in zip(seen.batches[1:], seen.batches[2:], strict=False):
            assert max(e.kv.mod_revision for e in before) < min(e.kv.mod_revision for e in after)
    assert is_namespaced(kind) or all(key.startswith(etcd_key_prefix) for key in final)
