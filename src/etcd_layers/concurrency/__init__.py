"""Distributed locks and leader elections on etcd leases, as Go's clientv3/concurrency.

A Session grants a lease and keeps it alive on a background thread; Mutex and Election attach
their keys to it, so everything a crashed process held is released when its lease expires.
Given a client `cli` (a Client, or any layer stacked on one, such as `namespace.wrap(cli, p)`):

>>> from etcd_layers.concurrency import Election, Mutex, Session
>>> with Session(cli, ttl=5) as session:
...     with Mutex(session, prefix + b"lock"):  # lock() on entry, unlock() on exit
...         _ = cli.put(prefix + b"counter", b"1")
...     election = Election(session, prefix + b"election")
...     election.campaign(b"me", timeout=5)  # blocks until this session leads
...     election.leader().value
...     election.resign()
b'me'
>>> session.done.is_set()  # close() on exit revoked the lease
True

A session that must not outlive its lease's end reacts to it without polling:
`session.done.wait()`, or `session.on_done(callback)`.

AsyncSession, AsyncMutex and AsyncElection are their asyncio forms, on an AsyncClient (or an
async layer), with the same keys and queue, so sync and async processes share one lock or
election: `async with AsyncSession(acli, ttl=10) as s: async with AsyncMutex(s, "locks/x"): ...`.

Go's experimental recipes are here too, on Go's keys (see each module's docstring for its
layout), so Go and Python processes share them: Barrier and DoubleBarrier (barrier.py), Queue
and PriorityQueue (queue.py), RWMutex (rwmutex.py), and their Async* twins.

`stm(cli, apply)` runs `apply(tx)` as a transaction over any keys, retried until it commits
(Go's software transactional memory), with Go's four isolation levels (`Isolation`).
"""

from __future__ import annotations

from etcd_layers.concurrency._recipe_keys import KeyExistsError, TooManyClientsError
from etcd_layers.concurrency.async_barrier import AsyncBarrier, AsyncDoubleBarrier
from etcd_layers.concurrency.async_election import AsyncElection, AsyncObservation
from etcd_layers.concurrency.async_mutex import AsyncMutex
from etcd_layers.concurrency.async_queue import AsyncPriorityQueue, AsyncQueue
from etcd_layers.concurrency.async_rwmutex import AsyncRWMutex
from etcd_layers.concurrency.async_session import AsyncSession, AsyncSessionClient
from etcd_layers.concurrency.async_transactions import AsyncSTM
from etcd_layers.concurrency.barrier import Barrier, DoubleBarrier, NotEnteredError
from etcd_layers.concurrency.election import (
    Election,
    ElectionNotLeaderError,
    NoElectionLeaderError,
    Observation,
)
from etcd_layers.concurrency.mutex import LockNotHeldError, Mutex
from etcd_layers.concurrency.queue import PriorityQueue, Queue
from etcd_layers.concurrency.rwmutex import RWMutex
from etcd_layers.concurrency.session import (
    DEFAULT_TTL,
    Session,
    SessionClient,
    SessionExpiredError,
)
from etcd_layers.concurrency.transactions import STM, Isolation, stm

__all__ = [
    "DEFAULT_TTL",
    "STM",
    "AsyncBarrier",
    "AsyncDoubleBarrier",
    "AsyncElection",
    "AsyncMutex",
    "AsyncObservation",
    "AsyncPriorityQueue",
    "AsyncQueue",
    "AsyncRWMutex",
    "AsyncSTM",
    "AsyncSession",
    "AsyncSessionClient",
    "Barrier",
    "DoubleBarrier",
    "Election",
    "ElectionNotLeaderError",
    "Isolation",
    "KeyExistsError",
    "LockNotHeldError",
    "Mutex",
    "NoElectionLeaderError",
    "NotEnteredError",
    "Observation",
    "PriorityQueue",
    "Queue",
    "RWMutex",
    "Session",
    "SessionClient",
    "SessionExpiredError",
    "TooManyClientsError",
    "stm",
]
