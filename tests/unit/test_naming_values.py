"""The registry's pure core: Go's json.Marshal byte for byte, Go's decoding, updates and txns."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from etcd_layers.base import DeleteOp, Event, EventType, KeyValue, PutOp
from etcd_layers.naming import Endpoint, Update, UpdateOp
from etcd_layers.naming._gojson import marshal
from etcd_layers.naming._plan import lease_of, plan_update
from etcd_layers.naming._values import decode_endpoint, encode_endpoint, updates_of

# What Go's json.Marshal(internal.Update{Op: Add, Addr: addr, Metadata: metadata}) writes
# (Go 1.22+: \b and \f have short escapes), from Go's encode.go rules.
GO_ENCODINGS = [
    (Endpoint("10.0.0.1:8080"), '{"Op":0,"Addr":"10.0.0.1:8080","Metadata":null}'),
    (Endpoint(""), '{"Op":0,"Addr":"","Metadata":null}'),
    (
        Endpoint("a", {"b": 1, "a": [True, False, None]}),
        '{"Op":0,"Addr":"a","Metadata":{"a":[true,false,null],"b":1}}',
    ),
    (Endpoint("<a&b>"), '{"Op":0,"Addr":"\\u003ca\\u0026b\\u003e","Metadata":null}'),
    (Endpoint('q"\\'), '{"Op":0,"Addr":"q\\"\\\\","Metadata":null}'),
    (Endpoint("\x00\x1f\x7f"), '{"Op":0,"Addr":"\\u0000\\u001f\x7f","Metadata":null}'),
    (Endpoint("\b\f\n\r\t"), '{"Op":0,"Addr":"\\b\\f\\n\\r\\t","Metadata":null}'),
    (Endpoint("\u2028\u2029é😀"), '{"Op":0,"Addr":"\\u2028\\u2029é😀","Metadata":null}'),
    (Endpoint("a", "meta"), '{"Op":0,"Addr":"a","Metadata":"meta"}'),
    (Endpoint("a", []), '{"Op":0,"Addr":"a","Metadata":[]}'),
    (Endpoint("a", {}), '{"Op":0,"Addr":"a","Metadata":{}}'),
    (Endpoint("a", ("x", 2)), '{"Op":0,"Addr":"a","Metadata":["x",2]}'),
]


@pytest.mark.parametrize(("endpoint", "go"), GO_ENCODINGS)
def test_encode_endpoint_writes_what_go_writes(endpoint: Endpoint, go: str) -> None:
    """The stored value is byte for byte Go's json.Marshal of internal.Update."""
    assert encode_endpoint(endpoint) == go.encode()


@pytest.mark.parametrize(
    ("number", "go"),
    [
        (1.0, "1"),
        (0.1, "0.1"),
        (-0.0, "-0"),
        (100.0, "100"),
        (123456.789, "123456.789"),
        (1e20, "100000000000000000000"),
        (1e21, "1e+21"),
        (1.5e300, "1.5e+300"),
        (0.000001, "0.000001"),
        (1e-7, "1e-7"),
        (1.5e-10, "1.5e-10"),
        (5e-324, "5e-324"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (12345678901234567890, "12345678901234567890"),
    ],
)
def test_marshal_numbers_as_go_does(number: float, go: str) -> None:
    """Floats take Go's shortest form: plain from 1e-6 up to 1e21, exponent outside."""
    assert marshal(number) == go


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_marshal_floats_read_back_exactly(number: float) -> None:
    """Go's float form is the shortest that reads back as the same float."""
    text = marshal(number)
    assert float(text) == number
    assert "E" not in text
    assert ("e" in text) == (number != 0 and not 1e-6 <= abs(number) < 1e21)


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


def as_go(value: Any) -> Any:
    """`value` as Go holds decoded JSON: every number a float64."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, dict):
        return {key: as_go(item) for key, item in value.items()}
    return [as_go(item) for item in value]


HTML_SAFE = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


@given(JSON)
def test_marshal_is_compact_json_with_sorted_keys(value: Any) -> None:
    """Marshalled values read back the same; without floats, the text is Python's compact,
    sorted JSON with Go's HTML-safe escapes (control characters aside, which Go writes
    as \\u00XX or short escapes too)."""
    text = marshal(value)
    assert as_go(json.loads(text)) == as_go(value)
    assert not set("<>&\u2028\u2029") & set(text)
    if not any(isinstance(leaf, float) for leaf in leaves(value)):
        python = json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
        assert text == python.translate(HTML_SAFE).replace("\\u0008", "\\b").replace(
            "\\u000c", "\\f"
        )


def leaves(value: Any) -> list[Any]:
    """Every scalar inside `value`."""
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in leaves(item)]
    if isinstance(value, list):
        return [leaf for item in value for leaf in leaves(item)]
    return [value]


@pytest.mark.parametrize(
    ("metadata", "error"),
    [
        (float("nan"), ValueError),
        (float("inf"), ValueError),
        ({1: "a"}, TypeError),
        (object(), TypeError),
        ({"a": {b"x"}}, TypeError),
        ("\ud800", ValueError),
    ],
)
def test_endpoint_refuses_what_json_cannot_hold(metadata: Any, error: type[Exception]) -> None:
    """An Endpoint is checked when built, so nothing unstorable reaches the server."""
    with pytest.raises(error):
        Endpoint("a", metadata)


def test_endpoint_refuses_an_addr_that_is_no_str() -> None:
    """addr is a str, as Go's string."""
    with pytest.raises(TypeError, match="addr"):
        Endpoint(b"10.0.0.1:1")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("stored", "endpoint"),
    [
        (b'{"Op":0,"Addr":"a:1","Metadata":null}', Endpoint("a:1")),
        (b'{"Op":1,"Addr":"a:1"}', Endpoint("a:1")),  # Go ignores the stored Op
        (b'{"op":0,"addr":"a:1","METADATA":{"k":[1,2.5]}}', Endpoint("a:1", {"k": [1, 2.5]})),
        (b'{"Addr":"a","addr":"b"}', Endpoint("b")),  # the last match wins, as in Go
        (b'{"Addr":"a","Other":1}', Endpoint("a")),  # unknown fields are ignored
        (b"{}", Endpoint("")),
        (b"null", Endpoint("")),
        (b' {"Addr" : "a"} ', Endpoint("a")),
        (b'{"Addr":"\xff"}', Endpoint("\ufffd")),  # invalid UTF-8 becomes U+FFFD, as Go
        (b'{"Addr":null,"Op":null}', Endpoint("")),
        (b'{"Metadata":{"k":1,"k":2}}', Endpoint("", {"k": 2})),
    ],
)
def test_decode_endpoint_reads_what_go_reads(stored: bytes, endpoint: Endpoint) -> None:
    """Values decode as Go's json.Unmarshal into internal.Update."""
    assert decode_endpoint(stored) == endpoint


