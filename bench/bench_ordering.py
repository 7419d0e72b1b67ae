"""Benchmark: what the ordering layer adds to each get, put and txn over the plain client.

Run: .venv/bin/python bench/bench_ordering.py [--rounds N] [--calls N] [--layer-only]

Starts its own one-member etcd (etcd_layers.testing) and talks to the member directly, not
through the fault proxy. In one run, each case calls the plain Client and `ordering.wrap(cli)`
alternately, one call each, on the same keys (the order flips every round so that neither side
always goes first), and reports the medians. Target: the layer adds at most 5% of the raw call,
or 3 microseconds, whichever is larger.

A second table runs the same calls over a Client whose transport answers at once, with no I/O:
that is the layer's own cost in microseconds (building the Op, the revision check, the floor;
issue 19's target: at most 2 us per get, put and txn). The txn of 3 compares and 3 ops is built
per call, as a user would. Its last row is a get whose inner KV answers from memory at once, as
a leasing cache hit does: what ordering adds on top of `leasing.wrap(...)`. `--layer-only` runs
only that table, with no etcd.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

from etcd_layers import Client, Compare, Op, ordering
from etcd_layers.base import (
    KV,
    GetOp,
    GetResponse,
    KeyValue,
    PutOp,
    PutResponse,
    ResponseHeader,
    TxnOp,
    TxnResponse,
)
from etcd_layers.base.keys import StrOrBytes
from etcd_layers.testing import EtcdServer

KEY = b"/bench/ordering/k"
VALUE = b"v" * 100

Pair = tuple[Callable[[], object], Callable[[], object]]


def interleave(cases: dict[str, Pair], rounds: int, calls: int) -> dict[str, tuple[float, float]]:
    """Return {case: (raw median, wrapped median)} in seconds, raw and wrapped calls alternating."""
    now = time.perf_counter
    raw_samples: dict[str, list[float]] = {case: [] for case in cases}
    wrapped_samples: dict[str, list[float]] = {case: [] for case in cases}
    for raw, wrapped in cases.values():  # warm channels, caches and code paths first
        for _ in range(max(20, calls // 10)):
            raw()
            wrapped()
    for round_ in range(rounds):
        raw_first = round_ % 2 == 0
        for case, (raw, wrapped) in cases.items():
            first, second = (raw, wrapped) if raw_first else (wrapped, raw)
            for _ in range(calls):
                t0 = now()
                first()
                t1 = now()
                second()
                t2 = now()
                first_time, second_time = t1 - t0, t2 - t1
                raw_samples[case].append(first_time if raw_first else second_time)
                wrapped_samples[case].append(second_time if raw_first else first_time)
    return {
        case: (statistics.median(raw_samples[case]), statistics.median(wrapped_samples[case]))
        for case in cases
    }


def txn_3_3(kv: KV) -> object:
    """Issue 19's txn: 3 compares and 3 gets, built per call as a user would."""
    return kv.txn(
        compare=[
            Compare.value(KEY) == VALUE,
            Compare.version(KEY) > 0,
            Compare.mod_revision(KEY) < 1_000_000,
        ],
        success=[Op.get(KEY), Op.get(KEY), Op.get(KEY)],
        failure=[],
    )


def kv_cases(raw: KV, wrapped: KV) -> dict[str, Pair]:
    """The calls measured, each as (plain, through the layer)."""
    holds = [Compare.value(KEY) == VALUE]
    read: list[Op] = [Op.get(KEY)]
    write: list[Op] = [Op.put(KEY, VALUE), Op.get(KEY)]
    return {
        "get": (lambda: raw.get(KEY), lambda: wrapped.get(KEY)),
        "get serializable": (
            lambda: raw.get(KEY, serializable=True),
            lambda: wrapped.get(KEY, serializable=True),
        ),
        "put": (lambda: raw.put(KEY, VALUE), lambda: wrapped.put(KEY, VALUE)),
        "txn (compare, get)": (lambda: raw.txn(holds, read), lambda: wrapped.txn(holds, read)),
        "txn (compare, put, get)": (
            lambda: raw.txn(holds, write),
            lambda: wrapped.txn(holds, write),
        ),
        "txn 3 compares + 3 gets": (lambda: txn_3_3(raw), lambda: txn_3_3(wrapped)),
    }


class InstantClient(Client):
    """A Client whose transport answers at once with canned responses: all its work but I/O."""

    def __init__(self) -> None:  # connects to nothing
        header = ResponseHeader(cluster_id=1, member_id=2, revision=3, raft_term=4)
        kv = KeyValue(KEY, VALUE, create_revision=1, mod_revision=3, version=2)
        self._get_answer = GetResponse(header, [kv], count=1)
        self._put_answer = PutResponse(header)
        self._txn_answer = TxnResponse(header, True, [GetResponse(header, [kv], count=1)] * 3)

    def _get(self, op: GetOp, timeout: float | None) -> GetResponse:
        return self._get_answer

    def _put(self, op: PutOp, timeout: float | None) -> PutResponse:
        return self._put_answer

    def _txn(self, op: TxnOp, timeout: float | None) -> TxnResponse:
        return self._txn_answer


class CachedKV(InstantClient):
    """An InstantClient whose plain get answers from memory at once, as a leasing cache hit."""

    def _get_cached(self, key: StrOrBytes, **options: Any) -> GetResponse:
        return self._get_answer if not options else KV.get(self, key, **options)

    get = _get_cached


def verdict(raw: float, wrapped: float, floor: float = 3e-6) -> str:
    """One table row's numbers and whether the overhead is within max(5%, `floor`)."""
    overhead, allowed = wrapped - raw, max(0.05 * raw, floor)
    return (
        f"{raw * 1e6:10.1f} {wrapped * 1e6:10.1f} {overhead * 1e6:+9.2f} {wrapped / raw:7.3f}"
        f" {allowed * 1e6:8.1f}  {'ok' if overhead <= allowed else 'OVER'}"
    )


def main() -> None:
    """Start etcd, measure both tables, print them."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=10, help="rounds over every case")
    parser.add_argument("--calls", type=int, default=200, help="call pairs per case and round")
    parser.add_argument("--layer-only", action="store_true", help="only the no-I/O table")
    args = parser.parse_args()
    columns = (
        f"{'case':24} {'raw us':>10} {'wrapped us':>10} {'delta us':>9} {'ratio':>7}"
        f" {'limit us':>8}  verdict"
    )
    if not args.layer_only:
        with EtcdServer() as server, Client([server.member.direct_endpoint]) as cli:
            cli.put(KEY, VALUE)
            real = interleave(kv_cases(cli, ordering.wrap(cli)), args.rounds, args.calls)
        print(f"Against a real etcd: median of {args.rounds * args.calls} interleaved calls each")
        print(columns)
        for case, (raw, wrapped) in real.items():
            print(f"{case:24} {verdict(raw, wrapped)}")
        print()
    instant, cached = InstantClient(), CachedKV()
    cases = kv_cases(instant, ordering.wrap(instant))
    over_cache = ordering.wrap(cached)
    cases["get, a cache hit below"] = (lambda: cached.get(KEY), lambda: over_cache.get(KEY))
    no_io = interleave(cases, args.rounds, args.calls * 10)
    print("The layer alone, over a Client that answers without I/O (limit: 2 us):")
    print(columns)
    for case, (raw, wrapped) in no_io.items():
        print(f"{case:24} {verdict(raw, wrapped, 2e-6)}")


if __name__ == "__main__":
    main()
