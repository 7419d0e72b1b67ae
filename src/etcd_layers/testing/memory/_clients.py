"""The clients MemoryEtcd hands out: the real Client and AsyncClient over in-process channels."""

from __future__ import annotations

from typing import TYPE_CHECKING

from etcd_layers.base._aio_connection import AsyncConnection
from etcd_layers.base._aio_keepalive_handle import AsyncKeepAliveHandle
from etcd_layers.base._connection import Connection
from etcd_layers.base._keepalive_handle import KeepAliveHandle
from etcd_layers.base._settings import DEFAULT_MAX_SEND
from etcd_layers.base.async_client import AsyncClient
from etcd_layers.base.client import Client
from etcd_layers.testing.memory._aio_channel import AsyncMemoryChannel
from etcd_layers.testing.memory._channel import MemoryChannel

if TYPE_CHECKING:
    from etcd_layers.testing.memory._etcd import MemoryEtcd

_DIAL_TIMEOUT = 5.0


class MemoryClient(Client):
    """A Client of a MemoryEtcd: every call is the real Client's, over in-process channels.

    Its one addition: a running keep-alive tells the store, which then renews the lease on
    every tick of a ManualClock (API.md: advancing the clock never expires a lease whose
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


def memory_client(etcd: MemoryEtcd, timeout: float | None) -> Client:
    """A connected MemoryClient of `etcd`, closed when `etcd` closes."""
    etcd.check_usable()
    channels: list[MemoryChannel] = []

    def channel(address: str) -> MemoryChannel:
        del address  # every endpoint is the same store
        made = MemoryChannel(etcd)
        channels.append(made)
        return made

    connection = Connection(
        [etcd.new_address()],
        tls=None,
        options=[],
        username=None,
        password=None,
        require_leader=False,
        default_timeout=timeout,
        dial_timeout=_DIAL_TIMEOUT,
        max_send_size=DEFAULT_MAX_SEND,
        channel_factory=channel,  # type: ignore[arg-type]  # speaks what Connection uses
    )
    client = MemoryClient.from_connection(connection)
    client._memory = etcd
    etcd.add_closer(client.close)
    return client


def memory_async_client(etcd: MemoryEtcd, timeout: float | None) -> AsyncClient:
    """An AsyncMemoryClient of `etcd`; when `etcd` closes, its streams end."""
    etcd.check_usable()
    channels: list[AsyncMemoryChannel] = []

    def channel(address: str) -> AsyncMemoryChannel:
        del address
        made = AsyncMemoryChannel(etcd)
        channels.append(made)
        return made

    connection = AsyncConnection(
        [etcd.new_address()],
        tls=None,
        options=[],
        username=None,
        password=None,
        require_leader=False,
        default_timeout=timeout,
        dial_timeout=_DIAL_TIMEOUT,
        max_send_size=DEFAULT_MAX_SEND,
        channel_factory=channel,  # type: ignore[arg-type]  # speaks what AsyncConnection uses
    )
    client = AsyncMemoryClient.from_connection(connection)
    client._memory = etcd

    def end_streams() -> None:
        for made in channels:
            made.end_streams()

    etcd.add_closer(end_streams)
    return client
