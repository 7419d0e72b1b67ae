"""Go's text forms of durations, booleans and integers, read (and durations written) as Go does."""

from __future__ import annotations

import re
from typing import Final

NANOSECOND: Final = 1
MICROSECOND: Final = 1_000
MILLISECOND: Final = 1_000_000
SECOND: Final = 1_000_000_000
MINUTE: Final = 60 * SECOND
HOUR: Final = 60 * MINUTE

# time.ParseDuration's units; Go accepts both the micro sign (U+00B5) and the Greek mu (U+03BC).
_UNITS: Final[dict[str, int]] = {
    "ns": NANOSECOND,
    "us": MICROSECOND,
    "\u00b5s": MICROSECOND,
    "\u03bcs": MICROSECOND,
    "ms": MILLISECOND,
    "s": SECOND,
    "m": MINUTE,
    "h": HOUR,
}
_NUMBER: Final = re.compile(r"([0-9]*)(?:\.([0-9]*))?")  # [0-9]*(\.[0-9]*)?, ASCII digits only
_UNIT: Final = re.compile(r"[^0-9.]*")  # Go takes every character up to the next digit or dot
_INT64_MAX: Final = 2**63 - 1
_INT64_MIN: Final = -(2**63)
_TRUE: Final = frozenset({"1", "t", "T", "TRUE", "true", "True"})  # strconv.ParseBool
_FALSE: Final = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def parse_duration(text: str) -> int:
    r"""Return the nanoseconds in `text`, read as Go's time.ParseDuration reads it.

    The syntax is `[-+]?([0-9]*(\.[0-9]*)?unit)+` with units ns, us (or µs), ms, s, m, h, as
    in "300ms", "-1.5h" or "2h45m"; a bare "0" is also valid. Go rounds a fraction through a
    float64; this reads it exactly, which can differ from Go by a nanosecond in long fractions.

    Raises:
        ValueError: not a duration, or outside Go's int64 range of nanoseconds.
    """
    rest, negative = text, False
    if rest[:1] in ("-", "+"):
        negative, rest = rest[0] == "-", rest[1:]
    if rest == "0":
        return 0
    if not rest:
        raise ValueError(f"invalid duration {text!r}")
    total = 0
    while rest:
        number = _NUMBER.match(rest)
        assert number is not None  # the pattern matches the empty string
        whole, fraction = number.group(1), number.group(2)
        if not whole and not fraction:  # no digits: "", ".s", "-.s", or a letter first
            raise ValueError(f"invalid duration {text!r}")
        rest = rest[number.end() :]
        unit_match = _UNIT.match(rest)
        assert unit_match is not None  # the pattern matches the empty string
        unit = unit_match.group(0)
        if not unit:
            raise ValueError(f"missing unit in duration {text!r}")
        scale = _UNITS.get(unit)
        if scale is None:
            raise ValueError(f"unknown unit {unit!r} in duration {text!r}")
        rest = rest[len(unit) :]
        total += int(whole or "0") * scale
        if fraction:
            total += int(fraction) * scale // 10 ** len(fraction)
        if total > -_INT64_MIN:
            raise ValueError(f"invalid duration {text!r} (out of range)")
    result = -total if negative else total
    if result > _INT64_MAX:
        raise ValueError(f"invalid duration {text!r} (out of range)")
    return result


def format_duration(nanoseconds: int) -> str:
    """Return `nanoseconds` written as Go's Duration.String writes it ("1h2m3.5s", "1.5ms")."""
    sign = "-" if nanoseconds < 0 else ""
    size = abs(nanoseconds)
    if size == 0:
        return "0s"
    if size < SECOND:  # a single small unit, as Go does: "1.5µs", "250ms"
        if size < MICROSECOND:
            return f"{sign}{size}ns"
        if size < MILLISECOND:
            return f"{sign}{_decimal(size, 3)}\u00b5s"
        return f"{sign}{_decimal(size, 6)}ms"
    text = _decimal(size % MINUTE, 9) + "s"
    minutes = size // MINUTE
    if minutes:
        text = f"{minutes % 60}m{text}"
        if minutes >= 60:
            text = f"{minutes // 60}h{text}"
    return sign + text


def _decimal(value: int, places: int) -> str:
    """Return `value` / 10**places with no trailing zeros in its fraction (Go's fmtFrac)."""
    whole, fraction = divmod(value, 10**places)
    digits = f"{fraction:0{places}d}".rstrip("0")
    return f"{whole}.{digits}" if digits else str(whole)


def parse_bool(text: str) -> bool:
    """Return the boolean in `text`, read as Go's strconv.ParseBool reads it ("1", "t", "true"…).

    Raises:
        ValueError: not one of Go's spellings of true or false.
    """
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(
        f"invalid boolean {text!r} (Go accepts 1, t, T, TRUE, true, True and the same for false)"
    )


def parse_int(text: str) -> int:
    """Return the integer in `text`, read as Go's strconv.ParseInt(text, 0, 64) reads it.

    Decimal, or with a 0x, 0o or 0b prefix (underscores allowed between digits), or a leading
    0 for octal as in Go ("010" is 8).

    Raises:
        ValueError: not an integer, or outside int64.
    """
    body = text[1:] if text[:1] in ("-", "+") else text
    if re.fullmatch(r"0[0-7]+", body):
        value = int(body, 8)
    elif re.fullmatch(r"[0-9]+", body) or re.fullmatch(r"0[xXoObB][0-9A-Fa-f_]+", body):
        try:
            value = int(body, 0)
        except ValueError:
            raise ValueError(f"invalid integer {text!r}") from None
    else:
        raise ValueError(f"invalid integer {text!r}")
    value = -value if text.startswith("-") else value
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise ValueError(f"integer {text!r} is out of range")
    return value
