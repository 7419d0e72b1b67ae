"""The leasing shell (leasing.wrap, LeasingKV, Ownership) over a recording fake, no server."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, cast

import pytest

from etcd_layers import leasing
from etcd_layers.base.forwarding import Forwarded
from etcd_layers.base.ops import DeleteOp, Op, TxnOp
from etcd_layers.base.protocols import KV, Lease, Watcher
from etcd_layers.base.responses import (
    DeleteResponse,
    Event,
    EventType,
    GetResponse,
    KeyValue,
    LeaseGrantResponse,
    LeaseKeepAliveResponse,
    LeaseRevokeResponse,
    PutResponse,
    Response,
    ResponseHeader,
    TxnResponse,
    WatchResponse,
)
from etcd_layers.errors import CanceledError, LeaseNotFoundError, UnavailableError
from etcd_layers.leasing import LeasingKV
from etcd_layers.leasing._cache import LeaseCache
from etcd_layers.leasing._protocol import REVOKE
from etcd_layers.leasing._releases import Release
from etcd_layers.leasing._session import LeasingBackend, Ownership, serving_window

LEASE = 0x77
P = b"lease/"


def header(revision: int) -> ResponseHeader:
    return ResponseHeader(1, 2, revision, 3)


class FakeWatch:
    """A watch that yields what the test feeds it and ends on cancel()."""

    def __init__(self) -> None:
        self.responses: deque[WatchResponse] = deque()
        self.ready = threading.Condition()
        self.canceled = False

    def __iter__(self) -> Iterator[WatchResponse]:
        while True:
            with self.ready:
                self.ready.wait_for(lambda: self.canceled or bool(self.responses))
                if self.canceled:
                    return
                response = self.responses.popleft()
            yield response

    def next(self, timeout: float | None = None) -> WatchResponse:
        raise TimeoutError

    def cancel(self) -> None:
        with self.ready:
            self.canceled = True
            self.ready.notify_all()

    def __enter__(self) -> FakeWatch:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.cancel()


class FakeBackend:
    """Speaks KV, Watcher and Lease; records every call and answers `do` from a script."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []
        self.script: deque[Response | Exception] = deque()
        self.watches: list[FakeWatch] = []
        self.closed = False

    def _record(self, name: str, argument: object = None) -> None:
        self.calls.append((name, argument))

    def do(self, op: Op, *, timeout: float | None = None) -> Response:
        if isinstance(op, TxnOp) and op.success and isinstance(op.success[0], DeleteOp):
            self._record("release", op.success[0].key)  # the release thread's, answered here
            return TxnResponse(header(1), True, [DeleteResponse(header(1), 1)])
        self._record("do", op)
        answer = self.script.popleft()
        if isinstance(answer, Exception):
            raise answer
        return answer

    def ops(self) -> list[object]:
        return [argument for name, argument in self.calls if name == "do"]

    def put(self, key: object, value: object, **options: Any) -> PutResponse:
        raise AssertionError("the layer sends Ops through do()")

    def get(self, key: object, **options: Any) -> GetResponse:
        self._record("get", key)
        return GetResponse(header(1))

    def delete(self, key: object, **options: Any) -> Any:
        raise AssertionError("the layer sends Ops through do()")

    def txn(self, *args: Any, **options: Any) -> Any:
        raise AssertionError("the layer sends Ops through do()")

    def compact(self, revision: int, **options: Any) -> str:
        self._record("compact", revision)
        return "compacted"

    def watch(self, key: object, **options: Any) -> FakeWatch:
        self._record("watch", key)
        watch = FakeWatch()
        self.watches.append(watch)
        return watch

    def request_progress(self, **options: Any) -> None:
        self._record("request_progress")

    def grant(self, ttl: int, **options: Any) -> LeaseGrantResponse:
        self._record("grant", ttl)
        return LeaseGrantResponse(header(1), LEASE, ttl)

    def revoke(self, lease_id: int, **options: Any) -> LeaseRevokeResponse:
        self._record("revoke", lease_id)
        return LeaseRevokeResponse(header(1))

    def time_to_live(self, lease_id: int, **options: Any) -> str:
        self._record("time_to_live", lease_id)
        return "ttl"

    def leases(self, **options: Any) -> str:
        self._record("leases")
        return "leases"

    def keep_alive_once(self, lease_id: int, **options: Any) -> LeaseKeepAliveResponse:
        self._record("keep_alive_once", lease_id)
        return LeaseKeepAliveResponse(header(1), lease_id, 60)

    def keep_alive(self, lease_id: int, **options: Any) -> str:
        self._record("keep_alive", lease_id)
        return "keep_alive"

    def close(self) -> None:
        self.closed = True


