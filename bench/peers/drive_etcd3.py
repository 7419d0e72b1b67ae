"""etcd3 (python-etcd3) or its maintained fork etcd-sdk-python (`pyetcd`), for bench_peers.py.

Run in that library's venv: `python drive_etcd3.py etcd3` or `python drive_etcd3.py pyetcd`
(the two share their API). Both are sync grpcio clients.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import _driver


class Etcd3:
    """`etcd3.client(host, port)`: get, put, get_prefix, watch_prefix_response."""

    def __init__(self, setup: _driver.Setup, module: Any) -> None:
        self.setup = setup
        self.cli = module.client(host=setup.host, port=setup.port)

    def get(self) -> None:
        value, _meta = self.cli.get(self.setup.get_key)
        assert value is not None

    def put(self) -> None:
        self.cli.put(self.setup.put_key, self.setup.value)

    def range(self) -> None:
        for value, meta in self.cli.get_prefix(self.setup.range_prefix):
            meta.key  # noqa: B018 (read, as a user would)
            value  # noqa: B018

    def watch(self) -> None:
        setup = self.setup
        responses, cancel = self.cli.watch_prefix_response(
            setup.watch_prefix, start_revision=setup.watch_start
        )
        seen = 0
        try:
            for response in responses:
                for event in response.events:
                    event.key  # noqa: B018
                    event.value  # noqa: B018
                    seen += 1
                if seen >= setup.watch_count:
                    break
        finally:
            cancel()

    def close(self) -> None:
        self.cli.close()


if __name__ == "__main__":
    library = importlib.import_module(sys.argv[1] if len(sys.argv) > 1 else "etcd3")
    _driver.serve(lambda setup: Etcd3(setup, library))
