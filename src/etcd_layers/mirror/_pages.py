"""The page cursor of a paginated read: which range request follows a page (pure)."""

from __future__ import annotations

import dataclasses
from typing import Final

from etcd_layers.base.checks import check_int, key_range
from etcd_layers.base.ops import GetOp
from etcd_layers.base.responses import GetResponse

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "at_snapshot",
    "check_page_size",
    "first_page",
    "next_page",
    "prefix_key",
]

DEFAULT_PAGE_SIZE: Final = 1000  # Go's mirror.batchLimit


def check_page_size(page_size: object) -> int:
    """Return `page_size` if it is an int >= 1.

    Raises:
        TypeError: not an int.
        ValueError: below 1.
    """
    size = check_int(page_size, "page_size")
    if size < 1:
        raise ValueError(f"page_size must be at least 1, got {size}")
    return size


def prefix_key(prefix: object) -> tuple[bytes, bytes]:
    """Return the (key, range_end) of every key under `prefix` (`""`: every key).

    Raises:
        TypeError: `prefix` is neither str nor bytes.
    """
    return key_range(prefix, None, True, False)


def first_page(prefix: object, page_size: object, revision: object) -> GetOp:
    """Return the request for the first page of `prefix` (arguments checked here, before I/O).

    Raises:
        TypeError: a wrong type.
        ValueError: `page_size` below 1 or a negative `revision`.
    """
    key, range_end = prefix_key(prefix)
    return GetOp(
        key=key,
        range_end=range_end,
        limit=check_page_size(page_size),
        revision=check_int(revision, "revision"),
    )


def next_page(op: GetOp, response: GetResponse) -> GetOp | None:
    """Return the request for the page after `response` (the answer to `op`), or None.

    Every later page is read at the revision of the first (the one `op` names, or the
    header's when it named none), so the pages form one snapshot however long the read
    takes. The next page starts just after the last key of this one (that key and a zero
    byte: the smallest key above it), as Go's Syncer does.
    """
    if not response.more or not response.kvs:
        return None
    return dataclasses.replace(
        op,
        key=response.kvs[-1].key + b"\x00",
        revision=op.revision or response.header.revision,
    )


def at_snapshot(op: GetOp, response: GetResponse) -> GetResponse:
    """Return `response` (the answer to `op`) with the snapshot's revision in its header.

    etcd answers a range at a past revision with the store's current revision in the header;
    each page reports the revision it was read at instead, so every page of one read carries
    the same `header.revision`.
    """
    if not op.revision or response.header.revision == op.revision:
        return response
    header = dataclasses.replace(response.header, revision=op.revision)
    return dataclasses.replace(response, header=header)
