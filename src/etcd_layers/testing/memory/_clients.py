"""The clients MemoryEtcd hands out: the real Client and AsyncClient over in-process channels."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from google.protobuf.message import Message

from etcd_layers.base.async_client import AsyncClient
from etcd_layers.base.client import Client
from etcd_layers.base.transport import (
    AsyncKeepAliveHandle,
    KeepAliveHandle,
    async_client_over,
    client_over,
)
from etcd_layers.testing.memory._aio_channel import AsyncMemoryChannel
from etcd_layers.testing.memory._channel import MemoryChannel, RpcError, gone
from etcd_layers.testing.memory._errors import StoreError

if TYPE_CHECKING:
    from etcd_layers.testing.memory._etcd import MemoryEtcd


_CLOSING: Final[set[asyncio.Task[None]]] = set()  # close() tasks, kept until they finish


class MemoryClient(Client):
    """A Client of a MemoryEtcd: every call is the real Client's, over in-process channels.

    Its one addition: a running keep-alive tells the store, which then renews the lease at
    every step of a ManualClock (API.md: advancing the clock never expires a lease whose
    keep-alive runs).
    """

    _memory: MemoryEtcd

    def keep_alive(self, lease_id: int, *, timeout: float | None = None) -> KeepAliveHandle:
        handle = super().keep_alive(lease_id, timeout=timeout)
        self._memory.keep_alive_started(handle.lease_id, handle.responses)
        return handle


class AsyncMemoryClient(AsyncClient):
    """An AsyncClient of a MemoryEtcd (see MemoryClient)."""

    _memory: MemoryEtcd

    async def keep_alive(
        self, lease_id: int, *, timeout: float | None = None
    ) -> AsyncKeepAliveHandle:
        handle = await super().keep_alive(lease_id, timeout=timeout)
        self._memory.keep_alive_started(handle.lease_id, handle.responses)
        return handle


def direct_answer(etcd: MemoryEtcd) -> Callable[[str, Message], Message]:
    """The store's answer to a client's unary requests, as the gRPC channel would give it.

    The client takes it instead of its retry loop (base.transport's `direct`): a refusal is
    the grpc.RpcError a channel would raise, so the client maps it to the same EtcdError.
    """
    handlers: dict[str, Callable[[Message], Message]] = {}

    def answer(path: str, request: Message) -> Message:
        if etcd.closed:
            raise gone()
        try:
            handler = handlers.get(path)
            if handler is None:
                handler = handlers[path] = etcd.handler(path)
            return handler(request)
        except StoreError as error:
            raise RpcError.of(error) from None

    return answer


def memory_client(etcd: MemoryEtcd, timeout: float | None) -> Client:
    """A connected MemoryClient of `etcd`, closed when `etcd` closes."""
    etcd.check_usable()
    client = client_over(
        MemoryClient,
        lambda _address: MemoryChannel(etcd),
        etcd.new_address(),
        timeout=timeout,
        direct=direct_answer(etcd),
    )
    client._memory = etcd
    etcd.add_closer(client.close)
    return client


def memory_async_client(etcd: MemoryEtcd, timeout: float | None) -> AsyncClient:
    """An AsyncMemoryClient of `etcd`, closed on its loop when `etcd` closes."""
    etcd.check_usable()
    loops: list[asyncio.AbstractEventLoop] = []  # the loop of its first call
    answer = direct_answer(etcd)

    def direct(path: str, request: Message) -> Message:
        if not loops:
            loops.append(asyncio.get_running_loop())
        return answer(path, request)

    def channel(address: str) -> AsyncMemoryChannel:
        del address  # every endpoint is the same store
        return AsyncMemoryChannel(etcd, on_first_use=loops.append)

    client = async_client_over(
        AsyncMemoryClient, channel, etcd.new_address(), timeout=timeout, direct=direct
    )
    client._memory = etcd

    def close_on_its_loop() -> None:
        # The client lives on its loop: close it there (from this thread or another one).
        loop = loops[0] if loops else None
        if loop is None or loop.is_closed():
            return  # never used, or its loop is gone: nothing runs
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            closing = loop.create_task(client.close(), name="etcd_layers.memory.aio.close")
            _CLOSING.add(closing)
            closing.add_done_callback(_CLOSING.discard)
        else:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                asyncio.run_coroutine_threadsafe(client.close(), loop)

    etcd.add_closer(close_on_its_loop)
    return client
