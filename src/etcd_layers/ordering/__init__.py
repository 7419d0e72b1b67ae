"""Revision ordering: a KV layer that never lets a response go back to an older store revision.

In a cluster, a member that was partitioned or restarted can lag behind the others, and a
serializable read it serves (or a read-only txn) reflects an older revision than one this
client already saw. Wrap the client, or any KV such as a namespace or leasing wrapper, and
every response is checked against the highest revision seen so far through that wrapper:

>>> from etcd_layers import Client, Compare, Op, errors, ordering
>>> cli = Client(endpoints=["127.0.0.1:2379"])
>>> kv = ordering.wrap(cli)  # the policy on a violation: ordering.switch_endpoints(cli)
>>> put = kv.put("/ordering-example/mode", "fast")
>>> kv.get("/ordering-example/mode", serializable=True).kvs[0].value
b'fast'
>>> kv.get("/ordering-example/mode").header.revision >= put.header.revision
True

A stale response to a read (get, a txn without writes, or `do` of either) is a violation:
`on_violation(op, response, prev_revision)` is called, and the request is sent again when it
returns. The default policy, `switch_endpoints(cli)`, moves the client on to its next endpoint
each time, and raises `errors.NoGreaterRevisionError` when a call has had
`5 * len(cli.endpoints)` stale responses. A policy of your own decides otherwise:

>>> def refuse(op, response, prev_revision):
...     raise errors.OrderViolationError(
...         f"revision {response.header.revision} < {prev_revision}", response, prev_revision
...     )
>>> strict = ordering.wrap(cli, on_violation=refuse)
>>> strict.txn(
...     [Compare.value("/ordering-example/mode") == "fast"],
...     [Op.get("/ordering-example/mode")],
... ).succeeded
True

A request that may write (put, delete, a txn with a write in either branch, at any depth) is
never sent twice: a stale response to one raises `errors.OrderViolationError`, carrying the
response and `prev_revision`, without asking the policy. Unlike Go's `clientv3/ordering`,
which checks only Get and Txn, the wrapper also learns from put and delete responses, so a
stale read after one's own write is caught too. Watch responses are not checked: they are
forwarded with `compact`, the lease calls, `close`, `endpoints` and everything else.

Over an AsyncClient, or any async layer, `ordering.wrap` returns an `AsyncOrderingKV`: the
same checks around awaited calls, with `on_violation` a plain or an async callable (what it
returns is awaited), and `switch_endpoints(acli)` as its default policy. Each task has its
own violation count.

Layers stack; put ordering outermost, so that it sees what the layers below return. Leaving
a `with` block closes the client underneath:

>>> from etcd_layers import namespace
>>> with ordering.wrap(namespace.wrap(cli, "/ordering-example/")) as tenant:
...     tenant.get("mode").kvs[0].key
b'mode'
"""

from __future__ import annotations

import inspect
from typing import TypeVar, cast, overload

from etcd_layers.base.ops import Op
from etcd_layers.base.protocols import KV, AsyncKV
from etcd_layers.base.responses import Response
from etcd_layers.errors import NoGreaterRevisionError
from etcd_layers.ordering._async_proxy import AsyncOrderingKV
from etcd_layers.ordering._floor import RevisionFloor
from etcd_layers.ordering._proxy import OnViolation, OrderingKV, call_violations

__all__ = [
    "AsyncOrderingKV",
    "OnViolation",
    "OrderingKV",
    "RevisionFloor",
    "switch_endpoints",
    "wrap",
]

KVT = TypeVar("KVT", bound=KV)
AsyncKVT = TypeVar("AsyncKVT", bound=AsyncKV)

# Rounds over the endpoints before giving up, as Go's NewOrderViolationSwitchEndpointClosure.
_ROUNDS = 5


