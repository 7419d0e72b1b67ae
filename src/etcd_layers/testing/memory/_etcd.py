"""MemoryEtcd: the in-memory etcd's shell, owning the store, its lock, its clock and its clients."""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Protocol

from google.protobuf.message import Message

from etcd_layers._compat import Self
from etcd_layers.base.checks import check_timeout
from etcd_layers.base.transport import rpc_pb2
from etcd_layers.errors import ClosedError
from etcd_layers.testing.memory._clients import memory_async_client, memory_client
from etcd_layers.testing.memory._clock import ManualClock, monotonic
from etcd_layers.testing.memory._errors import UNIMPLEMENTED, store_error
from etcd_layers.testing.memory._server import Server
from etcd_layers.testing.memory._service import UNARY
from etcd_layers.testing.memory._store import Store

if TYPE_CHECKING:
    from etcd_layers.base.async_client import AsyncClient
    from etcd_layers.base.client import Client

# etcd's --experimental-watch-progress-notify-interval default: seconds between the progress
# notifications of watches that asked for them.
PROGRESS_NOTIFY_INTERVAL = 600.0
IN_PROCESS_ADDRESS = "memory:2379"  # the endpoint of in-process clients (never resolved)


class _Ended(Protocol):
    @property
    def ended(self) -> bool: ...


