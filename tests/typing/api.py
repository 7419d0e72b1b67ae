"""Usage from API.md and the README, checked by mypy and never executed."""

from __future__ import annotations

from etcd_layers import (
    Client,
    Compare,
    EventType,
    Op,
    SortOrder,
    SortTarget,
    errors,
    leasing,
    namespace,
    ordering,
)
from etcd_layers.base import (
    KV,
    DeleteResponse,
    GetResponse,
    Lease,
    PutResponse,
    Response,
    TxnResponse,
    Watcher,
)


def kv_usage(cli: Client) -> None:
    put: PutResponse = cli.put("k", b"v", lease=0, prev_kv=True, timeout=1.0)
    got: GetResponse = cli.get(
        "k", prefix=True, limit=10, sort_order=SortOrder.DESCEND, sort_target=SortTarget.MOD
    )
    deleted: DeleteResponse = cli.delete("k", from_key=True, prev_kv=True)
    txn: TxnResponse = cli.txn(
        [Compare.value("k") == b"v", Compare.version("k") > 0, Compare.mod_revision("k") < 7],
        [Op.put("k", "v2"), Op.get("k"), Op.txn([], [Op.delete("k")])],
        [Op.get("k", keys_only=True)],
    )
    typed_get: GetResponse = cli.do(Op.get("k"))
    typed_txn: TxnResponse = cli.do(Op.txn())
    anything: Response = cli.do(Op.put("k", "v") if put.prev_kv else Op.get("k"))
    revision: int = got.header.revision + deleted.deleted + len(txn.responses)
    assert typed_get.count + revision >= 0 and typed_txn.succeeded in (True, False)
    assert anything.header.revision >= 0
    cli.compact(revision, physical=True)


def stream_usage(cli: Client) -> None:
    with cli.watch("k", prefix=True, prev_kv=True, created_notify=True) as watch:
        for response in watch:
            for event in response.events:
                assert event.type in (EventType.PUT, EventType.DELETE)
                assert event.kv.key
            break
        watch.next(timeout=1.0)
    cli.request_progress()
    lease_id = cli.grant(10).id
    keep = cli.keep_alive(lease_id)
    renewal = keep.next(timeout=1.0)
    assert renewal.ttl > 0
    keep.cancel()
    cli.revoke(lease_id)


def layer_usage(cli: Client) -> None:
    ns: KV = namespace.wrap(cli, "/tenant-a/")
    ns_watcher: Watcher = namespace.wrap_watcher(cli, "/tenant-a/")
    ns_lease: Lease = namespace.wrap_lease(cli, "/tenant-a/")
    only_kv: KV = namespace.wrap_kv(cli, b"/tenant-b/")
    checked: KV = ordering.wrap(cli, on_violation=ordering.switch_endpoints(cli))
    with leasing.wrap(cli, "leasing-prefix/", ttl=60) as cached:
        cached.get("k")
    stack = ordering.wrap(leasing.wrap(namespace.wrap(cli, "/tenant-a/"), "lease/"))
    stack.put("k", "v")
    for kv in (ns, only_kv, checked):
        kv.get("k")
    ns_watcher.request_progress()
    ns_lease.time_to_live(1, keys=True)


def error_usage(cli: Client) -> None:
    try:
        cli.get("k", revision=1)
    except errors.CompactedError as error:
        assert error.compact_revision >= 0
    except TimeoutError:
        pass
    except errors.EtcdError:
        pass


def concurrency_usage(cli: Client) -> None:
    from etcd_layers.concurrency import Election, Mutex, Session

    with Session(cli, ttl=10) as session:
        assert session.lease_id > 0
        with Mutex(session, "locks/report"):
            pass
        mutex = Mutex(session, "locks/other")
        if mutex.try_lock():
            mutex.unlock()
        election = Election(session, "elections/leader")
        election.campaign("node-1", timeout=5.0)
        election.proclaim("node-1b")
        assert election.leader().value
        with election.observe() as changes:
            for change in changes:
                assert change.kvs[0].value
                break
        election.resign()
    ns_session = Session(namespace.wrap(cli, "/tenant-a/"), ttl=5)
    ns_session.close()


def admin_usage(cli: Client) -> None:
    from etcd_layers import Permission

    for member in cli.member_list().members:
        assert member.name or member.peer_urls
    for endpoint in cli.endpoints:
        status = cli.status(endpoint)
        assert status.version and status.raft_index >= 0
    cli.sync_endpoints()
    cli.snapshot("/tmp/backup.db")
    cli.role_add("reader")
    cli.role_grant_permission("reader", "/app/", prefix=True, perm=Permission.READ)
    cli.user_add("alice", "secret")
    cli.user_grant_role("alice", "reader")


