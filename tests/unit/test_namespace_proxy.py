"""The namespace proxies over a recording fake: what they send, return, forward and refuse."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, cast

import pytest
from async_kinds import KINDS, close_loops, layer_of_kind

from etcd_layers import Compare, Op, errors, namespace
from etcd_layers.base import (
    KV,
    AsyncKV,
    AsyncLease,
    AsyncWatcher,
    DeleteOp,
    DeleteResponse,
    Event,
    EventType,
    GetOp,
    GetResponse,
    KeyValue,
    Lease,
    LeaseTimeToLiveResponse,
    PutOp,
    PutResponse,
    Response,
    ResponseHeader,
    TxnOp,
    TxnResponse,
    Watcher,
    WatchResponse,
)
from etcd_layers.base.keys import to_bytes
from etcd_layers.namespace import (
    AsyncNamespaceClient,
    AsyncNamespaceKV,
    AsyncNamespaceLease,
    AsyncNamespaceWatcher,
    KVWatcherLease,
    NamespaceClient,
    NamespaceKV,
    NamespaceLease,
    NamespaceWatcher,
)

HEADER = ResponseHeader(cluster_id=1, member_id=2, revision=3, raft_term=4)
Call = tuple[str, tuple[object, ...], dict[str, object]]


def kv(key: bytes) -> KeyValue:
    """A KeyValue with recognisable metadata."""
    return KeyValue(key, b"value", create_revision=2, mod_revision=3, version=4, lease=5)


class FakeWatch:
    """A watch handle that hands out canned responses and records cancel()."""

    def __init__(self, responses: list[WatchResponse]) -> None:
        self.responses = responses
        self.canceled = False

    def __iter__(self) -> Iterator[WatchResponse]:
        return iter(self.responses)

    def next(self, timeout: float | None = None) -> WatchResponse:
        return self.responses.pop(0)

    def cancel(self) -> None:
        self.canceled = True

    def __enter__(self) -> FakeWatch:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.cancel()


class RecordingClient:
    """Records every call and answers with canned responses; it does not simulate etcd."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.answer: Response = GetResponse(HEADER)
        self.answers: dict[type[Op], Response] = {}  # by kind of Op, before `answer`
        self.watch_responses: list[WatchResponse] = []
        self.ttl_answer = LeaseTimeToLiveResponse(HEADER, 7, 10, 60)
        self.error: BaseException | None = None
        self.endpoints = ["127.0.0.1:1"]

    def _record(self, name: str, *args: object, **kwargs: object) -> str:
        self.calls.append((name, args, kwargs))
        if self.error is not None:
            raise self.error
        return f"{name} answer"

    def do(self, op: Op, *, timeout: float | None = None) -> Response:
        self._record("do", op, timeout=timeout)
        return self.answers.get(type(op), self.answer)

    def watch(self, key: bytes, **options: object) -> FakeWatch:
        self._record("watch", key, **options)
        return FakeWatch(self.watch_responses)

    def time_to_live(
        self, lease_id: int, *, keys: bool = False, timeout: float | None = None
    ) -> LeaseTimeToLiveResponse:
        self._record("time_to_live", lease_id, keys=keys, timeout=timeout)
        return self.ttl_answer

    # Keyless calls, forwarded as they are; and calls a namespace must never forward.
    def grant(self, *args: object, **kwargs: object) -> str:
        return self._record("grant", *args, **kwargs)

    def revoke(self, *args: object, **kwargs: object) -> str:
        return self._record("revoke", *args, **kwargs)

    def leases(self, *args: object, **kwargs: object) -> str:
        return self._record("leases", *args, **kwargs)

    def keep_alive(self, *args: object, **kwargs: object) -> str:
        return self._record("keep_alive", *args, **kwargs)

    def keep_alive_once(self, *args: object, **kwargs: object) -> str:
        return self._record("keep_alive_once", *args, **kwargs)

    def compact(self, *args: object, **kwargs: object) -> str:
        return self._record("compact", *args, **kwargs)

    def request_progress(self, *args: object, **kwargs: object) -> str:
        return self._record("request_progress", *args, **kwargs)

    def close(self) -> str:
        return self._record("close")

    def set_endpoints(self, *args: object) -> str:
        return self._record("set_endpoints", *args)

    def member_list(self, *args: object, **kwargs: object) -> str:
        return self._record("member_list", *args, **kwargs)

    def user_add(self, *args: object, **kwargs: object) -> str:
        return self._record("user_add", *args, **kwargs)

    def put(self, *args: object, **kwargs: object) -> str:
        return self._record("put", *args, **kwargs)

    def get(self, *args: object, **kwargs: object) -> str:
        return self._record("get", *args, **kwargs)

    def delete(self, *args: object, **kwargs: object) -> str:
        return self._record("delete", *args, **kwargs)

    def txn(self, *args: object, **kwargs: object) -> str:
        return self._record("txn", *args, **kwargs)

    def snapshot(self, *args: object, **kwargs: object) -> str:
        return self._record("snapshot", *args, **kwargs)

    def role_get(self, *args: object, **kwargs: object) -> str:
        return self._record("role_get", *args, **kwargs)

    def role_grant_permission(self, *args: object, **kwargs: object) -> str:
        return self._record("role_grant_permission", *args, **kwargs)

    def role_revoke_permission(self, *args: object, **kwargs: object) -> str:
        return self._record("role_revoke_permission", *args, **kwargs)


