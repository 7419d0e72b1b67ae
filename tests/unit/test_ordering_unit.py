"""The ordering layer without a server: the revision floor, the proxy shell and the policy."""

from __future__ import annotations

import itertools
import random
import threading
import types
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from async_kinds import KINDS, close_loops, layer_of_kind
from hypothesis import given
from hypothesis import strategies as st

from etcd_layers import Compare, Op, errors, namespace, ordering
from etcd_layers.base import (
    KV,
    AsyncKV,
    CompactResponse,
    DeleteOp,
    DeleteResponse,
    GetOp,
    GetResponse,
    PutOp,
    PutResponse,
    Response,
    ResponseHeader,
    TxnOp,
    TxnResponse,
)
from etcd_layers.base import (
    deadline as _deadline,
)
from etcd_layers.base.forwarding import Forwarded
from etcd_layers.ordering import AsyncOrderingKV, OrderingKV, RevisionFloor
from etcd_layers.ordering._proxy import call_violations

JOIN_TIMEOUT = 10.0


def header(revision: int) -> ResponseHeader:
    return ResponseHeader(cluster_id=1, member_id=2, revision=revision, raft_term=3)


def respond(op: Op, revision: int) -> Response:
    """A canned response of the kind `op` asks for, at `revision`."""
    if isinstance(op, GetOp):
        return GetResponse(header(revision), count=0)
    if isinstance(op, PutOp):
        return PutResponse(header(revision))
    if isinstance(op, DeleteOp):
        return DeleteResponse(header(revision))
    return TxnResponse(header(revision), succeeded=True)


class FakeKV:
    """Records every Op sent and answers it with the next scripted revision (the last repeats)."""

    def __init__(self, *revisions: int) -> None:
        self.script = list(revisions) or [1]
        self.sent: list[Op] = []
        self.timeouts: list[float | None] = []
        self.closed = 0
        self.compacted: list[int] = []
        self.marker = "forwarded"  # a non-KV attribute the proxy must forward

    def put(self, key: Any, value: Any, **options: Any) -> Any:
        return self.do(Op.put(key, value, **options))

    def get(self, key: Any, **options: Any) -> Any:
        return self.do(Op.get(key, **options))

    def delete(self, key: Any, **options: Any) -> Any:
        return self.do(Op.delete(key, **options))

    def txn(self, compare: Any = (), success: Any = (), failure: Any = (), **_: Any) -> Any:
        return self.do(Op.txn(compare, success, failure))

    def do(self, op: Op, *, timeout: float | None = None) -> Any:
        self.sent.append(op)
        self.timeouts.append(timeout)
        revision = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        return respond(op, revision)

    def compact(self, revision: int, **_: Any) -> CompactResponse:
        self.compacted.append(revision)
        return CompactResponse(header(revision))

    def close(self) -> None:
        self.closed += 1


class FakeClient(FakeKV):
    """A FakeKV with endpoints that records the policy's switches."""

    def __init__(self, *revisions: int, endpoints: int = 3) -> None:
        super().__init__(*revisions)
        self.endpoints = [f"127.0.0.1:{2379 + i}" for i in range(endpoints)]
        self.switches = 0
        self.lock = threading.Lock()

    def switch_endpoint(self) -> str:
        self.switches += 1
        return self.endpoints[self.switches % len(self.endpoints)]


class Recorder:
    """An on_violation policy that records its calls and then returns (so the call retries)."""

    LIMIT = 100  # bounds every retry loop, should the proxy under test never stop retrying

    def __init__(self) -> None:
        self.calls: list[tuple[Op, Response, int, int]] = []

    def __call__(self, op: Op, response: Response, prev_revision: int) -> None:
        self.calls.append((op, response, prev_revision, call_violations()))
        if len(self.calls) >= self.LIMIT:
            raise AssertionError(f"{self.LIMIT} violations: the proxy keeps retrying")


def kv_of(fake: FakeKV) -> KV:
    assert isinstance(fake, KV)  # the fake speaks the Protocol, as far as isinstance can tell
    return fake


