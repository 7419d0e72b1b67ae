"""The AsyncClient's unary calls: the flows the Client runs (lease, compact, admin), as coroutines.

Each line makes one flow of base._lease, _compact, _cluster, _maintenance or _auth_admin an
AsyncClient coroutine with the Client method's signature and docstring (see base._flow).
"""

from __future__ import annotations

from etcd_layers.base import _auth_admin, _cluster, _compact, _lease, _maintenance
from etcd_layers.base._flow import async_call

__all__ = ["AsyncCallsMixin"]


class AsyncCallsMixin:
    """Every unary call written as a flow, awaited over the AsyncClient's connection."""

    compact = async_call(_compact.compact)

    grant = async_call(_lease.grant)
    revoke = async_call(_lease.revoke)
    time_to_live = async_call(_lease.time_to_live)
    leases = async_call(_lease.leases)

    member_list = async_call(_cluster.member_list)
    member_add = async_call(_cluster.member_add)
    member_remove = async_call(_cluster.member_remove)
    member_update = async_call(_cluster.member_update)
    member_promote = async_call(_cluster.member_promote)

    status = async_call(_maintenance.status)
    defragment = async_call(_maintenance.defragment)
    hash_kv = async_call(_maintenance.hash_kv)
    move_leader = async_call(_maintenance.move_leader)
    alarm_list = async_call(_maintenance.alarm_list)
    alarm_disarm = async_call(_maintenance.alarm_disarm)

    auth_enable = async_call(_auth_admin.auth_enable)
    auth_disable = async_call(_auth_admin.auth_disable)
    auth_status = async_call(_auth_admin.auth_status)
    user_add = async_call(_auth_admin.user_add)
    user_delete = async_call(_auth_admin.user_delete)
    user_get = async_call(_auth_admin.user_get)
    user_list = async_call(_auth_admin.user_list)
    user_change_password = async_call(_auth_admin.user_change_password)
    user_grant_role = async_call(_auth_admin.user_grant_role)
    user_revoke_role = async_call(_auth_admin.user_revoke_role)
    role_add = async_call(_auth_admin.role_add)
    role_delete = async_call(_auth_admin.role_delete)
    role_get = async_call(_auth_admin.role_get)
    role_list = async_call(_auth_admin.role_list)
    role_grant_permission = async_call(_auth_admin.role_grant_permission)
    role_revoke_permission = async_call(_auth_admin.role_revoke_permission)
