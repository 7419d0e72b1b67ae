"""The first HTTP request head of a proxied connection: when it is complete, and what it says."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Final, TypeAlias

# An HTTP request head is classified once it is complete or this long, whichever comes first.
MAX_HEAD: Final = 64 * 1024
HEAD_END: Final = b"\r\n\r\n"


@dataclasses.dataclass(frozen=True, slots=True)
class RequestHead:
    """The first HTTP request head on a connection, handed to a proxy's `identify` callback.

    Attributes:
        request_line: For example `"GET /raft/stream/msgappv2/8e9e05c52164694d HTTP/1.1"`.
        headers: Header values by lower-cased name.
        client_address: The connecting socket's `(host, port)`.
    """

    request_line: str
    headers: Mapping[str, str]
    client_address: tuple[str, int]


Identify: TypeAlias = Callable[[RequestHead], str | None]
"""Names the sender of a connection from its first request, or returns None if unknown."""


def head_complete(head: bytes | bytearray) -> bool:
    """Whether `head` holds a whole request head, or as much as is ever read of one."""
    return HEAD_END in head or len(head) >= MAX_HEAD


def parse_head(head: bytes, client_address: tuple[str, int]) -> RequestHead:
    """Parse an HTTP request head (possibly cut short) into a RequestHead."""
    end = head.find(HEAD_END)
    lines = head[: end if end >= 0 else len(head)].split(b"\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if colon:
            headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    return RequestHead(lines[0].decode("latin-1"), headers, client_address)
