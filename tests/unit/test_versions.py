"""The version skip markers of etcd_layers.testing, with the binary's version faked."""

from __future__ import annotations

import pytest

from etcd_layers.testing import _versions
from etcd_layers.testing.server import EtcdBinaryNotFoundError


def fake_version(monkeypatch: pytest.MonkeyPatch, version: tuple[int, int, int] | None) -> None:
    def etcd_version() -> tuple[int, int, int]:
        if version is None:
            raise EtcdBinaryNotFoundError("no etcd binary found")
        return version

    monkeypatch.setattr(_versions, "etcd_version", etcd_version)


def skips(marker: pytest.MarkDecorator) -> bool:
    condition = marker.mark.args[0]
    assert isinstance(condition, bool)
    return condition


@pytest.mark.parametrize(
    ("version", "skipped"),
    [((3, 4, 23), True), ((3, 5, 0), False), ((3, 5, 1), False), ((3, 6, 0), False),
     ((4, 0, 0), False), ((2, 9, 9), True)],
)  # fmt: skip
def test_requires_etcd_skips_only_older_binaries(
    monkeypatch: pytest.MonkeyPatch, version: tuple[int, int, int], skipped: bool
) -> None:
    """requires_etcd(3, 5) skips below 3.5.0 and runs from 3.5.0 on, patch level ignored."""
    fake_version(monkeypatch, version)
    assert skips(_versions.requires_etcd(3, 5, reason="r")) is skipped


@pytest.mark.parametrize(("version", "skipped"), [((3, 4, 23), False), ((3, 5, 0), True)])
def test_requires_etcd_before_skips_the_newer_binaries(
    monkeypatch: pytest.MonkeyPatch, version: tuple[int, int, int], skipped: bool
) -> None:
    """requires_etcd_before(3, 5) is the mirror image of requires_etcd(3, 5)."""
    fake_version(monkeypatch, version)
    assert skips(_versions.requires_etcd_before(3, 5, reason="r")) is skipped


def test_requires_etcd_leaves_a_missing_binary_to_the_fixtures(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without a binary neither marker skips: the fixtures report the missing binary."""
    fake_version(monkeypatch, None)
    assert _versions.etcd_binary_version() is None
    assert not skips(_versions.requires_etcd(3, 5, reason="r"))
    assert not skips(_versions.requires_etcd_before(3, 5, reason="r"))


def test_requires_etcd_reason_names_both_versions_and_the_cause(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The skip message says what is needed, what runs, and why."""
    fake_version(monkeypatch, (3, 4, 23))
    marker = _versions.requires_etcd(3, 5, reason="AuthStatus is new in 3.5")
    assert marker.kwargs["reason"] == (
        "needs etcd >= 3.5, the rig runs 3.4.23: AuthStatus is new in 3.5"
    )
