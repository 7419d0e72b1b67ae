"""Hostile arguments to every public Client method: typed errors, no I/O, a usable client."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from etcd_layers import AsyncClient, Client, Compare, Op, errors
from etcd_layers.testing import EtcdServer
from etcd_layers.testing.plugin import require_etcd

Call = Callable[[Client], object]
CLIENT_KINDS = ("Client", "AsyncClient")  # see conftest.py

HOSTILE: list[tuple[str, Call, type[Exception]]] = [
    ("put empty key", lambda c: c.put("", "v"), errors.EmptyKeyError),
    ("put int key", lambda c: c.put(1, "v"), TypeError),  # type: ignore[arg-type]
    ("put None value", lambda c: c.put("k", None), TypeError),  # type: ignore[arg-type]
    ("put negative lease", lambda c: c.put("k", "v", lease=-1), ValueError),
    ("put str lease", lambda c: c.put("k", "v", lease="1"), TypeError),  # type: ignore[arg-type]
    ("put ignore_value with value", lambda c: c.put("k", "v", ignore_value=True), ValueError),
    ("put zero timeout", lambda c: c.put("k", "v", timeout=0), ValueError),
    ("put negative timeout", lambda c: c.put("k", "v", timeout=-1), ValueError),
    ("put str timeout", lambda c: c.put("k", "v", timeout="1"), TypeError),  # type: ignore[arg-type]
    ("put unknown keyword", lambda c: c.put("k", "v", ttl=3), TypeError),  # type: ignore[call-arg]
    ("get empty key", lambda c: c.get(""), errors.EmptyKeyError),
    ("get bytearray-less list key", lambda c: c.get(["k"]), TypeError),  # type: ignore[arg-type]
    ("get negative limit", lambda c: c.get("k", limit=-1), ValueError),
    ("get negative revision", lambda c: c.get("k", revision=-5), ValueError),
    ("get prefix and range_end", lambda c: c.get("k", prefix=True, range_end="z"), ValueError),
    ("get prefix and from_key", lambda c: c.get("k", prefix=True, from_key=True), ValueError),
    (
        "get sort target out of range",
        lambda c: c.get("k", sort_target=99),  # type: ignore[arg-type]
        errors.InvalidSortOptionError,
    ),
    (
        "get sort order out of range",
        lambda c: c.get("k", sort_order=3),  # type: ignore[arg-type]
        errors.InvalidSortOptionError,
    ),
    ("get negative min_mod_revision", lambda c: c.get("k", min_mod_revision=-1), ValueError),
    ("get bool-typed limit", lambda c: c.get("k", limit=True), TypeError),
    ("delete empty key", lambda c: c.delete(""), errors.EmptyKeyError),
    (
        "delete prefix and range_end",
        lambda c: c.delete("k", prefix=True, range_end="z"),
        ValueError,
    ),
    ("txn non-compare", lambda c: c.txn(["x"]), TypeError),  # type: ignore[list-item]
    ("txn non-op", lambda c: c.txn([], [Compare.value("k") == "v"]), TypeError),  # type: ignore[list-item]
    ("txn negative timeout", lambda c: c.txn(timeout=-1), ValueError),
    ("do non-op", lambda c: c.do("get k"), TypeError),  # type: ignore[call-overload]
    ("compact negative", lambda c: c.compact(-1), ValueError),
    ("compact str", lambda c: c.compact("1"), TypeError),  # type: ignore[arg-type]
    ("grant negative ttl", lambda c: c.grant(-1), ValueError),
    ("grant str ttl", lambda c: c.grant("10"), TypeError),  # type: ignore[arg-type]
    ("grant negative id", lambda c: c.grant(10, lease_id=-1), ValueError),
    ("revoke negative", lambda c: c.revoke(-1), ValueError),
    ("revoke None", lambda c: c.revoke(None), TypeError),  # type: ignore[arg-type]
    ("time_to_live negative", lambda c: c.time_to_live(-1), ValueError),
    ("time_to_live keys str", lambda c: c.time_to_live(1, keys="yes"), TypeError),  # type: ignore[arg-type]
    ("keep_alive_once negative", lambda c: c.keep_alive_once(-1), ValueError),
    ("keep_alive negative", lambda c: c.keep_alive(-1), ValueError),
    ("leases zero timeout", lambda c: c.leases(timeout=0), ValueError),
    ("watch empty key", lambda c: c.watch(""), errors.EmptyKeyError),
    ("watch negative start", lambda c: c.watch("k", start_revision=-1), ValueError),
    ("watch int key", lambda c: c.watch(3), TypeError),  # type: ignore[arg-type]
    ("watch prefix and range_end", lambda c: c.watch("k", prefix=True, range_end="z"), ValueError),
    ("set_endpoints bad", lambda c: c.set_endpoints("no-port"), ValueError),
    ("set_endpoints int", lambda c: c.set_endpoints(5), TypeError),  # type: ignore[arg-type]
    ("op put empty key", lambda c: c.do(Op.put("", "v")), errors.EmptyKeyError),
]


@pytest.fixture(scope="module")
def quiet_server() -> Iterator[EtcdServer]:
    """A server of this module's own: no other test's write or expiring lease moves its
    revision or its lease list while a hostile call is checked for having changed nothing."""
    require_etcd()
    with EtcdServer() as server:
        yield server


@pytest.fixture(scope="module", params=CLIENT_KINDS)
def shared_client(
    request: pytest.FixtureRequest, quiet_server: EtcdServer, make_client: Callable[..., Client]
) -> Iterator[Client]:
    """One client of each kind that every hostile call is thrown at, in turn."""
    with make_client(request.param, quiet_server.endpoints) as client:
        yield client


@pytest.mark.parametrize(("name", "call", "error"), HOSTILE, ids=[row[0] for row in HOSTILE])
def test_hostile_argument_raises_typed_error_before_io(
    shared_client: Client, name: str, call: Call, error: type[Exception]
) -> None:
    """The bad call raises its typed error, writes nothing, and leaves the client usable."""
    before = shared_client.get("hostile-probe").header.revision
    leases_before = {lease.id for lease in shared_client.leases().leases}
    with pytest.raises(error):
        call(shared_client)
    after = shared_client.get("hostile-probe")
    assert after.header.revision == before, name
    assert {lease.id for lease in shared_client.leases().leases} == leases_before
    assert shared_client.endpoints


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"endpoints": []}, ValueError),
        ({"endpoints": [1]}, TypeError),
        ({"endpoints": ["host"]}, ValueError),
        ({"endpoints": ["127.0.0.1:99999"]}, ValueError),
        ({"dial_timeout": 0}, ValueError),
        ({"dial_timeout": "5"}, TypeError),
        ({"timeout": -1}, ValueError),
        ({"username": "root"}, ValueError),
        ({"username": 1, "password": "x"}, TypeError),
        ({"max_call_send_msg_size": -1}, ValueError),
        ({"auto_sync_interval": 0}, ValueError),
        ({"require_leader": "yes"}, TypeError),
        ({"ca_cert": 5}, TypeError),
    ],
)
@pytest.mark.parametrize("client_class", [Client, AsyncClient])
def test_client_constructor_refuses_bad_arguments(
    kwargs: dict[str, object], error: type, client_class: type[Client | AsyncClient]
) -> None:
    """Bad constructor arguments raise before any connection is attempted."""
    kwargs.setdefault("endpoints", ["127.0.0.1:2379"])
    with pytest.raises(error):
        client_class(**kwargs)  # type: ignore[arg-type]  # hostile by design
