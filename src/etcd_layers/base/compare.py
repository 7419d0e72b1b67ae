"""Compare: the frozen conditions of a txn, built with operators (`Compare.value(k) == v`)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from etcd_layers.base._frozen import built_by_draft
from etcd_layers.base.checks import check_bool, check_int, key_range
from etcd_layers.base.keys import StrOrBytes, to_bytes

__all__ = ["Compare", "CompareOperand", "CompareResult", "CompareTarget"]


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


_COMPARE_OPERATORS: Final = {
    "==": CompareResult.EQUAL,
    "!=": CompareResult.NOT_EQUAL,
    "<": CompareResult.LESS,
    ">": CompareResult.GREATER,
}


@built_by_draft
@dataclass(frozen=True, slots=True)
class Compare:
    """One comparison of a txn: build it as `Compare.value(key) == b"v"` and friends."""

    key: bytes
    range_end: bytes
    target: CompareTarget
    result: CompareResult
    target_value: bytes | int  # bytes for VALUE, an int for every other target

    if TYPE_CHECKING:  # made by built_by_draft; for layers that move a checked compare

        def _with_key(self, key: bytes, range_end: bytes) -> Compare: ...

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

    @staticmethod
    def key_exists(key: StrOrBytes) -> Compare:
        """Hold when `key` exists: Go's `clientv3util.KeyExists` (its version is above 0)."""
        return Compare.version(key) > 0

    @staticmethod
    def key_missing(key: StrOrBytes) -> Compare:
        """Hold when `key` does not exist: Go's `clientv3util.KeyMissing` (its version is 0)."""
        return Compare.version(key) == 0


@built_by_draft
@dataclass(frozen=True, slots=True, eq=False)
class CompareOperand:
    """The left side of a comparison; `==`, `!=`, `<`, `>` against a value build a Compare."""

    key: bytes
    range_end: bytes
    target: CompareTarget

    @staticmethod
    def of(key: object, range_end: object, prefix: object, target: CompareTarget) -> CompareOperand:
        """Check the arguments and build an operand."""
        if range_end is None and prefix is False:  # one key, the common compare: no range
            raw_key = key if type(key) is bytes else to_bytes(key, name="key")
            if raw_key:
                return CompareOperand(raw_key, b"", target)
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
