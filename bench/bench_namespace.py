"""Benchmark: the per-operation overhead of the namespace layer over the plain client.

Run: .venv/bin/python bench/bench_namespace.py [--rounds N] [--calls N] [--layer-only]

Starts its own etcd (etcd_layers.testing) and talks to the member directly (not through the
fault proxy). Measures, in one run and interleaved (raw and wrapped calls alternate one by
one, and which goes first flips every round), the median latency of get, put, txn and
watch-event delivery through the plain Client and through `namespace.wrap(client, prefix)`
on the very same server keys, and prints the ratios. Target: the layer adds at most 5% or
3 microseconds, whichever is larger.

A second table measures the layer alone, over a Client whose transport answers at once (no
I/O) with recorded responses of the right shape: the cost of translating the request and the
response, in microseconds (issue 19's target: at most 2 us per get, put and txn). The txn of
3 compares and 3 ops is built per call, as a user would. `--layer-only` runs only that table,
with no etcd.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from etcd_layers import Client, Compare, Op, namespace
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
    Watch,
)
from etcd_layers.testing import EtcdServer

PREFIX = b"/bench/namespace/"
VALUE = b"x" * 100


def _interleaved(
    pairs: dict[str, tuple[Callable[[], object], Callable[[], object]]], rounds: int, calls: int
) -> dict[str, tuple[float, float]]:
    """Return {case: (raw median, wrapped median)} in seconds.

    Raw and wrapped calls alternate one by one, so that both meet the same load on a shared
    machine, and which of the two goes first flips every round.
    """
    clock = time.perf_counter
    samples: dict[str, tuple[list[float], list[float]]] = {case: ([], []) for case in pairs}
    for raw, wrapped in pairs.values():  # warm up every path
        for _ in range(max(10, calls // 10)):
            raw()
            wrapped()
    for round_ in range(rounds):
        for case, (raw, wrapped) in pairs.items():
            first, second = (raw, wrapped) if round_ % 2 == 0 else (wrapped, raw)
            first_samples, second_samples = samples[case]
            if round_ % 2:
                first_samples, second_samples = second_samples, first_samples
            for _ in range(calls):
                started = clock()
                first()
                middle = clock()
                second()
                first_samples.append(middle - started)
                second_samples.append(clock() - middle)
    return {
        case: (statistics.median(raw), statistics.median(wrapped))
        for case, (raw, wrapped) in samples.items()
    }


def _watch_delivery(cli: Client, watch: Watch, key: bytes) -> Callable[[], object]:
    """One write by the plain client and the wait for its event on `watch`."""

    def deliver() -> object:
        cli.put(key, VALUE)
        return watch.next(timeout=5.0)

    return deliver


class _InstantClient(Client):
    """The Client with its transport replaced by canned answers: all of its work but the I/O.

    A txn is answered with one recorded response per op of its success branch, in order.
    """

    def __init__(self) -> None:  # connects nowhere
        header = ResponseHeader(1, 2, 3, 4)
        kv = KeyValue(PREFIX + b"k", VALUE, 1, 2, 1, 0)
        self._get_answer = GetResponse(header, [kv], 1)
        self._put_answer = PutResponse(header, None)
        self._txn_answers = {
            size: TxnResponse(header, True, [GetResponse(header, [kv], 1)] * size)
            for size in range(4)
        }
        self._txn_answers[2] = TxnResponse(header, True, [PutResponse(header), self._get_answer])

    def _get(self, op: GetOp, timeout: float | None) -> GetResponse:
        return self._get_answer

    def _put(self, op: PutOp, timeout: float | None) -> PutResponse:
        return self._put_answer

    def _txn(self, op: TxnOp, timeout: float | None) -> TxnResponse:
        return self._txn_answers[len(op.success)]


def _txn_3_3(kv: KV, key: bytes) -> object:
    """Issue 19's txn: 3 compares and 3 gets, built per call as a user would."""
    return kv.txn(
        compare=[
            Compare.value(key) == VALUE,
            Compare.version(key) > 0,
            Compare.mod_revision(key) < 1_000_000,
        ],
        success=[Op.get(key), Op.get(key), Op.get(key)],
        failure=[],
    )


