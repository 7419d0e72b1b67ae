"""Our private protobuf packages coexist with aetcd's etcd protos and match them on the wire."""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, TypeAlias

import pytest
from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from etcd_layers.base._proto import auth_pb2, kv_pb2, rpc_pb2

if TYPE_CHECKING:
    from google._upb import _message as _upb

    # Descriptors are the upb classes at run time, or the pure-Python ones.
    Field: TypeAlias = FieldDescriptor | _upb.FieldDescriptor

pytest.importorskip("aetcd", reason="aetcd, a test dependency, is not installed")

OUR_MODULES = ["etcd_layers.base._proto." + name for name in ("kv_pb2", "auth_pb2", "rpc_pb2")]
# aetcd registers etcd's real package names (etcdserverpb, mvccpb, authpb) in the default pool.
# importlib keeps mypy from needing types for aetcd, which ships none.
AETCD_MODULES = ["aetcd.rpc." + name for name in ("kv_pb2", "auth_pb2", "rpc_pb2")]
PRIVATE = "etcd_layers."

# Run in a fresh interpreter so that the import order is real; -W error makes any warning fail.
COEXIST_CHECK = """
import importlib, sys
from google.protobuf import descriptor_pool
for name in sys.argv[1:]:
    importlib.import_module(name)
ours = importlib.import_module("etcd_layers.base._proto.rpc_pb2")
theirs = importlib.import_module("aetcd.rpc.rpc_pb2")
pool = descriptor_pool.Default()
assert pool.FindFileByName("etcd_layers/base/_proto/rpc.proto") is ours.DESCRIPTOR
assert pool.FindFileByName("rpc.proto") is theirs.DESCRIPTOR
assert pool.FindMessageTypeByName("etcd_layers.etcdserverpb.RangeRequest") is not (
    pool.FindMessageTypeByName("etcdserverpb.RangeRequest"))
request = ours.RangeRequest(key=b"k", range_end=b"l", limit=2, keys_only=True)
data = request.SerializeToString()
twin = theirs.RangeRequest(key=b"k", range_end=b"l", limit=2, keys_only=True)
assert twin.SerializeToString() == data
assert ours.RangeRequest.FromString(twin.SerializeToString()) == request
print("ok")
"""

MAX_DEPTH = 3  # TxnRequest nests through RequestOp without end; three levels cover request_txn
ONEOF_CHOICES = 5  # Compare.target_union, the largest oneof, has five members


def _messages(module_names: list[str]) -> dict[str, type[Message]]:
    """Map each top-level message's full name to its class."""
    classes: dict[str, type[Message]] = {}
    for module_name in module_names:
        module: ModuleType = importlib.import_module(module_name)
        for name, descriptor in module.DESCRIPTOR.message_types_by_name.items():
            classes[descriptor.full_name] = getattr(module, name)
    return classes


OURS = _messages(OUR_MODULES)
THEIRS = _messages(AETCD_MODULES)
SHARED = sorted(name for name in THEIRS if PRIVATE + name in OURS)


def _field_names(full_name: str) -> set[str]:
    """Return the field names of a message of either side, by full name."""
    cls = OURS.get(full_name) or THEIRS.get(full_name)
    assert cls is not None, f"neither side defines {full_name}"
    return {field.name for field in cls.DESCRIPTOR.fields}


def _peer_name(full_name: str) -> str:
    """Return the name the other side gives the same etcd message."""
    if full_name.startswith(PRIVATE):
        return full_name.removeprefix(PRIVATE)
    return PRIVATE + full_name


# One maker per scalar type etcd uses, each picking values that a mismatched type reads differently.
SCALARS: dict[int, Callable[[int], object]] = {
    # negative and wide, so int64 read as uint64 or int32 differs
    FieldDescriptor.TYPE_INT64: lambda n: -(2**40) - n,
    FieldDescriptor.TYPE_INT32: lambda n: -1009 * n,
    # high bit set, so an unsigned field read as signed differs
    FieldDescriptor.TYPE_UINT64: lambda n: 2**63 + n,
    FieldDescriptor.TYPE_UINT32: lambda n: 2**31 + n,
    FieldDescriptor.TYPE_BOOL: lambda n: True,
    # not valid base64, so a string read as bytes differs
    FieldDescriptor.TYPE_STRING: lambda n: f"s{n}-\u00e9",
    FieldDescriptor.TYPE_BYTES: lambda n: b"b%d\x00\xff" % n,
}


