"""etcd3gw (sync, JSON over HTTP to etcd's grpc-gateway, not grpcio), for bench_peers.py."""

from __future__ import annotations

import importlib
from typing import Any

import _driver

etcd3gw: Any = importlib.import_module("etcd3gw")


class Etcd3gw:
    """`etcd3gw.client(host, port)`: get, put, get_prefix, watch_prefix."""

    def __init__(self, setup: _driver.Setup) -> None:
        self.setup = setup
        self.cli = etcd3gw.client(host=setup.host, port=setup.port)

    def get(self) -> None:
        assert self.cli.get(self.setup.get_key)[0]

    def put(self) -> None:
        self.cli.put(self.setup.put_key, self.setup.value)

    def range(self) -> None:
        for value, meta in self.cli.get_prefix(self.setup.range_prefix):
            meta["key"]  # read, as a user would
            value  # noqa: B018

    def watch(self) -> None:
        setup = self.setup
        events, cancel = self.cli.watch_prefix(setup.watch_prefix, start_revision=setup.watch_start)
        seen = 0
        try:
            for event in events:  # one event at a time, decoded from JSON
                event["kv"]["key"]
                event["kv"].get("value")
                seen += 1
                if seen >= setup.watch_count:
                    break
        finally:
            cancel()

    def close(self) -> None:
        self.cli.session.close()


if __name__ == "__main__":
    _driver.serve(Etcd3gw)
