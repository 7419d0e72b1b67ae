"""What both Mirror shells share: argument checks, the subscriber list and the callback guard."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Final, TypeAlias

from etcd_layers import telemetry
from etcd_layers.base.checks import check_bool, check_int, check_timeout
from etcd_layers.base.keys import StrOrBytes, to_bytes
from etcd_layers.base.responses import Event, EventType, KeyValue
from etcd_layers.mirror._pages import check_page_size

__all__ = ["Callback", "Options", "Subscribers", "check_options", "replay_events", "report_lag"]

logger: Final = logging.getLogger("etcd_layers.mirror")

Callback: TypeAlias = Callable[[list[Event]], object]

QUIET_AFTER: Final = 0.05  # seconds wait() gives events before it checks for a quiet prefix
CHECK_INTERVAL: Final = 0.5  # seconds between such checks while a wait() goes on


def report_lag(header_revision: int, mirror_revision: int) -> None:
    """With telemetry on, record how far the copy is behind the store as a batch is applied."""
    instruments = telemetry.active
    if instruments is not None:
        instruments.mirror_lag.record(max(header_revision - mirror_revision, 0))


class Options:
    """A mirror's checked arguments."""

    __slots__ = ("page_size", "prefix", "prev_kv", "timeout")

    def __init__(self, prefix: bytes, page_size: int, prev_kv: bool, timeout: float | None):
        self.prefix = prefix
        self.page_size = page_size
        self.prev_kv = prev_kv
        self.timeout = timeout


def check_options(
    client: object, prefix: StrOrBytes, page_size: object, prev_kv: object, timeout: object
) -> Options:
    """Check a mirror's arguments, before any I/O.

    Raises:
        TypeError: `client` speaks no KV + Watcher, or an argument of the wrong type.
        ValueError: `page_size` below 1, or a `timeout` that is not positive.
    """
    for name in ("do", "watch"):
        if not callable(getattr(client, name, None)):
            raise TypeError(
                f"client must speak the KV and Watcher Protocols (no {name}()), "
                f"not {type(client).__name__}"
            )
    return Options(
        to_bytes(prefix, name="prefix"),
        check_page_size(page_size),
        check_bool(prev_kv, "prev_kv"),
        check_timeout(timeout),
    )


def check_wait(revision: object, timeout: object, default: float | None) -> float | None:
    """Check wait()'s arguments; return its timeout (the mirror's when None; None: no bound)."""
    check_int(revision, "revision")
    limit = check_timeout(timeout)
    return default if limit is None else limit


def check_callback(callback: object) -> Callback:
    """Return `callback` if it is callable.

    Raises:
        TypeError: it is not.
    """
    if not callable(callback):
        raise TypeError(f"callback must be callable, not {type(callback).__name__}")
    return callback


def replay_events(kvs: dict[bytes, KeyValue]) -> list[Event]:
    """Return the copy's content as PUT events, in key order (a subscriber's replay)."""
    return [Event(EventType.PUT, kvs[key]) for key in sorted(kvs)]


class _Entry:
    """One subscription: identity tells two subscriptions of one callback apart."""

    __slots__ = ("callback",)

    def __init__(self, callback: Callback) -> None:
        self.callback = callback


class Subscribers:
    """The subscriber list, replaced whole on each change so that a dispatch reads a snapshot.

    Not locked: the shells change it under their state lock (or on their event loop).
    """

    __slots__ = ("entries",)

    def __init__(self) -> None:
        self.entries: tuple[_Entry, ...] = ()

    def add(self, callback: Callback) -> _Entry:
        """Add a subscription and return it."""
        entry = _Entry(callback)
        self.entries = (*self.entries, entry)
        return entry

    def remove(self, entry: _Entry) -> None:
        """Remove a subscription (idempotent)."""
        self.entries = tuple(e for e in self.entries if e is not entry)


def deliver(entries: Sequence[_Entry], events: Sequence[Event]) -> None:
    """Call each subscriber with `events`; a callback's exception is logged, never raised.

    A failing callback must not stop the follower, nor keep the others from their changes.
    """
    for entry in entries:
        try:
            entry.callback(list(events))  # its own list: a callback may change it
        except Exception:  # a user's callback: logged, the follower goes on
            logger.exception("a mirror subscriber's callback failed")
