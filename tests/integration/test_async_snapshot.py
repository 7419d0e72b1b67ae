"""AsyncClient.snapshot against real etcd: verified by its sha256, nothing left on failure."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from etcd_layers import AsyncClient, Client, Op, errors
from etcd_layers.testing import EtcdServer

VALUE = b"v" * 100_000
FILLED = 100  # keys of VALUE: a 10 MB backend, so a transfer takes many chunks

pytestmark = pytest.mark.asyncio


@pytest.fixture(scope="module")
def filled_server() -> Iterator[EtcdServer]:
    """A server of its own, holding about 10 MB."""
    with EtcdServer() as server:
        with Client(endpoints=server.endpoints) as cli:
            for start in range(0, FILLED, 10):
                cli.txn(success=[Op.put(b"fill/%03d" % i, VALUE) for i in range(start, start + 10)])
        yield server


@pytest_asyncio.fixture
async def acli(filled_server: EtcdServer) -> AsyncIterator[AsyncClient]:
    """A connected AsyncClient on `filled_server`."""
    async with AsyncClient(endpoints=filled_server.endpoints) as cli:
        yield cli


async def test_async_snapshot_to_a_path_is_verified(acli: AsyncClient, tmp_path: Path) -> None:
    """The file holds the database followed by its sha256, as the response says."""
    path = tmp_path / "backup.db"
    response = await acli.snapshot(path)
    data = path.read_bytes()
    assert response.size == len(data) > FILLED * len(VALUE)
    assert response.sha256 == data[-32:] == hashlib.sha256(data[:-32]).digest()
    assert [p.name for p in tmp_path.iterdir()] == ["backup.db"]


async def test_async_snapshot_into_a_file_object(acli: AsyncClient) -> None:
    """A binary file object receives the database followed by its sha256."""
    buffer = io.BytesIO()
    response = await acli.snapshot(buffer, endpoint=acli.endpoints[0])
    data = buffer.getvalue()
    assert len(data) == response.size
    assert data[-32:] == response.sha256 == hashlib.sha256(data[:-32]).digest()


async def test_async_snapshot_canceled_mid_transfer_leaves_no_file(
    acli: AsyncClient, tmp_path: Path
) -> None:
    """Cancelling the task mid-stream leaves nothing at the path, and the client usable."""
    path = tmp_path / "cut.db"

    def under_way() -> bool:  # part of the stream is in the temp file
        with contextlib.suppress(FileNotFoundError):
            return any(part.stat().st_size for part in tmp_path.glob(".cut.db.*.part"))
        return False

    task = asyncio.ensure_future(acli.snapshot(path))
    for _ in range(2000):
        if under_way() or task.done():
            break
        await asyncio.sleep(0.001)
    assert not task.done(), "the transfer ended before it could be canceled"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert list(tmp_path.iterdir()) == []
    assert (await acli.get(b"fill/000")).kvs[0].value == VALUE


async def test_async_snapshot_deadline_leaves_no_file(acli: AsyncClient, tmp_path: Path) -> None:
    """A transfer that outlives its timeout raises DeadlineExceededError and leaves no file."""
    with pytest.raises(errors.DeadlineExceededError):
        await acli.snapshot(tmp_path / "late.db", timeout=0.001)
    assert list(tmp_path.iterdir()) == []


async def test_async_snapshot_bad_target_is_refused_before_any_io(
    filled_server: EtcdServer,
) -> None:
    """A target that is not a path nor a binary file raises before connecting."""
    cli = AsyncClient(endpoints=filled_server.endpoints)
    with pytest.raises(TypeError):
        await cli.snapshot(42)  # type: ignore[arg-type]  # the wrong type on purpose
    with pytest.raises(TypeError):
        await cli.snapshot(io.StringIO())  # type: ignore[arg-type]  # text mode on purpose
    assert cli.connection is None
    await cli.close()
