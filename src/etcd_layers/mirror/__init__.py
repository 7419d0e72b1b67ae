"""Paginated reads at one revision, Go's Syncer, and Mirror: a live local copy of a prefix.

```python
from etcd_layers import Client, mirror

with Client(endpoints=["127.0.0.1:2379"]) as cli:
    for page in mirror.get_pages(cli, "config/", page_size=1000):   # one snapshot, in pages
        print(page.header.revision, [kv.key for kv in page.kvs])
    with mirror.Mirror(cli, "config/") as m:                          # load, then follow
        revision = cli.put("config/db", "postgres://").header.revision
        m.wait(revision)                                              # read-your-writes
        assert m.get(b"config/db") == b"postgres://"
        unsubscribe = m.subscribe(lambda events: print(events))
```

Everything works on any KV + Watcher speaker (a namespace, any layer stack). For an
`AsyncClient` (or an async layer), `get_pages` and `Syncer.sync_base` return async iterators,
and `AsyncMirror` is the Mirror: `async with mirror.AsyncMirror(acli, "config/") as m:
await m.wait(revision)`.
"""

from __future__ import annotations

from etcd_layers.mirror._async_mirror import AsyncMirror
from etcd_layers.mirror._mirror import Mirror
from etcd_layers.mirror._read import Syncer, get_pages

__all__ = ["AsyncMirror", "Mirror", "Syncer", "get_pages"]
