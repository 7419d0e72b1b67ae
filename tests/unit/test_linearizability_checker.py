"""The per-key linearizability checker, on histories known to be good and known to be bad."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from etcd_layers.testing.linearizability import (
    CheckResult,
    History,
    Operation,
    check,
    check_key,
)

K = b"k"


def get(client: str, start: float, end: float, result: bytes | None, key: bytes = K) -> Operation:
    return Operation(client, "get", key, None, start, end, result)


def put(client: str, start: float, end: float | None, value: bytes, key: bytes = K) -> Operation:
    return Operation(client, "put", key, value, start, end)


def delete(client: str, start: float, end: float | None, key: bytes = K) -> Operation:
    return Operation(client, "delete", key, None, start, end)


# --- known-good -------------------------------------------------------------------------------


def test_check_key_accepts_an_empty_history() -> None:
    """No operations are trivially linearizable."""
    assert check_key([]).ok


def test_check_key_accepts_a_sequential_history() -> None:
    """Reads that follow writes in real time and see them are linearizable."""
    history = [
        get("a", 0, 1, None),
        put("a", 2, 3, b"1"),
        get("b", 4, 5, b"1"),
        delete("b", 6, 7),
        get("a", 8, 9, None),
    ]
    assert check_key(history).ok


def test_check_key_accepts_a_read_concurrent_with_a_write_seeing_either_value() -> None:
    """A read overlapping a write may see the old or the new value."""
    for seen in (b"old", b"new"):
        history = [
            put("a", 0, 1, b"old"),
            put("a", 2, 6, b"new"),
            get("b", 3, 4, seen),
        ]
        assert check_key(history).ok, seen


def test_check_key_accepts_concurrent_writes_in_either_order() -> None:
    """Two overlapping writes may take effect in either order."""
    history = [
        put("a", 0, 5, b"x"),
        put("b", 1, 4, b"y"),
        get("c", 6, 7, b"x"),
    ]
    assert check_key(history).ok
    history[2] = get("c", 6, 7, b"y")
    assert check_key(history).ok


def test_check_key_accepts_a_write_of_unknown_outcome_that_applied() -> None:
    """A write that may have applied explains a later read of its value."""
    history = [put("a", 0, None, b"x"), get("b", 5, 6, b"x")]
    assert check_key(history).ok


def test_check_key_accepts_a_write_of_unknown_outcome_that_never_applied() -> None:
    """A write that may not have applied explains reads that never see it."""
    history = [put("a", 0, None, b"x"), get("b", 5, 6, None), get("b", 7, 8, None)]
    assert check_key(history).ok


def test_check_key_accepts_an_initial_value() -> None:
    """The value before the history is what a first read may see."""
    assert check_key([get("a", 0, 1, b"seed")], initial=b"seed").ok


def test_check_key_treats_equal_times_as_concurrent() -> None:
    """A read invoked at the instant a write returns may still precede it."""
    history = [put("a", 0, 5, b"x"), get("b", 5, 6, None)]
    assert check_key(history).ok


# --- known-bad --------------------------------------------------------------------------------


def test_check_key_rejects_a_stale_read_after_a_completed_write() -> None:
    """A read that starts after a write returned must see it (or something later)."""
    history = [put("a", 0, 1, b"1"), put("a", 2, 3, b"2"), get("b", 4, 5, b"1")]
    result = check_key(history)
    assert not result.ok
    assert result.decided
    assert result.key == K


def test_check_key_rejects_a_value_never_written() -> None:
    """A read cannot invent a value."""
    assert not check_key([put("a", 0, 1, b"1"), get("b", 2, 3, b"9")]).ok


def test_check_key_rejects_reads_that_go_back_in_time() -> None:
    """Once one read saw the new value, a later read cannot see the old one."""
    history = [
        put("a", 0, 1, b"old"),
        put("a", 2, 10, b"new"),
        get("b", 3, 4, b"new"),
        get("c", 5, 6, b"old"),
    ]
    assert not check_key(history).ok


def test_check_key_rejects_a_read_of_a_deleted_key() -> None:
    """After a delete completes, reads see no value."""
    history = [put("a", 0, 1, b"1"), delete("a", 2, 3), get("b", 4, 5, b"1")]
    assert not check_key(history).ok


def test_check_key_rejects_a_read_before_the_write_it_sees() -> None:
    """A read that returned before a write began cannot see that write."""
    history = [get("b", 0, 1, b"later"), put("a", 2, 3, b"later")]
    assert not check_key(history).ok


def test_check_key_explains_the_failure() -> None:
    """The message names the key and lists its history."""
    result = check_key([put("a", 0, 1, b"1"), get("b", 2, 3, b"2")])
    assert "b'k'" in result.message
    assert "put b'1'" in result.message
    assert len(result.operations) == 2


def test_check_key_reports_undecided_when_the_budget_runs_out() -> None:
    """A search that exceeds its budget is not reported as linearizable."""
    writes = [put(str(i), 0, 100, bytes([i])) for i in range(12)]
    result = check_key([*writes, get("r", 101, 102, b"nothing")], max_steps=50)
    assert not result.ok
    assert not result.decided


def test_check_reports_the_bad_key_among_good_ones() -> None:
    """Keys are checked separately, and the failing one is named."""
    good = [put("a", 0, 1, b"1", key=b"good"), get("b", 2, 3, b"1", key=b"good")]
    bad = [put("a", 0, 1, b"1", key=b"bad"), get("b", 2, 3, None, key=b"bad")]
    result = check([*good, *bad])
    assert result == CheckResult(
        ok=False, key=b"bad", operations=result.operations, message=result.message
    )
    assert check(good).ok


def test_check_uses_initial_values_per_key() -> None:
    """`initial` gives each key its starting value."""
    history = [get("a", 0, 1, b"a0", key=b"a"), get("a", 0, 1, None, key=b"b")]
    assert check(history, initial=lambda key: b"a0" if key == b"a" else None).ok


# --- operations and the recorder -------------------------------------------------------------


def test_operation_refuses_a_return_before_the_call() -> None:
    """Times must be ordered."""
    with pytest.raises(ValueError, match="before"):
        put("a", 2, 1, b"x")


def test_operation_refuses_a_get_of_unknown_outcome() -> None:
    """A get without a result carries no information."""
    with pytest.raises(ValueError, match="drop it"):
        Operation("a", "get", K, None, 0, None)


def test_operation_refuses_an_unknown_kind() -> None:
    """Only get, put and delete are modelled."""
    with pytest.raises(ValueError, match="kind"):
        Operation("a", "cas", K, None, 0, 1)  # type: ignore[arg-type]  # refused on purpose


def test_history_records_outcomes_with_its_clock() -> None:
    """ok, unknown and failed land as returned, open-ended and dropped operations."""
    ticks = iter(float(t) for t in range(100))
    history = History(clock=lambda: next(ticks))
    first = history.invoke("a", "put", K, b"1")
    history.ok(first)
    second = history.invoke("b", "get", K)
    history.ok(second, b"1")
    third = history.invoke("a", "put", K, b"2")
    history.unknown(third)
    fourth = history.invoke("b", "get", K)
    history.unknown(fourth)  # a read of unknown outcome is simply dropped
    fifth = history.invoke("a", "delete", K)
    history.failed(fifth)
    assert history.operations() == [
        Operation("a", "put", K, b"1", 0.0, 1.0),
        Operation("b", "get", K, None, 2.0, 3.0, b"1"),
        Operation("a", "put", K, b"2", 4.0, None),
    ]


# --- property: executions of a real register are always accepted -----------------------------


@st.composite
def register_runs(draw: st.DrawFn) -> list[Operation]:
    """A history produced by a real register, with intervals around each true instant."""
    count = draw(st.integers(min_value=1, max_value=12))
    state: bytes | None = None
    ops: list[Operation] = []
    for instant in range(count):
        kind = draw(st.sampled_from(["get", "put", "delete"]))
        before = draw(st.floats(min_value=0, max_value=3, allow_nan=False))
        after = draw(st.floats(min_value=0, max_value=3, allow_nan=False))
        start, end = instant * 2 - before, instant * 2 + after
        client = f"c{instant % 3}"
        if kind == "get":
            ops.append(get(client, start, end, state))
        elif kind == "put":
            state = bytes([instant])
            unknown = draw(st.booleans())
            ops.append(put(client, start, None if unknown else end, state))
        else:
            state = None
            ops.append(delete(client, start, end))
    return ops


@settings(max_examples=200, deadline=None)
@given(register_runs())
def test_check_key_accepts_every_execution_of_a_register(ops: list[Operation]) -> None:
    """Whatever the overlaps, a history that really happened is linearizable."""
    assert check_key(ops).ok


@settings(max_examples=200, deadline=None)
@given(register_runs())
def test_check_key_rejects_a_read_of_a_value_nobody_wrote(ops: list[Operation]) -> None:
    """Planting a read of a never-written value after everything makes it non-linearizable."""
    end = max((op.returned or op.invoked) for op in ops) + 1
    assert not check_key([*ops, get("spy", end, end + 1, b"never written")]).ok