def speaking(fake: RecordingClient) -> KVWatcherLease:
    """The fake as the Protocols; it has only what a namespace calls, with loose signatures."""
    return cast(KVWatcherLease, fake)


@pytest.fixture
def fake() -> RecordingClient:
    return RecordingClient()


# Most tests run against both kinds of layer: the sync proxies over the fake, and the async
# ones over the fake's async twin (behind a blocking facade; see async_kinds).
@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> Iterator[str]:
    yield request.param
    close_loops()


@pytest.fixture
def ns(fake: RecordingClient, kind: str) -> KVWatcherLease:
    layer: KVWatcherLease = layer_of_kind(kind, namespace.wrap, speaking(fake), "t/")
    return layer


@pytest.fixture
def sync_ns(fake: RecordingClient) -> KVWatcherLease:
    return namespace.wrap(speaking(fake), "t/")


# --- what each proxy translates, forwards and refuses -------------------------------------

FORWARDED = {  # keyless
    "compact",
    "request_progress",
    "grant",
    "revoke",
    "leases",
    "keep_alive",
    "keep_alive_once",
}


def protocol_methods(proto: type) -> set[str]:
    return {n for n, v in vars(proto).items() if callable(v) and not n.startswith("_")}


@pytest.mark.parametrize(
    ("proxy", "protocols"),
    [
        (NamespaceKV, (KV,)),
        (NamespaceWatcher, (Watcher,)),
        (NamespaceLease, (Lease,)),
        (NamespaceClient, (KV, Watcher, Lease)),
        (AsyncNamespaceKV, (AsyncKV,)),
        (AsyncNamespaceWatcher, (AsyncWatcher,)),
        (AsyncNamespaceLease, (AsyncLease,)),
        (AsyncNamespaceClient, (AsyncKV, AsyncWatcher, AsyncLease)),
    ],
)
def test_namespace_overrides_every_key_bearing_method(
    proxy: type, protocols: tuple[type, ...]
) -> None:
    """A method left to wrapt's forwarding would reach etcd untranslated."""
    methods = set().union(*(protocol_methods(proto) for proto in protocols))
    defined = set().union(
        *(vars(cls) for cls in proxy.__mro__ if cls.__module__.startswith("etcd_layers.namespace"))
    )
    assert methods - FORWARDED - defined == set()


KV_KEYED = ["put", "get", "delete", "txn", "do"]
NEVER = ["role_grant_permission", "role_revoke_permission", "role_get", "snapshot"]


@pytest.mark.parametrize(
    ("wrapper", "name"),
    [(namespace.wrap_kv, name) for name in ["watch", "time_to_live", *NEVER]]
    + [(namespace.wrap_watcher, name) for name in [*KV_KEYED, "time_to_live", *NEVER]]
    + [(namespace.wrap_lease, name) for name in [*KV_KEYED, "watch", *NEVER]]
    + [(namespace.wrap, name) for name in NEVER],
)
def test_namespace_refuses_key_bearing_methods_it_does_not_translate(
    fake: RecordingClient, kind: str, wrapper: Callable[[Any, str], object], name: str
) -> None:
    """A key-bearing call a wrapper cannot translate raises AttributeError, never forwarded."""
    proxy = layer_of_kind(kind, wrapper, fake, "t/")
    with pytest.raises(AttributeError, match=f"does not translate {name}"):
        getattr(proxy, name)
    assert not hasattr(proxy, name)
    assert fake.calls == []


