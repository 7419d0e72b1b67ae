"""`record`: a frozen dataclass stored as a tuple, for the value types built on every call.

A frozen, slotted dataclass sets each field through `object.__setattr__`: a KeyValue costs
about 0.7 µs to build, and a 1000-key range builds a thousand of them. A record is built by
one `tuple.__new__` call (about a sixth of that) and reads its fields through C-level item
getters, while it keeps what callers of a frozen dataclass rely on:

- `dataclasses.fields`, `dataclasses.replace`, `dataclasses.asdict` and `is_dataclass` work
  (the class carries the dataclass's own field table);
- keyword and positional construction with the same defaults (`default_factory` included),
  the same repr, `__match_args__`, and `copy.replace` on Python 3.13;
- equality only with an instance of the same class (never with a plain tuple), hashing as
  the field tuple, no ordering, and no attribute can be set or added.

Being a tuple underneath also shows through `len()`, iteration and unpacking, in field
order, which frozen dataclasses do not offer.
"""

from __future__ import annotations

import dataclasses
import inspect
import sys
from collections.abc import Callable
from operator import itemgetter
from typing import Any, TypeVar

if sys.version_info >= (3, 11):
    from typing import dataclass_transform
else:  # Python 3.10
    from typing_extensions import dataclass_transform

try:  # the C getter namedtuple uses; a plain property over itemgetter where it is missing
    from _collections import _tuplegetter  # type: ignore[import-not-found, unused-ignore]
except ImportError:  # pragma: no cover - other Python implementations

    def _tuplegetter(index: int, doc: str) -> Any:
        return property(itemgetter(index), doc=doc)


T = TypeVar("T")

_MISSING: Any = dataclasses.MISSING


@dataclass_transform(frozen_default=True, field_specifiers=(dataclasses.field,))
def record(cls: type[T]) -> type[T]:
    """Return `cls`, declared as a frozen dataclass is, rebuilt as a tuple-backed record."""
    spec: Any = dataclasses.dataclass(frozen=True)(cls)
    fields = dataclasses.fields(spec)
    names = tuple(f.name for f in fields)
    namespace: dict[str, Any] = {
        "__slots__": (),
        "__module__": cls.__module__,
        "__qualname__": cls.__qualname__,
        "__doc__": cls.__doc__,
        "__annotations__": inspect.get_annotations(cls),
        "__dataclass_fields__": spec.__dataclass_fields__,
        "__dataclass_params__": spec.__dataclass_params__,
        "__match_args__": names,
        "__new__": _constructor(cls.__name__, fields),
        "__getnewargs__": _getnewargs,
        "__repr__": _repr_for(cls.__qualname__, names),
        "__eq__": _eq,
        "__ne__": _ne,
        "__hash__": tuple.__hash__,
        "__lt__": _unordered,
        "__le__": _unordered,
        "__gt__": _unordered,
        "__ge__": _unordered,
        "__replace__": _replace,
        "__setattr__": _frozen,
        "__delattr__": _frozen,
    }
    for index, name in enumerate(names):
        namespace[name] = _tuplegetter(index, f"Field {name!r}.")
    for name, value in cls.__dict__.items():  # methods and properties declared in the body
        if name not in namespace and name not in _DATACLASS_MADE and name not in names:
            namespace[name] = value
    made: type[T] = type(cls.__name__, (tuple,), namespace)
    return made


# What dataclass() adds to a class body, which the record replaces or does not want.
_DATACLASS_MADE = frozenset(
    {
        "__dict__",
        "__weakref__",
        "__init__",
        "__setattr__",
        "__delattr__",
        "__getstate__",
        "__setstate__",
        "__dataclass_fields__",
        "__dataclass_params__",
        "__match_args__",
        "__repr__",
        "__eq__",
        "__hash__",
        "__annotations__",
        "__doc__",
        "__module__",
        "__qualname__",
    }
)


def _constructor(class_name: str, fields: tuple[dataclasses.Field[Any], ...]) -> Callable[..., Any]:
    """Compile `__new__(cls, f1, f2=default, ...)` making one tuple (dataclass's signature)."""
    params = []
    factories = []
    scope: dict[str, Any] = {"_new": tuple.__new__, "_MISSING": _MISSING}
    for field in fields:
        if field.default is not _MISSING:
            scope[f"_d_{field.name}"] = field.default
            params.append(f"{field.name}=_d_{field.name}")
        elif field.default_factory is not _MISSING:
            scope[f"_f_{field.name}"] = field.default_factory
            params.append(f"{field.name}=_MISSING")
            factories.append(
                f"    if {field.name} is _MISSING:\n        {field.name} = _f_{field.name}()\n"
            )
        else:
            params.append(field.name)
    values = ", ".join(field.name for field in fields)
    source = (
        f"def __new__(cls, {', '.join(params)}):\n"
        + "".join(factories)
        + f"    return _new(cls, ({values},))\n"
    )
    exec(source, scope)  # compiled from the class's own field names, as dataclass does
    made: Callable[..., Any] = scope["__new__"]
    made.__qualname__ = f"{class_name}.__new__"
    return made


def _getnewargs(self: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(self)  # pickled as cls.__new__(cls, *fields)


def _repr_for(qualname: str, names: tuple[str, ...]) -> Callable[[tuple[Any, ...]], str]:
    def represent(self: tuple[Any, ...]) -> str:
        inner = ", ".join(f"{name}={value!r}" for name, value in zip(names, self, strict=True))
        return f"{qualname}({inner})"

    represent.__name__ = "__repr__"
    return represent


def _eq(self: tuple[Any, ...], other: object) -> bool:
    if other.__class__ is self.__class__:
        return tuple.__eq__(self, other)  # type: ignore[arg-type, unused-ignore]  # same class
    # Not NotImplemented for other tuples: Python would then ask tuple's own __eq__.
    return False if isinstance(other, tuple) else NotImplemented


def _ne(self: tuple[Any, ...], other: object) -> bool:
    if other.__class__ is self.__class__:
        return tuple.__ne__(self, other)  # type: ignore[arg-type, unused-ignore]  # same class
    return True if isinstance(other, tuple) else NotImplemented


def _unordered(self: object, other: object) -> Any:
    return NotImplemented  # as a dataclass without order=True: comparing raises TypeError


def _frozen(self: object, name: str, *args: object) -> None:
    raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")


def _replace(self: Any, **changes: Any) -> Any:  # copy.replace, Python 3.13
    return dataclasses.replace(self, **changes)
