"""API.md, line by line: every public name exists with the documented signature and behaviour.

The expected signatures below are transcribed from API.md, not read from the code, so a
renamed keyword, a changed default or a missing method fails here before an acceptance suite
that calls exactly those names does. Parameters API.md leaves to the design (extra keywords of
administration calls, for example) may be added; the documented ones must be there as written.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import importlib.metadata
import inspect
import pickle
from collections.abc import Callable
from typing import Any

import pytest

from etcd_layers import errors
from etcd_layers.base import (
    KV,
    CompactResponse,
    DeleteResponse,
    Event,
    GetResponse,
    KeepAlive,
    KeyValue,
    Lease,
    LeaseGrantResponse,
    LeaseKeepAliveResponse,
    LeaseLeasesResponse,
    LeaseRevokeResponse,
    LeaseStatus,
    LeaseTimeToLiveResponse,
    Member,
    MemberListResponse,
    PutResponse,
    ResponseHeader,
    StatusResponse,
    TxnResponse,
    Watch,
    Watcher,
    WatchResponse,
)
from etcd_layers.base.client import Client
from etcd_layers.testing import EtcdCluster

REQUIRED = inspect.Parameter.empty
POSITIONAL = inspect.Parameter.POSITIONAL_OR_KEYWORD
KEYWORD = inspect.Parameter.KEYWORD_ONLY

# --- the contract, as API.md writes it ---------------------------------------------------

CLIENT_INIT: list[tuple[str, object]] = [
    ("endpoints", ["127.0.0.1:2379"]),
    ("dial_timeout", 5.0),
    ("timeout", None),
    ("username", None),
    ("password", None),
    ("ca_cert", None),
    ("cert", None),
    ("key", None),
    ("server_name", None),
    ("max_call_send_msg_size", 2 * 1024 * 1024),
    ("max_call_recv_msg_size", 2**31 - 1),
    ("require_leader", False),
    ("auto_sync_interval", None),
    ("keepalive_time", None),
    ("keepalive_timeout", None),
    ("interceptors", None),  # "Configuration and observability"
    ("reject_old_cluster", False),
]

RANGE_KEYWORDS: dict[str, object] = {"range_end": None, "prefix": False, "from_key": False}
GET_KEYWORDS: dict[str, object] = {
    **RANGE_KEYWORDS,
    "limit": 0,
    "revision": 0,
    "sort_order": None,
    "sort_target": None,
    "serializable": False,
    "keys_only": False,
    "count_only": False,
    "min_mod_revision": 0,
    "max_mod_revision": 0,
    "min_create_revision": 0,
    "max_create_revision": 0,
}
PUT_KEYWORDS: dict[str, object] = {
    "lease": 0,
    "prev_kv": False,
    "ignore_value": False,
    "ignore_lease": False,
}
DELETE_KEYWORDS: dict[str, object] = {**RANGE_KEYWORDS, "prev_kv": False}
WATCH_KEYWORDS: dict[str, object] = {
    **RANGE_KEYWORDS,
    "start_revision": 0,
    "prev_kv": False,
    "filter_put": False,
    "filter_delete": False,
    "progress_notify": False,
    "fragment": False,
    "created_notify": False,
}
TXN_POSITIONAL: list[tuple[str, object]] = [("compare", ()), ("success", ()), ("failure", ())]
TIMEOUT: dict[str, object] = {"timeout": None}

# name: (positional parameters with defaults, keyword-only parameters with defaults, exact)
# `exact`: the Protocol methods, whose keyword set is the contract; the administration calls
# may take more keywords than API.md names.
Signature = tuple[list[tuple[str, object]], dict[str, object], bool]
CLIENT_METHODS: dict[str, Signature] = {
    # KV
    "put": ([("key", REQUIRED), ("value", REQUIRED)], {**PUT_KEYWORDS, **TIMEOUT}, True),
    "get": ([("key", REQUIRED)], {**GET_KEYWORDS, **TIMEOUT}, True),
    "delete": ([("key", REQUIRED)], {**DELETE_KEYWORDS, **TIMEOUT}, True),
    "txn": (TXN_POSITIONAL, TIMEOUT, True),
    "do": ([("op", REQUIRED)], TIMEOUT, True),
    "compact": ([("revision", REQUIRED)], {"physical": False, **TIMEOUT}, True),
    # Watcher
    "watch": ([("key", REQUIRED)], {**WATCH_KEYWORDS, **TIMEOUT}, True),
    "request_progress": ([], TIMEOUT, False),
    # Lease
    "grant": ([("ttl", REQUIRED)], {"lease_id": 0, **TIMEOUT}, True),
    "revoke": ([("lease_id", REQUIRED)], TIMEOUT, True),
    "time_to_live": ([("lease_id", REQUIRED)], {"keys": False, **TIMEOUT}, True),
    "leases": ([], TIMEOUT, True),
    "keep_alive_once": ([("lease_id", REQUIRED)], TIMEOUT, True),
    "keep_alive": ([("lease_id", REQUIRED)], TIMEOUT, True),
    # lifecycle
    "sync_endpoints": ([], TIMEOUT, False),
    "close": ([], {}, True),
    # cluster
    "member_list": ([], TIMEOUT, False),
    "member_add": ([("peer_urls", REQUIRED)], {"learner": False, **TIMEOUT}, False),
    "member_remove": ([("member_id", REQUIRED)], TIMEOUT, False),
    "member_update": ([("member_id", REQUIRED), ("peer_urls", REQUIRED)], TIMEOUT, False),
    "member_promote": ([("member_id", REQUIRED)], TIMEOUT, False),
    # maintenance
    "status": ([("endpoint", REQUIRED)], TIMEOUT, False),
    "defragment": ([("endpoint", REQUIRED)], TIMEOUT, False),
    "hash_kv": ([("endpoint", REQUIRED), ("revision", 0)], TIMEOUT, False),
    "move_leader": ([("member_id", REQUIRED)], TIMEOUT, False),
    "alarm_list": ([], TIMEOUT, False),
    "alarm_disarm": ([("member_id", ...), ("alarm", ...)], TIMEOUT, False),
    "snapshot": ([("path_or_file", REQUIRED)], TIMEOUT, False),
    # auth
    "auth_enable": ([], TIMEOUT, False),
    "auth_disable": ([], TIMEOUT, False),
    "user_add": ([("name", REQUIRED), ("password", ...)], TIMEOUT, False),
    "user_delete": ([("name", REQUIRED)], TIMEOUT, False),
    "user_grant_role": ([("user", REQUIRED), ("role", REQUIRED)], TIMEOUT, False),
    "user_revoke_role": ([("user", REQUIRED), ("role", REQUIRED)], TIMEOUT, False),
    "user_list": ([], TIMEOUT, False),
    "user_get": ([("name", REQUIRED)], TIMEOUT, False),
    "user_change_password": ([("name", REQUIRED), ("password", REQUIRED)], TIMEOUT, False),
    "role_add": ([("name", REQUIRED)], TIMEOUT, False),
    "role_delete": ([("name", REQUIRED)], TIMEOUT, False),
    "role_list": ([], TIMEOUT, False),
    "role_get": ([("name", REQUIRED)], TIMEOUT, False),
    "role_grant_permission": (
        [("role", REQUIRED), ("key", REQUIRED)],
        {"range_end": None, "prefix": False, "perm": "Permission.READWRITE", **TIMEOUT},
        False,
    ),
    "role_revoke_permission": (
        [("role", REQUIRED), ("key", REQUIRED)],
        {"range_end": None, "prefix": False, **TIMEOUT},
        False,
    ),
}

# Response dataclasses: the fields API.md names, in the order it names them.
RESPONSE_FIELDS: dict[type, list[str]] = {
    ResponseHeader: ["cluster_id", "member_id", "revision", "raft_term"],
    KeyValue: ["key", "value", "create_revision", "mod_revision", "version", "lease"],
    GetResponse: ["header", "kvs", "count", "more"],
    PutResponse: ["header", "prev_kv"],
    DeleteResponse: ["header", "deleted", "prev_kvs"],
    TxnResponse: ["header", "succeeded", "responses"],
    CompactResponse: ["header"],
    WatchResponse: [
        "header",
        "events",
        "compact_revision",
        "created",
        "canceled",
        "is_progress_notify",
    ],
    Event: ["type", "kv", "prev_kv"],
    LeaseGrantResponse: ["header", "id", "ttl"],
    LeaseRevokeResponse: ["header"],
    LeaseTimeToLiveResponse: ["header", "id", "ttl", "granted_ttl", "keys"],
    LeaseLeasesResponse: ["header", "leases"],
    LeaseStatus: ["id"],
    LeaseKeepAliveResponse: ["header", "id", "ttl"],
    MemberListResponse: ["header", "members"],
    Member: ["id", "name", "peer_urls", "client_urls", "is_learner"],
    StatusResponse: ["header", "version", "db_size", "leader", "raft_index", "raft_term", "errors"],
}

ERROR_NAMES = [
    "EtcdError",
    "EmptyKeyError",
    "KeyNotFoundError",
    "CompactedError",
    "FutureRevisionError",
    "LeaseNotFoundError",
    "TooManyOpsError",
    "DuplicateKeyError",
    "RequestTooLargeError",
    "InvalidSortOptionError",
    "NoLeaderError",
    "PermissionDeniedError",
    "AuthFailedError",
    "InvalidAuthTokenError",
    "UnavailableError",
    "NoSpaceError",
    "LeaseTTLTooLargeError",
    "LeaseExistsError",
    "UserEmptyError",
    "AuthNotEnabledError",
    "RequestTimeoutError",
    "LeaderChangedError",
    "TooManyRequestsError",
    "DeadlineExceededError",
    "CanceledError",
    "OrderViolationError",
    "NoGreaterRevisionError",
]

PACKAGES = [
    "etcd_layers",
    "etcd_layers.base",
    "etcd_layers.errors",
    "etcd_layers.namespace",
    "etcd_layers.ordering",
    "etcd_layers.leasing",
    "etcd_layers.concurrency",
    "etcd_layers.testing",
]


def _parameters(function: Callable[..., Any]) -> list[inspect.Parameter]:
    return [p for p in inspect.signature(function).parameters.values() if p.name != "self"]


def _check_signature(function: Callable[..., Any], expected: Signature) -> None:
    positional, keywords, exact = expected
    parameters = _parameters(function)
    leading = [(p.name, p.kind) for p in parameters[: len(positional)]]
    assert leading == [(name, POSITIONAL) for name, _ in positional]
    for parameter, (_, default) in zip(parameters, positional, strict=False):
        if default is not ...:  # ...: API.md shows the name but no default
            assert parameter.default == default, parameter
    by_name = {p.name: p for p in parameters}
    for name, default in keywords.items():
        assert name in by_name, f"missing keyword {name!r}"
        assert by_name[name].kind is KEYWORD, f"{name!r} must be keyword-only"
        if isinstance(default, str) and default.startswith("Permission."):
            assert repr(by_name[name].default).startswith("<Permission.READWRITE")
        else:
            assert by_name[name].default == default, f"{name!r} defaults to {default!r}"
    if exact:
        assert [p.name for p in parameters] == [name for name, _ in positional] + list(keywords)


# --- package layout and re-exports ------------------------------------------------------------


@pytest.mark.parametrize("module", PACKAGES)
def test_package_layout_module_imports(module: str) -> None:
    """Every package API.md lays out imports by its documented dotted name."""
    assert importlib.import_module(module).__name__ == module


@pytest.mark.parametrize(
    "name", ["Client", "Op", "Compare", "SortOrder", "SortTarget", "EventType", "Permission"]
)
def test_top_level_reexports_the_base_names(name: str) -> None:
    """`from etcd_layers import X` gives the same object as `etcd_layers.base.X`."""
    top = importlib.import_module("etcd_layers")
    base = importlib.import_module("etcd_layers.base")
    assert getattr(top, name) is getattr(base, name)
    assert name in top.__all__


def test_top_level_layers_import_by_name() -> None:
    """`from etcd_layers import namespace, ordering, leasing` works as API.md writes it."""
    from etcd_layers import leasing, namespace, ordering

    assert (namespace.__name__, ordering.__name__, leasing.__name__) == (
        "etcd_layers.namespace",
        "etcd_layers.ordering",
        "etcd_layers.leasing",
    )


# --- Client ------------------------------------------------------------------------------------


def test_client_init_parameters_and_defaults() -> None:
    """Client(...) takes API.md's parameters, in its order, with its defaults."""
    parameters = _parameters(Client.__init__)
    assert [p.name for p in parameters] == [name for name, _ in CLIENT_INIT]
    for parameter, (name, default) in zip(parameters, CLIENT_INIT, strict=True):
        if name == "endpoints":  # a tuple default, not a shared mutable list
            assert list(parameter.default) == default
        else:
            assert parameter.default == default, name


