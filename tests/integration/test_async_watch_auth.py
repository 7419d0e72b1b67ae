"""AsyncClient watches with auth on: permissions, and re-login once a stream's token expired."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from etcd_layers import AsyncClient, Client, EventType, errors
from etcd_layers.base import AsyncWatch, _methods
from etcd_layers.base._proto import rpc_pb2
from etcd_layers.testing import EtcdServer, wait_until

TIMEOUT = 5.0

pytestmark = pytest.mark.asyncio


async def events_of(watch: AsyncWatch, count: int) -> list[tuple[EventType, bytes, bytes]]:
    """Read `count` events (type, key, value) from `watch`, each within TIMEOUT."""
    found: list[tuple[EventType, bytes, bytes]] = []
    while len(found) < count:
        response = await watch.next(timeout=TIMEOUT)
        found += [(e.type, e.kv.key, e.kv.value) for e in response.events]
    return found


async def assert_silent(watch: AsyncWatch, seconds: float = 0.3) -> None:
    """Nothing arrives on `watch` within `seconds`."""
    with pytest.raises(TimeoutError):
        await watch.next(timeout=seconds)


# --- auth ----------------------------------------------------------------------------------

ROOT_PASSWORD = "root-secret"
USER = "watcher"
USER_PASSWORD = "watcher-secret"
USER_PREFIX = b"/watcher/"
TOKEN_TTL = 2  # seconds a simple token lives unused (--auth-token-ttl)


@pytest.fixture(scope="module")
def auth_server() -> Iterator[EtcdServer]:
    """A server with auth on, short-lived simple tokens, and a user limited to USER_PREFIX."""
    extra = ["--auth-token=simple", f"--auth-token-ttl={TOKEN_TTL}", "--bcrypt-cost=4"]
    with EtcdServer(extra_args=extra) as server:
        with Client(server.endpoints, username="root", password=ROOT_PASSWORD) as root:
            root.user_add("root", ROOT_PASSWORD)
            root.user_grant_role("root", "root")
            root.user_add(USER, USER_PASSWORD)
            root.role_add(USER)
            root.role_grant_permission(USER, USER_PREFIX, prefix=True)
            root.user_grant_role(USER, USER)
            root.auth_enable()
        yield server


def _token_expired(server: EtcdServer, token: str) -> bool:
    """Whether etcd refuses `token` (a probe that renews a live token: call it sparingly)."""
    with Client(server.endpoints) as probe:
        endpoint = probe.connection.endpoints[0]
        request = rpc_pb2.RangeRequest(key=USER_PREFIX).SerializeToString()
        try:
            with errors.translate_rpc_errors():
                endpoint.callable(_methods.RANGE)(request, timeout=5, metadata=(("token", token),))
        except errors.InvalidAuthTokenError:
            return True
    return False


async def test_async_watch_outside_the_users_permission_is_refused(
    auth_server: EtcdServer,
) -> None:
    """A watch on keys the user may not read raises PermissionDeniedError; others still work."""
    async with AsyncClient(auth_server.endpoints, username=USER, password=USER_PASSWORD) as cli:
        with pytest.raises(errors.PermissionDeniedError):
            await cli.watch("/elsewhere/", prefix=True)
        key = USER_PREFIX + b"allowed"
        async with cli.watch(key) as watch:
            await cli.put(key, "v")
            assert await events_of(watch, 1) == [(EventType.PUT, key, b"v")]


async def test_async_watch_created_after_the_token_expired_logs_in_again(
    auth_server: EtcdServer,
) -> None:
    """Once the stream's token expired, a new watch logs in again; the old one loses nothing."""
    first_key, second_key = USER_PREFIX + b"first", USER_PREFIX + b"second"
    async with AsyncClient(
        auth_server.endpoints, username=USER, password=USER_PASSWORD, timeout=5
    ) as cli:
        conn = cli.connection
        assert conn is not None
        async with cli.watch(first_key) as first:
            await cli.put(first_key, "before")
            token = dict(conn.metadata)["token"]
            streams = cli.watch_stats().streams
            await asyncio.to_thread(
                wait_until,
                lambda: _token_expired(auth_server, token),
                timeout=15,
                interval=TOKEN_TTL + 1.5,
            )
            async with cli.watch(second_key) as second:
                await cli.put(first_key, "after")
                await cli.put(second_key, "after")
                assert await events_of(first, 2) == [
                    (EventType.PUT, first_key, b"before"),
                    (EventType.PUT, first_key, b"after"),
                ]
                assert await events_of(second, 1) == [(EventType.PUT, second_key, b"after")]
                await assert_silent(first)
        assert cli.watch_stats().streams > streams
