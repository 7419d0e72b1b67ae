"""Two etcd stores side by side for the differential test: what each answers, put in one form.

A `Side` is one store (a real etcd server or a `MemoryEtcd`) with its client. Both sides are
reset to the same state before each example (no leases, no keys, compacted at the current
revision), and from there revisions are counted from that start: `rev_out` turns a side's
revision into the example's (1 is the start), `rev_in` the other way. Lease ids a side chose
itself are named by the order they were granted in (`auto0`, `auto1`, ...); explicit ids are
themselves. `view` turns any response or error into a plain value with those numbers
translated, with cluster_id, member_id and raft_term left out, and with what etcd does not
define left aside (inner txn headers, the order of `leases()` and of a lease's keys, and a
remaining TTL, which real time moves; see `ttl_agrees`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import time
from collections.abc import Callable, Iterator
from typing import Any, Final

from etcd_layers import Client
from etcd_layers.base.responses import (
    LeaseLeasesResponse,
    LeaseTimeToLiveResponse,
    ResponseHeader,
    WatchResponse,
)
from etcd_layers.errors import CanceledError, CompactedError, EtcdError, LeaseNotFoundError

Canonical = int | str  # an explicit lease id, or "auto<n>" for an id the store chose

REV_FIELDS: Final = frozenset({"create_revision", "mod_revision", "compact_revision"})
REV_OPTIONS: Final = frozenset(
    {
        "revision",
        "start_revision",
        "min_mod_revision",
        "max_mod_revision",
        "min_create_revision",
        "max_create_revision",
    }
)
_AVAILABLE: Final = re.compile(r"(first revision still available is )(\d+)")
_HEX_LEASE: Final = re.compile(r"\blease ([0-9a-f]+)\b")
DRAIN_TIMEOUT: Final = 10.0  # seconds a watch may take to deliver an event that is due


class Side:
    """One store and its client, with the translation of its revisions and lease ids."""

    def __init__(self, name: str, client: Client) -> None:
        self.name = name
        self.client = client
        self.offset = 0  # the store's revision at the example's start, minus 1
        self.canonical: dict[int, Canonical] = {}
        self.concrete: dict[Canonical, int] = {}

    def reset(self) -> None:
        """Bring the store to the start state of an example: no leases, no keys, compacted."""
        cli = self.client
        for status in cli.leases().leases:
            with contextlib.suppress(LeaseNotFoundError):
                cli.revoke(status.id)
        cli.delete(b"", from_key=True)
        revision = cli.get(b"\x00", count_only=True).header.revision
        with contextlib.suppress(CompactedError):  # nothing was written since the last reset
            cli.compact(revision, physical=True)
        self.offset = revision - 1
        self.canonical.clear()
        self.concrete.clear()

    # --- translation ---------------------------------------------------------------------

    def rev_out(self, revision: int) -> int:
        """The example's revision for this store's `revision` (0 stays 0: no revision)."""
        return revision - self.offset if revision > 0 else revision

    def rev_in(self, revision: int) -> int:
        """This store's revision for the example's `revision` (0 stays 0)."""
        return revision + self.offset if revision > 0 else revision

    def name_lease(self, lease_id: int, canonical: Canonical) -> None:
        """Remember that this store's `lease_id` is the example's `canonical` lease."""
        self.canonical[lease_id] = canonical
        self.concrete[canonical] = lease_id

    def lease_out(self, lease_id: int) -> Canonical:
        """The example's name of this store's `lease_id` (an id it never named stays as is)."""
        return self.canonical.get(lease_id, lease_id)

    def lease_in(self, lease: Canonical) -> int:
        """This store's id of the example's `lease` (an unnamed auto lease: -1, refused)."""
        return lease if isinstance(lease, int) else self.concrete.get(lease, -1)

    def options_in(self, options: dict[str, Any]) -> dict[str, Any]:
        """`options` with every revision option translated into this store's revisions."""
        return {k: self.rev_in(v) if k in REV_OPTIONS else v for k, v in options.items()}

    def message(self, text: str) -> str:
        """An error message with the revisions and lease ids in it translated."""
        text = _AVAILABLE.sub(lambda m: m[1] + str(self.rev_out(int(m[2]))), text)
        return _HEX_LEASE.sub(lambda m: f"lease {self._hex_lease(m[1])}", text)

    def _hex_lease(self, digits: str) -> str:
        canonical = self.lease_out(int(digits, 16))
        return canonical if isinstance(canonical, str) else f"{canonical:x}"

    def view(self, value: object, *, inner: bool = False) -> object:
        """`value` (a response, a list of them, an error) as a plain comparable value."""
        if isinstance(value, BaseException):
            compacted = (
                self.rev_out(value.compact_revision) if isinstance(value, CompactedError) else None
            )
            return ("raised", type(value).__name__, self.message(str(value)), compacted)
        if isinstance(value, list):
            return [self.view(item, inner=inner) for item in value]
        if isinstance(value, ResponseHeader):
            return None if inner else self.rev_out(value.revision)
        if hasattr(value, "next") and hasattr(value, "cancel"):
            return "a stream"  # a watch or keep-alive handle: what it delivers is compared
        if not dataclasses.is_dataclass(value) or isinstance(value, type):
            return value
        fields = {
            f.name: self._field(value, f.name, getattr(value, f.name), inner)
            for f in dataclasses.fields(value)
            if not (isinstance(value, WatchResponse) and f.name == "watch_id")  # a stream's own
        }
        return (type(value).__name__, fields)

    def _field(self, value: object, name: str, item: Any, inner: bool) -> object:
        if name in REV_FIELDS:
            return self.rev_out(item)
        if name in ("lease", "id"):
            return self.lease_out(item)
        if name == "responses":
            return self.view(item, inner=True)
        if isinstance(value, LeaseLeasesResponse) and name == "leases":
            return sorted(repr(self.lease_out(status.id)) for status in item)
        if isinstance(value, LeaseTimeToLiveResponse) and name in ("keys", "ttl"):
            return sorted(item) if name == "keys" else None  # ttl: compared by ttl_agrees
        return self.view(item, inner=inner)