def checked(fake: FakeKV, recorder: Recorder | None = None) -> OrderingKV:
    proxy = ordering.wrap(kv_of(fake), on_violation=recorder or Recorder())
    assert isinstance(proxy, OrderingKV)
    return proxy


# Most shell tests run against both kinds of layer: OrderingKV over the fake, and
# AsyncOrderingKV over the fake's async twin (behind a blocking facade; see async_kinds).
Wrap = Callable[..., Any]  # wrap(fake, on_violation=...) -> the layer, of the test's kind
Check = Callable[..., Any]  # check(fake, recorder=None) -> the layer, with a Recorder policy


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> Iterator[str]:
    yield request.param
    close_loops()


@pytest.fixture
def wrap(kind: str) -> Wrap:
    def wrap_fake(fake: FakeKV, **options: Any) -> Any:
        layer = layer_of_kind(kind, ordering.wrap, kv_of(fake), **options)
        expected = OrderingKV if kind == "sync" else AsyncOrderingKV
        assert isinstance(getattr(layer, "layer", layer), expected)
        return layer

    return wrap_fake


@pytest.fixture
def check(wrap: Wrap) -> Check:
    return lambda fake, recorder=None: wrap(fake, on_violation=recorder or Recorder())


# --- RevisionFloor ------------------------------------------------------------------------


def test_floor_starts_at_zero() -> None:
    """A new floor has seen nothing."""
    assert RevisionFloor().get() == 0


def test_floor_raise_to_never_lowers() -> None:
    """raise_to keeps the higher of the floor and the revision, and returns it."""
    floor = RevisionFloor()
    assert floor.raise_to(7) == 7
    assert floor.raise_to(3) == 7
    assert floor.get() == 7


def test_floor_refuses_a_negative_start() -> None:
    """A floor cannot start below zero."""
    with pytest.raises(ValueError, match="revision"):
        RevisionFloor(-1)


@given(st.lists(st.integers(min_value=0, max_value=2**63 - 1), max_size=50))
def test_floor_is_the_running_maximum(revisions: list[int]) -> None:
    """After any sequence of raise_to calls the floor is the largest revision given."""
    floor = RevisionFloor()
    for index, revision in enumerate(revisions):
        assert floor.raise_to(revision) == max(revisions[: index + 1])
    assert floor.get() == max(revisions, default=0)


def test_floor_many_threads_end_at_the_maximum_and_never_go_back() -> None:
    """Threads raising one floor at once leave it at the maximum; no reader sees it fall."""
    floor = RevisionFloor()
    threads, rounds = 8, 3000
    given_revisions = [[random.randrange(1, 10**9) for _ in range(rounds)] for _ in range(threads)]
    went_back: list[tuple[int, int]] = []
    start = threading.Barrier(threads)

    def hammer(revisions: list[int]) -> None:
        start.wait(JOIN_TIMEOUT)
        last = 0
        for revision in revisions:
            after = floor.raise_to(revision)
            now = floor.get()
            if after < revision or now < after or now < last:
                went_back.append((last, now))
            last = now

    workers = [threading.Thread(target=hammer, args=(r,), daemon=True) for r in given_revisions]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(JOIN_TIMEOUT)
    assert not any(worker.is_alive() for worker in workers)
    assert went_back == []
    assert floor.get() == max(max(r) for r in given_revisions)


# --- the proxy shell ----------------------------------------------------------------------


def test_ordering_get_returns_the_inner_response_unchanged(check: Check) -> None:
    """A response at or above the floor is returned as the inner KV gave it."""
    fake = FakeKV(5)
    response = check(fake).get("k", prefix=True, serializable=True)
    assert response == respond(fake.sent[0], 5)
    assert fake.sent == [Op.get("k", prefix=True, serializable=True)]


@pytest.mark.parametrize(
    "call",
    [
        lambda kv: kv.get("k"),
        lambda kv: kv.put("k", "v"),
        lambda kv: kv.delete("k", prefix=True),
        lambda kv: kv.txn([Compare.version("k") > 0], [Op.put("k", "v")]),
        lambda kv: kv.do(Op.get("k")),
    ],
    ids=["get", "put", "delete", "txn", "do"],
)
def test_ordering_learns_from_every_kv_call(
    call: Callable[[OrderingKV], Response], check: Check
) -> None:
    """Get, put, delete, txn and do all raise the floor to their response's revision."""
    fake, recorder = FakeKV(10, 4, 11), Recorder()
    kv = check(fake, recorder)
    call(kv)
    kv.get("k", serializable=True)  # answered at 4, then 11
    assert [(op, prev) for op, _, prev, _ in recorder.calls] == [
        (Op.get("k", serializable=True), 10)
    ]