@pytest.mark.parametrize(
    ("name", "args", "kwargs"),
    [
        ("grant", (30,), {"lease_id": 9}),
        ("revoke", (9,), {"timeout": 1.0}),
        ("leases", (), {}),
        ("keep_alive", (9,), {}),
        ("keep_alive_once", (9,), {}),
        ("compact", (5,), {"physical": True}),
        ("request_progress", (), {}),
        ("close", (), {}),
        ("set_endpoints", ("127.0.0.1:2", "127.0.0.1:3"), {}),
        ("member_list", (), {}),
        ("user_add", ("alice", "secret"), {}),
    ],
)
def test_namespace_forwards_keyless_calls_unchanged(
    fake: RecordingClient,
    ns: KVWatcherLease,
    name: str,
    args: tuple[object, ...],
    kwargs: dict[str, object],
) -> None:
    """Calls that carry no key reach the wrapped object as they were made, and return its answer."""
    assert getattr(ns, name)(*args, **kwargs) == f"{name} answer"
    assert fake.calls == [(name, args, kwargs)]


@pytest.mark.parametrize(
    "wrapper", [namespace.wrap_kv, namespace.wrap_watcher, namespace.wrap_lease, namespace.wrap]
)
def test_namespace_forwards_attributes_through_every_wrapper(
    fake: RecordingClient, kind: str, wrapper: Callable[[Any, str], object]
) -> None:
    """Plain attributes (endpoints) and lease calls reach the client through any wrapper."""
    proxy: Any = layer_of_kind(kind, wrapper, fake, "t/")
    assert proxy.endpoints == ["127.0.0.1:1"]
    assert proxy.grant(5) == "grant answer"


def test_namespace_wrap_satisfies_all_three_protocols(sync_ns: KVWatcherLease) -> None:
    """wrap() gives a KV, a Watcher and a Lease to isinstance checks."""
    assert isinstance(sync_ns, KV)
    assert isinstance(sync_ns, Watcher)
    assert isinstance(sync_ns, Lease)


@pytest.mark.parametrize(
    ("wrapper", "is_a"),
    [
        (namespace.wrap, (NamespaceClient, KVWatcherLease, KV, Watcher, Lease)),
        (namespace.wrap_kv, (NamespaceKV, KV)),
        (namespace.wrap_watcher, (NamespaceWatcher, Watcher)),
        (namespace.wrap_lease, (NamespaceLease, Lease)),
    ],
)
def test_namespace_wrap_is_an_instance_of_what_it_is_typed_as(
    fake: RecordingClient, wrapper: Callable[[Any, str], object], is_a: tuple[type, ...]
) -> None:
    """isinstance agrees with the wrapper's type: its Protocols, never the wrapped class."""
    proxy = wrapper(speaking(fake), "t/")
    assert all(isinstance(proxy, kind) for kind in is_a)
    assert not isinstance(proxy, RecordingClient)


def test_namespace_wrap_kv_is_not_a_watcher(fake: RecordingClient) -> None:
    """wrap_kv() is a KV only: the refused watch makes it fail the Watcher check."""
    proxy = namespace.wrap_kv(speaking(fake), "t/")
    assert isinstance(proxy, KV)
    assert not isinstance(proxy, Watcher)


# --- KV: the Ops sent and the responses returned ------------------------------------------


def test_namespace_get_sends_a_translated_op_and_strips_the_answer(
    fake: RecordingClient, ns: KVWatcherLease
) -> None:
    """get() sends the prefixed range through do() and cuts the prefix from the kvs."""
    canned = GetResponse(HEADER, [kv(b"t/a"), kv(b"t/ab")], count=2, more=True)
    fake.answer = canned
    response = ns.get("a", prefix=True, limit=2, serializable=True, timeout=3.0)
    assert fake.calls == [
        ("do", (GetOp(key=b"t/a", range_end=b"t/b", limit=2, serializable=True),), {"timeout": 3.0})
    ]
    assert response == GetResponse(HEADER, [kv(b"a"), kv(b"ab")], count=2, more=True)
    assert canned.kvs == [kv(b"t/a"), kv(b"t/ab")]