def _layer_alone(rounds: int, calls: int) -> dict[str, tuple[float, float]]:
    """The second table: the same calls over `_InstantClient`, plain and through the layer."""
    instant = _InstantClient()
    over_instant = namespace.wrap_kv(instant, PREFIX)
    raw_key, key = PREFIX + b"k", b"k"
    return _interleaved(
        {
            "get": (lambda: instant.get(raw_key), lambda: over_instant.get(key)),
            "get serializable": (
                lambda: instant.get(raw_key, serializable=True),
                lambda: over_instant.get(key, serializable=True),
            ),
            "put": (lambda: instant.put(raw_key, VALUE), lambda: over_instant.put(key, VALUE)),
            "txn (compare, put, get)": (
                lambda: instant.txn(
                    [Compare.value(raw_key) == VALUE],
                    [Op.put(raw_key, VALUE), Op.get(raw_key)],
                ),
                lambda: over_instant.txn(
                    [Compare.value(key) == VALUE], [Op.put(key, VALUE), Op.get(key)]
                ),
            ),
            "txn 3 compares + 3 gets": (
                lambda: _txn_3_3(instant, raw_key),
                lambda: _txn_3_3(over_instant, key),
            ),
        },
        rounds,
        calls,
    )


def _row(case: str, raw: float, wrapped: float) -> str:
    overhead = wrapped - raw
    allowed = max(0.05 * raw, 3e-6)
    verdict = "ok" if overhead <= allowed else "OVER"
    return (
        f"{case:24} {raw * 1e6:10.1f} {wrapped * 1e6:10.1f} {overhead * 1e6:+9.1f}"
        f" {wrapped / raw:7.3f} {allowed * 1e6:8.1f}  {verdict}"
    )


def main() -> None:
    """Run the benchmark and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--layer-only", action="store_true", help="only the no-I/O table")
    args = parser.parse_args()
    if not args.layer_only:
        medians = _against_etcd(args.rounds, args.calls)
        header = (
            f"{'case':24} {'raw us':>10} {'wrapped us':>10} {'delta us':>9} {'ratio':>7}"
            f" {'limit us':>8}  verdict"
        )
        print("Against a real etcd (median per operation; limit = max(5%, 3 us)):")
        print(header)
        for case, (raw, wrapped) in medians.items():
            print(_row(case, raw, wrapped))
        print()
    no_io = _layer_alone(args.rounds, args.calls * 10)
    print("The layer alone: the same calls on a Client whose transport answers at once (no I/O):")
    print(f"{'case':24} {'raw us':>10} {'wrapped us':>10} {'delta us':>9} {'ratio':>7}")
    for case, (raw, wrapped) in no_io.items():
        print(
            f"{case:24} {raw * 1e6:10.2f} {wrapped * 1e6:10.2f} {(wrapped - raw) * 1e6:+9.2f}"
            f" {wrapped / raw:7.2f}"
        )


def _against_etcd(rounds: int, calls: int) -> dict[str, tuple[float, float]]:
    """The first table: get, put, txn and watch delivery on a real etcd, plain and wrapped."""
    with EtcdServer() as server, Client([server.member.direct_endpoint]) as cli:
        ns = namespace.wrap(cli, PREFIX)
        cli.put(PREFIX + b"k", VALUE)
        raw_key, key = PREFIX + b"k", b"k"
        with (
            cli.watch(PREFIX + b"w/raw") as raw_watch,
            ns.watch(b"w/ns") as ns_watch,
        ):
            return _interleaved(
                {
                    "get": (lambda: cli.get(raw_key), lambda: ns.get(key)),
                    "put": (lambda: cli.put(raw_key, VALUE), lambda: ns.put(key, VALUE)),
                    "txn (compare, put, get)": (
                        lambda: cli.txn(
                            [Compare.value(raw_key) == VALUE],
                            [Op.put(raw_key, VALUE), Op.get(raw_key)],
                        ),
                        lambda: ns.txn(
                            [Compare.value(key) == VALUE], [Op.put(key, VALUE), Op.get(key)]
                        ),
                    ),
                    "txn 3 compares + 3 gets": (
                        lambda: _txn_3_3(cli, raw_key),
                        lambda: _txn_3_3(ns, key),
                    ),
                    "watch event delivery": (
                        _watch_delivery(cli, raw_watch, PREFIX + b"w/raw"),
                        _watch_delivery(cli, ns_watch, PREFIX + b"w/ns"),
                    ),
                },
                rounds,
                calls,
            )


if __name__ == "__main__":
    main()
