"""The Mirror, paginated-read and registry usage of API.md and the README, checked by mypy."""

from __future__ import annotations

from etcd_layers import AsyncClient, Client, Compare, namespace
from etcd_layers.base import Event, GetResponse
from etcd_layers.concurrency import Session
from etcd_layers.mirror import AsyncMirror, Mirror, Syncer, get_pages
from etcd_layers.naming import (
    AsyncEndpointManager,
    Endpoint,
    EndpointManager,
    Update,
    UpdateOp,
)


def sync_usage(cli: Client) -> None:
    pages: list[GetResponse] = list(get_pages(cli, "config/", page_size=1000, revision=0))
    syncer = Syncer(cli, "config/", revision=0)
    revision: int = syncer.revision
    with Mirror(namespace.wrap(cli, "/t/"), "config/") as m:
        value: bytes | None = m.get(b"config/db")
        items: dict[bytes, bytes] = m.items()
        count: int = len(m) + m.revision
        m.wait(cli.put("config/db", "x").header.revision, timeout=5.0)

        def callback(events: list[Event]) -> None: ...

        unsubscribe = m.subscribe(callback)
        unsubscribe()
    em = EndpointManager(cli, "services/api")
    em.add_endpoint("services/api/node-1", Endpoint(addr="10.0.0.1:8080", metadata=None), lease=0)
    em.delete_endpoint("services/api/node-1")
    found: dict[str, Endpoint] = em.list()
    with em.watch() as updates:
        for batch in updates:
            first: Update = batch[0]
            added: bool = first.op is UpdateOp.ADD
    with Session(cli, ttl=10) as session:
        em.register("services/api/node-1", Endpoint("10.0.0.1:8080"), session)
    cli.txn(compare=[Compare.key_exists("a"), Compare.key_missing("b")])
    del pages, revision, value, items, count, found, added


async def async_usage(acli: AsyncClient) -> None:
    async for page in get_pages(acli, "config/"):
        size: int = len(page.kvs)
    async with AsyncMirror(acli, "config/") as m:
        await m.wait(m.revision, timeout=5.0)
    em = AsyncEndpointManager(acli, "services/api")
    async with em.watch() as updates:
        async for batch in updates:
            del batch
    del size


def syncer_kinds(cli: Client, acli: AsyncClient) -> None:
    for page in Syncer(cli, "a").sync_base():
        del page
    with Syncer(cli, "a", 5).sync_updates() as watch:
        del watch
    async_pages = Syncer(acli, "a").sync_base()
    start = Syncer(acli, "a", 5).sync_updates()
    del async_pages, start