def test_namespace_get_all_keys_is_bounded_by_the_namespace(
    fake: RecordingClient, ns: KVWatcherLease
) -> None:
    """get("", prefix=True) and get(k, from_key=True) stop at the namespace's end."""
    ns.get("", prefix=True)
    ns.get("k", from_key=True)
    sent = [call[1][0] for call in fake.calls]
    assert sent == [GetOp(key=b"t/\x00", range_end=b"t0"), GetOp(key=b"t/k", range_end=b"t0")]


def test_namespace_put_translates_and_strips_prev_kv(
    fake: RecordingClient, ns: KVWatcherLease
) -> None:
    """put() sends the prefixed key with its options and cuts the prefix from prev_kv."""
    fake.answer = PutResponse(HEADER, kv(b"t/k"))
    response = ns.put("k", b"\xff", lease=3, prev_kv=True)
    assert fake.calls == [
        ("do", (PutOp(key=b"t/k", value=b"\xff", lease=3, prev_kv=True),), {"timeout": None})
    ]
    assert response == PutResponse(HEADER, kv(b"k"))


def test_namespace_delete_translates_and_strips_prev_kvs(
    fake: RecordingClient, ns: KVWatcherLease
) -> None:
    """delete() sends the prefixed range and cuts the prefix from prev_kvs."""
    fake.answer = DeleteResponse(HEADER, 2, [kv(b"t/a"), kv(b"t/b")])
    response = ns.delete("a", range_end="c", prev_kv=True)
    assert fake.calls == [
        ("do", (DeleteOp(key=b"t/a", range_end=b"t/c", prev_kv=True),), {"timeout": None})
    ]
    assert response == DeleteResponse(HEADER, 2, [kv(b"a"), kv(b"b")])


def test_namespace_txn_translates_compares_and_nested_ops(
    fake: RecordingClient, ns: KVWatcherLease
) -> None:
    """txn() sends one translated TxnOp and strips every response in the answer."""
    fake.answer = TxnResponse(
        HEADER,
        True,
        [GetResponse(HEADER, [kv(b"t/a")], 1), TxnResponse(HEADER, True, [PutResponse(HEADER)])],
    )
    response = ns.txn(
        [Compare.value("a", prefix=True) == b"v"],
        [Op.get("a"), Op.txn([], [Op.put("b", "v")], [])],
        [Op.delete("", prefix=True)],
        timeout=2.0,
    )
    expected = TxnOp(
        compare=((Compare.value(b"t/a", range_end=b"t/b") == b"v"),),
        success=(GetOp(key=b"t/a"), TxnOp(success=(PutOp(key=b"t/b", value=b"v"),))),
        failure=(DeleteOp(key=b"t/\x00", range_end=b"t0"),),
    )
    assert fake.calls == [("do", (expected,), {"timeout": 2.0})]
    assert response == TxnResponse(
        HEADER,
        True,
        [GetResponse(HEADER, [kv(b"a")], 1), TxnResponse(HEADER, True, [PutResponse(HEADER)])],
    )


@pytest.mark.parametrize(
    ("op", "sent", "answer", "expected"),
    [
        (
            Op.get("k"),
            GetOp(key=b"t/k"),
            GetResponse(HEADER, [kv(b"t/k")], 1),
            GetResponse(HEADER, [kv(b"k")], 1),
        ),
        (
            Op.put("k", "v", prev_kv=True),
            PutOp(key=b"t/k", value=b"v", prev_kv=True),
            PutResponse(HEADER, kv(b"t/k")),
            PutResponse(HEADER, kv(b"k")),
        ),
        (
            Op.delete("k", prefix=True),
            DeleteOp(key=b"t/k", range_end=b"t/l"),
            DeleteResponse(HEADER, 0),
            DeleteResponse(HEADER, 0),
        ),
        (
            Op.txn([Compare.version("k") == 0], [], []),
            TxnOp(compare=(Compare.version(b"t/k") == 0,)),
            TxnResponse(HEADER, False),
            TxnResponse(HEADER, False),
        ),
    ],
    ids=["get", "put", "delete", "txn"],
)
def test_namespace_do_translates_every_op_kind(
    fake: RecordingClient,
    ns: KVWatcherLease,
    op: Op,
    sent: Op,
    answer: Response,
    expected: Response,
) -> None:
    """do() translates each kind of Op and strips its kind of response."""
    fake.answer = answer
    assert ns.do(op, timeout=1.5) == expected
    assert fake.calls == [("do", (sent,), {"timeout": 1.5})]


