"""Endpoint, Update and UpdateOp, and how an endpoint is stored and read back (pure).

The stored value is Go's `naming/endpoints/internal.Update` as `json.Marshal` writes it,
`{"Op":0,"Addr":"10.0.0.1:8080","Metadata":null}`, so Go's gRPC resolver reads what
Python registers and the reverse. What Go fails to decode (and skips), this skips too.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from etcd_layers.base.checks import check_int
from etcd_layers.base.keys import StrOrBytes, to_bytes
from etcd_layers.base.responses import Event, EventType, KeyValue
from etcd_layers.naming._gojson import JSONValue, marshal, marshal_string, unmarshal_object

__all__ = [
    "Endpoint",
    "Update",
    "UpdateOp",
    "check_key",
    "check_target",
    "decode_endpoint",
    "encode_endpoint",
    "updates_of",
]

logger: Final = logging.getLogger("etcd_layers.naming")

_FIELDS: Final = ("Op", "Addr", "Metadata")
_UINT8_MAX: Final = 255


class UpdateOp(enum.IntEnum):
    """What an Update does (Go's `endpoints.Operation`: Add = 0, Delete = 1)."""

    ADD = 0
    DELETE = 1


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One address a service is reached at, with optional JSON metadata (Go's `Endpoint`).

    Attributes:
        addr: the address, as `host:port` (any string Go's resolver understands).
        metadata: any JSON value (None, bool, int, float, str, lists, dicts with str keys).

    Raises:
        TypeError: `addr` is not a str, or `metadata` is no JSON value.
        ValueError: `metadata` holds NaN, an infinity or a lone surrogate.
    """

    addr: str
    metadata: JSONValue = None

    def __post_init__(self) -> None:
        if not isinstance(self.addr, str):
            raise TypeError(f"addr must be str, not {type(self.addr).__name__}")
        encode_endpoint(self)  # refuses what Go could not store, before any I/O


@dataclass(frozen=True, slots=True)
class Update:
    """One change of a target's endpoints: `op`, the endpoint's `key`, and the `endpoint`.

    For a DELETE, `endpoint` is `Endpoint("")`, as in Go.
    """

    op: UpdateOp
    key: str
    endpoint: Endpoint

    def __post_init__(self) -> None:
        try:
            op = UpdateOp(self.op)
        except ValueError:
            raise ValueError(
                f"bad update op {self.op!r} (UpdateOp.ADD or UpdateOp.DELETE)"
            ) from None
        object.__setattr__(self, "op", op)  # frozen: an int given is stored as the enum
        if not isinstance(self.key, str):
            raise TypeError(f"key must be str, not {type(self.key).__name__}")
        if not isinstance(self.endpoint, Endpoint):
            raise TypeError(f"endpoint must be an Endpoint, not {type(self.endpoint).__name__}")


def encode_endpoint(endpoint: Endpoint) -> bytes:
    """Return the stored value of `endpoint`: Go's `json.Marshal(internal.Update{...})`."""
    return (
        f'{{"Op":{UpdateOp.ADD.value},"Addr":{marshal_string(endpoint.addr)},'
        f'"Metadata":{marshal(endpoint.metadata)}}}'
    ).encode()


def decode_endpoint(value: bytes) -> Endpoint | None:
    """Return the Endpoint a stored value holds, or None where Go's json.Unmarshal fails.

    As Go: field names match case-insensitively; a missing field is left empty; `Op` must be
    an integer 0-255 (its value is not used: a present key is an endpoint); `Addr` a string.
    """
    try:
        fields = unmarshal_object(value, _FIELDS)
    except ValueError:
        return None
    op, addr = fields.get("Op"), fields.get("Addr")
    if op is not None and (
        isinstance(op, bool) or not isinstance(op, int) or not 0 <= op <= _UINT8_MAX
    ):
        return None
    if addr is not None and not isinstance(addr, str):
        return None
    return Endpoint(addr or "", fields.get("Metadata"))  # type: ignore[arg-type]  # decoded JSON


def check_target(target: object) -> str:
    """Return `target` as a str (bytes are UTF-8 decoded).

    Raises:
        TypeError: neither str nor bytes.
        ValueError: empty (Go: "invalid target"), or bytes that are not UTF-8.
    """
    text = to_bytes(target, name="target").decode()
    if not text:
        raise ValueError("target must not be empty")
    return text


def check_key(target: str, key: object) -> str:
    """Return an endpoint's key if it lies under `target + "/"` (Go's rule).

    Raises:
        TypeError: neither str nor bytes.
        ValueError: not under the target.
    """
    text = to_bytes(key, name="key").decode()
    if not text.startswith(target + "/"):
        raise ValueError(f"endpoint key should be prefixed with {target + '/'!r}, got {text!r}")
    return text


def check_lease(lease: object) -> int:
    """Return a lease id (a non-negative int)."""
    return check_int(lease, "lease")


def key_text(key: bytes) -> str:
    """Return a stored key as the str the registry hands out."""
    return key.decode("utf-8", "replace")


def list_of(kvs: Iterable[KeyValue]) -> dict[str, Endpoint]:
    """Return the endpoints of the stored pairs `kvs`, leaving out what Go cannot decode."""
    found: dict[str, Endpoint] = {}
    for kv in kvs:
        endpoint = decode_endpoint(kv.value)
        if endpoint is None:
            logger.warning("unmarshal endpoint update failed: key %r", kv.key)
            continue
        found[key_text(kv.key)] = endpoint
    return found


def updates_of(events: Iterable[Event]) -> list[Update]:
    """Return the Updates of watch events, as Go's `NewWatchChannel` makes them.

    A PUT is an ADD of the decoded endpoint (skipped when it does not decode), a DELETE a
    DELETE with an empty endpoint.
    """
    updates: list[Update] = []
    for event in events:
        key = key_text(event.kv.key)
        if event.type is EventType.DELETE:
            updates.append(Update(UpdateOp.DELETE, key, _EMPTY))
            continue
        endpoint = decode_endpoint(event.kv.value)
        if endpoint is None:
            logger.warning("unmarshal endpoint update failed: key %r", event.kv.key)
            continue
        updates.append(Update(UpdateOp.ADD, key, endpoint))
    return updates


_EMPTY: Final = Endpoint("")


def prefix_of(target: str) -> StrOrBytes:
    """Return the key prefix of a target's endpoints."""
    return target + "/"
