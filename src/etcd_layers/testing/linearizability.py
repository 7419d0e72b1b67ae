"""A per-key linearizability checker for recorded histories of gets, puts and deletes.

Record what each client did, with the monotonic times at which each call was made and
returned, then check that every key's history is linearizable: that there is one order of
all its operations, consistent with real time (an operation that returned before another was
invoked comes first), in which every get returns the value of the latest put before it (or
nothing, after a delete or before any write). Keys are independent registers, so each is
checked alone (linearizability is compositional).

    history = History()
    token = history.invoke("client-1", "put", b"k", b"v1")
    kv.put(b"k", b"v1")
    history.ok(token)
    token = history.invoke("client-2", "get", b"k")
    response = kv.get(b"k")
    history.ok(token, response.kvs[0].value if response.kvs else None)
    assert check(history.operations()).ok

A write whose outcome is unknown (an error after it may have reached the server) is recorded
with `history.unknown(token)`: it may have applied at any moment after its call, or never. A
read or a write that certainly failed is dropped with `history.failed(token)`.

The search is Wing and Gong's, with Lowe's memoization of (linearized set, state) pairs, as
in Jepsen's Knossos and Porcupine.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal, TypeAlias

__all__ = ["CheckResult", "History", "Kind", "Operation", "check", "check_key"]

Kind: TypeAlias = Literal["get", "put", "delete"]
KINDS: Final = ("get", "put", "delete")
DEFAULT_MAX_STEPS: Final = 5_000_000


@dataclass(frozen=True, slots=True)
class Operation:
    """One operation on one key, as a client saw it.

    Attributes:
        client: who ran it (any label; for messages only).
        kind: "get", "put" or "delete".
        key: the key.
        value: what a put wrote (None for gets and deletes).
        invoked: when the call was made (monotonic seconds).
        returned: when it returned, or None when the outcome is unknown (it may have applied
            at any time after `invoked`, or never).
        result: what a get returned: the value, or None when the key did not exist.
    """

    client: object
    kind: Kind
    key: bytes
    value: bytes | None
    invoked: float
    returned: float | None
    result: bytes | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.kind == "put" and self.value is None:
            raise ValueError("a put needs a value")
        if self.returned is not None and self.returned < self.invoked:
            raise ValueError("an operation cannot return before it is invoked")
        if self.kind == "get" and self.returned is None:
            raise ValueError("a get of unknown outcome tells nothing: drop it instead")

    def describe(self) -> str:
        """Return a one-line description for failure messages."""
        end = "?" if self.returned is None else f"{self.returned:.6f}"
        if self.kind == "get":
            what = f"get -> {self.result!r}"
        elif self.kind == "put":
            what = f"put {self.value!r}"
        else:
            what = "delete"
        return f"[{self.invoked:.6f}, {end}] {self.client}: {what}"


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The verdict on a history.

    Attributes:
        ok: every key's history is linearizable.
        decided: the search finished (False: it gave up after `max_steps`, and `ok` is False).
        key: the first key found not linearizable (or undecided), else None.
        operations: that key's operations, in invocation order.
        message: a human-readable explanation.
    """

    ok: bool
    decided: bool = True
    key: bytes | None = None
    operations: tuple[Operation, ...] = ()
    message: str = "linearizable"


def _step(state: bytes | None, op: Operation) -> tuple[bool, bytes | None]:
    """The register model: whether `op` may run in `state`, and the state after it."""
    if op.kind == "get":
        return op.result == state, state
    if op.kind == "put":
        return True, op.value
    return True, None


@dataclass(eq=False, slots=True)
class _Node:
    """One call or return event in Lowe's doubly linked list."""

    index: int  # the operation's index
    is_call: bool
    time: float
    match: _Node | None = None  # a call's return event
    prev: _Node | None = None
    next: _Node | None = None


def _linked(ops: Sequence[Operation]) -> _Node:
    events: list[tuple[float, int, _Node]] = []
    for index, op in enumerate(ops):
        call = _Node(index, is_call=True, time=op.invoked)
        ret = _Node(index, is_call=False, time=math.inf if op.returned is None else op.returned)
        call.match = ret
        # At equal times a call sorts before a return: the two count as concurrent.
        events.append((call.time, 0, call))
        events.append((ret.time, 1, ret))
    events.sort(key=lambda event: (event[0], event[1]))
    head = _Node(-1, is_call=False, time=-math.inf)
    previous = head
    for _, _, node in events:
        previous.next, node.prev = node, previous
        previous = node
    return head


def _lift(call: _Node) -> None:
    for node in (call, call.match):
        assert node is not None
        assert node.prev is not None  # linked
        node.prev.next = node.next
        if node.next is not None:
            node.next.prev = node.prev


def _unlift(call: _Node) -> None:
    for node in (call.match, call):
        assert node is not None
        assert node.prev is not None  # linked before
        node.prev.next = node
        if node.next is not None:
            node.next.prev = node