def test_namespace_do_and_txn_leave_the_callers_ops_untouched(
    fake: RecordingClient, ns: KVWatcherLease
) -> None:
    """Ops and comparisons handed to do() or txn() still hold the user's keys afterwards."""
    get, put, compare = Op.get("k", prefix=True), Op.put("k", "v"), Compare.value("k") == b"v"
    fake.answers = {TxnOp: TxnResponse(HEADER, False)}
    ns.do(get)
    ns.txn([compare], [put, get], [])
    assert (get.key, get.range_end, put.key, compare.key) == (b"k", b"l", b"k", b"k")
    assert fake.calls[0][1] == (GetOp(key=b"t/k", range_end=b"t/l"),)


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda ns: ns.get(""), errors.EmptyKeyError),
        (lambda ns: ns.get(1), TypeError),
        (lambda ns: ns.get("k", prefix=True, range_end="z"), ValueError),
        (lambda ns: ns.get("k", limit=-1), ValueError),
        (lambda ns: ns.get("k", sort_target=99), errors.InvalidSortOptionError),
        (lambda ns: ns.put("", "v"), errors.EmptyKeyError),
        (lambda ns: ns.put("k", None), TypeError),
        (lambda ns: ns.delete("k", from_key=True, range_end="z"), ValueError),
        (lambda ns: ns.txn([1]), TypeError),
        (lambda ns: ns.txn([], [Op()]), TypeError),
        (lambda ns: ns.do("get k"), TypeError),
        (lambda ns: ns.watch(""), errors.EmptyKeyError),
        (lambda ns: ns.watch("k", prefix=True, from_key=True), ValueError),
        (lambda ns: ns.watch(b"k", range_end=5), TypeError),
    ],
)
def test_namespace_refuses_bad_arguments_before_any_io(
    fake: RecordingClient, ns: Any, call: Callable[[Any], object], error: type[Exception]
) -> None:
    """Bad arguments raise the raw client's errors and nothing reaches the wrapped object."""
    with pytest.raises(error):
        call(ns)
    assert fake.calls == []


def test_namespace_passes_errors_of_the_inner_client_through_unchanged(
    fake: RecordingClient, ns: KVWatcherLease
) -> None:
    """An error from below is raised as the very same object."""
    failure = errors.CompactedError("etcdserver: mvcc: required revision has been compacted", 5)
    fake.error = failure
    with pytest.raises(errors.CompactedError) as raised:
        ns.get("k", revision=2)
    assert raised.value is failure


# --- Watcher and Lease --------------------------------------------------------------------


def test_namespace_watch_sends_the_translated_range_and_every_option(
    fake: RecordingClient, ns: KVWatcherLease
) -> None:
    """watch() sends the prefixed range and passes the other options as given."""
    ns.watch("k", prefix=True, start_revision=5, prev_kv=True, filter_put=True, timeout=2.0)
    ns.watch("", from_key=True)
    ns.watch("k")
    common = {
        "start_revision": 0,
        "prev_kv": False,
        "filter_put": False,
        "filter_delete": False,
        "progress_notify": False,
        "fragment": False,
        "created_notify": False,
        "timeout": None,
    }
    assert fake.calls == [
        (
            "watch",
            (b"t/k",),
            {
                **common,
                "range_end": b"t/l",
                "start_revision": 5,
                "prev_kv": True,
                "filter_put": True,
                "timeout": 2.0,
            },
        ),
        ("watch", (b"t/\x00",), {**common, "range_end": b"t0"}),
        ("watch", (b"t/k",), {**common, "range_end": None}),
    ]


def watch_response(*keys: bytes) -> WatchResponse:
    """A response with one put event per key, each with a prev_kv."""
    return WatchResponse(HEADER, [Event(EventType.PUT, kv(key), kv(key)) for key in keys])


