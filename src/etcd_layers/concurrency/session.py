"""Session: a lease kept alive in the background, which announces its end without polling."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Final, TypeAlias

from etcd_layers._compat import Self
from etcd_layers.base.checks import check_int, check_timeout
from etcd_layers.base.deadline import Deadline
from etcd_layers.base.protocols import (
    KeepAlive,
    KVWatcherLease,
    speaks_kv_watcher_lease,
)
from etcd_layers.errors import CanceledError, EtcdError, LeaseNotFoundError

logger = logging.getLogger("etcd_layers.concurrency")

DEFAULT_TTL: Final = 60  # seconds, as Go's defaultSessionTTL
THREAD_NAME: Final = "etcd_layers.concurrency.session"
# How long clean-up requests may take once the caller's own deadline is spent or absent.
CLEANUP_TIMEOUT: Final = 5.0


# What the concurrency recipes need: a Client, or any layer stacked on one.
SessionClient: TypeAlias = KVWatcherLease


class SessionExpiredError(EtcdError):
    """The session ended (or its key was lost) while a lock or campaign waited.

    Go's `ErrSessionExpired`.
    """


class Session:
    """A lease kept alive by a background thread, for Mutex and Election to attach keys to.

    As Go's `concurrency.NewSession`: grants a lease of `ttl` seconds (or adopts `lease_id`)
    and renews it with `client.keep_alive` until `close()`. When the renewals end for any
    reason (the lease expired or was revoked, a renewal could not be confirmed within the TTL,
    the client was closed, or `close()`/`orphan()`), `done` is set and every `on_done`
    callback runs; `error` then says why.

    Args:
        client: a Client or any wrapper speaking the KV, Watcher and Lease Protocols.
        ttl: the lease's TTL in seconds (> 0); ignored when adopting `lease_id`, whose granted
            TTL is used instead.
        lease_id: adopt this existing lease instead of granting one (None or 0: grant).
        timeout: seconds for setting up (grant and first renewal); None: the client's default.

    Raises:
        TypeError: `client` does not speak the three Protocols, or an argument has the wrong
            type (before any I/O).
        ValueError: `ttl` is not positive, or `lease_id` is negative (before any I/O).
        LeaseNotFoundError: `lease_id` does not exist.
    """

    def __init__(
        self,
        client: SessionClient,
        ttl: int = DEFAULT_TTL,
        lease_id: int | None = None,
        *,
        timeout: float | None = None,
    ) -> None:
        self._lease_id = 0
        self._ttl = 0
        self._state = threading.Lock()
        self._done = threading.Event()
        self._callbacks: dict[int, Callable[[], None]] = {}
        self._next_token = 0
        self._error: EtcdError | None = None
        self._closed = False
        if not speaks_kv_watcher_lease(client):
            raise TypeError(
                "client must speak the KV, Watcher and Lease Protocols, "
                f"not {type(client).__name__}"
            )
        ttl = check_int(ttl, "ttl")
        if ttl == 0:
            raise ValueError("ttl must be > 0 seconds, got 0")
        adopted = 0 if lease_id is None else check_int(lease_id, "lease_id")
        deadline = Deadline(check_timeout(timeout))
        granted = 0
        if adopted:
            status = client.time_to_live(adopted, timeout=deadline.remaining())
            if status.ttl == -1:  # etcd's answer for a missing lease
                raise LeaseNotFoundError(f"lease {adopted:x} not found")
            ttl = status.granted_ttl
        else:
            grant = client.grant(ttl, timeout=deadline.remaining())
            granted, ttl = grant.id, grant.ttl  # the server may raise a TTL to its minimum
        self._client = client
        self._lease_id = adopted or granted
        self._ttl = ttl
        try:
            self._keep_alive: KeepAlive = client.keep_alive(
                self._lease_id, timeout=deadline.remaining()
            )
        except BaseException:
            if granted:  # Go leaves it to expire; a lease we made and cannot use goes now
                self._revoke(CLEANUP_TIMEOUT)
            raise
        self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
        self._thread.start()

    # --- what users read --------------------------------------------------------------------

    @property
    def client(self) -> SessionClient:
        """The object this session runs on (Go's `Session.Client`)."""
        return self._client

    @property
    def lease_id(self) -> int:
        """The id of the session's lease."""
        return self._lease_id

    @property
    def ttl(self) -> int:
        """The lease's granted TTL in seconds."""
        return self._ttl

    @property
    def done(self) -> threading.Event:
        """Set once the lease is no longer kept alive (Go's `Session.Done`); never set it."""
        return self._done

    @property
    def error(self) -> EtcdError | None:
        """Why the keep-alive ended, if an error ended it (None while running or after close)."""
        return self._error

    def on_done(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback()` once the session is done (at once, here, if it already is).

        Callbacks run on the session's thread, after `done` is set; one that raises is logged
        and does not stop the others. Keep them short: `close()` waits for them.

        Returns:
            A function that unregisters the callback (does nothing once it ran).

        Raises:
            TypeError: `callback` is not callable.
        """
        if not callable(callback):
            raise TypeError(f"callback must be callable, not {type(callback).__name__}")
        with self._state:
            if not self._done.is_set():
                token = self._next_token
                self._next_token += 1
                self._callbacks[token] = callback
                return lambda: self._unregister(token)
        callback()
        return _nothing

    def _unregister(self, token: int) -> None:
        with self._state:
            self._callbacks.pop(token, None)

    # --- lifecycle ------------------------------------------------------------------------

    def orphan(self) -> None:
        """Stop renewing the lease without revoking it (Go's `Session.Orphan`).

        The lease, and every key attached to it, lives on until its TTL runs out. `done` is
        set before this returns.
        """
        self._keep_alive.cancel()
        if threading.current_thread() is not self._thread:  # a done callback may call this
            self._thread.join()

    def close(self, *, timeout: float | None = None) -> None:
        """Stop renewing and revoke the lease, deleting every key attached to it (idempotent).

        Revoking is best effort, as in Go: a failure is logged, not raised, because the lease
        expires within its TTL anyway.

        Args:
            timeout: seconds for the revoke; None means the session's TTL (Go's choice: a
                revoke slower than that finds the lease expired anyway).
        """
        timeout = check_timeout(timeout)
        with self._state:
            closed, self._closed = self._closed, True
        if closed:
            return
        self.orphan()
        self._revoke(self._ttl if timeout is None else timeout)

    def _revoke(self, timeout: float) -> None:
        try:
            self._client.revoke(self._lease_id, timeout=timeout)
        except (LeaseNotFoundError, CanceledError):
            pass  # already expired or revoked, or the client is closed: the lease ends anyway
        except EtcdError as err:
            logger.warning(
                "revoking session lease %x failed (%s); it expires within %ss",
                self._lease_id,
                err,
                self._ttl,
            )

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
        state = "done" if self._done.is_set() else "alive"
        return f"<Session lease={self._lease_id:x} ttl={self._ttl} {state}>"

    # --- the keep-alive thread --------------------------------------------------------------

    def _run(self) -> None:
        error: EtcdError | None = None
        try:
            for _ in self._keep_alive:
                pass  # each renewal only proves the lease is alive; Go drains them the same way
        except EtcdError as err:  # LeaseNotFoundError: lost, or possibly expired unconfirmed
            error = err
        finally:
            self._finish(error)

    def _finish(self, error: EtcdError | None) -> None:
        with self._state:
            self._error = error
            self._done.set()
            callbacks = list(self._callbacks.values())
            self._callbacks.clear()
        if error is not None:
            logger.info("session lease %x ended: %s", self._lease_id, error)
        for callback in callbacks:
            try:
                callback()
            except Exception:
                logger.exception("a done callback of session lease %x failed", self._lease_id)


def _nothing() -> None:
    """Unregister a callback that already ran."""
