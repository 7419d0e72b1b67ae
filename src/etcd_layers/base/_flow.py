"""Unary calls written once, as generator flows, and the decorators that make both shells' methods.

A flow is a generator function with the user's signature (keywords and `timeout` included). It
checks its arguments before its first yield, so before any I/O, then yields steps and returns
the converted response:

    def member_list(*, serializable: bool = False, timeout: float | None = None) -> Flow[...]:
        request = rpc_pb2.MemberListRequest(linearizable=not check_bool(serializable, ...))
        message = yield from call(MEMBER_LIST, request, idempotent=True)
        return MemberListResponse(header(message.header), members(message.members))

The steps it may yield: `Call` (answered with the reply message, or the call's EtcdError thrown
into the flow), `Login` (log in again if credentials were given; answered with None) and
`Addresses` (answered with the client's endpoints). `sync_call(flow)` makes the Client method,
which drives the flow over `Connection.call`; `async_call(flow)` makes the AsyncClient
coroutine, which drives it over `await AsyncConnection.call`. The shell gives the whole flow one
deadline, from its `timeout` keyword (checked once the flow checked its own arguments).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Coroutine, Generator
from dataclasses import dataclass
from typing import (
    TYPE_CHECKING,
    Any,
    Concatenate,
    Generic,
    ParamSpec,
    Protocol,
    TypeAlias,
    TypeVar,
)

from google.protobuf.message import Message

from etcd_layers.base._methods import Method
from etcd_layers.base.checks import check_timeout
from etcd_layers.errors import EtcdError

if TYPE_CHECKING:
    from etcd_layers.base._connection import Connection
    from etcd_layers.base.deadline import Deadline

__all__ = [
    "Addresses",
    "AsyncCaller",
    "Call",
    "Flow",
    "Login",
    "Step",
    "addresses",
    "async_call",
    "call",
    "drive_async",
    "drive_sync",
    "login",
    "sync_call",
]

P = ParamSpec("P")
R = TypeVar("R")
ResponseT = TypeVar("ResponseT")


@dataclass(frozen=True, slots=True)
class Call(Generic[ResponseT]):
    """Send one unary request under the retry rule; the flow receives the reply message.

    Attributes:
        method: what to call.
        request: the request message.
        idempotent: whether re-sending after an ambiguous failure is harmless.
        address: send to this endpoint only (no failover), as maintenance calls do.
    """

    method: Method[ResponseT]
    request: Message
    idempotent: bool
    address: str | None = None


@dataclass(frozen=True, slots=True)
class Login:
    """Log in again when the client was given credentials (auth was just enabled)."""


@dataclass(frozen=True, slots=True)
class Addresses:
    """Ask for the client's endpoints (`host:port`, in the order given)."""


Step: TypeAlias = "Call[Any] | Login | Addresses"
Flow: TypeAlias = Generator[Step, Any, R]


class AsyncCaller(Protocol):
    """What drive_async needs of the asyncio connection (base._aio_connection)."""

    @property
    def has_credentials(self) -> bool:
        """Whether a user name and password were given."""
        ...

    @property
    def addresses(self) -> list[str]:
        """The endpoints, as `host:port`, in the order given."""
        ...

    def deadline(self, timeout: float | None) -> Deadline:
        """Return the deadline for a call with `timeout` (None: the client's default)."""
        ...

    async def call(
        self,
        method: Method[ResponseT],
        request: Message,
        timeout: float | None,
        *,
        idempotent: bool,
        address: str | None = None,
    ) -> ResponseT:
        """Send one unary request under the retry rule and return the reply."""
        ...

    async def authenticate(self, deadline: Deadline) -> None:
        """Log in and attach the new token to every later call."""
        ...


def call(
    method: Method[ResponseT], request: Message, *, idempotent: bool, address: str | None = None
) -> Generator[Step, Any, ResponseT]:
    """Yield one Call step and return its reply, typed (for use with `yield from`)."""
    reply: ResponseT = yield Call(method, request, idempotent, address)
    return reply


