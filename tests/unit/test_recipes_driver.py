"""The recipe drivers over recording fakes: what they send, and what a failed flow leaves behind."""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from typing import Any, cast

import pytest

from etcd_layers.base.ops import Op, PutOp, TxnOp
from etcd_layers.base.responses import GetResponse, KeyValue, ResponseHeader, TxnResponse
from etcd_layers.concurrency import _async_recipe_driver, _recipe_driver
from etcd_layers.concurrency._recipe_keys import Claim, Create, Now, Withdraw
from etcd_layers.concurrency._recipes import rw_lock
from etcd_layers.errors import DeadlineExceededError, UnavailableError

HEADER = ResponseHeader(revision=10)


class Recorder:
    """Answers `do` from a list of canned answers (an exception is raised), recording each op."""

    def __init__(self, answers: list[object], default: object = None) -> None:
        self.answers = list(answers)
        self.default = default
        self.sent: list[tuple[Op, float | None]] = []

    def answer(self, op: Op, timeout: float | None) -> Any:
        self.sent.append((op, timeout))
        answer = self.answers.pop(0) if self.answers else self.default
        if isinstance(answer, BaseException):
            raise answer
        return answer


class SyncFake(Recorder):
    def do(self, op: Op, *, timeout: float | None = None) -> Any:
        return self.answer(op, timeout)


class AsyncFake(Recorder):
    async def do(self, op: Op, *, timeout: float | None = None) -> Any:
        return self.answer(op, timeout)


def run(kind: str, flow: Generator[Any, Any, Any], fake: Recorder, **options: Any) -> Any:
    """Drive `flow` with the driver of `kind` over `fake`."""
    if kind == "sync":
        client = cast(_recipe_driver.RecipeClient, fake)
        return _recipe_driver.run_recipe(
            flow, client, options.pop("timeout", None), "it", **options
        )
    aclient = cast(_async_recipe_driver.AsyncRecipeClient, fake)
    coroutine = _async_recipe_driver.run_recipe(
        flow, aclient, options.pop("timeout", None), "it", **options
    )
    return asyncio.run(coroutine)


def fake_of(kind: str, answers: list[object], default: object = None) -> Recorder:
    return SyncFake(answers, default) if kind == "sync" else AsyncFake(answers, default)


KINDS = ("sync", "async")


@pytest.mark.parametrize("kind", KINDS)
def test_driver_withdraws_a_created_key_when_the_flow_fails(kind: str) -> None:
    """A waiter whose next request fails leaves no key: a guarded delete follows the error."""
    fake = fake_of(
        kind,
        [TxnResponse(HEADER, succeeded=True), UnavailableError("down"), TxnResponse(HEADER)],
    )
    with pytest.raises(UnavailableError):
        run(kind, rw_lock(b"rw", True, 7), fake)
    create, _, withdraw = (op for op, _ in fake.sent)
    assert isinstance(withdraw, TxnOp)
    put = cast(TxnOp, create).success[0]
    assert isinstance(put, PutOp)
    assert withdraw.compare[0].key == put.key
    assert withdraw.compare[0].target_value == 10  # the create revision: only that key


def steps_then_fail() -> Generator[Any, Any, None]:
    yield Withdraw(b"never-created")  # not the flow's own: nothing is sent
    revision = yield Create(b"k", b"", 0)
    assert revision == 10
    yield Withdraw(b"k")
    yield Op.get(b"x")


@pytest.mark.parametrize("kind", KINDS)
def test_driver_withdraws_only_its_own_keys_and_each_once(kind: str) -> None:
    """A Withdraw of a key the flow did not create sends nothing; no key is withdrawn twice."""
    fake = fake_of(
        kind, [TxnResponse(HEADER, succeeded=True), TxnResponse(HEADER), UnavailableError("x")]
    )
    with pytest.raises(UnavailableError):
        run(kind, steps_then_fail(), fake)
    assert len(fake.sent) == 3  # create, its withdraw, the get: no second withdraw after the error


@pytest.mark.parametrize("kind", KINDS)
def test_driver_answers_now_with_unix_nanoseconds(kind: str) -> None:
    """Now is answered with the wall clock in nanoseconds, as Go's UnixNano."""

    def flow() -> Generator[Any, Any, int]:
        nanos: int = yield Now()
        return nanos

    assert run(kind, flow(), fake_of(kind, [])) > 1_600_000_000 * 10**9


@pytest.mark.parametrize("kind", KINDS)
def test_driver_gives_a_claim_time_even_when_the_deadline_is_spent(kind: str) -> None:
    """A claim is never cut short by the caller's deadline (it could take an item unseen)."""

    def flow() -> Generator[Any, Any, bool]:
        taken: bool = yield Claim(KeyValue(b"q/1", b"v", 3, 3, 1))
        return taken

    fake = fake_of(kind, [TxnResponse(HEADER, succeeded=True)])
    assert run(kind, flow(), fake, timeout=60) is True
    assert fake.sent[0][1] == pytest.approx(5.0, abs=0.1)  # CLEANUP_TIMEOUT, within the 60 s


@pytest.mark.parametrize("kind", KINDS)
def test_driver_names_what_timed_out(kind: str) -> None:
    """A flow that runs out of time raises DeadlineExceededError saying what was not done."""

    def flow() -> Generator[Any, Any, None]:
        while True:
            yield Op.get(b"k")

    fake = fake_of(kind, [], default=GetResponse(HEADER))  # reads until the deadline is spent

    with pytest.raises(DeadlineExceededError, match=r"it not done within 0\.001s"):
        run(kind, flow(), fake, timeout=0.001)
