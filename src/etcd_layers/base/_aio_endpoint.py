"""One endpoint of the asyncio client: its address, its `grpc.aio` channel and its running calls.

The asyncio twin of base._endpoint.Endpoint. Everything here runs on the client's event loop,
so the counts need no lock; closing a channel is a coroutine, so the methods that may end in a
close say so (`release`, `retire` return True) and the caller awaits `close()`.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Sequence
from typing import Any, Final, TypeVar

import grpc
import grpc.aio

from etcd_layers.base._endpoint import TLSConfig
from etcd_layers.base._methods import Method
from etcd_layers.errors import UnavailableError

__all__ = ["AsyncEndpoint", "new_async_channel", "wait_any_ready"]

ResponseT = TypeVar("ResponseT")

# grpcio >= 1.62 sends a method registered in advance on a faster path (its generated stubs
# ask for it the same way); older grpcio has no such keyword.
_REGISTERED: Final[dict[str, Any]] = (
    {"_registered_method": True}
    if "_registered_method" in inspect.signature(grpc.aio.Channel.unary_unary).parameters
    else {}
)


def new_async_channel(
    address: str,
    tls: TLSConfig | None,
    options: list[tuple[str, object]],
    interceptors: Sequence[grpc.aio.ClientInterceptor] = (),
) -> grpc.aio.Channel:
    """Open a `grpc.aio` channel to `address` (no I/O yet): secure when `tls` is given."""
    chain = list(interceptors) or None
    if tls is None:
        return grpc.aio.insecure_channel(address, options=options, interceptors=chain)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=tls.ca_cert, private_key=tls.key, certificate_chain=tls.cert
    )
    if tls.server_name:
        options = [*options, ("grpc.ssl_target_name_override", tls.server_name)]
    return grpc.aio.secure_channel(address, credentials, options=options, interceptors=chain)


class AsyncEndpoint:
    """One endpoint: its channel, its cached multi-callables and the calls running on it.

    An endpoint removed by `set_endpoints` is retired: it takes no new call, and its channel
    closes once the calls still running on it have ended (a write canceled mid-flight by a
    close could not be re-sent).
    """

    __slots__ = ("_active", "_callables", "address", "channel", "retired")

    def __init__(self, address: str, channel: grpc.aio.Channel) -> None:
        self.address = address
        self.channel = channel
        self.retired = False
        self._active = 0
        self._callables: dict[str, grpc.aio.UnaryUnaryMultiCallable[bytes, object]] = {}

    def acquire(self) -> bool:
        """Count one more call on this endpoint; False (and no count) once it is retired."""
        if self.retired:
            return False
        self._active += 1
        return True

    def release(self) -> bool:
        """End a call counted by acquire(); True: it was the last of a retired endpoint."""
        self._active -= 1
        return self.retired and not self._active

    def retire(self) -> bool:
        """Take no new call; True: no call runs, so the channel may close now."""
        self.retired = True
        return not self._active

    async def close(self) -> None:
        """Take no new call and close the channel now, canceling the running ones."""
        self.retired = True
        await self.channel.close()

    def callable(
        self, method: Method[ResponseT]
    ) -> grpc.aio.UnaryUnaryMultiCallable[bytes, ResponseT]:
        """Return the cached multi-callable for `method`, taking a serialized request."""
        found = self._callables.get(method.path)
        if found is None:
            found = self.channel.unary_unary(
                method.path,
                request_serializer=None,  # callers pass serialized bytes
                response_deserializer=method.parse,
                **_REGISTERED,
            )
            self._callables[method.path] = found
        return found  # type: ignore[return-value]  # keyed by path, whose parser fixes ResponseT


async def wait_any_ready(endpoints: Sequence[AsyncEndpoint], timeout: float) -> None:
    """Return once some endpoint has a ready channel.

    Raises:
        UnavailableError: none did within `timeout`.
    """
    waits = [asyncio.ensure_future(endpoint.channel.channel_ready()) for endpoint in endpoints]
    try:
        done, _ = await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()
        await asyncio.gather(*waits, return_exceptions=True)
    if not any(not wait.cancelled() and wait.exception() is None for wait in done):
        addresses = [endpoint.address for endpoint in endpoints]
        raise UnavailableError(f"no endpoint of {addresses} answered within {timeout:g}s")
