"""A service registry in Go's naming/endpoints layout: register, list and watch endpoints.

```python
from etcd_layers import Client
from etcd_layers.concurrency import Session
from etcd_layers.naming import Endpoint, EndpointManager, UpdateOp

with Client(endpoints=["127.0.0.1:2379"]) as cli, Session(cli, ttl=10) as session:
    em = EndpointManager(cli, "services/api")
    em.register("services/api/node-1", Endpoint("10.0.0.1:8080"), session)  # gone with the session
    print(em.list())                     # {"services/api/node-1": Endpoint(addr="10.0.0.1:8080")}
    with em.watch() as updates:          # the current set first, then each change
        for batch in updates:
            for update in batch:
                print(update.op is UpdateOp.ADD, update.key, update.endpoint.addr)
            break
```

Keys are `target + "/" + name`; values are byte for byte what Go's `json.Marshal` writes
for `internal.Update` (`{"Op":0,"Addr":"10.0.0.1:8080","Metadata":null}`), so Go's gRPC
resolver (`etcd:///services/api`) reads what Python registers, and the reverse.
`AsyncEndpointManager` is the asyncio form.
"""

from __future__ import annotations

from etcd_layers.naming._async_manager import AsyncEndpointManager, AsyncEndpointWatch
from etcd_layers.naming._manager import EndpointManager, EndpointWatch
from etcd_layers.naming._values import Endpoint, Update, UpdateOp

__all__ = [
    "AsyncEndpointManager",
    "AsyncEndpointWatch",
    "Endpoint",
    "EndpointManager",
    "EndpointWatch",
    "Update",
    "UpdateOp",
]