def test_ordering_equal_revision_is_not_a_violation(check: Check) -> None:
    """A response at exactly the floor is fresh enough (no write happened since)."""
    fake, recorder = FakeKV(9, 9), Recorder()
    kv = check(fake, recorder)
    kv.put("k", "v")
    assert kv.get("k").header.revision == 9
    assert recorder.calls == []


def test_ordering_stale_read_calls_the_policy_and_sends_again(check: Check) -> None:
    """A stale get is reported with its op, response and floor, and re-sent when it returns."""
    fake, recorder = FakeKV(10, 3, 4, 12), Recorder()
    kv = check(fake, recorder)
    kv.put("k", "v")
    response = kv.get("k", serializable=True)
    assert response.header.revision == 12
    op = Op.get("k", serializable=True)
    assert fake.sent[1:] == [op, op, op]
    assert [(o, r.header.revision, p, n) for o, r, p, n in recorder.calls] == [
        (op, 3, 10, 1),
        (op, 4, 10, 2),
    ]


@pytest.mark.parametrize("key", ["k", b"k"], ids=["str", "bytes"])
def test_ordering_stale_plain_get_calls_the_policy_with_its_op(
    key: str | bytes, check: Check
) -> None:
    """A plain get (no option: the fast path) reports and re-sends the Op `get(key)` builds."""
    fake, recorder = FakeKV(10, 3, 12), Recorder()
    kv = check(fake, recorder)
    kv.put("k", "v")
    assert kv.get(key).header.revision == 12
    op = Op.get("k")
    assert fake.sent[1:] == [op, op]
    assert [(o, r.header.revision, p, n) for o, r, p, n in recorder.calls] == [(op, 3, 10, 1)]


class CachingKV(FakeKV):
    """A FakeKV whose plain gets are answered by its own `get`, as a leasing cache hit is."""

    def __init__(self, *revisions: int) -> None:
        super().__init__(*revisions)
        self.served: list[object] = []

    def get(self, key: Any, **options: Any) -> Any:
        if options:
            return super().get(key, **options)
        self.served.append(key)
        return GetResponse(header(self.script[0]), count=1)


def test_ordering_plain_get_reaches_the_inner_get(check: Check) -> None:
    """A plain get is sent as the inner KV's plain get, so the layer below keeps its fast path."""
    fake = CachingKV(7)
    kv = check(fake)
    assert kv.get("k").header.revision == 7
    assert kv.get(b"k").count == 1
    assert fake.served == [b"k", b"k"]
    assert fake.sent == []
    kv.get("k", serializable=True)  # an option: through do(), checked as any call
    assert fake.sent == [Op.get("k", serializable=True)]


@pytest.mark.parametrize(
    "op",
    [
        Op.txn([Compare.value("k") == "v"], [Op.get("k")], [Op.get("j", prefix=True)]),
        Op.txn((), [Op.txn((), [Op.get("k")], [Op.get("j")])]),
    ],
    ids=["flat", "nested"],
)
def test_ordering_stale_read_only_txn_is_sent_again(op: TxnOp, check: Check) -> None:
    """A txn without a write in any branch, at any depth, is a read and is retried."""
    fake, recorder = FakeKV(10, 3, 11), Recorder()
    kv = check(fake, recorder)
    kv.put("k", "v")
    assert kv.do(op).header.revision == 11
    assert fake.sent[1:] == [op, op]
    assert len(recorder.calls) == 1


