"""The Client's endpoint pin (base/_connection.py), which ordering.switch_endpoints relies on."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from etcd_layers import errors
from etcd_layers.base._connection import Connection


@contextlib.contextmanager
def connection(*addresses: str) -> Iterator[Connection]:
    """A Connection with channels that are never used: nothing is dialled."""
    conn = Connection(
        list(addresses),
        tls=None,
        options=[],
        username=None,
        password=None,
        require_leader=False,
        default_timeout=None,
        dial_timeout=1.0,
        max_send_size=1024,
    )
    try:
        yield conn
    finally:
        conn.close()


def test_connection_switch_endpoint_pins_pick_to_the_next_endpoint() -> None:
    """After a switch, every pick goes to the endpoint after the one the balancer last chose."""
    with connection("a:1", "b:2", "c:3") as conn:
        last = conn.pick().address
        pinned = conn.switch_endpoint()
        order = ["a:1", "b:2", "c:3"]
        assert pinned == order[(order.index(last) + 1) % 3]
        assert {conn.pick().address for _ in range(6)} == {pinned}
        assert conn.switch_endpoint() == order[(order.index(pinned) + 1) % 3]
        assert conn.addresses == order  # the order the user gave is kept


def test_connection_pin_survives_set_endpoints_that_keep_its_address() -> None:
    """New endpoints keep the pin while they include it, and drop it otherwise."""
    with connection("a:1", "b:2", "c:3") as conn:
        while conn.switch_endpoint() != "b:2":
            pass
        conn.set_endpoints(["c:3", "b:2"])
        assert {conn.pick().address for _ in range(4)} == {"b:2"}
        conn.set_endpoints(["a:1", "c:3"])
        assert {conn.pick().address for _ in range(4)} == {"a:1", "c:3"}  # round robin again


def test_connection_pick_skips_a_pinned_endpoint_that_just_failed() -> None:
    """A pinned endpoint that failed at the transport level is skipped like any other."""
    with connection("a:1", "b:2") as conn:
        pinned = conn.switch_endpoint()
        conn.mark_failed(conn.pick())
        assert conn.pick().address != pinned


def test_connection_switch_endpoint_after_close_raises_closed() -> None:
    """A closed connection has no endpoint to switch to."""
    with connection("a:1") as conn:
        conn.close()
        with pytest.raises(errors.CanceledError):
            conn.switch_endpoint()
