"""Cluster membership against real etcd: list, add, remove, update, promote, endpoint sync."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest

from etcd_layers import Client, errors
from etcd_layers.base._auto_sync import AUTO_SYNC_THREAD
from etcd_layers.testing import EtcdCluster, requires_etcd, wait_until
from etcd_layers.testing.plugin import EtcdClusterFactory

TIMEOUT = 10.0
# etcd refuses a new voting member until every member has been connected for 5 seconds.
JOIN_TIMEOUT = 20.0
NOT_READY = (errors.UnhealthyError, errors.MemberNotEnoughStartedError)
T = TypeVar("T")


@pytest.fixture(scope="module", params=("Client", "AsyncClient"))
def client(
    request: pytest.FixtureRequest, etcd_cluster: EtcdCluster, make_client: Callable[..., Client]
) -> Iterator[Client]:
    """A client of each kind (see conftest.py) on every member of the module's cluster."""
    with make_client(request.param, endpoints=etcd_cluster.endpoints, timeout=TIMEOUT) as cli:
        yield cli


def reconfigure(call: Callable[[], T]) -> T:
    """Run a membership change, retried while etcd says the cluster is not ready for it."""
    return wait_until(call, timeout=JOIN_TIMEOUT, interval=0.5, ignore=NOT_READY)


def refusal(call: Callable[[], object]) -> errors.EtcdError:
    """Return the error a membership change is refused with, once the cluster is ready."""

    def attempt() -> errors.EtcdError:
        try:
            call()
        except NOT_READY:
            raise
        except errors.EtcdError as err:
            return err
        pytest.fail("the membership change was accepted")

    return wait_until(attempt, timeout=JOIN_TIMEOUT, interval=0.5, ignore=NOT_READY)


def started_voters(client: Client) -> set[str]:
    """Names of the members that have started and vote."""
    return {m.name for m in client.member_list().members if m.name and not m.is_learner}


# --- list / update / errors on the module cluster ------------------------------------------


def test_member_list_names_every_member(client: Client, etcd_cluster: EtcdCluster) -> None:
    """The member list has each member's id, name and URLs, none of them a learner."""
    response = client.member_list()
    by_id = {member.id: member for member in response.members}
    assert set(by_id) == {member.member_id for member in etcd_cluster.members}
    for ours in etcd_cluster.members:
        listed = by_id[ours.member_id]
        assert listed.name == ours.name
        assert listed.peer_urls == [ours.peer_url]
        assert listed.client_urls == [ours.client_url]
        assert not listed.is_learner
    assert response.header.member_id in by_id


def test_member_list_serializable_answers_from_the_local_member(client: Client) -> None:
    """A serializable member list gives the same members as the linearizable one."""
    linearizable = client.member_list()
    serializable = client.member_list(serializable=True)
    assert {m.id for m in serializable.members} == {m.id for m in linearizable.members}


def test_member_update_changes_peer_urls(client: Client, etcd_cluster: EtcdCluster) -> None:
    """member_update replaces a member's peer URLs in the member list it answers with."""
    target = etcd_cluster.members[2]
    try:
        response = client.member_update(target.member_id, [target.direct_peer_url])
        listed = {member.id: member for member in response.members}
        assert listed[target.member_id].peer_urls == [target.direct_peer_url]
    finally:  # back behind its proxy, so partitions keep working for later tests
        client.member_update(target.member_id, [target.peer_url])


@requires_etcd(
    3, 5, reason="etcd 3.4 ignores MemberListRequest.linearizable and lists its local view"
)
def test_member_list_is_linearizable_after_member_update(
    client: Client, etcd_cluster: EtcdCluster
) -> None:
    """A member list right after member_update, from any member, already shows the change."""
    target = etcd_cluster.members[2]
    try:
        client.member_update(target.member_id, [target.direct_peer_url])
        for _ in etcd_cluster.members:  # the client takes turns: every member answers once
            listed = {m.id: m for m in client.member_list().members}
            assert listed[target.member_id].peer_urls == [target.direct_peer_url]
    finally:
        client.member_update(target.member_id, [target.peer_url])


def test_member_promote_of_a_voting_member_raises(
    client: Client, etcd_cluster: EtcdCluster
) -> None:
    """Only a learner can be promoted."""
    with pytest.raises(errors.MemberNotLearnerError):
        client.member_promote(etcd_cluster.members[0].member_id)


def test_member_remove_of_an_unknown_member_raises(client: Client) -> None:
    """Removing an id the cluster does not have raises MemberNotFoundError."""
    with pytest.raises(errors.MemberNotFoundError):
        client.member_remove(0xBAD)


