"""The in-memory etcd's core: every request message in, etcd 3.5's response message out (pure).

No grpc, no threads, no clock reads: the time is passed to the lease calls, and the watch
responses each call makes wait in `take_outgoing()` for the shell to deliver. One caller at a
time (the shell holds its lock around every call).
"""

from __future__ import annotations

from typing import Final

from etcd_layers.base.transport import rpc_pb2
from etcd_layers.testing.memory._apply import Applier, is_plain_get
from etcd_layers.testing.memory._checks import check_delete, check_put, check_range, check_txn
from etcd_layers.testing.memory._errors import COMPACTED, FUTURE_REVISION, store_error
from etcd_layers.testing.memory._keyspace import Keyspace
from etcd_layers.testing.memory._leases import Leases
from etcd_layers.testing.memory._watchers import Outgoing, Watches

CLUSTER_ID: Final = 0x6D656D6F72790001  # fixed ids of the one-member cluster it pretends to be
MEMBER_ID: Final = 0x6D656D6F72790002
RAFT_TERM: Final = 2
VERSION: Final = "3.5.1"  # the etcd whose answers it gives
MEMBER_NAME: Final = "memory"


class Store:
    """An MVCC keyspace with leases and watches, answering etcd's KV, Lease and Watch requests."""

    def __init__(self, *, min_lease_ttl: int = 2) -> None:
        self._last_header = rpc_pb2.ResponseHeader(revision=-1)  # the last one made, reused
        self.keyspace = Keyspace()
        self.leases = Leases(min_lease_ttl)
        self.watches = Watches(self.keyspace, self.header)
        self._applier = Applier(self.keyspace, self.leases, self.header)
        self._outgoing: Outgoing = []
        self._raft_index = 1

    def header(self, revision: int) -> rpc_pb2.ResponseHeader:
        """A response header at `revision`, from this store's one member (never mutate it)."""
        last = self._last_header
        if last.revision != revision:
            last = self._last_header = rpc_pb2.ResponseHeader(
                cluster_id=CLUSTER_ID, member_id=MEMBER_ID, revision=revision, raft_term=RAFT_TERM
            )
        return last

    @property
    def revision(self) -> int:
        """The current revision."""
        return self.keyspace.revision

    def take_outgoing(self) -> Outgoing:
        """The watch responses made since the last call, in order, as (stream id, response)."""
        outgoing, self._outgoing = self._outgoing, []
        return outgoing

    def _commit(self) -> None:
        changes = self.keyspace.commit()
        self._raft_index += 1
        if changes:
            self._outgoing.extend(self.watches.commit(self.keyspace.revision, changes))

    # --- KV --------------------------------------------------------------------------------

    def range(self, request: rpc_pb2.RangeRequest) -> rpc_pb2.RangeResponse:
        """KV.Range."""
        if request.key and is_plain_get(request):  # nothing to check: the usual read
            return self._applier.plain_get(request.key)
        check_range(request)
        return self._applier.range(request)

    def put(self, request: rpc_pb2.PutRequest) -> rpc_pb2.PutResponse:
        """KV.Put."""
        check_put(request)
        try:
            return self._applier.put(request)
        finally:
            self._commit()

    def delete_range(self, request: rpc_pb2.DeleteRangeRequest) -> rpc_pb2.DeleteRangeResponse:
        """KV.DeleteRange."""
        check_delete(request)
        try:
            return self._applier.delete(request)
        finally:
            self._commit()

    def txn(self, request: rpc_pb2.TxnRequest) -> rpc_pb2.TxnResponse:
        """KV.Txn."""
        check_txn(request)
        try:
            response = self._applier.txn(request)
        finally:
            self._commit()
        response.header.CopyFrom(self.header(self.keyspace.revision))
        return response

    def compact(self, request: rpc_pb2.CompactionRequest) -> rpc_pb2.CompactionResponse:
        """KV.Compact (always physical: it is done when it returns)."""
        keyspace = self.keyspace
        if request.revision <= keyspace.compact_revision:
            raise store_error(COMPACTED)
        if request.revision > keyspace.revision:
            raise store_error(FUTURE_REVISION)
        keyspace.compact(request.revision)
        self._raft_index += 1
        return rpc_pb2.CompactionResponse(header=self.header(keyspace.revision))

    # --- Lease -----------------------------------------------------------------------------

    def lease_grant(
        self, request: rpc_pb2.LeaseGrantRequest, now: float
    ) -> rpc_pb2.LeaseGrantResponse:
        """Lease.LeaseGrant."""
        lease = self.leases.grant(request.ID, request.TTL, now)
        self._raft_index += 1
        return rpc_pb2.LeaseGrantResponse(
            header=self.header(self.keyspace.revision), ID=lease.lease_id, TTL=lease.ttl
        )

    def lease_revoke(self, request: rpc_pb2.LeaseRevokeRequest) -> rpc_pb2.LeaseRevokeResponse:
        """Lease.LeaseRevoke: the lease's keys go in one revision."""
        self.revoke(request.ID)
        return rpc_pb2.LeaseRevokeResponse(header=self.header(self.keyspace.revision))

    def revoke(self, lease_id: int) -> None:
        """Drop a lease and delete its keys in one revision (StoreError: not found)."""
        lease = self.leases.remove(lease_id)
        try:
            self._applier.delete_keys(list(lease.keys))
        finally:
            self._commit()

    def lease_keep_alive(
        self, request: rpc_pb2.LeaseKeepAliveRequest, now: float
    ) -> rpc_pb2.LeaseKeepAliveResponse:
        """One renewal of a LeaseKeepAlive stream: TTL 0 if the lease is gone (no revision)."""
        lease = self.leases.get(request.ID)
        ttl = 0
        if lease is not None:
            ttl = self.leases.renew(request.ID, now)
        return rpc_pb2.LeaseKeepAliveResponse(
            header=self.header(self.keyspace.revision), ID=request.ID, TTL=ttl
        )

    def lease_time_to_live(
        self, request: rpc_pb2.LeaseTimeToLiveRequest, now: float
    ) -> rpc_pb2.LeaseTimeToLiveResponse:
        """Lease.LeaseTimeToLive: TTL -1 for a lease that does not exist."""
        response = rpc_pb2.LeaseTimeToLiveResponse(
            header=self.header(self.keyspace.revision), ID=request.ID, TTL=-1
        )
        lease = self.leases.get(request.ID)
        if lease is not None:
            response.TTL = lease.remaining(now)
            response.grantedTTL = lease.ttl
            if request.keys:
                response.keys.extend(sorted(lease.keys))
        return response

    def lease_leases(self, request: rpc_pb2.LeaseLeasesRequest) -> rpc_pb2.LeaseLeasesResponse:
        """Lease.LeaseLeases."""
        del request  # it has no fields
        return rpc_pb2.LeaseLeasesResponse(
            header=self.header(self.keyspace.revision),
            leases=[rpc_pb2.LeaseStatus(ID=lease_id) for lease_id in self.leases.ids()],
        )

    def next_expiry(self, kept: frozenset[int] = frozenset()) -> float | None:
        """When the first lease not in `kept` runs out, on the clock (None: no such lease)."""
        lease = self.leases.next_expiry(kept)
        return None if lease is None else lease.deadline

    def expire(self, now: float, kept: frozenset[int] = frozenset()) -> list[int]:
        """Revoke every lease not in `kept` that ran out by `now`, the earliest first.

        A lease runs out once the clock is not before its deadline, as etcd's lessor sees it.
        Returns the ids revoked.
        """
        expired = []
        while (lease := self.leases.next_expiry(kept)) is not None and lease.deadline <= now:
            self.revoke(lease.lease_id)
            expired.append(lease.lease_id)
        return expired

    def renew_all(self, lease_ids: frozenset[int], now: float) -> None:
        """Renew these leases (the ones whose keep-alive runs) at `now`, if they exist."""
        for lease_id in lease_ids:
            if self.leases.get(lease_id) is not None:
                self.leases.renew(lease_id, now)

    # --- Watch -----------------------------------------------------------------------------

    def watch_open(self) -> int:
        """Start a Watch stream; return its id."""
        return self.watches.open_stream()

    def watch_request(self, stream: int, request: rpc_pb2.WatchRequest) -> None:
        """Take one request of a Watch stream; its answers wait in take_outgoing()."""
        self._outgoing.extend(
            (stream, response) for response in self.watches.request(stream, request)
        )

    def watch_close(self, stream: int) -> None:
        """End a Watch stream."""
        self.watches.close_stream(stream)

    def progress(self) -> None:
        """Queue a progress notification for every watcher that asked for them."""
        self._outgoing.extend(self.watches.progress())

    # --- Maintenance and Cluster -----------------------------------------------------------

    def status(self, request: rpc_pb2.StatusRequest) -> rpc_pb2.StatusResponse:
        """Maintenance.Status, as the leader of a one-member cluster."""
        del request
        return rpc_pb2.StatusResponse(
            header=self.header(self.keyspace.revision),
            version=VERSION,
            dbSize=0,
            leader=MEMBER_ID,
            raftIndex=self._raft_index,
            raftTerm=RAFT_TERM,
            raftAppliedIndex=self._raft_index,
            dbSizeInUse=0,
        )

    def member_list(
        self, request: rpc_pb2.MemberListRequest, client_urls: list[str]
    ) -> rpc_pb2.MemberListResponse:
        """Cluster.MemberList: this store's one member, reachable at `client_urls`."""
        del request
        member = rpc_pb2.Member(
            ID=MEMBER_ID,
            name=MEMBER_NAME,
            peerURLs=["http://127.0.0.1:2380"],
            clientURLs=client_urls,
        )
        return rpc_pb2.MemberListResponse(
            header=self.header(self.keyspace.revision), members=[member]
        )
