"""The unary lease calls of the Client against a real etcd."""

from __future__ import annotations

import pytest

from etcd_layers import Client, errors


@pytest.fixture
def etcd_client(both_clients: Client) -> Client:
    """Every test here runs against the Client and the AsyncClient (behind its sync facade)."""
    return both_clients


def test_grant_time_to_live_and_revoke(etcd_client: Client, etcd_key_prefix: bytes) -> None:
    """A granted lease reports its TTL and keys; revoking it deletes its keys."""
    grant = etcd_client.grant(30)
    assert grant.ttl == 30
    assert grant.id > 0
    etcd_client.put(etcd_key_prefix + b"a", b"1", lease=grant.id)
    etcd_client.put(etcd_key_prefix + b"b", b"2", lease=grant.id)
    ttl = etcd_client.time_to_live(grant.id, keys=True)
    assert (ttl.id, ttl.granted_ttl) == (grant.id, 30)
    assert 0 < ttl.ttl <= 30
    assert sorted(ttl.keys) == [etcd_key_prefix + b"a", etcd_key_prefix + b"b"]
    assert etcd_client.time_to_live(grant.id).keys == []
    etcd_client.revoke(grant.id)
    assert etcd_client.get(etcd_key_prefix, prefix=True).count == 0
    assert etcd_client.time_to_live(grant.id).ttl == -1


def test_grant_with_chosen_id_and_duplicate(etcd_client: Client) -> None:
    """A grant with lease_id uses it; granting it again raises LeaseExistsError."""
    lease_id = 0x7E57_0000_0000_0001
    assert etcd_client.grant(10, lease_id=lease_id).id == lease_id
    with pytest.raises(errors.LeaseExistsError):
        etcd_client.grant(10, lease_id=lease_id)
    etcd_client.revoke(lease_id)


def test_leases_lists_granted_leases(etcd_client: Client) -> None:
    """leases() includes every live lease."""
    lease_id = etcd_client.grant(10).id
    assert lease_id in [status.id for status in etcd_client.leases().leases]
    etcd_client.revoke(lease_id)
    assert lease_id not in [status.id for status in etcd_client.leases().leases]


def test_keep_alive_once_renews(etcd_client: Client) -> None:
    """keep_alive_once renews the lease to its granted TTL."""
    lease_id = etcd_client.grant(20).id
    response = etcd_client.keep_alive_once(lease_id)
    assert (response.id, response.ttl) == (lease_id, 20)
    etcd_client.revoke(lease_id)


def test_missing_lease_raises_lease_not_found(etcd_client: Client) -> None:
    """revoke and keep_alive_once of a missing lease raise LeaseNotFoundError."""
    missing = 0x7E57_0000_0000_0999
    with pytest.raises(errors.LeaseNotFoundError):
        etcd_client.revoke(missing)
    with pytest.raises(errors.LeaseNotFoundError):
        etcd_client.keep_alive_once(missing)
    assert etcd_client.time_to_live(missing).ttl == -1


def test_put_with_missing_lease_raises(etcd_client: Client, etcd_key_prefix: bytes) -> None:
    """A put attached to a missing lease raises LeaseNotFoundError."""
    with pytest.raises(errors.LeaseNotFoundError):
        etcd_client.put(etcd_key_prefix + b"k", b"v", lease=0x7E57_0000_0000_0998)


def test_grant_ttl_too_large(etcd_client: Client) -> None:
    """A TTL above etcd's maximum raises LeaseTTLTooLargeError."""
    with pytest.raises(errors.LeaseTTLTooLargeError):
        etcd_client.grant(10**12)
