"""Cluster, maintenance and auth administration calls, mixed into Client."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Generator, Sequence
from typing import IO, TYPE_CHECKING, Final, TypeVar

from google.protobuf.message import Message

from etcd_layers.base import _convert
from etcd_layers.base._admin_core import (
    ALARM,
    AUTH_DISABLE,
    AUTH_ENABLE,
    AUTH_STATUS,
    DEFRAGMENT,
    HASH_KV,
    MEMBER_ADD,
    MEMBER_LIST,
    MEMBER_PROMOTE,
    MEMBER_REMOVE,
    MEMBER_UPDATE,
    MOVE_LEADER,
    ROLE_ADD,
    ROLE_DELETE,
    ROLE_GET,
    ROLE_GRANT_PERMISSION,
    ROLE_LIST,
    ROLE_REVOKE_PERMISSION,
    STATUS,
    USER_ADD,
    USER_CHANGE_PASSWORD,
    USER_DELETE,
    USER_GET,
    USER_GRANT_ROLE,
    USER_LIST,
    USER_REVOKE_ROLE,
    alarm_response,
    check_alarm,
    check_endpoint,
    check_member_id,
    check_password,
    check_peer_urls,
    check_permission,
    check_role_name,
    check_user_name,
    endpoints_from_members,
    member,
    members,
    permission_range,
    role_permission,
    status_response,
)
from etcd_layers.base._connection import _never_sent as never_sent
from etcd_layers.base._connection import serialize
from etcd_layers.base._methods import SNAPSHOT_PATH, Method
from etcd_layers.base._proto import auth_pb2, rpc_pb2
from etcd_layers.base._snapshot import SnapshotSink, SnapshotVerifier, Writable
from etcd_layers.base.admin_responses import (
    AlarmMember,
    AlarmResponse,
    AlarmType,
    AuthDisableResponse,
    AuthEnableResponse,
    AuthRoleAddResponse,
    AuthRoleDeleteResponse,
    AuthRoleGetResponse,
    AuthRoleGrantPermissionResponse,
    AuthRoleListResponse,
    AuthRoleRevokePermissionResponse,
    AuthStatusResponse,
    AuthUserAddResponse,
    AuthUserChangePasswordResponse,
    AuthUserDeleteResponse,
    AuthUserGetResponse,
    AuthUserGrantRoleResponse,
    AuthUserListResponse,
    AuthUserRevokeRoleResponse,
    DefragmentResponse,
    HashKVResponse,
    MemberAddResponse,
    MemberListResponse,
    MemberPromoteResponse,
    MemberRemoveResponse,
    MemberUpdateResponse,
    MoveLeaderResponse,
    SnapshotResponse,
    StatusResponse,
)
from etcd_layers.base.deadline import Deadline
from etcd_layers.base.keys import StrOrBytes
from etcd_layers.base.ops import Permission, check_bool, check_int, check_timeout
from etcd_layers.base.responses import ResponseHeader
from etcd_layers.errors import (
    AuthOldRevisionError,
    ClosedError,
    DeadlineExceededError,
    EtcdError,
    InvalidAuthTokenError,
    NoLeaderError,
    UnavailableError,
    translate_rpc_errors,
)

if TYPE_CHECKING:
    from etcd_layers.base._connection import Connection, Endpoint

logger = logging.getLogger(__name__)

ResponseT = TypeVar("ResponseT")

AUTO_SYNC_THREAD: Final = "etcd_layers.admin.autosync"
# clientv3's autoSync gives each sync 5 seconds; so do we, whatever the client's default.
AUTO_SYNC_TIMEOUT: Final = 5.0
_RETRY_BACKOFF: Final = 0.05  # as the connection's own retries
_MAX_RETRY_BACKOFF: Final = 0.5


class AdminMixin:
    """Cluster membership, maintenance and auth administration."""

    _conn: Connection
    _sync_stop: threading.Event
    _sync_thread: threading.Thread | None

    # --- cluster -------------------------------------------------------------------------

    def member_list(
        self, *, serializable: bool = False, timeout: float | None = None
    ) -> MemberListResponse:
        """List the cluster's members.

        Args:
            serializable: answer from the member's local view, which may lag behind a
                change just made elsewhere; by default the list is linearizable, as
                clientv3 3.5 asks. etcd 3.4 does not know the request's `linearizable`
                field and always answers from the local view.
            timeout: seconds (None: the client's default).
        """
        request = rpc_pb2.MemberListRequest(
            linearizable=not check_bool(serializable, "serializable")
        )
        message = self._conn.call(MEMBER_LIST, request, check_timeout(timeout), idempotent=True)
        return MemberListResponse(_convert.header(message.header), members(message.members))

    def member_add(
        self,
        peer_urls: Sequence[str] | str,
        *,
        learner: bool = False,
        timeout: float | None = None,
    ) -> MemberAddResponse:
        """Add a member (start its etcd with `--initial-cluster-state=existing` afterwards).

        Args:
            peer_urls: the new member's peer URLs, `http(s)://host:port`.
            learner: add it as a learner: it receives the log but does not vote until
                member_promote().
            timeout: seconds (None: the client's default).

        Raises:
            PeerURLExistError: a member already has one of these peer URLs.
            MemberNotEnoughStartedError: too few members are started to add one safely.
            TooManyLearnersError: the cluster already has its maximum of learners.
        """
        request = rpc_pb2.MemberAddRequest(
            peerURLs=check_peer_urls(peer_urls), isLearner=check_bool(learner, "learner")
        )
        message = self._conn.call(MEMBER_ADD, request, check_timeout(timeout), idempotent=False)
        return MemberAddResponse(
            _convert.header(message.header), member(message.member), members(message.members)
        )

    def member_remove(
        self, member_id: int, *, timeout: float | None = None
    ) -> MemberRemoveResponse:
        """Remove a member.

        Raises:
            MemberNotFoundError: no member has this id.
            MemberNotEnoughStartedError: removing it would leave too few started members.
        """
        request = rpc_pb2.MemberRemoveRequest(ID=check_member_id(member_id))
        message = self._conn.call(MEMBER_REMOVE, request, check_timeout(timeout), idempotent=False)
        return MemberRemoveResponse(_convert.header(message.header), members(message.members))

    def member_update(
        self, member_id: int, peer_urls: Sequence[str] | str, *, timeout: float | None = None
    ) -> MemberUpdateResponse:
        """Change a member's peer URLs.

        Raises:
            MemberNotFoundError: no member has this id.
            PeerURLExistError: another member already has one of these peer URLs.
        """
        request = rpc_pb2.MemberUpdateRequest(
            ID=check_member_id(member_id), peerURLs=check_peer_urls(peer_urls)
        )
        message = self._conn.call(MEMBER_UPDATE, request, check_timeout(timeout), idempotent=False)
        return MemberUpdateResponse(_convert.header(message.header), members(message.members))

    def member_promote(
        self, member_id: int, *, timeout: float | None = None
    ) -> MemberPromoteResponse:
        """Promote a learner to a voting member.

        Raises:
            MemberNotLearnerError: the member is not a learner.
            LearnerNotReadyError: the learner has not caught up with the leader yet; try
                again later.
        """
        request = rpc_pb2.MemberPromoteRequest(ID=check_member_id(member_id))
        message = self._conn.call(MEMBER_PROMOTE, request, check_timeout(timeout), idempotent=False)
        return MemberPromoteResponse(_convert.header(message.header), members(message.members))

    def sync_endpoints(self, *, timeout: float | None = None) -> list[str]:
        """Replace the endpoints with the client URLs of the cluster's started voting members.

        Running watches and keep-alives move if their endpoint is gone. Nothing changes
        when the member list names the endpoints the client already has.

        Returns:
            The endpoints in use afterwards.

        Raises:
            UnavailableError: the member list names no usable client URL (the endpoints
                are left as they were: a client never ends up with none).
        """
        response = self.member_list(timeout=timeout)
        endpoints = endpoints_from_members(response.members)
        if not endpoints:
            raise UnavailableError(
                "the member list names no started voting member with a client URL; "
                "the endpoints were left unchanged"
            )
        if set(endpoints) != set(self._conn.addresses):
            self._conn.check_open()
            self._conn.set_endpoints(endpoints)
        return self._conn.addresses

    def _start_auto_sync(self, interval: float) -> None:
        """Refresh the endpoints from the member list every `interval` seconds."""
        thread = threading.Thread(
            target=self._auto_sync, args=(interval,), name=AUTO_SYNC_THREAD, daemon=True
        )
        self._sync_thread = thread
        thread.start()

    def _auto_sync(self, interval: float) -> None:
        # Runs until close() sets _sync_stop; a failed sync (a partition, a member restarting)
        # is logged and retried at the next tick, as clientv3's autoSync does.
        while not self._sync_stop.wait(interval):
            try:
                self.sync_endpoints(timeout=AUTO_SYNC_TIMEOUT)
            except ClosedError:
                return
            except EtcdError as err:
                if self._sync_stop.is_set() or self._conn.closed.is_set():
                    return
                logger.warning("auto sync of the endpoints failed: %s", err, exc_info=True)

    # --- maintenance ---------------------------------------------------------------------

    def _call_at(
        self,
        method_: Method[ResponseT],
        request: Message,
        timeout: float | None,
        *,
        idempotent: bool,
        address: str,
    ) -> ResponseT:
        """Send one request to `address` only, waiting for a connection to it.

        clientv3 dials the endpoint of a maintenance call and waits until it connects (or
        the deadline passes). A gRPC channel instead fails fast while it reconnects (after
        a dropped connection, a restart), so a transport failure is retried on the same
        endpoint until the deadline, or `dial_timeout` without one: a read always, a write
        only when it provably never left this process.
        """
        deadline = self._conn.deadline(timeout)
        started = time.monotonic()
        backoff = _RETRY_BACKOFF
        while True:
            try:
                return self._conn.call(
                    method_, request, deadline.remaining(), idempotent=idempotent, address=address
                )
            except UnavailableError as err:
                if type(err) is not UnavailableError:  # etcd's own answer (NoLeaderError ...)
                    raise
                if not (idempotent or never_sent(err)):
                    raise
                if not deadline.bounded and time.monotonic() - started > self._conn.dial_timeout:
                    raise
                if self._conn.closed.wait(deadline.left_or(backoff)):
                    raise ClosedError("the client is closed") from err
                if deadline.expired():
                    raise DeadlineExceededError(
                        f"deadline exceeded waiting for {address}: {err}"
                    ) from err
                backoff = min(backoff * 2, _MAX_RETRY_BACKOFF)

    def status(self, endpoint: str, *, timeout: float | None = None) -> StatusResponse:
        """Return the status of the member at `endpoint` (asked there only, no failover)."""
        address = check_endpoint(endpoint)
        message = self._call_at(
            STATUS,
            rpc_pb2.StatusRequest(),
            check_timeout(timeout),
            idempotent=True,
            address=address,
        )
        return status_response(message)

    def defragment(self, endpoint: str, *, timeout: float | None = None) -> DefragmentResponse:
        """Defragment the backend of the member at `endpoint`, giving free space back.

        The member serves no request while it defragments.
        """
        address = check_endpoint(endpoint)
        message = self._call_at(
            DEFRAGMENT,
            rpc_pb2.DefragmentRequest(),
            check_timeout(timeout),
            idempotent=False,
            address=address,
        )
        return DefragmentResponse(_convert.header(message.header))

    def hash_kv(
        self, endpoint: str, revision: int = 0, *, timeout: float | None = None
    ) -> HashKVResponse:
        """Hash the key-value store of the member at `endpoint` up to `revision` (0: newest).

        Raises:
            CompactedError: `revision` has been compacted away.
            FutureRevisionError: `revision` is above the store's current revision.
        """
        address = check_endpoint(endpoint)
        request = rpc_pb2.HashKVRequest(revision=check_int(revision, "revision"))
        message = self._call_at(
            HASH_KV, request, check_timeout(timeout), idempotent=True, address=address
        )
        return HashKVResponse(
            _convert.header(message.header), message.hash, message.compact_revision
        )

    def move_leader(self, member_id: int, *, timeout: float | None = None) -> MoveLeaderResponse:
        """Transfer leadership to the member `member_id`.

        The request must reach the current leader: it is found through status() of the
        client's endpoints (and the member list for its client URL), as etcdctl does.

        Raises:
            NoLeaderError: no endpoint knows a leader.
            BadLeaderTransfereeError: the member cannot become leader (e.g. a learner).
            NotLeaderError: the leader changed before the request reached it.
        """
        request = rpc_pb2.MoveLeaderRequest(targetID=check_member_id(member_id))
        deadline = self._conn.deadline(check_timeout(timeout))
        leader = self._leader_address(deadline)
        message = self._call_at(
            MOVE_LEADER, request, deadline.remaining(), idempotent=False, address=leader
        )
        return MoveLeaderResponse(_convert.header(message.header))

    def _leader_address(self, deadline: Deadline) -> str:
        last_error: EtcdError | None = None
        for address in self._conn.addresses:
            try:
                status = self.status(address, timeout=deadline.remaining())
            except DeadlineExceededError:
                raise
            except UnavailableError as err:  # that endpoint is down: ask the next one
                last_error = err
                continue
            if not status.leader:
                continue
            if status.leader == status.header.member_id:
                return address
            listing = self.member_list(timeout=deadline.remaining())
            for candidate in listing.members:
                if candidate.id == status.leader and candidate.client_urls:
                    return check_endpoint(candidate.client_urls[0])
        raise NoLeaderError(
            f"no endpoint of {self._conn.addresses} knows a leader with a client URL"
        ) from last_error

    def alarm_list(self, *, timeout: float | None = None) -> AlarmResponse:
        """List the alarms raised by any member (etcd 3.4 leaves the header empty)."""
        request = rpc_pb2.AlarmRequest(action=rpc_pb2.AlarmRequest.GET)
        message = self._conn.call(ALARM, request, check_timeout(timeout), idempotent=True)
        return alarm_response(message)

    def alarm_disarm(
        self,
        member_id: int = 0,
        alarm: AlarmType = AlarmType.NONE,
        *,
        timeout: float | None = None,
    ) -> AlarmResponse:
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
        deadline = self._conn.deadline(check_timeout(timeout))
        if target_member and target_alarm is not AlarmType.NONE:
            targets = [AlarmMember(target_member, target_alarm)]
        else:
            targets = [
                raised
                for raised in self.alarm_list(timeout=deadline.remaining()).alarms
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
            response = alarm_response(
                self._conn.call(ALARM, request, deadline.remaining(), idempotent=False)
            )
            header = response.header
            disarmed.extend(response.alarms)
        if header is None:  # nothing to disarm: still answer with a current header
            header = self.alarm_list(timeout=deadline.remaining()).header
        return AlarmResponse(header, disarmed)

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
        # of the same endpoint (given one) or of the next (as _call_at and the connection do).
        started = time.monotonic()
        backoff = _RETRY_BACKOFF
        reauthenticated = False
        while True:
            endpoint = self._conn.endpoint(address) if address is not None else self._conn.pick()
            try:
                return self._receive_snapshot(endpoint, deadline, SnapshotVerifier(), sink)
            except (InvalidAuthTokenError, AuthOldRevisionError):
                # etcd checks the token before sending anything: nothing was written yet.
                if reauthenticated or not self._conn.has_credentials:
                    raise
                reauthenticated = True
                self._conn.authenticate(deadline)
            except UnavailableError as err:
                if type(err) is not UnavailableError or sink.written:
                    raise
                self._conn.mark_failed(endpoint)
                if not deadline.bounded and time.monotonic() - started > self._conn.dial_timeout:
                    raise
                if self._conn.closed.wait(deadline.left_or(backoff)):
                    raise ClosedError("the client is closed") from err
                if deadline.expired():
                    raise DeadlineExceededError(f"deadline exceeded: {err}") from err
                backoff = min(backoff * 2, _MAX_RETRY_BACKOFF)
            finally:
                if endpoint.address not in self._conn.addresses:
                    endpoint.channel.close()  # a channel made for this call only

    def _receive_snapshot(
        self,
        endpoint: Endpoint,
        deadline: Deadline,
        verifier: SnapshotVerifier,
        sink: SnapshotSink,
    ) -> tuple[ResponseHeader, bytes]:
        header: ResponseHeader | None = None
        with contextlib.closing(self._snapshot_messages(endpoint, deadline)) as messages:
            for message in messages:
                if header is None:
                    header = _convert.header(message.header)
                verifier.feed(message.remaining_bytes, message.blob)
                sink.write(message.blob)
        digest = verifier.finish()
        assert header is not None  # finish() refuses a stream without messages
        return header, digest

    def _snapshot_messages(
        self, endpoint: Endpoint, deadline: Deadline
    ) -> Generator[rpc_pb2.SnapshotResponse, None, None]:
        """Yield the messages of one Snapshot stream from `endpoint`, as they arrive."""
        call = endpoint.channel.unary_stream(
            SNAPSHOT_PATH,
            request_serializer=serialize,
            response_deserializer=rpc_pb2.SnapshotResponse.FromString,
        )
        with translate_rpc_errors():
            stream = call(
                rpc_pb2.SnapshotRequest(),
                timeout=deadline.remaining(),
                metadata=self._conn.metadata,
            )
            try:
                yield from stream
            finally:
                stream.cancel()  # ends the server's stream if we stop early; no-op once done

    # --- auth ----------------------------------------------------------------------------

    def auth_enable(self, *, timeout: float | None = None) -> AuthEnableResponse:
        """Enable authentication (a `root` user with the `root` role must exist).

        A client given a user name and password logs in right after, so its next calls
        carry a token.

        Raises:
            RootUserNotExistError: there is no root user.
            RootRoleNotExistError: the root user lacks the root role.
        """
        deadline = self._conn.deadline(check_timeout(timeout))
        message = self._conn.call(
            AUTH_ENABLE, rpc_pb2.AuthEnableRequest(), deadline.remaining(), idempotent=False
        )
        if self._conn.has_credentials:
            self._conn.authenticate(deadline)
        return AuthEnableResponse(_convert.header(message.header))

    def auth_disable(self, *, timeout: float | None = None) -> AuthDisableResponse:
        """Disable authentication (needs the root role while auth is enabled)."""
        message = self._conn.call(
            AUTH_DISABLE, rpc_pb2.AuthDisableRequest(), check_timeout(timeout), idempotent=False
        )
        return AuthDisableResponse(_convert.header(message.header))

    def auth_status(self, *, timeout: float | None = None) -> AuthStatusResponse:
        """Return whether auth is enabled, and the auth store's revision.

        Raises:
            NotCapableError: the server predates etcd 3.5, which added this RPC.
        """
        message = self._conn.call(
            AUTH_STATUS, rpc_pb2.AuthStatusRequest(), check_timeout(timeout), idempotent=True
        )
        return AuthStatusResponse(
            _convert.header(message.header), message.enabled, message.authRevision
        )

    def user_add(
        self,
        name: str,
        password: str = "",
        *,
        no_password: bool = False,
        timeout: float | None = None,
    ) -> AuthUserAddResponse:
        """Add a user.

        Args:
            name: the user's name.
            password: the user's password (sent to etcd, which stores a bcrypt hash).
            no_password: a user that cannot log in with a password (only by the common
                name of a TLS client certificate); `password` must then be empty.
            timeout: seconds (None: the client's default).

        Raises:
            UserAlreadyExistError: a user with this name exists.
        """
        user = check_user_name(name)
        secret = check_password(password)
        if check_bool(no_password, "no_password") and secret:
            raise ValueError("password must be empty with no_password=True")
        request = rpc_pb2.AuthUserAddRequest(
            name=user, password=secret, options=auth_pb2.UserAddOptions(no_password=no_password)
        )
        message = self._conn.call(USER_ADD, request, check_timeout(timeout), idempotent=False)
        return AuthUserAddResponse(_convert.header(message.header))

    def user_delete(self, name: str, *, timeout: float | None = None) -> AuthUserDeleteResponse:
        """Delete a user.

        Raises:
            UserNotFoundError: no user has this name.
        """
        request = rpc_pb2.AuthUserDeleteRequest(name=check_user_name(name))
        message = self._conn.call(USER_DELETE, request, check_timeout(timeout), idempotent=False)
        return AuthUserDeleteResponse(_convert.header(message.header))

    def user_get(self, name: str, *, timeout: float | None = None) -> AuthUserGetResponse:
        """Return the roles granted to a user.

        Raises:
            UserNotFoundError: no user has this name.
        """
        request = rpc_pb2.AuthUserGetRequest(name=check_user_name(name))
        message = self._conn.call(USER_GET, request, check_timeout(timeout), idempotent=True)
        return AuthUserGetResponse(_convert.header(message.header), list(message.roles))

    def user_list(self, *, timeout: float | None = None) -> AuthUserListResponse:
        """Return the names of every user."""
        message = self._conn.call(
            USER_LIST, rpc_pb2.AuthUserListRequest(), check_timeout(timeout), idempotent=True
        )
        return AuthUserListResponse(_convert.header(message.header), list(message.users))

    def user_change_password(
        self, name: str, password: str, *, timeout: float | None = None
    ) -> AuthUserChangePasswordResponse:
        """Set a user's password.

        Raises:
            UserNotFoundError: no user has this name.
        """
        request = rpc_pb2.AuthUserChangePasswordRequest(
            name=check_user_name(name), password=check_password(password)
        )
        message = self._conn.call(
            USER_CHANGE_PASSWORD, request, check_timeout(timeout), idempotent=False
        )
        return AuthUserChangePasswordResponse(_convert.header(message.header))

    def user_grant_role(
        self, user: str, role: str, *, timeout: float | None = None
    ) -> AuthUserGrantRoleResponse:
        """Grant a role to a user.

        Raises:
            UserNotFoundError: no user has this name.
            RoleNotFoundError: no role has this name.
        """
        request = rpc_pb2.AuthUserGrantRoleRequest(
            user=check_user_name(user, "user"), role=check_role_name(role)
        )
        message = self._conn.call(
            USER_GRANT_ROLE, request, check_timeout(timeout), idempotent=False
        )
        return AuthUserGrantRoleResponse(_convert.header(message.header))

    def user_revoke_role(
        self, user: str, role: str, *, timeout: float | None = None
    ) -> AuthUserRevokeRoleResponse:
        """Revoke a role from a user.

        Raises:
            UserNotFoundError: no user has this name.
            RoleNotGrantedError: the user does not have this role.
        """
        request = rpc_pb2.AuthUserRevokeRoleRequest(
            name=check_user_name(user, "user"), role=check_role_name(role)
        )
        message = self._conn.call(
            USER_REVOKE_ROLE, request, check_timeout(timeout), idempotent=False
        )
        return AuthUserRevokeRoleResponse(_convert.header(message.header))

    def role_add(self, name: str, *, timeout: float | None = None) -> AuthRoleAddResponse:
        """Add a role (with no permission yet).

        Raises:
            RoleAlreadyExistError: a role with this name exists.
        """
        request = rpc_pb2.AuthRoleAddRequest(name=check_role_name(name, "name"))
        message = self._conn.call(ROLE_ADD, request, check_timeout(timeout), idempotent=False)
        return AuthRoleAddResponse(_convert.header(message.header))

    def role_delete(self, name: str, *, timeout: float | None = None) -> AuthRoleDeleteResponse:
        """Delete a role (it is revoked from every user that had it).

        Raises:
            RoleNotFoundError: no role has this name.
        """
        request = rpc_pb2.AuthRoleDeleteRequest(role=check_role_name(name, "name"))
        message = self._conn.call(ROLE_DELETE, request, check_timeout(timeout), idempotent=False)
        return AuthRoleDeleteResponse(_convert.header(message.header))

    def role_get(self, name: str, *, timeout: float | None = None) -> AuthRoleGetResponse:
        """Return a role's permissions.

        Raises:
            RoleNotFoundError: no role has this name.
        """
        request = rpc_pb2.AuthRoleGetRequest(role=check_role_name(name, "name"))
        message = self._conn.call(ROLE_GET, request, check_timeout(timeout), idempotent=True)
        return AuthRoleGetResponse(
            _convert.header(message.header), [role_permission(perm) for perm in message.perm]
        )

    def role_list(self, *, timeout: float | None = None) -> AuthRoleListResponse:
        """Return the names of every role."""
        message = self._conn.call(
            ROLE_LIST, rpc_pb2.AuthRoleListRequest(), check_timeout(timeout), idempotent=True
        )
        return AuthRoleListResponse(_convert.header(message.header), list(message.roles))

    def role_grant_permission(
        self,
        role: str,
        key: StrOrBytes,
        *,
        range_end: StrOrBytes | None = None,
        prefix: bool = False,
        perm: Permission = Permission.READWRITE,
        timeout: float | None = None,
    ) -> AuthRoleGrantPermissionResponse:
        """Grant a role access to a key, a range [key, range_end), or every key under a prefix.

        `prefix=True` with an empty key grants every key (sent as etcdctl does).

        Raises:
            RoleNotFoundError: no role has this name.
        """
        name = check_role_name(role)
        raw_key, raw_end = permission_range(key, range_end, prefix)
        request = rpc_pb2.AuthRoleGrantPermissionRequest(
            name=name,
            perm=auth_pb2.Permission(
                permType=check_permission(perm).value,  # type: ignore[arg-type]  # wire value
                key=raw_key,
                range_end=raw_end,
            ),
        )
        message = self._conn.call(
            ROLE_GRANT_PERMISSION, request, check_timeout(timeout), idempotent=False
        )
        return AuthRoleGrantPermissionResponse(_convert.header(message.header))

    def role_revoke_permission(
        self,
        role: str,
        key: StrOrBytes,
        *,
        range_end: StrOrBytes | None = None,
        prefix: bool = False,
        timeout: float | None = None,
    ) -> AuthRoleRevokePermissionResponse:
        """Revoke the permission granted with the same key, range_end and prefix.

        Raises:
            RoleNotFoundError: no role has this name.
            PermissionNotGrantedError: the role has no permission on exactly that range.
        """
        name = check_role_name(role)
        raw_key, raw_end = permission_range(key, range_end, prefix)
        request = rpc_pb2.AuthRoleRevokePermissionRequest(role=name, key=raw_key, range_end=raw_end)
        message = self._conn.call(
            ROLE_REVOKE_PERMISSION, request, check_timeout(timeout), idempotent=False
        )
        return AuthRoleRevokePermissionResponse(_convert.header(message.header))
