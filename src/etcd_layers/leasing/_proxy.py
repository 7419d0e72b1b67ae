"""LeasingKV: the wrapt shell that serves owned keys from memory and writes through the protocol."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Final, Protocol, TypeVar, overload, runtime_checkable

import wrapt

from etcd_layers._compat import Self
from etcd_layers.base.checks import check_timeout
from etcd_layers.base.deadline import Deadline
from etcd_layers.base.forwarding import Forwarded
from etcd_layers.base.keys import StrOrBytes
from etcd_layers.base.ops import DeleteOp, GetOp, Op, PutOp, TxnOp
from etcd_layers.base.protocols import KV, KVWatcherLease
from etcd_layers.base.responses import (
    DeleteResponse,
    GetResponse,
    PutResponse,
    Response,
    TxnResponse,
)
from etcd_layers.base.waiting import wait_deleted
from etcd_layers.errors import LeaseNotFoundError, UnavailableError
from etcd_layers.leasing._cache import LeaseCache
from etcd_layers.leasing._entry import Lookup
from etcd_layers.leasing._evaluate import answer_get, answerable, evaluate_txn, txn_keys
from etcd_layers.leasing._protocol import (
    Acquired,
    Flow,
    WaitForDeletes,
    acquire,
    guarded_write,
    probe_ops,
    read_probe,
    written_keys,
)
from etcd_layers.leasing._served import op_view, options_view
from etcd_layers.leasing._session import LeasingBackend, Ownership
from etcd_layers.leasing._stats import LeasingStats

_T = TypeVar("_T")
_R = TypeVar("_R", bound=Response)

_KV_GET: Final[Callable[..., GetResponse]] = KV.get  # the funnel's get: checks every keyword


@runtime_checkable
class LeasingClient(KVWatcherLease, Protocol):
    """What `leasing.wrap` returns: a KV that also forwards Watcher and Lease calls."""

    @property
    def stats(self) -> LeasingStats:
        """A snapshot of the leasing client's counters."""
        ...

    @property
    def session_lease_id(self) -> int:
        """The session lease the leasing keys are attached to (0 while there is none)."""
        ...

    def close(self) -> None:
        """Give up every leasing key and end the session; the client underneath stays open."""
        ...


