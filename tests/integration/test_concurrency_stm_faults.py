"""stm() under faults: a member restart while transactions retry; processes and threads at once.

Bank transfers (Go's TestSTMConflict apply) keep the total of the accounts whatever fails.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
from conftest import CLIENT_KINDS, AsyncClientFacade
from stm_kinds import WAIT, StmRunner, in_threads, transfer

from etcd_layers import AsyncClient, Client, errors
from etcd_layers.testing import EtcdServer, wait_until
from etcd_layers.testing.plugin import EtcdClusterFactory


@pytest.mark.parametrize("kind", CLIENT_KINDS)
def test_stm_transfers_survive_a_member_restart(
    etcd_cluster_factory: EtcdClusterFactory, etcd_key_prefix: bytes, kind: str
) -> None:
    """While 4 threads transfer through a namespace, a member stops and restarts: the total holds.

    A call may fail (a commit whose answer was lost is not resent), but no transfer is half done.
    """
    cluster = etcd_cluster_factory(3)
    options: dict[str, Any] = {
        "endpoints": cluster.endpoints,
        "timeout": 5.0,
        **cluster.client_options(),
    }
    client: Client | AsyncClientFacade
    with Client(**options) as checker:
        client = (
            Client(**options)
            if kind == "Client"
            else AsyncClientFacade(lambda: AsyncClient(**options))
        )
        with client:
            runner = StmRunner(client, "namespace", etcd_key_prefix, checker)
            keys = [runner.key(f"account-{i}") for i in range(4)]
            for key in keys:
                runner.kv.put(key, "100")
            commits = {"before": 0, "while_stopped": 0, "after": 0}
            lock = threading.Lock()
            phase = ["before"]
            halfway, restarted = threading.Event(), threading.Event()

            def work(index: int) -> None:
                ends = time.monotonic() + WAIT
                # Bounded in count and time; runs until a few rounds after the restart.
                for round_ in range(5000):
                    if (round_ >= 12 and restarted.is_set()) or time.monotonic() > ends:
                        return
                    if round_ == 3:
                        halfway.set()
                    try:
                        runner.stm(transfer(runner, keys, index, round_), timeout=15.0)
                    except errors.EtcdError:
                        continue
                    with lock:
                        commits[phase[0]] += 1

            def restart(index: int) -> None:
                if index < 4:
                    work(index)
                    return
                assert halfway.wait(timeout=WAIT)
                member = cluster.members[1]
                member.stop()
                phase[0] = "while_stopped"
                wait_until(lambda: commits["while_stopped"] >= 4, timeout=WAIT)
                member.start()
                phase[0] = "after"
                restarted.set()

            in_threads(5, restart)
            total = sum(int(runner.kv.get(key).kvs[0].value) for key in keys)
    assert total == 400
    assert commits["while_stopped"] >= 4
    assert commits["after"] >= 1


TRANSFER_SCRIPT = """
import json, random, sys
from etcd_layers import Client
from etcd_layers.concurrency import stm

options, prefix = json.loads(sys.argv[1]), sys.argv[2].encode()
index, count = int(sys.argv[3]), int(sys.argv[4])
keys = [prefix + b"account-%d" % i for i in range(4)]
chooser = random.Random(index)
attempts = 0
with Client(**options) as cli:
    for _ in range(count):
        source, target = chooser.sample(keys, 2)
        amount = chooser.randrange(1, 5)

        def apply(tx, source=source, target=target, amount=amount):
            global attempts
            attempts += 1
            src, dst = int(tx.get(source)), int(tx.get(target))
            tx.put(source, str(src - amount))
            tx.put(target, str(dst + amount))

        stm(cli, apply, timeout=60)
print(attempts)
"""


def test_stm_transfers_from_processes_and_threads_keep_the_total(
    etcd_server: EtcdServer, etcd_client: Client, etcd_key_prefix: bytes
) -> None:
    """3 processes and 2 threads (through a namespace) transfer among 4 accounts: total kept."""
    keys = [etcd_key_prefix + f"account-{i}".encode() for i in range(4)]
    for key in keys:
        etcd_client.put(key, "100")
    options = {"endpoints": etcd_server.endpoints, **etcd_server.client_options()}
    processes = [
        subprocess.Popen(  # our own interpreter and script, no shell
            [
                sys.executable,
                "-c",
                TRANSFER_SCRIPT,
                json.dumps({k: str(v) if k != "endpoints" else v for k, v in options.items()}),
                etcd_key_prefix.decode(),
                str(index),
                "15",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for index in range(3)
    ]
    try:
        runner = StmRunner(etcd_client, "namespace", etcd_key_prefix, etcd_client)
        names = [runner.key(f"account-{i}") for i in range(4)]

        def work(index: int) -> None:
            for round_ in range(15):
                runner.stm(transfer(runner, names, index, seed=1000 + index * 100 + round_))

        in_threads(2, work)
        outputs = [process.communicate(timeout=WAIT * 2)[0] for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert [process.returncode for process in processes] == [0, 0, 0]
    assert all(int(output) >= 15 for output in outputs)
    assert sum(int(etcd_client.get(key).kvs[0].value) for key in keys) == 400
