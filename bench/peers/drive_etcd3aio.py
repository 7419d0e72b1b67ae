"""etcd3aio (asyncio, grpc.aio; hands out the raw protobuf messages), for bench_peers.py."""

from __future__ import annotations

import importlib
from typing import Any

import _driver

etcd3aio: Any = importlib.import_module("etcd3aio")


class Etcd3aio:
    """`etcd3aio.Etcd3Client([endpoint])`: kv.get, kv.put, a range get, watch.watch."""

    def __init__(self, setup: _driver.Setup, cli: Any) -> None:
        self.setup = setup
        self.cli = cli

    async def get(self) -> None:
        (await self.cli.kv.get(self.setup.get_key)).kvs[0].value  # noqa: B018 (read it)

    async def put(self) -> None:
        await self.cli.kv.put(self.setup.put_key, self.setup.value)

    async def range(self) -> None:
        setup = self.setup
        for kv in (await self.cli.kv.get(setup.range_prefix, range_end=setup.range_end)).kvs:
            kv.key  # noqa: B018
            kv.value  # noqa: B018

    async def watch(self) -> None:
        setup = self.setup
        responses = self.cli.watch.watch(
            setup.watch_prefix, range_end=setup.watch_end, start_revision=setup.watch_start
        )
        seen = 0
        try:
            async for response in responses:
                for event in response.events:
                    event.kv.key  # noqa: B018
                    event.kv.value  # noqa: B018
                    seen += 1
                if seen >= setup.watch_count:
                    break
        finally:
            await responses.aclose()

    async def close(self) -> None:
        await self.cli.close()


async def connect(setup: _driver.Setup) -> Etcd3aio:
    """Connect an etcd3aio client to the endpoint."""
    cli = etcd3aio.Etcd3Client([setup.endpoint])
    await cli.connect()
    return Etcd3aio(setup, cli)


if __name__ == "__main__":
    _driver.serve_async(connect)