@pytest.mark.parametrize("name", sorted(CLIENT_METHODS))
def test_client_method_signature(name: str) -> None:
    """Each Client method of API.md has its documented parameters, kinds and defaults."""
    method = getattr(Client, name)
    assert callable(method)
    _check_signature(method, CLIENT_METHODS[name])


def test_client_set_endpoints_takes_endpoints_as_arguments() -> None:
    """set_endpoints(*eps) takes the endpoints as separate arguments."""
    (parameter,) = _parameters(Client.set_endpoints)
    assert parameter.kind is inspect.Parameter.VAR_POSITIONAL


def test_client_endpoints_is_a_property() -> None:
    """`cli.endpoints` is read as an attribute, not called."""
    assert isinstance(inspect.getattr_static(Client, "endpoints"), property)


def test_client_is_a_context_manager() -> None:
    """Client supports `with`."""
    assert callable(Client.__enter__)
    assert callable(Client.__exit__)


def test_client_endpoints_keep_order_and_drop_scheme(etcd_server: EtcdCluster) -> None:
    """Endpoints come back as host:port, in the order given, with an http:// scheme stripped."""
    member = etcd_server.members[0]
    given = [member.endpoint, "http://" + member.direct_endpoint]
    with Client(given, **etcd_server.client_options()) as cli:
        assert cli.endpoints == [member.endpoint, member.direct_endpoint]
        cli.set_endpoints(member.direct_endpoint, member.endpoint)
        assert cli.endpoints == [member.direct_endpoint, member.endpoint]
        assert cli.get("contract/any").count == 0


