"""Run one STM test body on every client kind and layer: sync or asyncio, plain or namespaced.

Test bodies write `apply` once, as an `async def` that awaits `tx.get`/`tx.rev`. On the sync
kind, `StmRunner` hands it the sync STM behind `AwaitableReads` and runs the coroutine to its
end at once (its awaits never suspend); on the asyncio kind, `stm()` gets the async apply
itself, awaited on the `AsyncClientFacade` loop. `transfer` (Go's TestSTMConflict apply) and
`in_threads` are shared by the STM test modules.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, Protocol, cast

from conftest import AsyncClientFacade

from etcd_layers import Client, namespace
from etcd_layers.base.keys import StrOrBytes
from etcd_layers.base.protocols import KV
from etcd_layers.base.responses import TxnResponse
from etcd_layers.concurrency import STM, stm

LAYERS: Final = ("plain", "namespace")
WAIT: Final = 60.0  # bound on every stm call and thread of a test


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


def in_threads(count: int, work: Callable[[int], object]) -> list[object]:
    """Run `work(i)` for i < count on that many threads at once; return results or raise."""
    start = threading.Barrier(count)

    def started(index: int) -> object:
        start.wait(timeout=WAIT)
        return work(index)

    with ThreadPoolExecutor(max_workers=count, thread_name_prefix="test-stm") as pool:
        futures = [pool.submit(started, index) for index in range(count)]
        return [future.result(timeout=WAIT * 2) for future in futures]


def transfer(
    runner: StmRunner,
    keys: list[bytes],
    source: int,
    seed: int,
    attempt: dict[str, dict[bytes, bytes]] | None = None,
) -> Callable[[Tx], Any]:
    """Go's TestSTMConflict apply: move a random part of the source's balance to another key.

    `attempt` gets the reads and writes of the latest attempt (the committed one, at the end).
    """
    chooser = random.Random(seed)
    seen = {"reads": {}, "writes": {}} if attempt is None else attempt

    async def apply(tx: Tx) -> None:
        seen["reads"], seen["writes"] = {}, {}
        src = await tx.get(keys[source])
        target = chooser.choice([k for i, k in enumerate(keys) if i != source])
        dst = await tx.get(target)
        seen["reads"].update({keys[source]: src, target: dst})
        if int(src) == 0:
            return
        amount = chooser.randrange(int(src)) // 2
        seen["writes"].update(
            {keys[source]: b"%d" % (int(src) - amount), target: b"%d" % (int(dst) + amount)}
        )
        for key, value in seen["writes"].items():
            tx.put(key, value)

    return apply
