"""`Compare.key_exists` / `Compare.key_missing` (Go's clientv3util) against a real etcd."""

from __future__ import annotations

import pytest

from etcd_layers import Client, Compare, Op, namespace
from etcd_layers.base import GetResponse


@pytest.fixture
def etcd_client(both_clients: Client) -> Client:
    return both_clients


@pytest.mark.parametrize("in_namespace", [False, True])
def test_key_missing_then_key_exists_guard_a_create_and_an_update(
    etcd_client: Client, etcd_key_prefix: bytes, in_namespace: bool
) -> None:
    kv = namespace.wrap(etcd_client, etcd_key_prefix) if in_namespace else etcd_client
    key = b"k" if in_namespace else etcd_key_prefix + b"k"
    create = kv.txn([Compare.key_missing(key)], [Op.put(key, "v1")], [])
    assert create.succeeded
    again = kv.txn([Compare.key_missing(key)], [Op.put(key, "v2")], [Op.get(key)])
    assert not again.succeeded  # it exists now: the create does not happen twice
    (read,) = again.responses
    assert isinstance(read, GetResponse)
    assert read.kvs[0].value == b"v1"
    update = kv.txn([Compare.key_exists(key)], [Op.put(key, "v3")], [])
    assert update.succeeded
    kv.delete(key)
    gone = kv.txn([Compare.key_exists(key)], [Op.put(key, "v4")], [])
    assert not gone.succeeded
    assert kv.get(key).kvs == []


def test_the_helpers_are_go_version_compares() -> None:
    assert Compare.key_exists("k") == (Compare.version("k") > 0)
    assert Compare.key_missing("k") == (Compare.version("k") == 0)