def as_backend(fake: FakeBackend) -> LeasingBackend:
    """The fake speaks the Protocols at run time; mypy cannot see that through Any."""
    return cast(LeasingBackend, fake)


def acquire_answer(revision: int, value: bytes = b"v") -> TxnResponse:
    kv = KeyValue(b"k", value, 2, 2, 1)
    return TxnResponse(
        header(revision),
        True,
        [GetResponse(header(revision), [kv], 1), PutResponse(header(revision))],
    )


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend()


@pytest.fixture
def lkv(backend: FakeBackend) -> Iterator[LeasingKV]:
    wrapped = leasing.wrap(as_backend(backend), P, ttl=60)
    assert isinstance(wrapped, LeasingKV)
    yield wrapped
    wrapped.close()


# --- wrap -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({"prefix": ""}, ValueError),
        ({"prefix": 5}, TypeError),
        ({"ttl": 0}, ValueError),
        ({"ttl": 1.5}, TypeError),
        ({"max_keys": 0}, ValueError),
        ({"max_keys": "2"}, TypeError),
        ({"timeout": -1}, ValueError),
    ],
)
def test_wrap_checks_arguments_before_any_io(
    backend: FakeBackend, arguments: dict[str, object], error: type[Exception]
) -> None:
    """A bad argument is refused before the session lease is granted."""
    options: dict[str, Any] = {"prefix": P, **arguments}
    with pytest.raises(error):
        leasing.wrap(as_backend(backend), **options)
    assert backend.calls == []


def test_wrap_refuses_a_client_without_watch_and_lease_calls() -> None:
    """Leasing needs KV, Watcher and Lease below it."""

    class OnlyKV:
        def get(self) -> None: ...

    with pytest.raises(TypeError, match="Watcher"):
        leasing.wrap(OnlyKV(), P)  # type: ignore[call-overload]  # refused on purpose


def test_wrap_grants_the_session_and_watches_the_prefix(
    backend: FakeBackend, lkv: LeasingKV
) -> None:
    """wrap() returns once the session lease exists and the leasing prefix is watched."""
    assert backend.calls[:2] == [("grant", 60), ("watch", P)]
    assert isinstance(lkv, KV)


def test_leasing_wrap_is_an_instance_of_what_it_is_typed_as(
    backend: FakeBackend, lkv: LeasingKV
) -> None:
    """isinstance agrees with wrap()'s type: a LeasingClient, not the wrapped client's class."""
    layer: object = lkv
    for proto in (leasing.LeasingClient, LeasingKV, KV, Watcher, Lease):
        assert isinstance(layer, proto), proto
    assert not isinstance(layer, FakeBackend)
    assert type(layer) is LeasingKV


def test_close_revokes_the_session_and_leaves_the_client_open(backend: FakeBackend) -> None:
    """close() gives every leasing key back by revoking the lease; the client stays open."""
    lkv = leasing.wrap(as_backend(backend), P)
    lkv.close()
    assert ("revoke", LEASE) in backend.calls
    assert not backend.closed
    assert backend.watches[0].canceled
    lkv.close()  # idempotent
    assert backend.calls.count(("revoke", LEASE)) == 1


def test_with_block_ends_the_session_but_not_the_client(backend: FakeBackend) -> None:
    """Leaving `with` releases the leases, as clientv3's close function does."""
    with leasing.wrap(as_backend(backend), P) as lkv:
        assert isinstance(lkv, LeasingKV)
    assert not backend.closed
    assert ("revoke", LEASE) in backend.calls


# --- forwarding -------------------------------------------------------------------------------

KEY_BEARING = {"put", "get", "delete", "txn", "do"}
FORWARDED = {"compact", "watch", "request_progress", "grant", "revoke", "time_to_live",
             "leases", "keep_alive_once", "keep_alive"}  # fmt: skip


