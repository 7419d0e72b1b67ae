"""FaultProxy against a tiny echo server on 127.0.0.1 (the one unit test that may use sockets)."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest

from etcd_layers.testing import FaultProxy, RequestHead, wait_until

TIMEOUT = 5.0


class EchoServer:
    """Echoes every byte back on each connection, and counts what it saw."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.address: tuple[str, int] = ("127.0.0.1", self._listener.getsockname()[1])
        self._lock = threading.Lock()
        self.received = 0
        self.connections = 0
        self._socks: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._acceptor = threading.Thread(target=self._accept, name="test-echo-accept")
        self._acceptor.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self._socks.append(sock)
            thread = threading.Thread(target=self._echo, args=(sock,), name="test-echo")
            self._threads.append(thread)
            thread.start()

    def _echo(self, sock: socket.socket) -> None:
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    sock.shutdown(socket.SHUT_WR)
                    return
                with self._lock:
                    self.received += len(data)
                sock.sendall(data)
        except OSError:
            return

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() at once
        self._acceptor.join(TIMEOUT)
        self._listener.close()
        with self._lock:
            for sock in self._socks:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(TIMEOUT)
        for sock in self._socks:
            sock.close()


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    server = EchoServer()
    yield server
    server.close()


@pytest.fixture
def proxy(echo: EchoServer) -> Iterator[FaultProxy]:
    with FaultProxy(echo.address, name="unit") as proxy:
        yield proxy


def connect(proxy: FaultProxy) -> socket.socket:
    sock = socket.create_connection(proxy.address, timeout=TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    for _ in range(size):  # at least one byte per round, so this bound is never the limit
        if len(data) >= size:
            break
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return bytes(data)


def roundtrip(sock: socket.socket, payload: bytes = b"ping") -> bytes:
    sock.sendall(payload)
    return recv_exactly(sock, len(payload))


def is_closed(sock: socket.socket) -> bool:
    """Whether the peer closed the connection (blocks until data, EOF or the socket timeout)."""
    try:
        return sock.recv(1) == b""
    except ConnectionError:
        return True


def has_nothing_to_read(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        sock.recv(1)
    except BlockingIOError:
        return True
    finally:
        sock.settimeout(TIMEOUT)
    return False


def test_faultproxy_forwards_both_ways(proxy: FaultProxy) -> None:
    """Bytes sent through the proxy reach the target and its answer comes back."""
    with connect(proxy) as sock:
        assert roundtrip(sock, b"hello") == b"hello"
        assert proxy.open_connections == 1


def test_faultproxy_forwards_large_transfers_intact(proxy: FaultProxy) -> None:
    """Several megabytes each way arrive complete and in order, despite backpressure."""
    payload = bytes(range(256)) * (8 * 4096)  # 8 MiB, larger than the proxy's high-water mark
    with connect(proxy) as sock:
        sender = threading.Thread(target=sock.sendall, args=(payload,), name="test-sender")
        sender.start()
        echoed = recv_exactly(sock, len(payload))
        sender.join(TIMEOUT)
    assert echoed == payload


def test_faultproxy_passes_half_close_on(proxy: FaultProxy) -> None:
    """A client's FIN reaches the target, and the target's FIN comes back after its data."""
    with connect(proxy) as sock:
        sock.sendall(b"last words")
        sock.shutdown(socket.SHUT_WR)
        assert recv_exactly(sock, 10) == b"last words"
        assert is_closed(sock)
    wait_until(lambda: proxy.open_connections == 0, TIMEOUT, message="connection released")


def test_faultproxy_drop_connections_closes_open_connections(
    proxy: FaultProxy, echo: EchoServer
) -> None:
    """drop_connections closes every open connection, and new ones still work."""
    with connect(proxy) as first, connect(proxy) as second:
        assert roundtrip(first) == b"ping"
        assert roundtrip(second) == b"ping"
        proxy.drop_connections()
        assert proxy.open_connections == 0
        assert is_closed(first)
        assert is_closed(second)
    with connect(proxy) as again:
        assert roundtrip(again) == b"ping"
    assert echo.connections == 3


def test_faultproxy_blackhole_forwards_nothing(proxy: FaultProxy, echo: EchoServer) -> None:
    """A black-holed proxy reads and discards from open and new connections alike."""
    with connect(proxy) as old:
        assert roundtrip(old) == b"ping"
        proxy.blackhole()
        assert proxy.is_blackholed
        old.sendall(b"lost")
        with connect(proxy) as new:  # still accepted, but never connected upstream
            new.sendall(b"gone")
            wait_until(lambda: proxy.discarded_bytes >= 8, TIMEOUT, message="bytes discarded")
            assert has_nothing_to_read(old)
            assert has_nothing_to_read(new)
    assert echo.received == 4
    assert echo.connections == 1


def test_faultproxy_unblackhole_closes_survivors_and_forwards_new(proxy: FaultProxy) -> None:
    """Connections that lived through a black hole are closed; new ones forward again."""
    with connect(proxy) as old:
        assert roundtrip(old) == b"ping"
        proxy.blackhole()
        proxy.unblackhole()
        assert not proxy.is_blackholed
        assert is_closed(old)
    with connect(proxy) as new:
        assert roundtrip(new) == b"ping"


def test_faultproxy_closes_client_when_target_is_down() -> None:
    """A connection whose target refuses it is closed, like the refusal it stands for."""
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))  # bound but not listening: connecting is refused
        with FaultProxy(unused.getsockname(), name="unit-down") as proxy, connect(proxy) as sock:
            assert is_closed(sock)