def outcome(call: Callable[..., object], *args: Any) -> object:
    """What `call(*args)` returns, or the error it raises.

    The errors kept are a client's: a refused argument, an etcd error, a wait that timed out.
    """
    try:
        return call(*args)
    except (EtcdError, ValueError, TypeError, TimeoutError) as error:
        return error


def ttl_agrees(first: object, second: object, elapsed: float) -> bool:
    """Whether two time_to_live answers' remaining TTLs agree, `elapsed` seconds after renewal.

    Each store counts down on its own clock (a real server on real time, MemoryEtcd on its
    own), so the remaining TTLs may differ by the time that passed since the lease's last
    renewal, plus one for the truncation to whole seconds.
    """
    if not (
        isinstance(first, LeaseTimeToLiveResponse) and isinstance(second, LeaseTimeToLiveResponse)
    ):
        return True  # errors, compared by view
    if first.ttl == -1 or second.ttl == -1:
        return first.ttl == second.ttl
    return all(0 <= r.ttl <= r.granted_ttl for r in (first, second)) and abs(
        first.ttl - second.ttl
    ) <= 1 + int(elapsed)


@dataclasses.dataclass
class WatchRecord:
    """One watch open on both sides: its handles, its range's first key, and what it got."""

    handles: list[Any]
    key: bytes
    filter_put: bool
    filter_delete: bool
    start: int  # the example's first revision the watch covers
    got: list[list[object]] = dataclasses.field(default_factory=lambda: [[], []])
    ended: list[bool] = dataclasses.field(default_factory=lambda: [False, False])

    def target(self, put_revision: int, delete_revision: int) -> int | None:
        """The last revision of a flush (a put, then a delete of `key`) this watch must see."""
        due = [
            revision
            for revision, filtered in (
                (put_revision, self.filter_put),
                (delete_revision, self.filter_delete),
            )
            if not filtered and revision >= self.start
        ]
        return max(due, default=None)


def drain(side: Side, handle: Any, target: int | None, got: list[object]) -> bool:
    """Collect the watch's responses into `got` until the event of `target` arrived.

    Responses go into `got` as views, one item per event, so that the grouping of events into
    responses, which depends on timing, is not compared; `got` also records an event of one
    revision split across two responses, which etcd never does. Returns whether the watch
    ended (an error, or its end); a watch that delivers nothing in DRAIN_TIMEOUT seconds
    records "silent".
    """
    last = 0
    deadline = time.monotonic() + DRAIN_TIMEOUT
    while target is not None and last < target:
        left = deadline - time.monotonic()
        try:
            response = handle.next(timeout=max(left, 0.001))
        except TimeoutError:
            got.append("silent")
            return False
        except CanceledError:
            got.append("ended")
            return True
        except EtcdError as error:
            got.append(side.view(error))
            return True
        revisions = [side.rev_out(event.kv.mod_revision) for event in response.events]
        if revisions and revisions[0] <= last:
            got.append(("split across responses", revisions[0]))
        if response.created or response.canceled or response.compact_revision:
            got.append(side.view(dataclasses.replace(response, events=[])))
        got.extend(side.view(event) for event in response.events)
        last = max([last, *revisions])
    return False


def cancel_all(records: list[WatchRecord]) -> None:
    """Cancel every handle of `records` (ending an already ended watch is a no-op)."""
    for record in records:
        for handle in record.handles:
            with contextlib.suppress(EtcdError):
                handle.cancel()


@contextlib.contextmanager
def closing(side: Side) -> Iterator[Side]:
    """Yield `side`, closing its client afterwards."""
    try:
        yield side
    finally:
        side.client.close()
