"""Client: the etcd v3 client, the only caller of gRPC stubs."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import overload

from etcd_layers import config, telemetry
from etcd_layers._compat import Self, Unpack
from etcd_layers.base import _compact, _convert, _methods, _wire
from etcd_layers.base._admin import AdminMixin
from etcd_layers.base._connection import Connection
from etcd_layers.base._flow import sync_call
from etcd_layers.base._keepalive import KeepAliveMixin
from etcd_layers.base._lease import LeaseMixin
from etcd_layers.base._settings import (
    DEFAULT_MAX_RECV,
    DEFAULT_MAX_SEND,
    parse_endpoints,
    positive_number,
    settings,
)
from etcd_layers.base._watcher import WatchMixin
from etcd_layers.base.checks import check_timeout
from etcd_layers.base.cluster_version import refusal
from etcd_layers.base.ops import DeleteOp, GetOp, Op, PutOp, TxnOp
from etcd_layers.base.protocols import KV
from etcd_layers.base.responses import (
    DeleteResponse,
    GetResponse,
    PutResponse,
    Response,
    TxnResponse,
)


class Client(WatchMixin, LeaseMixin, KeepAliveMixin, AdminMixin):
    """A connection to an etcd v3 cluster; speaks the KV, Watcher and Lease Protocols.

    Safe to share between threads. `Client(...)` connects eagerly (and logs in when given a
    user name): it raises UnavailableError if no endpoint answers within `dial_timeout`.

    Args:
        endpoints: `host:port` of one or more members (an http:// or https:// scheme is
            accepted and stripped); a single str may list several, separated by commas.
        dial_timeout: seconds to wait for a first connection.
        timeout: the default deadline of every call, in seconds (None: no deadline).
        username: log in as this user.
        password: the user's password.
        ca_cert: path of the CA bundle that signed the servers' certificates (TLS).
        cert: path of this client's certificate (TLS client authentication).
        key: path of this client's private key.
        server_name: the name to verify in the servers' certificates.
        max_call_send_msg_size: the largest request, in bytes; larger ones are refused
            before any I/O with RequestTooLargeError.
        max_call_recv_msg_size: the largest response, in bytes.
        require_leader: fail calls on a member without a leader (NoLeaderError) instead of
            waiting for an election.
        auto_sync_interval: refresh the endpoints from the member list every this many
            seconds (None: never).
        keepalive_time: seconds between HTTP/2 keep-alive pings (None: gRPC's default).
        keepalive_timeout: seconds to wait for a ping's answer before the connection is
            considered dead.
        interceptors: gRPC client interceptors (`grpc.UnaryUnaryClientInterceptor` and its
            unary-stream, stream-unary and stream-stream siblings), in the order given, on every
            call and stream of every endpoint.
        reject_old_cluster: once connected, ask every endpoint for its status and refuse
            (OldClusterError) a cluster with a member older than etcd 3.4, as Go's
            RejectOldCluster.

    Raises:
        TypeError: an argument of the wrong type (before any I/O).
        ValueError: a bad value, such as `cert` without `key`, a certificate file that is not
            PEM, or `username` without `password` (before any I/O).
        UnavailableError: no endpoint answered within `dial_timeout`.
        AuthFailedError: the user name or password is wrong.
        OldClusterError: `reject_old_cluster=True` and a member runs etcd older than 3.4.
    """

    def __init__(
        self,
        endpoints: Sequence[str] | str = ("127.0.0.1:2379",),
        dial_timeout: float = 5.0,
        timeout: float | None = None,
        username: str | None = None,
        password: str | None = None,
        ca_cert: str | Path | None = None,
        cert: str | Path | None = None,
        key: str | Path | None = None,
        server_name: str | None = None,
        max_call_send_msg_size: int = DEFAULT_MAX_SEND,
        max_call_recv_msg_size: int = DEFAULT_MAX_RECV,
        require_leader: bool = False,
        auto_sync_interval: float | None = None,
        keepalive_time: float | None = None,
        keepalive_timeout: float | None = None,
        interceptors: Sequence[object] | None = None,
        reject_old_cluster: bool = False,
    ) -> None:
        checked = settings(
            endpoints,
            dial_timeout,
            timeout,
            username,
            password,
            ca_cert,
            cert,
            key,
            server_name,
            max_call_send_msg_size,
            max_call_recv_msg_size,
            require_leader,
            auto_sync_interval,
            keepalive_time,
            keepalive_timeout,
            interceptors=interceptors,
            reject_old_cluster=reject_old_cluster,
        )
        telemetry.refresh()  # an OpenTelemetry SDK configured since: instrument
        self._conn = Connection(
            checked.addresses,
            tls=checked.tls,
            options=checked.options,
            username=checked.username,
            password=checked.password,
            require_leader=checked.require_leader,
            default_timeout=checked.default_timeout,
            dial_timeout=checked.dial_timeout,
            max_send_size=checked.max_send_size,
            interceptors=checked.interceptors,
        )
        try:
            self._conn.wait_connected(checked.dial_timeout)
            self._conn.authenticate(self._conn.deadline(checked.dial_timeout))
        except BaseException:
            self._conn.close()
            raise
        self._start(self._conn, checked.auto_sync_interval)
        if checked.reject_old_cluster:
            try:
                self._refuse_old_cluster(checked.dial_timeout)
            except BaseException:
                self.close()
                raise

    def _refuse_old_cluster(self, timeout: float) -> None:
        """Raise OldClusterError if a member runs etcd older than 3.4 (Go's checkVersion)."""
        for address in self.endpoints:
            error = refusal(address, self.status(address, timeout=timeout).version)
            if error is not None:
                raise error

    @classmethod
    def from_connection(
        cls, connection: Connection, *, auto_sync_interval: float | None = None
    ) -> Self:
        """Build a client over `connection` as it is: no connecting, no logging in.

        The seam for tests (a recording fake of the connection) and for other shells. The
        client owns the connection from then on: `close()` closes it.
        """
        sync_interval = positive_number(auto_sync_interval, "auto_sync_interval", optional=True)
        client = cls.__new__(cls)
        client._start(connection, sync_interval)
        return client

    def _start(self, connection: Connection, sync_interval: float | None) -> None:
        """Serve the Protocols over `connection` (connected, logged in)."""
        self._conn = connection
        self._init_streams()
        self._sync_stop = threading.Event()
        self._sync_thread: threading.Thread | None = None
        if sync_interval is not None:
            self._start_auto_sync(sync_interval)

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: Unpack[config.ClientOptions]
    ) -> Self:
        """Connect as etcdctl would with these ETCDCTL_* variables; keywords override them.

        Args:
            environ: the variables to read (None: `os.environ`); see
                `etcd_layers.config.options_from_env` for each one.
            **overrides: any `Client(...)` keyword, used instead of the environment's value.

        Raises:
            ValueError: an unknown or unsupported ETCDCTL_* variable, or a bad value (before
                any I/O); otherwise as `Client(...)`.
        """
        found = config.options_from_env(environ)
        return cls(
            **config.with_overrides(found, overrides, source="ETCDCTL_USER/ETCDCTL_PASSWORD")
        )

    @classmethod
    def from_config(cls, path: str | Path, **overrides: Unpack[config.ClientOptions]) -> Self:
        """Connect with the settings of a Go clientv3/yaml file; keywords override them.

        Args:
            path: the YAML file; see `etcd_layers.config.options_from_config` for its keys.
            **overrides: any `Client(...)` keyword, used instead of the file's value.

        Raises:
            ValueError: a missing file, an unknown key, a bad value or a setting Client cannot
                honour (before any I/O but reading the file); otherwise as `Client(...)`.
        """
        found = config.options_from_config(path)
        return cls(**config.with_overrides(found, overrides, source=str(path)))

    # --- lifecycle -----------------------------------------------------------------------

    @property
    def endpoints(self) -> list[str]:
        """The endpoints as `host:port`, in the order given."""
        return self._conn.addresses

    @property
    def connection(self) -> Connection:
        """The connection the client runs over: its endpoints, channels and auth metadata."""
        return self._conn

    def set_endpoints(self, *endpoints: str) -> None:
        """Use these endpoints from the next request on; running streams move to them.

        Raises:
            ValueError: no endpoint, or one that is not `host:port`.
        """
        addresses, _ = parse_endpoints(list(endpoints))
        self._conn.check_open()
        self._conn.set_endpoints(addresses)

    def switch_endpoint(self) -> str:
        """Send unary requests to the next endpoint from now on, and return its address.

        The client stops balancing and starts every request at that endpoint (still failing
        over when it is unreachable); each call moves on to the next endpoint in the order
        given. `endpoints` keeps that order; `set_endpoints` keeps the choice while its
        address stays. `ordering.switch_endpoints` uses it to leave a member that is behind.

        Raises:
            CanceledError: the client is closed.
        """
        return self._conn.switch_endpoint()

    def __repr__(self) -> str:
        conn: Connection | None = getattr(self, "_conn", None)  # None: __init__ failed early
        if conn is None:
            return "<Client (not connected)>"
        state = " closed" if conn.closed.is_set() else ""
        return f"<Client endpoints={conn.addresses!r}{state}>"

    def close(self) -> None:
        """End every watch and keep-alive and close the connections (idempotent)."""
        self._sync_stop.set()
        self._conn.close()
        thread = self._sync_thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # --- KV ------------------------------------------------------------------------------

    # The KV calls, written once over do() (see base.protocols): this class overrides do().
    put, get, delete, txn = KV.put, KV.get, KV.delete, KV.txn

    @overload
    def do(self, op: GetOp, *, timeout: float | None = None) -> GetResponse: ...
    @overload
    def do(self, op: PutOp, *, timeout: float | None = None) -> PutResponse: ...
    @overload
    def do(self, op: DeleteOp, *, timeout: float | None = None) -> DeleteResponse: ...
    @overload
    def do(self, op: TxnOp, *, timeout: float | None = None) -> TxnResponse: ...
    @overload
    def do(self, op: Op, *, timeout: float | None = None) -> Response: ...
    def do(self, op: Op, *, timeout: float | None = None) -> Response:
        """Run one Op (see KV.do)."""
        timeout = check_timeout(timeout)
        if isinstance(op, GetOp):
            return self._get(op, timeout)
        if isinstance(op, PutOp):
            return self._put(op, timeout)
        if isinstance(op, DeleteOp):
            return self._delete(op, timeout)
        if isinstance(op, TxnOp):
            return self._txn(op, timeout)
        raise TypeError(f"op must be an Op built by Op.get/put/delete/txn, not {type(op).__name__}")

    def _get(self, op: GetOp, timeout: float | None) -> GetResponse:
        message = self._conn.call(_methods.RANGE, _wire.range_request(op), timeout, idempotent=True)
        return _convert.get_response(message)

    def _put(self, op: PutOp, timeout: float | None) -> PutResponse:
        message = self._conn.call(_methods.PUT, _wire.put_request(op), timeout, idempotent=False)
        return _convert.put_response(message)

    def _delete(self, op: DeleteOp, timeout: float | None) -> DeleteResponse:
        message = self._conn.call(
            _methods.DELETE_RANGE, _wire.delete_request(op), timeout, idempotent=False
        )
        return _convert.delete_response(message)

    def _txn(self, op: TxnOp, timeout: float | None) -> TxnResponse:
        message = self._conn.call(
            _methods.TXN, _convert.txn_request(op), timeout, idempotent=not op.is_write
        )
        return _convert.txn_response(message)

    compact = sync_call(_compact.compact)
