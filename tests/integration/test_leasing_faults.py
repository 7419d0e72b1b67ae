"""The leasing layer on a 3-member cluster with faults: cut-off owners, restarts, expiry.

Each leasing client talks to one member only, through that member's fault proxy, so black-
holing the proxy cuts that client off while the rest of the cluster carries on.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import wrapt

from etcd_layers import Client, Compare, Op, SortOrder, SortTarget, errors, leasing
from etcd_layers.leasing import LeasingKV
from etcd_layers.testing import EtcdCluster, Member, wait_until

TIMEOUT = 10.0


class StallableRenewals(wrapt.ObjectProxy):  # type: ignore[type-arg]  # wraps a Client
    """A client whose lease renewals can be made to hang, like a paused renewal thread.

    While stalled, `keep_alive_once` blocks until `resume()`: the leasing session thread then
    cannot notice that its lease is gone, and only the serving window protects readers.
    """

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
            self._self_resumed.wait(TIMEOUT * 3)
        return self.__wrapped__.keep_alive_once(lease_id, timeout=timeout)


class Clients:
    """Makes clients pinned to one member, and leasing clients on them; closes them all."""

    def __init__(self, lease_prefix: bytes) -> None:
        self.lease_prefix = lease_prefix
        self._clients: list[Client] = []
        self._leasing: list[LeasingKV] = []

    def raw(self, member: Member) -> Client:
        client = Client(endpoints=[member.endpoint], timeout=TIMEOUT, dial_timeout=TIMEOUT)
        self._clients.append(client)
        return client

    def leasing(self, member: Member, *, ttl: int = 30, below: Any = None) -> LeasingKV:
        client = self.raw(member) if below is None else below
        kv = leasing.wrap(client, self.lease_prefix, ttl=ttl, timeout=TIMEOUT)
        assert isinstance(kv, LeasingKV)
        self._leasing.append(kv)
        return kv

    def close(self) -> None:
        for kv in self._leasing:
            kv.close()
        for client in self._clients:
            client.close()


@pytest.fixture
def cluster(etcd_cluster: EtcdCluster, clients: Clients) -> Iterator[EtcdCluster]:
    """The module's cluster, healed and whole again after each test (before `clients` close)."""
    yield etcd_cluster
    etcd_cluster.heal()
    for member in etcd_cluster.members:
        member.client_proxy.unblackhole()
        if not member.is_running:
            member.start()
    etcd_cluster.wait_healthy()


@pytest.fixture
def clients(etcd_key_prefix: bytes) -> Iterator[Clients]:
    made = Clients(b"/leasing" + etcd_key_prefix)
    yield made
    made.close()


@pytest.fixture
def p(etcd_key_prefix: bytes) -> Callable[[str], bytes]:
    return lambda name: etcd_key_prefix + name.encode()


def dropping(member: Member, times: int) -> threading.Thread:
    """Start a thread that drops every connection to `member`'s client port `times` times."""

    def run() -> None:
        for _ in range(times):
            member.client_proxy.drop_connections()
            time.sleep(0.002)  # fault injection pacing, not a wait for a condition

    thread = threading.Thread(target=run, name="drop-connections")
    thread.start()
    return thread


def agree(kv: LeasingKV, raw: Client, key: bytes) -> bool:
    """Whether the leasing client and the server give the same kvs for `key`.

    The first pair of reads that both succeed decides; failed reads (a cluster still busy
    electing after the faults, on a loaded machine) are tried again, a bounded number of times.
    """
    last: errors.EtcdError | None = None
    for _ in range(5):
        try:
            return list(kv.get(key, timeout=3).kvs) == list(raw.get(key, timeout=3).kvs)
        except errors.EtcdError as err:
            last = err
    raise AssertionError(f"no read of {key!r} succeeded") from last


def wait_expired(raw: Client, lease_key: bytes) -> None:
    """Wait until the server deleted `lease_key` (its session lease expired)."""
    wait_until(
        lambda: raw.get(lease_key).kvs == [], timeout=TIMEOUT, message=f"{lease_key!r} expires"
    )


