"""Election against a real etcd: campaigns, proclaims, resignations, leader failure, observe()."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import pytest
from layer_kinds import Backend

from etcd_layers import Client, errors, namespace
from etcd_layers.base.responses import GetResponse
from etcd_layers.concurrency import (
    Election,
    ElectionNotLeaderError,
    NoElectionLeaderError,
    Observation,
    Session,
    SessionExpiredError,
)
from etcd_layers.testing import wait_until

TTL = 2  # etcd's smallest lease TTL with the default election timeout
LONG_TTL = 5  # sessions that must outlive the test (kept alive all along)
WAIT = 20.0  # bound on every blocking step of a test


@pytest.fixture
def etcd_client(backend: Backend) -> Client:
    """A client on the test's backend: the session's etcd, then a MemoryEtcd on real time."""
    return backend.client()


@pytest.fixture
def other_client(backend: Backend) -> Client:
    """A second client on the same backend, for a second candidate."""
    return backend.client()


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="test-election") as executor:
        yield executor


def candidates(client: Client, name: bytes) -> int:
    return client.get(name + b"/", prefix=True, count_only=True).count


def campaign_in_background(
    pool: ThreadPoolExecutor, client: Client, election: Election, value: bytes, name: bytes
) -> Future[None]:
    """Start a campaign on another thread; return once its key is queued."""
    before = candidates(client, name)
    future = pool.submit(election.campaign, value, timeout=WAIT)
    wait_until(
        lambda: candidates(client, name) > before or future.done(),
        timeout=WAIT,
        message="the candidate queued",
    )
    return future


def collect(observation: Observation, values: list[bytes], until: bytes) -> None:
    """Record the leader values observed until `until` shows up (bounded in count)."""
    for _ in range(50):
        change: GetResponse = observation.next(timeout=WAIT)
        values.append(change.kvs[0].value)
        if values[-1] == until:
            return


def test_election_first_candidate_leads_until_it_resigns(
    etcd_client: Client, other_client: Client, etcd_key_prefix: bytes, pool: ThreadPoolExecutor
) -> None:
    """The first candidate leads; the second waits, and leads once the first resigns."""
    name = etcd_key_prefix + b"election"
    with Session(etcd_client, ttl=LONG_TTL) as first, Session(other_client, ttl=LONG_TTL) as second:
        leader, follower = Election(first, name), Election(second, name)
        leader.campaign("one", timeout=WAIT)
        assert leader.leader().value == b"one"
        assert leader.revision == leader.rev > 0
        assert leader.header is not None
        future = campaign_in_background(pool, other_client, follower, b"two", name)
        assert not future.done()
        assert follower.leader().key == leader.key
        leader.resign()
        future.result(timeout=WAIT)
        assert follower.leader() == etcd_client.get(follower.key).kvs[0]
        assert follower.leader().value == b"two"


def test_election_proclaim_updates_the_leader_value(
    etcd_client: Client, etcd_key_prefix: bytes
) -> None:
    """proclaim() by the leader changes the published value under the same key."""
    name = etcd_key_prefix + b"election"
    with Session(etcd_client, ttl=LONG_TTL) as session:
        election = Election(session, name)
        election.campaign("v1", timeout=WAIT)
        revision = election.revision
        election.proclaim("v2")
        current = election.leader()
        assert (current.key, current.value, current.create_revision) == (
            election.key,
            b"v2",
            revision,
        )


def test_election_proclaim_by_a_follower_raises_not_leader(
    etcd_client: Client, etcd_key_prefix: bytes
) -> None:
    """proclaim() by a candidate that never won raises ElectionNotLeaderError."""
    with Session(etcd_client, ttl=LONG_TTL) as session:
        election = Election(session, etcd_key_prefix + b"election")
        with pytest.raises(ElectionNotLeaderError):
            election.proclaim("v")


def test_election_proclaim_after_losing_the_key_raises_not_leader(
    etcd_client: Client, etcd_key_prefix: bytes
) -> None:
    """A leader whose key was deleted behind its back cannot proclaim."""
    with Session(etcd_client, ttl=LONG_TTL) as session:
        election = Election(session, etcd_key_prefix + b"election")
        election.campaign("v", timeout=WAIT)
        etcd_client.delete(election.key)
        with pytest.raises(ElectionNotLeaderError):
            election.proclaim("w")
        assert etcd_client.get(election.key).count == 0  # the guard kept it from re-creating


def test_election_leader_without_candidates_raises(
    etcd_client: Client, etcd_key_prefix: bytes
) -> None:
    """leader() of an election nobody campaigns in raises NoElectionLeaderError."""
    with Session(etcd_client, ttl=LONG_TTL) as session:
        election = Election(session, etcd_key_prefix + b"election")
        with pytest.raises(NoElectionLeaderError):
            election.leader()


def test_election_campaign_timeout_withdraws_the_candidate(
    etcd_client: Client, other_client: Client, etcd_key_prefix: bytes
) -> None:
    """A campaign that times out raises DeadlineExceededError and leaves no candidate key."""
    name = etcd_key_prefix + b"election"
    with Session(etcd_client, ttl=LONG_TTL) as first, Session(other_client, ttl=LONG_TTL) as second:
        Election(first, name).campaign("one", timeout=WAIT)
        with pytest.raises(errors.DeadlineExceededError):
            Election(second, name).campaign("two", timeout=0.5)
        assert candidates(etcd_client, name) == 1


def test_election_leader_failure_elects_the_next_and_observe_sees_it(
    backend: Backend,
    other_client: Client,
    etcd_client: Client,
    etcd_key_prefix: bytes,
    pool: ThreadPoolExecutor,
) -> None:
    """A dead leader's lease expires, the next candidate leads, and observe() reports both."""
    name = etcd_key_prefix + b"election"
    doomed_client = backend.client()
    doomed = Election(Session(doomed_client, ttl=TTL), name)
    doomed.campaign("doomed", timeout=WAIT)
    with (
        Session(other_client, ttl=LONG_TTL) as session,
        Session(etcd_client, ttl=LONG_TTL) as watcher,
    ):
        observed: list[bytes] = []
        with Election(watcher, name).observe() as observation:
            observer = pool.submit(collect, observation, observed, b"next")
            wait_until(lambda: observed, timeout=WAIT, message="observe() reported the leader")
            successor = Election(session, name)
            future = campaign_in_background(pool, other_client, successor, b"next", name)
            started = time.monotonic()
            doomed_client.close()  # a crashed process: the keep-alive ends, the lease runs out
            future.result(timeout=TTL + 5)
            elapsed = time.monotonic() - started
            observer.result(timeout=WAIT)
        assert successor.leader().value == b"next"
    assert observed == [b"doomed", b"next"]
    assert elapsed < TTL + 3


