"""A TCP proxy on 127.0.0.1 that can drop connections and black-hole traffic on command."""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import errno
import logging
import selectors
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Final, TypeAlias

from etcd_layers._compat import Self

__all__ = ["FaultProxy", "Identify", "RequestHead"]

logger = logging.getLogger("etcd_layers.testing")

_CHUNK: Final = 256 * 1024
# Stop reading from one side while this much is waiting for the other side: backpressure
# instead of unbounded buffering when one end is slower than the other.
_HIGH_WATER: Final = 4 * 1024 * 1024
# An HTTP request head is classified once it is complete or this long, whichever comes first.
_MAX_HEAD: Final = 64 * 1024
_HEAD_END: Final = b"\r\n\r\n"
_SNIFF_TIMEOUT: Final = 5.0
_CONNECT_TIMEOUT: Final = 5.0
_TICK: Final = 0.25  # how often deadlines are checked while no socket is ready
_COMMAND_TIMEOUT: Final = 10.0
_JOIN_TIMEOUT: Final = 10.0
_ACCEPTS_PER_WAKE: Final = 64


@dataclasses.dataclass(frozen=True, slots=True)
class RequestHead:
    """The first HTTP request head on a connection, handed to a proxy's `identify` callback.

    Attributes:
        request_line: For example `"GET /raft/stream/msgappv2/8e9e05c52164694d HTTP/1.1"`.
        headers: Header values by lower-cased name.
        client_address: The connecting socket's `(host, port)`.
    """

    request_line: str
    headers: Mapping[str, str]
    client_address: tuple[str, int]


Identify: TypeAlias = Callable[[RequestHead], str | None]
"""Names the sender of a connection from its first request, or returns None if unknown."""


class _State(enum.Enum):
    SNIFF = "sniff"  # reading the first request head, not yet connected upstream
    CONNECTING = "connecting"
    OPEN = "open"
    DISCARD = "discard"  # read from both sides, forward nothing


_DOWN: Final = 0  # the side that connected to the proxy
_UP: Final = 1  # the side the proxy connected to