@pytest.mark.parametrize("proto", [KV, Watcher, Lease])
def test_leasing_overrides_the_kv_and_forwards_the_rest(proto: type) -> None:
    """Every KV method that carries a key is the layer's; nothing else shadows a Protocol."""
    methods = {
        name for name, value in vars(proto).items() if callable(value) and not name.startswith("_")
    }
    own = {name for name, value in vars(LeasingKV).items() if not isinstance(value, Forwarded)}
    forwarded = {name for name, value in vars(LeasingKV).items() if isinstance(value, Forwarded)}
    assert methods - FORWARDED - own == set()
    assert (methods & own) <= KEY_BEARING
    assert methods & FORWARDED <= forwarded  # named on the class, so Protocol checks see them


def test_leasing_forwards_watcher_and_lease_calls(backend: FakeBackend, lkv: LeasingKV) -> None:
    """The proxy hands Watcher and Lease calls to the client as they are."""
    assert lkv.time_to_live(5) == "ttl"
    assert lkv.leases() == "leases"
    assert lkv.compact(3) == "compacted"
    assert isinstance(lkv.watch(b"k"), FakeWatch)
    assert ("time_to_live", 5) in backend.calls


def test_leasing_stats_is_not_named_like_a_protocol_method() -> None:
    """Counters live on `stats`, which no Protocol defines."""
    for proto in (KV, Watcher, Lease):
        assert "stats" not in vars(proto)


# --- reads ------------------------------------------------------------------------------------


def test_get_acquires_once_then_answers_from_memory(backend: FakeBackend, lkv: LeasingKV) -> None:
    """The first get sends the acquire txn; the next ones send nothing."""
    backend.script.append(acquire_answer(5))
    first = lkv.get("k")
    assert first.kvs[0].value == b"v"
    sent = backend.ops()
    assert len(sent) == 1
    assert isinstance(sent[0], TxnOp)
    second = lkv.get(b"k")
    assert second.kvs == first.kvs
    assert lkv.get("k") is second
    assert len(backend.ops()) == 1
    assert lkv.stats.hits == 2


def test_every_hit_path_gives_one_shared_answer_without_a_request(
    backend: FakeBackend, lkv: LeasingKV
) -> None:
    """No option, serializable, a timeout, keys_only, do(Op.get): shared answers, all counted."""
    backend.script.append(acquire_answer(5))
    lkv.get("k")
    plain = lkv.get(b"k")
    assert lkv.get("k", serializable=True) is plain
    assert lkv.get(b"k", timeout=5) is plain
    assert lkv.do(Op.get("k")) is plain
    assert lkv.do(Op.get("k", limit=1, serializable=True), timeout=1) is plain
    bare = lkv.get("k", keys_only=True)
    assert bare.kvs == [KeyValue(b"k", b"", 2, 2, 1)]
    assert bare.header == plain.header
    assert lkv.do(Op.get("k", keys_only=True)) is bare
    # A bytearray key is accepted (and not a fast-path type): the general path answers it.
    assert lkv.get(bytearray(b"k")) == plain  # type: ignore[arg-type]  # accepted at run time
    with pytest.raises(TypeError, match="read-only"):
        plain.kvs.append(KeyValue(b"x"))
    assert len(backend.ops()) == 1
    assert lkv.stats.hits == 8
    # A write of ours withdraws the published answers; the next hit serves what it wrote.
    after = KeyValue(b"k", b"w", 2, 8, 2)
    backend.script.append(
        TxnResponse(header(8), True, [PutResponse(header(8)), GetResponse(header(8), [after], 1)])
    )
    lkv.put("k", "w")
    assert lkv.get("k").kvs == [after]
    assert lkv.get("k", keys_only=True).kvs == [KeyValue(b"k", b"", 2, 8, 2)]
    assert len(backend.ops()) == 2


def test_get_checks_arguments_even_for_a_cached_key(backend: FakeBackend, lkv: LeasingKV) -> None:
    """Bad options are refused before memory is consulted."""
    backend.script.append(acquire_answer(5))
    lkv.get("k")
    with pytest.raises(ValueError, match="limit"):
        lkv.get("k", limit=-1)
    with pytest.raises(TypeError, match="serializable"):
        lkv.get("k", serializable=1)  # type: ignore[arg-type]  # refused on purpose
    with pytest.raises(TypeError, match="key"):
        lkv.get(5)  # type: ignore[arg-type]  # refused on purpose
    with pytest.raises(ValueError, match="timeout"):
        lkv.get("k", timeout=0)
    assert len(backend.ops()) == 1


