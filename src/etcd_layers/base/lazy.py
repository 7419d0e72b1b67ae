"""Lists that convert their items on first use: KeyValues from protobuf, a layer's copies."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final, Generic, TypeVar

from etcd_layers.base.responses import KeyValue

T = TypeVar("T")

# Conversion is rare and short; one lock for all lists keeps every list two slots small.
_LOAD_LOCK: Final = threading.Lock()


class LazyList(list[T], Generic[T]):
    """A real `list` whose items are `convert(messages)`, computed when the list is first used.

    Every list operation loads the items first, so the list behaves as an ordinary list
    (equality, iteration, pickling as a plain list, mutation). A layer that maps a lower
    layer's list (namespace cutting its prefix from the responses of a txn) uses it to pay
    for the mapping only if the list is read.
    """

    __slots__ = ("_convert", "_pending")

    def __init__(
        self, messages: Sequence[object], convert: Callable[[Iterable[Any]], list[T]]
    ) -> None:
        # list.__init__ is not called: a new list is empty already, and this one is built on
        # every call of a layer.
        # Another lazy list stays unloaded until this one is used (a layer mapping a lower
        # layer's result, e.g. namespace cutting its prefix); len() would load it now.
        deferred = isinstance(messages, LazyList) or len(messages)
        self._pending: Sequence[object] | None = messages if deferred else None
        self._convert = convert

    def _load(self) -> None:
        pending = self._pending
        if pending is None:
            return
        # Converted outside the lock: the source may itself be a lazy list, whose loading
        # takes the lock. Two racing threads may both convert; only one result is kept.
        items = self._convert(pending)
        with _LOAD_LOCK:
            self._extend_once(items)

    def _extend_once(self, items: list[T]) -> None:
        if self._pending is None:  # another thread loaded it while this one converted
            return
        list.extend(self, items)
        self._pending = None

    def __reduce__(self) -> tuple[type[list[T]], tuple[list[T]]]:
        self._load()
        return (list, (list(list.__iter__(self)),))

    def __copy__(self) -> list[T]:
        self._load()
        return list(list.__iter__(self))

    def __deepcopy__(self, memo: dict[int, object]) -> list[T]:
        return self.__copy__()  # the items are frozen values: sharing them is a deep copy


class LazyKeyValues(LazyList[KeyValue]):
    """A real `list` of KeyValues whose items are built from protobuf messages when first used.

    A range of a thousand keys costs about as much to convert into KeyValues as the round
    trip itself; callers that only look at `count`, `header` or a few items should not pay for
    it.
    """

    __slots__ = ()


def _loading(name: str) -> Callable[..., Any]:
    method = getattr(list, name)

    def loaded(self: LazyList[Any], *args: Any, **kwargs: Any) -> Any:
        self._load()
        for arg in args:
            # list's C code reads the items of another list (subclasses included) directly,
            # so a lazy operand (`==`, `<`, `+` ...) must be loaded too, or it looks empty.
            if isinstance(arg, LazyList):
                arg._load()
        return method(self, *args, **kwargs)

    loaded.__name__ = name
    loaded.__doc__ = method.__doc__
    return loaded


for _name in [
    "__getitem__",
    "__setitem__",
    "__delitem__",
    "__iter__",
    "__reversed__",
    "__len__",
    "__contains__",
    "__eq__",
    "__ne__",
    "__lt__",
    "__le__",
    "__gt__",
    "__ge__",
    "__repr__",
    "__add__",
    "__iadd__",
    "__mul__",
    "__rmul__",
    "__imul__",
    "append",
    "extend",
    "insert",
    "remove",
    "pop",
    "clear",
    "index",
    "count",
    "copy",
    "sort",
    "reverse",
]:
    setattr(LazyList, _name, _loading(_name))

del _name
