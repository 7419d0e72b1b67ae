"""Key normalisation and the byte arithmetic of etcd key ranges."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, TypeAlias

StrOrBytes: TypeAlias = str | bytes

KEYSPACE_END: Final = b"\x00"  # etcd's range_end for "up to the end of the keyspace"


def to_bytes(value: object, *, name: str) -> bytes:
    """Return `value` as bytes (a str is UTF-8 encoded).

    Raises:
        TypeError: `value` is neither str nor bytes; the message names the argument.
    """
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"{name} must be str or bytes, not {type(value).__name__}")


def prefix_end(prefix: bytes) -> bytes:
    """Return the smallest key above every key that starts with `prefix`.

    A prefix made only of ``0xff`` bytes (or the empty prefix) has no such key, so the
    range runs to the end of the keyspace (`KEYSPACE_END`).
    """
    stripped = prefix.rstrip(b"\xff")
    if not stripped:  # b"\xff\xff": no key is above it
        return KEYSPACE_END
    # clientv3 carries into b"b\x00" for b"a\xff", which admits key b"b"; we truncate instead.
    return stripped[:-1] + bytes([stripped[-1] + 1])


def _plain(value: object) -> bytes | None:
    return value if type(value) is bytes else value.encode() if type(value) is str else None


def plain_get_key(key: object, options: Mapping[str, object]) -> bytes | None:
    """Return `key` as bytes if `get(key, **options)` is a plain get of one key, else None.

    Plain: no option given at all, and a non-empty str or bytes key, so the request is exactly
    `Op.get(key)`. Layers with a fast path for that case (leasing's cache, namespace's single
    translation) take it on bytes and send everything else through `KV.get`, which checks
    every argument.
    """
    if options:
        return None
    return _plain(key) or None


def plain_put_items(
    key: object, value: object, options: Mapping[str, object]
) -> tuple[bytes, bytes] | None:
    """Return (key, value) as bytes if `put(key, value, **options)` is a plain put, else None.

    Plain, as for `plain_get_key`: no option given, a non-empty str or bytes key and a str or
    bytes value, so the request is exactly `Op.put(key, value)`.
    """
    if options:
        return None
    raw_key, raw_value = _plain(key), _plain(value)
    if not raw_key or raw_value is None:
        return None
    return raw_key, raw_value
