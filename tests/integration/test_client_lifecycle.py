"""Connecting, timeouts, closing and endpoint handling of the Client."""

from __future__ import annotations

import socket
import time

import pytest

from etcd_layers import Client, errors
from etcd_layers.testing import EtcdCluster


def _dead_endpoint() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


def test_client_unreachable_raises_unavailable_within_dial_timeout() -> None:
    """With no endpoint answering, the constructor raises UnavailableError after dial_timeout."""
    started = time.monotonic()
    with pytest.raises(errors.UnavailableError):
        Client([_dead_endpoint()], dial_timeout=0.5)
    assert time.monotonic() - started < 3


def test_client_endpoints_strip_schemes_and_keep_order(etcd_server: EtcdCluster) -> None:
    """Schemes are stripped and endpoints keep the order given."""
    live = etcd_server.endpoints[0]
    dead = _dead_endpoint()
    with Client([f"http://{live}", dead]) as cli:
        assert cli.endpoints == [live, dead]
        for _ in range(6):  # round robin reaches the dead endpoint and fails over
            cli.get("k")


def test_client_with_block_closes(etcd_server: EtcdCluster) -> None:
    """Leaving a with block closes the client; every later call raises CanceledError."""
    with Client(etcd_server.endpoints) as cli:
        cli.put("lifecycle", "v")
    with pytest.raises(errors.CanceledError):
        cli.get("lifecycle")
    with pytest.raises(errors.CanceledError):
        cli.grant(5)
    cli.close()  # idempotent


def test_client_default_timeout_and_per_call_timeout(etcd_server: EtcdCluster) -> None:
    """A black-holed endpoint makes a call fail with DeadlineExceededError at its deadline."""
    member = etcd_server.members[0]
    with Client(etcd_server.endpoints, timeout=0.5) as cli:
        cli.get("k")
        member.client_proxy.blackhole()
        member.client_proxy.drop_connections()
        try:
            started = time.monotonic()
            with pytest.raises(errors.DeadlineExceededError):
                cli.get("k")
            with pytest.raises(TimeoutError):
                cli.get("k", timeout=0.3)
            assert time.monotonic() - started < 5
        finally:
            member.client_proxy.unblackhole()
        deadline = time.monotonic() + 10
        while True:  # the connection comes back: the client stays usable
            try:
                cli.get("k", timeout=1)
                break
            except errors.EtcdError:
                assert time.monotonic() < deadline


def test_client_set_endpoints_applies_to_next_request(etcd_server: EtcdCluster) -> None:
    """set_endpoints replaces the endpoints for the next request."""
    live = etcd_server.endpoints[0]
    with Client([_dead_endpoint(), live], dial_timeout=2) as cli:
        cli.set_endpoints(live)
        assert cli.endpoints == [live]
        assert cli.get("k").header.revision > 0
        with pytest.raises(ValueError, match="endpoints must not be empty"):
            cli.set_endpoints()
        assert cli.endpoints == [live]


def test_write_is_not_resent_after_ambiguous_failure(etcd_server: EtcdCluster) -> None:
    """A put whose connection breaks mid-call raises instead of being applied twice."""
    member = etcd_server.members[0]
    with Client(etcd_server.endpoints) as cli:
        cli.delete("once")
        member.client_proxy.blackhole()
        try:
            with pytest.raises((errors.DeadlineExceededError, errors.UnavailableError)):
                cli.put("once", "v", timeout=0.5)
        finally:
            member.client_proxy.unblackhole()
            member.client_proxy.drop_connections()
        deadline = time.monotonic() + 10
        while True:
            try:
                response = cli.get("once", timeout=1)
                break
            except errors.EtcdError:
                assert time.monotonic() < deadline
        # The black hole swallowed the request: it reached no server and was not re-sent.
        assert response.count == 0


def test_spent_deadline_is_deadline_exceeded_whoever_sees_it_first(
    etcd_server: EtcdCluster,
) -> None:
    """A deadline too short to propose in is DeadlineExceededError, never etcd's timeout."""
    with Client(etcd_server.endpoints) as cli:
        for attempt in range(30):
            try:
                cli.grant(5, timeout=0.001)
                cli.put(b"tiny-deadline", b"%d" % attempt, timeout=0.001)
            except errors.DeadlineExceededError:
                continue
        assert cli.get("tiny-deadline", timeout=5).header.revision > 0
