"""The answers the leasing cache publishes for reads that take no lock: gets of owned keys."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Final

from etcd_layers.base.checks import check_timeout
from etcd_layers.base.ops import GetOp
from etcd_layers.base.responses import GetResponse, KeyValue
from etcd_layers.leasing._entry import FrozenList

# The options of a single-key get that leave a hit's answer as it is (`serializable` only
# spares a quorum, which memory needs no more than a member does) or pick the keys_only view.
_VIEW_OPTIONS: Final = frozenset({"serializable", "keys_only", "timeout"})


class Published:
    """Answers to gets of owned keys, which any thread reads without the cache's lock.

    One writer, `LeaseCache`, under its lock: it publishes a key's answers only while memory
    may give them (the key owned, no write of ours to it in flight, the answers at the
    client's revision floor) and withdraws them the moment that stops being so. Readers take
    no lock: a dict lookup and a float read are each atomic under the GIL, so a reader gets
    answers that memory could give at some instant during its call, as a locked lookup would.
    The session's validity runs out with time rather than by a write: readers read the clock.

    Args:
        clock: the cache's monotonic clock.
        hits: advanced once per answer given (a `Tally`'s counter: lock-free).
    """

    __slots__ = ("_clock", "_hits", "_keys_only", "_plain", "valid_until")

    def __init__(self, clock: Callable[[], float], hits: Iterator[int]) -> None:
        self._clock = clock
        self._hits = hits
        self._plain: dict[bytes, GetResponse] = {}
        self._keys_only: dict[bytes, GetResponse] = {}
        self.valid_until = 0.0  # monotonic seconds: written by the cache, under its lock

    # --- readers: any thread, no lock ----------------------------------------------------

    def plain(self, key: bytes) -> GetResponse | None:
        """Return the shared answer to `Op.get(key)` (and counts a hit), or None."""
        response = self._plain.get(key)
        if response is not None and self._clock() < self.valid_until:
            next(self._hits)
            return response
        return None

    def view(self, key: bytes, keys_only: bool) -> GetResponse | None:
        """Return the shared answer to a get of `key`, keys only or not (and counts a hit)."""
        response = (self._keys_only if keys_only else self._plain).get(key)
        if response is not None and self._clock() < self.valid_until:
            next(self._hits)
            return response
        return None

    # --- the writer: LeaseCache, under its lock ------------------------------------------

    def publish(self, key: bytes, response: GetResponse) -> None:
        """Publish `response`, a plain get's answer, and its keys_only view."""
        self._keys_only[key] = keys_only_view(response)
        self._plain[key] = response

    def withdraw(self, key: bytes) -> None:
        """Stop answering for `key`."""
        self._plain.pop(key, None)
        self._keys_only.pop(key, None)

    def clear(self) -> None:
        """Stop answering for every key (in place: readers may hold the dicts)."""
        self._plain.clear()
        self._keys_only.clear()

    def __len__(self) -> int:
        return len(self._plain)


def keys_only_view(response: GetResponse) -> GetResponse:
    """Return a plain get's answer as etcd gives it to the same get with `keys_only`."""
    if not response.kvs or not response.kvs[0].value:
        return response
    kv = response.kvs[0]
    bare = KeyValue(kv.key, b"", kv.create_revision, kv.mod_revision, kv.version, kv.lease)
    return GetResponse(response.header, FrozenList((bare,)), response.count, response.more)


def options_view(options: Mapping[str, object]) -> bool | None:
    """Return `keys_only` if `get(key, **options)` of an owned key is a published answer.

    That is: only `serializable`, `keys_only` (each exactly a bool) and `timeout` are given.
    None for anything else, which the general path checks and answers.

    Raises:
        TypeError, ValueError: `timeout` is not a valid timeout (as the general path).
    """
    if not options.keys() <= _VIEW_OPTIONS:
        return None
    keys_only = options.get("keys_only", False)
    if type(keys_only) is not bool or type(options.get("serializable", False)) is not bool:
        return None
    if "timeout" in options:
        check_timeout(options["timeout"])
    return keys_only


def op_view(op: GetOp) -> bool | None:
    """Return `op.keys_only` if a published answer answers `op`, else None.

    Published answers are a single key's at the newest revision: a limit or a sort order
    changes nothing for one key, and `serializable` nothing for memory; a revision filter,
    `count_only`, a range or a past revision go the general way.
    """
    if (
        op.range_end
        or op.revision
        or op.count_only
        or op.min_mod_revision
        or op.max_mod_revision
        or op.min_create_revision
        or op.max_create_revision
    ):
        return None
    return op.keys_only
