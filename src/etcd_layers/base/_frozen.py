"""Fast construction of frozen slotted dataclasses: fill a mutable twin, then hand it the class.

A frozen dataclass sets each field in `__init__` through `object.__setattr__`, because its own
`__setattr__` refuses; that is about 100 ns a field, and a `GetOp` has 13 (1.4 µs, most of a
single in-process get, and most of what the namespace layer pays to move an Op into its prefix).
A plain attribute store into a slot costs a tenth of that, but only on a class that does not
override `__setattr__`. So `built_by_draft` gives a value class a *draft*: a class with the same
bases and slots, without the frozen `__setattr__`. The class's `__new__` fills a draft with
plain stores and then assigns `__class__`, which CPython allows between classes of identical
layout; from then on the object is an ordinary frozen instance (eq, hash, repr, the refusal to
change a field). The code is generated from the fields, as dataclasses generates `__init__`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any, TypeVar

__all__ = ["built_by_draft", "draft_class", "filled_slowly", "reduce_by_fields"]

T = TypeVar("T")

# The fields a layer may move to another key space (`_with_key`): namespace's prefix.
_KEY_FIELDS = ("key", "range_end")


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


def built_by_draft(cls: type[T]) -> type[T]:
    """Class decorator, above `@dataclass(frozen=True, slots=True)`: build through a draft.

    Replaces the generated `__init__` by a `__new__` of the same signature (type checkers still
    read the dataclass's), adds `__reduce__` (pickle and copy call `__new__` with every field),
    and, for a class with a `key` field, `_with_key(key[, range_end])`: a copy with only the
    key (and range end) replaced, for a layer that moves a checked value to another key space.
    A subclass is built field by field, as before.

    Raises:
        TypeError: `cls` is not a slotted dataclass.
    """
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]  # checked to be a dataclass
    names = tuple(field.name for field in fields)
    if getattr(cls, "__slots__", None) != names:
        raise TypeError(f"{cls.__name__} must be a dataclass with slots=True")
    scope: dict[str, Any] = {
        "_new": object.__new__,
        "_draft": draft_class(cls),
        "_cls": cls,
        "_slowly": filled_slowly,
        "_names": names,
        "_replace": dataclasses.replace,
    }
    parameters = []
    factories = []  # a field with a default_factory gets a fresh default on every call
    for field in fields:
        if field.default_factory is not dataclasses.MISSING:
            scope[f"_factory_{field.name}"] = field.default_factory
            scope["_MISSING"] = dataclasses.MISSING
            parameters.append(f"{field.name}=_MISSING")
            factories += [
                f"    if {field.name} is _MISSING:",
                f"        {field.name} = _factory_{field.name}()",
            ]
        elif field.default is dataclasses.MISSING:
            parameters.append(field.name)
        else:
            scope[f"_default_{field.name}"] = field.default
            parameters.append(f"{field.name}=_default_{field.name}")
    source = [
        f"def __new__(cls, {', '.join(parameters)}):",
        *factories,
        "    if cls is not _cls:",
        f"        return _slowly(cls, _names, ({', '.join(names)},))",
        "    draft = _new(_draft)",
        *(f"    draft.{name} = {name}" for name in names),
        "    draft.__class__ = _cls",
        "    return draft",
    ]
    moved = [name for name in _KEY_FIELDS if name in names]
    if moved:
        changes = ", ".join(f"{name}={name}" for name in moved)
        source += [
            f"def _with_key(self, {', '.join(moved)}):",
            "    if type(self) is not _cls:",
            f"        return _replace(self, {changes})",
            "    draft = _new(_draft)",
            *(f"    draft.{name} = {name if name in moved else 'self.' + name}" for name in names),
            "    draft.__class__ = _cls",
            "    return draft",
        ]
    exec("\n".join(source), scope)  # generated from the fields, as dataclasses does
    cls.__new__ = staticmethod(scope["__new__"])  # type: ignore[method-assign]  # same signature
    del cls.__init__  # object's takes over: __new__ has set every field
    cls.__reduce__ = reduce_by_fields  # type: ignore[assignment]  # see reduce_by_fields
    if moved:
        cls._with_key = scope["_with_key"]  # type: ignore[attr-defined]  # declared by the class
    return cls
