"""aetcd (asyncio, grpc.aio), for bench_peers.py; run in aetcd's venv."""

from __future__ import annotations

import importlib
from typing import Any

import _driver

aetcd: Any = importlib.import_module("aetcd")


class Aetcd:
    """`aetcd.Client(host, port)`: get, put, get_prefix, watch_prefix."""

    def __init__(self, setup: _driver.Setup, cli: Any) -> None:
        self.setup = setup
        self.cli = cli

    async def get(self) -> None:
        (await self.cli.get(self.setup.get_key)).value  # noqa: B018 (read, as a user would)

    async def put(self) -> None:
        await self.cli.put(self.setup.put_key, self.setup.value)

    async def range(self) -> None:
        for kv in await self.cli.get_prefix(self.setup.range_prefix):
            kv.key  # noqa: B018
            kv.value  # noqa: B018

    async def watch(self) -> None:
        setup = self.setup
        watch = await self.cli.watch_prefix(setup.watch_prefix, start_revision=setup.watch_start)
        seen = 0
        try:
            async for event in watch:  # one event at a time
                event.kv.key  # noqa: B018
                event.kv.value  # noqa: B018
                seen += 1
                if seen >= setup.watch_count:
                    break
        finally:
            await watch.cancel()

    async def close(self) -> None:
        await self.cli.close()


async def connect(setup: _driver.Setup) -> Aetcd:
    """Connect an aetcd client to the endpoint."""
    cli = aetcd.Client(host=setup.host, port=setup.port)
    await cli.connect()
    return Aetcd(setup, cli)


if __name__ == "__main__":
    _driver.serve_async(connect)
