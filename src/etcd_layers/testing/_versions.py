"""Skip markers for tests that need a newer (or an older) etcd than the binary the rig starts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from etcd_layers.testing.binaries import EtcdBinaryNotFoundError, etcd_version

if TYPE_CHECKING:
    import pytest

__all__ = ["etcd_binary_version", "requires_etcd", "requires_etcd_before"]


def etcd_binary_version() -> tuple[int, int, int] | None:
    """Return the version of the etcd binary the rig would start, or None if there is none.

    That is the binary `find_etcd_binary()` finds (`$ETCD_BIN` first); its answer is cached.
    """
    try:
        return etcd_version()
    except EtcdBinaryNotFoundError:
        return None


def requires_etcd(major: int, minor: int, *, reason: str) -> pytest.MarkDecorator:
    """Return a marker that skips a test when the rig's etcd is older than `major.minor`.

    For a test of a server feature that older etcd lacks, never for a client bug::

        @requires_etcd(3, 5, reason="AuthStatus is an RPC added in etcd 3.5")
        def test_auth_status_reports_auth_enabled(root: Client) -> None: ...

    With no etcd binary the test is not skipped here: the fixtures skip it (or fail it on CI)
    and say why.

    Args:
        major: The oldest major version that has the feature.
        minor: The oldest minor version (of `major`) that has it.
        reason: What the older version lacks, for the skip message.
    """
    import pytest  # noqa: PLC0415  # a test dependency: importing the rig must not need it

    found = etcd_binary_version()
    older = found is not None and found[:2] < (major, minor)
    return pytest.mark.skipif(older, reason=_message(f"etcd >= {major}.{minor}", found, reason))


def requires_etcd_before(major: int, minor: int, *, reason: str) -> pytest.MarkDecorator:
    """Return a marker that skips a test unless the rig's etcd is older than `major.minor`.

    For a test of how the client copes with an older server, for example the error an RPC
    added in `major.minor` raises there.

    Args:
        major: The first major version the test does not apply to.
        minor: The first minor version (of `major`) it does not apply to.
        reason: What differs from that version on, for the skip message.
    """
    import pytest  # noqa: PLC0415  # as in requires_etcd

    found = etcd_binary_version()
    newer = found is not None and found[:2] >= (major, minor)
    return pytest.mark.skipif(newer, reason=_message(f"etcd < {major}.{minor}", found, reason))


def _message(needed: str, found: tuple[int, int, int] | None, reason: str) -> str:
    version = ".".join(map(str, found)) if found is not None else "none"
    return f"needs {needed}, the rig runs {version}: {reason}"
