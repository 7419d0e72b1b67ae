"""Benchmark: our clients against the other Python etcd v3 clients and the raw grpcio floor.

Run from the repository root::

    .venv/bin/python bench/bench_peers.py [--rounds 20] [--calls 20] [--threads-seconds 2]
        [--threads-rounds 3] [--watch-rounds 4] [--only raw,etcd_layers,aetcd,...]

It starts one etcd (etcd_layers.testing, loopback only), seeds it (one key for get, 1000 keys
of 100 bytes under a prefix, 10k puts under another prefix for the watch replay), then starts
one process per contender, each a small driver under `bench/peers/` speaking a JSON line
protocol (`bench/peers/_driver.py`). The peers run in virtualenvs of their own under
`bench/.peers/<name>/` (git-ignored), made on first run from the pinned
`bench/peers/requirements-<name>.txt` and reused afterwards; ours and the floors run in this
venv. Interleaved: every round asks each contender in turn (the first one rotating) for one
short block of calls, so all see the same machine noise. Columns:

* get: one key, its value read; put: one key, 100 bytes (median latency of single calls);
* 1000-key prefix get, every key and value read (median latency);
* 16 threads sharing one client calling get (an asyncio client: 16 tasks on one client);
* watch replay: a watch from the revision of the first of 10k puts, timed from the watch call
  until the 10k-th event (key and value read) is in the consumer's hands. etcd 3.5 replays
  history in rounds of 1000 revisions every 100 ms, so events/s is the server's pace for every
  client; CPU per event, the driver process's `time.process_time()` (every thread) over the
  same span, is what tells the clients apart.

The floors are raw grpcio (sync) and raw grpc.aio (asyncio) on a channel of their own
(registered methods, pre-serialized requests, answers left undecoded); for the 1000-key get,
the floor that also parses the answer with protobuf and reads every key and value. Each
client's ratios are to the floor of its own kind (etcd3gw's, HTTP, to the sync one). The
verdicts under the table name the fastest grpcio client of each column (absolute figures) and
compare our sync and asyncio clients with the best peer of the same kind.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import select
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _peers_results import WATCH_COUNT, Contender, contenders, table

from etcd_layers import Client
from etcd_layers.testing import EtcdServer

HERE = Path(__file__).resolve().parent
DRIVERS = HERE / "peers"
VENVS = HERE / ".peers"
VALUE = b"x" * 100
RANGE_COUNT = 1000
OP_TIMEOUT = 300.0


# -- virtualenvs --------------------------------------------------------------------------


def ensure_venv(name: str) -> Path:
    """The python of `bench/.peers/<name>`, made from the pinned requirements if not current."""
    requirements = DRIVERS / f"requirements-{name}.txt"
    venv = VENVS / name
    python = venv / "bin" / "python"
    stamp = venv / ".requirements"
    wanted = requirements.read_text()
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    print(f"[bench_peers] installing {name} into {venv} ...", file=sys.stderr, flush=True)
    steps = [
        [sys.executable, "-m", "venv", "--clear", str(venv)],
        [str(python), "-m", "pip", "install", "-q", "-r", str(requirements)],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, timeout=900, check=False)
        if done.returncode:
            lines = [
                line
                for line in (done.stderr + done.stdout).splitlines()
                if line.strip() and not line.startswith("WARNING")
            ]
            raise RuntimeError("does not install here: " + (lines[-1] if lines else "pip failed"))
    stamp.write_text(wanted)
    return python


# -- workers ------------------------------------------------------------------------------


def start(contender: Contender, log: Path) -> None:
    """Start the contender's driver process (marking it failed if its venv cannot be made)."""
    env = dict(os.environ)
    try:
        if contender.venv is None:
            python = Path(sys.executable)
        else:
            python = ensure_venv(contender.venv)
            env.pop("PYTHONPATH", None)  # a peer sees its own venv alone
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        contender.failed = str(exc)
        return
    with log.open("ab") as errors:
        contender.process = subprocess.Popen(
            [str(python), str(DRIVERS / contender.driver), *contender.args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            cwd=DRIVERS,
            env=env,
        )


def ask(contender: Contender, message: dict[str, Any]) -> dict[str, Any]:
    """Send one request and wait for its answer; a dead or silent driver fails the contender."""
    process = contender.process
    assert process is not None
    assert process.stdin is not None
    assert process.stdout is not None
    try:
        process.stdin.write(json.dumps(message).encode() + b"\n")
        process.stdin.flush()
        ready, _, _ = select.select([process.stdout], [], [], OP_TIMEOUT)
        line = process.stdout.readline() if ready else b""
    except OSError as exc:
        line, contender.failed = b"", f"driver died: {exc}"
    if not line:
        contender.failed = contender.failed or f"driver gave no answer to {message['op']}"
        process.kill()
        return {"error": contender.failed}
    answer: dict[str, Any] = json.loads(line)
    return answer


def record(contender: Contender, key: str, answer: dict[str, Any]) -> list[float]:
    """Note an n/a or error answer once; return the answer's samples (none if it failed)."""
    if "na" in answer:
        contender.notes[key] = "n/a: " + answer["na"]
    elif "error" in answer:
        contender.notes[key] = "error: " + answer["error"]
    samples: list[float] = answer.get("samples", [])
    return samples


def in_turn(entries: list[tuple[Contender, str]], rounds: int) -> Iterator[tuple[Contender, str]]:
    """Each (contender, op) once per round, the first one rotating round by round."""
    for index in range(rounds):
        shift = index % len(entries)
        for contender, op in entries[shift:] + entries[:shift]:
            if not contender.failed and op not in contender.notes:
                yield contender, op


# -- the measurements ---------------------------------------------------------------------


def seed(endpoint: str) -> dict[str, Any]:
    """Write the keys every driver reads; return the setup message."""
    with Client([endpoint]) as cli:
        cli.put("peers/one", VALUE)
        for i in range(RANGE_COUNT):
            cli.put(b"peers/many/%04d" % i, VALUE)
        start = cli.get("peers/one").header.revision + 1

        def write(part: int) -> None:
            for i in range(part, WATCH_COUNT, 8):
                cli.put(b"peers/watch/%05d" % i, VALUE)

        writers = [threading.Thread(target=write, args=(part,)) for part in range(8)]
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join()
    return {
        "op": "setup",
        "endpoint": endpoint,
        "get_key": "peers/one",
        "put_key": "peers/put",
        "value": VALUE.decode(),
        "range_prefix": "peers/many/",
        "range_count": RANGE_COUNT,
        "watch_prefix": "peers/watch/",
        "watch_start": start,
        "watch_count": WATCH_COUNT,
    }


def measure(everyone: list[Contender], args: argparse.Namespace) -> None:
    """Warm up, then run every row's rounds; samples land in each contender."""
    latency = [(c, op) for op in ("get", "put") for c in everyone]
    ranges = [(c, "range") for c in everyone] + [(c, "range_parse") for c in everyone if c.floor]
    range_calls = max(1, args.calls // 4)
    for contender, op in in_turn(latency + ranges, 1):  # warm-up, not recorded
        record(contender, op, ask(contender, {"op": op, "n": args.calls // 2}))
    for contender, op in in_turn(latency + ranges, args.rounds):
        n = range_calls if op.startswith("range") else args.calls
        samples = record(contender, op, ask(contender, {"op": op, "n": n}))
        contender.samples.setdefault(op, []).extend(samples)
    threads = [(c, "threads") for c in everyone]
    for contender, op in in_turn(threads, args.threads_rounds):
        answer = ask(contender, {"op": op, "threads": 16, "seconds": args.threads_seconds})
        record(contender, op, answer)
        if "calls" in answer:
            contender.samples.setdefault("threads", []).append(answer["calls"] / answer["seconds"])
    watches = [(c, "watch") for c in everyone]
    warmed: set[str] = set()
    for contender, op in in_turn(watches, args.watch_rounds + 1):
        answer = ask(contender, {"op": op})
        record(contender, op, answer)
        if contender.name not in warmed:  # each one's first replay warms up
            warmed.add(contender.name)
        elif "seconds" in answer:
            contender.samples.setdefault("watch", []).append(answer["seconds"])
            contender.samples.setdefault("watch_cpu", []).append(answer["cpu"])


def main() -> None:
    """Run the benchmark and print the Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="rounds of get/put/range blocks")
    parser.add_argument("--calls", type=int, default=20, help="calls per get/put block")
    parser.add_argument("--threads-seconds", type=float, default=2.0)
    parser.add_argument("--threads-rounds", type=int, default=3)
    parser.add_argument("--watch-rounds", type=int, default=4)
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated names, e.g. etcd_layers,aetcd (the floors always run)",
    )
    args = parser.parse_args()
    everyone = contenders()
    names = {c.key for c in everyone}
    if args.only:
        wanted = set(args.only.split(","))
        if wanted - names:
            parser.error(f"unknown: {sorted(wanted - names)}; known: {sorted(names)}")
        everyone = [c for c in everyone if c.key in wanted or c.floor]  # ratios need floors
    VENVS.mkdir(exist_ok=True)
    log = VENVS / "drivers.log"
    with EtcdServer() as server:
        setup = seed(server.member.direct_endpoint)
        for contender in everyone:
            start(contender, log)
        try:
            for contender in everyone:
                if not contender.failed:
                    answer = ask(contender, {**setup})
                    if "ok" not in answer:
                        contender.failed = answer.get("error", answer.get("na", "setup failed"))
            measure(everyone, args)
        finally:
            for contender in everyone:
                if contender.process is not None:
                    if contender.process.poll() is None and not contender.failed:
                        ask_quit(contender)
                    contender.process.kill()
                    contender.process.wait(timeout=30)
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"bench_peers.py, {now}, Python {sys.version.split()[0]}, etcd on loopback")
    print(f"(driver stderr in {log})\n")
    print(table(everyone))


def ask_quit(contender: Contender) -> None:
    """Ask a driver to close its client and leave."""
    process = contender.process
    assert process is not None
    assert process.stdin is not None
    try:
        process.stdin.write(b'{"op": "quit"}\n')
        process.stdin.close()
        process.wait(timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        pass


if __name__ == "__main__":
    main()