def test_client_with_block_closes_client(etcd_server: EtcdCluster) -> None:
    """Leaving `with Client(...) as cli` closes it: every call then raises CanceledError."""
    with Client(etcd_server.endpoints, **etcd_server.client_options()) as cli:
        assert cli.get("contract/any").header.revision > 0
    calls: list[Callable[[], object]] = [
        lambda: cli.get("k"),
        lambda: cli.put("k", "v"),
        lambda: cli.grant(5),
        lambda: cli.watch("k"),
        lambda: cli.keep_alive(1),
        cli.member_list,
        lambda: cli.status(etcd_server.endpoints[0]),
    ]
    for call in calls:
        with pytest.raises(errors.CanceledError):
            call()


def test_client_close_ends_watches_and_keep_alives(etcd_server: EtcdCluster) -> None:
    """close() ends running watches and keep-alives: iteration stops, next() raises."""
    cli = Client(etcd_server.endpoints, **etcd_server.client_options())
    watch = cli.watch("contract/close")
    keep_alive = cli.keep_alive(cli.grant(30).id)
    cli.close()
    assert list(watch) == []
    assert list(keep_alive) == []
    with pytest.raises(errors.CanceledError):
        watch.next(timeout=1)
    with pytest.raises(errors.CanceledError):
        keep_alive.next(timeout=1)


