"""Key normalisation and prefix arithmetic."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from etcd_layers.base.keys import (
    KEYSPACE_END,
    plain_get_key,
    plain_put_items,
    prefix_end,
    to_bytes,
)

EDGE = st.lists(st.sampled_from(b"\x00\x01a\xfe\xff"), max_size=5).map(bytes)


@pytest.mark.parametrize(
    ("prefix", "end"),
    [
        (b"a", b"b"),
        (b"a\xff", b"b"),
        (b"a\xff\xff", b"b"),
        (b"\xff", KEYSPACE_END),
        (b"\xff\xff", KEYSPACE_END),
        (b"", KEYSPACE_END),
        (b"/tenant-a/", b"/tenant-a0"),
        (b"\x00", b"\x01"),
        (b"a\xfe", b"a\xff"),
    ],
)
def test_prefix_end_table(prefix: bytes, end: bytes) -> None:
    """prefix_end truncates trailing 0xff bytes and increments, never carrying."""
    assert prefix_end(prefix) == end


@given(prefix=EDGE.filter(bool), key=EDGE)
@example(prefix=b"a\xff", key=b"b")
def test_prefix_end_bounds_exactly_the_prefixed_keys(prefix: bytes, key: bytes) -> None:
    """A key falls in [prefix, prefix_end(prefix)) exactly when it starts with the prefix."""
    end = prefix_end(prefix)
    inside = prefix <= key and (end == KEYSPACE_END or key < end)
    assert inside == key.startswith(prefix)


def test_to_bytes_encodes_str_as_utf8() -> None:
    """A str becomes its UTF-8 bytes; bytes pass unchanged."""
    assert to_bytes("é", name="key") == "é".encode()
    assert to_bytes(b"\xff", name="key") == b"\xff"


@pytest.mark.parametrize("value", [1, None, 1.5, ["a"], object()])
def test_to_bytes_refuses_other_types_naming_the_argument(value: object) -> None:
    """Anything but str or bytes raises TypeError naming the argument."""
    with pytest.raises(TypeError, match="prefix must be str or bytes"):
        to_bytes(value, name="prefix")


@pytest.mark.parametrize(
    ("key", "options", "expected"),
    [
        (b"k", {}, b"k"),
        ("ключ", {}, "ключ".encode()),
        (b"\x00\xff", {}, b"\x00\xff"),
        (b"", {}, None),  # the slow path raises EmptyKeyError for it
        ("", {}, None),
        (b"k", {"timeout": None}, None),  # any option given: not plain
        (b"k", {"prefix": False}, None),
        (7, {}, None),  # the slow path raises TypeError for it
        (bytearray(b"k"), {}, None),
    ],
)
def test_plain_get_key_accepts_only_a_plain_get(
    key: object, options: dict[str, object], expected: bytes | None
) -> None:
    """Only a non-empty str or bytes key with no option at all takes a layer's fast path."""
    assert plain_get_key(key, options) == expected


@pytest.mark.parametrize(
    ("key", "value", "options", "expected"),
    [
        (b"k", b"v", {}, (b"k", b"v")),
        ("k", "v", {}, (b"k", b"v")),
        (b"k", b"", {}, (b"k", b"")),  # an empty value is a value
        (b"", b"v", {}, None),  # the slow path raises EmptyKeyError
        (b"k", 1, {}, None),  # the slow path raises TypeError
        (b"k", b"v", {"lease": 0}, None),
        (b"k", b"v", {"timeout": 1.0}, None),
    ],
)
def test_plain_put_items_accepts_only_a_plain_put(
    key: object, value: object, options: dict[str, object], expected: tuple[bytes, bytes] | None
) -> None:
    """Only str or bytes key and value, the key non-empty, with no option, are plain."""
    assert plain_put_items(key, value, options) == expected
