"""Paginated reads at one revision and Go's Syncer, for sync and asyncio speakers alike."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Generic, TypeVar, overload

from etcd_layers.base.async_protocols import AsyncKV, AsyncWatcher, AsyncWatchStart
from etcd_layers.base.checks import check_timeout
from etcd_layers.base.keys import StrOrBytes, to_bytes
from etcd_layers.base.kinds import speaks_asyncio
from etcd_layers.base.ops import GetOp
from etcd_layers.base.protocols import KV, Watch, Watcher
from etcd_layers.base.responses import GetResponse
from etcd_layers.mirror._pages import DEFAULT_PAGE_SIZE, at_snapshot, first_page, next_page

__all__ = ["ClientT_co", "Syncer", "async_pages", "get_pages", "pages"]


def _check_kv(kv: object) -> None:
    if not callable(getattr(kv, "do", None)):
        raise TypeError(f"kv must speak the KV Protocol (a do() method), not {type(kv).__name__}")


@overload
def get_pages(
    kv: AsyncKV,
    prefix: StrOrBytes,
    page_size: int = DEFAULT_PAGE_SIZE,
    revision: int = 0,
    *,
    timeout: float | None = None,
) -> AsyncIterator[GetResponse]: ...
@overload
def get_pages(
    kv: KV,
    prefix: StrOrBytes,
    page_size: int = DEFAULT_PAGE_SIZE,
    revision: int = 0,
    *,
    timeout: float | None = None,
) -> Iterator[GetResponse]: ...
def get_pages(
    kv: KV | AsyncKV,
    prefix: StrOrBytes,
    page_size: int = DEFAULT_PAGE_SIZE,
    revision: int = 0,
    *,
    timeout: float | None = None,
) -> Iterator[GetResponse] | AsyncIterator[GetResponse]:
    """Read every key under `prefix` in pages of `page_size` keys, all at one revision.

    The first page is read at `revision` (0: the newest); every later page at the first
    page's header revision, so the pages are one consistent snapshot, in key order, however
    long the reading takes. Every page's `header.revision` is that snapshot's revision
    (etcd's header would name the store's newest). Arguments are checked here, before any
    I/O; each page is requested when the iteration reaches it.

    For a sync speaker (a Client or a layer on one) this returns an iterator:
    `for page in get_pages(cli, "config/"): ...`. For an asyncio speaker (an AsyncClient or
    an async layer) an async iterator: `async for page in get_pages(acli, "config/"): ...`.

    Args:
        kv: any KV (or AsyncKV) speaker, a namespace included.
        prefix: the keys to read (str or bytes; `""` means every key).
        page_size: keys per page (>= 1).
        revision: the revision to read at (0: the newest).
        timeout: seconds for each page's request; None for the client's default.

    Raises:
        TypeError, ValueError: bad arguments (at the call).
        CompactedError: the revision was compacted away before a page was read (from the
            iteration).
    """
    _check_kv(kv)
    op = first_page(prefix, page_size, revision)
    limit = check_timeout(timeout)
    if speaks_asyncio(kv):
        return async_pages(kv, op, limit)  # type: ignore[arg-type]  # an AsyncKV, by its kind
    return pages(kv, op, limit)  # type: ignore[arg-type]  # a KV, by its kind


def pages(kv: KV, op: GetOp, timeout: float | None) -> Iterator[GetResponse]:
    """Yield the page `op` asks for and every page after it (sync)."""
    page: GetOp | None = op
    while page is not None:
        response = at_snapshot(page, kv.do(page, timeout=timeout))
        yield response
        page = next_page(page, response)


async def async_pages(kv: AsyncKV, op: GetOp, timeout: float | None) -> AsyncIterator[GetResponse]:
    """Yield the page `op` asks for and every page after it (asyncio)."""
    page: GetOp | None = op
    while page is not None:
        response = at_snapshot(page, await kv.do(page, timeout=timeout))
        yield response
        page = next_page(page, response)


ClientT_co = TypeVar("ClientT_co", bound="KV | AsyncKV", covariant=True)  # the client kind


class Syncer(Generic[ClientT_co]):
    """Go's `mirror.Syncer`: the prefix at one revision, then every change after it.

    ```python
    syncer = Syncer(cli, "config/")
    for page in syncer.sync_base(): ...        # sets syncer.revision (the snapshot's)
    with syncer.sync_updates() as w: ...       # a Watch from syncer.revision + 1
    ```

    On an AsyncClient (or an async layer) `sync_base` returns an async iterator
    (`async for page in syncer.sync_base()`), and `sync_updates` the client's watch start
    (`async with syncer.sync_updates() as w`, or `w = await syncer.sync_updates()`).
    """

    def __init__(self, client: ClientT_co, prefix: StrOrBytes, revision: int = 0) -> None:
        """Sync `prefix` (`""`: every key) of `client`, a KV + Watcher speaker of either kind.

        Args:
            client: what to read and watch through (a namespace included).
            prefix: the keys to sync.
            revision: the snapshot's revision (0: the newest, fixed by `sync_base`).

        Raises:
            TypeError, ValueError: bad arguments.
        """
        _check_kv(client)
        if not callable(getattr(client, "watch", None)):
            raise TypeError(f"client must speak the Watcher Protocol, not {type(client).__name__}")
        first_page(prefix, DEFAULT_PAGE_SIZE, revision)  # checks prefix and revision
        self._client: KV | AsyncKV = client
        self._prefix = to_bytes(prefix, name="prefix")
        self._revision = revision

    @property
    def revision(self) -> int:
        """The snapshot's revision: given, or set by `sync_base` (0 until then)."""
        return self._revision

    @overload
    def sync_base(
        self: Syncer[AsyncKV], page_size: int = ..., *, timeout: float | None = ...
    ) -> AsyncIterator[GetResponse]: ...
    @overload
    def sync_base(
        self: Syncer[KV], page_size: int = ..., *, timeout: float | None = ...
    ) -> Iterator[GetResponse]: ...
    def sync_base(
        self, page_size: int = DEFAULT_PAGE_SIZE, *, timeout: float | None = None
    ) -> Iterator[GetResponse] | AsyncIterator[GetResponse]:
        """Return the prefix at `revision` (the newest if 0), page by page in key order.

        `get_pages` with this syncer's revision; the first page fixes `revision` when it was 0.

        Raises:
            CompactedError: the revision was compacted away (from the iteration).
        """
        pages: Iterator[GetResponse] | AsyncIterator[GetResponse] = get_pages(
            self._client,
            self._prefix,
            page_size,
            self._revision,
            timeout=timeout,
        )
        if isinstance(pages, AsyncIterator):
            return self._async_recording(pages)
        return self._recording(pages)

    def _recording(self, pages: Iterator[GetResponse]) -> Iterator[GetResponse]:
        for page in pages:
            self._revision = self._revision or page.header.revision
            yield page

    async def _async_recording(
        self, pages: AsyncIterator[GetResponse]
    ) -> AsyncIterator[GetResponse]:
        async for page in pages:
            self._revision = self._revision or page.header.revision
            yield page

    @overload
    def sync_updates(
        self: Syncer[AsyncKV], *, prev_kv: bool = ..., timeout: float | None = ...
    ) -> AsyncWatchStart: ...
    @overload
    def sync_updates(
        self: Syncer[KV], *, prev_kv: bool = ..., timeout: float | None = ...
    ) -> Watch: ...
    def sync_updates(
        self, *, prev_kv: bool = False, timeout: float | None = None
    ) -> Watch | AsyncWatchStart:
        """Watch every change under the prefix after `revision` (its watch from revision + 1).

        Args:
            prev_kv: events carry the key-value pair as it was before.
            timeout: seconds to wait for the server's confirmation.

        Raises:
            RuntimeError: `revision` is still 0 (Go panics here: call sync_base first).
            CompactedError: revision + 1 is compacted away (from the iteration).
        """
        if self._revision == 0:
            raise RuntimeError("sync_updates needs a revision: iterate sync_base() first")
        watcher: Watcher | AsyncWatcher = self._client  # type: ignore[assignment]  # checked
        return watcher.watch(
            self._prefix,
            prefix=True,
            start_revision=self._revision + 1,
            prev_kv=prev_kv,
            timeout=timeout,
        )