# --- cut off from the cluster -----------------------------------------------------------------


def test_leasing_disconnected_get_is_served_from_memory(
    cluster: EtcdCluster, clients: Clients, p: Callable[[str], bytes]
) -> None:
    """Go's TestLeasingDisconnectedGet: an owned key is answered with its member unreachable."""
    first = cluster.members[0]
    kv = clients.leasing(first)
    clients.raw(cluster.members[1]).put(p("cached"), "abc")
    kv.get(p("cached"))
    first.client_proxy.blackhole()
    assert kv.get(p("cached"), timeout=1).kvs[0].value == b"abc"
    assert kv.get(p("cached"), serializable=True, timeout=1).kvs[0].value == b"abc"


def test_leasing_options_and_txns_of_owned_keys_are_answered_while_cut_off(
    cluster: EtcdCluster, clients: Clients, p: Callable[[str], bytes]
) -> None:
    """Go's TestLeasingGetWithOpts/TxnOwnerGet/TxnOwnerIf/OwnerPutResponse, member unreachable."""
    first = cluster.members[0]
    kv = clients.leasing(first)
    raw = clients.raw(cluster.members[1])
    created = raw.put(p("k"), "abc").header.revision
    kv.get(p("k"))
    kv.get(p("other"))
    put = kv.put(p("k"), "def")  # the owner's own write, then cut off
    first.client_proxy.blackhole()
    for options in (
        {"keys_only": True},
        {"limit": 1},
        {"min_create_revision": created},
        {"min_mod_revision": put.header.revision},
        {"sort_order": SortOrder.DESCEND, "sort_target": SortTarget.MOD},
        {"serializable": True},
    ):
        response = kv.get(p("k"), timeout=1, **options)
        assert [entry.key for entry in response.kvs] == [p("k")], options
    cached = kv.get(p("k"), timeout=1).kvs[0]
    assert (cached.mod_revision, cached.version) == (put.header.revision, 2)
    then = kv.txn(
        [Compare.create_revision(p("k")) == created, Compare.version(p("other")) == 0],
        [Op.get(p("k")), Op.get(p("other"))],
        [Op.put(p("k"), "1")],
        timeout=1,
    )
    assert then.succeeded
    assert then.header.revision >= put.header.revision
    otherwise = kv.txn(
        [Compare.value(p("k")) > b"zzz"], [Op.put(p("k"), "1")], [Op.get(p("k"))], timeout=1
    )
    assert not otherwise.succeeded
    assert otherwise.responses[0].kvs[0].value == b"def"  # type: ignore[union-attr]


def test_leasing_disconnected_get_of_a_leased_key_times_out(
    cluster: EtcdCluster, clients: Clients, p: Callable[[str], bytes]
) -> None:
    """Go's TestLeasingGetNoLeaseTTL: a key with its own lease needs the server, so it waits."""
    first = cluster.members[0]
    kv = clients.leasing(first)
    raw = clients.raw(cluster.members[1])
    lease = raw.grant(60).id
    raw.put(p("k"), "v", lease=lease)
    assert len(kv.get(p("k")).kvs) == 1
    first.client_proxy.blackhole()
    with pytest.raises(errors.DeadlineExceededError):
        kv.get(p("k"), timeout=1)
    raw.revoke(lease)


def test_leasing_serializable_get_without_quorum(
    cluster: EtcdCluster, clients: Clients, p: Callable[[str], bytes]
) -> None:
    """Go's TestLeasingGetSerializable: a member without quorum still answers serializable gets."""
    first = cluster.members[0]
    kv = clients.leasing(first)
    clients.raw(cluster.members[1]).put(p("cached"), "abc")
    kv.get(p("cached"))
    cluster.isolate(first)
    assert kv.get(p("uncached"), serializable=True, timeout=2).kvs == []  # no acquire attempt
    assert kv.get(p("cached"), serializable=True, timeout=1).kvs[0].value == b"abc"
    assert kv.stats.cached_keys == 1