def check_key(
    ops: Sequence[Operation],
    initial: bytes | None = None,
    *,
    max_steps: int = DEFAULT_MAX_STEPS,
) -> CheckResult:
    """Check the history of one key, whose value is `initial` before any operation.

    Args:
        ops: the key's operations, in any order.
        initial: the value before the history (None: the key does not exist).
        max_steps: give up (undecided) after this many search steps.
    """
    ops = sorted(ops, key=lambda op: op.invoked)
    key = ops[0].key if ops else None
    if not ops:
        return CheckResult(ok=True)
    head = _linked(ops)
    state = initial
    linearized = 0
    seen: set[tuple[int, bytes | None]] = set()
    stack: list[tuple[_Node, bytes | None]] = []
    entry = head.next
    steps = 0
    while head.next is not None:
        steps += 1
        if steps > max_steps:
            return CheckResult(
                ok=False,
                decided=False,
                key=key,
                operations=tuple(ops),
                message=f"gave up after {max_steps} steps on {len(ops)} operations",
            )
        assert entry is not None  # a return event always ends the list before it runs out
        if entry.is_call:
            allowed, after = _step(state, ops[entry.index])
            bit = 1 << entry.index
            if allowed and (linearized | bit, after) not in seen:
                seen.add((linearized | bit, after))
                stack.append((entry, state))
                state, linearized = after, linearized | bit
                _lift(entry)
                entry = head.next
            else:
                entry = entry.next
            continue
        # A return event with its call still in the list: that operation must come next but
        # cannot; undo the latest choice.
        if not stack:
            return CheckResult(
                ok=False,
                key=key,
                operations=tuple(ops),
                message=_explain(ops, entry.index),
            )
        call, state = stack.pop()
        linearized &= ~(1 << call.index)
        _unlift(call)
        entry = call.next
    return CheckResult(ok=True)


def _explain(ops: Sequence[Operation], index: int) -> str:
    stuck = ops[index]
    lines = [
        f"key {stuck.key!r} is not linearizable: no order lets this operation return in time:",
        f"  {stuck.describe()}",
        "its history:",
    ]
    lines.extend(f"  {op.describe()}" for op in ops[:200])
    if len(ops) > 200:
        lines.append(f"  ... and {len(ops) - 200} more")
    return "\n".join(lines)


def check(
    ops: Iterable[Operation],
    initial: Callable[[bytes], bytes | None] | None = None,
    *,
    max_steps: int = DEFAULT_MAX_STEPS,
) -> CheckResult:
    """Check a history of many keys, one key at a time.

    Args:
        ops: every operation, on any keys.
        initial: the value of each key before the history (default: none exists).
        max_steps: the search budget per key.
    """
    by_key: dict[bytes, list[Operation]] = defaultdict(list)
    for op in ops:
        by_key[op.key].append(op)
    for key in sorted(by_key):
        result = check_key(
            by_key[key], None if initial is None else initial(key), max_steps=max_steps
        )
        if not result.ok:
            return result
    return CheckResult(ok=True)


@dataclass(slots=True)
class _Pending:
    client: object
    kind: Kind
    key: bytes
    value: bytes | None
    invoked: float


@dataclass(slots=True)
class History:
    """A thread-safe recorder of operations (see the module docstring).

    Args:
        clock: the monotonic clock to time calls with.
    """

    clock: Callable[[], float] = time.monotonic
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _pending: dict[int, _Pending] = field(default_factory=dict)
    _done: list[Operation] = field(default_factory=list)
    _tokens: itertools.count[int] = field(default_factory=itertools.count)

    def invoke(self, client: object, kind: Kind, key: bytes, value: bytes | None = None) -> int:
        """Note that `client` is about to run an operation; returns its token."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        with self._lock:
            token = next(self._tokens)
            self._pending[token] = _Pending(client, kind, key, value, self.clock())
        return token

    def ok(self, token: int, result: bytes | None = None) -> None:
        """The operation returned; `result` is what a get read (None: no key)."""
        now = self.clock()
        with self._lock:
            pending = self._pending.pop(token)
            self._done.append(
                Operation(
                    pending.client,
                    pending.kind,
                    pending.key,
                    pending.value,
                    pending.invoked,
                    now,
                    result if pending.kind == "get" else None,
                )
            )

    def unknown(self, token: int) -> None:
        """The operation failed in a way that leaves its outcome unknown (writes only)."""
        with self._lock:
            pending = self._pending.pop(token)
            if pending.kind != "get":  # a read that failed tells nothing
                self._done.append(
                    Operation(
                        pending.client,
                        pending.kind,
                        pending.key,
                        pending.value,
                        pending.invoked,
                        None,
                    )
                )

    def failed(self, token: int) -> None:
        """The operation certainly did not apply: forget it."""
        with self._lock:
            self._pending.pop(token)

    def operations(self) -> list[Operation]:
        """Return the operations recorded so far (those still running are left out)."""
        with self._lock:
            return list(self._done)
