"""Leasing clients under faults, checked for linearizability per key.

Several leasing clients and a raw client read and write a few keys from threads, on a
3-member cluster, while connections are dropped, a member restarts, and one leasing client is
cut off long enough for its session lease to expire. Every operation is recorded with its
call and return times, and each key's history must be linearizable.

The raw client reads freely; it writes only where no leasing client owns the key (a txn
guarded on the leasing key's absence), because writes that bypass leasing are not
coordinated by contract (API.md, as in Go).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import NamedTuple

import pytest
import wrapt

from etcd_layers import Client, Compare, Op, errors, leasing
from etcd_layers.base import KV
from etcd_layers.leasing import LeasingKV
from etcd_layers.testing import EtcdCluster, wait_until
from etcd_layers.testing.linearizability import History, check

RUN_SECONDS = 12.0
OP_TIMEOUT = 2.0
KEYS = 6


class StallableRenewals(wrapt.ObjectProxy):  # type: ignore[type-arg]  # wraps a Client
    """A client whose lease renewals can be made to hang, like a paused renewal thread."""

    def __init__(self, client: Client) -> None:
        super().__init__(client)
        self._self_stalled = False
        self._self_resumed = threading.Event()

    def stall(self) -> None:
        self._self_stalled = True

    def resume(self) -> None:
        self._self_stalled = False
        self._self_resumed.set()

    def keep_alive_once(self, lease_id: int, *, timeout: float | None = None) -> object:
        if self._self_stalled:
            self._self_resumed.wait(30)
        return self.__wrapped__.keep_alive_once(lease_id, timeout=timeout)


class Plan(NamedTuple):
    """What one leasing client's threads do."""

    home: list[bytes]  # the keys it mostly reads
    reads: float  # the share of its operations that are gets
    timeout: float  # seconds for each of its gets


class Workload:
    """Random gets, puts and deletes on a few keys, recorded in one history."""

    def __init__(self, keys: list[bytes], lease_prefix: bytes, seed: int) -> None:
        self.keys = keys
        self.lease_prefix = lease_prefix
        self.history = History()
        self.stop = threading.Event()
        self.seed = seed
        self.counter = 0
        self.failures: list[BaseException] = []
        self._lock = threading.Lock()

    def value(self, client: str) -> bytes:
        with self._lock:
            self.counter += 1
            return f"{client}-{self.counter}".encode()

    def run_leasing(self, name: str, kv: KV, chooser: random.Random, plan: Plan) -> None:
        """Loop until stopped: mostly gets of the client's home keys, some writes anywhere.

        A share `plan.reads` of gets, then puts and a few deletes; four ops in five on the
        home keys, so that owners keep their keys for a while and memory answers often, while
        other clients still write them.
        """
        home, reads, timeout = plan
        for _ in range(100_000):  # bounded; `stop` ends it long before
            if self.stop.is_set():
                return
            key = chooser.choice(home if chooser.random() < 0.8 else self.keys)
            roll = chooser.random()
            if roll < reads:
                self._get(name, kv, key, timeout)
            elif roll < reads + (1 - reads) * 0.8:
                value = self.value(name)
                self.write(name, key, value, kv)
            else:
                self.write(name, key, None, kv)

    def leasing_loop(
        self, name: str, kv: KV, chooser: random.Random, plan: Plan
    ) -> Callable[[], None]:
        """Return a thread body running `run_leasing` for one client."""
        return lambda: self.run_leasing(name, kv, chooser, plan)

    def run_raw(self, name: str, kv: Client, chooser: random.Random) -> None:
        """Reads anywhere; writes only where no leasing client owns the key."""
        for _ in range(100_000):
            if self.stop.is_set():
                return
            key = chooser.choice(self.keys)
            if chooser.random() < 0.8:
                self._get(name, kv, key)
                continue
            value = self.value(name)
            unowned = Compare.create_revision(self.lease_prefix + key) == 0
            token = self.history.invoke(name, "put", key, value)
            try:
                response = kv.txn([unowned], [Op.put(key, value)], timeout=OP_TIMEOUT)
            except errors.EtcdError:
                self.history.unknown(token)
                continue
            if response.succeeded:
                self.history.ok(token)
            else:
                self.history.failed(token)

    def _get(self, name: str, kv: KV, key: bytes, timeout: float = OP_TIMEOUT) -> None:
        token = self.history.invoke(name, "get", key)
        try:
            response = kv.get(key, timeout=timeout)
        except errors.EtcdError:
            self.history.failed(token)
            return
        self.history.ok(token, response.kvs[0].value if response.kvs else None)

    def write(self, name: str, key: bytes, value: bytes | None, kv: KV) -> None:
        """Put `value`, or delete the key when `value` is None."""
        token = self.history.invoke(name, "delete" if value is None else "put", key, value)
        try:
            if value is None:
                kv.delete(key, timeout=OP_TIMEOUT)
            else:
                kv.put(key, value, timeout=OP_TIMEOUT)
        except errors.EtcdError:
            self.history.unknown(token)  # it may have applied: the checker allows both
            return
        self.history.ok(token)

    def thread(self, target: Callable[[], None], name: str) -> threading.Thread:
        def guarded() -> None:
            try:
                target()
            except Exception as err:  # noqa: BLE001  # handed to the test, which fails on it
                self.failures.append(err)

        thread = threading.Thread(target=guarded, name=name)
        thread.start()
        return thread


