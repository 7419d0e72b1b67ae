"""The narrated demo: namespace isolation, the leasing cache, ordering recovery, a stack."""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from typing import Final, TextIO, TypeVar

from etcd_layers import Client, Op, leasing, namespace, ordering
from etcd_layers.base import KV, Response
from etcd_layers.testing import EtcdCluster, Member

T = TypeVar("T")
_SPINNER: Final = "|/-\\"


class _Narrator:
    """Prints steps, tables and progress for slow steps."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.step = 0

    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def heading(self, title: str) -> None:
        self.step += 1
        self.say()
        self.say(f"== Step {self.step}: {title} ==")

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
        cells = [[str(h) for h in headers], *[[_show(c) for c in row] for row in rows]]
        widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
        line = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
        self.say(line)
        for index, row in enumerate(cells):
            self.say("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
            if index == 0:
                self.say(line)
        self.say(line)

    def progress(self, label: str, work: Callable[[], T]) -> T:
        """Run `work`, showing a spinner and then how long it took."""
        done = threading.Event()
        interactive = self.out.isatty()

        def spin() -> None:
            for tick in range(10**6):
                if done.wait(0.1):
                    return
                self.out.write(f"\r{label} {_SPINNER[tick % 4]}")
                self.out.flush()

        spinner = threading.Thread(target=spin, name="etcd_layers.demo.progress", daemon=True)
        if interactive:
            spinner.start()
        else:
            self.out.write(f"{label} ...")
            self.out.flush()
        started = time.monotonic()
        try:
            return work()
        finally:
            done.set()
            if interactive:
                spinner.join()
            elapsed = time.monotonic() - started
            prefix = f"\r{label} ..." if interactive else ""
            self.out.write(f"{prefix} done in {elapsed:.1f}s\n")
            self.out.flush()


def _show(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="backslashreplace")
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def _keys(response: Response) -> list[bytes]:
    assert hasattr(response, "kvs")
    return [kv.key for kv in response.kvs]


def run_demo(endpoints: list[str] | None, *, reads: int = 300, out: TextIO) -> int:
    """Run the tour; with `endpoints`, against that cluster under a fresh random prefix."""
    narrator = _Narrator(out)
    narrator.say("etcd_layers demo: composable layers over a real etcd")
    root = f"etcd-layers-demo/{secrets.token_hex(4)}/".encode()
    with contextlib.ExitStack() as stack:
        cluster = None
        if endpoints is None:
            cluster = narrator.progress(
                "Starting an embedded 3-member etcd cluster on loopback",
                lambda: EtcdCluster(3).start(),
            )
            stack.callback(cluster.close)
            endpoints = cluster.endpoints
        cli = stack.enter_context(Client(endpoints, timeout=10))
        narrator.say(f"Connected to {', '.join(endpoints)}; everything lives under {root!r}")
        try:
            _step_namespace(narrator, cli, root)
            _step_leasing(narrator, cli, root, reads)
            if cluster is not None:
                _step_ordering(narrator, cluster, root)
            else:
                narrator.heading("ordering: catching stale reads")
                narrator.say(
                    "Skipped: cutting a member off needs the embedded cluster (run without "
                    "--endpoints)."
                )
            _step_stack(narrator, cli, root)
        finally:
            removed = cli.delete(root, prefix=True).deleted
            narrator.say()
            narrator.say(f"Cleaned up: removed {removed} keys under {root!r}.")
    narrator.say("Done.")
    return 0


def _step_namespace(narrator: _Narrator, cli: Client, root: bytes) -> None:
    narrator.heading("namespace: two tenants, one cluster, no leaks")
    tenant_a = namespace.wrap(cli, root + b"tenant-a/")
    tenant_b = namespace.wrap(cli, root + b"tenant-b/")
    tenant_a.put("config", "a's secret")
    tenant_a.put("users/alice", "admin")
    tenant_b.put("config", "b's secret")
    rows = [
        ("tenant-a", "get('config')", tenant_a.get("config").kvs[0].value),
        ("tenant-b", "get('config')", tenant_b.get("config").kvs[0].value),
        ("tenant-a", "get('', prefix=True)", b", ".join(_keys(tenant_a.get("", prefix=True)))),
        ("tenant-b", "get('', prefix=True)", b", ".join(_keys(tenant_b.get("", prefix=True)))),
        ("tenant-b", "get('users/alice')", f"{tenant_b.get('users/alice').count} keys"),
    ]
    narrator.table(["who", "call", "sees"], rows)
    raw = [kv.key for kv in cli.get(root, prefix=True).kvs]
    narrator.say("The raw client sees where they really live:")
    narrator.table(["server key"], [(key,) for key in raw])


def _time_reads(kv: KV, key: bytes, count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        kv.get(key)
    return (time.perf_counter() - started) / count


def _step_leasing(narrator: _Narrator, cli: Client, root: bytes, reads: int) -> None:
    narrator.heading("leasing: linearizable reads from a local cache")
    key = b"catalog/item-42"
    prefix = root + b"leases/"
    data = namespace.wrap(cli, root + b"data/")
    data.put(key, "price=10")
    with leasing.wrap(data, prefix, ttl=30) as cached, leasing.wrap(data, prefix, ttl=30) as other:
        uncached = narrator.progress(
            f"Timing {reads} linearizable gets on the plain client",
            lambda: _time_reads(data, key, reads),
        )
        cached.get(key)  # the first read acquires the key's lease
        hit = narrator.progress(
            f"Timing {reads} gets through the leasing cache",
            lambda: _time_reads(cached, key, reads),
        )
        stats = leasing.stats(cached)
        narrator.table(
            ["client", "mean latency", "speed-up"],
            [
                ("plain Client.get", f"{uncached * 1e6:.1f} us", "1x"),
                ("leasing.wrap(...).get", f"{hit * 1e6:.1f} us", f"{uncached / hit:.0f}x"),
            ],
        )
        narrator.say(
            f"cache: {stats.hits} hits, {stats.misses} misses "
            f"(hit ratio {stats.hits / max(1, stats.hits + stats.misses):.1%})"
        )
        before = cached.get(key).kvs[0].value
        other.put(key, "price=12")  # a second client's write revokes the first's cached copy
        after = cached.get(key).kvs[0].value
        narrator.table(
            ["moment", "first client reads"],
            [
                ("before the second client's write", before),
                ("right after it (cache invalidated)", after),
            ],
        )


def _step_ordering(narrator: _Narrator, cluster: EtcdCluster, root: bytes) -> None:
    narrator.heading("ordering: catching a stale read and recovering")
    # Cut off a follower: isolating the leader would stall writes through an election.
    leader = cluster.leader()
    stale = next(m for m in cluster.members if m is not leader)
    first, second = [m for m in cluster.members if m is not stale]
    key = root + b"orders/total"
    log: list[tuple[str, str, int, str]] = []
    names = {m.endpoint: m.name for m in cluster.members}
    # The reader's endpoints, in order: a fresh member, the one about to fall behind, another
    # fresh one. Client.switch_endpoint() pins calls to the next one in that order.
    order = [first.endpoint, stale.endpoint, second.endpoint]
    with (
        Client([first.endpoint, second.endpoint], timeout=10) as writer,
        Client(order, timeout=10) as reader,
    ):
        writer.put(key, "1")
        narrator.progress(
            f"Cutting member {stale.name} off from its peers and writing 20 more revisions",
            lambda: _partition_and_write(cluster, stale, writer, key),
        )
        policy = ordering.switch_endpoints(reader)
        pinned = [""]

        def on_violation(op: Op, response: Response, prev_revision: int) -> None:
            log.append(
                (names[pinned[0]], "stale answer", response.header.revision, "switch endpoint")
            )
            policy(op, response, prev_revision)  # moves the reader to its next endpoint
            pinned[0] = order[(order.index(pinned[0]) + 1) % len(order)]

        checked = ordering.wrap(reader, on_violation=on_violation)
        while reader.switch_endpoint() != first.endpoint:
            pass
        seen = checked.get(key).header.revision
        log.append((first.name, "linearizable get", seen, "accepted"))
        pinned[0] = reader.switch_endpoint()  # now the member that is behind
        response = checked.do(Op.get(key, serializable=True))
        log.append((names[pinned[0]], "serializable get", response.header.revision, "accepted"))
        narrator.table(["member", "answer", "revision", "ordering layer"], log)
        stale_answers = [row[2] for row in log if row[1] == "stale answer"]
        if stale_answers:
            narrator.say(
                f"{stale.name} answered from revision {stale_answers[0]} after the reader had "
                f"seen {seen}: the ordering layer caught it and the read was served again by "
                f"{names[pinned[0]]}, value {response.kvs[0].value!r}."
            )
        else:
            narrator.say(f"{stale.name} had caught up already: no stale answer this time.")
        narrator.progress("Healing the partition", cluster.heal)


def _partition_and_write(cluster: EtcdCluster, stale: Member, writer: Client, key: bytes) -> None:
    cluster.isolate(stale)
    for i in range(20):
        writer.put(key, str(i + 2))


def _step_stack(narrator: _Narrator, cli: Client, root: bytes) -> None:
    narrator.heading("a stack: ordering.wrap(leasing.wrap(namespace.wrap(cli, ...)))")
    tenant = namespace.wrap(cli, root + b"stack/tenant-a/")
    with leasing.wrap(tenant, b"lease/", ttl=30) as cached:
        stack = ordering.wrap(cached)
        stack.put("profile", "v1")
        rows = [("put('profile', 'v1')", "ok")]
        for attempt in range(3):
            value = stack.get("profile").kvs[0].value
            rows.append((f"get('profile') #{attempt + 1}", value.decode()))
        stack.put("profile", "v2")
        rows.append(("put('profile', 'v2')", "ok"))
        rows.append(("get('profile')", stack.get("profile").kvs[0].value.decode()))
        narrator.table(["call through the stack", "result"], rows)
        stats = leasing.stats(cached)
        narrator.say(
            f"Served from the cache: {stats.hits} of {stats.hits + stats.misses} gets; "
            "no ordering violation reported."
        )
    server_keys = _keys(cli.get(root + b"stack/", prefix=True))
    narrator.table(["server keys written by the stack"], [(key,) for key in server_keys])
