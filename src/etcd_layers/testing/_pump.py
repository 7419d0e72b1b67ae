"""The fault proxy's pump: every socket of one proxy, forwarded or black-holed, on one thread."""

from __future__ import annotations

import contextlib
import enum
import errno
import logging
import selectors
import socket
import time
from typing import Final

from etcd_layers.testing._httphead import Identify, head_complete, parse_head

logger = logging.getLogger("etcd_layers.testing")

_CHUNK: Final = 256 * 1024
# Stop reading from one side while this much is waiting for the other side: backpressure
# instead of unbounded buffering when one end is slower than the other.
_HIGH_WATER: Final = 4 * 1024 * 1024
_SNIFF_TIMEOUT: Final = 5.0
_CONNECT_TIMEOUT: Final = 5.0
_ACCEPTS_PER_WAKE: Final = 64


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


class Pump:
    """The sockets of one fault proxy and what flows between them, with its fault rules.

    Everything but `wake()` and reading the counters runs on the proxy's one thread, which
    owns every socket: `poll()` moves bytes, `expire()` acts on deadlines, and the fault
    actions (`drop_all`, `blackhole`, `unblackhole`, `set_blocked`) change the rules.

    Args:
        name: names log lines.
        target: the `(host, port)` new connections are forwarded to (settable).
        identify: sniff HTTP request heads and name their sender (None: forward at once).
        port: the port to listen on; 0 picks a free one.
    """

    def __init__(
        self, name: str, target: tuple[str, int], identify: Identify | None, port: int
    ) -> None:
        self.name = name
        self.target = target  # read per connection; a tuple swap is atomic
        self._identify = identify
        self._listener = socket.create_server(("127.0.0.1", port), backlog=128)
        self._listener.setblocking(False)
        self.port: int = self._listener.getsockname()[1]
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ, None)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._masks: dict[socket.socket, int] = {}
        self._conns: set[_Conn] = set()
        # Written by the proxy thread only; read from any thread (single values).
        self.blackholed = False
        self.blocked: frozenset[str] = frozenset()
        self.discarded = 0
        self.accepted = 0
        self.open = 0

    def wake(self) -> None:
        """Make a `poll()` in progress return (safe from any thread)."""
        with contextlib.suppress(BlockingIOError, OSError):
            self._wake_w.send(b"\0")  # a full buffer already guarantees a wake-up

    def poll(self, timeout: float) -> None:
        """Wait up to `timeout` for socket events, and handle them."""
        for key, mask in self._selector.select(timeout):
            self._dispatch(key, mask)

    def close(self) -> None:
        """Close every connection, the listening port and the selector."""
        self.drop_all()
        self._selector.close()
        for sock in (self._listener, self._wake_r, self._wake_w):
            sock.close()

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
                logger.warning("fault proxy %s: accept failed", self.name, exc_info=True)
                return
            sock.setblocking(False)
            # Small raft heartbeats and gRPC frames must not wait for Nagle's algorithm.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Conn(sock, (str(address[0]), int(address[1])))
            self._conns.add(conn)
            self.accepted += 1
            self.open = len(self._conns)
            if self.blackholed:
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
        err = upstream.connect_ex(self.target)
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
        conn.sender = self._identify(parse_head(head, conn.client_address))
        if conn.sender is not None and conn.sender in self.blocked:
            conn.state = _State.DISCARD
            conn.deadline = None
            self.discarded += len(head)
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
        if self.blackholed or conn.state is _State.DISCARD:
            self.discarded += len(data)
            return
        if side == _UP:
            conn.to_down += data
            self._flush(conn, _DOWN)
        elif conn.state is _State.SNIFF:
            conn.head += data
            if head_complete(conn.head):
                self._classify(conn)
        else:
            conn.to_up += data
            self._flush(conn, _UP)

    def _on_eof(self, conn: _Conn, side: int) -> None:
        if side == _DOWN:
            conn.down_eof = True
        else:
            conn.up_eof = True
        if self.blackholed or conn.state in (_State.SNIFF, _State.DISCARD):
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
        discard = self.blackholed or conn.state is _State.DISCARD
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
        self.open = len(self._conns)
        for sock in (conn.down, conn.up):
            if sock is None:
                continue
            if self._masks.pop(sock, 0):
                self._selector.unregister(sock)
            sock.close()

    def expire(self, now: float) -> None:
        """Act on the connections whose sniffing or connecting deadline passed by `now`."""
        for conn in [c for c in self._conns if c.deadline is not None and c.deadline <= now]:
            conn.deadline = None
            if conn.state is _State.SNIFF:
                self._classify(conn)  # not HTTP, or a slow client: decide on what arrived
            elif conn.state is _State.CONNECTING:
                self._close_conn(conn)
            if conn in self._conns:
                self._refresh(conn)

    def drop_all(self) -> None:
        """Close every open connection, both ways."""
        for conn in list(self._conns):
            self._close_conn(conn)

    def blackhole(self) -> None:
        """Forward nothing; read and discard what arrives (connections hang)."""
        self.blackholed = True
        for conn in self._conns:
            conn.tainted = True
            if conn.state is _State.SNIFF:
                conn.state = _State.DISCARD  # it must never be classified and connected upstream
                conn.deadline = None
            self.discarded += len(conn.to_up) + len(conn.to_down) + len(conn.head)
            conn.to_up.clear()
            conn.to_down.clear()
            conn.head.clear()
        for conn in list(self._conns):
            self._refresh(conn)

    def unblackhole(self) -> None:
        """Forward again; close the connections that lost bytes to the black hole."""
        self.blackholed = False
        for conn in [c for c in self._conns if c.tainted]:
            self._close_conn(conn)

    def set_blocked(self, blocked: frozenset[str]) -> None:
        """Black-hole the senders in `blocked`; close connections whose sender moved."""
        changed = self.blocked ^ blocked
        self.blocked = blocked
        for conn in [c for c in self._conns if c.sender is not None and c.sender in changed]:
            self._close_conn(conn)