# --- arguments checked before any I/O ---------------------------------------------------------

BAD_CALLS: list[tuple[str, Callable[[Client], object], type[Exception]]] = [
    ("key of wrong type", lambda c: c.get(1), TypeError),  # type: ignore[arg-type]
    ("value of wrong type", lambda c: c.put("k", 1), TypeError),  # type: ignore[arg-type]
    ("negative limit", lambda c: c.get("k", limit=-1), ValueError),
    ("negative revision", lambda c: c.get("k", revision=-1), ValueError),
    ("negative ttl", lambda c: c.grant(-1), ValueError),
    ("negative lease id in grant", lambda c: c.grant(5, lease_id=-1), ValueError),
    ("negative lease id in revoke", lambda c: c.revoke(-1), ValueError),
    ("negative lease in put", lambda c: c.put("k", "v", lease=-1), ValueError),
    ("negative timeout", lambda c: c.get("k", timeout=-1), ValueError),
    ("zero timeout", lambda c: c.put("k", "v", timeout=0), ValueError),
    ("prefix with range_end", lambda c: c.get("k", prefix=True, range_end="z"), ValueError),
    ("prefix with from_key", lambda c: c.delete("k", prefix=True, from_key=True), ValueError),
    ("empty key", lambda c: c.get(""), errors.EmptyKeyError),
    ("empty key in put", lambda c: c.put("", "v"), errors.EmptyKeyError),
    ("empty key in delete", lambda c: c.delete(""), errors.EmptyKeyError),
    ("empty key in watch", lambda c: c.watch(""), errors.EmptyKeyError),
    ("bad sort order", lambda c: c.get("k", sort_order=5), errors.InvalidSortOptionError),  # type: ignore[arg-type]
    ("bad sort target", lambda c: c.get("k", sort_target=9), errors.InvalidSortOptionError),  # type: ignore[arg-type]
    ("negative watch revision", lambda c: c.watch("k", start_revision=-1), ValueError),
    ("txn with a non-op", lambda c: c.txn([], ["put"]), TypeError),  # type: ignore[list-item]
    ("do with a non-op", lambda c: c.do("get"), TypeError),  # type: ignore[call-overload]
]


@pytest.mark.parametrize(
    ("call", "error"),
    [(call, error) for _, call, error in BAD_CALLS],
    ids=[n for n, *_ in BAD_CALLS],
)
def test_client_refuses_bad_argument_and_stays_usable(
    etcd_client: Client, call: Callable[[Client], object], error: type[Exception]
) -> None:
    """A bad argument raises the documented error class and leaves the client usable."""
    with pytest.raises(error):
        call(etcd_client)
    assert etcd_client.get("contract/still-usable").header.revision > 0


def test_empty_key_and_sort_errors_are_value_errors() -> None:
    """EmptyKeyError and InvalidSortOptionError are ValueErrors too."""
    assert issubclass(errors.EmptyKeyError, ValueError)
    assert issubclass(errors.InvalidSortOptionError, ValueError)


def test_empty_key_with_prefix_or_from_key_means_all_keys(
    etcd_client: Client, etcd_key_prefix: bytes
) -> None:
    """key "" with prefix=True or from_key=True reads every key instead of failing."""
    etcd_client.put(etcd_key_prefix + b"k", "v")
    assert etcd_client.get("", prefix=True, count_only=True).count >= 1
    assert etcd_client.get("", from_key=True, count_only=True).count >= 1


# --- Op and Compare --------------------------------------------------------------------------


def test_op_builders_take_the_keywords_of_their_calls() -> None:
    """Op.get/put/delete take the keywords of get/put/delete (timeout aside); Op.txn its lists."""
    from etcd_layers import Op

    _check_signature(Op.get, ([("key", REQUIRED)], GET_KEYWORDS, True))
    _check_signature(Op.put, ([("key", REQUIRED), ("value", REQUIRED)], PUT_KEYWORDS, True))
    _check_signature(Op.delete, ([("key", REQUIRED)], DELETE_KEYWORDS, True))
    _check_signature(Op.txn, (TXN_POSITIONAL, {}, True))


@pytest.mark.parametrize("target", ["value", "version", "create_revision", "mod_revision", "lease"])
def test_compare_target_takes_key_and_range(target: str) -> None:
    """Each Compare target takes a key and range_end=/prefix=, and builds with == != < >."""
    from etcd_layers import Compare

    builder = getattr(Compare, target)
    _check_signature(builder, ([("key", REQUIRED)], {"range_end": None, "prefix": False}, True))
    operand = builder("k", prefix=True)
    other = "v" if target == "value" else 1
    for built in (operand == other, operand != other, operand < other, operand > other):
        assert isinstance(built, Compare)


@pytest.mark.parametrize(
    "build",
    [
        lambda: __import__("etcd_layers").Op.get(""),
        lambda: __import__("etcd_layers").Op.put(b"k", 1),
        lambda: __import__("etcd_layers").Op.get("k", limit=-1),
        lambda: __import__("etcd_layers").Op.delete("k", prefix=True, range_end="z"),
        lambda: __import__("etcd_layers").Op.txn([1]),
        lambda: __import__("etcd_layers").Compare.value("k", prefix=True, range_end="z"),
        lambda: __import__("etcd_layers").Compare.version("k") == "one",
    ],
    ids=["empty-get", "int-value", "negative-limit", "prefix-range", "txn-int", "cmp-range", "cmp"],
)
def test_op_and_compare_check_arguments_when_built(build: Callable[[], object]) -> None:
    """An Op or Compare with a bad argument fails when it is built, with TypeError/ValueError."""
    with pytest.raises((TypeError, ValueError)):
        build()