WRITES = [
    pytest.param(lambda kv: kv.put("k", "v"), PutOp, id="put"),
    pytest.param(lambda kv: kv.delete("k"), DeleteOp, id="delete"),
    pytest.param(lambda kv: kv.do(Op.put("k", "v")), PutOp, id="do-put"),
    pytest.param(lambda kv: kv.txn((), [Op.get("k")], [Op.delete("k")]), TxnOp, id="txn-failure"),
    pytest.param(
        lambda kv: kv.txn((), [Op.txn((), [], [Op.put("k", "v")])]), TxnOp, id="txn-nested"
    ),
]


@pytest.mark.parametrize(("call", "kind"), WRITES)
def test_ordering_stale_write_raises_without_resending(
    call: Callable[[OrderingKV], Response], kind: type[Op], check: Check
) -> None:
    """A stale response to a request that may write raises and is never sent a second time."""
    fake, recorder = FakeKV(10, 4, 50), Recorder()
    kv = check(fake, recorder)
    kv.get("k")
    with pytest.raises(errors.OrderViolationError) as raised:
        call(kv)
    assert type(raised.value) is errors.OrderViolationError
    assert raised.value.prev_revision == 10
    assert isinstance(raised.value.response, Response)
    assert raised.value.response.header.revision == 4
    assert [type(op) for op in fake.sent] == [GetOp, kind]  # sent once, never again
    assert recorder.calls == []  # the policy is not asked about writes


def test_ordering_stale_write_leaves_the_floor(check: Check) -> None:
    """A stale write's revision does not lower the floor that later reads are checked against."""
    fake, recorder = FakeKV(10, 4, 6, 10), Recorder()
    kv = check(fake, recorder)
    kv.get("k")
    with pytest.raises(errors.OrderViolationError):
        kv.put("k", "v")
    kv.get("k")  # 6 is still stale against 10
    assert [prev for _, _, prev, _ in recorder.calls] == [10]


def test_ordering_policy_exception_propagates_as_is(wrap: Wrap) -> None:
    """Whatever the policy raises fails the call unchanged."""

    class MineError(Exception):
        pass

    def refuse(op: Op, response: Response, prev_revision: int) -> None:
        raise MineError(prev_revision)

    fake = FakeKV(10, 2)
    kv = wrap(fake, on_violation=refuse)
    kv.get("k")
    with pytest.raises(MineError) as raised:
        kv.get("k")
    assert raised.value.args == (10,)
    assert len(fake.sent) == 2


def test_ordering_checks_against_the_floor_seen_when_the_call_began() -> None:
    """A read that started before another thread raised the floor is not a violation."""
    release, started = threading.Event(), threading.Event()
    recorder = Recorder()

    class SlowFirstRead(FakeKV):
        def do(self, op: Op, *, timeout: float | None = None) -> Any:
            if isinstance(op, GetOp):
                started.set()
                assert release.wait(JOIN_TIMEOUT)
                return respond(op, 50)
            return respond(op, 100)

    floor = RevisionFloor()
    kv = OrderingKV(kv_of(SlowFirstRead()), recorder, floor)
    results: list[Response] = []
    reader = threading.Thread(target=lambda: results.append(kv.get("k")), daemon=True)
    reader.start()
    assert started.wait(JOIN_TIMEOUT)
    kv.put("k", "v")  # floor: 100, while the read (which began at 0) is in flight
    release.set()
    reader.join(JOIN_TIMEOUT)
    assert not reader.is_alive()
    assert [r.header.revision for r in results] == [50]
    assert recorder.calls == []
    assert floor.get() == 100  # the late, lower answer did not lower the floor


