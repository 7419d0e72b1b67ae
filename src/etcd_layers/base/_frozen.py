"""Fast construction of frozen slotted dataclasses: fill a mutable twin, then hand it the class.

A frozen dataclass sets each field in `__init__` through `object.__setattr__`, because its own
`__setattr__` refuses; that is about 100 ns a field, and a `GetOp` has 13 (1.4 µs, most of a
single in-process get, and most of what the namespace layer pays to move an Op into its prefix).
A plain attribute store into a slot costs a tenth of that, but only on a class that does not
override `__setattr__`. So each value class gets a *draft*: a class with the same base and the
same slots, without the frozen `__setattr__`. Its `__new__` fills a draft with plain stores and
then assigns `__class__`, which CPython allows between classes of identical layout; from then
on the object is an ordinary frozen instance (eq, hash, repr, the refusal to change a field).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = ["draft_class", "filled_slowly", "reduce_by_fields"]


def draft_class(cls: type) -> type:
    """Return a mutable class with `cls`'s bases and slots, whose instances may become `cls`.

    The bases must not override `__setattr__` (a frozen dataclass base would), or the draft's
    stores take the slow path again; `tests/unit/test_frozen_values.py` checks every draft.
    """
    slots: tuple[str, ...] = cls.__slots__  # type: ignore[attr-defined]  # dataclass(slots=True)
    return type(f"_{cls.__name__}Draft", cls.__bases__, {"__slots__": slots})


def filled_slowly(cls: type[T], names: Iterable[str], values: Iterable[object]) -> T:
    """Build an instance of `cls` (a subclass of a value class, with no draft) field by field."""
    instance: T = object.__new__(cls)
    for name, value in zip(names, values, strict=True):
        object.__setattr__(instance, name, value)
    return instance


def reduce_by_fields(value: Any) -> tuple[type, tuple[object, ...]]:
    """`__reduce__` for a value whose `__new__` takes every field positionally (pickle, copy)."""
    fields = dataclasses.fields(value)
    return type(value), tuple([getattr(value, field.name) for field in fields])