def test_enums_have_the_documented_members() -> None:
    """SortOrder, SortTarget, EventType and Permission have API.md's members."""
    from etcd_layers import EventType, Permission, SortOrder, SortTarget

    assert [m.name for m in SortOrder] == ["NONE", "ASCEND", "DESCEND"]
    assert [m.name for m in SortTarget] == ["KEY", "VERSION", "CREATE", "MOD", "VALUE"]
    assert {m.name for m in EventType} >= {"PUT", "DELETE"}
    assert {m.name for m in Permission} >= {"READ", "WRITE", "READWRITE"}


# --- responses ---------------------------------------------------------------------------------


@pytest.mark.parametrize("response", list(RESPONSE_FIELDS), ids=lambda cls: cls.__name__)
def test_response_has_documented_fields_in_order(response: type) -> None:
    """Each response is a dataclass with API.md's field names, in API.md's relative order."""
    assert dataclasses.is_dataclass(response)
    names = [field.name for field in dataclasses.fields(response)]
    expected = RESPONSE_FIELDS[response]
    assert [name for name in names if name in expected] == expected


def test_do_returns_the_response_of_each_op_kind(
    etcd_client: Client, etcd_key_prefix: bytes
) -> None:
    """do() answers a GetResponse, PutResponse, DeleteResponse or TxnResponse per Op kind."""
    from etcd_layers import Op

    key = etcd_key_prefix + b"k"
    assert isinstance(etcd_client.do(Op.put(key, "v")), PutResponse)
    assert isinstance(etcd_client.do(Op.get(key)), GetResponse)
    assert isinstance(etcd_client.do(Op.txn(success=[Op.get(key)])), TxnResponse)
    assert isinstance(etcd_client.do(Op.delete(key)), DeleteResponse)
    assert isinstance(etcd_client.compact(etcd_client.get(key).header.revision), CompactResponse)


def test_responses_are_bytes_whatever_was_given(
    etcd_client: Client, etcd_key_prefix: bytes
) -> None:
    """Keys and values given as str come back as bytes."""
    key = etcd_key_prefix.decode() + "k"
    etcd_client.put(key, "v")
    kv = etcd_client.get(key).kvs[0]
    assert (kv.key, kv.value) == (key.encode(), b"v")


# --- Watcher -------------------------------------------------------------------------------


def test_watch_handle_has_documented_methods(etcd_client: Client, etcd_key_prefix: bytes) -> None:
    """A Watch iterates, has next(timeout=...) raising the builtin TimeoutError, cancel and with."""
    with etcd_client.watch(etcd_key_prefix, prefix=True) as watch:
        assert isinstance(watch, Watch)
        assert "timeout" in inspect.signature(watch.next).parameters
        with pytest.raises(TimeoutError):
            watch.next(timeout=0.1)
    with pytest.raises(errors.CanceledError):
        watch.next(timeout=0.1)
    assert list(watch) == []


def test_watch_yields_confirmation_only_with_created_notify(
    etcd_client: Client, etcd_key_prefix: bytes
) -> None:
    """created_notify=True yields the confirmation first; without it, the first is an event."""
    key = etcd_key_prefix + b"k"
    with etcd_client.watch(key, created_notify=True) as watch:
        first = watch.next(timeout=5)
        assert (first.created, first.events) == (True, [])
    with etcd_client.watch(key) as watch:
        etcd_client.put(key, "v")
        first = watch.next(timeout=5)
        assert first.created is False
        assert [event.kv.value for event in first.events] == [b"v"]


def test_request_progress_notifies_every_watch(etcd_client: Client, etcd_key_prefix: bytes) -> None:
    """request_progress() makes each watch yield a progress notification."""
    with etcd_client.watch(etcd_key_prefix, prefix=True) as watch:
        etcd_client.request_progress()
        response = watch.next(timeout=5)
    assert response.is_progress_notify is True
    assert response.events == []


def test_get_at_compacted_revision_raises_compacted_error(
    etcd_client: Client, etcd_key_prefix: bytes
) -> None:
    """A get at a compacted revision raises CompactedError with compact_revision 0."""
    first = etcd_client.put(etcd_key_prefix + b"k", "1").header.revision
    latest = etcd_client.put(etcd_key_prefix + b"k", "2").header.revision
    etcd_client.compact(latest)
    with pytest.raises(errors.CompactedError) as caught:
        etcd_client.get(etcd_key_prefix + b"k", revision=first)
    assert caught.value.compact_revision == 0


# --- Lease -------------------------------------------------------------------------------


def test_lease_calls_of_a_missing_lease(etcd_client: Client) -> None:
    """revoke, keep_alive_once and keep_alive of a missing lease raise LeaseNotFoundError;
    time_to_live answers ttl -1."""
    missing = 0x7E7E7E7E7E7E
    for call in (etcd_client.revoke, etcd_client.keep_alive_once, etcd_client.keep_alive):
        with pytest.raises(errors.LeaseNotFoundError):
            call(missing)
    assert etcd_client.time_to_live(missing).ttl == -1