@pytest.mark.parametrize(
    "stored",
    [
        b"",
        b"not json",
        b"[1]",
        b'"a"',
        b'{"Op":256}',
        b'{"Op":-1}',
        b'{"Op":1.5}',
        b'{"Op":"0"}',
        b'{"Op":true}',
        b'{"Addr":1}',
        b'{"Addr":"a","Metadata":NaN}',
        b'{"Addr":"a"',
    ],
)
def test_decode_endpoint_fails_where_go_fails(stored: bytes) -> None:
    """What Go's Unmarshal refuses (and Go's List and watch skip) decodes to None."""
    assert decode_endpoint(stored) is None


@given(addr=st.text(), metadata=JSON)
def test_decode_reads_back_what_encode_wrote(addr: str, metadata: Any) -> None:
    """An endpoint survives the round trip through its stored form."""
    endpoint = Endpoint(addr, metadata)
    decoded = decode_endpoint(encode_endpoint(endpoint))
    assert decoded is not None
    assert decoded.addr == addr
    assert as_go(decoded.metadata) == as_go(metadata)  # Go reads every number as a float64


def test_updates_of_events_as_go_makes_them() -> None:
    """PUTs become ADDs (undecodable ones skipped), DELETEs DELETEs with an empty endpoint."""
    events = [
        Event(EventType.PUT, KeyValue(b"t/a", b'{"Op":0,"Addr":"a:1","Metadata":null}')),
        Event(EventType.PUT, KeyValue(b"t/bad", b"garbage")),
        Event(EventType.DELETE, KeyValue(b"t/c")),
    ]
    assert updates_of(events) == [
        Update(UpdateOp.ADD, "t/a", Endpoint("a:1")),
        Update(UpdateOp.DELETE, "t/c", Endpoint("")),
    ]


def test_plan_update_is_one_txn_of_puts_and_deletes() -> None:
    """Adds are puts of the Go JSON under the lease; deletes are deletes."""
    ops = plan_update(
        "t",
        [
            Update(UpdateOp.ADD, "t/a", Endpoint("a:1")),
            Update(UpdateOp.DELETE, "t/b", Endpoint("")),
        ],
        7,
    )
    assert ops == [
        PutOp(b"t/a", b'{"Op":0,"Addr":"a:1","Metadata":null}', lease=7),
        DeleteOp(b"t/b"),
    ]


@pytest.mark.parametrize(
    ("updates", "lease", "error"),
    [
        ([Update(UpdateOp.ADD, "other/a", Endpoint("a"))], 0, ValueError),
        ([Update(UpdateOp.ADD, "t", Endpoint("a"))], 0, ValueError),
        ([Update(UpdateOp.ADD, "tt/a", Endpoint("a"))], 0, ValueError),
        (["t/a"], 0, TypeError),
        ([], -1, ValueError),
        ([], "1", TypeError),
    ],
)
def test_plan_update_refuses_bad_updates(
    updates: list[Any], lease: Any, error: type[Exception]
) -> None:
    """A key outside target + "/" (Go: InvalidArgument) or a bad lease is refused before I/O."""
    with pytest.raises(error):
        plan_update("t", updates, lease)


def test_update_checks_its_fields() -> None:
    """An Update takes UpdateOp values (an int is converted), a str key and an Endpoint."""
    assert Update(1, "t/a", Endpoint("")).op is UpdateOp.DELETE  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="op"):
        Update(2, "t/a", Endpoint(""))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="key"):
        Update(UpdateOp.ADD, b"t/a", Endpoint(""))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="endpoint"):
        Update(UpdateOp.ADD, "t/a", "a:1")  # type: ignore[arg-type]


def test_lease_of_takes_a_session_lease_id() -> None:
    """register() takes the lease of anything with an int lease_id."""

    class Session:
        lease_id = 42

    assert lease_of(Session()) == 42
    with pytest.raises(TypeError, match="lease_id"):
        lease_of(object())
