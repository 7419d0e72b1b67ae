"""Op and the sort enums: frozen request values that check their arguments when built.

Compare lives in base.compare and the argument checks in base.checks; both are re-exported
here, where callers have always found them.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from etcd_layers.base._frozen import built_by_draft
from etcd_layers.base.checks import check_bool, check_int, check_timeout, key_range
from etcd_layers.base.compare import Compare, CompareOperand, CompareResult, CompareTarget
from etcd_layers.base.keys import StrOrBytes, to_bytes
from etcd_layers.errors import (
    EmptyKeyError,
    InvalidSortOptionError,
    LeaseProvidedError,
    ValueProvidedError,
)

__all__ = [  # with what moved to base.compare and base.checks, importable here as before
    "Compare",
    "CompareOperand",
    "CompareResult",
    "CompareTarget",
    "DeleteOp",
    "GetOp",
    "Op",
    "Permission",
    "PutOp",
    "SortOrder",
    "SortTarget",
    "TxnOp",
    "check_bool",
    "check_int",
    "check_timeout",
    "key_range",
    "op_writes",
]


class SortOrder(enum.IntEnum):
    """How a range response is ordered (etcd's RangeRequest.SortOrder)."""

    NONE = 0
    ASCEND = 1
    DESCEND = 2


class SortTarget(enum.IntEnum):
    """What a range response is ordered by (etcd's RangeRequest.SortTarget)."""

    KEY = 0
    VERSION = 1
    CREATE = 2
    MOD = 3
    VALUE = 4


class Permission(enum.IntEnum):
    """The access a role's permission grants (etcd's authpb.Permission.Type)."""

    READ = 0
    WRITE = 1
    READWRITE = 2


class _InvalidSortTypeError(InvalidSortOptionError, TypeError):
    """A sort option of the wrong type: both the contract's class and a TypeError."""


def _sort_option(value: object, enum_type: type[SortOrder] | type[SortTarget], name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _InvalidSortTypeError(
            f"{name} must be a {enum_type.__name__}, not {type(value).__name__}"
        )
    try:
        return enum_type(value)
    except ValueError:
        raise InvalidSortOptionError(
            f"{name} must be one of {[member.name for member in enum_type]}, got {value!r}"
        ) from None


class Op:
    """A request for `txn` and `do`: build it with Op.get, Op.put, Op.delete or Op.txn."""

    # A plain base, not a frozen dataclass: its `__setattr__` would slow the drafts of every
    # Op class (base._frozen). It has no fields; each subclass is a frozen dataclass.
    __slots__ = ()

    @staticmethod
    def get(
        key: StrOrBytes,
        *,
        range_end: StrOrBytes | None = None,
        prefix: bool = False,
        from_key: bool = False,
        limit: int = 0,
        revision: int = 0,
        sort_order: SortOrder | None = None,
        sort_target: SortTarget | None = None,
        serializable: bool = False,
        keys_only: bool = False,
        count_only: bool = False,
        min_mod_revision: int = 0,
        max_mod_revision: int = 0,
        min_create_revision: int = 0,
        max_create_revision: int = 0,
    ) -> GetOp:
        """Return a range request; arguments as `KV.get`."""
        serializable_flag: object = serializable  # typed bool, but callers may pass anything
        if (
            range_end is None
            and prefix is False
            and from_key is False
            and type(serializable_flag) is bool  # a bool of any value; others: full checks
            and keys_only is False
            and count_only is False
            and sort_order is None
            and sort_target is None
            and type(limit) is type(revision) is int  # bool is refused by the full checks
            and type(min_mod_revision) is type(max_mod_revision) is int
            and type(min_create_revision) is type(max_create_revision) is int
            and not (limit or revision or min_mod_revision or max_mod_revision)
            and not (min_create_revision or max_create_revision)
        ):
            # The common single-key read, with every option at its default but perhaps
            # `serializable`: nothing else to check. It is every layer's hot path, so it skips
            # the general checks below.
            raw_key = key if type(key) is bytes else to_bytes(key, name="key")
            if not raw_key:
                raise EmptyKeyError(
                    "key must not be empty (use prefix=True or from_key=True for all keys)"
                )
            return GetOp(raw_key, serializable=True) if serializable else GetOp(raw_key)
        begin, end = key_range(key, range_end, prefix, from_key)
        order = (
            SortOrder.NONE
            if sort_order is None
            else _sort_option(sort_order, SortOrder, "sort_order")
        )
        target = (
            SortTarget.KEY
            if sort_target is None
            else _sort_option(sort_target, SortTarget, "sort_target")
        )
        if target == SortTarget.KEY and order == SortOrder.ASCEND:
            # As clientv3: the server already returns keys in ascending order, and any other
            # order makes it fetch the whole range before applying the limit.
            order = SortOrder.NONE
        return GetOp(
            key=begin,
            range_end=end,
            limit=check_int(limit, "limit"),
            revision=check_int(revision, "revision"),
            sort_order=SortOrder(order),
            sort_target=SortTarget(target),
            serializable=check_bool(serializable, "serializable"),
            keys_only=check_bool(keys_only, "keys_only"),
            count_only=check_bool(count_only, "count_only"),
            min_mod_revision=check_int(min_mod_revision, "min_mod_revision"),
            max_mod_revision=check_int(max_mod_revision, "max_mod_revision"),
            min_create_revision=check_int(min_create_revision, "min_create_revision"),
            max_create_revision=check_int(max_create_revision, "max_create_revision"),
        )

    @staticmethod
    def put(
        key: StrOrBytes,
        value: StrOrBytes,
        *,
        lease: int = 0,
        prev_kv: bool = False,
        ignore_value: bool = False,
        ignore_lease: bool = False,
    ) -> PutOp:
        """Return a put request; arguments as `KV.put`."""
        raw_key = to_bytes(key, name="key")
        if not raw_key:
            raise EmptyKeyError("key must not be empty")
        raw_value = to_bytes(value, name="value")
        lease = check_int(lease, "lease")
        ignore_value = check_bool(ignore_value, "ignore_value")
        ignore_lease = check_bool(ignore_lease, "ignore_lease")
        if ignore_value and raw_value:
            raise ValueProvidedError("value must be empty when ignore_value=True")
        if ignore_lease and lease:
            raise LeaseProvidedError("lease must be 0 when ignore_lease=True")
        return PutOp(
            key=raw_key,
            value=raw_value,
            lease=lease,
            prev_kv=check_bool(prev_kv, "prev_kv"),
            ignore_value=ignore_value,
            ignore_lease=ignore_lease,
        )

    @staticmethod
    def delete(
        key: StrOrBytes,
        *,
        range_end: StrOrBytes | None = None,
        prefix: bool = False,
        from_key: bool = False,
        prev_kv: bool = False,
    ) -> DeleteOp:
        """Return a delete request; arguments as `KV.delete`."""
        begin, end = key_range(key, range_end, prefix, from_key)
        return DeleteOp(key=begin, range_end=end, prev_kv=check_bool(prev_kv, "prev_kv"))

    @staticmethod
    def txn(
        compare: Iterable[Compare] = (),
        success: Iterable[Op] = (),
        failure: Iterable[Op] = (),
    ) -> TxnOp:
        """Return a transaction: if every compare holds, run `success`, else `failure`."""
        return TxnOp(
            compare=_checked_items(compare, Compare, "compare"),
            success=_checked_items(success, Op, "success"),
            failure=_checked_items(failure, Op, "failure"),
        )


def _checked_items(items: object, kind: type, name: str) -> tuple:  # type: ignore[type-arg]  # generic over kind
    result: tuple[object, ...]
    if type(items) is list or type(items) is tuple:  # the common case skips the ABC check
        result = tuple(items)
    elif isinstance(items, (str, bytes)) or not isinstance(items, Iterable):
        raise TypeError(f"{name} must be an iterable of {kind.__name__}")
    else:
        result = tuple(items)
    for item in result:
        if not isinstance(item, kind):
            raise TypeError(f"{name} items must be {kind.__name__}, not {type(item).__name__}")
    return result


# Each value class is built through a draft (base._frozen): a fifth of the cost of the frozen
# dataclass `__init__`, which every call and every layer's copy would pay.


@built_by_draft
@dataclass(frozen=True, slots=True)
class GetOp(Op):
    """A range request (see Op.get); `key`/`range_end` are already resolved as etcd sends them."""

    key: bytes
    range_end: bytes = b""
    limit: int = 0
    revision: int = 0
    sort_order: SortOrder = SortOrder.NONE
    sort_target: SortTarget = SortTarget.KEY
    serializable: bool = False
    keys_only: bool = False
    count_only: bool = False
    min_mod_revision: int = 0
    max_mod_revision: int = 0
    min_create_revision: int = 0
    max_create_revision: int = 0

    if TYPE_CHECKING:  # made by built_by_draft; for layers that move a checked op elsewhere

        def _with_key(self, key: bytes, range_end: bytes) -> GetOp: ...

    @property
    def is_range(self) -> bool:
        """Whether this names a range rather than a single key."""
        return bool(self.range_end)


@built_by_draft
@dataclass(frozen=True, slots=True)
class PutOp(Op):
    """A put request (see Op.put)."""

    key: bytes
    value: bytes = b""
    lease: int = 0
    prev_kv: bool = False
    ignore_value: bool = False
    ignore_lease: bool = False

    if TYPE_CHECKING:  # made by built_by_draft, as GetOp's

        def _with_key(self, key: bytes) -> PutOp: ...


@built_by_draft
@dataclass(frozen=True, slots=True)
class DeleteOp(Op):
    """A delete request (see Op.delete); `key`/`range_end` resolved as etcd sends them."""

    key: bytes
    range_end: bytes = b""
    prev_kv: bool = False

    if TYPE_CHECKING:  # made by built_by_draft, as GetOp's

        def _with_key(self, key: bytes, range_end: bytes) -> DeleteOp: ...

    @property
    def is_range(self) -> bool:
        """Whether this names a range rather than a single key."""
        return bool(self.range_end)


@built_by_draft
@dataclass(frozen=True, slots=True)
class TxnOp(Op):
    """A transaction (see Op.txn)."""

    compare: tuple[Compare, ...] = ()
    success: tuple[Op, ...] = ()
    failure: tuple[Op, ...] = ()

    @property
    def is_write(self) -> bool:
        """Whether either branch (at any depth) may write."""
        return any(op_writes(op) for op in (*self.success, *self.failure))


def op_writes(op: Op) -> bool:
    """Whether `op` may change the store if applied."""
    if isinstance(op, GetOp):
        return False
    if isinstance(op, TxnOp):
        return op.is_write
    return True
