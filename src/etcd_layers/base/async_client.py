"""AsyncClient: the etcd v3 client for asyncio, on `grpc.aio`, with Client's keywords and calls."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import cast, overload

import grpc
import grpc.aio

from etcd_layers import config, telemetry
from etcd_layers._compat import Self, Unpack
from etcd_layers.base import _convert, _lease, _methods, _wire
from etcd_layers.base._admin_core import endpoints_from_members
from etcd_layers.base._aio_calls import AsyncCallsMixin
from etcd_layers.base._aio_connection import AsyncConnection, AsyncEndpoint
from etcd_layers.base._aio_keepalive import AsyncKeepAliveMixin
from etcd_layers.base._aio_snapshot import AsyncSnapshotMixin
from etcd_layers.base._aio_watcher import AsyncWatchMixin
from etcd_layers.base._auto_sync import AUTO_SYNC_TIMEOUT
from etcd_layers.base._endpoint import serialize
from etcd_layers.base._proto import rpc_pb2
from etcd_layers.base._settings import (
    DEFAULT_MAX_RECV,
    DEFAULT_MAX_SEND,
    Settings,
    parse_endpoints,
    positive_number,
    settings,
)
from etcd_layers.base.async_protocols import AsyncKV
from etcd_layers.base.checks import check_int, check_timeout
from etcd_layers.base.cluster_version import refusal
from etcd_layers.base.deadline import Deadline
from etcd_layers.base.ops import DeleteOp, GetOp, Op, PutOp, TxnOp
from etcd_layers.base.responses import (
    DeleteResponse,
    GetResponse,
    LeaseKeepAliveResponse,
    PutResponse,
    Response,
    TxnResponse,
)
from etcd_layers.errors import ClosedError, EtcdError, UnavailableError, from_rpc_error

__all__ = ["AsyncClient"]

logger = logging.getLogger("etcd_layers.client")

_KV_OPS = (GetOp, PutOp, DeleteOp, TxnOp)


class AsyncClient(AsyncCallsMixin, AsyncWatchMixin, AsyncKeepAliveMixin, AsyncSnapshotMixin):
    """A connection to an etcd v3 cluster for asyncio; speaks AsyncKV and the unary AsyncLease.

    `AsyncClient(...)` takes Client's keywords and checks them without I/O (it reads the
    certificate files named, which are small); `await connect()` or `async with` connects and
    logs in eagerly, as `Client(...)` does, and a call on a client never connected connects
    first. Use it on one event loop. Cancelling the task that awaits a call cancels the
    request and leaves the client usable.

    Raises:
        TypeError: an argument of the wrong type (before any I/O).
        ValueError: a bad value (as Client's).
    """

    def __init__(
        self,
        endpoints: Sequence[str] | str = ("127.0.0.1:2379",),
        dial_timeout: float = 5.0,
        timeout: float | None = None,
        username: str | None = None,
        password: str | None = None,
        ca_cert: str | Path | None = None,
        cert: str | Path | None = None,
        key: str | Path | None = None,
        server_name: str | None = None,
        max_call_send_msg_size: int = DEFAULT_MAX_SEND,
        max_call_recv_msg_size: int = DEFAULT_MAX_RECV,
        require_leader: bool = False,
        auto_sync_interval: float | None = None,
        keepalive_time: float | None = None,
        keepalive_timeout: float | None = None,
        interceptors: Sequence[object] | None = None,
        reject_old_cluster: bool = False,
    ) -> None:
        self._settings: Settings | None = settings(
            endpoints,
            dial_timeout,
            timeout,
            username,
            password,
            ca_cert,
            cert,
            key,
            server_name,
            max_call_send_msg_size,
            max_call_recv_msg_size,
            require_leader,
            auto_sync_interval,
            keepalive_time,
            keepalive_timeout,
            interceptors=interceptors,
            reject_old_cluster=reject_old_cluster,
            asyncio=True,
        )
        self._conn: AsyncConnection | None = None
        self._connecting = asyncio.Lock()
        self._closed = False
        self._sync_task: asyncio.Task[None] | None = None

    @classmethod
    def from_connection(
        cls, connection: AsyncConnection, *, auto_sync_interval: float | None = None
    ) -> Self:
        """Build a client over `connection` as it is: no connecting, no logging in.

        The seam for tests and other shells, as Client.from_connection; call it on the
        connection's event loop. The client owns the connection: `close()` closes it.
        """
        sync_interval = positive_number(auto_sync_interval, "auto_sync_interval", optional=True)
        client = cls.__new__(cls)
        client._settings = None
        client._connecting = asyncio.Lock()
        client._closed = False
        client._sync_task = None
        client._start(connection, sync_interval)
        return client

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: Unpack[config.ClientOptions]
    ) -> Self:
        """Build a client as etcdctl would with these ETCDCTL_* variables (see Client.from_env).

        No I/O but reading the files named: connect with `await connect()` or `async with`.
        """
        found = config.options_from_env(environ)
        return cls(
            **config.with_overrides(found, overrides, source="ETCDCTL_USER/ETCDCTL_PASSWORD")
        )

    @classmethod
    def from_config(cls, path: str | Path, **overrides: Unpack[config.ClientOptions]) -> Self:
        """Build a client with the settings of a Go clientv3/yaml file (see Client.from_config).

        No I/O but reading the files: connect with `await connect()` or `async with`.
        """
        found = config.options_from_config(path)
        return cls(**config.with_overrides(found, overrides, source=str(path)))

    # --- lifecycle -----------------------------------------------------------------------

    async def connect(self) -> Self:
        """Connect and log in, as `Client(...)` does; nothing to do once connected.

        Raises:
            UnavailableError: no endpoint answered within `dial_timeout`.
            AuthFailedError: the user name or password is wrong.
            CanceledError: the client is closed.
        """
        refused: BaseException | None = None
        async with self._connecting:
            if self._closed:
                raise ClosedError("the client is closed")
            if self._conn is not None:
                return self
            checked = self._settings
            assert checked is not None  # only from_connection leaves it out, connected
            telemetry.refresh()  # an OpenTelemetry SDK configured since: instrument
            conn = AsyncConnection(
                checked.addresses,
                tls=checked.tls,
                options=checked.options,
                username=checked.username,
                password=checked.password,
                require_leader=checked.require_leader,
                default_timeout=checked.default_timeout,
                dial_timeout=checked.dial_timeout,
                max_send_size=checked.max_send_size,
                interceptors=cast("tuple[grpc.aio.ClientInterceptor, ...]", checked.interceptors),
            )
            try:
                await conn.wait_connected(checked.dial_timeout)
                await conn.authenticate(conn.deadline(checked.dial_timeout))
            except BaseException:
                await conn.close()
                raise
            self._start(conn, checked.auto_sync_interval)
            if checked.reject_old_cluster:  # under the lock: no call runs before the verdict
                try:
                    await self._refuse_old_cluster(checked.dial_timeout)
                except BaseException as error:  # noqa: BLE001 (raised below, once closed)
                    self._closed, refused = True, error
        if refused is not None:
            await self.close()  # takes the lock, so only out of it
            raise refused
        return self

    async def _refuse_old_cluster(self, timeout: float) -> None:
        """Raise OldClusterError if a member runs etcd older than 3.4 (Go's checkVersion)."""
        for address in self.endpoints:
            error = refusal(address, (await self.status(address, timeout=timeout)).version)
            if error is not None:
                raise error

    def _start(self, connection: AsyncConnection, sync_interval: float | None) -> None:
        """Serve the calls over `connection` (connected, logged in)."""
        self._conn = connection
        if sync_interval is not None:
            self._sync_task = asyncio.get_running_loop().create_task(
                self._auto_sync(sync_interval), name="etcd_layers.aio.autosync"
            )

    async def connected(self) -> AsyncConnection:
        """Return the connection, connecting first if the client never connected."""
        conn = self._conn
        if conn is None:
            await self.connect()
            conn = self._conn
            assert conn is not None  # connect() set it or raised
        return conn

    @property
    def connection(self) -> AsyncConnection | None:
        """The connection the client runs over (None until connected)."""
        return self._conn

    @property
    def endpoints(self) -> list[str]:
        """The endpoints as `host:port`, in the order given."""
        if self._conn is not None:
            return self._conn.addresses
        return list(self._settings.addresses) if self._settings is not None else []

    async def set_endpoints(self, *endpoints: str) -> None:
        """Use these endpoints from the next request on (see Client.set_endpoints)."""
        addresses, _ = parse_endpoints(list(endpoints))
        conn = await self.connected()
        conn.check_open()
        await conn.set_endpoints(addresses)

    def switch_endpoint(self) -> str:
        """Send unary requests to the next endpoint from now on (see Client.switch_endpoint).

        Raises:
            CanceledError: the client is closed.
            UnavailableError: the client never connected.
        """
        if self._conn is None:
            if self._closed:
                raise ClosedError("the client is closed")
            raise UnavailableError("the client is not connected yet: await connect() first")
        return self._conn.switch_endpoint()

    async def sync_endpoints(self, *, timeout: float | None = None) -> list[str]:
        """Replace the endpoints with the members' client URLs (see Client.sync_endpoints)."""
        response = await self.member_list(timeout=timeout)
        endpoints = endpoints_from_members(response.members)
        if not endpoints:
            raise UnavailableError(
                "the member list names no started voting member with a client URL; "
                "the endpoints were left unchanged"
            )
        conn = await self.connected()
        if set(endpoints) != set(conn.addresses):
            conn.check_open()
            await conn.set_endpoints(endpoints)
        return conn.addresses

    async def _auto_sync(self, interval: float) -> None:
        # Runs until close() cancels it; a failed sync is logged and retried at the next
        # tick, as clientv3's autoSync does.
        while True:
            await asyncio.sleep(interval)
            try:
                await self.sync_endpoints(timeout=AUTO_SYNC_TIMEOUT)
            except ClosedError:
                return
            except EtcdError as err:
                logger.warning("auto sync of the endpoints failed: %s", err, exc_info=True)

    def __repr__(self) -> str:
        conn = self._conn
        state = " closed" if self._closed else "" if conn is not None else " (not connected)"
        return f"<AsyncClient endpoints={self.endpoints!r}{state}>"

    async def close(self) -> None:
        """End every call and close the connections (idempotent)."""
        self._closed = True
        task, self._sync_task = self._sync_task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        async with self._connecting:
            if self._conn is not None:
                await self._conn.close()

    async def __aenter__(self) -> Self:
        return await self.connect()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    # --- KV ------------------------------------------------------------------------------

    # The KV calls, written once over `await do()` (see base.async_protocols).
    put, get, delete, txn = AsyncKV.put, AsyncKV.get, AsyncKV.delete, AsyncKV.txn

    @overload
    async def do(self, op: GetOp, *, timeout: float | None = None) -> GetResponse: ...
    @overload
    async def do(self, op: PutOp, *, timeout: float | None = None) -> PutResponse: ...
    @overload
    async def do(self, op: DeleteOp, *, timeout: float | None = None) -> DeleteResponse: ...
    @overload
    async def do(self, op: TxnOp, *, timeout: float | None = None) -> TxnResponse: ...
    @overload
    async def do(self, op: Op, *, timeout: float | None = None) -> Response: ...
    async def do(self, op: Op, *, timeout: float | None = None) -> Response:
        """Run one Op (see KV.do)."""
        timeout = check_timeout(timeout)
        if not isinstance(op, _KV_OPS):
            raise TypeError(
                f"op must be an Op built by Op.get/put/delete/txn, not {type(op).__name__}"
            )
        conn = self._conn or await self.connected()
        if isinstance(op, GetOp):
            message = await conn.call(
                _methods.RANGE, _wire.range_request(op), timeout, idempotent=True
            )
            return _convert.get_response(message)
        if isinstance(op, PutOp):
            put = await conn.call(_methods.PUT, _wire.put_request(op), timeout, idempotent=False)
            return _convert.put_response(put)
        if isinstance(op, DeleteOp):
            deleted = await conn.call(
                _methods.DELETE_RANGE, _wire.delete_request(op), timeout, idempotent=False
            )
            return _convert.delete_response(deleted)
        txn = await conn.call(
            _methods.TXN, _convert.txn_request(op), timeout, idempotent=not op.is_write
        )
        return _convert.txn_response(txn)

    # --- Lease (the unary calls come from the flows; keep_alive_once renews on a stream) ---

    async def keep_alive_once(
        self, lease_id: int, *, timeout: float | None = None
    ) -> LeaseKeepAliveResponse:
        """Renew a lease once (see Lease.keep_alive_once).

        Raises:
            LeaseNotFoundError: the lease does not exist (etcd answers with TTL <= 0).
        """
        lease_id = check_int(lease_id, "lease_id")
        checked = check_timeout(timeout)
        conn = await self.connected()
        conn.check_open()
        deadline = conn.deadline(checked)

        async def attempt(endpoint: AsyncEndpoint) -> LeaseKeepAliveResponse:
            return await _renew_once(endpoint, lease_id, deadline, conn.metadata)

        # A renewal is idempotent: as Go's KeepAliveOnce, on a stream of its own.
        response = await conn.run(attempt, deadline, idempotent=True, unary=False)
        return _lease.renewed(lease_id, response)


async def _renew_once(
    endpoint: AsyncEndpoint,
    lease_id: int,
    deadline: Deadline,
    metadata: tuple[tuple[str, str], ...],
) -> LeaseKeepAliveResponse:
    """Renew a lease once on a stream of its own to `endpoint`.

    Raises:
        EtcdError: as the stream failed (UnavailableError when it ended without an answer).
    """
    open_stream = endpoint.channel.stream_stream(
        _methods.LEASE_KEEP_ALIVE_PATH,
        request_serializer=serialize,
        response_deserializer=rpc_pb2.LeaseKeepAliveResponse.FromString,
    )
    try:
        stream = open_stream(timeout=deadline.remaining(), metadata=metadata)
    except grpc.aio.UsageError as err:  # the channel was closed under us
        raise ClosedError("the client is closed") from err
    try:
        await stream.write(rpc_pb2.LeaseKeepAliveRequest(ID=lease_id))
        message = await stream.read()
    except grpc.RpcError as err:
        raise from_rpc_error(err) from err
    finally:
        stream.cancel()
    if not isinstance(message, rpc_pb2.LeaseKeepAliveResponse):  # grpc.aio.EOF
        raise UnavailableError("the keep-alive stream ended without an answer")
    return LeaseKeepAliveResponse(_convert.header(message.header), message.ID, message.TTL)
