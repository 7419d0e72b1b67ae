"""The recipes' public surface as API.md states it, both kinds; argument checks before I/O."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from etcd_layers import concurrency
from etcd_layers.concurrency import (
    AsyncBarrier,
    AsyncDoubleBarrier,
    AsyncPriorityQueue,
    AsyncQueue,
    AsyncRWMutex,
    Barrier,
    DoubleBarrier,
    PriorityQueue,
    Queue,
    RWMutex,
)
from etcd_layers.errors import EtcdError

# API.md: Barrier(cli, key): hold(), release(), wait(timeout=None) and so on.
SURFACE: dict[str, tuple[tuple[str, ...], dict[str, tuple[str, ...]]]] = {
    "Barrier": (("client", "key"), {"hold": (), "release": (), "wait": ("timeout",)}),
    "DoubleBarrier": (
        ("session", "key", "count"),
        {"enter": ("timeout",), "leave": ("timeout",)},
    ),
    "Queue": (("client", "prefix"), {"enqueue": ("value",), "dequeue": ("timeout",)}),
    "PriorityQueue": (
        ("client", "prefix"),
        {"enqueue": ("value", "priority"), "dequeue": ("timeout",)},
    ),
    "RWMutex": (
        ("session", "prefix"),
        {"rlock": ("timeout",), "runlock": (), "lock": ("timeout",), "unlock": ()},
    ),
}


def positional(function: Any) -> tuple[str, ...]:
    return tuple(
        p.name
        for p in inspect.signature(function).parameters.values()
        if p.name != "self" and p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    )


@pytest.mark.parametrize("name", sorted(SURFACE))
@pytest.mark.parametrize("prefix", ["", "Async"])
def test_recipe_has_apis_signatures(name: str, prefix: str) -> None:
    """Constructor and methods take API.md's positional arguments; blocking ones a timeout."""
    cls = getattr(concurrency, prefix + name)
    assert cls.__doc__
    arguments, methods = SURFACE[name]
    assert positional(cls.__init__) == arguments
    for method_name, expected in methods.items():
        method = getattr(cls, method_name)
        assert method.__doc__
        assert positional(method) == expected
        timeout = inspect.signature(method).parameters["timeout"]
        assert timeout.default is None
        assert inspect.iscoroutinefunction(method) == (prefix == "Async")


@pytest.mark.parametrize(
    "make", [Queue, PriorityQueue, AsyncQueue, AsyncPriorityQueue, Barrier, AsyncBarrier]
)
def test_client_recipes_refuse_a_non_client(make: Any) -> None:
    """Barrier and the queues, of either kind, refuse what is not a client of their kind."""
    with pytest.raises(TypeError, match="KV"):
        make(object(), b"name")


@pytest.mark.parametrize("make", [DoubleBarrier, AsyncDoubleBarrier])
def test_double_barriers_refuse_a_non_session(make: Any) -> None:
    """DoubleBarrier and AsyncDoubleBarrier refuse what is not a session of their kind."""
    with pytest.raises(TypeError, match="Session"):
        make(object(), b"name", 2)


@pytest.mark.parametrize("make", [RWMutex, AsyncRWMutex])
def test_rwmutexes_refuse_a_non_session(make: Any) -> None:
    """RWMutex and AsyncRWMutex refuse what is not a session of their kind."""
    with pytest.raises(TypeError, match="Session"):
        make(object(), b"name")


@pytest.mark.parametrize("name", ["KeyExistsError", "TooManyClientsError", "NotEnteredError"])
def test_recipe_errors_are_etcd_errors_and_exported(name: str) -> None:
    """The recipes' errors are EtcdErrors, documented and exported."""
    error = getattr(concurrency, name)
    assert issubclass(error, EtcdError)
    assert name in concurrency.__all__
    assert error.__doc__