class MemoryEtcd:
    """An in-memory etcd 3.5: the same answers as a real one-member cluster, with no process.

    Args:
        clock: a ManualClock to move time by hand (leases expire only when it passes their
            deadline); None follows real time (a background thread expires leases).
        min_lease_ttl: the smallest TTL a lease gets, in seconds (etcd's default is 2).

    Thread-safe: one lock serializes every request, as etcd's apply loop does.
    """

    def __init__(self, clock: ManualClock | None = None, min_lease_ttl: int = 2) -> None:
        if clock is not None and not isinstance(clock, ManualClock):
            raise TypeError(f"clock must be a ManualClock or None, not {type(clock).__name__}")
        if isinstance(min_lease_ttl, bool) or not isinstance(min_lease_ttl, int):
            raise TypeError(f"min_lease_ttl must be int, not {type(min_lease_ttl).__name__}")
        if min_lease_ttl < 1:
            raise ValueError(f"min_lease_ttl must be >= 1, got {min_lease_ttl}")
        self._clock = clock
        self._now: Callable[[], float] = monotonic if clock is None else clock.now
        self._lock = threading.Lock()
        self._store = Store(min_lease_ttl=min_lease_ttl)
        self._sinks: dict[int, Callable[[rpc_pb2.WatchResponse], None]] = {}
        self._keepers: list[tuple[int, _Ended]] = []  # keep-alive handles of our clients
        self._closers: list[Callable[[], None]] = []
        self._closed = False
        self._next_progress = self._now() + PROGRESS_NOTIFY_INTERVAL
        self._server: Server | None = None
        self._timer: threading.Thread | None = None
        self._wake = threading.Condition(self._lock)
        if clock is not None:
            clock.attach(self)
        else:
            self._timer = threading.Thread(
                target=self._run_timer, name="etcd_layers.memory.timer", daemon=True
            )
            self._timer.start()

    # --- what users call -------------------------------------------------------------------

    @property
    def clock(self) -> ManualClock | None:
        """The ManualClock it runs on (None: it follows real time)."""
        return self._clock

    @property
    def revision(self) -> int:
        """The current store revision (the header revision of the next read)."""
        with self._lock:
            return self._store.revision

    def client(self, *, timeout: float | None = None) -> Client:
        """A Client speaking to this store in-process (KV, Watcher, Lease, compact, close).

        Args:
            timeout: the client's default deadline of every call (None: none).
        """
        return memory_client(self, check_timeout(timeout))

    def async_client(self, *, timeout: float | None = None) -> AsyncClient:
        """An AsyncClient speaking to this store in-process (use it on one event loop)."""
        return memory_async_client(self, check_timeout(timeout))

    def serve(self) -> str:
        """Serve etcd's v3 gRPC API on 127.0.0.1 (once; later calls return the same address).

        Returns:
            the endpoint, "127.0.0.1:port", for Client, AsyncClient, etcdctl or any etcd client.
        """
        with self._lock:
            self._check_open()
            if self._server is None:
                self._server = Server(self)
            return self._server.address

    def close(self) -> None:
        """End every watch and keep-alive, close the clients made here and stop serving."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            closers, self._closers = self._closers, []
            server, self._server = self._server, None
            self._wake.notify_all()
        for close in reversed(closers):
            close()
        if server is not None:
            server.stop()
        if self._clock is not None:
            self._clock.detach(self)
        if self._timer is not None and self._timer is not threading.current_thread():
            self._timer.join(timeout=10)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        return f"<MemoryEtcd revision={self._store.revision}{state}>"

    # --- what the transports call ----------------------------------------------------------

    @property
    def closed(self) -> bool:
        """Whether close() ran."""
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError("the MemoryEtcd is closed")

    def check_usable(self) -> None:
        """Raise ClosedError once close() ran."""
        with self._lock:
            self._check_open()

    def add_closer(self, close: Callable[[], None]) -> None:
        """Run `close` when this MemoryEtcd closes (its clients and streams)."""
        with self._lock:
            if not self._closed:
                self._closers.append(close)
                return
        close()

    def new_address(self) -> str:
        """The endpoint name of an in-process client: the store's client URL without a scheme."""
        return IN_PROCESS_ADDRESS

    def unary(self, path: str, request: Message) -> Message:
        """Answer one unary request (StoreError: etcd refuses it, or the path is unknown)."""
        return self.handler(path)(request)

    def handler(self, path: str) -> Callable[[Message], Message]:
        """The function answering the unary method at `path` (for a transport to keep).

        Raises:
            StoreError: UNIMPLEMENTED, when the path is not one the store serves.
        """
        entry = UNARY.get(path)
        if entry is None:
            raise store_error(UNIMPLEMENTED)
        name = entry[2]
        store, lock = self._store, self._lock
        if name == "range":  # the hot path: a read sends no watch response

            def answer_range(request: Message) -> Message:
                with lock:
                    return store.range(request)  # type: ignore[arg-type]  # typed by the path

            return answer_range

        def answer(request: Message) -> Message:
            with lock:
                if name in ("lease_grant", "lease_time_to_live"):
                    response: Message = getattr(store, name)(request, self._now())
                    self._wake.notify_all()
                elif name == "member_list":
                    response = store.member_list(request, self._client_urls())  # type: ignore[arg-type]
                else:
                    response = getattr(store, name)(request)
                self._deliver()
                return response

        return answer

    def _client_urls(self) -> list[str]:
        server = self._server
        # What auto-sync and sync_endpoints() move a client to. An in-process client stays
        # in-process whatever its endpoint's name; a gRPC client needs the served address.
        address = server.address if server is not None else IN_PROCESS_ADDRESS
        return [f"http://{address}"]

    def keep_alive(self, request: rpc_pb2.LeaseKeepAliveRequest) -> rpc_pb2.LeaseKeepAliveResponse:
        """Answer one request of a LeaseKeepAlive stream."""
        with self._lock:
            return self._store.lease_keep_alive(request, self._now())

    def keep_alive_started(self, lease_id: int, handle: _Ended) -> None:
        """Treat the lease as renewed at every clock instant until `handle` ends.

        A running keep-alive renews on clock time (API.md): advancing a ManualClock past a
        lease's TTL must not expire it while its keep-alive runs.
        """
        with self._lock:
            self._keepers = [(i, h) for i, h in self._keepers if not h.ended]
            self._keepers.append((lease_id, handle))

    def open_watch(self, sink: Callable[[rpc_pb2.WatchResponse], None]) -> int | None:
        """Start a Watch stream; its responses go to `sink` (called under the lock: never block).

        Returns the stream's id, or None once the store is closed.
        """
        with self._lock:
            if self._closed:
                return None
            stream = self._store.watch_open()
            self._sinks[stream] = sink
            return stream

    def watch_request(self, stream: int, request: rpc_pb2.WatchRequest) -> None:
        """Take one request of a Watch stream."""
        with self._lock:
            self._store.watch_request(stream, request)
            self._deliver()

    def close_watch(self, stream: int) -> None:
        """End a Watch stream."""
        with self._lock:
            self._store.watch_close(stream)
            self._sinks.pop(stream, None)

    def _deliver(self) -> None:
        sinks = self._sinks
        for stream, response in self._store.take_outgoing():
            sink = sinks.get(stream)
            if sink is not None:
                sink(response)

    # --- time ------------------------------------------------------------------------------

    def _kept(self) -> frozenset[int]:
        self._keepers = [(i, h) for i, h in self._keepers if not h.ended]
        return frozenset(lease_id for lease_id, _ in self._keepers)

    def next_due(self) -> float | None:
        """When the next lease expiry (and, in real time, progress notification) is due.

        On a ManualClock progress notifications are not steps of their own: one advance()
        that passes the interval sends one, however many intervals it spans.
        """
        with self._lock:
            if self._closed:
                return None
            expiry = self._store.next_expiry(self._kept())
            progress = None
            if self._clock is None and self._store.watches.watcher_count:
                progress = self._next_progress
        due = [when for when in (expiry, progress) if when is not None]
        return min(due) if due else None

    def run_due(self, now: float) -> None:
        """Expire the leases that ran out by `now` and send the progress notifications due."""
        with self._lock:
            if self._closed:
                return
            kept = self._kept()
            self._store.renew_all(kept, now)
            self._store.expire(now, kept)
            if now >= self._next_progress:
                self._store.progress()
                self._next_progress = now + PROGRESS_NOTIFY_INTERVAL
            self._deliver()

    def _run_timer(self) -> None:
        """Real time: run what falls due, as etcd's lessor loop does."""
        while True:
            due = self.next_due()
            with self._lock:
                if self._closed:
                    return
                wait = None if due is None else max(0.0, due - self._now())
                if wait is None or wait > 0:
                    self._wake.wait(wait if wait is None else min(wait, 1.0))
                    continue
            self.run_due(self._now())