@pytest.mark.parametrize("write", ["owner put", "owner delete", "non-owner put"])
def test_leasing_write_while_cut_off_fails_and_memory_stays_true(
    cluster: EtcdCluster, clients: Clients, p: Callable[[str], bytes], write: str
) -> None:
    """Go's TestLeasing{Owner,NonOwner}{Put,Delete}Error: the write fails; memory never lies."""
    first = cluster.members[0]
    kv = clients.leasing(first)
    raw = clients.raw(cluster.members[1])
    raw.put(p("k"), "before")
    if write.startswith("owner"):
        kv.get(p("k"))
    first.client_proxy.blackhole()
    call: Callable[[], object] = (
        (lambda: kv.delete(p("k"), timeout=0.5))
        if write.endswith("delete")
        else (lambda: kv.put(p("k"), "after", timeout=0.5))
    )
    with pytest.raises(errors.DeadlineExceededError):
        call()
    first.client_proxy.unblackhole()
    assert agree(kv, raw, p("k"))


def test_leasing_writer_gives_up_on_an_unreachable_owner_at_its_deadline(
    cluster: EtcdCluster, clients: Clients, p: Callable[[str], bytes]
) -> None:
    """Go's TestLeasingTxnCancel: the owner cannot let go, so the writer's txn times out."""
    first, second = cluster.members[0], cluster.members[1]
    owner, writer = clients.leasing(first), clients.leasing(second)
    owner.get(p("k"))
    first.client_proxy.blackhole()
    with pytest.raises(errors.DeadlineExceededError):
        writer.txn(success=[Op.put(p("k"), "v")], timeout=0.5)
    assert clients.raw(second).get(p("k")).kvs == []


# --- reconnects, restarts and compaction ------------------------------------------------------


def test_leasing_owner_lets_go_through_a_choppy_connection(
    cluster: EtcdCluster, clients: Clients, p: Callable[[str], bytes]
) -> None:
    """Go's TestLeasingReconnectOwnerRevoke: the revoke completes and the owner reads it."""
    first, second = cluster.members[0], cluster.members[1]
    owner, writer = clients.leasing(first), clients.leasing(second)
    owner.get(p("k"))
    chop = dropping(first, 30)
    try:
        started = time.monotonic()
        writer.put(p("k"), "v", timeout=15)
        assert time.monotonic() - started < 15
    finally:
        chop.join(TIMEOUT)
    assert owner.get(p("k"), timeout=15).kvs[0].value == b"v"


def test_leasing_owner_lets_go_after_a_restart_and_a_compaction(
    cluster: EtcdCluster, clients: Clients, p: Callable[[str], bytes]
) -> None:
    """Go's TestLeasingReconnectOwnerRevokeCompact: a compacted watch drops memory, not writers."""
    first, second = cluster.members[0], cluster.members[1]
    owner, writer = clients.leasing(first), clients.leasing(second)
    raw = clients.raw(second)
    owner.get(p("k"))
    first.stop()
    raw.put(p("a"), "123")
    latest = raw.put(p("a"), "123").header.revision
    raw.compact(latest)
    first.start()
    writer.put(p("k"), "v", timeout=TIMEOUT)
    assert owner.get(p("k"), timeout=TIMEOUT).kvs[0].value == b"v"