@pytest.fixture
def cluster(etcd_cluster: EtcdCluster) -> Iterator[EtcdCluster]:
    yield etcd_cluster
    etcd_cluster.heal()
    for member in etcd_cluster.members:
        member.client_proxy.unblackhole()
        if not member.is_running:
            member.start()
    etcd_cluster.wait_healthy()


@pytest.mark.slow
def test_leasing_histories_are_linearizable_under_faults(
    cluster: EtcdCluster, etcd_key_prefix: bytes
) -> None:
    """Drops, a restart and a session expiry never make any key's history non-linearizable."""
    lease_prefix = b"/leasing" + etcd_key_prefix
    keys = [etcd_key_prefix + f"k{index}".encode() for index in range(KEYS)]
    workload = Workload(keys, lease_prefix, seed=1)
    first, second, third = cluster.members
    everywhere = cluster.endpoints
    made: list[LeasingKV] = []
    raw_clients: list[Client] = []

    def client(endpoints: list[str]) -> Client:
        made_client = Client(endpoints=endpoints, timeout=OP_TIMEOUT * 2)
        raw_clients.append(made_client)
        return made_client

    def leasing_client(endpoints: list[str], ttl: int, below: object = None) -> LeasingKV:
        kv = leasing.wrap(below or client(endpoints), lease_prefix, ttl=ttl, timeout=10)  # type: ignore[call-overload]  # a proxied Client
        assert isinstance(kv, LeasingKV)
        made.append(kv)
        return kv

    steady = [leasing_client(everywhere, 5), leasing_client(everywhere, 5)]
    # Cut off later, long enough for its lease to expire; its renewals hang meanwhile, so only
    # its serving window (not a noticed session loss) keeps it from answering stale reads.
    stallable = StallableRenewals(client([third.endpoint]))
    victim = leasing_client([third.endpoint], 2, stallable)
    raw = client(everywhere)
    threads = []
    try:
        for index, kv in enumerate([*steady, victim]):
            for copy in range(2):
                chooser = random.Random(workload.seed * 100 + index * 10 + copy)
                name = f"leasing{index}.{copy}"
                # The victim only reads, with short timeouts: its own writes, stuck while it
                # is cut off, would take its keys out of memory, and long waits for the
                # server would leave no time to read what memory still holds.
                plan = (
                    Plan(keys[index::3], 1.0, 0.3)
                    if kv is victim
                    else Plan(keys[index::3], 0.85, OP_TIMEOUT)
                )
                threads.append(
                    workload.thread(workload.leasing_loop(name, kv, chooser, plan), name)
                )
        threads.append(
            workload.thread(lambda: workload.run_raw("raw", raw, random.Random(7)), "raw")
        )
        started = time.monotonic()

        def at(offset: float) -> None:
            workload.stop.wait(max(0.0, started + offset - time.monotonic()))

        at(1.5)
        for member in cluster.members:
            member.client_proxy.drop_connections()
        at(3.0)
        second.stop()
        second.start()
        at(5.0)
        victim_keys = keys[2::3]
        lease = victim.session_lease_id

        def victim_owns_one() -> bool:
            for key in victim_keys:
                victim.get(key)  # acquires it unless backing off (a read changes nothing)
            holders = [raw.get(lease_prefix + key).kvs for key in victim_keys]
            return any(kvs and kvs[0].lease == lease for kvs in holders)

        wait_until(victim_owns_one, timeout=10)
        stallable.stall()
        third.client_proxy.blackhole()
        wait_until(
            lambda: raw.time_to_live(lease, timeout=0.5).ttl == -1,
            timeout=10,
            ignore=(errors.DeadlineExceededError,),  # a try may go to the black-holed member
        )
        for key in victim_keys:  # the victim's reads after these must not see older values
            workload.write("intruder", key, workload.value("intruder"), steady[0])
        at(9.0)
        third.client_proxy.unblackhole()
        stallable.resume()
        wait_until(lambda: victim.stats.session_losses >= 1, timeout=10)
        first.client_proxy.drop_connections()
        at(RUN_SECONDS)
    finally:
        stallable.resume()
        workload.stop.set()
        for thread in threads:
            thread.join(OP_TIMEOUT * 5)
        for kv in made:
            kv.close()
        for made_client in raw_clients:
            made_client.close()
    assert workload.failures == []
    operations = workload.history.operations()
    reads = [op for op in operations if op.kind == "get"]
    summary = (
        f"{len(operations)} operations ({len(reads)} reads, "
        f"{sum(op.returned is None for op in operations)} writes of unknown outcome); "
        f"leasing stats: {[kv.stats for kv in made]}"
    )
    assert len(operations) > 200, summary
    assert len(reads) > 100, summary
    assert sum(kv.stats.hits for kv in made) > 100, summary
    assert sum(kv.stats.revocations for kv in made) > 0, summary
    assert victim.stats.session_losses >= 1, summary
    result = check(operations)
    assert result.decided, result.message
    assert result.ok, result.message
