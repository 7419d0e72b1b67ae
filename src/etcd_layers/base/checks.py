"""Argument checks shared by every call: a typed error naming the argument, before any I/O."""

from __future__ import annotations

from etcd_layers.base.keys import KEYSPACE_END, prefix_end, to_bytes
from etcd_layers.errors import EmptyKeyError

__all__ = ["check_bool", "check_int", "check_timeout", "key_range"]


def check_bool(value: object, name: str) -> bool:
    """Return `value` if it is a bool.

    Raises:
        TypeError: it is not.
    """
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be bool, not {type(value).__name__}")
    return value


def check_int(value: object, name: str) -> int:
    """Return `value` if it is a non-negative int (bool is refused).

    Raises:
        TypeError: not an int.
        ValueError: negative.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        # `put(k, v, lease=cli.grant(10))` is an easy slip (python-etcd3 takes a Lease object
        # there): name the attribute that holds the int.
        hint = " (pass its .id)" if isinstance(getattr(value, "id", None), int) else ""
        raise TypeError(f"{name} must be int, not {type(value).__name__}{hint}")
    if value < 0:
        raise ValueError(f"{name} must not be negative, got {value}")
    return value


def check_timeout(value: object) -> float | None:
    """Return a call's `timeout` (None or seconds > 0).

    Raises:
        TypeError: not a number.
        ValueError: zero or negative.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"timeout must be float or None, not {type(value).__name__}")
    if not value > 0:
        raise ValueError(f"timeout must be > 0 seconds, got {value}")
    return float(value)


def key_range(
    key: object, range_end: object, prefix: object, from_key: object
) -> tuple[bytes, bytes]:
    """Resolve a key and its range options into etcd's (key, range_end).

    Raises:
        TypeError: a wrong type.
        ValueError: `prefix` combined with `range_end` or `from_key`.
        EmptyKeyError: an empty key that names no range.
    """
    raw_key = to_bytes(key, name="key")
    prefix = check_bool(prefix, "prefix")
    from_key = check_bool(from_key, "from_key")
    end = b"" if range_end is None else to_bytes(range_end, name="range_end")
    if prefix and (range_end is not None or from_key):
        raise ValueError("prefix=True cannot be combined with range_end or from_key")
    if from_key and range_end is not None:
        raise ValueError("from_key=True cannot be combined with range_end")
    if prefix:
        # As clientv3's WithPrefix: an empty key with prefix means every key.
        return (raw_key, prefix_end(raw_key)) if raw_key else (KEYSPACE_END, KEYSPACE_END)
    if from_key:
        return (raw_key or KEYSPACE_END), KEYSPACE_END
    if not raw_key:
        # A range_end does not make an empty key valid: etcd refuses key b"" whatever its
        # range_end ("key is not provided"), and clientv3 refuses it before sending.
        raise EmptyKeyError("key must not be empty (use prefix=True or from_key=True for all keys)")
    return raw_key, end
