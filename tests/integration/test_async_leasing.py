"""The async leasing layer on a real etcd server, and sync and async leasing clients together.

`await leasing.wrap(acli, prefix)` runs Go's protocol on the same flows and cache as the sync
layer, so the two kinds coordinate on one prefix: a write through either revokes the other's
cached key first, and no leasing client ever reads a stale value.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import pytest_asyncio
import wrapt
from layer_kinds import Backend

from etcd_layers import AsyncClient, Client, Compare, Op, errors, leasing, namespace, ordering
from etcd_layers.base import (
    KV,
    AsyncKV,
    AsyncLease,
    AsyncWatcher,
    KeyValue,
    Lease,
    Watcher,
)
from etcd_layers.leasing import AsyncLeasingClient, AsyncLeasingKV, LeasingKV
from etcd_layers.testing.linearizability import History, check

TIMEOUT = 10.0

pytestmark = pytest.mark.asyncio


class Made:
    """Makes leasing clients of both kinds on one prefix, each on its own client."""

    def __init__(self, backend: Backend, prefix: bytes) -> None:
        self.backend = backend
        self.prefix = prefix
        self._async: list[tuple[AsyncLeasingClient, AsyncClient]] = []
        self._sync: list[tuple[LeasingKV, Client]] = []

    async def client(self) -> AsyncClient:
        return await self.backend.make_async_client(timeout=TIMEOUT)().connect()

    async def aio(
        self, *, ttl: int = 30, max_keys: int | None = None, below: Any = None
    ) -> AsyncLeasingClient:
        """An async leasing client (over `below(acli)` when given)."""
        client = await self.client()
        wrapped = client if below is None else below(client)
        kv = await leasing.wrap(wrapped, self.prefix, ttl=ttl, max_keys=max_keys, timeout=TIMEOUT)
        self._async.append((kv, client))
        return kv

    def sync(self, *, below: Any = None) -> LeasingKV:
        """A sync leasing client (made from a thread: it blocks)."""
        client = self.backend.client(timeout=TIMEOUT)
        wrapped = client if below is None else below(client)
        kv = leasing.wrap(wrapped, self.prefix, timeout=TIMEOUT)
        assert isinstance(kv, LeasingKV)
        self._sync.append((kv, client))
        return kv

    async def close(self) -> None:
        for kv, client in self._async:
            await kv.close()
            await client.close()
        for skv, sclient in self._sync:
            await asyncio.to_thread(skv.close)
            sclient.close()


@pytest.fixture
def etcd_async_client(backend_async_client: AsyncClient) -> AsyncClient:
    """An AsyncClient on the test's backend: the session's etcd, then a MemoryEtcd."""
    return backend_async_client


@pytest.fixture
def etcd_client(backend: Backend) -> Client:
    """A sync client on the same backend."""
    return backend.client()


@pytest.fixture
def lease_prefix(etcd_key_prefix: bytes) -> bytes:
    return b"/aleasing" + etcd_key_prefix


@pytest_asyncio.fixture
async def make(backend: Backend, lease_prefix: bytes) -> AsyncIterator[Made]:
    made = Made(backend, lease_prefix)
    yield made
    await made.close()


@pytest.fixture
def p(etcd_key_prefix: bytes) -> Callable[[str], bytes]:
    return lambda name: etcd_key_prefix + name.encode()


def leasing_keys(cli: Client, lease_prefix: bytes) -> list[KeyValue]:
    return list(cli.get(lease_prefix, prefix=True).kvs)


async def eventually(condition: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    until = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < until, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_async_leasing_serves_a_key_from_memory_after_the_first_get(
    make: Made, p: Callable[[str], bytes]
) -> None:
    """The first get acquires the key; the next ones are hits; the kind is async."""
    kv = await make.aio()
    assert isinstance(kv, AsyncLeasingKV)
    assert isinstance(kv, AsyncKV)
    speaker: object = kv
    assert not isinstance(speaker, KV)
    assert kv.session_lease_id != 0
    await kv.put(p("k"), "v")
    assert (await kv.get(p("k"))).kvs[0].value == b"v"
    for _ in range(3):
        assert (await kv.get(p("k"))).kvs[0].value == b"v"
    assert (await kv.do(Op.get(p("k")))).kvs[0].value == b"v"
    stats = leasing.stats(kv)
    assert (stats.acquisitions, stats.hits, stats.cached_keys) == (1, 4, 1)


async def test_async_leasing_wrap_checks_arguments_when_called(
    etcd_async_client: AsyncClient,
) -> None:
    """Bad arguments raise from wrap() itself, before any coroutine is made."""
    with pytest.raises(ValueError, match="prefix"):
        leasing.wrap(etcd_async_client, "")  # type: ignore[unused-coroutine]
    with pytest.raises(ValueError, match="ttl"):
        leasing.wrap(etcd_async_client, "p/", ttl=0)  # type: ignore[unused-coroutine]
    with pytest.raises(TypeError):
        leasing.wrap(object(), "p/")  # type: ignore[call-overload]


async def test_sync_write_revokes_the_async_owner_and_async_write_the_sync_owner(
    make: Made, p: Callable[[str], bytes]
) -> None:
    """Go's protocol across kinds: each writer waits until the other kind's owner lets go."""
    aowner = await make.aio()
    sowner = await asyncio.to_thread(make.sync)
    await aowner.get(p("a"))
    await asyncio.to_thread(sowner.get, p("b"))
    await asyncio.to_thread(sowner.put, p("a"), "from-sync")
    assert (await aowner.get(p("a"))).kvs[0].value == b"from-sync"
    assert aowner.stats.revocations == 1
    await aowner.put(p("b"), "from-async")
    assert (await asyncio.to_thread(sowner.get, p("b"))).kvs[0].value == b"from-async"
    assert sowner.stats.revocations == 1
    await aowner.delete(p("b"))
    assert (await asyncio.to_thread(sowner.get, p("b"))).kvs == []


async def test_async_leasing_txn_from_memory_and_through_the_protocol(
    make: Made, p: Callable[[str], bytes]
) -> None:
    """A txn of owned keys is answered from memory; a writing txn revokes the other owner."""
    owner, writer = await make.aio(), await make.aio()
    await owner.put(p("x"), "1")
    await owner.get(p("x"))
    hits = owner.stats.hits
    answer = await owner.txn(
        [Compare.value(p("x")) == "1"], [Op.get(p("x"))], [Op.put(p("x"), "no")]
    )
    assert answer.succeeded
    assert owner.stats.hits == hits + 1
    done = await writer.txn([Compare.version(p("x")) > 0], [Op.put(p("x"), "2")])
    assert done.succeeded
    assert owner.stats.revocations == 1
    assert (await owner.get(p("x"))).kvs[0].value == b"2"


class StalledRenewals(wrapt.ObjectProxy):  # type: ignore[type-arg]  # wraps an AsyncClient
    """An AsyncClient whose lease renewals can be made to hang, like a stuck session task."""

    def __init__(self, client: AsyncClient) -> None:
        super().__init__(client)
        self._self_resumed = asyncio.Event()
        self._self_resumed.set()

    def stall(self) -> None:
        self._self_resumed.clear()

    def resume(self) -> None:
        self._self_resumed.set()

    async def keep_alive_once(self, lease_id: int, *, timeout: float | None = None) -> object:
        await self._self_resumed.wait()
        return await self.__wrapped__.keep_alive_once(lease_id, timeout=timeout)


async def test_async_leasing_session_expiry_stops_serving_from_memory(
    make: Made, etcd_client: Client, p: Callable[[str], bytes], lease_prefix: bytes
) -> None:
    """Renewals stall: memory stops answering, reads go to the server, a new session follows."""
    stalled: list[StalledRenewals] = []

    def below(client: AsyncClient) -> StalledRenewals:
        stalled.append(StalledRenewals(client))
        return stalled[0]

    kv = await make.aio(ttl=2, below=below)
    await kv.get(p("k"))
    await kv.get(p("k"))
    assert kv.stats.hits == 1
    stalled[0].stall()
    first = kv.session_lease_id
    await eventually(lambda: etcd_client.time_to_live(first).ttl == -1)
    etcd_client.put(p("k"), "behind")  # nobody holds it now; written as a plain client would
    assert (await kv.get(p("k"))).kvs[0].value == b"behind"
    assert kv.stats.hits == 1
    stalled[0].resume()
    await eventually(lambda: kv.stats.session_losses >= 1)
    await eventually(lambda: kv.session_lease_id not in (0, first))
    await kv.get(p("k"))  # acquired again under the new session
    await kv.get(p("k"))
    assert kv.stats.hits == 2


async def test_async_leasing_max_keys_gives_back_the_least_recently_used_key(
    make: Made, etcd_client: Client, p: Callable[[str], bytes], lease_prefix: bytes
) -> None:
    """Beyond max_keys the oldest key is evicted and its leasing key deleted on the server."""
    kv = await make.aio(max_keys=2)
    for name in ("a", "b", "c"):
        await kv.get(p(name))
    assert kv.stats.evictions == 1
    assert kv.stats.cached_keys == 2
    await eventually(lambda: len(leasing_keys(etcd_client, lease_prefix)) == 2)
    assert [k.key for k in leasing_keys(etcd_client, lease_prefix)] == [
        lease_prefix + p("b"),
        lease_prefix + p("c"),
    ]


async def test_async_leasing_close_releases_every_leasing_key_and_the_session(
    etcd_async_client: AsyncClient,
    etcd_client: Client,
    p: Callable[[str], bytes],
    lease_prefix: bytes,
) -> None:
    """close() (here: leaving `async with`) gives up our keys; the client stays open."""
    kv = await leasing.wrap(etcd_async_client, lease_prefix)
    async with kv as entered:
        assert entered is kv
        for name in ("a", "b"):
            await kv.get(p(name))
        assert len(leasing_keys(etcd_client, lease_prefix)) == 2
        session = kv.session_lease_id
    assert leasing_keys(etcd_client, lease_prefix) == []
    assert etcd_client.time_to_live(session).ttl == -1
    assert (await etcd_async_client.get(p("a"))).kvs == []  # the client is still open
    await kv.close()  # idempotent
    await kv.put(p("a"), "after")  # writes still go through the protocol
    assert (await kv.get(p("a"))).kvs[0].value == b"after"
    assert kv.stats.cached_keys == 0


async def test_async_leasing_over_a_namespace_coordinates_with_a_sync_one(
    make: Made, etcd_client: Client, etcd_key_prefix: bytes, lease_prefix: bytes
) -> None:
    """leasing.wrap(namespace.wrap(acli, ns)) keeps its leasing keys inside the namespace."""
    ns = b"/ns" + etcd_key_prefix
    akv = await make.aio(below=lambda c: namespace.wrap(c, ns))
    skv = await asyncio.to_thread(make.sync, below=lambda c: namespace.wrap(c, ns))
    checked = ordering.wrap(akv)
    await checked.put("k", "1")
    assert (await checked.get("k")).kvs[0].value == b"1"
    assert leasing.stats(checked).acquisitions == 1
    assert etcd_client.get(ns + lease_prefix + b"k").count == 1
    await asyncio.to_thread(skv.put, "k", "2")
    assert (await checked.get("k")).kvs[0].value == b"2"
    assert akv.stats.revocations == 1
    assert etcd_client.get(ns + b"k").kvs[0].value == b"2"


async def test_async_leasing_stacks_answer_protocol_checks_of_their_kind(
    make: Made, etcd_key_prefix: bytes
) -> None:
    """Leasing over a namespace, and layers over that, are AsyncKV, AsyncWatcher, AsyncLease."""
    lkv = await make.aio(below=lambda c: namespace.wrap(c, etcd_key_prefix))
    for layer in (lkv, ordering.wrap(lkv), namespace.wrap(lkv, "n/")):
        speaker: object = layer
        kinds = (KV, Watcher, Lease, AsyncKV, AsyncWatcher, AsyncLease)
        assert [kind for kind in kinds if isinstance(speaker, kind)] == [
            AsyncKV,
            AsyncWatcher,
            AsyncLease,
        ]
        assert isinstance(leasing.stats(layer).hits, int)
    async with lkv.watch("w") as watch:  # forwarded, inside the namespace
        await lkv.put("w", "1")
        response = await watch.next(TIMEOUT)
        assert response.events[0].kv.key == b"w"


async def test_async_writer_with_a_deadline_gives_up_on_an_owner_that_never_lets_go(
    make: Made, etcd_client: Client, p: Callable[[str], bytes], lease_prefix: bytes
) -> None:
    """The async wait for the owner's delete ends at the writer's deadline, writing nothing."""
    kv = await make.aio()
    stuck = etcd_client.grant(60).id
    try:
        etcd_client.put(lease_prefix + p("k"), "", lease=stuck)
        with pytest.raises(errors.DeadlineExceededError):
            await kv.put(p("k"), "v", timeout=0.5)
        assert etcd_client.get(p("k")).kvs == []
    finally:
        etcd_client.revoke(stuck)


async def test_cancelling_a_write_blocked_on_an_owner_leaves_the_client_usable(
    make: Made, etcd_client: Client, p: Callable[[str], bytes], lease_prefix: bytes
) -> None:
    """The task waiting for an owner to let go is cancelled; nothing is written, no key held."""
    kv = await make.aio()
    stuck = etcd_client.grant(60).id
    etcd_client.put(lease_prefix + p("k"), "", lease=stuck)
    task = asyncio.create_task(kv.put(p("k"), "v"))
    await eventually(lambda: etcd_client.get(lease_prefix + p("k")).kvs[0].value == leasing.REVOKE)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert etcd_client.get(p("k")).kvs == []
    etcd_client.revoke(stuck)  # the foreign owner goes
    await kv.put(p("k"), "w")
    assert (await kv.get(p("k"))).kvs[0].value == b"w"
    assert (await kv.get(p("k"))).kvs[0].value == b"w"
    assert kv.stats.hits == 1


async def test_hundreds_of_tasks_on_one_async_leasing_client_agree_with_the_server(
    make: Made, etcd_client: Client, p: Callable[[str], bytes]
) -> None:
    """Concurrent gets and writes from 200 tasks leave memory equal to the server."""
    kv = await make.aio()
    keys = [p(f"k{index}") for index in range(4)]

    async def worker(index: int) -> None:
        key = keys[index % len(keys)]
        for step in range(3):
            if (index + step) % 3 == 0:
                await kv.put(key, f"{index}-{step}")
            else:
                await kv.get(key)

    await asyncio.gather(*(worker(index) for index in range(200)))
    for key in keys:
        mine = (await kv.get(key)).kvs
        assert [(k.key, k.value, k.mod_revision) for k in mine] == [
            (k.key, k.value, k.mod_revision) for k in etcd_client.get(key).kvs
        ]
    assert kv.stats.acquisitions > 0


# --- a mixed sync and async history, checked for linearizability ------------------------------

RUN_SECONDS = 4.0
KEYS = 4


class Mixed:
    """Random gets, puts and deletes from sync threads and async tasks, in one history."""

    def __init__(self, keys: list[bytes]) -> None:
        self.keys = keys
        self.history = History()
        self.stop = threading.Event()
        self.counter = 0
        self.failures: list[BaseException] = []
        self._lock = threading.Lock()

    def value(self, name: str) -> bytes:
        with self._lock:
            self.counter += 1
            return f"{name}-{self.counter}".encode()

    def pick(self, chooser: random.Random, home: list[bytes]) -> tuple[str, bytes]:
        key = chooser.choice(home if chooser.random() < 0.8 else self.keys)
        roll = chooser.random()
        return ("get" if roll < 0.6 else "put" if roll < 0.92 else "delete"), key

    def run_sync(self, name: str, kv: LeasingKV, seed: int, home: list[bytes]) -> None:
        chooser = random.Random(seed)
        try:
            for _ in range(100_000):  # bounded; `stop` ends it long before
                if self.stop.is_set():
                    return
                kind, key = self.pick(chooser, home)
                value = self.value(name) if kind == "put" else None
                token = self.history.invoke(name, kind, key, value)  # type: ignore[arg-type]
                try:
                    if kind == "get":
                        got = kv.get(key, timeout=TIMEOUT)
                        self.history.ok(token, got.kvs[0].value if got.kvs else None)
                        continue
                    if value is None:
                        kv.delete(key, timeout=TIMEOUT)
                    else:
                        kv.put(key, value, timeout=TIMEOUT)
                    self.history.ok(token)
                except errors.EtcdError:
                    self.record_failure(token, kind)
        except BaseException as err:  # noqa: BLE001  # reported by the test, not lost in a thread
            self.failures.append(err)

    async def run_async(
        self, name: str, kv: AsyncLeasingClient, seed: int, home: list[bytes]
    ) -> None:
        chooser = random.Random(seed)
        for _ in range(100_000):
            if self.stop.is_set():
                return
            kind, key = self.pick(chooser, home)
            value = self.value(name) if kind == "put" else None
            token = self.history.invoke(name, kind, key, value)  # type: ignore[arg-type]
            try:
                if kind == "get":
                    got = await kv.get(key, timeout=TIMEOUT)
                    self.history.ok(token, got.kvs[0].value if got.kvs else None)
                elif value is None:
                    await kv.delete(key, timeout=TIMEOUT)
                    self.history.ok(token)
                else:
                    await kv.put(key, value, timeout=TIMEOUT)
                    self.history.ok(token)
            except errors.EtcdError:
                self.record_failure(token, kind)
            await asyncio.sleep(0)  # let the other tasks and the background run

    def record_failure(self, token: int, kind: str) -> None:
        if kind == "get":
            self.history.failed(token)
        else:
            self.history.unknown(token)


@pytest.fixture
def threads() -> Iterator[list[threading.Thread]]:
    made: list[threading.Thread] = []
    yield made
    for thread in made:
        thread.join(timeout=TIMEOUT)


async def test_mixed_sync_and_async_leasing_histories_are_linearizable(
    make: Made, p: Callable[[str], bytes], threads: list[threading.Thread]
) -> None:
    """Two sync and two async leasing clients on one prefix: each key's history linearizes."""
    keys = [p(f"k{index}") for index in range(KEYS)]
    workload = Mixed(keys)
    asyncs = [await make.aio(), await make.aio()]
    syncs = [await asyncio.to_thread(make.sync), await asyncio.to_thread(make.sync)]
    # Besides shared keys, each client has one key of its own: nobody revokes it, so its reads
    # come from the cache however fast the others write (MemoryEtcd's writes are very fast).
    for index, kv in enumerate(syncs):
        home = [*keys[index * 2 : index * 2 + 2], p(f"own-sync{index}")]
        thread = threading.Thread(
            target=workload.run_sync, args=(f"sync{index}", kv, index, home), daemon=True
        )
        threads.append(thread)
        thread.start()
    tasks = [
        asyncio.create_task(
            workload.run_async(
                f"async{index}", kv, 10 + index, [*keys[index : index + 2], p(f"own-async{index}")]
            )
        )
        for index, kv in enumerate(asyncs)
    ]
    await asyncio.sleep(RUN_SECONDS)
    workload.stop.set()
    await asyncio.gather(*tasks)
    for thread in threads:
        await asyncio.to_thread(thread.join, TIMEOUT)
    assert workload.failures == []
    operations = workload.history.operations()
    made: list[Any] = [*asyncs, *syncs]
    summary = f"{len(operations)} operations; stats: {[kv.stats for kv in made]}"
    assert len(operations) > 200, summary
    assert sum(kv.stats.hits for kv in asyncs) > 10, summary
    assert sum(kv.stats.hits for kv in syncs) > 10, summary
    assert sum(kv.stats.revocations for kv in made) > 0, summary
    result = check(operations)
    assert result.decided, result.message
    assert result.ok, result.message