def test_keep_alive_handle_has_documented_methods(etcd_client: Client) -> None:
    """keep_alive() returns a handle that yields renewals, has next(timeout=...) and cancel()."""
    lease = etcd_client.grant(30).id
    handle = etcd_client.keep_alive(lease)
    assert isinstance(handle, KeepAlive)
    renewal = handle.next(timeout=5)
    assert isinstance(renewal, LeaseKeepAliveResponse)
    assert (renewal.id, renewal.ttl) == (lease, 30)
    assert lease in [status.id for status in etcd_client.leases().leases]
    handle.cancel()
    with pytest.raises(errors.CanceledError):
        handle.next(timeout=1)
    assert list(handle) == []
    etcd_client.revoke(lease)


# --- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ERROR_NAMES)
def test_error_class_exists_under_etcd_error(name: str) -> None:
    """Every error API.md names lives in etcd_layers.errors and derives from EtcdError."""
    cls = getattr(errors, name)
    assert isinstance(cls, type)
    assert issubclass(cls, errors.EtcdError)
    assert cls.__doc__


def test_error_hierarchy_special_cases() -> None:
    """DeadlineExceededError is a TimeoutError; NoGreaterRevisionError an OrderViolationError."""
    assert issubclass(errors.DeadlineExceededError, TimeoutError)
    assert issubclass(errors.NoGreaterRevisionError, errors.OrderViolationError)
    assert issubclass(errors.EmptyKeyError, ValueError)
    assert issubclass(errors.InvalidSortOptionError, ValueError)


def test_compacted_error_carries_compact_revision_through_pickle_and_copy() -> None:
    """CompactedError(.compact_revision) keeps its data when pickled or copied."""
    error = errors.CompactedError("compacted", 42)
    for clone in (pickle.loads(pickle.dumps(error)), copy.copy(error), copy.deepcopy(error)):
        assert isinstance(clone, errors.CompactedError)
        assert clone.compact_revision == 42
        assert str(clone) == "compacted"


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda c, p: c.put(p + b"missing", "", ignore_value=True), errors.KeyNotFoundError),
        (lambda c, p: c.get(p, revision=2**62), errors.FutureRevisionError),
        (lambda c, p: c.grant(10**10), errors.LeaseTTLTooLargeError),
        (
            lambda c, p: c.txn(success=[__import__("etcd_layers").Op.put(p, "1")] * 2),
            errors.DuplicateKeyError,
        ),
        (
            lambda c, p: c.txn(
                success=[__import__("etcd_layers").Op.put(p + b"%d" % i, "") for i in range(129)]
            ),
            errors.TooManyOpsError,
        ),
        (lambda c, p: c.put(p, b"x" * 1_600_000), errors.RequestTooLargeError),
        (lambda c, p: c.put(p, b"x" * 3_000_000), errors.RequestTooLargeError),
        (lambda c, p: c.user_add("", "pwd"), errors.UserEmptyError),
    ],
    ids=[
        "key-not-found",
        "future",
        "ttl",
        "duplicate",
        "too-many-ops",
        "server-size",
        "size",
        "user",
    ],
)
def test_server_refusal_maps_to_documented_error(
    etcd_client: Client,
    etcd_key_prefix: bytes,
    call: Callable[[Client, bytes], object],
    error: type[Exception],
) -> None:
    """Each refusal raises its documented class, and the client stays usable."""
    with pytest.raises(error):
        call(etcd_client, etcd_key_prefix)
    assert etcd_client.get(etcd_key_prefix).header.revision > 0


def test_client_deadline_is_deadline_exceeded(etcd_client: Client, etcd_key_prefix: bytes) -> None:
    """A call whose deadline passes raises DeadlineExceededError, catchable as TimeoutError."""
    with pytest.raises(TimeoutError) as caught:
        etcd_client.get(etcd_key_prefix, prefix=True, timeout=1e-6)
    assert isinstance(caught.value, errors.DeadlineExceededError)


# --- Protocols ---------------------------------------------------------------------------------

PROTOCOL_METHODS: dict[type, set[str]] = {
    KV: {"put", "get", "delete", "txn", "do", "compact"},
    Watcher: {"watch", "request_progress"},
    Lease: {"grant", "revoke", "time_to_live", "leases", "keep_alive_once", "keep_alive"},
}


@pytest.mark.parametrize("protocol", list(PROTOCOL_METHODS), ids=lambda p: p.__name__)
def test_protocol_is_runtime_checkable_with_client_signatures(protocol: type) -> None:
    """KV, Watcher and Lease are runtime-checkable, cover API.md's methods with Client's
    signatures, and live in etcd_layers.base."""
    assert getattr(protocol, "_is_runtime_protocol", False)
    assert protocol.__module__.startswith("etcd_layers.base")
    for name in PROTOCOL_METHODS[protocol]:
        declared = _parameters(getattr(protocol, name))
        implemented = _parameters(getattr(Client, name))
        assert [(p.name, p.kind, p.default) for p in declared] == [
            (p.name, p.kind, p.default) for p in implemented
        ], name
    assert issubclass(Client, protocol)


