"""Layer stacks built and used against a real etcd, on every supported Python (issue 12).

Python 3.12 and 3.13 refused `leasing.wrap(namespace.wrap(cli, p), ...)` and
`ordering.wrap(namespace.wrap(cli, p))`, which crashed the demo. CI runs this module on
every Python under test, so each version builds the demo's stacks and checks the contract's
`isinstance` answers for them.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from layer_kinds import Backend

from etcd_layers import AsyncClient, Client, Op, leasing, namespace, ordering
from etcd_layers.base import KV, AsyncKV, GetResponse, Lease, Watch, Watcher
from etcd_layers.concurrency import Mutex, Session
from etcd_layers.testing import EtcdServer

TIMEOUT = 10.0


@pytest.fixture
def cli(backend: Backend) -> Client:
    """A client on the test's backend: the session's etcd, then a MemoryEtcd."""
    return backend.client(timeout=TIMEOUT)


def test_stack_ordering_leasing_namespace_reads_and_writes(
    cli: Client, etcd_key_prefix: bytes
) -> None:
    """The contract's stack builds, writes, reads from its cache and stays inside its prefix."""
    ns = namespace.wrap(cli, etcd_key_prefix + b"tenant/")
    with leasing.wrap(ns, "lease/", ttl=10, timeout=TIMEOUT) as lkv:
        stack = ordering.wrap(lkv)
        stack.put("profile", "v1")
        assert stack.get("profile").kvs[0].value == b"v1"
        assert stack.get("profile").kvs[0].value == b"v1"  # served by the leasing cache
        assert leasing.stats(stack).hits >= 1
        stack.put("profile", "v2")
        assert stack.get("profile").kvs[0].value == b"v2"
        (read,) = stack.txn([], [Op.get("profile")]).responses
        assert isinstance(read, GetResponse)
        assert read.kvs[0].value == b"v2"
    assert cli.get(etcd_key_prefix + b"tenant/profile").kvs[0].value == b"v2"


def test_stack_ordering_over_namespace_follows_a_watch(cli: Client, etcd_key_prefix: bytes) -> None:
    """ordering over namespace forwards the Watcher with the namespace's translation."""
    stack = ordering.wrap(namespace.wrap(cli, etcd_key_prefix))
    with stack.watch("k", created_notify=True) as watch:
        watch.next(TIMEOUT)  # created
        stack.put("k", "1")
        event = watch.next(TIMEOUT).events[0]
    assert (event.kv.key, event.kv.value) == (b"k", b"1")


def test_stack_session_and_mutex_run_over_a_namespaced_leasing_stack(
    cli: Client, etcd_key_prefix: bytes
) -> None:
    """The concurrency types accept a stacked client as they accept a Client."""
    ns = namespace.wrap(cli, etcd_key_prefix)
    with leasing.wrap(ns, "lease/", ttl=10, timeout=TIMEOUT) as lkv, Session(lkv, ttl=10) as s:
        mutex = Mutex(s, "lock/")
        mutex.lock(timeout=TIMEOUT)
        try:
            assert cli.get(etcd_key_prefix + b"lock/", prefix=True).count == 1
        finally:
            mutex.unlock()


Build = Callable[[Client, bytes], object]

STACKS: dict[str, tuple[Build, set[type]]] = {
    "namespace": (namespace.wrap, {KV, Watcher, Lease}),
    "namespace.wrap_kv": (namespace.wrap_kv, {KV}),
    "namespace.wrap_watcher": (namespace.wrap_watcher, {Watcher}),
    "namespace.wrap_lease": (namespace.wrap_lease, {Lease}),
    "ordering": (lambda c, p: ordering.wrap(c), {KV, Watcher, Lease}),
    "ordering(namespace)": (
        lambda c, p: ordering.wrap(namespace.wrap(c, p)),
        {KV, Watcher, Lease},
    ),
    "ordering(wrap_kv)": (lambda c, p: ordering.wrap(namespace.wrap_kv(c, p)), {KV}),
    "namespace(namespace)": (
        lambda c, p: namespace.wrap(namespace.wrap(c, p), "inner/"),
        {KV, Watcher, Lease},
    ),
    "namespace(ordering)": (
        lambda c, p: namespace.wrap(ordering.wrap(c), p),
        {KV, Watcher, Lease},
    ),
}


@pytest.mark.parametrize("name", list(STACKS))
def test_stack_answers_protocol_checks_as_the_contract_says(
    cli: Client, etcd_key_prefix: bytes, name: str
) -> None:
    """isinstance gives the same answers on every Python version, refusals included."""
    build, speaks = STACKS[name]
    layer = build(cli, etcd_key_prefix)
    assert {proto for proto in (KV, Watcher, Lease) if isinstance(layer, proto)} == speaks


def test_stack_with_leasing_answers_protocol_checks(cli: Client, etcd_key_prefix: bytes) -> None:
    """Leasing over a namespace, and ordering over that, speak all three Protocols."""
    with leasing.wrap(namespace.wrap(cli, etcd_key_prefix), "l/", timeout=TIMEOUT) as lkv:
        for layer in (lkv, ordering.wrap(lkv), namespace.wrap(lkv, "n/")):
            assert isinstance(layer, KV)
            assert isinstance(layer, Watcher)
            assert isinstance(layer, Lease)
            assert isinstance(leasing.stats(layer).hits, int)


def test_stack_watch_handle_is_a_watch(cli: Client, etcd_key_prefix: bytes) -> None:
    """A watch through a namespace is a `Watch` to isinstance, as the client's own is."""
    with namespace.wrap(cli, etcd_key_prefix).watch("k") as watch:
        assert isinstance(watch, Watch)


AsyncBuild = Callable[[AsyncClient, bytes], object]

ASYNC_STACKS: dict[str, tuple[AsyncBuild, set[type]]] = {
    "namespace.wrap_kv": (namespace.wrap_kv, {AsyncKV}),
    "ordering": (lambda c, p: ordering.wrap(c), {AsyncKV}),
    "ordering(wrap_kv)": (lambda c, p: ordering.wrap(namespace.wrap_kv(c, p)), {AsyncKV}),
    "namespace(ordering)": (lambda c, p: namespace.wrap_kv(ordering.wrap(c), p), {AsyncKV}),
}


@pytest.mark.parametrize("name", list(ASYNC_STACKS))
def test_async_stack_answers_protocol_checks_as_the_contract_says(
    etcd_server: EtcdServer, etcd_key_prefix: bytes, name: str
) -> None:
    """Over an AsyncClient each stack is of the async kind, on every Python version."""
    build, speaks = ASYNC_STACKS[name]
    layer = build(AsyncClient(etcd_server.endpoints), etcd_key_prefix)  # no I/O: not connected
    kinds: tuple[type, ...] = (KV, Watcher, Lease, AsyncKV)
    assert {proto for proto in kinds if isinstance(layer, proto)} == speaks
