"""Forwarded: a proxy class attribute that stands for the wrapped object's method of that name.

A wrapt proxy forwards every attribute it does not define through `__getattr__`. Python 3.12
and later check `isinstance(obj, SomeProtocol)` with `inspect.getattr_static`, which never
calls `__getattr__`, so a forwarded method is invisible to that check: `namespace.wrap(cli, p)`
stopped being a `Lease` on 3.12 because `grant` only existed through forwarding. A layer
therefore names, on its class, every Protocol member it presents. The ones it does not change
are `Forwarded()`; the descriptor hands out the wrapped object's bound method, so a forwarded
call costs one attribute lookup more than a direct one and no extra Python frame.
"""

from __future__ import annotations

from types import FunctionType
from typing import Any

__all__ = ["Forwarded", "protocol_members"]


class Forwarded:
    """A class attribute whose value, on an instance, is `instance.__wrapped__.<name>`.

    >>> import wrapt
    >>> class Loud(wrapt.BaseObjectProxy):
    ...     upper = Forwarded()
    >>> Loud("quiet").upper()
    'QUIET'
    """

    __slots__ = ("name",)

    def __init__(self) -> None:
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        if instance is None:
            return self  # on the class: present to Protocol checks, which is the point
        return getattr(instance.__wrapped__, self.name)  # type: ignore[attr-defined]  # a proxy

    def __repr__(self) -> str:
        return f"Forwarded({self.name!r})"


def protocol_members(*protocols: type) -> frozenset[str]:
    """Return the names of the methods and properties these Protocols declare, bases included.

    These are what `isinstance(obj, protocol)` looks for; the answer is the same on every
    Python version (unlike `typing`'s private bookkeeping of them).
    """
    names: set[str] = set()
    for protocol in protocols:
        for klass in protocol.__mro__:
            if not getattr(klass, "_is_protocol", False) or klass.__name__ == "Protocol":
                continue
            for name, value in vars(klass).items():
                function = value.fget if isinstance(value, property) else value
                if isinstance(function, FunctionType) and function.__qualname__.startswith(
                    f"{klass.__qualname__}."  # written in the class body, not added by typing
                ):
                    names.add(name)
    return frozenset(names)