def test_client_and_wrappers_satisfy_the_protocols(etcd_client: Client) -> None:
    """Client, namespace.wrap and ordering.wrap are KV, Watcher and Lease to isinstance."""
    from etcd_layers import namespace, ordering

    for speaker in (
        etcd_client,
        namespace.wrap(etcd_client, "/contract/"),
        ordering.wrap(etcd_client),
        ordering.wrap(namespace.wrap(etcd_client, "/contract/")),
    ):
        assert isinstance(speaker, KV)
        assert isinstance(speaker, Watcher)
        assert isinstance(speaker, Lease)


def test_wrappers_forward_what_they_do_not_change(etcd_client: Client) -> None:
    """endpoints, set_endpoints, close and the lease calls reach the client through any stack."""
    from etcd_layers import namespace, ordering

    # wrapt forwards these at run time; the Protocol types the wrappers return do not declare
    # endpoints, set_endpoints or the admin calls, so mypy needs Any to see them.
    stack: Any = ordering.wrap(namespace.wrap(namespace.wrap(etcd_client, "/a/"), "b/"))
    assert stack.endpoints == etcd_client.endpoints
    stack.set_endpoints(*etcd_client.endpoints)
    lease = stack.grant(30).id
    assert stack.time_to_live(lease).id == lease
    assert stack.keep_alive_once(lease).id == lease
    assert lease in [status.id for status in stack.leases().leases]
    stack.revoke(lease)
    assert stack.member_list().members
    assert callable(stack.close)


# --- layers ------------------------------------------------------------------------------------


def test_namespace_functions_and_signatures() -> None:
    """namespace has wrap, wrap_kv, wrap_watcher and wrap_lease, each taking (object, prefix)."""
    from etcd_layers import namespace

    for name in ("wrap", "wrap_kv", "wrap_watcher", "wrap_lease"):
        parameters = _parameters(getattr(namespace, name))
        assert len(parameters) == 2, name
        assert parameters[1].name == "prefix"
        assert all(p.kind is POSITIONAL and p.default is REQUIRED for p in parameters)


@pytest.mark.parametrize("prefix", ["", b""])
@pytest.mark.parametrize("name", ["wrap", "wrap_kv", "wrap_watcher", "wrap_lease"])
def test_namespace_empty_prefix_is_value_error(
    etcd_client: Client, name: str, prefix: str | bytes
) -> None:
    """An empty prefix raises ValueError in every namespace wrap function."""
    from etcd_layers import namespace

    with pytest.raises(ValueError, match="prefix"):
        getattr(namespace, name)(etcd_client, prefix)


@pytest.mark.parametrize(
    ("name", "refused"),
    [
        ("wrap_kv", ["watch", "time_to_live"]),
        ("wrap_watcher", ["put", "get", "delete", "txn", "do", "time_to_live"]),
        ("wrap_lease", ["put", "get", "delete", "txn", "do", "watch"]),
    ],
)
def test_namespace_partial_wrapper_refuses_untranslated_key_calls(
    etcd_client: Client, name: str, refused: list[str]
) -> None:
    """A key-bearing call a partial wrapper does not translate raises AttributeError."""
    from etcd_layers import namespace

    wrapper = getattr(namespace, name)(etcd_client, "/contract/")
    for method in refused:
        with pytest.raises(AttributeError):
            getattr(wrapper, method)


def test_namespace_wrap_kv_forwards_keyless_calls(etcd_client: Client) -> None:
    """wrap_kv still reaches the client for calls that carry no key (close, endpoints, grant)."""
    from etcd_layers import namespace

    kv = namespace.wrap_kv(etcd_client, "/contract/")
    assert kv.endpoints == etcd_client.endpoints  # type: ignore[attr-defined]
    lease = kv.grant(5).id  # type: ignore[attr-defined]
    kv.revoke(lease)  # type: ignore[attr-defined]


def test_namespace_wrapping_twice_composes(etcd_client: Client, etcd_key_prefix: bytes) -> None:
    """wrap(wrap(cli, "a/"), "b/") is wrap(cli, "a/b/")."""
    from etcd_layers import namespace

    outer = namespace.wrap(namespace.wrap(etcd_client, etcd_key_prefix + b"a/"), "b/")
    outer.put("k", "v")
    assert etcd_client.get(etcd_key_prefix + b"a/b/k").kvs[0].value == b"v"
    flat = namespace.wrap(etcd_client, etcd_key_prefix + b"a/b/")
    assert flat.get("k").kvs[0].key == outer.get("k").kvs[0].key == b"k"


def test_namespace_prefix_end_does_not_carry(etcd_client: Client, etcd_key_prefix: bytes) -> None:
    """The range of prefix b"a\\xff" ends at b"b": key b"b" stays outside the namespace."""
    from etcd_layers import namespace

    etcd_client.put(etcd_key_prefix + b"b", "outside")
    etcd_client.put(etcd_key_prefix + b"a\xffin", "inside")
    tenant = namespace.wrap(etcd_client, etcd_key_prefix + b"a\xff")
    assert [kv.key for kv in tenant.get("", prefix=True).kvs] == [b"in"]


