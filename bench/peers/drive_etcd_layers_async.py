"""Our `AsyncClient` through its public API, for bench_peers.py (run with the project's venv)."""

from __future__ import annotations

import _driver

from etcd_layers import AsyncClient


class OursAsync:
    """`etcd_layers.AsyncClient`: get, put, a prefix get, a watch from a revision."""

    def __init__(self, setup: _driver.Setup, cli: AsyncClient) -> None:
        self.setup = setup
        self.cli = cli

    async def get(self) -> None:
        (await self.cli.get(self.setup.get_key)).kvs[0].value  # noqa: B018 (read it)

    async def put(self) -> None:
        await self.cli.put(self.setup.put_key, self.setup.value)

    async def range(self) -> None:
        for kv in (await self.cli.get(self.setup.range_prefix, prefix=True)).kvs:
            kv.key  # noqa: B018
            kv.value  # noqa: B018

    async def watch(self) -> None:
        setup = self.setup
        seen = 0
        async with self.cli.watch(
            setup.watch_prefix, prefix=True, start_revision=setup.watch_start
        ) as stream:
            async for response in stream:
                for event in response.events:
                    event.kv.key  # noqa: B018
                    event.kv.value  # noqa: B018
                    seen += 1
                if seen >= setup.watch_count:
                    break

    async def close(self) -> None:
        await self.cli.close()


async def connect(setup: _driver.Setup) -> OursAsync:
    """Connect an `AsyncClient` to the endpoint."""
    cli = AsyncClient([setup.endpoint])
    await cli.connect()
    return OursAsync(setup, cli)


if __name__ == "__main__":
    _driver.serve_async(connect)