def test_ordering_many_threads_see_no_false_violation() -> None:
    """Threads sharing a wrapper over a store whose revision only rises never see a violation."""
    counter = itertools.count(1)
    lock = threading.Lock()
    recorder = Recorder()

    class Rising(FakeKV):
        def do(self, op: Op, *, timeout: float | None = None) -> Any:
            with lock:  # the store's revision at the moment the request arrives
                revision = next(counter)
            return respond(op, revision)

    floor = RevisionFloor()
    kv = OrderingKV(kv_of(Rising()), recorder, floor)
    threads, rounds = 8, 500
    failures: list[BaseException] = []
    start = threading.Barrier(threads)

    def hammer(index: int) -> None:
        start.wait(JOIN_TIMEOUT)
        try:
            for round_ in range(rounds):
                if (index + round_) % 3:
                    kv.get("k", serializable=True)
                else:
                    kv.put("k", "v")
        except errors.EtcdError as err:
            failures.append(err)

    workers = [threading.Thread(target=hammer, args=(i,), daemon=True) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(JOIN_TIMEOUT)
    assert not any(worker.is_alive() for worker in workers)
    assert failures == []
    assert recorder.calls == []
    assert floor.get() == threads * rounds


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda kv: kv.get(""), errors.EmptyKeyError),
        (lambda kv: kv.get(123), TypeError),
        (lambda kv: kv.get("k", limit=-1), ValueError),
        (lambda kv: kv.get("k", timeout=-1), ValueError),
        (lambda kv: kv.get("k", timeout="soon"), TypeError),
        (lambda kv: kv.get("k", prefix=True, range_end="z"), ValueError),
        (lambda kv: kv.put("", "v"), errors.EmptyKeyError),
        (lambda kv: kv.put("k", 1), TypeError),
        (lambda kv: kv.delete("k", timeout=0), ValueError),
        (lambda kv: kv.txn(["not a compare"]), TypeError),
        (lambda kv: kv.do("get k"), TypeError),
    ],
)
def test_ordering_bad_arguments_fail_before_any_request(
    call: Callable[[Any], object], error: type[Exception], check: Check
) -> None:
    """Arguments are checked before anything is sent, and the wrapper stays usable."""
    fake = FakeKV(3)
    kv = check(fake)
    with pytest.raises(error):
        call(kv)
    assert fake.sent == []
    assert kv.get("k").header.revision == 3


def test_ordering_spends_one_deadline_over_every_attempt(check: Check) -> None:
    """Retries share the call's timeout: each attempt gets what is left of it."""
    fake = FakeKV(10, 1, 1, 10)
    kv = check(fake)
    kv.get("k")
    kv.get("k", timeout=30)
    first, *retries = fake.timeouts[1:]
    assert first is not None
    assert 0 < first <= 30
    assert all(t is not None and 0 < t <= first for t in retries)
    assert len(retries) == 2


def test_ordering_without_timeout_leaves_the_default_to_the_inner_kv(check: Check) -> None:
    """With timeout=None every attempt passes None on, so the client's default applies."""
    fake = FakeKV(10, 1, 10)
    kv = check(fake)
    kv.get("k")
    kv.get("k")
    assert fake.timeouts == [None, None, None]


def test_ordering_spent_deadline_raises_deadline_exceeded(
    monkeypatch: pytest.MonkeyPatch, wrap: Wrap
) -> None:
    """A policy that outlasts the call's timeout ends the call with DeadlineExceededError."""
    clock = [1000.0]
    monkeypatch.setattr(_deadline, "time", types.SimpleNamespace(monotonic=lambda: clock[0]))

    def slow_policy(op: Op, response: Response, prev_revision: int) -> None:
        clock[0] += 0.6  # the policy's own work spends the time (a fake clock: no sleeping)
        assert len(fake.sent) < 10, "the deadline never ended the retries"

    fake = FakeKV(10, 1)
    kv = wrap(fake, on_violation=slow_policy)
    kv.get("k")
    with pytest.raises(errors.DeadlineExceededError):
        kv.get("k", timeout=1.0)
    assert len(fake.sent) - 1 == 2  # sent at 0 s and 0.6 s; at 1.2 s the time was spent


# --- wrap and forwarding ------------------------------------------------------------------


def test_wrap_returns_a_kv() -> None:
    """The wrapper speaks the KV Protocol."""
    assert isinstance(ordering.wrap(kv_of(FakeKV())), KV)


def test_wrap_is_typed_and_seen_as_what_it_wraps() -> None:
    """wrap returns the wrapped type, which isinstance confirms (wrapt forwards __class__)."""
    fake = FakeKV(4)
    kv: FakeKV = ordering.wrap(fake)  # mypy: wrap(kv: KVT) -> KVT
    assert isinstance(kv, FakeKV)
    assert isinstance(kv, OrderingKV)
    assert kv.marker == "forwarded"