def funnel_usage(
    lkv: leasing.LeasingKV, checked: ordering.OrderingKV, tenant: namespace.NamespaceKV[Client]
) -> None:
    # Every class takes its put/get/delete/txn from the KV Protocol: one signature, typed alike.
    for kv in (lkv, checked, tenant):
        got: GetResponse = kv.get("k", prefix=True, keys_only=True, timeout=1.0)
        put: PutResponse = kv.put("k", "v", prev_kv=True)
        deleted: DeleteResponse = kv.delete("k", range_end="l")
        txn: TxnResponse = kv.txn([Compare.version("k") > 0], [Op.get("k")])
        typed: GetResponse = kv.do(Op.get("k"))
        assert got.count + put.header.revision + deleted.deleted + typed.count >= 0
        assert txn.succeeded in (True, False)
    lkv.get("k", serializable=True)  # the leasing fast path is typed as KV.get


def config_usage() -> None:
    with Client.from_env() as cli:
        cli.get("k")
    with Client.from_env({"ETCDCTL_ENDPOINTS": "a:2379"}, timeout=5.0, password="pw") as cli:
        cli.get("k")
    with Client.from_config("client.yaml", endpoints=["a:2379"], dial_timeout=2.0) as cli:
        cli.get("k")


async def async_usage() -> None:
    from etcd_layers import AsyncClient
    from etcd_layers.base import AsyncKV, LeaseGrantResponse, MemberListResponse

    async with AsyncClient(endpoints=["127.0.0.1:2379"], timeout=5.0) as cli:
        put: PutResponse = await cli.put("k", "v", prev_kv=True)
        got: GetResponse = await cli.get("k", prefix=True, sort_order=SortOrder.ASCEND)
        deleted: DeleteResponse = await cli.delete("k", prefix=True)
        txn: TxnResponse = await cli.txn([Compare.value("k") == b"v"], [Op.put("k", "w")])
        typed: GetResponse = await cli.do(Op.get("k"))
        await cli.compact(put.header.revision, physical=True)
        lease: LeaseGrantResponse = await cli.grant(10)
        await cli.keep_alive_once(lease.id)
        await cli.time_to_live(lease.id, keys=True)
        await cli.revoke(lease.id)
        members: MemberListResponse = await cli.member_list()
        await cli.status(cli.endpoints[0])
        await cli.user_add("alice", "secret")
        await cli.set_endpoints(*cli.endpoints)
        assert got.count + deleted.deleted + typed.count + len(members.members) >= 0
        assert txn.succeeded in (True, False)
        speaker: AsyncKV = cli
        await speaker.get("k")
    cli = AsyncClient.from_env()
    await cli.connect()
    await cli.close()
    cli = await AsyncClient.from_config("client.yaml", dial_timeout=2.0).connect()
    await cli.close()


async def async_layer_usage() -> None:
    from typing import cast

    from etcd_layers import AsyncClient
    from etcd_layers.base import AsyncKV, AsyncLease

    async with AsyncClient(endpoints=["127.0.0.1:2379"]) as acli:
        tenant: AsyncKV = namespace.wrap_kv(acli, "/tenant-a/")
        got: GetResponse = await tenant.get("k", prefix=True)
        await tenant.txn([Compare.value("k") == b"v"], [Op.put("k", "w")])
        lease_view: AsyncLease = namespace.wrap_lease(cast(AsyncLease, acli), "/tenant-a/")
        await lease_view.time_to_live(1, keys=True)

        async def refuse(op: Op, response: Response, prev_revision: int) -> None:
            raise errors.OrderViolationError("stale", response, prev_revision)

        checked: AsyncClient = ordering.wrap(acli, on_violation=refuse)  # typed as what it wraps
        await checked.get("k", serializable=True)
        stack: AsyncKV = ordering.wrap(namespace.wrap_kv(acli, "/t/"))
        typed: GetResponse = await stack.do(Op.get("k"))
        assert got.count + typed.count >= 0
        policy = ordering.switch_endpoints(acli)
        assert callable(policy)


async def async_concurrency_usage() -> None:
    from etcd_layers import AsyncClient
    from etcd_layers.concurrency import AsyncElection, AsyncMutex, AsyncSession

    async with AsyncClient(endpoints=["127.0.0.1:2379"]) as acli:
        async with AsyncSession(acli, ttl=10) as session:
            assert not session.done.is_set()
            async with AsyncMutex(session, "locks/x"):
                pass
            mutex = AsyncMutex(session, "locks/y")
            await mutex.lock(timeout=5.0)
            if await mutex.try_lock():
                await mutex.unlock()
            election = AsyncElection(session, "elections/x")
            await election.campaign("v", timeout=5.0)
            await election.proclaim("w")
            assert (await election.leader()).value
            async for change in election.observe():
                assert change.kvs[0].value
                break
            await election.resign()
        ns_session = await AsyncSession(namespace.wrap(acli, "/tenant-a/"), ttl=5)
        await ns_session.close()