class LeasingKV(wrapt.BaseObjectProxy[LeasingBackend]):
    """A KV that serves the keys it owns from memory (see `leasing.wrap`).

    Watcher and Lease calls, `compact` and everything else reach the wrapped client as they
    are: keys need no translation here.
    """

    # wrapt's C proxy makes a subclass look every attribute up by calling a Python-level
    # __getattribute__; object's own lookup (wrapt's __getattr__ still forwards what it does
    # not find) costs a third, and a cache hit is a few such lookups (bench/bench_leasing.py).
    # The one difference: __doc__ and __module__ are LeasingKV's, as __class__ already is.
    __getattribute__ = object.__getattribute__

    # Forwarded as they are, and named so that Protocol checks see them on every Python (3.12+
    # look members up statically and never reach wrapt's forwarding __getattr__).
    compact = Forwarded()
    watch = Forwarded()
    request_progress = Forwarded()
    grant = Forwarded()
    revoke = Forwarded()
    time_to_live = Forwarded()
    leases = Forwarded()
    keep_alive_once = Forwarded()
    keep_alive = Forwarded()

    def __init__(
        self,
        backend: LeasingBackend,
        prefix: bytes,
        *,
        ttl: int,
        max_keys: int | None,
        timeout: float | None,
    ) -> None:
        super().__init__(backend)
        self._self_backend = backend  # the same object as __wrapped__, typed
        self._self_prefix = prefix
        self._self_cache = LeaseCache(max_keys)
        self._self_plain = self._self_cache.published.plain  # the lock-free reads of a hit
        self._self_view = self._self_cache.published.view
        self._self_ownership = Ownership(backend, self._self_cache, prefix, ttl)
        try:
            self._self_ownership.start(timeout)
        except BaseException:
            self._self_ownership.stop(revoke=True)
            raise

    @property  # type: ignore[misc]  # wrapt's __class__ can be assigned; ours cannot
    def __class__(self) -> type[Self]:
        # wrap() is typed LeasingClient, not as the client it wraps, so isinstance answers
        # the same: a LeasingKV, not the wrapped client's class (wrapt's default).
        return type(self)

    # --- lifecycle -----------------------------------------------------------------------

    @property
    def stats(self) -> LeasingStats:
        """A snapshot of this client's counters (hits, misses, acquisitions, revocations ...)."""
        return self._self_cache.stats()

    @property
    def session_lease_id(self) -> int:
        """The session lease our leasing keys are attached to (0 while there is none)."""
        return self._self_ownership.lease_id

    def close(self) -> None:
        """Give up every leasing key (by revoking the session lease) and stop caching.

        As clientv3's close function, this leaves the client underneath open (it was lent to
        the layer): later calls go to the server, and writes still revoke other owners first.
        Idempotent.
        """
        self._self_ownership.stop(revoke=True)

    def __enter__(self) -> Self:
        return self  # wrapt forwards __enter__, so `with` would hand out the inner client

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # --- KV ------------------------------------------------------------------------------

    # The KV calls, written once over do() (base.protocols.KV): do() serves them all.
    put, delete, txn = KV.put, KV.delete, KV.txn

    def _get_served(self, key: StrOrBytes, **options: object) -> GetResponse:
        # The fast path (bench/bench_leasing.py): a get of an owned key, with no option or
        # only serializable, keys_only and timeout, is one lock-free lookup of a published
        # answer, and builds no Op. Everything else (and a miss) goes through the funnel.
        raw = key if type(key) is bytes else key.encode() if type(key) is str else b""
        if not options:
            response = self._self_plain(raw)
            keys_only: bool | None = False
        else:
            keys_only = options_view(options)
            response = None if keys_only is None else self._self_view(raw, keys_only)
        if response is None and keys_only is not None and raw:
            response = self._self_cache.lookup(raw, keys_only)  # unpublished: under the lock
        if response is not None:
            return response
        return _KV_GET(self, key, **options)

    if TYPE_CHECKING:
        get = KV.get  # what callers are checked against: the Protocol's keywords
    else:
        get = _get_served

    @overload
    def do(self, op: GetOp, *, timeout: float | None = None) -> GetResponse: ...
    @overload
    def do(self, op: PutOp, *, timeout: float | None = None) -> PutResponse: ...
    @overload
    def do(self, op: DeleteOp, *, timeout: float | None = None) -> DeleteResponse: ...
    @overload
    def do(self, op: TxnOp, *, timeout: float | None = None) -> TxnResponse: ...
    @overload
    def do(self, op: Op, *, timeout: float | None = None) -> Response: ...
    def do(self, op: Op, *, timeout: float | None = None) -> Response:
        if timeout is not None:
            timeout = check_timeout(timeout)
        if type(op) is GetOp and (keys_only := op_view(op)) is not None:
            # The shared answers first, as in get(): published, else under the lock.
            response = self._self_view(op.key, keys_only)
            if response is None:
                response = self._self_cache.lookup(op.key, keys_only)
            if response is not None:
                return response
        if isinstance(op, GetOp):
            return self._get(op, timeout)
        if isinstance(op, TxnOp):
            return self._txn(op, timeout)
        if isinstance(op, (PutOp, DeleteOp)):
            return self._write(op, timeout)
        raise TypeError(f"op must be an Op built by Op.get/put/delete/txn, not {type(op).__name__}")

    # --- reads ---------------------------------------------------------------------------

    def _get(self, op: GetOp, timeout: float | None) -> GetResponse:
        deadline = Deadline(timeout)
        cache = self._self_cache
        if not answerable(op):  # ranges, past revisions and counts are the server's
            cache.count_miss()
            return _expect(self._send(op, deadline), GetResponse)
        found, answer = cache.answer(op)
        if answer is not None:
            return answer
        # A serializable read of a key we do not own skips acquiring, as clientv3 does: it
        # asked not to wait for a quorum, and acquiring is a write.
        if found is Lookup.HELD or op.serializable:
            return _expect(self._send(op, deadline), GetResponse)
        lease_id = cache.may_acquire(op.key)
        if not lease_id:
            return _expect(self._send(op, deadline), GetResponse)
        acquired = self._acquire(op.key, lease_id, deadline)
        return answer_get(op, acquired.kv, acquired.response.header)

    def _acquire(self, key: bytes, lease_id: int, deadline: Deadline) -> Acquired:
        cache = self._self_cache
        try:
            acquired = self._drive(acquire(self._self_prefix, key, lease_id), deadline)
        except LeaseNotFoundError:
            self._self_ownership.lost(lease_id)
            acquired = self._probe(key, 0, deadline)
        except UnavailableError:
            # The acquire txn writes, so the client never sends it twice: it may or may not
            # have applied. A read tells what the key is and whether we hold it after all.
            acquired = self._probe(key, lease_id, deadline)
        if acquired.acquired:
            cache.add(key, acquired, lease_id)  # refused means released, and answered anyway
        elif acquired.held:
            cache.release_unless_cached(key, acquired.incarnation)
        return acquired

    def _probe(self, key: bytes, lease_id: int, deadline: Deadline) -> Acquired:
        read_key, read_holder = probe_ops(self._self_prefix, key)
        got = _expect(self._send(read_key, deadline), GetResponse)
        holder = _expect(self._send(read_holder, deadline), GetResponse)
        return read_probe(got, holder, lease_id)

    def _txn(self, op: TxnOp, timeout: float | None) -> TxnResponse:
        cache = self._self_cache
        keys = txn_keys(op)
        snapshot = cache.snapshot(keys) if keys else None
        if snapshot is not None:
            answer = evaluate_txn(op, *snapshot)
            if answer is not None:
                cache.count_hit()
                return answer
        if op.is_write:
            return _expect(self._write(op, timeout), TxnResponse)
        cache.count_miss()
        return _expect(self._send(op, Deadline(timeout)), TxnResponse)

    # --- writes --------------------------------------------------------------------------

    def _write(self, op: PutOp | DeleteOp | TxnOp, timeout: float | None) -> Response:
        deadline = Deadline(timeout)
        cache = self._self_cache
        keys, ranges = written_keys(op)
        ticket = cache.begin_writes(keys, ranges)
        flow = guarded_write(self._self_prefix, ticket.lease_id, op, ticket.owned, ticket.refresh)
        try:
            written = self._drive(flow, deadline)
        except BaseException:
            # The write's outcome is unknown: the keys it covered are dropped and given back
            # rather than guessed (clientv3 would send it again instead).
            cache.end_writes(ticket, None)
            raise
        cache.end_writes(ticket, written)
        return written.response

    # --- driving flows -------------------------------------------------------------------

    def _send(self, op: Op, deadline: Deadline) -> Response:
        response = self._self_backend.do(op, timeout=deadline.remaining())
        self._self_cache.raise_floor(response.header.revision)
        return response

    def _drive(self, flow: Flow[_T], deadline: Deadline) -> _T:
        try:
            step = next(flow)
            while True:
                if isinstance(step, WaitForDeletes):
                    for key in sorted(step.keys):
                        self._wait_deleted(key, step.revision, deadline)
                    step = flow.send(None)
                else:
                    step = flow.send(self._send(step, deadline))
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]  # the flow's declared result

    def _wait_deleted(self, key: bytes, revision: int, deadline: Deadline) -> None:
        """Return once `key` was deleted after `revision` (or its history is compacted)."""
        wait_deleted(self._self_backend, key, revision, deadline)  # compacted: looked at again


def _expect(response: Response, kind: type[_R]) -> _R:
    if not isinstance(response, kind):
        raise TypeError(f"expected a {kind.__name__}, got a {type(response).__name__}")
    return response
