"""The contenders of bench_peers.py, the samples they collect, and the table made of them."""

from __future__ import annotations

import statistics
import subprocess
from dataclasses import dataclass, field

WATCH_COUNT = 10_000  # the watch replay's events


@dataclass
class Contender:
    """One client under test: its driver, its venv (None: this one) and what it is."""

    key: str  # the name `--only` takes
    name: str
    driver: str
    venv: str | None
    kind: str
    args: tuple[str, ...] = ()
    floor: bool = False
    process: subprocess.Popen[bytes] | None = None
    failed: str = ""  # why it cannot run at all
    samples: dict[str, list[float]] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)  # op -> "n/a: ..." or "error: ..."

    @property
    def family(self) -> str:
        """ "asyncio" or "sync": which floor its ratios are taken against."""
        return "asyncio" if "asyncio" in self.kind else "sync"

    @property
    def grpcio(self) -> bool:
        """Whether it talks gRPC through grpcio (the claim covers those alone)."""
        return "grpc" in self.kind and "gateway" not in self.kind

    @property
    def ours(self) -> bool:
        """One of etcd_layers' clients."""
        return self.key.startswith("etcd_layers")


SYNC = "sync grpcio"
ASYNC = "asyncio grpc.aio"


def contenders() -> list[Contender]:
    """Everyone, in the table's order."""
    return [
        Contender("raw", "raw grpcio (floor)", "drive_raw.py", None, SYNC, floor=True),
        Contender("raw_aio", "raw grpc.aio (floor)", "drive_raw.py", None, ASYNC, ("aio",), True),
        Contender("etcd_layers", "etcd_layers Client", "drive_etcd_layers.py", None, SYNC),
        Contender(
            "etcd_layers_async",
            "etcd_layers AsyncClient",
            "drive_etcd_layers_async.py",
            None,
            ASYNC,
        ),
        Contender(
            "etcd-sdk-python",
            "etcd-sdk-python 0.0.7",
            "drive_etcd3.py",
            "etcd-sdk-python",
            SYNC,
            ("pyetcd",),
        ),
        Contender(
            "etcd3",
            "etcd3 0.12.0",
            "drive_etcd3.py",
            "etcd3",
            SYNC + ", protobuf 3.20.3 (pure Python: no wheel for 3.11)",
            ("etcd3",),
        ),
        Contender("aetcd", "aetcd 1.0.0", "drive_aetcd.py", "aetcd", ASYNC),
        Contender("etcd3aio", "etcd3aio 0.3.0", "drive_etcd3aio.py", "etcd3aio", ASYNC),
        Contender(
            "etcd3gw", "etcd3gw 2.7.0", "drive_etcd3gw.py", "etcd3gw", "sync HTTP/JSON gateway"
        ),
    ]


# -- the table ----------------------------------------------------------------------------


COLUMNS = ("get", "put", "range", "threads", "watch", "watch_cpu")
HEADERS = (
    "get",
    "put",
    "1000-key get, all read",
    "16 threads, one client (calls/s)",
    "watch replay, 10k events (events/s)",
    "watch CPU per event",
)


def figure(contender: Contender, column: str) -> float | None:
    """The contender's summary figure for a column (lower is better except threads, watch)."""
    values = contender.samples.get(column)
    if not values:
        return None
    if column == "threads":
        return statistics.mean(values)
    middle = statistics.median(values)
    if column == "watch":
        return WATCH_COUNT / middle
    if column == "watch_cpu":
        return middle / WATCH_COUNT
    return middle


def ratio(value: float, floor: float | None) -> str:
    """The ratio to the floor: for times >1 is slower, for rates <1 is slower."""
    if floor is None or floor == 0:
        return ""
    return f" ({value / floor:.2f}x)"


def show(value: float, column: str) -> str:
    """A figure in its column's unit."""
    if column in ("get", "put"):
        return f"{value * 1e6:.0f} µs"
    if column in ("range", "range_parse"):
        return f"{value * 1e3:.2f} ms"
    if column == "watch_cpu":
        return f"{value * 1e6:.2f} µs"
    return f"{value:,.0f}"


def cell(contender: Contender, column: str, floor: Contender | None) -> str:
    """One table cell: the figure and its ratio to its family's floor, or why there is none."""
    if contender.failed:
        return "—"
    value = figure(contender, column)
    if value is None:
        note = contender.notes.get("watch" if column.startswith("watch") else column, "n/a")
        return note.replace("|", "/")[:90]
    if contender.floor and column == "range":
        return show(value, column)  # the ratio is taken against the floor that parses
    against = None
    if floor is not None:
        against = figure(floor, "range_parse" if column == "range" else column)
    return show(value, column) + ratio(value, against)


def table(everyone: list[Contender]) -> str:
    """The Markdown table, then each column's verdict."""
    floors = {c.family: c for c in everyone if c.floor and not c.failed}
    lines = [
        "| client | kind | " + " | ".join(HEADERS) + " |",
        "|---|---|" + "---|" * len(HEADERS),
    ]
    for contender in everyone:
        kind = contender.kind + (", 16 tasks" if contender.family == "asyncio" else "")
        cells = [cell(contender, column, floors.get(contender.family)) for column in COLUMNS]
        if contender.failed:
            cells[0] = contender.failed.replace("|", "/")[:120]
        lines.append(f"| {contender.name} | {kind} | " + " | ".join(cells) + " |")
        parse = figure(contender, "range_parse") if contender.floor else None
        if parse is not None:
            name = contender.name.replace(" (floor)", " + protobuf parse, all read (floor)")
            blanks = ["", "", f"{show(parse, 'range')} (1.00x)", "", "", ""]
            lines.append(f"| {name} | {contender.kind} | " + " | ".join(blanks) + " |")
    lines.append("")
    lines.extend(verdicts(everyone))
    return "\n".join(lines)


def best(scored: list[tuple[float, str]], higher: bool) -> tuple[float, str] | None:
    """The best (figure, name), the highest or the lowest."""
    if not scored:
        return None
    return max(scored) if higher else min(scored)


def behind(ours: float, theirs: float, higher: bool) -> float:
    """How many times slower `ours` is than `theirs` (below 1: faster)."""
    return theirs / ours if higher else ours / theirs


def verdicts(everyone: list[Contender]) -> list[str]:
    """For each column: the fastest grpcio client (floors excluded) and where ours stand."""
    out = []
    for column, header in zip(COLUMNS, HEADERS, strict=True):
        higher = column in ("threads", "watch")
        scored = {
            c.key: (value, c.name)
            for c in everyone
            if c.grpcio and not c.floor and (value := figure(c, column)) is not None
        }
        top = best(list(scored.values()), higher)
        if top is None:
            continue
        parts = [f"fastest grpcio client: {top[1]}"]
        for family in ("sync", "asyncio"):
            mine = [
                scored[c.key] for c in everyone if c.key in scored and c.ours and c.family == family
            ]
            peers = [
                scored[c.key]
                for c in everyone
                if c.key in scored and not c.ours and c.family == family
            ]
            mine_best, peer_best = best(mine, higher), best(peers, higher)
            if mine_best and peer_best:
                times = behind(mine_best[0], peer_best[0], higher)
                parts.append(
                    f"{mine_best[1]} vs the best {family} peer ({peer_best[1]}): "
                    + (f"{1 / times:.2f}x faster" if times <= 1 else f"{times:.2f}x slower")
                )
        out.append(f"- {header}: " + "; ".join(parts))
    return out