def test_faultproxy_target_change_applies_to_new_connections(echo: EchoServer) -> None:
    """Setting target redirects connections made afterwards."""
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        with FaultProxy(unused.getsockname(), name="unit-retarget") as proxy:
            proxy.target = echo.address
            with connect(proxy) as sock:
                assert roundtrip(sock) == b"ping"


def test_faultproxy_close_stops_its_thread_and_port(echo: EchoServer) -> None:
    """close() joins the proxy thread, closes its connections and frees its port."""
    proxy = FaultProxy(echo.address, name="unit-close")
    sock = connect(proxy)
    assert roundtrip(sock) == b"ping"
    proxy.close()
    with sock:
        assert is_closed(sock)
    names = {thread.name for thread in threading.enumerate()}
    assert "etcd_layers.testing.proxy-unit-close" not in names
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(proxy.address, timeout=TIMEOUT).close()
    proxy.close()  # idempotent
    proxy.drop_connections()  # a no-op once closed


def by_sender_header(head: RequestHead) -> str | None:
    return head.headers.get("x-sender")


def http_head(sender: str) -> bytes:
    return f"GET /x HTTP/1.1\r\nHost: test\r\nX-Sender: {sender}\r\n\r\n".encode()


def test_faultproxy_identify_blackholes_blocked_senders(echo: EchoServer) -> None:
    """With identify, a blocked sender's connection is discarded and others are forwarded."""
    heads: list[RequestHead] = []

    def identify(head: RequestHead) -> str | None:
        heads.append(head)
        return by_sender_header(head)

    with FaultProxy(echo.address, name="unit-sniff", identify=identify) as proxy:
        proxy.set_blocked({"a"})
        with connect(proxy) as from_a, connect(proxy) as from_b:
            from_a.sendall(http_head("a"))
            assert recv_exactly(from_b, 0) == b""
            assert roundtrip(from_b, http_head("b")) == http_head("b")
            wait_until(lambda: proxy.discarded_bytes >= len(http_head("a")), TIMEOUT)
            assert has_nothing_to_read(from_a)
    assert echo.connections == 1
    assert {head.headers["x-sender"] for head in heads} == {"a", "b"}
    assert all(head.request_line == "GET /x HTTP/1.1" for head in heads)


def test_faultproxy_set_blocked_drops_connections_of_changed_senders(echo: EchoServer) -> None:
    """Changing the blocked set closes the connections of senders that moved in or out."""
    with FaultProxy(echo.address, name="unit-block", identify=by_sender_header) as proxy:
        proxy.set_blocked({"a"})
        with connect(proxy) as from_a, connect(proxy) as from_b, connect(proxy) as from_c:
            from_a.sendall(http_head("a"))
            assert roundtrip(from_b, http_head("b")) == http_head("b")
            assert roundtrip(from_c, http_head("c")) == http_head("c")
            proxy.set_blocked({"b"})
            assert is_closed(from_a)
            assert is_closed(from_b)
            assert roundtrip(from_c, b"still here") == b"still here"
        with connect(proxy) as again_a:
            assert roundtrip(again_a, http_head("a")) == http_head("a")


def test_faultproxy_unknown_senders_are_forwarded(echo: EchoServer) -> None:
    """A connection identify cannot name is forwarded whatever is blocked."""
    with FaultProxy(echo.address, name="unit-unknown", identify=by_sender_header) as proxy:
        proxy.set_blocked({"a"})
        with connect(proxy) as sock:
            head = b"GET /version HTTP/1.1\r\nHost: test\r\n\r\n"
            assert roundtrip(sock, head) == head
