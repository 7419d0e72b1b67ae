"""The asyncio driver of stm(): the same transaction core, with awaited reads and an async apply."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Generator
from typing import TypeVar

from etcd_layers.base.async_protocols import AsyncKV
from etcd_layers.base.deadline import Deadline
from etcd_layers.base.keys import StrOrBytes
from etcd_layers.base.ops import Op, TxnOp
from etcd_layers.base.responses import TxnResponse
from etcd_layers.concurrency._stm import Apply, Transaction, attempts
from etcd_layers.concurrency.transactions import check_keys, timed_out
from etcd_layers.errors import DeadlineExceededError

__all__ = ["AsyncSTM", "run_async"]

T = TypeVar("T")


class AsyncSTM:
    """The transaction handed to `apply` by `stm()` on an asyncio client (see STM).

    Reads are coroutines (`await tx.get(k)`, `await tx.rev(k)`); `put` and `delete` only add
    to the write set, so they are plain calls. Valid only during the `apply` call it was given
    to, on that call's task.
    """

    def __init__(self, transaction: Transaction, kv: AsyncKV, deadline: Deadline) -> None:
        self._transaction = transaction
        self._kv = kv
        self._deadline = deadline
        self._attempt = transaction.attempt
        self._open = True

    def _close(self) -> None:
        self._open = False

    def _check_open(self) -> Transaction:
        if not self._open or self._transaction.attempt != self._attempt:
            raise RuntimeError("an AsyncSTM is valid only inside the apply call it was given to")
        return self._transaction

    async def get(self, *keys: StrOrBytes) -> bytes:
        """Return the value of the first of `keys` the attempt knows, reading them if none.

        As `STM.get`: a key written in this attempt first, then one already read, else all of
        them read in one request and the first one's value (b"" when missing).
        """
        raw = check_keys(keys, "keys")
        return await drive_reads(self._check_open().get(raw), self._kv, self._deadline)

    async def rev(self, key: StrOrBytes) -> int:
        """Return the mod revision of `key` (0 if missing), reading it into the read set."""
        (raw,) = check_keys((key,), "key")
        return await drive_reads(self._check_open().rev(raw), self._kv, self._deadline)

    def put(self, key: StrOrBytes, value: StrOrBytes, *, lease: int = 0) -> None:
        """Write `value` to `key` at the commit (later gets in this attempt see it)."""
        op = Op.put(key, value, lease=lease)
        self._check_open().put(op)

    def delete(self, key: StrOrBytes) -> None:
        """Delete `key` at the commit (later gets in this attempt see b"")."""
        op = Op.delete(key)
        self._check_open().delete(op)


async def drive_reads(flow: Generator[TxnOp, TxnResponse, T], kv: AsyncKV, deadline: Deadline) -> T:
    """Drive a read flow of the core through `kv`, awaiting each request."""
    try:
        step = next(flow)
        while True:
            step = flow.send(await kv.do(step, timeout=deadline.remaining()))
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]  # the flow's declared result
    finally:
        flow.close()


async def run_async(
    kv: AsyncKV,
    apply: Callable[[AsyncSTM], Awaitable[object]],
    transaction: Transaction,
    prefetch: tuple[bytes, ...],
    timeout: float | None,
) -> TxnResponse:
    """Drive the attempts of `stm()` on an asyncio KV (the arguments are checked by `stm`).

    Raises:
        TypeError: `apply` did not return an awaitable (it must be an `async def`).
    """
    deadline = Deadline(timeout)
    flow = attempts(transaction, prefetch)
    try:
        step = next(flow)
        while True:
            if isinstance(step, Apply):
                tx = AsyncSTM(transaction, kv, deadline)
                try:
                    result = apply(tx)
                    if not inspect.isawaitable(result):
                        raise TypeError(
                            "apply must be an async function on an asyncio client, "
                            f"it returned {type(result).__name__}"
                        )
                    await result
                finally:
                    tx._close()  # the handle is valid only during this call
                step = flow.send(None)
            else:
                step = flow.send(await kv.do(step, timeout=deadline.remaining()))
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]  # the flow's declared result
    except DeadlineExceededError as err:
        clearer = timed_out(err, deadline, timeout, transaction)
        if clearer is err:
            raise
        raise clearer from err
    finally:
        flow.close()
