"""Maintenance calls: status, defragment, hash_kv, move_leader and alarms as flows; snapshot.

`MaintenanceMixin` makes the flows Client methods and adds the snapshot stream; `_aio_calls`
makes the flows AsyncClient coroutines.
"""

from __future__ import annotations

import contextlib
import os
from typing import IO, TYPE_CHECKING

from etcd_layers.base import _convert
from etcd_layers.base._admin_core import (
    ALARM,
    DEFRAGMENT,
    HASH_KV,
    MOVE_LEADER,
    STATUS,
    alarm_response,
    check_alarm,
    check_endpoint,
    check_member_id,
    status_response,
)
from etcd_layers.base._cluster import ClusterMixin, member_list
from etcd_layers.base._flow import Flow, addresses, call, sync_call
from etcd_layers.base._proto import rpc_pb2
from etcd_layers.base._snapshot import SnapshotSink, SnapshotVerifier, Writable
from etcd_layers.base.admin_responses import (
    AlarmMember,
    AlarmResponse,
    AlarmType,
    DefragmentResponse,
    HashKVResponse,
    MoveLeaderResponse,
    SnapshotResponse,
    StatusResponse,
)
from etcd_layers.base.checks import check_int, check_timeout
from etcd_layers.base.deadline import Deadline
from etcd_layers.base.responses import ResponseHeader
from etcd_layers.errors import (
    DeadlineExceededError,
    EtcdError,
    NoLeaderError,
    UnavailableError,
)

if TYPE_CHECKING:
    from etcd_layers.base._endpoint import Endpoint


def status(endpoint: str, *, timeout: float | None = None) -> Flow[StatusResponse]:
    """Return the status of the member at `endpoint` (asked there only, no failover)."""
    address = check_endpoint(endpoint)
    message = yield from call(STATUS, rpc_pb2.StatusRequest(), idempotent=True, address=address)
    return status_response(message)


def defragment(endpoint: str, *, timeout: float | None = None) -> Flow[DefragmentResponse]:
    """Defragment the backend of the member at `endpoint`, giving free space back.

    The member serves no request while it defragments.
    """
    address = check_endpoint(endpoint)
    request = rpc_pb2.DefragmentRequest()
    message = yield from call(DEFRAGMENT, request, idempotent=False, address=address)
    return DefragmentResponse(_convert.header(message.header))


def hash_kv(
    endpoint: str, revision: int = 0, *, timeout: float | None = None
) -> Flow[HashKVResponse]:
    """Hash the key-value store of the member at `endpoint` up to `revision` (0: newest).

    Raises:
        CompactedError: `revision` has been compacted away.
        FutureRevisionError: `revision` is above the store's current revision.
    """
    address = check_endpoint(endpoint)
    request = rpc_pb2.HashKVRequest(revision=check_int(revision, "revision"))
    message = yield from call(HASH_KV, request, idempotent=True, address=address)
    return HashKVResponse(_convert.header(message.header), message.hash, message.compact_revision)


def move_leader(member_id: int, *, timeout: float | None = None) -> Flow[MoveLeaderResponse]:
    """Transfer leadership to the member `member_id`.

    The request must reach the current leader: it is found through status() of the
    client's endpoints (and the member list for its client URL), as etcdctl does.

    Raises:
        NoLeaderError: no endpoint knows a leader.
        BadLeaderTransfereeError: the member cannot become leader (e.g. a learner).
        NotLeaderError: the leader changed before the request reached it.
    """
    request = rpc_pb2.MoveLeaderRequest(targetID=check_member_id(member_id))
    leader = yield from leader_address()
    message = yield from call(MOVE_LEADER, request, idempotent=False, address=leader)
    return MoveLeaderResponse(_convert.header(message.header))


def leader_address() -> Flow[str]:
    """Return the client address of the leader, asking the client's endpoints in turn.

    Raises:
        NoLeaderError: no endpoint knows a leader with a client URL.
    """
    last_error: EtcdError | None = None
    endpoints = yield from addresses()
    for address in endpoints:
        try:
            found = yield from status(address)
        except DeadlineExceededError:
            raise
        except UnavailableError as err:  # that endpoint is down: ask the next one
            last_error = err
            continue
        if not found.leader:
            continue
        if found.leader == found.header.member_id:
            return address
        listing = yield from member_list()
        for candidate in listing.members:
            if candidate.id == found.leader and candidate.client_urls:
                return check_endpoint(candidate.client_urls[0])
    raise NoLeaderError(
        f"no endpoint of {endpoints} knows a leader with a client URL"
    ) from last_error


def alarm_list(*, timeout: float | None = None) -> Flow[AlarmResponse]:
    """List the alarms raised by any member (etcd 3.4 leaves the header empty)."""
    request = rpc_pb2.AlarmRequest(action=rpc_pb2.AlarmRequest.GET)
    message = yield from call(ALARM, request, idempotent=True)
    return alarm_response(message)


