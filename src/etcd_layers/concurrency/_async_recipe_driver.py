"""The asyncio driver of the recipe flows: the sync driver's twin, cancellation included.

A task cancelled while it waits withdraws the keys its flow created (as AsyncMutex does); one
cancelled while a `Create` is in flight lets the put finish and withdraws what it made, and
one cancelled while a `Claim` is in flight puts a taken item back instead of losing it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol, TypeVar

from etcd_layers.base.async_protocols import AsyncKV, AsyncWatcher
from etcd_layers.base.async_waiting import next_response, wait_deleted
from etcd_layers.base.checks import check_timeout
from etcd_layers.base.deadline import Deadline
from etcd_layers.base.ops import Op
from etcd_layers.base.responses import KeyValue, TxnResponse
from etcd_layers.base.waiting import CancelHook
from etcd_layers.concurrency._recipe_keys import (
    Claim,
    Create,
    Now,
    RecipeFlow,
    Step,
    WaitDelete,
    WaitPut,
    claim,
    created_revision,
    guarded_withdraw,
    put_event,
    put_new,
    restore,
    timed_out,
)
from etcd_layers.concurrency.async_session import AsyncSession
from etcd_layers.concurrency.session import CLEANUP_TIMEOUT, SessionExpiredError
from etcd_layers.errors import CanceledError, CompactedError, DeadlineExceededError, EtcdError

logger = logging.getLogger("etcd_layers.concurrency")

T = TypeVar("T")


class AsyncRecipeClient(AsyncKV, AsyncWatcher, Protocol):
    """What AsyncBarrier and AsyncQueue need: an AsyncClient, or any async layer on one."""


def checked_client(client: object, recipe: str) -> AsyncRecipeClient:
    """Return `client` if it speaks the AsyncKV and AsyncWatcher Protocols (TypeError otherwise)."""
    if not (isinstance(client, AsyncKV) and isinstance(client, AsyncWatcher)):
        raise TypeError(
            f"Async{recipe} needs a client speaking the AsyncKV and AsyncWatcher Protocols "
            f"(a Client goes with {recipe}), not {type(client).__name__}"
        )
    return client


def checked_session(session: object, recipe: str) -> AsyncSession:
    """Return `session` if it is an open AsyncSession (TypeError / ValueError otherwise)."""
    if not isinstance(session, AsyncSession):
        raise TypeError(f"Async{recipe} needs an AsyncSession, not {type(session).__name__}")
    if not session.lease_id:
        raise ValueError("the session is not open: `await` it or `async with` it first")
    return session


async def run_recipe(
    flow: RecipeFlow[T],
    client: AsyncRecipeClient,
    timeout: float | None,
    what: str,
    *,
    session: AsyncSession | None = None,
    owned: dict[bytes, int] | None = None,
) -> T:
    """Drive `flow` to its result within `timeout` seconds (see _recipe_driver.run_recipe).

    Raises:
        DeadlineExceededError: `timeout` passed (the message says `what` was not done).
        SessionExpiredError: the session ended while waiting.
    """
    deadline = Deadline(check_timeout(timeout))
    mine = {} if owned is None else dict(owned)
    try:
        step: Step = next(flow)
        while True:
            step = flow.send(await _answer(step, client, deadline, session, mine))
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]  # the flow's declared result
    except BaseException as err:
        if mine:
            await asyncio.shield(_withdraw_all(client, mine))
        if isinstance(err, DeadlineExceededError) and deadline.expired():
            raise DeadlineExceededError(timed_out(what, timeout)) from err
        raise


async def _answer(
    step: Step,
    client: AsyncRecipeClient,
    deadline: Deadline,
    session: AsyncSession | None,
    owned: dict[bytes, int],
) -> object:
    """Perform one step of a flow and return what the flow is sent back."""
    if isinstance(step, WaitDelete | WaitPut):
        return await _wait(step, client, deadline, session)
    if isinstance(step, Op):
        return await client.do(step, timeout=deadline.remaining())
    if isinstance(step, Now):
        return time.time_ns()
    if isinstance(step, Create):
        revision = await _create(client, step, deadline.remaining())
        if revision is not None:
            owned[step.key] = revision
        return revision
    cleanup = deadline.left_or(CLEANUP_TIMEOUT) or CLEANUP_TIMEOUT  # as the sync driver
    if isinstance(step, Claim):
        task = asyncio.ensure_future(client.do(claim(step), timeout=cleanup))
        try:
            return (await asyncio.shield(task)).succeeded
        except asyncio.CancelledError:
            await asyncio.shield(_restore_when_taken(client, step, task))
            raise
    if step.key in owned:
        await asyncio.shield(
            client.do(guarded_withdraw(step.key, owned[step.key]), timeout=cleanup)
        )
        del owned[step.key]
    return None


async def _create(client: AsyncRecipeClient, step: Create, timeout: float | None) -> int | None:
    """Perform `step`; if cancelled meanwhile, let the put finish and withdraw what it made."""
    task = asyncio.ensure_future(client.do(put_new(step), timeout=timeout))
    try:
        return created_revision(await asyncio.shield(task))
    except asyncio.CancelledError:
        await asyncio.shield(_withdraw_when_created(client, step.key, task))
        raise


async def _withdraw_when_created(
    client: AsyncRecipeClient, key: bytes, task: asyncio.Future[TxnResponse]
) -> None:
    try:
        revision = created_revision(await task)
    except EtcdError:
        return  # it failed: nothing known was created
    if revision is not None:
        await _withdraw_all(client, {key: revision})


async def _restore_when_taken(
    client: AsyncRecipeClient, step: Claim, task: asyncio.Future[TxnResponse]
) -> None:
    try:
        taken = (await task).succeeded
    except EtcdError:
        return  # it failed: the item is where it was, or its fate is unknown
    if taken:
        try:
            await client.do(restore(step), timeout=CLEANUP_TIMEOUT)
        except EtcdError as err:
            logger.warning("could not put back the item %r (%s)", step.kv.key, err)


async def _wait(
    step: WaitDelete | WaitPut,
    client: AsyncRecipeClient,
    deadline: Deadline,
    session: AsyncSession | None,
) -> object:
    """Wait as `step` asks; a session's end ends the wait with SessionExpiredError."""
    cancel_on = None if session is None else session.on_done
    try:
        if isinstance(step, WaitDelete):
            return await wait_deleted(
                client, step.key, step.revision, deadline, cancel_on=cancel_on
            )
        return await wait_put(client, step, deadline, cancel_on=cancel_on)
    except CanceledError:
        if session is not None and session.done.is_set():
            raise SessionExpiredError(
                f"session lease {session.lease_id:x} ended while waiting"
            ) from None
        raise


