"""Ops and Compares built through their drafts are ordinary frozen dataclass values."""

from __future__ import annotations

import copy
import dataclasses
import pickle

import pytest

from etcd_layers.base._frozen import built_by_draft, draft_class
from etcd_layers.base.compare import Compare, CompareOperand, CompareResult, CompareTarget
from etcd_layers.base.ops import DeleteOp, GetOp, Op, PutOp, SortOrder, SortTarget, TxnOp

GET = GetOp(b"k", b"z", 1, 2, SortOrder.DESCEND, SortTarget.MOD, True, True, False, 3, 4, 5, 6)
COMPARE = Compare(b"k", b"", CompareTarget.VALUE, CompareResult.LESS, b"v")
VALUES = [
    GET,
    PutOp(b"k", b"v", 7, True, False, False),
    DeleteOp(b"k", b"l", True),
    TxnOp((COMPARE,), (GET,), (DeleteOp(b"d"),)),
    COMPARE,
    Compare.mod_revision(b"k", prefix=True),  # a CompareOperand
]


def _fields(value: object) -> dict[str, object]:
    return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}  # type: ignore[arg-type]  # values only


def test_frozen_values_take_every_field_in_order() -> None:
    """Each positional argument lands in the field of its position, as dataclass __init__ did."""
    assert _fields(GET) == {
        "key": b"k",
        "range_end": b"z",
        "limit": 1,
        "revision": 2,
        "sort_order": SortOrder.DESCEND,
        "sort_target": SortTarget.MOD,
        "serializable": True,
        "keys_only": True,
        "count_only": False,
        "min_mod_revision": 3,
        "max_mod_revision": 4,
        "min_create_revision": 5,
        "max_create_revision": 6,
    }
    assert GetOp(key=b"k") == GetOp(b"k", b"", 0, 0, SortOrder.NONE, SortTarget.KEY)
    assert _fields(COMPARE) == {
        "key": b"k",
        "range_end": b"",
        "target": CompareTarget.VALUE,
        "result": CompareResult.LESS,
        "target_value": b"v",
    }


@pytest.mark.parametrize("value", VALUES, ids=lambda v: type(v).__name__)
def test_frozen_values_are_exactly_their_class_and_refuse_changes(value: object) -> None:
    """The built object is an instance of the class itself, and frozen."""
    assert type(value) in (GetOp, PutOp, DeleteOp, TxnOp, Compare, CompareOperand)
    name = dataclasses.fields(value)[0].name  # type: ignore[arg-type]  # values only
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(value, name, b"x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        delattr(value, name)


@pytest.mark.parametrize("value", VALUES, ids=lambda v: type(v).__name__)
def test_frozen_values_survive_pickle_copy_and_replace(value: object) -> None:
    """Pickle, copy, deepcopy and dataclasses.replace give an equal value of the same class."""
    for clone in (
        pickle.loads(pickle.dumps(value)),
        copy.copy(value),
        copy.deepcopy(value),
        dataclasses.replace(value),  # type: ignore[type-var]  # values only
    ):
        assert type(clone) is type(value)
        assert _fields(clone) == _fields(value)
    if isinstance(value, Op):
        assert hash(copy.copy(value)) == hash(value)
        assert copy.copy(value) == value


def test_frozen_values_subclass_builds_field_by_field() -> None:
    """A subclass (no draft of its own) is still built with every field set."""

    class Traced(GetOp):
        __slots__ = ()

    traced = Traced(b"k", serializable=True)
    assert type(traced) is Traced
    assert traced.key == b"k"
    assert traced.serializable
    assert traced.limit == 0


@pytest.mark.parametrize("cls", [GetOp, PutOp, DeleteOp, TxnOp, Compare, CompareOperand])
def test_frozen_values_drafts_store_without_a_python_setattr(cls: type) -> None:
    """A draft stores into its slots with object's setattr, the fast path it exists for."""
    draft = draft_class(cls)
    assert vars(object)["__setattr__"] is getattr(draft, "__setattr__")  # noqa: B009
    assert getattr(draft, "__slots__") == getattr(cls, "__slots__")  # noqa: B009
    assert draft.__bases__ == cls.__bases__


@built_by_draft
@dataclasses.dataclass(frozen=True, slots=True)
class _Ranged:
    key: bytes
    range_end: bytes = b""
    note: str = "n"


def test_built_by_draft_keeps_the_dataclass_signature_and_defaults() -> None:
    """The generated constructor takes the fields positionally or by name, with their defaults."""
    assert _fields(_Ranged(b"k")) == {"key": b"k", "range_end": b"", "note": "n"}
    assert _Ranged(b"k", note="x") == _Ranged(key=b"k", range_end=b"", note="x")
    with pytest.raises(TypeError):
        _Ranged()  # type: ignore[call-arg]  # key is required, as in the dataclass


def test_built_by_draft_refuses_a_class_without_slots() -> None:
    """A class without slots is refused when decorated."""
    with pytest.raises(TypeError, match="slots"):

        @built_by_draft
        @dataclasses.dataclass(frozen=True)
        class Unslotted:
            key: bytes


def test_a_default_factory_gives_every_value_a_fresh_default() -> None:
    """A field with a default_factory gets a new default per value, as the dataclass's would."""

    @built_by_draft
    @dataclasses.dataclass(frozen=True, slots=True)
    class Listed:
        name: str
        items: list[int] = dataclasses.field(default_factory=list)

    first, second = Listed("a"), Listed(name="b")
    assert first.items == []
    assert second.items == []
    assert first.items is not second.items
    given = [1]
    assert Listed("c", given).items is given
    assert Listed("c", items=given) == Listed("c", [1])
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.items = [2]  # type: ignore[misc]
