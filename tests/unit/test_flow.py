"""The flow machinery (base._flow): one definition per unary call, driven by both shells."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any, cast

import pytest
from google.protobuf.message import Message

from etcd_layers import AsyncClient, Client
from etcd_layers.base import (
    AsyncLease,
    Lease,
    _auth_admin,
    _cluster,
    _lease,
    _maintenance,
    _methods,
)
from etcd_layers.base._admin_core import AUTH_ENABLE, MEMBER_LIST, MOVE_LEADER, STATUS
from etcd_layers.base._aio_connection import AsyncConnection
from etcd_layers.base._connection import Connection
from etcd_layers.base._flow import (
    Addresses,
    Call,
    Login,
    call,
    drive_async,
    drive_sync,
)
from etcd_layers.base._methods import Method
from etcd_layers.base._proto import rpc_pb2
from etcd_layers.base.deadline import Deadline
from etcd_layers.errors import DeadlineExceededError, UnavailableError

LEADER = 7


class FakeConnection:
    """Records what a shell asks of its connection; answers from canned replies."""

    def __init__(self, replies: dict[tuple[str, str | None], Message | Exception]) -> None:
        self.replies = replies
        self.calls: list[tuple[str, Message | bytes, float | None, bool, str | None]] = []
        self.logins = 0
        self.has_credentials = True
        self.addresses = ["a:1", "b:2"]

    def deadline(self, timeout: float | None) -> Deadline:
        return Deadline(timeout)

    def call(
        self,
        method: Method[Any],
        request: Message | bytes,
        timeout: float | None,
        *,
        idempotent: bool,
        address: str | None = None,
    ) -> Any:
        self.calls.append((method.path, request, timeout, idempotent, address))
        reply = self.replies.get((method.path, address)) or self.replies[(method.path, None)]
        if isinstance(reply, Exception):
            raise reply
        return reply

    def authenticate(self, deadline: Deadline) -> None:
        self.logins += 1


class FakeAsyncConnection(FakeConnection):
    """The same, with the asyncio connection's coroutines."""

    async def call(
        self,
        method: Method[Any],
        request: Message | bytes,
        timeout: float | None,
        *,
        idempotent: bool,
        address: str | None = None,
    ) -> Any:
        await asyncio.sleep(0)
        return FakeConnection.call(
            self, method, request, timeout, idempotent=idempotent, address=address
        )

    async def authenticate(self, deadline: Deadline) -> None:  # type: ignore[override]  # twin
        FakeConnection.authenticate(self, deadline)


def _status(member_id: int, leader: int) -> rpc_pb2.StatusResponse:
    return rpc_pb2.StatusResponse(header=rpc_pb2.ResponseHeader(member_id=member_id), leader=leader)


def test_flow_checks_its_arguments_before_its_first_step() -> None:
    """A flow raises for a bad argument when started, before yielding any Call."""
    with pytest.raises(ValueError, match="ttl"):
        next(_lease.grant(-1))
    with pytest.raises(TypeError, match="lease_id"):
        next(_lease.revoke("1"))  # type: ignore[arg-type]  # hostile by design


def test_flow_yields_calls_and_returns_the_converted_reply() -> None:
    """A flow yields its Call and turns the reply it is sent into the response."""
    flow = _lease.grant(10, lease_id=5)
    step = next(flow)
    assert isinstance(step, Call)
    assert step.method is _methods.LEASE_GRANT
    assert not step.idempotent
    assert step.request == rpc_pb2.LeaseGrantRequest(TTL=10, ID=5)
    with pytest.raises(StopIteration) as done:
        flow.send(rpc_pb2.LeaseGrantResponse(ID=5, TTL=10))
    assert (done.value.value.id, done.value.value.ttl) == (5, 10)


def test_call_helper_returns_what_the_shell_sends() -> None:
    """`yield from call(...)` hands the Call out and returns the reply sent back."""
    flow = call(MEMBER_LIST, rpc_pb2.MemberListRequest(), idempotent=True, address="a:1")
    assert next(flow) == Call(MEMBER_LIST, rpc_pb2.MemberListRequest(), True, "a:1")
    with pytest.raises(StopIteration) as done:
        flow.send("reply")
    assert done.value.value == "reply"


def test_drive_sync_gives_every_call_of_a_flow_one_deadline() -> None:
    """The sync driver sends each Call with the time left of the flow's one deadline."""
    conn = FakeConnection({(MEMBER_LIST.path, None): rpc_pb2.MemberListResponse()})
    drive_sync(cast(Connection, conn), _cluster.member_list(), 30.0)
    ((path, _, timeout, idempotent, address),) = conn.calls
    assert (path, idempotent, address) == (MEMBER_LIST.path, True, None)
    assert timeout is not None
    assert 29 < timeout <= 30


def test_drive_sync_checks_the_timeout_after_the_flows_arguments() -> None:
    """A bad timeout raises before any call, after the flow's own checks ran."""
    conn = FakeConnection({})
    with pytest.raises(ValueError, match="timeout"):
        drive_sync(cast(Connection, conn), _lease.leases(), 0)
    with pytest.raises(ValueError, match="ttl"):
        drive_sync(cast(Connection, conn), _lease.grant(-1), 0)
    assert conn.calls == []