def test_member_add_of_a_taken_peer_url_raises(client: Client, etcd_cluster: EtcdCluster) -> None:
    """A peer URL that a member already has cannot be added again."""
    error = refusal(lambda: client.member_add(etcd_cluster.members[0].peer_url))
    assert isinstance(error, errors.PeerURLExistError)


# --- growing and shrinking ------------------------------------------------------------------


def test_member_add_grows_a_one_member_cluster_to_three(
    etcd_cluster_factory: EtcdClusterFactory, etcd_key_prefix: bytes
) -> None:
    """Two members added and started by the rig join; all three then serve the same data."""
    cluster = etcd_cluster_factory(1)
    with Client(endpoints=cluster.endpoints, timeout=TIMEOUT) as cli:
        second = cluster.new_member()
        added = cli.member_add([second.peer_url])
        assert added.member.peer_urls == [second.peer_url]
        assert added.member.name == ""  # not started yet
        assert not added.member.is_learner
        assert {m.id for m in added.members} == {cluster.members[0].member_id, added.member.id}
        second.start()
        third = cluster.new_member()
        reconfigure(lambda: cli.member_add([third.peer_url]))
        third.start()

        assert started_voters(cli) == {m.name for m in cluster.members}
        cli.set_endpoints(third.endpoint)
        revision = cli.put(etcd_key_prefix + b"k", b"v").header.revision
    with Client(endpoints=[second.endpoint], timeout=TIMEOUT) as reader:
        got = reader.get(etcd_key_prefix + b"k")
        assert got.kvs[0].value == b"v"
        assert got.header.revision >= revision


def test_member_remove_shrinks_the_cluster(
    etcd_cluster_factory: EtcdClusterFactory, etcd_key_prefix: bytes
) -> None:
    """A removed member leaves the member list and the rest keeps serving writes."""
    cluster = etcd_cluster_factory(2)
    first, second = cluster.members
    with Client(endpoints=[first.endpoint], timeout=TIMEOUT) as cli:
        response = reconfigure(lambda: cli.member_remove(second.member_id))
        assert [m.id for m in response.members] == [first.member_id]
        cluster.remove(second)
        # If the removed member led, the other one elects itself first ("leader changed"):
        # wait for a linearizable read, which needs a leader. (etcd 3.4 serves the member
        # list from its local view even without a leader, so that cannot be the wait.)
        wait_until(
            lambda: cli.get(etcd_key_prefix + b"k").header.revision,
            timeout=TIMEOUT,
            ignore=(errors.UnavailableError,),
        )
        listed = cli.member_list().members
        assert [m.id for m in listed] == [first.member_id]
        assert cli.put(etcd_key_prefix + b"k", b"v").header.revision > 0


def test_member_add_learner_is_promoted_once_in_sync(
    etcd_cluster_factory: EtcdClusterFactory,
) -> None:
    """A learner joins without a vote and becomes a voting member once it has caught up."""
    cluster = etcd_cluster_factory(1)
    with Client(endpoints=cluster.endpoints, timeout=TIMEOUT) as cli:
        learner = cluster.new_member()
        added = cli.member_add([learner.peer_url], learner=True)
        assert added.member.is_learner
        learner.start()
        assert cli.status(learner.endpoint).is_learner

        # etcd refuses until the learner's log is close enough to the leader's.
        wait_until(
            lambda: cli.member_promote(added.member.id),
            timeout=JOIN_TIMEOUT,
            interval=0.2,
            ignore=(errors.LearnerNotReadyError,),
        )

        listed = {m.id: m for m in cli.member_list().members}
        assert not listed[added.member.id].is_learner
        assert started_voters(cli) == {m.name for m in cluster.members}


# --- endpoint sync --------------------------------------------------------------------------


def test_sync_endpoints_uses_every_member_client_url(etcd_cluster: EtcdCluster) -> None:
    """A client that knew one member learns every member's endpoint, schemes stripped."""
    with Client(endpoints=[etcd_cluster.members[0].client_url], timeout=TIMEOUT) as cli:
        synced = cli.sync_endpoints()
        assert set(synced) == set(etcd_cluster.endpoints)
        assert cli.endpoints == synced


