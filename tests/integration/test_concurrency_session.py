"""Session against a real etcd: the lease lives while the session does, and its end is announced."""

from __future__ import annotations

import doctest
import io
import threading
import time

import pytest
from layer_kinds import Backend

from etcd_layers import Client, concurrency, errors, namespace
from etcd_layers.concurrency import Mutex, Session
from etcd_layers.testing import wait_until
from etcd_layers.testing.plugin import EtcdClusterFactory

TTL = 2  # etcd's smallest lease TTL with the default election timeout


@pytest.fixture
def etcd_client(backend: Backend) -> Client:
    """A client on the test's backend: the session's etcd, then a MemoryEtcd on real time."""
    return backend.client()


def test_session_keeps_its_lease_alive_past_the_ttl(etcd_client: Client) -> None:
    """A running session renews its lease, so it outlives several TTLs and is not done."""
    with Session(etcd_client, ttl=TTL) as session:
        assert not session.done.wait(TTL * 1.5)  # bounded: the lease would have expired by now
        status = etcd_client.time_to_live(session.lease_id)
        assert (status.granted_ttl, session.ttl) == (TTL, TTL)
        assert status.ttl > 0


def test_session_close_revokes_the_lease_and_its_keys(
    etcd_client: Client, etcd_key_prefix: bytes
) -> None:
    """close() revokes the lease, deleting the keys attached to it, and sets done."""
    session = Session(etcd_client, ttl=30)
    etcd_client.put(etcd_key_prefix + b"owned", b"", lease=session.lease_id)
    session.close()
    assert session.done.is_set()
    assert session.error is None
    assert etcd_client.time_to_live(session.lease_id).ttl == -1
    assert etcd_client.get(etcd_key_prefix + b"owned").count == 0


def test_session_done_fires_on_revoke(etcd_client: Client, backend: Backend) -> None:
    """A lease revoked by someone else ends the session: done, callbacks, LeaseNotFoundError."""
    fired = threading.Event()
    with backend.client() as other:
        session = Session(etcd_client, ttl=3)
        session.on_done(fired.set)
        other.revoke(session.lease_id)
        assert session.done.wait(5)
        assert fired.wait(5)
        assert isinstance(session.error, errors.LeaseNotFoundError)
        session.close()  # the lease is gone already: nothing is raised


def test_session_done_fires_on_expiry(etcd_cluster_factory: EtcdClusterFactory) -> None:
    """A session cut off from the server sees its lease expire within about the TTL."""
    server = etcd_cluster_factory(1)  # its own server: the black hole must not hit other tests
    (member,) = server.members
    with (
        Client(endpoints=server.endpoints, **server.client_options()) as client,
        Client(endpoints=[member.direct_endpoint], **server.client_options()) as direct,
    ):
        session = Session(client, ttl=TTL)
        fired = threading.Event()
        session.on_done(fired.set)
        started = time.monotonic()
        member.client_proxy.blackhole()
        assert session.done.wait(TTL + 5)
        elapsed = time.monotonic() - started
        assert fired.is_set()
        assert isinstance(session.error, errors.LeaseNotFoundError)
        wait_until(
            lambda: direct.time_to_live(session.lease_id).ttl == -1,
            timeout=TTL + 3,
            message="the server expired the lease",
        )
        member.client_proxy.unblackhole()
        session.close(timeout=1)
    assert elapsed < TTL + 4  # announced within about the TTL, not after some long timeout


def test_session_done_fires_when_the_client_closes(backend: Backend) -> None:
    """Closing the client ends the keep-alive, so the session is done."""
    client = backend.client()
    session = Session(client, ttl=30)
    client.close()
    assert session.done.wait(5)
    session.close(timeout=1)  # the client is closed: best effort, nothing raised


def test_session_adopts_an_existing_lease(etcd_client: Client) -> None:
    """Session(lease_id=...) keeps a lease granted elsewhere alive, with its granted TTL."""
    lease_id = etcd_client.grant(TTL).id
    with Session(etcd_client, lease_id=lease_id) as session:
        assert (session.lease_id, session.ttl) == (lease_id, TTL)
        assert not session.done.wait(TTL * 1.5)
        assert etcd_client.time_to_live(lease_id).ttl > 0
    assert etcd_client.time_to_live(lease_id).ttl == -1


def test_session_adopting_a_missing_lease_raises(etcd_client: Client) -> None:
    """Adopting a lease that does not exist raises LeaseNotFoundError."""
    with pytest.raises(errors.LeaseNotFoundError):
        Session(etcd_client, lease_id=0x7E57_0000_0000_0C0C)


def test_session_runs_on_a_namespace(etcd_client: Client, etcd_key_prefix: bytes) -> None:
    """A session on `namespace.wrap(cli, ...)` works; its Mutex keys land under the prefix."""
    tenant = namespace.wrap(etcd_client, etcd_key_prefix)
    with Session(tenant, ttl=5) as session, Mutex(session, "lock") as mutex:
        assert mutex.is_owner()
        raw = etcd_client.get(etcd_key_prefix + mutex.key)
        assert raw.kvs[0].lease == session.lease_id
    assert etcd_client.get(etcd_key_prefix, prefix=True).count == 0


def test_concurrency_docstring_example_runs(etcd_client: Client, etcd_key_prefix: bytes) -> None:
    """The usage example in the package docstring runs as written."""
    out = io.StringIO()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    (test,) = doctest.DocTestFinder().find(concurrency, "concurrency")
    test.globs.update(cli=etcd_client, prefix=etcd_key_prefix)
    result = runner.run(test, out=out.write)
    assert result.attempted > 0
    assert result.failed == 0, out.getvalue()
