"""A TCP proxy on 127.0.0.1 that can drop connections and black-hole traffic on command.

The public face and its thread live here; the sockets and the bytes between them are the
pump's (`_pump`), and reading who sent a connection is `_httphead`'s.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Final

from etcd_layers._compat import Self
from etcd_layers.testing._httphead import Identify, RequestHead
from etcd_layers.testing._pump import Pump

__all__ = ["FaultProxy", "Identify", "RequestHead"]

logger = logging.getLogger("etcd_layers.testing")

_TICK: Final = 0.25  # how often deadlines are checked while no socket is ready
_COMMAND_TIMEOUT: Final = 10.0
_JOIN_TIMEOUT: Final = 10.0


class FaultProxy:
    """A threaded TCP proxy from a port of its own on 127.0.0.1 to `target`.

    All traffic is pumped by one thread (`etcd_layers.testing.proxy-<name>`) that
    owns every socket; the control methods hand their work to that thread and
    return once it is done, so when `drop_connections()` returns the connections
    are closed.

    With `identify`, the proxy reads the first HTTP request head of each new
    connection before connecting upstream, asks `identify` who sent it, and
    black-holes the connection if that sender is in `blocked` (see
    `set_blocked`). That is how a cluster partitions etcd peers, whose rafthttp
    requests name their sender in headers.

    Args:
        target: The `(host, port)` every accepted connection is forwarded to.
        name: Names the thread and log lines.
        identify: Sniff HTTP request heads and name their sender (see above).
        port: The port to listen on; 0 picks a free one.
    """

    def __init__(
        self,
        target: tuple[str, int],
        *,
        name: str = "proxy",
        identify: Identify | None = None,
        port: int = 0,
    ) -> None:
        self._name = name
        self._pump = Pump(name, target, identify, port)
        self._lock = threading.Lock()  # guards _closing and the command queue
        self._commands: deque[tuple[Callable[[], None], threading.Event]] = deque()
        self._closing = False
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"etcd_layers.testing.proxy-{name}", daemon=True
        )
        self._thread.start()

    # -- public surface -----------------------------------------------------------------

    @property
    def name(self) -> str:
        """The name given at construction."""
        return self._name

    @property
    def port(self) -> int:
        """The port the proxy listens on."""
        return self._pump.port

    @property
    def address(self) -> tuple[str, int]:
        """`("127.0.0.1", port)`."""
        return ("127.0.0.1", self._pump.port)

    @property
    def endpoint(self) -> str:
        """`"127.0.0.1:<port>"`, the form etcd clients take."""
        return f"127.0.0.1:{self._pump.port}"

    @property
    def target(self) -> tuple[str, int]:
        """Where new connections are forwarded; settable (existing connections keep theirs)."""
        return self._pump.target

    @target.setter
    def target(self, value: tuple[str, int]) -> None:
        self._pump.target = value  # read by the proxy thread per connection; a tuple swap is atomic

    @property
    def is_blackholed(self) -> bool:
        """Whether `blackhole()` is in effect."""
        return self._pump.blackholed

    @property
    def blocked(self) -> frozenset[str]:
        """Senders whose connections are black-holed (see `set_blocked`)."""
        return self._pump.blocked

    @property
    def open_connections(self) -> int:
        """How many accepted connections are currently open."""
        return self._pump.open

    @property
    def accepted_connections(self) -> int:
        """How many connections were accepted in total."""
        return self._pump.accepted

    @property
    def discarded_bytes(self) -> int:
        """How many bytes were read and thrown away by a black hole, in total."""
        return self._pump.discarded

    def drop_connections(self) -> None:
        """Close every open connection, both ways, now; new connections are still accepted."""
        self._call(self._pump.drop_all)

    def blackhole(self) -> None:
        """Forward nothing in either direction, like a network partition.

        Connections are still accepted, and everything that arrives is read and
        discarded, so existing connections hang rather than fail.
        """
        self._call(self._pump.blackhole)

    def unblackhole(self) -> None:
        """Forward traffic again.

        Connections that lived through the black hole have lost bytes and can
        never resume cleanly, so they are closed; the peers reconnect as they
        would after a real partition outlasted their keep-alive.
        """
        self._call(self._pump.unblackhole)

    def set_blocked(self, senders: Iterable[str]) -> None:
        """Black-hole connections from `senders` (as named by `identify`), forward the rest.

        Open connections whose sender moved into or out of the blocked set are
        closed, so their peers reconnect and are classified afresh.
        """
        blocked = frozenset(senders)
        self._call(lambda: self._pump.set_blocked(blocked))

    def close(self) -> None:
        """Stop the proxy thread, close every socket and the listening port.

        Raises:
            RuntimeError: The proxy thread failed (its error is chained) or did
                not stop in time.
        """
        with self._lock:
            self._closing = True
        self._stop.set()
        self._pump.wake()
        self._thread.join(_JOIN_TIMEOUT)
        if self._thread.is_alive():
            raise RuntimeError(f"fault proxy {self._name} did not stop")
        if self._error is not None:
            raise RuntimeError(f"fault proxy {self._name} failed") from self._error

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
        return f"FaultProxy({self._name!r}, {self.endpoint} -> {self.target[0]}:{self.target[1]})"

    # -- hand-over to the proxy thread -------------------------------------------------

    def _call(self, action: Callable[[], None]) -> None:
        if threading.current_thread() is self._thread:
            action()
            return
        done = threading.Event()
        with self._lock:
            if self._closing:
                return  # nothing is open any more, so every fault is already in effect
            self._commands.append((action, done))
        self._pump.wake()
        if not done.wait(_COMMAND_TIMEOUT):
            raise RuntimeError(f"fault proxy {self._name} did not respond")
        if self._error is not None:
            raise RuntimeError(f"fault proxy {self._name} failed") from self._error

    def _run_commands(self) -> None:
        while True:
            with self._lock:
                if not self._commands:
                    return
                action, done = self._commands.popleft()
            try:
                action()
            finally:
                done.set()

    # -- the proxy thread ---------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._pump.poll(_TICK)
                self._run_commands()
                self._pump.expire(time.monotonic())
        except BaseException as err:  # handed to the owner by close() and every control call
            logger.exception("fault proxy %s failed", self._name)
            self._error = err
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        with self._lock:
            self._closing = True
        self._pump.close()
        # Release callers still waiting for a command: there is nothing left to act on.
        while self._commands:
            self._commands.popleft()[1].set()