def test_get_of_a_range_goes_to_the_server_untouched(backend: FakeBackend, lkv: LeasingKV) -> None:
    """Ranges, revisions and counts are sent as they are."""
    for op in (Op.get(b"k", prefix=True), Op.get(b"k", revision=2), Op.get(b"k", count_only=True)):
        backend.script.append(GetResponse(header(9)))
        assert lkv.do(op) == GetResponse(header(9))
        assert backend.ops()[-1] == op


def test_serializable_get_of_an_unowned_key_does_not_acquire(
    backend: FakeBackend, lkv: LeasingKV
) -> None:
    """As clientv3: a serializable read skips acquiring and goes to the server."""
    op = Op.get(b"k", serializable=True)
    backend.script.append(GetResponse(header(9)))
    lkv.do(op)
    assert backend.ops() == [op]


def test_get_after_an_acquire_of_unknown_outcome_reads_instead(
    backend: FakeBackend, lkv: LeasingKV
) -> None:
    """The acquire txn writes, so it is never re-sent; plain reads answer the get."""
    ours = KeyValue(b"lease/k", b"", 5, 5, 1, LEASE)
    backend.script.extend(
        [
            UnavailableError("connection reset"),
            GetResponse(header(6), [KeyValue(b"k", b"v", 2, 2, 1)], 1),
            GetResponse(header(6), [ours], 1),
        ]
    )
    response = lkv.get("k")
    assert response.kvs[0].value == b"v"
    sent = backend.ops()
    assert sent[1:] == [Op.get(b"k"), Op.get(b"lease/k")]
    assert ("release", b"lease/k") in backend.calls or lkv.stats.releases == 1


# --- writes -----------------------------------------------------------------------------------


def test_owner_put_updates_memory_from_the_same_txn(backend: FakeBackend, lkv: LeasingKV) -> None:
    """The owner's put is one guarded txn; the next get is answered from its result."""
    backend.script.append(acquire_answer(5))
    lkv.get("k")
    after = KeyValue(b"k", b"w", 2, 8, 2)
    previous = KeyValue(b"k", b"v", 2, 2, 1)
    backend.script.append(
        TxnResponse(
            header(8), True, [PutResponse(header(8), previous), GetResponse(header(8), [after], 1)]
        )
    )
    response = lkv.put("k", "w", prev_kv=True)
    assert response == PutResponse(header(8), previous)
    assert lkv.get("k").kvs == [after]
    assert len(backend.ops()) == 2


def test_write_of_unknown_outcome_is_raised_not_resent(
    backend: FakeBackend, lkv: LeasingKV
) -> None:
    """clientv3 re-sends such writes; here the error reaches the caller and memory forgets."""
    backend.script.append(acquire_answer(5))
    lkv.get("k")
    backend.script.append(UnavailableError("connection reset"))
    with pytest.raises(UnavailableError):
        lkv.put("k", "w")
    assert len(backend.ops()) == 2
    backend.script.append(GetResponse(header(9)))
    lkv.get("k", serializable=True)  # not cached any more: the server answers
    assert len(backend.ops()) == 3


def test_do_refuses_a_non_op(lkv: LeasingKV) -> None:
    """do() takes Ops only."""
    with pytest.raises(TypeError, match="Op"):
        lkv.do("get k")  # type: ignore[call-overload]  # refused on purpose


# --- ownership in the background ------------------------------------------------------------


def ownership(backend: FakeBackend, clock: Callable[[], float]) -> tuple[Ownership, LeaseCache]:
    cache = LeaseCache(clock=clock)
    owner = Ownership(as_backend(backend), cache, P, 60, clock=clock)
    owner.grant(1.0)
    cache.set_watching(watching=True)
    return owner, cache


def test_serving_window_stops_before_the_ttl() -> None:
    """Memory stops answering a margin before the lease could expire on the server."""
    assert serving_window(60) == pytest.approx(60 - 6 - 0.25)
    assert 0 < serving_window(1) < 1
    assert serving_window(0) == 0