def test_sync_endpoints_from_many_threads_during_requests_fails_none(
    etcd_cluster: EtcdCluster, etcd_key_prefix: bytes
) -> None:
    """Syncs racing each other and concurrent reads all succeed and agree on the endpoints."""
    key = etcd_key_prefix + b"k"
    failures: list[BaseException] = []
    synced: list[set[str]] = []
    with Client(endpoints=[etcd_cluster.members[0].endpoint], timeout=TIMEOUT) as cli:
        cli.put(key, b"v")

        def read() -> None:
            for _ in range(30):
                try:
                    assert cli.get(key).kvs[0].value == b"v"
                except (AssertionError, errors.EtcdError) as err:
                    failures.append(err)
                    return

        def sync() -> None:
            for _ in range(5):
                try:
                    synced.append(set(cli.sync_endpoints()))
                except errors.EtcdError as err:
                    failures.append(err)
                    return

        workers = [threading.Thread(target=read, name=f"reader-{n}") for n in range(3)]
        workers += [threading.Thread(target=sync, name=f"syncer-{n}") for n in range(3)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(TIMEOUT)
        assert set(cli.endpoints) == set(etcd_cluster.endpoints)
    assert not any(worker.is_alive() for worker in workers)
    assert failures == []
    assert synced == [set(etcd_cluster.endpoints)] * 15


def test_sync_endpoints_adds_a_member_only_once_it_votes(
    etcd_cluster_factory: EtcdClusterFactory,
) -> None:
    """A member not started yet, then a learner, is left out; it is synced once promoted."""
    cluster = etcd_cluster_factory(1)
    first = cluster.members[0]
    with Client(endpoints=cluster.endpoints, timeout=TIMEOUT) as cli:
        joining = cluster.new_member()
        # A learner does not count for quorum, so the cluster keeps serving before it starts.
        added = cli.member_add([joining.peer_url], learner=True)
        assert cli.sync_endpoints() == [first.endpoint]
        joining.start()
        assert cli.sync_endpoints() == [first.endpoint]
        wait_until(
            lambda: cli.member_promote(added.member.id),
            timeout=JOIN_TIMEOUT,
            interval=0.2,
            ignore=(errors.LearnerNotReadyError,),
        )
        assert set(cli.sync_endpoints()) == {first.endpoint, joining.endpoint}


def test_auto_sync_follows_members_joining_and_leaving(
    etcd_cluster_factory: EtcdClusterFactory,
) -> None:
    """With auto_sync_interval the endpoints follow a member added and then removed."""
    cluster = etcd_cluster_factory(1)
    first = cluster.members[0]
    with Client(endpoints=[first.endpoint], timeout=TIMEOUT, auto_sync_interval=0.1) as cli:
        joining = cluster.new_member()
        added = cli.member_add([joining.peer_url])
        joining.start()
        wait_until(lambda: set(cli.endpoints) == {first.endpoint, joining.endpoint}, timeout=5)

        # Through the member that stays: a member asked to remove itself may stop before it
        # answers ("etcdserver: server stopped", etcd #4391), and the write is not re-sent.
        with Client(endpoints=[first.endpoint], timeout=TIMEOUT) as admin:
            reconfigure(lambda: admin.member_remove(added.member.id))
        cluster.remove(joining)
        wait_until(lambda: cli.endpoints == [first.endpoint], timeout=5)


def test_auto_sync_carries_on_after_a_failed_sync(
    etcd_cluster_factory: EtcdClusterFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A sync that fails is logged, and the next one runs once the cluster is back."""
    caplog.set_level(logging.WARNING, logger="etcd_layers.base._auto_sync")
    cluster = etcd_cluster_factory(1)
    only = cluster.members[0]
    with Client(endpoints=[only.endpoint], timeout=TIMEOUT, auto_sync_interval=0.1) as cli:
        only.stop()
        wait_until(  # each sync has 5 seconds, as in clientv3
            lambda: any("auto sync" in record.getMessage() for record in caplog.records),
            timeout=15,
        )
        cli.set_endpoints(only.endpoint, "127.0.0.1:1")  # a sync will drop the bogus one
        only.start()
        wait_until(lambda: cli.endpoints == [only.endpoint], timeout=15)


def test_auto_sync_thread_stops_on_close(etcd_cluster: EtcdCluster) -> None:
    """The auto-sync thread is named, runs while the client is open and ends with close()."""
    before = set(threading.enumerate())
    cli = Client(endpoints=etcd_cluster.endpoints, auto_sync_interval=0.1)
    try:
        threads = [t for t in set(threading.enumerate()) - before if t.name == AUTO_SYNC_THREAD]
        assert len(threads) == 1
        assert all(thread.is_alive() for thread in threads)
    finally:
        cli.close()
    assert not any(thread.is_alive() for thread in threads)
