"""Every layer names, on its class, each Protocol member it presents (issue 12).

Python 3.12 and later check `isinstance(obj, SomeProtocol)` with `inspect.getattr_static`,
which never reaches wrapt's forwarding `__getattr__`. A member a layer only forwarded was
therefore invisible there, and `leasing.wrap(namespace.wrap(cli, p), ...)` refused its
argument. These checks look at the classes alone, so they fail on every Python version, not
only on the new ones, if a member is left to forwarding again.
"""

from __future__ import annotations

import inspect

import pytest

from etcd_layers.base.forwarding import Forwarded, protocol_members
from etcd_layers.base.protocols import (
    KV,
    AsyncKV,
    AsyncKVWatcherLease,
    AsyncLease,
    AsyncWatch,
    AsyncWatcher,
    KVWatcherLease,
    Lease,
    Watch,
    Watcher,
)
from etcd_layers.concurrency.session import SessionClient
from etcd_layers.leasing import (
    AsyncLeasingBackend,
    AsyncLeasingClient,
    AsyncLeasingKV,
    LeasingBackend,
    LeasingClient,
    LeasingKV,
)
from etcd_layers.namespace._async_proxy import (
    AsyncNamespaceClient,
    AsyncNamespaceKV,
    AsyncNamespaceLease,
    AsyncNamespaceWatch,
    AsyncNamespaceWatcher,
)
from etcd_layers.namespace._proxy import (
    NamespaceClient,
    NamespaceKV,
    NamespaceLease,
    NamespaceWatch,
    NamespaceWatcher,
)
from etcd_layers.ordering import AsyncOrderingKV, OrderingKV

PRESENTS = [
    (NamespaceKV, KV),
    (NamespaceWatcher, Watcher),
    (NamespaceLease, Lease),
    (NamespaceClient, KVWatcherLease),
    (NamespaceClient, LeasingBackend),
    (NamespaceClient, SessionClient),
    (NamespaceWatch, Watch),
    (LeasingKV, LeasingClient),
    (OrderingKV, KV),
    (AsyncNamespaceKV, AsyncKV),
    (AsyncNamespaceWatcher, AsyncWatcher),
    (AsyncNamespaceLease, AsyncLease),
    (AsyncNamespaceClient, AsyncKVWatcherLease),
    (AsyncNamespaceWatch, AsyncWatch),
    (AsyncOrderingKV, AsyncKV),
    (AsyncLeasingKV, AsyncLeasingClient),
    (AsyncNamespaceClient, AsyncLeasingBackend),
]


@pytest.mark.parametrize(("proxy", "proto"), PRESENTS)
def test_layer_class_names_every_member_of_its_protocols(proxy: type, proto: type) -> None:
    """Each member is found statically on the class, as Python 3.12+ look for it."""
    missing = {name for name in protocol_members(proto) if not _has_static(proxy, name)}
    assert missing == set()


REFUSES = [
    (NamespaceKV, Watcher),
    (NamespaceKV, Lease),
    (NamespaceWatcher, KV),
    (NamespaceWatcher, Lease),
    (NamespaceLease, KV),
    (NamespaceLease, Watcher),
    (AsyncNamespaceKV, AsyncWatcher),
    (AsyncNamespaceKV, AsyncLease),
    (AsyncNamespaceWatcher, AsyncKV),
    (AsyncNamespaceWatcher, AsyncLease),
    (AsyncNamespaceLease, AsyncKV),
    (AsyncNamespaceLease, AsyncWatcher),
]


@pytest.mark.parametrize(("proxy", "proto"), REFUSES)
def test_single_protocol_namespace_class_lacks_the_others(proxy: type, proto: type) -> None:
    """`wrap_kv` and its siblings do not present what they refuse to translate."""
    assert not all(_has_static(proxy, name) for name in protocol_members(proto))


def _has_static(klass: type, name: str) -> bool:
    try:
        inspect.getattr_static(klass, name)
    except AttributeError:
        return False
    return True


def test_protocol_members_match_the_declarations() -> None:
    """The members looked for are the methods the Protocols declare, inherited ones included."""
    assert protocol_members(KV) == {"put", "get", "delete", "txn", "do", "compact"}
    assert protocol_members(Watcher) == {"watch", "request_progress"}
    assert protocol_members(Watch) == {"__iter__", "next", "cancel", "__enter__", "__exit__"}
    assert protocol_members(KVWatcherLease) == (
        protocol_members(KV, Watcher, Lease) | {"close", "__enter__", "__exit__"}
    )
    assert {"stats", "session_lease_id"} <= protocol_members(LeasingClient)
    assert protocol_members(AsyncLeasingClient) == (
        protocol_members(LeasingClient) - {"__enter__", "__exit__"} | {"__aenter__", "__aexit__"}
    )


class _Inner:
    def shout(self, word: str) -> str:
        return word.upper()


def test_forwarded_hands_out_the_wrapped_method() -> None:
    """On an instance a Forwarded attribute is the wrapped object's bound method."""
    import wrapt

    class Proxy(wrapt.BaseObjectProxy):  # type: ignore[type-arg]  # untyped on purpose: a test
        shout = Forwarded()

    inner = _Inner()
    proxy = Proxy(inner)
    assert proxy.shout("hi") == "HI"
    assert proxy.shout == inner.shout
    assert isinstance(vars(Proxy)["shout"], Forwarded)
    assert repr(vars(Proxy)["shout"]) == "Forwarded('shout')"
