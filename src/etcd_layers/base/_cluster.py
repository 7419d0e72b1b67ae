"""Cluster membership calls (member list, add, remove, update, promote), written once as flows.

`ClusterMixin` makes them Client methods; `_aio_calls` makes them AsyncClient coroutines.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from etcd_layers.base import _convert
from etcd_layers.base._admin_core import (
    MEMBER_ADD,
    MEMBER_LIST,
    MEMBER_PROMOTE,
    MEMBER_REMOVE,
    MEMBER_UPDATE,
    check_member_id,
    check_peer_urls,
    member,
    members,
)
from etcd_layers.base._flow import Flow, call, sync_call
from etcd_layers.base._proto import rpc_pb2
from etcd_layers.base.admin_responses import (
    MemberAddResponse,
    MemberListResponse,
    MemberPromoteResponse,
    MemberRemoveResponse,
    MemberUpdateResponse,
)
from etcd_layers.base.checks import check_bool

if TYPE_CHECKING:
    from etcd_layers.base._connection import Connection


def member_list(
    *, serializable: bool = False, timeout: float | None = None
) -> Flow[MemberListResponse]:
    """List the cluster's members.

    Args:
        serializable: answer from the member's local view, which may lag behind a
            change just made elsewhere; by default the list is linearizable, as
            clientv3 3.5 asks. etcd 3.4 does not know the request's `linearizable`
            field and always answers from the local view.
        timeout: seconds (None: the client's default).
    """
    request = rpc_pb2.MemberListRequest(linearizable=not check_bool(serializable, "serializable"))
    message = yield from call(MEMBER_LIST, request, idempotent=True)
    return MemberListResponse(_convert.header(message.header), members(message.members))


def member_add(
    peer_urls: Sequence[str] | str,
    *,
    learner: bool = False,
    timeout: float | None = None,
) -> Flow[MemberAddResponse]:
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
    message = yield from call(MEMBER_ADD, request, idempotent=False)
    return MemberAddResponse(
        _convert.header(message.header), member(message.member), members(message.members)
    )


def member_remove(member_id: int, *, timeout: float | None = None) -> Flow[MemberRemoveResponse]:
    """Remove a member.

    Raises:
        MemberNotFoundError: no member has this id.
        MemberNotEnoughStartedError: removing it would leave too few started members.
    """
    request = rpc_pb2.MemberRemoveRequest(ID=check_member_id(member_id))
    message = yield from call(MEMBER_REMOVE, request, idempotent=False)
    return MemberRemoveResponse(_convert.header(message.header), members(message.members))


def member_update(
    member_id: int, peer_urls: Sequence[str] | str, *, timeout: float | None = None
) -> Flow[MemberUpdateResponse]:
    """Change a member's peer URLs.

    Raises:
        MemberNotFoundError: no member has this id.
        PeerURLExistError: another member already has one of these peer URLs.
    """
    request = rpc_pb2.MemberUpdateRequest(
        ID=check_member_id(member_id), peerURLs=check_peer_urls(peer_urls)
    )
    message = yield from call(MEMBER_UPDATE, request, idempotent=False)
    return MemberUpdateResponse(_convert.header(message.header), members(message.members))


def member_promote(member_id: int, *, timeout: float | None = None) -> Flow[MemberPromoteResponse]:
    """Promote a learner to a voting member.

    Raises:
        MemberNotLearnerError: the member is not a learner.
        LearnerNotReadyError: the learner has not caught up with the leader yet; try
            again later.
    """
    request = rpc_pb2.MemberPromoteRequest(ID=check_member_id(member_id))
    message = yield from call(MEMBER_PROMOTE, request, idempotent=False)
    return MemberPromoteResponse(_convert.header(message.header), members(message.members))


class ClusterMixin:
    """Cluster membership."""

    _conn: Connection

    member_list = sync_call(member_list)
    member_add = sync_call(member_add)
    member_remove = sync_call(member_remove)
    member_update = sync_call(member_update)
    member_promote = sync_call(member_promote)
