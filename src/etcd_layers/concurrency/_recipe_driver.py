"""The sync driver of the recipe flows: answers their steps through a client, within a deadline."""

from __future__ import annotations

import logging
import time
from typing import Protocol, TypeVar

from etcd_layers.base.checks import check_timeout
from etcd_layers.base.deadline import Deadline
from etcd_layers.base.ops import Op
from etcd_layers.base.protocols import KV, Watcher
from etcd_layers.base.responses import KeyValue
from etcd_layers.base.waiting import CancelHook, next_response, wait_deleted
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
    timed_out,
)
from etcd_layers.concurrency.session import CLEANUP_TIMEOUT, Session, SessionExpiredError
from etcd_layers.errors import CanceledError, CompactedError, DeadlineExceededError, EtcdError

logger = logging.getLogger("etcd_layers.concurrency")

T = TypeVar("T")


class RecipeClient(KV, Watcher, Protocol):
    """What Barrier and Queue need: a Client, or any layer on one (a namespace, say)."""


def checked_client(client: object, recipe: str) -> RecipeClient:
    """Return `client` if it speaks the sync KV and Watcher Protocols (TypeError otherwise)."""
    if not (isinstance(client, KV) and isinstance(client, Watcher)):
        raise TypeError(
            f"{recipe} needs a client speaking the KV and Watcher Protocols (an AsyncClient "
            f"goes with Async{recipe}), not {type(client).__name__}"
        )
    return client


def checked_session(session: object, recipe: str) -> Session:
    """Return `session` if it is a Session (TypeError otherwise)."""
    if not isinstance(session, Session):
        raise TypeError(f"{recipe} needs a Session, not {type(session).__name__}")
    return session


def run_recipe(
    flow: RecipeFlow[T],
    client: RecipeClient,
    timeout: float | None,
    what: str,
    *,
    session: Session | None = None,
    owned: dict[bytes, int] | None = None,
) -> T:
    """Drive `flow` to its result, all of it within `timeout` seconds.

    Every key the flow creates (and those in `owned`, as key -> create revision) is withdrawn
    again if the flow fails, so a failed or timed-out waiter leaves no key behind, as
    Mutex.lock. A `session` ends every wait when it ends (SessionExpiredError).

    Raises:
        DeadlineExceededError: `timeout` passed (the message says `what` was not done).
        SessionExpiredError: the session ended while waiting.
    """
    deadline = Deadline(check_timeout(timeout))
    mine = {} if owned is None else dict(owned)
    try:
        step: Step = next(flow)
        while True:
            step = flow.send(_answer(step, client, deadline, session, mine))
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]  # the flow's declared result
    except BaseException as err:
        for key, revision in mine.items():
            _withdraw(client, key, revision)
        if isinstance(err, DeadlineExceededError) and deadline.expired():
            raise DeadlineExceededError(timed_out(what, timeout)) from err
        raise


def _answer(
    step: Step,
    client: RecipeClient,
    deadline: Deadline,
    session: Session | None,
    owned: dict[bytes, int],
) -> object:
    """Perform one step of a flow and return what the flow is sent back."""
    if isinstance(step, WaitDelete | WaitPut):
        return _wait(step, client, deadline, session)
    if isinstance(step, Op):
        return client.do(step, timeout=deadline.remaining())
    if isinstance(step, Now):
        return time.time_ns()
    if isinstance(step, Create):
        revision = created_revision(client.do(put_new(step), timeout=deadline.remaining()))
        if revision is not None:
            owned[step.key] = revision
        return revision
    # Claim and Withdraw may finish past the deadline: a claim cut short could take an item
    # that nobody receives, and a key left behind would block the others.
    cleanup = deadline.left_or(CLEANUP_TIMEOUT) or CLEANUP_TIMEOUT
    if isinstance(step, Claim):
        return client.do(claim(step), timeout=cleanup).succeeded
    if step.key in owned:
        client.do(guarded_withdraw(step.key, owned[step.key]), timeout=cleanup)
        del owned[step.key]
    return None


def _wait(
    step: WaitDelete | WaitPut, client: RecipeClient, deadline: Deadline, session: Session | None
) -> object:
    """Wait as `step` asks; a session's end ends the wait with SessionExpiredError."""
    cancel_on = None if session is None else session.on_done
    try:
        if isinstance(step, WaitDelete):
            return wait_deleted(client, step.key, step.revision, deadline, cancel_on=cancel_on)
        return wait_put(client, step, deadline, cancel_on=cancel_on)
    except CanceledError:
        if session is not None and session.done.is_set():
            raise SessionExpiredError(
                f"session lease {session.lease_id:x} ended while waiting"
            ) from None
        raise


def wait_put(
    watcher: Watcher, step: WaitPut, deadline: Deadline, *, cancel_on: CancelHook | None = None
) -> KeyValue | None:
    """Return the first put that `step` waits for (None if the history is compacted).

    Raises:
        DeadlineExceededError: `deadline` passed first.
        CanceledError: the watch ended (canceled through `cancel_on`, or the client closed).
    """
    with watcher.watch(
        step.key,
        prefix=step.prefix,
        start_revision=step.start_revision,
        filter_delete=True,  # only puts matter
        timeout=deadline.remaining(),
    ) as watch:
        unregister = None if cancel_on is None else cancel_on(watch.cancel)
        try:
            while True:
                try:
                    kv = put_event(next_response(watch, deadline))
                except CompactedError:
                    return None
                if kv is not None:
                    return kv
        finally:
            if unregister is not None:
                unregister()


def _withdraw(client: RecipeClient, key: bytes, revision: int) -> None:
    """Delete a failed flow's key, best effort, within CLEANUP_TIMEOUT (it may have a lease)."""
    try:
        client.do(guarded_withdraw(key, revision), timeout=CLEANUP_TIMEOUT)
    except EtcdError as err:
        logger.warning("could not withdraw recipe key %r (%s)", key, err)
