"""Which kind a speaker of the Protocols is, sync or asyncio: whether its calls are coroutines.

`KV` and `AsyncKV` (and their Watcher and Lease twins) name the same methods, so a
runtime-checkable Protocol alone cannot tell a Client from an AsyncClient. The kind is what
the layers dispatch on (`namespace.wrap(acli, p)` is an async layer), and what the Protocols'
`isinstance` checks add to the presence of the names (`KindedProtocolMeta`).
"""

from __future__ import annotations

import inspect
from typing import Final, _ProtocolMeta

__all__ = ["KindedProtocolMeta", "speaks_asyncio"]

# The methods that tell the kinds apart, in the order they are looked for: each is a coroutine
# function in the asyncio Protocols and a plain one in the sync ones. (`watch` is not one: it
# is a plain function in both, returning a Watch or an AsyncWatchStart.)
KIND_PROBES: Final = ("do", "time_to_live", "grant", "request_progress")


def speaks_asyncio(speaker: object) -> bool:
    """Return whether `speaker`'s Protocol methods are coroutine functions.

    The first of `do`, `time_to_live`, `grant` and `request_progress` that `speaker` has
    decides; a layer's refusal of one (AttributeError) passes on to the next. An object with
    none of them is sync. A layer over a layer is of its kind: an async layer's `do` is itself
    a coroutine function.
    """
    for name in KIND_PROBES:
        method = getattr(speaker, name, None)
        if method is not None:
            return inspect.iscoroutinefunction(method)
    return False


class KindedProtocolMeta(_ProtocolMeta):
    """The metaclass of KV, Watcher, Lease and their async twins: `isinstance` checks the kind.

    An object is an instance when it has every member (as for any runtime-checkable Protocol)
    and is of the Protocol's kind: an AsyncClient is an AsyncKV and not a KV, a Client the
    reverse, on every Python version.
    """

    def __instancecheck__(self, instance: object) -> bool:
        if not super().__instancecheck__(instance):
            return False
        return speaks_asyncio(instance) == speaks_asyncio(self)