class _Conn:
    """One proxied connection; touched only by the proxy's thread."""

    __slots__ = (
        "client_address",
        "deadline",
        "down",
        "down_eof",
        "down_shut",
        "head",
        "sender",
        "state",
        "tainted",
        "to_down",
        "to_up",
        "up",
        "up_eof",
        "up_shut",
    )

    def __init__(self, down: socket.socket, client_address: tuple[str, int]) -> None:
        self.down = down
        self.up: socket.socket | None = None
        self.client_address = client_address
        self.state = _State.OPEN
        self.head = bytearray()
        self.to_up = bytearray()
        self.to_down = bytearray()
        self.down_eof = False  # the client will send no more
        self.up_eof = False  # the server will send no more
        self.down_shut = False  # we sent FIN to the client
        self.up_shut = False  # we sent FIN to the server
        self.sender: str | None = None
        self.deadline: float | None = None
        # Lived through a black hole, so bytes were lost and the stream cannot resume.
        self.tainted = False


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
        self._target = target
        self._identify = identify
        self._listener = socket.create_server(("127.0.0.1", port), backlog=128)
        self._listener.setblocking(False)
        self._port: int = self._listener.getsockname()[1]
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ, None)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._masks: dict[socket.socket, int] = {}
        self._conns: set[_Conn] = set()
        self._blackholed = False
        self._blocked: frozenset[str] = frozenset()
        self._discarded = 0
        self._accepted = 0
        self._open = 0
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
        return self._port

    @property
    def address(self) -> tuple[str, int]:
        """`("127.0.0.1", port)`."""
        return ("127.0.0.1", self._port)

    @property
    def endpoint(self) -> str:
        """`"127.0.0.1:<port>"`, the form etcd clients take."""
        return f"127.0.0.1:{self._port}"

    @property
    def target(self) -> tuple[str, int]:
        """Where new connections are forwarded; settable (existing connections keep theirs)."""
        return self._target

    @target.setter
    def target(self, value: tuple[str, int]) -> None:
        self._target = value  # read by the proxy thread per connection; a tuple swap is atomic

    @property
    def is_blackholed(self) -> bool:
        """Whether `blackhole()` is in effect."""
        return self._blackholed

    @property
    def blocked(self) -> frozenset[str]:
        """Senders whose connections are black-holed (see `set_blocked`)."""
        return self._blocked

    @property
    def open_connections(self) -> int:
        """How many accepted connections are currently open."""
        return self._open

    @property
    def accepted_connections(self) -> int:
        """How many connections were accepted in total."""
        return self._accepted

    @property
    def discarded_bytes(self) -> int:
        """How many bytes were read and thrown away by a black hole, in total."""
        return self._discarded

    def drop_connections(self) -> None:
        """Close every open connection, both ways, now; new connections are still accepted."""
        self._call(self._do_drop_all)

    def blackhole(self) -> None:
        """Forward nothing in either direction, like a network partition.

        Connections are still accepted, and everything that arrives is read and
        discarded, so existing connections hang rather than fail.
        """
        self._call(self._do_blackhole)

    def unblackhole(self) -> None:
        """Forward traffic again.

        Connections that lived through the black hole have lost bytes and can
        never resume cleanly, so they are closed; the peers reconnect as they
        would after a real partition outlasted their keep-alive.
        """
        self._call(self._do_unblackhole)

    def set_blocked(self, senders: Iterable[str]) -> None:
        """Black-hole connections from `senders` (as named by `identify`), forward the rest.

        Open connections whose sender moved into or out of the blocked set are
        closed, so their peers reconnect and are classified afresh.
        """
        blocked = frozenset(senders)
        self._call(lambda: self._do_set_blocked(blocked))

    def close(self) -> None:
        """Stop the proxy thread, close every socket and the listening port.

        Raises:
            RuntimeError: The proxy thread failed (its error is chained) or did
                not stop in time.
        """
        with self._lock:
            self._closing = True
        self._stop.set()
        self._wake()
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
        return f"FaultProxy({self._name!r}, {self.endpoint} -> {self._target[0]}:{self._target[1]})"

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
        self._wake()
        if not done.wait(_COMMAND_TIMEOUT):
            raise RuntimeError(f"fault proxy {self._name} did not respond")
        if self._error is not None:
            raise RuntimeError(f"fault proxy {self._name} failed") from self._error

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            self._wake_w.send(b"\0")  # a full buffer already guarantees a wake-up

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
                for key, mask in self._selector.select(_TICK):
                    self._dispatch(key, mask)
                self._run_commands()
                self._expire(time.monotonic())
        except BaseException as err:  # handed to the owner by close() and every control call
            logger.exception("fault proxy %s failed", self._name)
            self._error = err
        finally:
            self._shutdown()

    def _dispatch(self, key: selectors.SelectorKey, mask: int) -> None:
        if key.fileobj is self._listener:
            self._accept()
            return
        if key.fileobj is self._wake_r:
            with contextlib.suppress(BlockingIOError, OSError):
                self._wake_r.recv(4096)
            return
        conn, side = key.data
        if conn not in self._conns:
            return  # closed earlier in this same batch of events
        if mask & selectors.EVENT_WRITE:
            if side == _UP and conn.state is _State.CONNECTING:
                self._on_connected(conn)
            else:
                self._flush(conn, side)
        if conn in self._conns and mask & selectors.EVENT_READ:
            self._on_readable(conn, side)
        if conn in self._conns:
            self._refresh(conn)

    def _accept(self) -> None:
        for _ in range(_ACCEPTS_PER_WAKE):
            try:
                sock, address = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                logger.warning("fault proxy %s: accept failed", self._name, exc_info=True)
                return
            sock.setblocking(False)
            # Small raft heartbeats and gRPC frames must not wait for Nagle's algorithm.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Conn(sock, (str(address[0]), int(address[1])))
            self._conns.add(conn)
            self._accepted += 1
            self._open = len(self._conns)
            if self._blackholed:
                conn.state = _State.DISCARD
                conn.tainted = True
            elif self._identify is not None:
                conn.state = _State.SNIFF
                conn.deadline = time.monotonic() + _SNIFF_TIMEOUT
            else:
                self._connect(conn)
            if conn in self._conns:
                self._refresh(conn)

    def _connect(self, conn: _Conn) -> None:
        upstream = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        upstream.setblocking(False)
        upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        err = upstream.connect_ex(self._target)
        if err not in (0, errno.EINPROGRESS, errno.EAGAIN):
            upstream.close()
            self._close_conn(conn)  # the target is down: the client sees the connection end
            return
        conn.up = upstream
        conn.state = _State.CONNECTING
        conn.deadline = time.monotonic() + _CONNECT_TIMEOUT

    def _on_connected(self, conn: _Conn) -> None:
        assert conn.up is not None
        if conn.up.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0:
            self._close_conn(conn)
            return
        conn.state = _State.OPEN
        conn.deadline = None
        self._flush(conn, _UP)
        if conn in self._conns:
            self._flush(conn, _DOWN)

    def _classify(self, conn: _Conn) -> None:
        assert self._identify is not None
        head = bytes(conn.head)
        conn.head = bytearray()
        conn.sender = self._identify(_parse_head(head, conn.client_address))
        if conn.sender is not None and conn.sender in self._blocked:
            conn.state = _State.DISCARD
            conn.deadline = None
            self._discarded += len(head)
            return
        conn.to_up += head
        self._connect(conn)

    def _on_readable(self, conn: _Conn, side: int) -> None:
        sock = conn.down if side == _DOWN else conn.up
        assert sock is not None
        try:
            data = sock.recv(_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close_conn(conn)
            return
        if not data:
            self._on_eof(conn, side)
            return
        if self._blackholed or conn.state is _State.DISCARD:
            self._discarded += len(data)
            return
        if side == _UP:
            conn.to_down += data
            self._flush(conn, _DOWN)
        elif conn.state is _State.SNIFF:
            conn.head += data
            if _HEAD_END in conn.head or len(conn.head) >= _MAX_HEAD:
                self._classify(conn)
        else:
            conn.to_up += data
            self._flush(conn, _UP)

    def _on_eof(self, conn: _Conn, side: int) -> None:
        if side == _DOWN:
            conn.down_eof = True
        else:
            conn.up_eof = True
        if self._blackholed or conn.state in (_State.SNIFF, _State.DISCARD):
            self._close_conn(conn)  # nothing was or will be forwarded: nothing to finish
            return
        # Pass the half-close on once everything before it was delivered.
        self._flush(conn, _UP if side == _DOWN else _DOWN)

    def _flush(self, conn: _Conn, side: int) -> None:
        """Write what is pending towards `side`, and pass on a half-close once it is all out."""
        if side == _UP:
            sock, pending, source_eof = conn.up, conn.to_up, conn.down_eof
            if sock is None or conn.state is not _State.OPEN:
                return  # kept until the upstream connection is open
        else:
            sock, pending, source_eof = conn.down, conn.to_down, conn.up_eof
        if pending:
            try:
                sent = sock.send(pending)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self._close_conn(conn)
                return
            del pending[:sent]
        if not pending and source_eof:
            if side == _UP and not conn.up_shut:
                conn.up_shut = True
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_WR)
            elif side == _DOWN and not conn.down_shut:
                conn.down_shut = True
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_WR)
        if conn.down_shut and conn.up_shut:
            self._close_conn(conn)

    def _refresh(self, conn: _Conn) -> None:
        """Register for the events this connection can act on now."""
        discard = self._blackholed or conn.state is _State.DISCARD
        mask = 0
        if not conn.down_eof and (
            discard or conn.state is _State.SNIFF or len(conn.to_up) < _HIGH_WATER
        ):
            mask |= selectors.EVENT_READ
        if conn.to_down:
            mask |= selectors.EVENT_WRITE
        self._set_mask(conn.down, mask, (conn, _DOWN))
        if conn.up is not None:
            mask = 0
            if conn.state is _State.CONNECTING:
                mask = selectors.EVENT_WRITE
            else:
                if not conn.up_eof and (discard or len(conn.to_down) < _HIGH_WATER):
                    mask |= selectors.EVENT_READ
                if conn.to_up:
                    mask |= selectors.EVENT_WRITE
            self._set_mask(conn.up, mask, (conn, _UP))

    def _set_mask(self, sock: socket.socket, mask: int, data: tuple[_Conn, int]) -> None:
        current = self._masks.get(sock, 0)
        if mask == current:
            return
        if mask == 0:
            self._selector.unregister(sock)
            del self._masks[sock]
        elif current == 0:
            self._selector.register(sock, mask, data)
            self._masks[sock] = mask
        else:
            self._selector.modify(sock, mask, data)
            self._masks[sock] = mask

    def _close_conn(self, conn: _Conn) -> None:
        if conn not in self._conns:
            return
        self._conns.discard(conn)
        self._open = len(self._conns)
        for sock in (conn.down, conn.up):
            if sock is None:
                continue
            if self._masks.pop(sock, 0):
                self._selector.unregister(sock)
            sock.close()

    def _expire(self, now: float) -> None:
        for conn in [c for c in self._conns if c.deadline is not None and c.deadline <= now]:
            conn.deadline = None
            if conn.state is _State.SNIFF:
                self._classify(conn)  # not HTTP, or a slow client: decide on what arrived
            elif conn.state is _State.CONNECTING:
                self._close_conn(conn)
            if conn in self._conns:
                self._refresh(conn)

    def _do_drop_all(self) -> None:
        for conn in list(self._conns):
            self._close_conn(conn)

    def _do_blackhole(self) -> None:
        self._blackholed = True
        for conn in self._conns:
            conn.tainted = True
            if conn.state is _State.SNIFF:
                conn.state = _State.DISCARD  # it must never be classified and connected upstream
                conn.deadline = None
            self._discarded += len(conn.to_up) + len(conn.to_down) + len(conn.head)
            conn.to_up.clear()
            conn.to_down.clear()
            conn.head.clear()
        for conn in list(self._conns):
            self._refresh(conn)

    def _do_unblackhole(self) -> None:
        self._blackholed = False
        for conn in [c for c in self._conns if c.tainted]:
            self._close_conn(conn)

    def _do_set_blocked(self, blocked: frozenset[str]) -> None:
        changed = self._blocked ^ blocked
        self._blocked = blocked
        for conn in [c for c in self._conns if c.sender is not None and c.sender in changed]:
            self._close_conn(conn)

    def _shutdown(self) -> None:
        with self._lock:
            self._closing = True
        self._do_drop_all()
        self._selector.close()
        for sock in (self._listener, self._wake_r, self._wake_w):
            sock.close()
        # Release callers still waiting for a command: there is nothing left to act on.
        while self._commands:
            self._commands.popleft()[1].set()


def _parse_head(head: bytes, client_address: tuple[str, int]) -> RequestHead:
    """Parse an HTTP request head (possibly cut short) into a RequestHead."""
    end = head.find(_HEAD_END)
    lines = head[: end if end >= 0 else len(head)].split(b"\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if colon:
            headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    return RequestHead(lines[0].decode("latin-1"), headers, client_address)
