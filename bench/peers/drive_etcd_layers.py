"""Our sync `Client` through its public API, for bench_peers.py (run with the project's venv)."""

from __future__ import annotations

import _driver

from etcd_layers import Client


class Ours:
    """`etcd_layers.Client`: get, put, a prefix get, a watch from a revision."""

    def __init__(self, setup: _driver.Setup) -> None:
        self.setup = setup
        self.cli = Client([setup.endpoint])

    def get(self) -> None:
        self.cli.get(self.setup.get_key).kvs[0].value  # noqa: B018 (read, as a user would)

    def put(self) -> None:
        self.cli.put(self.setup.put_key, self.setup.value)

    def range(self) -> None:
        for kv in self.cli.get(self.setup.range_prefix, prefix=True).kvs:
            kv.key  # noqa: B018
            kv.value  # noqa: B018

    def watch(self) -> None:
        setup = self.setup
        seen = 0
        with self.cli.watch(
            setup.watch_prefix, prefix=True, start_revision=setup.watch_start
        ) as stream:
            for response in stream:
                for event in response.events:
                    event.kv.key  # noqa: B018
                    event.kv.value  # noqa: B018
                    seen += 1
                if seen >= setup.watch_count:
                    break

    def close(self) -> None:
        self.cli.close()


if __name__ == "__main__":
    _driver.serve(Ours)
