"""AsyncClient.snapshot: the backend snapshot over a `grpc.aio` stream, verified, into a file.

The same rules as Client.snapshot (base/_maintenance.py), on the same pieces: SnapshotVerifier
checks sizes and the trailing sha256, SnapshotSink lands a path only once verified, and the
connection's retry rule may ask again until the first byte was written.

File I/O on the event loop: each chunk (etcd sends 32 KiB) is written inline, a buffered write
into the page cache that costs microseconds, far less than a hop to a thread per chunk. The
one call that can block for long, the fsync and rename of `commit()`, runs in the loop's
default executor.
"""

from __future__ import annotations

import asyncio
import os
from typing import IO, TYPE_CHECKING

import grpc
import grpc.aio

from etcd_layers.base import _convert
from etcd_layers.base._admin_core import check_endpoint
from etcd_layers.base._endpoint import serialize
from etcd_layers.base._methods import SNAPSHOT_PATH
from etcd_layers.base._proto import rpc_pb2
from etcd_layers.base._snapshot import SnapshotSink, SnapshotVerifier, Writable
from etcd_layers.base.admin_responses import SnapshotResponse
from etcd_layers.base.checks import check_timeout
from etcd_layers.base.deadline import Deadline
from etcd_layers.base.responses import ResponseHeader
from etcd_layers.errors import ClosedError, from_rpc_error

if TYPE_CHECKING:
    from etcd_layers.base._aio_connection import AsyncConnection, AsyncEndpoint

__all__ = ["AsyncSnapshotMixin"]


class AsyncSnapshotMixin:
    """AsyncClient.snapshot."""

    if TYPE_CHECKING:

        async def connected(self) -> AsyncConnection: ...  # AsyncClient's

    async def snapshot(
        self,
        path_or_file: str | os.PathLike[str] | IO[bytes] | Writable,
        *,
        endpoint: str | None = None,
        timeout: float | None = None,
    ) -> SnapshotResponse:
        """Stream the backend snapshot of one member into a file (see Client.snapshot).

        Raises:
            SnapshotError: the stream was cut short, out of order, or failed its checksum.
            UnavailableError: the connection broke during the transfer.
        """
        target = SnapshotSink.check_target(path_or_file)
        address = None if endpoint is None else check_endpoint(endpoint)
        checked = check_timeout(timeout)
        conn = await self.connected()
        conn.check_open()
        deadline = conn.deadline(checked)
        with SnapshotSink(target) as sink:

            async def attempt(member: AsyncEndpoint) -> tuple[ResponseHeader, bytes]:
                return await _receive(conn, member, deadline, SnapshotVerifier(), sink)

            # A snapshot is a read: until its first byte was written it may be asked again.
            header, digest = await conn.run(
                attempt,
                deadline,
                idempotent=True,
                address=address,
                unary=False,
                sent=lambda: bool(sink.written),
            )
            await asyncio.get_running_loop().run_in_executor(None, sink.commit)
        return SnapshotResponse(header, sink.written, digest)


async def _receive(
    conn: AsyncConnection,
    endpoint: AsyncEndpoint,
    deadline: Deadline,
    verifier: SnapshotVerifier,
    sink: SnapshotSink,
) -> tuple[ResponseHeader, bytes]:
    """Read one Snapshot stream from `endpoint` into `sink`, verified."""
    open_stream = endpoint.channel.unary_stream(
        SNAPSHOT_PATH,
        request_serializer=serialize,
        response_deserializer=rpc_pb2.SnapshotResponse.FromString,
    )
    try:
        call = open_stream(
            rpc_pb2.SnapshotRequest(), timeout=deadline.remaining(), metadata=conn.metadata
        )
    except grpc.aio.UsageError as err:  # the channel was closed under us
        raise ClosedError("the client is closed") from err
    header: ResponseHeader | None = None
    eof = grpc.aio.EOF
    try:
        while (message := await call.read()) is not eof:
            assert isinstance(message, rpc_pb2.SnapshotResponse)
            if header is None:
                header = _convert.header(message.header)
            verifier.feed(message.remaining_bytes, message.blob)
            sink.write(message.blob)
    except grpc.RpcError as err:
        raise from_rpc_error(err) from err
    finally:
        call.cancel()  # ends the server's stream if we stop early; no-op once done
    digest = verifier.finish()
    assert header is not None  # finish() refuses a stream without messages
    return header, digest