def test_ownership_revoke_event_forgets_the_key_and_queues_its_release(
    backend: FakeBackend,
) -> None:
    """A REVOKE on our leasing key is answered by forgetting the key and deleting it."""
    now = [10.0]
    owner, cache = ownership(backend, lambda: now[0])
    kv = KeyValue(b"k", b"v", 2, 2, 1)
    from etcd_layers.leasing._protocol import Acquired

    cache.add(b"k", Acquired(GetResponse(header(5), [kv], 1), True, False, 5), LEASE)
    owner.on_event(Event(EventType.PUT, KeyValue(b"lease/k", REVOKE, 5, 9, 2, LEASE)))
    assert cache.lookup(b"k") is None
    assert cache.next_release(0) == Release(b"k", 5)


def test_ownership_ignores_revocations_of_other_clients(backend: FakeBackend) -> None:
    """A REVOKE on someone else's leasing key is not ours to answer."""
    owner, cache = ownership(backend, lambda: 10.0)
    owner.on_event(Event(EventType.PUT, KeyValue(b"lease/k", REVOKE, 5, 9, 2, LEASE + 1)))
    assert cache.next_release(0) is None
    assert cache.stats().revocations == 0


def test_ownership_renewal_extends_serving_from_when_it_was_sent(backend: FakeBackend) -> None:
    """The window starts when the renewal was sent, not when its answer arrived."""
    now = [10.0]
    owner, cache = ownership(backend, lambda: now[0])
    now[0] = 70.0  # the grant's window has passed
    assert cache.may_acquire(b"k") == 0
    assert owner.renew()
    assert cache.may_acquire(b"k") == LEASE
    now[0] = 70.0 + serving_window(60)
    assert cache.may_acquire(b"k") == 0


def test_ownership_lost_lease_clears_the_cache(backend: FakeBackend) -> None:
    """A renewal answered 'lease not found' ends the session at once."""
    owner, cache = ownership(backend, lambda: 10.0)

    def gone(lease_id: int, **options: Any) -> LeaseKeepAliveResponse:
        raise LeaseNotFoundError("requested lease not found")

    backend.keep_alive_once = gone  # type: ignore[method-assign]  # a failing renewal
    assert owner.renew()
    assert owner.lease_id == 0
    assert cache.lease_id == 0
    assert cache.stats().session_losses == 1


def test_ownership_unconfirmed_renewals_end_the_session_after_the_ttl(backend: FakeBackend) -> None:
    """Failed renewals keep the session until a whole TTL passed since the last one sent."""
    now = [10.0]
    owner, cache = ownership(backend, lambda: now[0])

    def unreachable(lease_id: int, **options: Any) -> LeaseKeepAliveResponse:
        raise UnavailableError("unreachable")

    backend.keep_alive_once = unreachable  # type: ignore[method-assign]  # a failing renewal
    now[0] = 30.0
    assert not owner.renew()
    assert cache.lease_id == LEASE
    now[0] = 70.0
    assert owner.renew()
    assert cache.lease_id == 0


def test_ownership_stop_revokes_the_lease(backend: FakeBackend) -> None:
    """stop(revoke=True) revokes the session lease, deleting every leasing key with it."""
    owner, _ = ownership(backend, lambda: 10.0)
    owner.stop(revoke=True)
    assert ("revoke", LEASE) in backend.calls


def test_fake_watch_ends_on_cancel() -> None:
    """The fake's iteration stops after cancel(), as a real watch does."""
    watch = FakeWatch()
    watch.responses.append(WatchResponse(header(1)))
    iterator = iter(watch)
    assert next(iterator) == WatchResponse(header(1))
    watch.cancel()
    assert list(iterator) == []
    with pytest.raises(TimeoutError):
        watch.next(0)
    assert not isinstance(CanceledError(), TimeoutError)


def test_stats_function_reads_the_counters_through_a_stack(backend: FakeBackend) -> None:
    """leasing.stats(kv) finds the counters of the leasing client under other layers."""
    from etcd_layers import ordering

    with leasing.wrap(as_backend(backend), P) as lkv:
        assert leasing.stats(ordering.wrap(lkv)) == lkv.stats
    with pytest.raises(TypeError, match="leasing"):
        leasing.stats(as_backend(backend))