def alarm_disarm(
    member_id: int = 0,
    alarm: AlarmType = AlarmType.NONE,
    *,
    timeout: float | None = None,
) -> Flow[AlarmResponse]:
    """Deactivate an alarm; clear its cause first (e.g. compact and defragment for NOSPACE).

    Args:
        member_id: the member that raised it (0: every member).
        alarm: its kind (AlarmType.NONE: every kind).
        timeout: seconds for the whole call (None: the client's default).

    Returns:
        The alarms that were deactivated.

    clientv3 disarms every listed alarm only when both are zero; we extend that to
    either, since etcd itself deactivates nothing for member 0 or alarm NONE.
    """
    target_member = check_member_id(member_id, allow_zero=True)
    target_alarm = check_alarm(alarm)
    if target_member and target_alarm is not AlarmType.NONE:
        targets = [AlarmMember(target_member, target_alarm)]
    else:
        raised_now = yield from alarm_list()
        targets = [
            raised
            for raised in raised_now.alarms
            if target_member in (0, raised.member_id)
            and target_alarm in (AlarmType.NONE, raised.alarm)
        ]
    header: ResponseHeader | None = None
    disarmed: list[AlarmMember] = []
    for target in targets:
        request = rpc_pb2.AlarmRequest(
            action=rpc_pb2.AlarmRequest.DEACTIVATE,
            memberID=target.member_id,
            alarm=target.alarm.value,  # type: ignore[arg-type]  # IntEnum value is the wire value
        )
        response = alarm_response((yield from call(ALARM, request, idempotent=False)))
        header = response.header
        disarmed.extend(response.alarms)
    if header is None:  # nothing to disarm: still answer with a current header
        header = (yield from alarm_list()).header
    return AlarmResponse(header, disarmed)


class MaintenanceMixin(ClusterMixin):
    """Maintenance of the cluster's members."""

    status = sync_call(status)
    defragment = sync_call(defragment)
    hash_kv = sync_call(hash_kv)
    move_leader = sync_call(move_leader)
    alarm_list = sync_call(alarm_list)
    alarm_disarm = sync_call(alarm_disarm)

    def snapshot(
        self,
        path_or_file: str | os.PathLike[str] | IO[bytes] | Writable,
        *,
        endpoint: str | None = None,
        timeout: float | None = None,
    ) -> SnapshotResponse:
        """Stream the backend snapshot of one member into a file, verified by its checksum.

        A path is written through a temp file beside it, renamed onto the path only once the
        whole stream has arrived and its sha256 matches: a failed snapshot never leaves a file
        there. A file object (opened "wb") is written as the stream arrives; after an error
        its content is incomplete. The data written is the database followed by its 32-byte
        sha256, as `etcdctl snapshot save` writes it and `etcdutl snapshot restore` checks.

        Args:
            path_or_file: where to write.
            endpoint: the member to snapshot (None: one of the client's endpoints, moving
                to another only if none of the stream has arrived yet).
            timeout: seconds for the whole transfer (None: the client's default).

        Returns:
            The bytes written and the verified sha256.

        Raises:
            SnapshotError: the stream was cut short, out of order, or failed its checksum.
            UnavailableError: the connection broke during the transfer.
        """
        target = SnapshotSink.check_target(path_or_file)
        address = None if endpoint is None else check_endpoint(endpoint)
        deadline = self._conn.deadline(check_timeout(timeout))
        self._conn.check_open()
        with SnapshotSink(target) as sink:
            header, digest = self._stream_snapshot(address, deadline, sink)
            sink.commit()
        return SnapshotResponse(header, sink.written, digest)

    def _stream_snapshot(
        self, address: str | None, deadline: Deadline, sink: SnapshotSink
    ) -> tuple[ResponseHeader, bytes]:
        # A snapshot is a read: until its first byte has been written it may be asked again,
        # of the same endpoint (given one) or of the next.
        def attempt(endpoint: Endpoint) -> tuple[ResponseHeader, bytes]:
            return self._receive_snapshot(endpoint, deadline, SnapshotVerifier(), sink)

        return self._conn.run(
            attempt,
            deadline,
            idempotent=True,
            address=address,
            unary=False,
            sent=lambda: bool(sink.written),
        )

    def _receive_snapshot(
        self,
        endpoint: Endpoint,
        deadline: Deadline,
        verifier: SnapshotVerifier,
        sink: SnapshotSink,
    ) -> tuple[ResponseHeader, bytes]:
        header: ResponseHeader | None = None
        with contextlib.closing(self._conn.snapshot_messages(endpoint, deadline)) as messages:
            for message in messages:
                if header is None:
                    header = _convert.header(message.header)
                verifier.feed(message.remaining_bytes, message.blob)
                sink.write(message.blob)
        digest = verifier.finish()
        assert header is not None  # finish() refuses a stream without messages
        return header, digest
