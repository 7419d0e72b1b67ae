"""Verify a streamed backend snapshot and land it in a file only once it is complete and sound.

etcd's Maintenance/Snapshot stream sends the database in chunks, each carrying the number of
bytes still to come (`remaining_bytes`), and then one last message whose blob is the sha256 of
everything before it. The saved file is the database followed by that digest: the layout
`etcdctl snapshot save` writes and `etcdutl snapshot restore` checks.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Final, Protocol

from etcd_layers._compat import Self
from etcd_layers.errors import SnapshotError

SHA256_SIZE: Final = 32


class SnapshotVerifier:
    """Checks the messages of one snapshot stream: sizes, order and the trailing sha256.

    Pure: feed it each message's `remaining_bytes` and `blob` as they arrive, then call
    `finish()` once the stream has ended.
    """

    __slots__ = ("_digest", "_hash", "_received", "_total")

    def __init__(self) -> None:
        self._total: int | None = None
        self._received = 0
        self._hash = hashlib.sha256()
        self._digest: bytes | None = None

    @property
    def received(self) -> int:
        """Database bytes received so far (the checksum not included)."""
        return self._received

    def feed(self, remaining_bytes: int, blob: bytes) -> None:
        """Account for one message of the stream.

        Raises:
            SnapshotError: the message contradicts the ones before it.
        """
        if self._digest is not None:
            raise SnapshotError("snapshot stream sent data after its checksum")
        if self._total is None:
            # The first message says how large the whole database is.
            self._total = remaining_bytes + len(blob)
        if self._received == self._total:
            if not blob and remaining_bytes == 0:
                return  # an empty message carries nothing; tolerate it
            if remaining_bytes != 0 or len(blob) != SHA256_SIZE:
                raise SnapshotError(
                    f"snapshot stream sent {len(blob)} bytes after the database's "
                    f"{self._total} bytes where a {SHA256_SIZE}-byte sha256 was expected"
                )
            self._digest = blob
            return
        self._received += len(blob)
        if remaining_bytes != self._total - self._received:
            raise SnapshotError(
                f"snapshot stream is inconsistent: {remaining_bytes} bytes said to remain "
                f"after {self._received} of {self._total}"
            )
        self._hash.update(blob)

    def finish(self) -> bytes:
        """Return the verified sha256 once the stream has ended.

        Raises:
            SnapshotError: the stream ended early, had no checksum, or the checksum does not
                match the data.
        """
        if self._total is None:
            raise SnapshotError("snapshot stream ended before any data")
        if self._received < self._total:
            raise SnapshotError(
                f"snapshot stream ended after {self._received} of {self._total} bytes"
            )
        if self._digest is None:
            raise SnapshotError("snapshot stream ended without its sha256 checksum")
        if self._digest != self._hash.digest():
            raise SnapshotError(
                f"snapshot checksum mismatch: the server sent {self._digest.hex()}, "
                f"the data received hashes to {self._hash.hexdigest()}"
            )
        return self._digest


class Writable(Protocol):
    """A binary file object, or anything with a `write(bytes)` method."""

    def write(self, data: bytes, /) -> object:
        """Write `data`."""


class SnapshotSink:
    """Where snapshot bytes go: a path (through a temp file renamed when complete) or a file.

    Use it as a context manager: leaving the block without `commit()` (an error) removes the
    temp file, so nothing is ever left at the path unless the snapshot was verified.
    """

    __slots__ = ("_committed", "_file", "_path", "_temp", "written")

    def __init__(self, target: Path | Writable) -> None:
        self.written = 0
        self._committed = False
        self._path: Path | None = None
        self._temp: Path | None = None
        if isinstance(target, Path):
            self._path = target
            # Beside the target, so the final rename stays on one file system (atomic).
            handle, temp = tempfile.mkstemp(
                dir=target.parent, prefix=f".{target.name}.", suffix=".part"
            )
            self._temp = Path(temp)
            self._file: Writable = os.fdopen(handle, "wb")
        else:
            self._file = target

    @staticmethod
    def check_target(target: object) -> Path | Writable:
        """Return `target` as a Path or a binary file object.

        Raises:
            TypeError: neither a path (str or os.PathLike) nor a binary file object.
            ValueError: a path that names no file.
        """
        if isinstance(target, (str, os.PathLike)):
            path = Path(target)
            if not path.name:
                raise ValueError(f"path_or_file must name a file, got {target!r}")
            return path
        if isinstance(target, io.TextIOBase):
            raise TypeError("path_or_file must be opened in binary mode ('wb'), not text mode")
        if callable(getattr(target, "write", None)):
            return target  # type: ignore[return-value]  # checked: it has a write method
        raise TypeError(
            f"path_or_file must be a path or a binary file object, not {type(target).__name__}"
        )

    def write(self, data: bytes) -> None:
        """Write one chunk."""
        if data:
            self._file.write(data)
            self.written += len(data)

    def commit(self) -> None:
        """Make the snapshot visible: flush, fsync and rename the temp file onto the path."""
        if self._temp is not None and self._path is not None:
            file = self._file
            assert isinstance(file, io.BufferedWriter)  # opened by __init__
            file.flush()
            os.fsync(file.fileno())
            file.close()
            os.replace(self._temp, self._path)
        else:
            flush = getattr(self._file, "flush", None)
            if callable(flush):
                flush()
        self._committed = True

    def abort(self) -> None:
        """Drop whatever was written to the temp file (a caller's file object is left as is)."""
        if self._temp is not None and not self._committed:
            file = self._file
            assert isinstance(file, io.BufferedWriter)  # opened by __init__
            with contextlib.suppress(OSError):
                file.close()
            with contextlib.suppress(FileNotFoundError):
                self._temp.unlink()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.abort()
