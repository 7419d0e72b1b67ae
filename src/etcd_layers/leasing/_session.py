"""Ownership in the background: the session lease, the revocation watch and the releases.

Three threads per leasing client, each with its own job and all stopped by `stop()`:

* `etcd_layers.leasing.session` keeps the session lease alive with one renewal every third
  of its TTL, timing each from the moment the request was *sent*, so that memory answers only
  while the lease cannot have expired on the server (etcd issue 19091: clientv3 never checks).
  A lost lease clears the cache at once and a new one is granted.
* `etcd_layers.leasing.watch` watches the leasing prefix: a REVOKE on one of our leasing keys
  makes the cache forget the key and queues the delete that lets the writer proceed. If the
  watch fails (it may have missed events), everything cached is dropped and given back.
* `etcd_layers.leasing.release` deletes the leasing keys the cache gave up (revoked, evicted,
  or of unknown state), each guarded by its create revision so a retry is always safe.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Final, TypeAlias

from etcd_layers.base.deadline import Deadline
from etcd_layers.base.protocols import KVWatcherLease, Watch
from etcd_layers.base.responses import Event
from etcd_layers.errors import CanceledError, EtcdError, LeaseNotFoundError
from etcd_layers.leasing._cache import LeaseCache
from etcd_layers.leasing._ownership import (
    BACKGROUND_TIMEOUT,
    RETRY_BACKOFF,
    Failure,
    SessionState,
    apply_event,
    next_backoff,
    orphans,
    renewal_failure,
    serving_window,
)
from etcd_layers.leasing._protocol import release_txn

logger = logging.getLogger("etcd_layers.leasing")

_POLL: Final = 0.5

# What the leasing layer needs below it: a Client, or a layer stacked on one.
LeasingBackend: TypeAlias = KVWatcherLease

__all__ = ["LeasingBackend", "Ownership", "serving_window"]


class Ownership:
    """The background side of a leasing client (see the module docstring).

    Args:
        backend: the client below the layer.
        cache: the leasing cache to keep true.
        prefix: the leasing prefix.
        ttl: the session lease's TTL in seconds.
        clock: the monotonic clock.
    """

    def __init__(
        self,
        backend: LeasingBackend,
        cache: LeaseCache,
        prefix: bytes,
        ttl: int,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._backend = backend
        self._cache = cache
        self._prefix = prefix
        self._ttl = ttl
        self._clock = clock
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._state = SessionState(ttl)
        self._watch: Watch | None = None
        self._threads: list[threading.Thread] = []

    # --- lifecycle -----------------------------------------------------------------------

    def start(self, timeout: float | None) -> None:
        """Grant the session lease and start watching, then start the threads.

        Raises:
            DeadlineExceededError: not done within `timeout`.
        """
        deadline = Deadline(timeout)
        self.grant(deadline.remaining())
        self._watch = self._backend.watch(self._prefix, prefix=True, timeout=deadline.remaining())
        self._cache.set_watching(watching=True)
        for job, target in (
            ("session", self._run_session),
            ("watch", self._run_watch),
            ("release", self._run_release),
        ):
            thread = threading.Thread(target=target, name=f"etcd_layers.leasing.{job}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def stop(self, *, revoke: bool) -> None:
        """Stop the threads; with `revoke`, revoke the session lease (deleting its keys)."""
        self._stop.set()
        self._wake.set()
        self._cache.close()
        watch = self._watch
        if watch is not None:
            watch.cancel()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join()
        self._threads.clear()
        lease_id, self._state.lease_id = self._state.lease_id, 0
        if revoke and lease_id:
            try:
                self._backend.revoke(lease_id, timeout=min(BACKGROUND_TIMEOUT, self._ttl))
            except LeaseNotFoundError:
                pass  # already gone, and its keys with it
            except EtcdError:
                # Its leasing keys go when the lease expires; writers wait until then.
                logger.warning("could not revoke leasing session lease %x", lease_id)

    def _client_closed(self) -> None:
        # The client underneath was closed: nothing can be renewed, watched or released any
        # more, so memory stops answering now and every thread ends.
        logger.info("the client under a leasing client was closed; leasing stops")
        self._stop.set()
        self._wake.set()
        self._cache.close()
        watch = self._watch
        if watch is not None:
            watch.cancel()

    def lost(self, lease_id: int) -> None:
        """An operation found `lease_id` missing: check the session now."""
        if lease_id == self._state.lease_id:
            self._wake.set()

    @property
    def lease_id(self) -> int:
        """The current session lease (0: none)."""
        return self._state.lease_id

    # --- session -------------------------------------------------------------------------

    def grant(self, timeout: float | None) -> None:
        """Grant a new session lease and hand it to the cache (the session thread's step)."""
        sent = self._clock()
        granted = self._backend.grant(self._ttl, timeout=timeout)
        self._cache.start_session(granted.id, self._state.granted(granted.id, granted.ttl, sent))

    def _run_session(self) -> None:
        backoff = RETRY_BACKOFF
        while not self._stop.is_set():
            if not self._state.lease_id:
                try:
                    self.grant(BACKGROUND_TIMEOUT)
                    backoff = RETRY_BACKOFF
                except CanceledError:
                    self._client_closed()
                    return
                except EtcdError:
                    logger.debug("granting a leasing session lease failed", exc_info=True)
                    self._stop.wait(backoff)
                    backoff = next_backoff(backoff)
                continue
            if self._wake.wait(max(0.0, self._state.due() - self._clock())):
                self._wake.clear()
            if self._stop.is_set():
                return
            if self.renew():
                backoff = RETRY_BACKOFF
            else:
                self._stop.wait(backoff)
                backoff = next_backoff(backoff)

    def renew(self) -> bool:
        """Renew the session lease once (the session thread's step).

        Returns:
            False if the renewal failed but the lease may still be alive (retry after a
            back-off); True otherwise (renewed, or found lost and the cache cleared).
        """
        state = self._state
        lease_id = state.lease_id
        sent = self._clock()
        try:
            renewal = self._backend.keep_alive_once(lease_id, timeout=state.renewal_timeout())
        except EtcdError as error:
            failure = renewal_failure(error, state, self._clock())
            if failure is Failure.CLOSED:
                self._client_closed()
            elif failure is Failure.LOST:
                self._lose(lease_id)
            return failure is not Failure.RETRY
        self._cache.renewed(lease_id, state.renewed(renewal.ttl, sent))
        return True

    def _lose(self, lease_id: int) -> None:
        self._cache.end_session(lease_id)
        self._state.lease_id = 0
        logger.info("leasing session lease %x lost; the cache was cleared", lease_id)
        try:  # if it still exists, its leasing keys would hold writers up until it expires
            self._backend.revoke(lease_id, timeout=self._state.revoke_timeout())
        except EtcdError:
            logger.debug("revoking a lost session lease failed", exc_info=True)

    # --- revocation watch ----------------------------------------------------------------

    def _run_watch(self) -> None:
        backoff = RETRY_BACKOFF
        while not self._stop.is_set():
            watch = self._watch
            if watch is None:
                try:
                    watch = self._restart_watch()
                    backoff = RETRY_BACKOFF
                except CanceledError:
                    self._client_closed()
                    return
                except EtcdError:
                    logger.debug("restarting the leasing watch failed", exc_info=True)
                    self._stop.wait(backoff)
                    backoff = next_backoff(backoff)
                    continue
            try:
                for response in watch:
                    for event in response.events:
                        self.on_event(event)
            except CanceledError:
                if not self._stop.is_set():
                    self._client_closed()
                return
            except EtcdError:
                if self._stop.is_set():
                    return
                # Events may be lost (compaction, for one): whatever we cache may have been
                # revoked unseen, so give everything back and start afresh.
                logger.warning("the leasing watch failed; dropping the cache", exc_info=True)
                self._cache.set_watching(watching=False)
                watch.cancel()
                self._watch = None
                continue
            # Iteration ends after our cancel(), or when the client underneath was closed.
            if not self._stop.is_set():
                self._client_closed()
            return

    def _restart_watch(self) -> Watch:
        watch = self._backend.watch(self._prefix, prefix=True, timeout=BACKGROUND_TIMEOUT)
        self._watch = watch
        if self._stop.is_set():
            watch.cancel()
            return watch
        self._cache.set_watching(watching=True)
        # Our leasing keys that nothing caches (the cache was dropped) go back to the server.
        listing = self._backend.get(self._prefix, prefix=True, timeout=BACKGROUND_TIMEOUT)
        for key, incarnation in orphans(self._prefix, self._state, listing.kvs):
            self._cache.release_unless_cached(key, incarnation)
        return watch

    def on_event(self, event: Event) -> None:
        """Apply one event of the leasing prefix to the cache (the watch thread's step)."""
        apply_event(self._cache, self._prefix, self._state, event)

    # --- releases ------------------------------------------------------------------------

    def _run_release(self) -> None:
        backoff = RETRY_BACKOFF
        while not self._stop.is_set():
            release = self._cache.next_release(_POLL)
            if release is None:
                continue
            try:
                self._backend.do(
                    release_txn(self._prefix, release.key, release.incarnation),
                    timeout=BACKGROUND_TIMEOUT,
                )
                backoff = RETRY_BACKOFF
            except CanceledError:
                self._client_closed()
                return
            except EtcdError:
                # Guarded by the create revision, so sending it again can never do harm.
                logger.debug("releasing a leasing key failed; retrying", exc_info=True)
                self._cache.retry_release(release)
                self._stop.wait(backoff)
                backoff = next_backoff(backoff)