@pytest.mark.parametrize("kv", [None, object(), "cli"])
def test_wrap_refuses_what_is_not_a_kv(kv: object) -> None:
    """Only an object with the KV Protocol's methods can be wrapped."""
    with pytest.raises(TypeError, match="KV Protocol"):
        ordering.wrap(kv)  # type: ignore[call-overload]  # the point of the test


def test_wrap_refuses_a_policy_that_is_not_callable() -> None:
    """on_violation must be None or callable."""
    with pytest.raises(TypeError, match="on_violation"):
        ordering.wrap(kv_of(FakeKV()), on_violation="switch")  # type: ignore[call-overload]  # ditto


def test_ordering_forwards_what_it_does_not_check(check: Check) -> None:
    """compact, close and any other attribute reach the wrapped object unchanged."""
    fake = FakeKV(4)
    kv: Any = check(fake)
    assert kv.compact(3).header.revision == 3
    assert fake.compacted == [3]
    assert kv.marker == "forwarded"
    kv.close()
    assert fake.closed == 1


def test_ordering_with_returns_the_proxy_and_closes_the_inner_kv(check: Check) -> None:
    """`with` hands out the wrapper itself (not the inner KV) and closes the inner one on exit."""
    fake = FakeKV(4)
    proxy = check(fake)
    with proxy as entered:
        assert entered is proxy
    assert fake.closed == 1


CHECKED = {"get", "put", "delete", "txn", "do"}


@pytest.mark.parametrize(("proxy", "proto"), [(OrderingKV, KV), (AsyncOrderingKV, AsyncKV)])
def test_ordering_overrides_exactly_the_checked_methods(proxy: type, proto: type) -> None:
    """Every KV method that returns a store revision is checked; compact is forwarded on purpose."""
    kv_methods = {n for n, v in vars(proto).items() if callable(v) and not n.startswith("_")}
    proxy_public = {
        n for n, v in vars(proxy).items() if not n.startswith("_") and not isinstance(v, Forwarded)
    }
    assert proxy_public == CHECKED
    assert kv_methods - proxy_public == {"compact"}
    assert isinstance(vars(proxy)["compact"], Forwarded)  # seen by Protocol checks on 3.12+


def test_ordering_keeps_its_state_on_the_proxy() -> None:
    """The proxy's state is `_self_`: kept off the wrapped object, and no public name of its own."""
    fake = FakeKV(7)
    attributes = set(vars(fake))
    floor = RevisionFloor()
    proxy = OrderingKV(kv_of(fake), Recorder(), floor)
    proxy.get("k")
    assert floor.get() == 7  # the proxy's floor learned the revision
    assert set(vars(fake)) == attributes  # and the wrapped object gained no attribute
    for name in ("floor", "on_violation", "revision"):
        assert not hasattr(proxy, name)  # FakeKV has none of these, so neither may the proxy


# --- switch_endpoints ---------------------------------------------------------------------


def test_switch_endpoints_moves_the_client_on_each_violation(wrap: Wrap) -> None:
    """Each stale response moves the client to its next endpoint before the retry."""
    fake = FakeClient(10, 1, 2, 10, endpoints=3)
    kv = wrap(fake, on_violation=ordering.switch_endpoints(fake))
    kv.get("k")
    assert kv.get("k", serializable=True).header.revision == 10
    assert fake.switches == 2


@pytest.mark.parametrize("endpoints", [1, 3, 5])
def test_switch_endpoints_gives_up_after_five_rounds(endpoints: int, wrap: Wrap) -> None:
    """After 5 * len(endpoints) stale responses in one call it raises NoGreaterRevisionError."""
    fake = FakeClient(10, 1, endpoints=endpoints)
    kv = wrap(fake, on_violation=ordering.switch_endpoints(fake))
    kv.get("k")
    with pytest.raises(errors.NoGreaterRevisionError) as raised:
        kv.get("k", serializable=True)
    assert len(fake.sent) - 1 == 5 * endpoints
    assert fake.switches == 5 * endpoints - 1
    assert raised.value.prev_revision == 10
    assert isinstance(raised.value.response, GetResponse)
    assert raised.value.response.header.revision == 1


