"""stm(): run a function as a transaction over etcd keys, retried until it commits (Go's NewSTM)."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Generator, Iterable
from typing import TYPE_CHECKING, Any, TypeVar, overload

from etcd_layers.base.checks import check_timeout
from etcd_layers.base.deadline import Deadline
from etcd_layers.base.keys import StrOrBytes, to_bytes
from etcd_layers.base.kinds import speaks_asyncio
from etcd_layers.base.ops import Op, TxnOp
from etcd_layers.base.protocols import KV
from etcd_layers.base.responses import TxnResponse
from etcd_layers.concurrency._stm import Apply, Isolation, Transaction, attempts
from etcd_layers.errors import DeadlineExceededError, EmptyKeyError

if TYPE_CHECKING:
    from etcd_layers.base.async_protocols import AsyncKV
    from etcd_layers.concurrency.async_transactions import AsyncSTM

__all__ = ["STM", "Isolation", "stm"]

T = TypeVar("T")


def check_keys(keys: Iterable[object], name: str) -> tuple[bytes, ...]:
    """Return `keys` as bytes, each not empty.

    Raises:
        TypeError: a key is not str or bytes (or `keys` is one string, not several).
        EmptyKeyError: a key is empty.
    """
    if isinstance(keys, (str, bytes)):
        raise TypeError(f"{name} must be an iterable of keys, not one {type(keys).__name__}")
    raw = tuple(to_bytes(key, name="key") for key in keys)
    if not all(raw):
        raise EmptyKeyError(f"{name}: a key must not be empty")
    return raw


class STM:
    """The transaction handed to `apply` by `stm()` on a sync client (Go's `concurrency.STM`).

    Valid only during the call of `apply` it was given to. Reads go to etcd (or come from the
    attempt's read and write sets); writes are kept until the commit.
    """

    def __init__(self, transaction: Transaction, kv: KV, deadline: Deadline) -> None:
        self._transaction = transaction
        self._kv = kv
        self._deadline = deadline
        self._attempt = transaction.attempt
        self._open = True

    def _close(self) -> None:
        self._open = False

    def _check_open(self) -> Transaction:
        if not self._open or self._transaction.attempt != self._attempt:
            raise RuntimeError("an STM is valid only inside the apply call it was given to")
        return self._transaction

    def get(self, *keys: StrOrBytes) -> bytes:
        """Return the value of the first of `keys` the attempt knows, reading them if none.

        The first key written in this attempt gives its pending value (b"" once deleted);
        else the first one already read gives that read's value; else all of them are read in
        one request and the first one's value is returned (b"" when missing). Every key read
        joins the read set, which the commit checks.
        """
        raw = check_keys(keys, "keys")
        return drive_reads(self._check_open().get(raw), self._kv, self._deadline)

    def rev(self, key: StrOrBytes) -> int:
        """Return the mod revision of `key` (0 if missing), reading it into the read set."""
        (raw,) = check_keys((key,), "key")
        return drive_reads(self._check_open().rev(raw), self._kv, self._deadline)

    def put(self, key: StrOrBytes, value: StrOrBytes, *, lease: int = 0) -> None:
        """Write `value` to `key` at the commit (later gets in this attempt see it)."""
        op = Op.put(key, value, lease=lease)
        self._check_open().put(op)

    def delete(self, key: StrOrBytes) -> None:
        """Delete `key` at the commit (later gets in this attempt see b"")."""
        op = Op.delete(key)
        self._check_open().delete(op)


def drive_reads(flow: Generator[TxnOp, TxnResponse, T], kv: KV, deadline: Deadline) -> T:
    """Drive a read flow of the core through `kv`, each request spending from `deadline`."""
    try:
        step = next(flow)
        while True:
            step = flow.send(kv.do(step, timeout=deadline.remaining()))
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]  # the flow's declared result
    finally:
        flow.close()


@overload
def stm(
    cli: AsyncKV,
    apply: Callable[[AsyncSTM], Awaitable[object]],
    isolation: Isolation = ...,
    prefetch: Iterable[StrOrBytes] = ...,
    timeout: float | None = ...,
) -> Awaitable[TxnResponse]: ...
@overload
def stm(
    cli: KV,
    apply: Callable[[STM], object],
    isolation: Isolation = ...,
    prefetch: Iterable[StrOrBytes] = ...,
    timeout: float | None = ...,
) -> TxnResponse: ...
def stm(
    cli: KV | AsyncKV,
    apply: Callable[[Any], object],
    isolation: Isolation = Isolation.SERIALIZABLE_SNAPSHOT,
    prefetch: Iterable[StrOrBytes] = (),
    timeout: float | None = None,
) -> TxnResponse | Awaitable[TxnResponse]:
    """Run `apply(tx)` as a transaction, retrying it until its writes commit (Go's `NewSTM`).

    `apply` reads with `tx.get(*keys)` and `tx.rev(key)` and writes with `tx.put(key, value,
    lease=0)` and `tx.delete(key)`. The writes are sent in one txn at the end, guarded by the
    compares of `isolation` (see Isolation); when they fail, another transaction changed what
    this one read, and `apply` runs again from scratch on fresh reads. So `apply` must be
    free of side effects other than through `tx`, and may run several times.

    On an AsyncClient (or an async layer), `stm()` returns an awaitable, `apply` is an `async
    def` and reads are awaited: `await tx.get(k)`, `await tx.rev(k)` (see AsyncSTM).

    Args:
        cli: a Client, or any KV layer (a namespace, for one); or their asyncio forms.
        apply: the transaction's body; its return value is ignored.
        isolation: the isolation level (Go's default, SERIALIZABLE_SNAPSHOT, by default).
        prefetch: keys to read in one request at the start of every attempt.
        timeout: seconds for the whole call, retries included; None: no limit (each request
            still has the client's default deadline).

    Returns:
        The commit's TxnResponse: one response per write, in the order first written.

    Raises:
        TypeError, ValueError, EmptyKeyError: bad arguments, before any request.
        DeadlineExceededError: not committed within `timeout` (a TimeoutError).
        Exception: whatever `apply` raises ends the call at once and nothing is written.
        EtcdError: a request failed (as Go, a failed request aborts the transaction).
    """
    if not callable(getattr(cli, "do", None)):
        raise TypeError(f"cli must be a KV or an AsyncKV, not {type(cli).__name__}")
    if not callable(apply):
        raise TypeError(f"apply must be callable, not {type(apply).__name__}")
    transaction = Transaction(isolation)
    keys = check_keys(prefetch, "prefetch")
    timeout = check_timeout(timeout)
    if speaks_asyncio(cli):
        from etcd_layers.concurrency.async_transactions import run_async  # noqa: PLC0415  # the asyncio side only when used

        return run_async(cli, apply, transaction, keys, timeout)  # type: ignore[arg-type]  # an AsyncKV, by the kind check
    if inspect.iscoroutinefunction(apply):
        raise TypeError("apply is an async function: pass an AsyncClient, or a plain function")
    return _run(cli, apply, transaction, keys, timeout)  # type: ignore[arg-type]  # a KV, by the kind check


def _run(
    kv: KV,
    apply: Callable[[STM], object],
    transaction: Transaction,
    prefetch: tuple[bytes, ...],
    timeout: float | None,
) -> TxnResponse:
    deadline = Deadline(timeout)
    flow = attempts(transaction, prefetch)
    try:
        step = next(flow)
        while True:
            if isinstance(step, Apply):
                tx = STM(transaction, kv, deadline)
                try:
                    result = apply(tx)
                finally:
                    tx._close()  # the handle is valid only during this call
                if inspect.isawaitable(result):
                    _discard(result)
                    raise TypeError("apply returned an awaitable: pass an AsyncClient")
                step = flow.send(None)
            else:
                step = flow.send(kv.do(step, timeout=deadline.remaining()))
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]  # the flow's declared result
    except DeadlineExceededError as err:
        clearer = timed_out(err, deadline, timeout, transaction)
        if clearer is err:
            raise
        raise clearer from err
    finally:
        flow.close()


def _discard(awaitable: Awaitable[object]) -> None:
    close = getattr(awaitable, "close", None)
    if callable(close):
        close()  # a coroutine never awaited would warn


def timed_out(
    err: DeadlineExceededError, deadline: Deadline, timeout: float | None, txn: Transaction
) -> DeadlineExceededError:
    """Return the error to raise when the call's deadline passed (`err` itself otherwise)."""
    if timeout is None or not deadline.expired():
        return err
    return DeadlineExceededError(
        f"stm did not commit within {timeout:g}s ({txn.attempt} attempts): "
        "other transactions kept changing what it read"
    )