async def async_leasing_usage() -> None:
    from etcd_layers import AsyncClient

    async with AsyncClient(endpoints=["127.0.0.1:2379"]) as acli:
        lkv = await leasing.wrap(acli, "lease/", ttl=60, max_keys=None, timeout=None)
        async with lkv:
            got: GetResponse = await lkv.get("k")
            assert got.count >= 0
        await lkv.close()
        assert leasing.stats(lkv).hits >= 0
        assert lkv.session_lease_id >= 0
        stack = ordering.wrap(await leasing.wrap(namespace.wrap(acli, "/t/"), "lease/"))
        typed: GetResponse = await stack.do(Op.get("k"))
        assert typed.count >= 0
        async with await leasing.wrap(namespace.wrap(acli, "/tenant-a/"), "lease/") as cached:
            await cached.get("users/alice")


def recipes_usage(cli: Client) -> None:
    from etcd_layers.concurrency import (
        Barrier,
        DoubleBarrier,
        PriorityQueue,
        Queue,
        RWMutex,
        Session,
    )

    barrier = Barrier(namespace.wrap(cli, "/t/"), "gate")
    barrier.hold()
    barrier.release()
    barrier.wait(timeout=None)
    queue = Queue(cli, "jobs")
    queue.enqueue(b"job")
    item: bytes = queue.dequeue(timeout=5)
    priority = PriorityQueue(cli, "work")
    priority.enqueue("page", 0)
    first: bytes = priority.dequeue()
    assert item or first
    with Session(cli, ttl=10) as session:
        rw = RWMutex(session, "config")
        rw.rlock(timeout=None)
        rw.runlock()
        rw.lock(timeout=5)
        rw.unlock()
        group = DoubleBarrier(session, "batch", 3)
        group.enter(timeout=None)
        group.leave(timeout=None)


async def async_recipes_usage() -> None:
    from etcd_layers import AsyncClient
    from etcd_layers.concurrency import (
        AsyncBarrier,
        AsyncDoubleBarrier,
        AsyncPriorityQueue,
        AsyncQueue,
        AsyncRWMutex,
        AsyncSession,
    )

    async with AsyncClient(endpoints=["127.0.0.1:2379"]) as acli:
        await AsyncBarrier(namespace.wrap(acli, "/t/"), "gate").wait(timeout=5)
        queue = AsyncQueue(acli, "jobs")
        await queue.enqueue("job")
        item: bytes = await queue.dequeue(timeout=5)
        await AsyncPriorityQueue(acli, "work").enqueue(item, 3)
        async with AsyncSession(acli, ttl=10) as session:
            rw = AsyncRWMutex(session, "config")
            await rw.lock(timeout=5)
            await rw.unlock()
            await AsyncDoubleBarrier(session, "batch", 2).enter(timeout=5)


def stm_fencing_resume_usage(cli: Client) -> None:
    from etcd_layers.concurrency import STM, Election, Isolation, Mutex, Session, stm

    def move(tx: STM) -> None:
        src, dst = int(tx.get("acct/a")), int(tx.get("acct/b", "acct/c"))
        tx.put("acct/a", str(src - 10), lease=0)
        tx.put("acct/b", str(dst + 10))
        tx.delete("acct/old")
        assert tx.rev("acct/a") >= 0

    resp: TxnResponse = stm(cli, move, isolation=Isolation.SERIALIZABLE, prefetch=["acct/a"])
    assert resp.succeeded
    assert stm(namespace.wrap(cli, "/t/"), move, timeout=5.0).succeeded
    with Session(cli, ttl=10) as session, Mutex(session, "locks/report") as mutex:
        token: int = mutex.revision
        cli.txn(compare=[mutex.owner_compare()], success=[Op.put("token", str(token))])
        election = Election.resume(session, "elections/x", b"elections/x/1", 5)
        election.proclaim("v")


async def async_stm_usage() -> None:
    from etcd_layers import AsyncClient
    from etcd_layers.concurrency import AsyncElection, AsyncMutex, AsyncSession, AsyncSTM, stm

    async def move(tx: AsyncSTM) -> None:
        src = int(await tx.get("acct/a"))
        tx.put("acct/a", str(src - 10))
        assert await tx.rev("acct/a") >= 0

    async with AsyncClient(endpoints=["127.0.0.1:2379"]) as acli:
        resp: TxnResponse = await stm(acli, move, timeout=5.0)
        assert resp.succeeded
        assert (await stm(namespace.wrap(acli, "/t/"), move)).succeeded
        async with AsyncSession(acli, ttl=10) as session, AsyncMutex(session, "l") as mutex:
            assert mutex.revision > 0
            election = AsyncElection.resume(session, "e", b"e/1", 5)
            await election.resign()