def test_switch_endpoints_counts_within_one_call(wrap: Wrap) -> None:
    """A call that needed many retries does not use up the next call's retries (Go's does)."""
    limit = 5 * 3
    fake = FakeClient(10, *[1] * (limit - 1), 10, *[1] * (limit - 1), 10, endpoints=3)
    kv = wrap(fake, on_violation=ordering.switch_endpoints(fake))
    kv.get("k")
    assert kv.get("k").header.revision == 10
    assert kv.get("k").header.revision == 10
    assert fake.switches == 2 * (limit - 1)


def test_switch_endpoints_counts_each_thread_separately() -> None:
    """Concurrent calls with stale answers each get the whole budget of retries."""
    limit = 5 * 3
    local = threading.local()
    start = threading.Barrier(4)

    class PerThread(FakeClient):
        def do(self, op: Op, *, timeout: float | None = None) -> Any:
            script: list[int] = local.__dict__.setdefault("script", [*[1] * (limit - 1), 10])
            with self.lock:
                self.sent.append(op)
            return respond(op, script.pop(0) if len(script) > 1 else script[0])

        def switch_endpoint(self) -> str:
            with self.lock:
                return super().switch_endpoint()

    fake = PerThread(endpoints=3)
    start_floor = RevisionFloor(5)  # the floor every thread starts at
    kv = OrderingKV(kv_of(fake), ordering.switch_endpoints(fake), start_floor)
    failures: list[BaseException] = []

    def one_call() -> None:
        start.wait(JOIN_TIMEOUT)
        try:
            kv.get("k")
        except errors.EtcdError as err:
            failures.append(err)

    workers = [threading.Thread(target=one_call, daemon=True) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(JOIN_TIMEOUT)
    assert not any(worker.is_alive() for worker in workers)
    assert failures == []
    assert fake.switches == 4 * (limit - 1)


def test_switch_endpoints_rotates_a_client_without_switch_endpoint(wrap: Wrap) -> None:
    """A duck-typed client with only endpoints/set_endpoints is rotated by set_endpoints."""

    class Rotating(FakeKV):
        def __init__(self, *revisions: int) -> None:
            super().__init__(*revisions)
            self.endpoints = ["a:1", "b:2", "c:3"]

        def set_endpoints(self, *endpoints: str) -> None:
            self.endpoints = list(endpoints)

    fake = Rotating(10, 1, 10)
    kv = wrap(fake)
    kv.get("k")
    kv.get("k")
    assert fake.endpoints == ["b:2", "c:3", "a:1"]


def test_switch_endpoints_reaches_the_client_through_another_layer() -> None:
    """Over a namespace wrapper, the default policy finds the client's endpoints through it."""
    fake = FakeClient(10, 1, 10, endpoints=2)
    kv = ordering.wrap(namespace.wrap_kv(kv_of(fake), "tenant/"))
    kv.get("k")
    assert kv.get("k").header.revision == 10
    assert fake.switches == 1
    assert fake.sent[-1] == Op.get("tenant/k")


def test_switch_endpoints_needs_endpoints() -> None:
    """An object without endpoints is refused when the policy is made."""
    with pytest.raises(TypeError, match="endpoints"):
        ordering.switch_endpoints(FakeKV())


def test_wrap_default_policy_without_endpoints_gives_up_after_five(wrap: Wrap) -> None:
    """The default policy over a KV that has no endpoints retries five times, then gives up."""
    fake = FakeKV(10, 1)
    kv = wrap(fake)
    kv.get("k")
    with pytest.raises(errors.NoGreaterRevisionError):
        kv.get("k")
    assert len(fake.sent) - 1 == 5


def test_call_violations_is_zero_outside_a_call() -> None:
    """Outside a policy call nothing is being counted."""
    assert call_violations() == 0


def test_switch_endpoints_called_by_hand_counts_as_a_first_violation() -> None:
    """Called outside a wrapper, the policy moves the client and does not give up."""
    fake = FakeClient(endpoints=2)
    policy = ordering.switch_endpoints(fake)
    for _ in range(20):
        policy(Op.get("k"), GetResponse(header(1)), 5)
    assert fake.switches == 20