class _Filler:
    """Sets every field both sides define to a distinct non-default value."""

    def __init__(self, choice: int) -> None:
        self.choice = choice  # which member of each oneof to set
        self.counter = 0

    def scalar(self, field: Field) -> object:
        """Return the next value for a scalar or enum field, chosen to expose a type mismatch."""
        self.counter += 1
        if field.type == FieldDescriptor.TYPE_ENUM:
            assert field.enum_type is not None
            nonzero = [value.number for value in field.enum_type.values if value.number]
            return nonzero[self.counter % len(nonzero)]
        make = SCALARS.get(field.type)
        assert make is not None, f"etcd's protos have no field like {field.full_name}"
        return make(self.counter)

    def fill(self, message: Message, depth: int = 0) -> None:
        """Set the fields of message that the peer's message of the same name also has."""
        descriptor = message.DESCRIPTOR
        peer_fields = _field_names(_peer_name(descriptor.full_name))
        for field in descriptor.fields:
            if field.name not in peer_fields:
                # The peer's (older or newer) protos lack this field, so there is nothing to
                # compare it against. At present aetcd and we define exactly the same fields.
                continue
            oneof = field.containing_oneof
            if oneof is not None and oneof.fields[self.choice % len(oneof.fields)] is not field:
                continue
            self.set(message, field, depth)

    def set(self, message: Message, field: Field, depth: int) -> None:
        """Give one field of message a value (two values if it is repeated)."""
        value = getattr(message, field.name)
        if field.message_type is None:
            if field.is_repeated:
                value.extend([self.scalar(field), self.scalar(field)])
            else:
                setattr(message, field.name, self.scalar(field))
            return
        children = [value.add(), value.add()] if field.is_repeated else [value]
        for child in children:
            child.SetInParent()
            if depth < MAX_DEPTH:
                self.fill(child, depth + 1)


def _as_dict(message: Message) -> dict[str, object]:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def _check_wire(
    full_name: str, build: Callable[[], Message], parse: Callable[[bytes], Message]
) -> None:
    """Fill a message every way its oneofs allow, and check the peer reads back the same."""
    for choice in range(ONEOF_CHOICES):
        sent = build()
        _Filler(choice).fill(sent)
        data = sent.SerializeToString(deterministic=True)
        received = parse(data)
        assert _as_dict(received) == _as_dict(sent), f"{full_name}, oneof choice {choice}"
        assert received.SerializeToString(deterministic=True) == data


@pytest.mark.parametrize(
    "modules",
    [OUR_MODULES + AETCD_MODULES, AETCD_MODULES + OUR_MODULES],
    ids=["ours_first", "aetcd_first"],
)
def test_proto_coexists_with_aetcd_in_either_import_order(modules: list[str]) -> None:
    """Both sets of etcd protos load into one default pool, whichever is imported first."""
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", COEXIST_CHECK, *modules],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_proto_defines_every_message_aetcd_defines() -> None:
    """Each etcd message that aetcd knows has a private twin of ours."""
    assert sorted(THEIRS) == SHARED


@pytest.mark.parametrize("name", SHARED)
def test_proto_fields_match_aetcd_numbers(name: str) -> None:
    """Each field aetcd defines exists in ours under the same name, number and type."""
    ours = OURS[PRIVATE + name].DESCRIPTOR
    for theirs in THEIRS[name].DESCRIPTOR.fields:
        field = ours.fields_by_name.get(theirs.name)
        assert field is not None, f"{name}.{theirs.name} is missing"
        assert (field.number, field.type, field.is_repeated) == (
            theirs.number,
            theirs.type,
            theirs.is_repeated,
        ), f"{name}.{theirs.name}"


@pytest.mark.parametrize("name", SHARED)
def test_proto_ours_parse_as_aetcds(name: str) -> None:
    """Our message with every field set is read by aetcd's class as the same values."""
    _check_wire(name, OURS[PRIVATE + name], THEIRS[name].FromString)


@pytest.mark.parametrize("name", SHARED)
def test_proto_aetcds_parse_as_ours(name: str) -> None:
    """aetcd's message with every field set is read by our class as the same values."""
    _check_wire(name, THEIRS[name], OURS[PRIVATE + name].FromString)


def test_proto_key_messages_are_shared() -> None:
    """The messages the client sends and reads most are among those checked on the wire."""
    key: set[type[Message]] = {
        rpc_pb2.RangeRequest,
        rpc_pb2.PutRequest,
        rpc_pb2.TxnRequest,
        rpc_pb2.Compare,
        rpc_pb2.RequestOp,
        rpc_pb2.WatchRequest,
        rpc_pb2.WatchCreateRequest,
        rpc_pb2.WatchResponse,
        rpc_pb2.LeaseGrantRequest,
        rpc_pb2.AuthenticateRequest,
        rpc_pb2.MemberAddRequest,
        rpc_pb2.StatusResponse,
        kv_pb2.KeyValue,
        kv_pb2.Event,
        auth_pb2.Permission,
    }
    shared = {PRIVATE + name for name in SHARED}
    assert {cls.DESCRIPTOR.full_name for cls in key} <= shared
