"""Endpoint choice without a server: round robin, penalties, pinning, new endpoints."""

from __future__ import annotations

import pytest

from etcd_layers import errors
from etcd_layers.base._balancer import FAILED_ENDPOINT_PENALTY, Balancer


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        return self.now


def balancer(*items: str) -> tuple[Balancer[str], Clock]:
    clock = Clock()
    return Balancer(list(items), clock=clock), clock


def test_balancer_round_robin_visits_every_endpoint_in_turn() -> None:
    """Without failures, picks go round the endpoints in the order given, reading no clock."""
    chosen, clock = balancer("a", "b", "c")
    assert [chosen.pick() for _ in range(6)] == ["a", "b", "c", "a", "b", "c"]
    assert clock.reads == 0


def test_balancer_skips_a_failed_endpoint_for_the_penalty() -> None:
    """A failed endpoint is skipped until its penalty has passed."""
    chosen, clock = balancer("a", "b")
    chosen.mark_failed("a")
    assert {chosen.pick() for _ in range(4)} == {"b"}
    clock.now += FAILED_ENDPOINT_PENALTY + 0.01
    assert {chosen.pick() for _ in range(4)} == {"a", "b"}


def test_balancer_with_every_endpoint_failed_picks_the_oldest_failure() -> None:
    """When all failed just now, the one that failed longest ago is tried."""
    chosen, clock = balancer("a", "b", "c")
    for item in ("b", "c", "a"):
        chosen.mark_failed(item)
        clock.now += 0.1
    assert chosen.pick() == "b"


def test_balancer_switch_pins_to_the_next_endpoint() -> None:
    """switch() pins every pick to the endpoint after the last choice, then moves on."""
    chosen, _clock = balancer("a", "b", "c")
    last = chosen.pick()
    order = ["a", "b", "c"]
    pinned = chosen.switch()
    assert pinned == order[(order.index(last) + 1) % 3]
    assert {chosen.pick() for _ in range(5)} == {pinned}
    assert chosen.switch() == order[(order.index(pinned) + 1) % 3]
    assert chosen.items == order


def test_balancer_pinned_endpoint_that_failed_is_skipped() -> None:
    """A pinned endpoint that failed just now is skipped like any other."""
    chosen, _clock = balancer("a", "b")
    pinned = chosen.switch()
    chosen.mark_failed(pinned)
    assert chosen.pick() != pinned


def test_balancer_replace_keeps_the_pin_only_while_its_endpoint_stays() -> None:
    """New endpoints keep the pin when they include it, and return to round robin otherwise."""
    chosen, _clock = balancer("a", "b", "c")
    while chosen.switch() != "b":
        pass
    chosen.replace(["c", "b"])
    assert {chosen.pick() for _ in range(4)} == {"b"}
    chosen.replace(["a", "c"])
    assert chosen.pinned is None
    assert {chosen.pick() for _ in range(4)} == {"a", "c"}


def test_balancer_replace_keeps_failures_of_endpoints_that_stay() -> None:
    """An endpoint kept by replace() keeps its penalty; a removed one's is forgotten."""
    chosen, _clock = balancer("a", "b")
    chosen.mark_failed("a")
    chosen.replace(["a", "c"])
    assert {chosen.pick() for _ in range(4)} == {"c"}


def test_balancer_without_endpoints_is_closed() -> None:
    """After clear(), pick() and switch() raise ClosedError."""
    chosen, _clock = balancer("a")
    assert chosen.clear() == ["a"]
    with pytest.raises(errors.ClosedError):
        chosen.pick()
    with pytest.raises(errors.ClosedError):
        chosen.switch()