def test_ordering_functions_and_signatures(etcd_client: Client) -> None:
    """ordering.wrap(kv, on_violation=None) and switch_endpoints(cli) exist as documented."""
    from etcd_layers import ordering

    parameters = _parameters(ordering.wrap)
    assert [(p.name, p.default) for p in parameters][1:] == [("on_violation", None)]
    assert len(_parameters(ordering.switch_endpoints)) == 1
    policy = ordering.switch_endpoints(etcd_client)
    assert callable(policy)
    assert len(inspect.signature(policy).parameters) == 3  # (op, response, prev_revision)
    checked = ordering.wrap(etcd_client, on_violation=policy)
    assert checked.get("contract/ordering").header.revision > 0


def test_leasing_wrap_signature() -> None:
    """leasing.wrap takes (cli, prefix, *, ttl=60, max_keys=None, timeout=None)."""
    from etcd_layers import leasing

    parameters = _parameters(leasing.wrap)
    assert [p.kind for p in parameters[:2]] == [POSITIONAL, POSITIONAL]
    assert parameters[1].name == "prefix"
    assert [(p.name, p.kind, p.default) for p in parameters[2:]] == [
        ("ttl", KEYWORD, 60),
        ("max_keys", KEYWORD, None),
        ("timeout", KEYWORD, None),
    ]


def test_concurrency_names() -> None:
    """concurrency has Session, Mutex and Election with Go's operations."""
    from etcd_layers import concurrency

    assert {"close", "lease_id"} <= set(dir(concurrency.Session))
    assert {"lock", "try_lock", "unlock", "is_owner", "key"} <= set(dir(concurrency.Mutex))
    assert {"campaign", "proclaim", "resign", "leader", "observe"} <= set(dir(concurrency.Election))


# --- testing ---------------------------------------------------------------------------------


def test_testing_exports_and_plugin_fixtures() -> None:
    """etcd_layers.testing exports EtcdCluster and wait_until; its plugin has the fixtures."""
    from etcd_layers import testing
    from etcd_layers.testing import plugin

    assert {"EtcdCluster", "EtcdServer", "wait_until"} <= set(testing.__all__)
    for fixture in ("etcd_server", "etcd_cluster", "etcd_cluster_factory", "etcd_client"):
        assert callable(getattr(plugin, fixture))
    assert callable(plugin.etcd_key_prefix)
    registered = importlib.metadata.entry_points(group="pytest11")
    assert "etcd_layers.testing.plugin" in {entry.value for entry in registered}


def test_testing_cluster_and_member_surface(etcd_server: EtcdCluster) -> None:
    """An EtcdCluster has endpoints, members and partition controls; members have proxies."""
    for name in ("partition", "isolate", "heal", "tls"):
        assert hasattr(EtcdCluster, name)
    member = etcd_server.members[0]
    assert etcd_server.endpoints == [member.endpoint]
    for name in ("name", "endpoint", "client_proxy", "peer_proxy", "stop", "kill", "start"):
        assert hasattr(member, name)
    for name in ("drop_connections", "blackhole", "unblackhole"):
        assert callable(getattr(member.client_proxy, name))


# --- usability beyond API.md (each found while porting other clients' suites) ---------------


def test_client_endpoints_string_may_list_several(etcd_server: EtcdCluster) -> None:
    """One str of comma-separated endpoints (etcdctl's --endpoints form) is several endpoints."""
    member = etcd_server.members[0]
    joined = f"{member.endpoint}, http://{member.direct_endpoint}"
    with Client(joined, **etcd_server.client_options()) as cli:
        assert cli.endpoints == [member.endpoint, member.direct_endpoint]
        assert repr(cli) == f"<Client endpoints={cli.endpoints!r}>"
    assert repr(cli).endswith(" closed>")


@pytest.mark.parametrize("endpoints", [["127.0.0.1:2379,127.0.0.1:22379"], ["bad host:2379"]])
def test_client_refuses_list_item_naming_several_endpoints(endpoints: list[str]) -> None:
    """A list item holding several endpoints is a ValueError, not a host that never answers."""
    with pytest.raises(ValueError, match="one host:port"):
        Client(endpoints, dial_timeout=0.3)


def test_compare_has_no_truth_value() -> None:
    """A Compare in a condition or in `and`/`or` raises TypeError instead of always holding."""
    from etcd_layers import Compare

    with pytest.raises(TypeError, match="no truth value"):
        bool(Compare.version("k") == 0)
    with pytest.raises(TypeError, match="txn"):
        _ = (Compare.value("k") == "a") and (Compare.version("k") > 0)
    same = Compare.version("k") == 0
    assert same in [Compare.version("k") == 0]  # equality of built compares still works


def test_int_argument_given_a_response_names_its_id(etcd_client: Client) -> None:
    """An int argument given an object with an int .id (a grant's response) says to pass .id."""
    granted = etcd_client.grant(5)
    try:
        for call in (
            lambda: etcd_client.revoke(granted),  # type: ignore[arg-type]
            lambda: etcd_client.keep_alive_once(granted),  # type: ignore[arg-type]
            lambda: etcd_client.time_to_live(granted),  # type: ignore[arg-type]
        ):
            with pytest.raises(TypeError, match=r"lease_id must be int, not LeaseGrantResponse"):
                call()
        with pytest.raises(TypeError, match=r"\(pass its \.id\)"):
            etcd_client.revoke(granted)  # type: ignore[arg-type]
    finally:
        etcd_client.revoke(granted.id)