def test_election_observe_reports_proclaimed_values_and_ends_on_cancel(
    etcd_client: Client, etcd_key_prefix: bytes, pool: ThreadPoolExecutor
) -> None:
    """observe() waits for a first leader, reports each proclaim, and cancel() ends it."""
    name = etcd_key_prefix + b"election"
    with Session(etcd_client, ttl=LONG_TTL) as session:
        election = Election(session, name)
        observation = election.observe()
        observed: list[bytes] = []
        observer = pool.submit(collect, observation, observed, b"v3")
        election.campaign("v1", timeout=WAIT)
        wait_until(lambda: observed == [b"v1"], timeout=WAIT, message="first leader observed")
        election.proclaim("v2")
        election.proclaim("v3")
        observer.result(timeout=WAIT)
        assert observed == [b"v1", b"v2", b"v3"]
        ended = pool.submit(list, observation)
        observation.cancel()
        assert ended.result(timeout=WAIT) == []  # iteration stops; nothing more was reported
        with pytest.raises(errors.CanceledError):
            observation.next(timeout=1)


def test_election_through_a_namespace(
    etcd_client: Client, other_client: Client, etcd_key_prefix: bytes
) -> None:
    """An election on `namespace.wrap(cli, p)` is the one on p + name through the raw client."""
    tenant = namespace.wrap(etcd_client, etcd_key_prefix)
    with Session(tenant, ttl=LONG_TTL) as inner, Session(other_client, ttl=LONG_TTL) as outer:
        namespaced = Election(inner, "election")
        namespaced.campaign("inside", timeout=WAIT)
        seen = Election(outer, etcd_key_prefix + b"election").leader()
        assert (seen.key, seen.value) == (etcd_key_prefix + namespaced.key, b"inside")
        assert namespaced.leader().key == namespaced.key  # the namespace cuts its prefix off


def test_election_session_end_fails_a_waiting_campaign(
    etcd_client: Client, other_client: Client, etcd_key_prefix: bytes, pool: ThreadPoolExecutor
) -> None:
    """A candidate whose session ends while it waits stops campaigning (SessionExpiredError)."""
    name = etcd_key_prefix + b"election"
    with Session(etcd_client, ttl=LONG_TTL) as first:
        Election(first, name).campaign("one", timeout=WAIT)
        second = Session(other_client, ttl=LONG_TTL)
        future = campaign_in_background(pool, other_client, Election(second, name), b"two", name)
        closed = threading.Event()
        second.on_done(closed.set)
        second.close()
        assert closed.is_set()
        with pytest.raises(SessionExpiredError):
            future.result(timeout=10)
        assert candidates(etcd_client, name) == 1
