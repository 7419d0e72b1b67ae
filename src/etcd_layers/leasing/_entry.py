"""Owned keys' cached state (in an LRU when bounded) and the shared answers built from it."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NoReturn, SupportsIndex

from cachetools import LRUCache

from etcd_layers.base.responses import GetResponse, KeyValue, ResponseHeader


class FrozenList(list[KeyValue]):
    """A list that refuses to change: cached responses are shared by every caller."""

    def __reduce__(self) -> tuple[type[list[KeyValue]], tuple[list[KeyValue]]]:
        return list, (list(self),)  # copies and pickles are plain, mutable lists

    def __eq__(self, other: object) -> bool:
        if type(other) is list or type(other) is FrozenList:
            return list.__eq__(self, other)
        # Another kind of list (the client's lazily converted one, say) compares itself:
        # list's own __eq__ would read its storage directly and skip its loading.
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    __hash__ = None  # a list: unhashable

    def _refuse(self, *args: object, **kwargs: object) -> NoReturn:
        raise TypeError("a response served from the leasing cache is shared and read-only")

    def __setitem__(self, index: SupportsIndex | slice, value: object) -> NoReturn:
        self._refuse()

    def __delitem__(self, index: SupportsIndex | slice) -> NoReturn:
        self._refuse()

    def __iadd__(self, other: Iterable[KeyValue]) -> NoReturn:  # type: ignore[misc,override]  # refuses
        self._refuse()

    def __imul__(self, count: SupportsIndex) -> NoReturn:
        self._refuse()

    append = extend = insert = pop = remove = clear = sort = reverse = _refuse


@dataclass(eq=False, slots=True)
class Entry:
    """One owned key: its state as of `revision`, and our leasing key's create revision.

    Mutable, and only ever touched under the cache's lock.
    """

    incarnation: int
    kv: KeyValue | None
    revision: int
    header: ResponseHeader
    response: GetResponse
    pending: int = 0  # writes of ours in flight: memory must not answer meanwhile


class Lookup(enum.Enum):
    """What memory could do for a single-key read."""

    HIT = "hit"  # answered
    HELD = "held"  # owned, but not answerable now: ask the server, do not acquire
    ABSENT = "absent"  # not owned


class EntryLRU(LRUCache[bytes, Entry]):
    """cachetools' LRU that remembers what it evicted, so the leasing keys can be released."""

    def __init__(self, maxsize: int, evicted: list[tuple[bytes, Entry]]) -> None:
        super().__init__(maxsize)
        self._evicted = evicted

    def popitem(self) -> tuple[bytes, Entry]:
        key, entry = super().popitem()
        self._evicted.append((key, entry))
        return key, entry


def header_at(entry: Entry, floor: int) -> ResponseHeader:
    """Return the entry's header, its revision raised to `floor` (the client's newest)."""
    revision = max(entry.revision, floor)
    if revision == entry.header.revision:
        return entry.header
    return dataclasses.replace(entry.header, revision=revision)


def build_response(entry: Entry, floor: int) -> GetResponse:
    """Return the shared, read-only answer to a plain get of the entry's key."""
    kv = entry.kv
    kvs = FrozenList(() if kv is None else (kv,))
    return GetResponse(header_at(entry, floor), kvs, 0 if kv is None else 1, False)