def test_namespace_watch_iteration_strips_event_keys(
    fake: RecordingClient, ns: KVWatcherLease
) -> None:
    """Iterating the watch yields events with kv and prev_kv keys cut."""
    fake.watch_responses = [watch_response(b"t/a"), watch_response(b"t/b", b"t/c")]
    responses = list(ns.watch("", prefix=True, prev_kv=True))
    assert responses == [watch_response(b"a"), watch_response(b"b", b"c")]
    assert fake.watch_responses[0] == watch_response(b"t/a")


def test_namespace_watch_next_strips_event_keys(fake: RecordingClient, ns: KVWatcherLease) -> None:
    """next(timeout) returns the next response with keys cut, passing the timeout down."""
    fake.watch_responses = [watch_response(b"t/a")]
    assert ns.watch("a").next(timeout=0.5) == watch_response(b"a")


def test_namespace_watch_with_returns_the_proxy_and_cancels(
    fake: RecordingClient, sync_ns: KVWatcherLease
) -> None:
    """`with sync_ns.watch(...)` hands out the translating watch and cancels the inner one."""
    fake.watch_responses = [watch_response(b"t/a")]
    watch = sync_ns.watch("a")
    with watch as entered:
        assert entered is watch
        assert entered.next() == watch_response(b"a")
    inner = cast(Any, watch).__wrapped__
    assert isinstance(inner, FakeWatch)
    assert inner.canceled


def test_namespace_watch_cancel_is_forwarded(
    fake: RecordingClient, sync_ns: KVWatcherLease
) -> None:
    """cancel() reaches the inner watch."""
    watch = sync_ns.watch("a")
    watch.cancel()
    assert cast(Any, watch).__wrapped__.canceled


def test_namespace_time_to_live_lists_only_the_namespace_keys(
    fake: RecordingClient, ns: KVWatcherLease
) -> None:
    """time_to_live(keys=True) drops other namespaces' keys and cuts the prefix."""
    fake.ttl_answer = LeaseTimeToLiveResponse(HEADER, 7, 10, 60, [b"t/a", b"u/b", b"t/c"])
    response = ns.time_to_live(7, keys=True, timeout=1.0)
    assert fake.calls == [("time_to_live", (7,), {"keys": True, "timeout": 1.0})]
    assert response == LeaseTimeToLiveResponse(HEADER, 7, 10, 60, [b"a", b"c"])


# --- construction, composition, lifecycle -------------------------------------------------

WRAPPERS = [namespace.wrap, namespace.wrap_kv, namespace.wrap_watcher, namespace.wrap_lease]


@pytest.mark.parametrize("wrapper", WRAPPERS)
@pytest.mark.parametrize("prefix", ["", b""])
def test_namespace_wrap_refuses_an_empty_prefix(
    fake: RecordingClient, wrapper: Callable[[Any, Any], object], prefix: str | bytes
) -> None:
    """An empty prefix raises ValueError in all four functions."""
    with pytest.raises(ValueError, match="prefix must not be empty"):
        wrapper(fake, prefix)


@pytest.mark.parametrize("wrapper", WRAPPERS)
@pytest.mark.parametrize("prefix", [None, 1, ["a/"]])
def test_namespace_wrap_refuses_a_prefix_of_the_wrong_type(
    fake: RecordingClient, wrapper: Callable[[Any, Any], object], prefix: object
) -> None:
    """A prefix that is not str or bytes raises TypeError naming it."""
    with pytest.raises(TypeError, match="prefix must be str or bytes"):
        wrapper(fake, prefix)


@pytest.mark.parametrize("wrapper", WRAPPERS)
def test_namespace_wrap_refuses_an_object_that_cannot_be_namespaced(
    wrapper: Callable[[Any, Any], object],
) -> None:
    """Wrapping something without the methods the wrapper calls raises TypeError."""
    with pytest.raises(TypeError, match="must provide"):
        wrapper(object(), "t/")


def test_namespace_wrap_accepts_str_and_bytes_prefixes_alike(
    fake: RecordingClient, kind: str
) -> None:
    """A str prefix is its UTF-8 bytes, non-UTF-8 bytes prefixes work as given."""
    layer_of_kind(kind, namespace.wrap_kv, fake, "é/").get("k")
    layer_of_kind(kind, namespace.wrap_kv, fake, b"\xff\x00").get("k")
    assert [call[1][0] for call in fake.calls] == [
        GetOp(key="é/k".encode()),
        GetOp(key=b"\xff\x00k"),
    ]


