"""Mirror: a live local copy of a prefix, loaded in pages and kept current by a watch thread."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Final

from etcd_layers._compat import Self
from etcd_layers.base.deadline import Deadline
from etcd_layers.base.keys import StrOrBytes, to_bytes
from etcd_layers.base.protocols import KV, Watch, Watcher
from etcd_layers.base.responses import KeyValue, WatchResponse
from etcd_layers.base.retry import Backoff
from etcd_layers.base.waiting import WAIT_SLICE
from etcd_layers.errors import CanceledError, EtcdError
from etcd_layers.mirror._common import (
    CHECK_INTERVAL,
    QUIET_AFTER,
    Callback,
    Subscribers,
    check_callback,
    check_options,
    check_wait,
    deliver,
    replay_events,
    report_lag,
)
from etcd_layers.mirror._pages import DEFAULT_PAGE_SIZE
from etcd_layers.mirror._read import get_pages
from etcd_layers.mirror._store import (
    Recovery,
    Store,
    diff,
    is_quiet,
    quiet_check,
    recovery_for,
)

__all__ = ["Mirror"]

logger: Final = logging.getLogger("etcd_layers.mirror")


class Mirror:
    """A live local copy of every key under a prefix, on any KV + Watcher speaker.

    ```python
    with Mirror(cli, "config/") as m:
        m.get(b"config/db")                      # bytes | None, from memory, without a lock
        resp = cli.put("config/db", "x")
        m.wait(resp.header.revision)             # read-your-writes
        unsubscribe = m.subscribe(lambda events: print(events))
    ```

    The constructor loads the prefix in pages at one revision, then starts a watch from that
    revision + 1, followed by a thread of its own. No change is missed or applied twice: the
    client's watch resumes across dropped connections, member restarts and failover; a watch
    that ends anyway is restarted from the copy's revision + 1 (events it already has are
    skipped by their mod revision); when that revision is compacted away, the mirror loads
    the prefix again and reports the difference as events.
    """

    def __init__(
        self,
        client: KV,
        prefix: StrOrBytes,
        *,
        page_size: int = DEFAULT_PAGE_SIZE,
        prev_kv: bool = False,
        timeout: float | None = None,
    ) -> None:
        """Load `prefix` (`""`: every key) and start following it.

        Args:
            client: a KV + Watcher speaker (a Client, a namespace, any layer stack).
            prefix: the keys to mirror.
            page_size: keys per page of a load.
            prev_kv: watch with prev_kv, so that events carry the pair as it was before.
            timeout: seconds for the load and the watch's start, and the default of wait()
                (None: the client's default for the calls, no bound for wait()).

        Raises:
            TypeError, ValueError: bad arguments (before any I/O).
            EtcdError: the load or the watch's start failed.
        """
        self._options = check_options(client, prefix, page_size, prev_kv, timeout)
        self._client = client
        self._watcher: Watcher = client  # type: ignore[assignment]  # checked above
        self._store = Store()
        self._values = self._store.values  # the hot path: one dict, never replaced
        self._lock = threading.Lock()  # the store's revision, batches and the subscriber list
        self._changed = threading.Condition(self._lock)
        self._dispatch = threading.RLock()  # deliveries, in order, one at a time
        self._subscribers = Subscribers()
        self._stop = threading.Event()
        self._watch_lock = threading.Lock()  # the current watch, canceled by close()
        self._current: Watch | None = None
        deadline = Deadline(self._options.timeout)
        for page in get_pages(
            client, prefix, self._options.page_size, timeout=self._options.timeout
        ):
            self._store.add_page(page)
            deadline.remaining()  # the whole load within `timeout`
        watch = self._start_watch()
        self._thread = threading.Thread(
            target=self._follow, args=(watch,), name="etcd_layers.mirror.follow", daemon=True
        )
        self._thread.start()

    # -- reads: from memory ------------------------------------------------------------------

    def get(self, key: StrOrBytes) -> bytes | None:
        """Return the value of `key` in the copy, or None if it is not there."""
        value = self._values.get(key)  # type: ignore[arg-type]  # a str misses: converted below
        if value is None and type(key) is not bytes:
            return self._values.get(to_bytes(key, name="key"))
        return value

    def get_kv(self, key: StrOrBytes) -> KeyValue | None:
        """Return the KeyValue of `key` (revisions, version, lease), or None."""
        return self._store.kv(to_bytes(key, name="key"))

    def items(self) -> dict[bytes, bytes]:
        """Return a copy of every key and value, as of `revision` (one consistent state)."""
        with self._lock:
            return dict(self._values)

    def snapshot(self) -> tuple[int, dict[bytes, KeyValue]]:
        """Return the revision and a copy of every KeyValue, taken together."""
        with self._lock:
            return self._store.revision, self._store.kvs()

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, key: object) -> bool:
        return to_bytes(key, name="key") in self._values

    @property
    def prefix(self) -> bytes:
        """The mirrored prefix, as given (in the client's key space)."""
        return self._options.prefix

    @property
    def revision(self) -> int:
        """The store revision the copy reflects: every change up to it is in."""
        return self._store.revision

    @property
    def closed(self) -> bool:
        """Whether close() was called."""
        return self._stop.is_set()

    # -- waiting and subscribing -------------------------------------------------------------

    def wait(self, revision: int, *, timeout: float | None = None) -> None:
        """Block until the copy includes `revision` (e.g. a write's header revision).

        A revision that changed no key under the prefix brings no event: after a short wait
        for events, the mirror proves with one read at `revision` that nothing under the
        prefix changed since its last event (etcd's progress notifications are not relied
        on: before 3.5.8 they can run ahead of events).

        Args:
            revision: the store revision to wait for.
            timeout: seconds (None: the mirror's timeout, without bound if it has none).

        Raises:
            TimeoutError: the builtin, when the copy is still older after `timeout`.
            CanceledError: the mirror was closed first.
        """
        deadline = Deadline(check_wait(revision, timeout, self._options.timeout))
        pause = QUIET_AFTER
        while True:
            with self._lock:
                self._changed.wait_for(
                    lambda: self._store.revision >= revision or self._stop.is_set(),
                    timeout=deadline.left_or(pause),
                )
                if self._store.revision >= revision:
                    return
                applied, count = self._store.applied, len(self._store.values)
            if self._stop.is_set():
                raise CanceledError("the mirror is closed")
            if deadline.expired():
                raise TimeoutError(f"the mirror is at {self._store.revision}, not {revision}")
            self._prove_quiet(applied, count, revision, deadline)
            pause = CHECK_INTERVAL

    def _prove_quiet(self, applied: int, count: int, revision: int, deadline: Deadline) -> None:
        """Confirm `revision` if nothing under the prefix changed after `applied`."""
        try:
            response = self._client.do(
                quiet_check(self._options.prefix, applied, revision),
                timeout=deadline.left_or(CHECK_INTERVAL) or CHECK_INTERVAL,
            )
        except EtcdError as err:  # a future or compacted revision, a failure: events decide
            logger.debug("the mirror could not check revision %d: %r", revision, err)
            return
        if not is_quiet(response, count):
            return
        with self._lock:
            if self._store.applied == applied and self._store.confirm(revision):
                self._changed.notify_all()

    def subscribe(self, callback: Callback, *, replay: bool = False) -> Callable[[], None]:
        """Call `callback(events)` with each change applied from now on; return the unsubscribe.

        Callbacks run on the mirror's thread, one batch at a time, in revision order, after
        the batch is applied (so `m.get` inside one sees it). An exception from a callback is
        logged and does not stop the mirror. A callback must not wait on the mirror (its
        thread is the one running the callback).

        Args:
            callback: called with a list of Events (a reload's difference is one list).
            replay: first call it with the current content as PUT events (even if empty),
                atomically with the subscription: no change is missed or seen twice.
        """
        check_callback(callback)
        with self._dispatch:
            with self._lock:
                entry = self._subscribers.add(callback)
                initial = replay_events(self._store.kvs()) if replay else None
            if initial is not None:
                deliver((entry,), initial)

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers.remove(entry)

        return unsubscribe

    # -- the follower ------------------------------------------------------------------------

    def _start_watch(self) -> Watch:
        watch = self._watcher.watch(
            self._options.prefix,
            prefix=True,
            start_revision=self._store.applied + 1,
            prev_kv=self._options.prev_kv,
            timeout=self._options.timeout,
        )
        with self._watch_lock:
            self._current = watch
            stopped = self._stop.is_set()
        if stopped:  # close() ran while this watch started
            watch.cancel()
        return watch

    def _follow(self, watch: Watch) -> None:
        try:
            self._follow_until_stopped(watch)
        finally:  # however the thread ends, waiters learn it instead of waiting on
            self._stop.set()
            with self._lock:
                self._changed.notify_all()

    def _follow_until_stopped(self, watch: Watch) -> None:
        while not self._stop.is_set():
            try:
                response = watch.next(timeout=WAIT_SLICE)
            except TimeoutError:
                continue
            except EtcdError as err:
                if self._stop.is_set():
                    return
                logger.info("the mirror of %r recovers from %r", self._options.prefix, err)
                recovered = self._recover(recovery_for(err))
                if recovered is None:
                    return
                watch = recovered
            else:
                self._take(response)

    def _take(self, response: WatchResponse) -> None:
        if response.events:
            with self._lock:
                events = self._store.apply(response.events)
                if not events:
                    return
                report_lag(response.header.revision, self._store.revision)
                entries = self._subscribers.entries
                self._changed.notify_all()
            if entries:
                with self._dispatch:
                    deliver(entries, events)

    def _recover(self, recovery: Recovery) -> Watch | None:
        """Reload if needed and watch again; retry with a back-off until it works or close()."""
        backoff = Backoff()
        while not self._stop.is_set():
            try:
                if recovery is Recovery.RELOAD:
                    self._reload()
                    recovery = Recovery.RESTART
                return self._start_watch()
            except EtcdError as err:
                decided = recovery_for(err, starting=True)
                if decided is Recovery.STOP:
                    logger.warning("the mirror of %r stops: %r", self._options.prefix, err)
                    self._stop.set()
                    with self._lock:
                        self._changed.notify_all()
                    return None
                if decided is Recovery.RELOAD:  # else a reload not done yet stays to do
                    recovery = decided
                logger.warning("the mirror of %r could not recover: %r", self._options.prefix, err)
                if self._stop.wait(backoff.next()):
                    return None
        return None

    def _reload(self) -> None:
        fresh = Store()
        for page in get_pages(
            self._client,
            self._options.prefix,
            self._options.page_size,
            timeout=self._options.timeout,
        ):
            fresh.add_page(page)
        with self._lock:
            events = diff(self._store, fresh)
            self._store.replace(events, fresh.revision)
            entries = self._subscribers.entries
            self._changed.notify_all()
        if entries and events:
            with self._dispatch:
                deliver(entries, events)

    # -- lifetime ----------------------------------------------------------------------------

    def close(self) -> None:
        """Stop following (idempotent): cancel the watch and join the thread.

        The copy stays readable, frozen at its last revision.
        """
        self._stop.set()
        with self._watch_lock:
            watch = self._current
        if watch is not None:
            watch.cancel()
        with self._lock:
            self._changed.notify_all()
        if threading.current_thread() is not self._thread:
            self._thread.join()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
