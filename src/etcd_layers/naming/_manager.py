"""EndpointManager: Go's naming/endpoints Manager over any sync KV + Watcher speaker."""

from __future__ import annotations

import queue
from collections.abc import Iterable, Iterator
from typing import Final

from etcd_layers.base.checks import check_timeout
from etcd_layers.base.deadline import Deadline
from etcd_layers.base.keys import StrOrBytes
from etcd_layers.base.protocols import KV
from etcd_layers.base.responses import Event, TxnResponse
from etcd_layers.errors import CanceledError
from etcd_layers.mirror import Mirror
from etcd_layers.naming._plan import lease_of, plan_update
from etcd_layers.naming._values import (
    Endpoint,
    Update,
    UpdateOp,
    check_target,
    list_of,
    prefix_of,
    updates_of,
)

__all__ = ["EndpointManager", "EndpointWatch"]

_POLL: Final = 1.0  # seconds between looks at whether the mirror under a watch has stopped


class EndpointManager:
    """Register and discover the endpoints of a target, as Go's `endpoints.NewManager`.

    ```python
    em = EndpointManager(cli, "services/api")
    em.add_endpoint("services/api/node-1", Endpoint("10.0.0.1:8080"))
    em.list()                       # {"services/api/node-1": Endpoint("10.0.0.1:8080")}
    with em.watch() as updates:     # first the current set, then each change
        for batch in updates: ...
    ```

    Keys are `target + "/" + name`, values Go's JSON, so Go's gRPC resolver
    (`etcd:///services/api`) sees what Python registers, and the reverse.
    """

    def __init__(self, client: KV, target: StrOrBytes) -> None:
        """Manage `target`'s endpoints through `client` (any KV + Watcher speaker).

        Raises:
            TypeError: `client` speaks no KV, or `target` is neither str nor bytes.
            ValueError: an empty `target`.
        """
        if not callable(getattr(client, "do", None)):
            raise TypeError(f"client must speak the KV Protocol, not {type(client).__name__}")
        self._client = client
        self._target = check_target(target)

    @property
    def target(self) -> str:
        """The target whose endpoints this manages."""
        return self._target

    def update(
        self, updates: Iterable[Update], *, lease: int = 0, timeout: float | None = None
    ) -> TxnResponse:
        """Apply several updates in one txn, atomically (Go's `Manager.Update`).

        Args:
            updates: ADDs (stored under their key) and DELETEs.
            lease: the lease every ADD is attached to (0: none).
            timeout: seconds for the call; None for the client's default.

        Raises:
            TypeError, ValueError: a key outside `target + "/"`, a bad update (before I/O).
        """
        ops = plan_update(self._target, updates, lease)
        return self._client.txn(success=ops, timeout=check_timeout(timeout))

    def add_endpoint(
        self,
        key: StrOrBytes,
        endpoint: Endpoint,
        *,
        lease: int = 0,
        timeout: float | None = None,
    ) -> TxnResponse:
        """Store `endpoint` under `key` (which must start with `target + "/"`)."""
        return self.update(
            [Update(UpdateOp.ADD, _text(key), endpoint)], lease=lease, timeout=timeout
        )

    def delete_endpoint(self, key: StrOrBytes, *, timeout: float | None = None) -> TxnResponse:
        """Remove the endpoint stored under `key`."""
        return self.update([Update(UpdateOp.DELETE, _text(key), Endpoint(""))], timeout=timeout)

    def register(
        self,
        key: StrOrBytes,
        endpoint: Endpoint,
        session: object,
        *,
        timeout: float | None = None,
    ) -> TxnResponse:
        """Store `endpoint` under `key`, attached to `session`'s lease.

        A crashed process stops renewing its session, so its endpoints disappear from
        discovery within the session's TTL; closing the session removes them at once.

        Args:
            key: the endpoint's key, under `target + "/"`.
            endpoint: the endpoint to store.
            session: a `concurrency.Session` (anything with an int `lease_id`).
            timeout: seconds for the call; None for the client's default.
        """
        return self.add_endpoint(key, endpoint, lease=lease_of(session), timeout=timeout)

    def list(self, *, timeout: float | None = None) -> dict[str, Endpoint]:
        """Return every endpoint of the target, by key (values Go cannot decode left out).

        Go reads serializably here; this reads linearizably, so a list right after an add
        on another member sees it.
        """
        response = self._client.get(
            prefix_of(self._target), prefix=True, timeout=check_timeout(timeout)
        )
        return list_of(response.kvs)

    def watch(self, *, timeout: float | None = None) -> EndpointWatch:
        """Follow the target's endpoints: the current set first, then each change.

        The first batch is the current set as ADDs (possibly empty); each later batch the
        changes of one watch response. It never misses a change: a compaction past the
        watch's revision reloads and reports the difference.

        Args:
            timeout: seconds for the initial load and the watch's start.
        """
        return EndpointWatch(self._client, self._target, check_timeout(timeout))


def _text(key: StrOrBytes) -> str:
    return key.decode() if isinstance(key, bytes) else key  # anything else: check_key refuses


class EndpointWatch:
    """A running watch of a target's endpoints: iterate it for batches of Updates.

    `next(timeout)` returns the next batch (builtin TimeoutError when none came); `cancel()`
    or leaving the `with` block ends it, after which iteration stops and `next()` raises
    `CanceledError`.
    """

    def __init__(self, client: KV, target: str, timeout: float | None) -> None:
        self._batches: queue.SimpleQueue[list[Update] | None] = queue.SimpleQueue()
        self._mirror = Mirror(client, prefix_of(target), timeout=timeout)
        self._ended = False
        self._started = False
        self._mirror.subscribe(self._on_events, replay=True)

    def _on_events(self, events: list[Event]) -> None:
        updates = updates_of(events)
        if updates or not self._started:  # the first batch (the current set) even if empty
            self._batches.put(updates)
        self._started = True

    def next(self, timeout: float | None = None) -> list[Update]:
        """Return the next batch of updates.

        Raises:
            TimeoutError: the builtin, when nothing came within `timeout`.
            CanceledError: the watch has ended.
        """
        deadline = Deadline(check_timeout(timeout))
        while True:
            if self._ended:
                raise CanceledError("the endpoint watch has ended")
            try:
                batch = self._batches.get(timeout=deadline.left_or(_POLL))
                break
            except queue.Empty:
                if self._mirror.closed:  # the client was closed under it
                    self._ended = True
                elif deadline.expired():
                    raise TimeoutError("no endpoint update within the timeout") from None
        if batch is None:
            self._ended = True
            raise CanceledError("the endpoint watch has ended")
        return batch

    def __iter__(self) -> Iterator[list[Update]]:
        while True:
            try:
                yield self.next()
            except CanceledError:
                return

    def cancel(self) -> None:
        """End the watch (idempotent)."""
        self._mirror.close()
        self._batches.put(None)

    def __enter__(self) -> EndpointWatch:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.cancel()