def test_leasing_owner_writes_through_dropped_connections_keep_memory_true(
    cluster: EtcdCluster, clients: Clients, p: Callable[[str], bytes]
) -> None:
    """Go's TestLeasingReconnectOwnerConsistency: failed writes never leave memory wrong."""
    first = cluster.members[0]
    kv = clients.leasing(first)
    raw = clients.raw(cluster.members[1])
    kv.put(p("k"), "x")
    kv.put(p("kk"), "y")
    kv.get(p("k"))
    chooser = random.Random(5)
    writes: list[Callable[[str], object]] = [
        lambda v: kv.put(p("k"), v),
        lambda v: kv.delete(p("k")),
        lambda v: kv.txn(success=[Op.get(p("k")), Op.delete(p("k"))]),
        lambda v: kv.txn(success=[Op.get(p("k")), Op.put(p("k"), v)]),
        lambda v: kv.do(Op.put(p("k"), v)),
        lambda v: kv.do(Op.delete(p("k"))),
        lambda v: kv.delete(p("k"), prefix=True),
    ]
    for index in range(10):
        chop = dropping(first, 20)
        try:
            chooser.choice(writes)(str(index))
        except errors.EtcdError:
            pass  # an unknown outcome is allowed; a wrong memory is not
        finally:
            chop.join(TIMEOUT)
        assert agree(kv, raw, p("k"))


def test_leasing_read_only_txn_survives_dropped_connections(
    cluster: EtcdCluster, clients: Clients, p: Callable[[str], bytes]
) -> None:
    """Go's TestLeasingReconnectTxn: a txn of owned keys needs no connection at all."""
    first = cluster.members[0]
    kv = clients.leasing(first)
    kv.get(p("k"))
    chop = dropping(first, 10)
    try:
        response = kv.txn([Compare.version(p("k")) == 0], [Op.get(p("k"))])
    finally:
        chop.join(TIMEOUT)
    assert response.succeeded


def test_leasing_gets_through_dropped_connections_stay_consistent(
    cluster: EtcdCluster, clients: Clients, p: Callable[[str], bytes]
) -> None:
    """Go's TestLeasingReconnectNonOwnerGet: gets that fail mid-acquire leave no stale memory."""
    first = cluster.members[0]
    kv = clients.leasing(first)
    raw = clients.raw(cluster.members[1])
    for index in range(0, 8, 2):
        kv.put(p(f"k-{index}"), str(index))
    attempted = 0
    for index in range(8):
        chop = dropping(first, 10)
        attempted += 1
        try:
            kv.get(p(f"k-{index}"))
        except errors.EtcdError:
            break
        finally:
            chop.join(TIMEOUT)
    for index in range(attempted):
        assert agree(kv, raw, p(f"k-{index}"))


# --- session expiry ---------------------------------------------------------------------------


def test_leasing_session_expiry_clears_memory_and_a_new_session_takes_over(
    cluster: EtcdCluster, clients: Clients, p: Callable[[str], bytes]
) -> None:
    """Go's TestLeasingSessionExpire: after expiry a writer proceeds and the owner reads it."""
    first, second = cluster.members[0], cluster.members[1]
    owner, writer = clients.leasing(first, ttl=2), clients.leasing(second)
    raw = clients.raw(second)
    owner.get(p("abc"))
    first.client_proxy.blackhole()
    wait_expired(raw, clients.lease_prefix + p("abc"))
    with pytest.raises(errors.DeadlineExceededError):
        owner.get(p("abc"), timeout=0.5)  # not answered from memory any more
    first.client_proxy.unblackhole()
    writer.put(p("abc"), "def")
    assert owner.get(p("abc"), timeout=TIMEOUT).kvs[0].value == b"def"
    wait_until(lambda: owner.stats.session_losses >= 1, timeout=TIMEOUT)


def test_leasing_calls_during_session_expiry_fail_at_their_deadline(
    cluster: EtcdCluster, clients: Clients, p: Callable[[str], bytes]
) -> None:
    """Go's TestLeasingSessionExpireCancel: no call hangs past its deadline while cut off."""
    first, second = cluster.members[0], cluster.members[1]
    kv = clients.leasing(first, ttl=2)
    kv.get(p("abc"))
    first.client_proxy.blackhole()
    wait_expired(clients.raw(second), clients.lease_prefix + p("abc"))
    calls: list[Callable[[], object]] = [
        lambda: kv.get(p("abc"), timeout=0.5),
        lambda: kv.delete(p("abc"), timeout=0.5),
        lambda: kv.put(p("abc"), "v", timeout=0.5),
        lambda: kv.txn(success=[Op.get(p("abc"))], timeout=0.5),
        lambda: kv.do(Op.put(p("abc"), "v"), timeout=0.5),
        lambda: kv.do(Op.delete(p("abc")), timeout=0.5),
        lambda: kv.do(Op.get(p("abc")), timeout=0.5),
        lambda: kv.do(Op.txn(success=[Op.get(p("abc"))]), timeout=0.5),
    ]
    for index, call in enumerate(calls):
        started = time.monotonic()
        with pytest.raises(errors.DeadlineExceededError):
            call()
        assert time.monotonic() - started < 3, index


