"""The rule of reject_old_cluster=True: which member versions are refused, as Go reads them."""

from __future__ import annotations

import pytest

from etcd_layers.base.cluster_version import refusal
from etcd_layers.errors import OldClusterError


@pytest.mark.parametrize("version", ["3.4.0", "3.4.27", "3.5.17", "3.6.0", "4.0.0", "3.10"])
def test_members_from_3_4_on_are_accepted(version: str) -> None:
    assert refusal("a:1", version) is None


@pytest.mark.parametrize("version", ["3.3.27", "3.2.0", "2.3.8", "3", "", "0.0.1"])
def test_older_or_shorter_versions_are_refused_naming_the_member(version: str) -> None:
    error = refusal("a:1", version)
    assert isinstance(error, OldClusterError)
    assert "old cluster version" in str(error)
    assert "a:1" in str(error)


def test_an_unreadable_version_is_refused_as_go_does() -> None:
    error = refusal("a:1", "v3.x.1")
    assert isinstance(error, OldClusterError)
    assert "cannot read the version 'v3.x.1'" in str(error)
