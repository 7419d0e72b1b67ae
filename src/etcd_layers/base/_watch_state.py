"""The pure bookkeeping of one watch: phase, counts, resume revision, fragments, cancel reason."""

from __future__ import annotations

import enum
import re
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

from etcd_layers.base import retry
from etcd_layers.base._proto import rpc_pb2
from etcd_layers.errors import (
    CompactedError,
    EtcdError,
    PermissionDeniedError,
    WatchCanceledError,
    error_class,
)

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)  # the shell's handle for a watch

# etcd 3.5 puts a gRPC status's text in `cancel_reason` ("rpc error: code = PermissionDenied
# desc = etcdserver: permission denied"); the table of error strings knows only the `desc` part.
_STATUS_TEXT: Final = re.compile(r"^rpc error: code = \w+ desc = ")


@dataclass(slots=True)
class ResumePoint:
    """Where a watch must start again after its stream broke.

    The rule: right after the last event the watch delivered; before any event, at the
    revision the user asked for, or (watching "from now on") right after the revision the
    server reported when it first confirmed the watch, so that a write made after `watch()`
    returned is never skipped. Header revisions of later responses never move it.

    clientv3 also advances to `header.revision + 1` on every progress notification; we do
    not, because etcd before 3.5.8 can send a requested progress notification ahead of
    events it has not yet sent (etcd issue #15220), and resuming from it would lose them.
    The cost: a watch that saw no event for a long time resumes from an old revision, which
    compaction may have removed (CompactedError).
    """

    start_revision: int = 0
    next_revision: int = 0  # 0 until known: then the server picks "now"

    def __post_init__(self) -> None:
        if self.next_revision == 0:
            self.next_revision = self.start_revision

    def created(self, header_revision: int) -> None:
        """Record the server's confirmation (only the first one fixes a start)."""
        if self.next_revision == 0:
            self.next_revision = header_revision + 1

    def delivered(self, last_mod_revision: int) -> None:
        """Record that every event up to `last_mod_revision` reached the watch's queue."""
        if last_mod_revision >= self.next_revision:
            self.next_revision = last_mod_revision + 1


class Phase(enum.Enum):
    """Where a watch is in its life."""

    PENDING = "pending"  # waiting to be (re)created on the stream
    CREATING = "creating"  # its create request is the one in flight
    ACTIVE = "active"  # the server watches for it under `server_id`
    PAUSED = "paused"  # its queue is full: no server-side watch until the consumer catches up
    ENDED = "ended"


class WatchEntry(Generic[K]):
    """One watch as the multiplexer sees it; `key` is the shell's handle for it."""

    __slots__ = (
        "auth_retried",
        "confirmed",
        "create",
        "created_notify",
        "dequeued",
        "enqueued",
        "key",
        "peak",
        "phase",
        "prev_kv",
        "progress_notify",
        "resume",
        "server_id",
    )

    def __init__(
        self,
        key: K,
        create: rpc_pb2.WatchCreateRequest,
        *,
        created_notify: bool = False,
        progress_notify: bool = False,
    ) -> None:
        self.key = key
        self.create = create  # re-sent with `start_revision` moved on at every re-creation
        self.resume = ResumePoint(create.start_revision)
        self.created_notify = created_notify
        self.progress_notify = progress_notify
        self.prev_kv = create.prev_kv
        self.phase = Phase.PENDING
        self.server_id = -1
        self.confirmed = False
        self.auth_retried = False
        self.enqueued = 0  # events delivered (at least 1 per response)
        self.dequeued = 0  # events the consumer has read
        self.peak = 0  # the most events that ever waited at once

    @property
    def pending(self) -> int:
        """How many delivered events wait to be read."""
        return self.enqueued - self.dequeued


class FragmentJoiner(Generic[T]):
    """Joins the fragments of large watch responses, per watch id.

    With `fragment=True` etcd splits a response larger than its request limit into several
    responses of one watch id, each but the last marked `fragment`. They arrive back to back,
    but the joiner keys them by watch id all the same. Partial responses die with their stream:
    a new stream starts with a new joiner, so half a revision is never delivered.
    """

    __slots__ = ("parts",)

    def __init__(self) -> None:
        self.parts: dict[int, list[T]] = {}  # watch id -> events of its unfinished response

    def __contains__(self, watch_id: int) -> bool:
        return watch_id in self.parts

    def add(self, watch_id: int, events: Sequence[T], *, more: bool) -> list[T] | None:
        """Add one fragment; return every event of the response once `more` is False."""
        parts = self.parts.get(watch_id)
        if parts is None:
            if not more:
                return list(events)
            self.parts[watch_id] = list(events)
            return None
        parts.extend(events)
        if more:
            return None
        del self.parts[watch_id]
        return parts

    def discard(self, watch_id: int) -> None:
        """Forget the fragments received so far for `watch_id`."""
        self.parts.pop(watch_id, None)

    def pending(self) -> int:
        """How many events are held in unfinished responses."""
        return sum(len(parts) for parts in self.parts.values())


def cancel_error(reason: str, compact_revision: int) -> EtcdError:
    """Return the error for a watch the server canceled, from its reason and compact revision."""
    if compact_revision:
        return CompactedError(
            f"etcdserver: mvcc: required revision has been compacted "
            f"(the first revision still available is {compact_revision})",
            compact_revision,
        )
    message = _STATUS_TEXT.sub("", reason)
    cls = error_class(None, message) if message else WatchCanceledError
    if cls is EtcdError:  # a reason etcd's table does not know
        cls = WatchCanceledError
    return cls(message or "etcdserver: watch canceled")


def is_auth_refusal(error: EtcdError) -> bool:
    """Whether a refused watch may succeed after logging in again.

    The token refusals of every call (`retry.is_auth_refusal`), and permission denied: etcd
    answers a watch created with an expired token so (etcd #12385).
    """
    return retry.is_auth_refusal(error) or isinstance(error, PermissionDeniedError)
