"""Profile: the CPU instructions of each call's own work, counted by valgrind's callgrind.

Run: .venv/bin/python bench/bench_instructions.py [--calls N] [--only NAME,...]

Wall-clock ratios on a shared machine swing by several percent; instruction counts do not.
Each case runs in a child process under `valgrind --tool=callgrind`, once with 0 calls and
once with N, and the difference over N is the instructions of one call. The clients run over
the public transport seam (`etcd_layers.base.transport.client_over`) on a channel that answers
every unary call at once with a recorded, serialized etcd response: what is counted is all the
client's own work (argument checks, the request's serialization, the retry loop's first attempt,
the response's parsing and conversion), and none of gRPC's or the server's.

For scale, the same count for a real get on loopback (the raw grpcio floor, registered
method, pre-serialized request, no decoding) was about 242k instructions on this machine: see
the closing note of issue 19. Needs valgrind (Debian's `valgrind` package).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable
from typing import Any

CASES = [
    "get",
    "get, value read",
    "put",
    "delete",
    "txn 3 compares + 3 gets",
    "1000 keys, every key and value read",
    "floor: 1000 keys parsed, every key and value read",
    "floor: a get's response parsed",
]


def _recorded() -> dict[str, bytes]:
    """The serialized answers, by method path."""
    from etcd_layers.base.transport import rpc_pb2

    header = rpc_pb2.ResponseHeader(cluster_id=1, member_id=2, revision=3, raft_term=4)
    one = rpc_pb2.RangeResponse(header=header, count=1)
    one.kvs.add(key=b"bench/one", value=b"x" * 100, create_revision=2, mod_revision=3, version=1)
    many = rpc_pb2.RangeResponse(header=header, count=1000)
    for i in range(1000):
        many.kvs.add(key=b"bench/many/%04d" % i, value=b"v" * 100, create_revision=i + 1)
    txn = rpc_pb2.TxnResponse(header=header, succeeded=True)
    for name in "abc":
        answer = txn.responses.add().response_range
        answer.kvs.add(key=f"bench/txn/{name}".encode(), value=name.encode() * 10, version=1)
        answer.count = 1
    return {
        "/etcdserverpb.KV/Range": one.SerializeToString(),
        "/etcdserverpb.KV/Range many": many.SerializeToString(),
        "/etcdserverpb.KV/Put": rpc_pb2.PutResponse(header=header).SerializeToString(),
        "/etcdserverpb.KV/DeleteRange": rpc_pb2.DeleteRangeResponse(
            header=header
        ).SerializeToString(),
        "/etcdserverpb.KV/Txn": txn.SerializeToString(),
    }


class _Channel:
    """What the client uses of a grpc.Channel: unary calls answered at once from a recording."""

    def __init__(self, answers: dict[str, bytes]) -> None:
        self.answers = answers
        self.many = False  # a range answers the 1000-key recording

    def unary_unary(
        self, path: str, request_serializer: Any = None, response_deserializer: Any = None, **_: Any
    ) -> Callable[..., Any]:
        parse = response_deserializer or (lambda data: data)

        def call(data: bytes, timeout: float | None = None, metadata: Any = None) -> Any:
            key = path + " many" if self.many and path.endswith("/Range") else path
            return parse(self.answers[key])

        return call

    def close(self) -> None:
        """Nothing to close."""


def _case(name: str) -> Callable[[], object]:
    """Build the client and return the call that case `name` counts."""
    from etcd_layers import Client, Compare, Op
    from etcd_layers.base.transport import client_over, rpc_pb2

    answers = _recorded()
    channel = _Channel(answers)
    cli = client_over(Client, lambda address: channel, "instant:1")
    keys = [f"bench/txn/{n}" for n in "abc"]
    many = answers["/etcdserverpb.KV/Range many"]
    one = answers["/etcdserverpb.KV/Range"]
    parse = rpc_pb2.RangeResponse.FromString

    def read_all() -> int:
        return sum(len(kv.key) + len(kv.value) for kv in cli.get("bench/many/", prefix=True).kvs)

    if name == "1000 keys, every key and value read":
        channel.many = True
    return {
        "get": lambda: cli.get("bench/one"),
        "get, value read": lambda: cli.get("bench/one").kvs[0].value,
        "put": lambda: cli.put("bench/put", b"x" * 100),
        "delete": lambda: cli.delete("bench/absent"),
        "txn 3 compares + 3 gets": lambda: cli.txn(
            compare=[Compare.value(k) == k[-1] * 10 for k in keys],
            success=[Op.get(k) for k in keys],
        ),
        "1000 keys, every key and value read": read_all,
        "floor: 1000 keys parsed, every key and value read": lambda: sum(
            len(kv.key) + len(kv.value) for kv in parse(many).kvs
        ),
        "floor: a get's response parsed": lambda: parse(one),
    }[name]


def _child(name: str, calls: int) -> None:
    call = _case(name)
    for _ in range(calls):
        call()


def _count(name: str, calls: int) -> int:
    """Instructions callgrind counts for a child running `calls` calls of case `name`."""
    result = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            __file__,
            "--child",
            name,
            "--calls",
            str(calls),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    for line in result.stderr.splitlines():
        if "Collected" in line:
            return int(line.split()[-1])
    raise RuntimeError(f"no instruction count in callgrind's output:\n{result.stderr}")


def main() -> None:
    """Count each case and print instructions per call."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--only", help="comma-separated case names")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.calls)
        return
    names = CASES if not args.only else [n.strip() for n in args.only.split(",")]
    print(f"{'case':52} {'instructions per call':>22}")
    for name in names:
        calls = args.calls if "1000" not in name else max(1, args.calls // 50)
        per_call = (_count(name, calls) - _count(name, 0)) / calls
        print(f"{name:52} {per_call:22,.0f}")


if __name__ == "__main__":
    main()