def login() -> Generator[Step, Any, None]:
    """Yield a Login step."""
    yield Login()


def addresses() -> Generator[Step, Any, list[str]]:
    """Yield an Addresses step and return the client's endpoints."""
    found: list[str] = yield Addresses()
    return found


def drive_sync(conn: Connection, flow: Flow[R], timeout: object) -> R:
    """Run `flow` to its end over the sync connection, within one deadline from `timeout`."""
    try:
        step = next(flow)  # the flow checks its arguments here
        deadline = conn.deadline(check_timeout(timeout))
        while True:
            try:
                if isinstance(step, Call):
                    answer: object = conn.call(
                        step.method,
                        step.request,
                        deadline.remaining(),
                        idempotent=step.idempotent,
                        address=step.address,
                    )
                elif isinstance(step, Login):
                    answer = None
                    if conn.has_credentials:
                        conn.authenticate(deadline)
                else:
                    answer = conn.addresses
            except EtcdError as error:
                step = flow.throw(error)
            else:
                step = flow.send(answer)
    except StopIteration as done:
        result: R = done.value
        return result
    finally:
        flow.close()


async def drive_async(
    connect: Callable[[], Awaitable[AsyncCaller]], flow: Flow[R], timeout: object
) -> R:
    """Run `flow` to its end over the asyncio connection, within one deadline from `timeout`.

    `connect` returns the connection, connecting a client that never connected first: it is
    awaited only once the flow has checked its arguments.
    """
    try:
        step = next(flow)  # the flow checks its arguments here
        checked = check_timeout(timeout)
        conn = await connect()
        deadline = conn.deadline(checked)
        while True:
            try:
                if isinstance(step, Call):
                    answer: object = await conn.call(
                        step.method,
                        step.request,
                        deadline.remaining(),
                        idempotent=step.idempotent,
                        address=step.address,
                    )
                elif isinstance(step, Login):
                    answer = None
                    if conn.has_credentials:
                        await conn.authenticate(deadline)
                else:
                    answer = conn.addresses
            except EtcdError as error:
                step = flow.throw(error)
            else:
                step = flow.send(answer)
    except StopIteration as done:
        result: R = done.value
        return result
    finally:
        flow.close()


def _as_method(method: Callable[..., object], flow: Callable[..., object]) -> None:
    """Give `method` the flow's name and docstring, and its signature as a method's.

    `inspect.signature` then shows `self` and the user's parameters (not the flow's `Flow[X]`
    return, but X): without `__signature__` it would follow `__wrapped__` to the flow, whose
    first parameter a bound method would then drop.
    """
    functools.update_wrapper(method, flow)
    signature = inspect.signature(flow)
    returned = signature.return_annotation
    if isinstance(returned, str) and returned.startswith("Flow[") and returned.endswith("]"):
        returned = returned[len("Flow[") : -1]
    this = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    method.__signature__ = signature.replace(  # type: ignore[attr-defined]  # read by inspect
        parameters=[this, *signature.parameters.values()], return_annotation=returned
    )


def sync_call(flow: Callable[P, Flow[R]]) -> Callable[Concatenate[Any, P], R]:
    """Make a Client method of `flow`: same signature and docstring, run over `self._conn`."""

    def method(self: Any, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return drive_sync(self._conn, flow(*args, **kwargs), kwargs.get("timeout"))

    _as_method(method, flow)
    return method


def async_call(
    flow: Callable[P, Flow[R]],
) -> Callable[Concatenate[Any, P], Coroutine[Any, Any, R]]:
    """Make an AsyncClient coroutine of `flow`: same signature and docstring.

    It runs over `await self.connected()`, which connects a client that never connected.
    """

    async def method(self: Any, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return await drive_async(self.connected, flow(*args, **kwargs), kwargs.get("timeout"))

    _as_method(method, flow)
    return method
