"""Op, Compare and the sort enums: frozen request values that check their arguments when built."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from etcd_layers.base.keys import KEYSPACE_END, StrOrBytes, prefix_end, to_bytes
from etcd_layers.errors import (
    EmptyKeyError,
    InvalidSortOptionError,
    LeaseProvidedError,
    ValueProvidedError,
)


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


class CompareTarget(enum.IntEnum):
    """What a Compare looks at (etcd's Compare.CompareTarget)."""

    VERSION = 0
    CREATE = 1
    MOD = 2
    VALUE = 3
    LEASE = 4


class CompareResult(enum.IntEnum):
    """The relation a Compare asserts (etcd's Compare.CompareResult)."""

    EQUAL = 0
    GREATER = 1
    LESS = 2
    NOT_EQUAL = 3


class Permission(enum.IntEnum):
    """The access a role's permission grants (etcd's authpb.Permission.Type)."""

    READ = 0
    WRITE = 1
    READWRITE = 2


class _InvalidSortTypeError(InvalidSortOptionError, TypeError):
    """A sort option of the wrong type: both the contract's class and a TypeError."""


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


@dataclass(frozen=True, slots=True)
class Op:
    """A request for `txn` and `do`: build it with Op.get, Op.put, Op.delete or Op.txn."""

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
        if (
            range_end is None
            and prefix is False
            and from_key is False
            and serializable is False
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
            # The common single-key read, with every option at its default: nothing else to
            # check. It is every layer's hot path, so it skips the general checks below.
            raw_key = key if type(key) is bytes else to_bytes(key, name="key")
            if not raw_key:
                raise EmptyKeyError(
                    "key must not be empty (use prefix=True or from_key=True for all keys)"
                )
            return GetOp(raw_key)
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
    if isinstance(items, (str, bytes)) or not isinstance(items, Iterable):
        raise TypeError(f"{name} must be an iterable of {kind.__name__}")
    result = tuple(items)
    for item in result:
        if not isinstance(item, kind):
            raise TypeError(f"{name} items must be {kind.__name__}, not {type(item).__name__}")
    return result


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

    @property
    def is_range(self) -> bool:
        """Whether this names a range rather than a single key."""
        return bool(self.range_end)


@dataclass(frozen=True, slots=True)
class PutOp(Op):
    """A put request (see Op.put)."""

    key: bytes
    value: bytes = b""
    lease: int = 0
    prev_kv: bool = False
    ignore_value: bool = False
    ignore_lease: bool = False


@dataclass(frozen=True, slots=True)
class DeleteOp(Op):
    """A delete request (see Op.delete); `key`/`range_end` resolved as etcd sends them."""

    key: bytes
    range_end: bytes = b""
    prev_kv: bool = False

    @property
    def is_range(self) -> bool:
        """Whether this names a range rather than a single key."""
        return bool(self.range_end)


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


_COMPARE_OPERATORS: Final = {
    "==": CompareResult.EQUAL,
    "!=": CompareResult.NOT_EQUAL,
    "<": CompareResult.LESS,
    ">": CompareResult.GREATER,
}


@dataclass(frozen=True, slots=True)
class Compare:
    """One comparison of a txn: build it as `Compare.value(key) == b"v"` and friends."""

    key: bytes
    range_end: bytes
    target: CompareTarget
    result: CompareResult
    target_value: bytes | int  # bytes for VALUE, an int for every other target

    def __bool__(self) -> bool:
        # `Compare.version(k) == 0` builds a comparison for the server; it is not a test. As a
        # condition (`if ...`) it would always hold, and `a == x and b > y` would keep only the
        # second comparison, silently: both are refused here.
        raise TypeError(
            "a Compare has no truth value: it is evaluated by the server; pass it in "
            "txn(compare=[...]), listing several to require them all"
        )

    @staticmethod
    def value(
        key: StrOrBytes, *, range_end: StrOrBytes | None = None, prefix: bool = False
    ) -> CompareOperand:
        """Compare the value of `key` (or of every key in a range)."""
        return CompareOperand.of(key, range_end, prefix, CompareTarget.VALUE)

    @staticmethod
    def version(
        key: StrOrBytes, *, range_end: StrOrBytes | None = None, prefix: bool = False
    ) -> CompareOperand:
        """Compare the version of `key` (0 when it does not exist)."""
        return CompareOperand.of(key, range_end, prefix, CompareTarget.VERSION)

    @staticmethod
    def create_revision(
        key: StrOrBytes, *, range_end: StrOrBytes | None = None, prefix: bool = False
    ) -> CompareOperand:
        """Compare the create revision of `key` (0 when it does not exist)."""
        return CompareOperand.of(key, range_end, prefix, CompareTarget.CREATE)

    @staticmethod
    def mod_revision(
        key: StrOrBytes, *, range_end: StrOrBytes | None = None, prefix: bool = False
    ) -> CompareOperand:
        """Compare the mod revision of `key` (0 when it does not exist)."""
        return CompareOperand.of(key, range_end, prefix, CompareTarget.MOD)

    @staticmethod
    def lease(
        key: StrOrBytes, *, range_end: StrOrBytes | None = None, prefix: bool = False
    ) -> CompareOperand:
        """Compare the lease id `key` is attached to (0 for none)."""
        return CompareOperand.of(key, range_end, prefix, CompareTarget.LEASE)


@dataclass(frozen=True, slots=True, eq=False)
class CompareOperand:
    """The left side of a comparison; `==`, `!=`, `<`, `>` against a value build a Compare."""

    key: bytes
    range_end: bytes
    target: CompareTarget

    @staticmethod
    def of(key: object, range_end: object, prefix: object, target: CompareTarget) -> CompareOperand:
        """Check the arguments and build an operand."""
        if check_bool(prefix, "prefix") and range_end is not None:
            raise ValueError("prefix=True cannot be combined with range_end")
        begin, end = key_range(key, range_end, prefix, False)
        return CompareOperand(begin, end, target)

    def _build(self, operator: str, other: object) -> Compare:
        value: bytes | int
        if self.target == CompareTarget.VALUE:
            value = to_bytes(other, name="compared value")
        else:
            value = check_int(other, f"compared {self.target.name.lower()}")
        return Compare(self.key, self.range_end, self.target, _COMPARE_OPERATORS[operator], value)

    def __eq__(self, other: object) -> Compare:  # type: ignore[override]  # returns Compare
        return self._build("==", other)

    def __ne__(self, other: object) -> Compare:  # type: ignore[override]  # returns Compare
        return self._build("!=", other)

    def __lt__(self, other: object) -> Compare:
        return self._build("<", other)

    def __gt__(self, other: object) -> Compare:
        return self._build(">", other)

    __hash__ = None  # type: ignore[assignment]  # operands compare into Compares, never hash
