"""AsyncEndpointManager: the asyncio EndpointManager, over any async KV + Watcher speaker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Generator, Iterable
from typing import Any, Final

from etcd_layers.base.async_protocols import AsyncKV
from etcd_layers.base.checks import check_timeout
from etcd_layers.base.deadline import Deadline
from etcd_layers.base.keys import StrOrBytes
from etcd_layers.base.responses import Event, TxnResponse
from etcd_layers.errors import CanceledError
from etcd_layers.mirror import AsyncMirror
from etcd_layers.naming._plan import lease_of, plan_update
from etcd_layers.naming._values import (
    Endpoint,
    Update,
    UpdateOp,
    check_target,
    list_of,
    prefix_of,
    updates_of,
)

__all__ = ["AsyncEndpointManager", "AsyncEndpointWatch"]

_POLL: Final = 1.0  # seconds between looks at whether the mirror under a watch has stopped


class AsyncEndpointManager:
    """The asyncio form of `EndpointManager`: the same calls, as coroutines.

    ```python
    em = AsyncEndpointManager(acli, "services/api")
    await em.add_endpoint("services/api/node-1", Endpoint("10.0.0.1:8080"))
    async with em.watch() as updates:       # or: updates = await em.watch()
        async for batch in updates: ...
    ```
    """

    def __init__(self, client: AsyncKV, target: StrOrBytes) -> None:
        """Manage `target`'s endpoints through `client` (an async KV + Watcher speaker).

        Raises:
            TypeError: `client` speaks no KV, or `target` is neither str nor bytes.
            ValueError: an empty `target`.
        """
        if not callable(getattr(client, "do", None)):
            raise TypeError(f"client must speak the AsyncKV Protocol, not {type(client).__name__}")
        self._client = client
        self._target = check_target(target)

    @property
    def target(self) -> str:
        """The target whose endpoints this manages."""
        return self._target

    async def update(
        self, updates: Iterable[Update], *, lease: int = 0, timeout: float | None = None
    ) -> TxnResponse:
        """Apply several updates in one txn, atomically (as EndpointManager.update)."""
        ops = plan_update(self._target, updates, lease)
        return await self._client.txn(success=ops, timeout=check_timeout(timeout))

    async def add_endpoint(
        self,
        key: StrOrBytes,
        endpoint: Endpoint,
        *,
        lease: int = 0,
        timeout: float | None = None,
    ) -> TxnResponse:
        """Store `endpoint` under `key` (which must start with `target + "/"`)."""
        update = Update(UpdateOp.ADD, _text(key), endpoint)
        return await self.update([update], lease=lease, timeout=timeout)

    async def delete_endpoint(
        self, key: StrOrBytes, *, timeout: float | None = None
    ) -> TxnResponse:
        """Remove the endpoint stored under `key`."""
        update = Update(UpdateOp.DELETE, _text(key), Endpoint(""))
        return await self.update([update], timeout=timeout)

    async def register(
        self,
        key: StrOrBytes,
        endpoint: Endpoint,
        session: object,
        *,
        timeout: float | None = None,
    ) -> TxnResponse:
        """Store `endpoint` under `key`, attached to `session`'s lease (an AsyncSession)."""
        return await self.add_endpoint(key, endpoint, lease=lease_of(session), timeout=timeout)

    async def list(self, *, timeout: float | None = None) -> dict[str, Endpoint]:
        """Return every endpoint of the target, by key (as EndpointManager.list)."""
        response = await self._client.get(
            prefix_of(self._target), prefix=True, timeout=check_timeout(timeout)
        )
        return list_of(response.kvs)

    def watch(self, *, timeout: float | None = None) -> AsyncEndpointWatch:
        """Follow the target's endpoints (as EndpointManager.watch).

        Returns a handle to enter with `async with` or to await; either starts it.
        """
        return AsyncEndpointWatch(self._client, self._target, check_timeout(timeout))


def _text(key: StrOrBytes) -> str:
    return key.decode() if isinstance(key, bytes) else key  # anything else: check_key refuses


class AsyncEndpointWatch:
    """A running watch of a target's endpoints: `async for` it for batches of Updates."""

    def __init__(self, client: AsyncKV, target: str, timeout: float | None) -> None:
        self._mirror = AsyncMirror(client, prefix_of(target), timeout=timeout)
        self._batches: asyncio.Queue[list[Update] | None] = asyncio.Queue()
        self._started = False
        self._ended = False

    async def start(self) -> AsyncEndpointWatch:
        """Load the current set and start following (what `await` and `async with` do)."""
        await self._mirror.start()
        self._mirror.subscribe(self._on_events, replay=True)
        return self

    def __await__(self) -> Generator[Any, None, AsyncEndpointWatch]:
        return self.start().__await__()

    def _on_events(self, events: list[Event]) -> None:
        updates = updates_of(events)
        if updates or not self._started:  # the first batch (the current set) even if empty
            self._batches.put_nowait(updates)
        self._started = True

    async def next(self, timeout: float | None = None) -> list[Update]:
        """Return the next batch (builtin TimeoutError when none came within `timeout`).

        Raises:
            CanceledError: the watch has ended.
        """
        deadline = Deadline(check_timeout(timeout))
        while True:
            if self._ended:
                raise CanceledError("the endpoint watch has ended")
            try:
                batch = await asyncio.wait_for(self._batches.get(), deadline.left_or(_POLL))
                break
            except asyncio.TimeoutError:  # the builtin one from 3.11 on
                if self._mirror.closed:  # the client was closed under it
                    self._ended = True
                elif deadline.expired():
                    raise TimeoutError("no endpoint update within the timeout") from None
        if batch is None:
            self._ended = True
            raise CanceledError("the endpoint watch has ended")
        return batch

    def __aiter__(self) -> AsyncIterator[list[Update]]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[list[Update]]:
        while True:
            try:
                yield await self.next()
            except CanceledError:
                return

    async def cancel(self) -> None:
        """End the watch (idempotent)."""
        await self._mirror.close()
        self._batches.put_nowait(None)

    async def __aenter__(self) -> AsyncEndpointWatch:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.cancel()