@overload
def wrap(kv: AsyncKVT, on_violation: OnViolation | None = None) -> AsyncKVT: ...
@overload
def wrap(kv: KVT, on_violation: OnViolation | None = None) -> KVT: ...
def wrap(kv: KV | AsyncKV, on_violation: OnViolation | None = None) -> KV | AsyncKV:
    """Return `kv` checked for revision order.

    Args:
        kv: a client, or any object speaking the KV Protocol (responses need only
            `header.revision`). An AsyncClient or async layer (an AsyncKV, whose calls are
            coroutine functions) gets an `AsyncOrderingKV`, which awaits them.
        on_violation: called as `on_violation(op, response, prev_revision)` when a read's
            response is older than the highest revision seen; returning sends the request
            again, raising fails the call with that exception. None: `switch_endpoints(kv)`.
            Over an AsyncKV it may also be an async callable (what it returns is awaited).

    Returns:
        The wrapper, typed as what it wraps (any KV): it keeps every KV signature and forwards
        everything else (`close`, `endpoints`, `with`, watches, leases). As for every layer's
        `wrap`, `isinstance` answers what the type says: the result is an instance of the
        wrapped object's class (and of `OrderingKV`), and speaks the Protocols it speaks.
        `namespace.wrap` and `leasing.wrap` are typed as Protocols instead (a namespace refuses
        what it cannot translate, leasing adds `stats`), so they are not instances of the class
        they wrap; this one refuses and adds nothing.

    Raises:
        TypeError: `kv` speaks neither the KV nor the AsyncKV Protocol, `on_violation` is not
            callable, or it is a coroutine function and `kv` is sync (nothing would await it).
    """
    speaks_async = isinstance(kv, AsyncKV)
    if not speaks_async and not isinstance(kv, KV):
        raise TypeError(f"kv must speak the KV Protocol, not {type(kv).__name__}")
    if on_violation is None:
        # A KV without endpoints (a test double, say) still gets the retry limit, of one round.
        on_violation = _SwitchEndpoints(kv)
    elif not callable(on_violation):
        raise TypeError(f"on_violation must be callable, not {type(on_violation).__name__}")
    elif not speaks_async and inspect.iscoroutinefunction(on_violation):
        raise TypeError("an async on_violation needs an async kv: a sync one would not await it")
    if speaks_async:
        return AsyncOrderingKV(cast(AsyncKV, kv), on_violation)  # a transparent proxy
    return OrderingKV(cast(KV, kv), on_violation)  # a transparent proxy: see Returns


def switch_endpoints(cli: object) -> OnViolation:
    """Return the policy that moves `cli` to another endpoint on each violation.

    Each violation pins the client's unary requests to its next endpoint (`switch_endpoint()`,
    which leaves the order of `cli.endpoints` alone; a client without it is rotated with
    `set_endpoints`, which does reorder it). The client then stays there, no longer balancing,
    until the next switch or a `set_endpoints` without that address. Go's closure relies on the
    round-robin balancer instead, so its retry may land on the same stale member again.

    The call fails with `NoGreaterRevisionError` once it has had `5 * len(cli.endpoints)` stale
    responses: five rounds of every endpoint, without pausing, as in Go. The count is per
    call: Go's closure counts violations over its whole life, so once that many have happened,
    spread over any number of calls and days, every later violation fails at once. Go also
    tests `> 5*len` before counting, failing on the (5N+2)-th; we fail on the 5N-th.

    Args:
        cli: the client, or any wrapper over it (wrappers forward `endpoints` and
            `switch_endpoint`).

    Raises:
        TypeError: `cli` has no `endpoints`.
    """
    if getattr(cli, "endpoints", None) is None:
        raise TypeError(f"switch_endpoints needs a client with endpoints, got {type(cli).__name__}")
    return _SwitchEndpoints(cli)


class _SwitchEndpoints:
    """The `switch_endpoints` policy; holds nothing but the client, so it is thread safe."""

    __slots__ = ("_client",)

    def __init__(self, client: object) -> None:
        self._client = client

    def __call__(self, op: Op, response: Response, prev_revision: int) -> object:
        endpoints: list[str] = list(getattr(self._client, "endpoints", None) or ())
        limit = _ROUNDS * max(len(endpoints), 1)
        # Outside an ordering wrapper nobody counts: each call is then the first violation.
        if max(call_violations(), 1) >= limit:
            raise NoGreaterRevisionError(
                f"no endpoint of {endpoints} answered with a revision of at least "
                f"{prev_revision} in {limit} attempts (last: {response.header.revision})",
                response,
                prev_revision,
            )
        # What the client's call returns is returned: an AsyncClient's `set_endpoints` is a
        # coroutine, which AsyncOrderingKV awaits (a sync client's calls return None).
        switch = getattr(self._client, "switch_endpoint", None)
        if callable(switch):
            return switch()
        set_endpoints = getattr(self._client, "set_endpoints", None)
        if callable(set_endpoints) and len(endpoints) > 1:
            # visible, but all such a client offers
            return set_endpoints(*endpoints[1:], endpoints[0])
        return None

    def __repr__(self) -> str:
        return f"switch_endpoints({self._client!r})"