async def wait_put(
    watcher: AsyncWatcher,
    step: WaitPut,
    deadline: Deadline,
    *,
    cancel_on: CancelHook | None = None,
) -> KeyValue | None:
    """Return the first put that `step` waits for (None if the history is compacted)."""
    async with watcher.watch(
        step.key,
        prefix=step.prefix,
        start_revision=step.start_revision,
        filter_delete=True,  # only puts matter
        timeout=deadline.remaining(),
    ) as watch:
        cancels: set[asyncio.Task[None]] = set()

        def cancel() -> None:
            task = asyncio.ensure_future(watch.cancel())
            cancels.add(task)  # a reference until it ran
            task.add_done_callback(cancels.discard)

        unregister = None if cancel_on is None else cancel_on(cancel)
        try:
            while True:
                try:
                    kv = put_event(await next_response(watch, deadline))
                except CompactedError:
                    return None
                if kv is not None:
                    return kv
        finally:
            if unregister is not None:
                unregister()


async def _withdraw_all(client: AsyncRecipeClient, owned: dict[bytes, int]) -> None:
    """Delete a failed flow's keys, best effort, within CLEANUP_TIMEOUT each."""
    for key, revision in owned.items():
        try:
            await client.do(guarded_withdraw(key, revision), timeout=CLEANUP_TIMEOUT)
        except EtcdError as err:
            logger.warning("could not withdraw recipe key %r (%s)", key, err)
