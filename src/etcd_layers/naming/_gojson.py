r"""Go's encoding/json, byte for byte, for the values naming/endpoints stores (pure).

`marshal` writes what Go's `json.Marshal` writes for the same value: compact, map keys
sorted, `<`, `>`, `&`, U+2028 and U+2029 escaped (HTML-safe), short escapes for `\b \f \n
\r \t` (Go 1.22 and later), other control characters as `\u00XX`, floats in Go's format.
`unmarshal_object` reads a JSON object as Go decodes one into a struct: field names matched
case-insensitively (an exact match first), the last duplicate winning, and NaN or Infinity
refused.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Final, TypeAlias

__all__ = ["JSONValue", "marshal", "unmarshal_object"]

JSONValue: TypeAlias = (
    "bool | int | float | str | Sequence[JSONValue] | Mapping[str, JSONValue] | None"
)

_HEX: Final = "0123456789abcdef"
_SHORT: Final = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
}
_ESCAPED: Final = {
    **{chr(c): "\\u00" + _HEX[c >> 4] + _HEX[c & 0xF] for c in range(0x20)},
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
    **_SHORT,
}
_TRANSLATION: Final = str.maketrans(_ESCAPED)
_NEEDS_ESCAPE: Final = frozenset(_ESCAPED)


def marshal_string(text: str) -> str:
    """Return `text` as Go writes a JSON string.

    Raises:
        ValueError: `text` holds a lone surrogate (it has no UTF-8 form).
    """
    try:
        text.encode()
    except UnicodeEncodeError as err:
        raise ValueError(f"a string to encode is not valid Unicode: {err}") from None
    if _NEEDS_ESCAPE.isdisjoint(text):
        return f'"{text}"'
    return '"' + text.translate(_TRANSLATION) + '"'


def marshal_float(number: float) -> str:
    """Return `number` as Go's json.Marshal writes a float64.

    Go uses the shortest digits that read back the same (as Python's repr), in plain
    notation unless the magnitude is below 1e-6 or at least 1e21, and writes `e-7` where
    strconv writes `e-07`.

    Raises:
        ValueError: NaN or an infinity (Go refuses them too).
    """
    if math.isnan(number) or math.isinf(number):
        raise ValueError(f"JSON cannot hold {number!r}")
    magnitude = abs(number)
    if magnitude != 0 and (magnitude < 1e-6 or magnitude >= 1e21):
        text = repr(number)  # shortest digits, exponent notation in this range
        mantissa, _, exponent = text.partition("e")
        sign, digits = exponent[0], exponent[1:].lstrip("0")
        if sign == "-" and len(digits) == 1:
            return f"{mantissa}e-{digits}"  # Go's cleanup: e-09 becomes e-9
        return f"{mantissa}e{sign}{digits.rjust(2, '0')}"
    return format(Decimal(repr(number)).normalize(), "f")


def marshal(value: object) -> str:  # noqa: PLR0911  # one return per JSON kind
    """Return `value` as Go's `json.Marshal` writes it.

    `value` is None, a bool, int, float or str, a list or tuple, or a dict with str keys.

    Raises:
        TypeError: a value of another type, or a dict key that is not a str.
        ValueError: NaN, an infinity, or a string with a lone surrogate.
    """
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        return marshal_float(value)
    if isinstance(value, str):
        return marshal_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(marshal(item) for item in value) + "]"
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise TypeError(f"JSON object keys must be str, not {type(key).__name__}")
        return (
            "{"
            + ",".join(f"{marshal_string(key)}:{marshal(value[key])}" for key in sorted(value))
            + "}"
        )
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


class _Object(dict[str, object]):
    """A decoded JSON object that keeps its members in order, duplicates included."""

    def __init__(self, pairs: list[tuple[str, object]]) -> None:
        super().__init__(pairs)  # a nested object: the last duplicate wins, as in Go's maps
        self.pairs = pairs


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def unmarshal_object(data: bytes, fields: Sequence[str]) -> dict[str, object]:
    """Decode `data` as Go decodes JSON into a struct with `fields`.

    Returns a dict of the fields present (by their struct names; absent ones are left out,
    as Go leaves them at their zero value). `null` decodes to an empty dict (Go: no change).

    Raises:
        ValueError: `data` is not valid JSON, or not an object (Go's Unmarshal errors).
    """
    text = data.decode("utf-8", "replace")  # Go replaces invalid UTF-8 with U+FFFD too
    decoded = json.loads(text, object_pairs_hook=_Object, parse_constant=_refuse_constant)
    if decoded is None:
        return {}
    if not isinstance(decoded, _Object):
        raise ValueError(  # noqa: TRY004  # bad input data, as json.loads's own errors
            f"JSON {type(decoded).__name__} where an object belongs"
        )
    by_folded = {name.lower(): name for name in fields}
    found: dict[str, object] = {}
    for key, value in decoded.pairs:
        name = key if key in fields else by_folded.get(key.lower()) if key.isascii() else None
        if name is not None:
            found[name] = _plain(value)
    return found


def _plain(value: object) -> object:
    """Return `value` with every decoded object as a plain dict."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value