def wrap_twice(client: KVWatcherLease) -> KVWatcherLease:
    return namespace.wrap(namespace.wrap(client, "a/"), "b/")


def run_everything(client: KVWatcherLease) -> list[object]:
    """Make one call of every translated kind and return what came back."""
    return [
        client.get("", prefix=True),
        client.get("k", from_key=True),
        client.put("k", "v", prev_kv=True),
        client.delete("a", range_end="b", prev_kv=True),
        client.txn([Compare.mod_revision("", prefix=True) > 1], [Op.get("k")], []),
        client.do(Op.delete("k", prefix=True)),
        list(client.watch("", prefix=True)),
        client.time_to_live(7, keys=True),
    ]


def test_namespace_wrapping_twice_composes(fake: RecordingClient, kind: str) -> None:
    """wrap(wrap(c, "a/"), "b/") sends and returns exactly what wrap(c, "a/b/") does."""
    fake.watch_responses = [watch_response(b"a/b/x")]
    fake.ttl_answer = LeaseTimeToLiveResponse(HEADER, 7, 10, 60, [b"a/b/x", b"a/x", b"b/x"])
    fake.answers = {
        GetOp: GetResponse(HEADER, [kv(b"a/b/x")], 1),
        PutOp: PutResponse(HEADER, kv(b"a/b/k")),
        DeleteOp: DeleteResponse(HEADER, 1, [kv(b"a/b/a")]),
        TxnOp: TxnResponse(HEADER, True, [GetResponse(HEADER, [kv(b"a/b/k")], 1)]),
    }
    direct = run_everything(layer_of_kind(kind, namespace.wrap, fake, "a/b/"))
    direct_calls, fake.calls = fake.calls, []
    stacked = run_everything(layer_of_kind(kind, wrap_twice, fake))
    assert fake.calls == direct_calls
    assert stacked == direct


def test_namespace_with_returns_the_proxy_and_closes(fake: RecordingClient, kind: str) -> None:
    """`with wrap(...)` hands out the namespaced client (not the inner one) and closes it."""
    proxy = layer_of_kind(kind, namespace.wrap, speaking(fake), "t/")
    with proxy as entered:
        assert entered is proxy
        entered.get("k")
    assert fake.calls[0][1] == (GetOp(key=b"t/k"),)
    assert fake.calls[-1] == ("close", (), {})


@pytest.mark.parametrize("key", [b"k", "k", b"\xff"])
def test_namespace_plain_get_sends_the_same_op_as_the_funnel(
    fake: RecordingClient, ns: KVWatcherLease, key: str | bytes
) -> None:
    """get(key) with no option (the fast path) sends what get(key, timeout=None) sends."""
    ns.get(key)
    ns.get(key, timeout=None)
    fast, funnel = fake.calls
    assert fast == funnel
    assert fast[1][0] == Op.get(b"t/" + to_bytes(key, name="key"))


def test_namespace_plain_get_of_an_empty_key_is_refused_before_any_io(
    fake: RecordingClient, ns: KVWatcherLease
) -> None:
    """The fast path leaves an empty key to the funnel, which raises EmptyKeyError."""
    with pytest.raises(errors.EmptyKeyError):
        ns.get(b"")
    assert fake.calls == []


@pytest.mark.parametrize(("key", "value"), [(b"k", b"v"), ("k", "v"), (b"k", b"")])
def test_namespace_plain_put_sends_the_same_op_as_the_funnel(
    fake: RecordingClient, ns: KVWatcherLease, key: str | bytes, value: str | bytes
) -> None:
    """put(key, value) with no option (the fast path) sends what the funnel sends."""
    fake.answers[PutOp] = PutResponse(HEADER)
    ns.put(key, value)
    ns.put(key, value, timeout=None)
    fast, funnel = fake.calls
    assert fast == funnel
    assert fast[1][0] == Op.put(b"t/" + to_bytes(key, name="key"), value)


def test_namespace_plain_put_with_a_bad_value_is_refused_before_any_io(
    fake: RecordingClient, ns: KVWatcherLease
) -> None:
    """The fast path leaves a value of the wrong type to the funnel, which raises TypeError."""
    with pytest.raises(TypeError, match="value"):
        ns.put(b"k", 7)  # type: ignore[arg-type]  # the wrong type, on purpose
    assert fake.calls == []