def test_leasing_stops_serving_before_its_lease_can_expire(
    cluster: EtcdCluster, clients: Clients, p: Callable[[str], bytes]
) -> None:
    """etcd issue 19091: a cut-off owner must stop answering before another writer can write.

    The owner's renewals hang (as if its renewal thread were paused), so it never learns its
    lease is gone; it keeps reading while cut off, and another client's write goes through
    once the lease expired on the server. No read the owner answered may have started after
    that write returned, and its last answer from memory comes before the lease expired.
    """
    first, second = cluster.members[0], cluster.members[1]
    stallable = StallableRenewals(clients.raw(first))
    owner, writer = clients.leasing(first, ttl=3, below=stallable), clients.leasing(second)
    raw = clients.raw(second)
    owner.put(p("k"), "abc")
    owner.get(p("k"))
    answered: list[tuple[float, bytes]] = []
    attempts: list[float] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            started = time.monotonic()
            attempts.append(started)
            try:
                value = owner.get(p("k"), timeout=0.2).kvs[0].value
            except errors.DeadlineExceededError:
                continue
            answered.append((started, value))

    stallable.stall()
    first.client_proxy.blackhole()
    reader = threading.Thread(target=read, name="cut-off-reader")
    reader.start()
    try:
        wait_expired(raw, clients.lease_prefix + p("k"))
        expired = time.monotonic()
        writer.put(p("k"), "def", timeout=TIMEOUT)
        written = time.monotonic()
        # Let the owner try a few more reads after the write: a broken one would answer them.
        wait_until(lambda: sum(t > written for t in attempts) >= 3, timeout=TIMEOUT)
    finally:
        stop.set()
        reader.join(TIMEOUT)
        stallable.resume()
    assert answered, "the owner answered nothing from memory before the cut-off took effect"
    assert all(value == b"abc" for _, value in answered)
    assert max(started for started, _ in answered) < expired < written
    first.client_proxy.unblackhole()
    assert owner.get(p("k"), timeout=TIMEOUT).kvs[0].value == b"def"


def test_leasing_wrap_times_out_without_a_reachable_cluster(
    cluster: EtcdCluster, clients: Clients
) -> None:
    """wrap() waits for its session lease at most `timeout`, then raises DeadlineExceededError."""
    first = cluster.members[0]
    raw = clients.raw(first)
    first.client_proxy.blackhole()
    started = time.monotonic()
    with pytest.raises(errors.DeadlineExceededError):
        leasing.wrap(raw, clients.lease_prefix, timeout=1)
    assert time.monotonic() - started < 3


def test_leasing_any_call_kind_uses_one_deadline(
    cluster: EtcdCluster, clients: Clients, p: Callable[[str], bytes]
) -> None:
    """A write waiting on a cut-off owner through several round trips stops at one deadline."""
    first, second = cluster.members[0], cluster.members[1]
    owner, writer = clients.leasing(first), clients.leasing(second)
    for name in ("a", "b", "c"):
        owner.get(p(name))
    first.client_proxy.blackhole()
    started = time.monotonic()
    options: dict[str, Any] = {"prefix": True, "timeout": 1}
    with pytest.raises(errors.DeadlineExceededError):
        writer.delete(p(""), **options)
    assert time.monotonic() - started < 3
