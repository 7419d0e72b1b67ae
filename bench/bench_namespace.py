"""Benchmark: the per-operation overhead of the namespace layer over the plain client.

Run: .venv/bin/python bench/bench_namespace.py [--rounds N] [--calls N]

Starts its own etcd (etcd_layers.testing) and talks to the member directly (not through the
fault proxy). Measures, in one run and interleaved (raw and wrapped calls alternate one by
one, and which goes first flips every round), the median latency of get, put, txn and
watch-event delivery through the plain Client and through `namespace.wrap(client, prefix)`
on the very same server keys, and prints the ratios. Target: the layer adds at most 5% or
3 microseconds, whichever is larger.

A second table measures the layer alone, over a Client whose transport answers at once (no
I/O): the cost of translating the request and the response, in microseconds.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from etcd_layers import Client, Compare, Op, namespace
from etcd_layers.base import (
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
    """The Client with its transport replaced by canned answers: all of its work but the I/O."""

    def __init__(self) -> None:  # connects nowhere
        header = ResponseHeader(1, 2, 3, 4)
        kv = KeyValue(PREFIX + b"k", VALUE, 1, 2, 1, 0)
        self._get_answer = GetResponse(header, [kv], 1)
        self._put_answer = PutResponse(header, None)
        self._txn_answer = TxnResponse(
            header, True, [PutResponse(header), GetResponse(header, [kv], 1)]
        )

    def _get(self, op: GetOp, timeout: float | None) -> GetResponse:
        return self._get_answer

    def _put(self, op: PutOp, timeout: float | None) -> PutResponse:
        return self._put_answer

    def _txn(self, op: TxnOp, timeout: float | None) -> TxnResponse:
        return self._txn_answer


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
    args = parser.parse_args()
    with EtcdServer() as server, Client([server.member.direct_endpoint]) as cli:
        ns = namespace.wrap(cli, PREFIX)
        cli.put(PREFIX + b"k", VALUE)
        raw_key, key = PREFIX + b"k", b"k"
        with (
            cli.watch(PREFIX + b"w/raw") as raw_watch,
            ns.watch(b"w/ns") as ns_watch,
        ):
            medians = _interleaved(
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
                    "watch event delivery": (
                        _watch_delivery(cli, raw_watch, PREFIX + b"w/raw"),
                        _watch_delivery(cli, ns_watch, PREFIX + b"w/ns"),
                    ),
                },
                args.rounds,
                args.calls,
            )
        instant = _InstantClient()
        over_instant = namespace.wrap_kv(instant, PREFIX)
        no_io = _interleaved(
            {
                "get": (lambda: instant.get(raw_key), lambda: over_instant.get(key)),
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
            },
            args.rounds,
            args.calls * 10,
        )

    header = (
        f"{'case':24} {'raw us':>10} {'wrapped us':>10} {'delta us':>9} {'ratio':>7}"
        f" {'limit us':>8}  verdict"
    )
    print("Against a real etcd (median per operation; limit = max(5%, 3 us)):")
    print(header)
    for case, (raw, wrapped) in medians.items():
        print(_row(case, raw, wrapped))
    print("\nThe layer alone: the same calls on a Client whose transport answers at once (no I/O):")
    print(f"{'case':24} {'raw us':>10} {'wrapped us':>10} {'delta us':>9} {'ratio':>7}")
    for case, (raw, wrapped) in no_io.items():
        print(
            f"{case:24} {raw * 1e6:10.2f} {wrapped * 1e6:10.2f} {(wrapped - raw) * 1e6:+9.2f}"
            f" {wrapped / raw:7.2f}"
        )


if __name__ == "__main__":
    main()