def test_drive_sync_throws_a_failed_call_into_the_flow() -> None:
    """move_leader asks the next endpoint when one is unreachable, then moves at the leader."""
    conn = FakeConnection(
        {
            (STATUS.path, "a:1"): UnavailableError("down"),
            (STATUS.path, "b:2"): _status(LEADER, LEADER),
            (MOVE_LEADER.path, None): rpc_pb2.MoveLeaderResponse(),
        }
    )
    drive_sync(cast(Connection, conn), _maintenance.move_leader(3), None)
    assert [(path, address) for path, _, _, _, address in conn.calls] == [
        (STATUS.path, "a:1"),
        (STATUS.path, "b:2"),
        (MOVE_LEADER.path, "b:2"),
    ]


def test_drive_sync_lets_an_uncaught_error_out() -> None:
    """An error the flow does not catch ends the call with it."""
    conn = FakeConnection({(STATUS.path, None): DeadlineExceededError("late")})
    with pytest.raises(DeadlineExceededError):
        drive_sync(cast(Connection, conn), _maintenance.move_leader(3), None)


@pytest.mark.parametrize("credentials", [True, False])
def test_drive_sync_logs_in_on_a_login_step_only_with_credentials(credentials: bool) -> None:
    """auth_enable logs in after enabling, when the client was given credentials."""
    conn = FakeConnection({(AUTH_ENABLE.path, None): rpc_pb2.AuthEnableResponse()})
    conn.has_credentials = credentials
    drive_sync(cast(Connection, conn), _auth_admin.auth_enable(), None)
    assert conn.logins == int(credentials)


def test_steps_are_plain_values() -> None:
    """Steps compare by value, so a test can assert the exact steps of a flow."""
    assert Login() == Login()
    assert Addresses() == Addresses()


@pytest.mark.asyncio
async def test_drive_async_runs_the_same_flow() -> None:
    """The asyncio driver runs a multi-step flow as the sync one does."""
    conn = FakeAsyncConnection(
        {
            (STATUS.path, "a:1"): _status(1, LEADER),
            (MEMBER_LIST.path, None): rpc_pb2.MemberListResponse(
                members=[rpc_pb2.Member(ID=LEADER, clientURLs=["http://c:3"])]
            ),
            (MOVE_LEADER.path, None): rpc_pb2.MoveLeaderResponse(),
        }
    )

    async def connect() -> Any:
        return conn

    await drive_async(connect, _maintenance.move_leader(3), 5.0)
    assert [(path, address) for path, _, _, _, address in conn.calls] == [
        (STATUS.path, "a:1"),
        (MEMBER_LIST.path, None),
        (MOVE_LEADER.path, "c:3"),
    ]


@pytest.mark.asyncio
async def test_drive_async_connects_only_after_the_arguments_passed() -> None:
    """A bad argument raises before the client connects."""
    connected: list[bool] = []

    async def connect() -> Any:
        connected.append(True)
        return FakeAsyncConnection({})

    with pytest.raises(ValueError, match="ttl"):
        await drive_async(connect, _lease.grant(-1), None)
    with pytest.raises(ValueError, match="timeout"):
        await drive_async(connect, _lease.leases(), -1)
    assert connected == []


@pytest.mark.parametrize("name", ["grant", "member_list", "status", "role_grant_permission"])
def test_both_shells_keep_the_flows_signature_and_docstring(name: str) -> None:
    """Client's method and AsyncClient's coroutine have the flow's parameters and docstring."""
    sync_method, async_method = getattr(Client, name), getattr(AsyncClient, name)
    assert inspect.iscoroutinefunction(async_method)
    assert not inspect.iscoroutinefunction(sync_method)
    assert sync_method.__doc__ == async_method.__doc__
    assert sync_method.__doc__
    assert inspect.signature(sync_method) == inspect.signature(async_method)
    assert "timeout" in inspect.signature(sync_method).parameters


@pytest.mark.asyncio
async def test_async_client_from_connection_runs_over_it() -> None:
    """AsyncClient.from_connection is a seam: calls go to the connection given, unconnected."""
    conn = FakeAsyncConnection(
        {
            (_methods.RANGE.path, None): rpc_pb2.RangeResponse(count=1),
            (MEMBER_LIST.path, None): rpc_pb2.MemberListResponse(),
        }
    )
    cli = AsyncClient.from_connection(cast(AsyncConnection, conn))
    assert (await cli.get("k", prefix=True)).count == 1
    await cli.member_list()
    path, request, _, idempotent, _ = conn.calls[0]
    assert (path, idempotent) == (_methods.RANGE.path, True)
    # KV requests reach the connection serialized already (base._wire)
    assert isinstance(request, bytes)
    assert rpc_pb2.RangeRequest.FromString(request) == rpc_pb2.RangeRequest(
        key=b"k", range_end=b"l"
    )
    assert [path for path, *_ in conn.calls] == [_methods.RANGE.path, MEMBER_LIST.path]


@pytest.mark.parametrize("name", ["grant", "revoke", "time_to_live", "leases"])
def test_flow_methods_have_the_protocols_signatures(name: str) -> None:
    """inspect sees the Lease Protocol's signature on both shells, bound or not."""
    expected = inspect.signature(getattr(Lease, name))
    assert inspect.signature(getattr(Client, name)) == expected
    assert inspect.signature(getattr(AsyncClient, name)) == inspect.signature(
        getattr(AsyncLease, name)
    )
    bound = getattr(Client.__new__(Client), name)
    assert list(inspect.signature(bound).parameters) == list(expected.parameters)[1:]
