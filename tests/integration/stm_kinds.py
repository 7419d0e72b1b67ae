"""Run one STM test body on every client kind and layer: sync or asyncio, plain or namespaced.

Test bodies write `apply` once, as an `async def` that awaits `tx.get`/`tx.rev`. On the sync
kind, `StmRunner` hands it the sync STM behind `AwaitableReads` and runs the coroutine to its
end at once (its awaits never suspend); on the asyncio kind, `stm()` gets the async apply
itself, awaited on the `AsyncClientFacade` loop.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Final, Protocol, cast

from conftest import AsyncClientFacade

from etcd_layers import Client, namespace
from etcd_layers.base.keys import StrOrBytes
from etcd_layers.base.protocols import KV
from etcd_layers.base.responses import TxnResponse
from etcd_layers.concurrency import STM, stm

LAYERS: Final = ("plain", "namespace")


class Tx(Protocol):
    """What a test's apply uses: the async reads of AsyncSTM, the plain writes of both."""

    async def get(self, *keys: StrOrBytes) -> bytes: ...
    async def rev(self, key: StrOrBytes) -> int: ...
    def put(self, key: StrOrBytes, value: StrOrBytes, *, lease: int = 0) -> None: ...
    def delete(self, key: StrOrBytes) -> None: ...


Apply = Callable[[Tx], Awaitable[object]]


class AwaitableReads:
    """The sync STM with awaitable reads that complete at once."""

    def __init__(self, tx: STM) -> None:
        self.tx = tx

    async def get(self, *keys: StrOrBytes) -> bytes:
        return self.tx.get(*keys)

    async def rev(self, key: StrOrBytes) -> int:
        return self.tx.rev(key)

    def put(self, key: StrOrBytes, value: StrOrBytes, *, lease: int = 0) -> None:
        self.tx.put(key, value, lease=lease)

    def delete(self, key: StrOrBytes) -> None:
        self.tx.delete(key)


def run_now(awaitable: Awaitable[object]) -> object:
    """Run a coroutine that never suspends to its end, and return its result."""
    coroutine = cast(Coroutine[Any, Any, object], awaitable)
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    coroutine.close()
    raise AssertionError("a sync-kind apply suspended")


class StmRunner:
    """stm() over one client kind and layer, and a sync KV on the same keys to check with.

    Args:
        client: a Client, or an AsyncClientFacade (the asyncio kind).
        layer: "plain" (keys are `prefix + name`) or "namespace" (`namespace.wrap(..., prefix)`).
        prefix: the test's key prefix.
        sync_client: a sync Client for setup and checks.
    """

    def __init__(
        self, client: Client | AsyncClientFacade, layer: str, prefix: bytes, sync_client: Client
    ) -> None:
        self.prefix = prefix
        self.layer = layer
        self.facade = client if isinstance(client, AsyncClientFacade) else None
        base: Any = client.client if isinstance(client, AsyncClientFacade) else client
        self.speaker: Any = namespace.wrap(base, prefix) if layer == "namespace" else base
        self.kv: KV = namespace.wrap(sync_client, prefix) if layer == "namespace" else sync_client
        self.raw = sync_client

    @property
    def kind(self) -> str:
        return "Client" if self.facade is None else "AsyncClient"

    def key(self, name: str) -> bytes:
        """The key `name` as the stm and `kv` see it."""
        return name.encode() if self.layer == "namespace" else self.prefix + name.encode()

    def raw_key(self, name: str) -> bytes:
        """The key `name` in etcd's own key space."""
        return self.prefix + name.encode()

    def stm(self, apply: Apply, **options: Any) -> TxnResponse:
        """Run `apply` through stm() on this kind and layer, to its end."""
        if self.facade is None:
            sync_kv = cast(KV, self.speaker)
            return stm(sync_kv, lambda tx: run_now(apply(AwaitableReads(tx))), **options)
        return self.facade.run(stm(self.speaker, apply, **options))  # type: ignore[arg-type]  # a coroutine on this kind
