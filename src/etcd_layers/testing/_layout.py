"""What tests read of a test cluster: its members, their addresses, TLS files and dirs."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import TypedDict

from etcd_layers.testing.server import Member
from etcd_layers.testing.tls import TLSFiles


class ClientOptions(TypedDict, total=False):
    """The `Client` keyword arguments a cluster needs: its TLS files, when it has any."""

    ca_cert: str
    cert: str
    key: str


class ClusterLayout:
    """The read-only side of `EtcdCluster`: where its members are and how to reach them.

    `EtcdCluster` fills the state in as it starts, adds and removes members.
    """

    def __init__(self) -> None:
        self._members: list[Member] = []
        self._base_dir: Path | None = None
        self._tls: TLSFiles | None = None
        self._version: tuple[int, int, int] | None = None

    @property
    def members(self) -> list[Member]:
        """The members, in the order they were made (a copy)."""
        return list(self._members)

    @property
    def endpoints(self) -> list[str]:
        """Every member's proxied client endpoint, `127.0.0.1:port`."""
        return [member.endpoint for member in self._members]

    @property
    def client_urls(self) -> list[str]:
        """Every member's proxied client URL, with its scheme."""
        return [member.client_url for member in self._members]

    @property
    def tls(self) -> TLSFiles | None:
        """The certificate files of a `tls=True` cluster (after `start()`), else None."""
        return self._tls

    @property
    def base_dir(self) -> Path:
        """The cluster's temp dir (data dirs, logs, certificates).

        Raises:
            RuntimeError: The cluster was never started.
        """
        if self._base_dir is None:
            raise RuntimeError("the cluster has not been started")
        return self._base_dir

    @property
    def version(self) -> tuple[int, int, int]:
        """The etcd version the members run.

        Raises:
            RuntimeError: The cluster was never started.
        """
        if self._version is None:
            raise RuntimeError("the cluster has not been started")
        return self._version

    def client_options(self) -> ClientOptions:
        """Keyword arguments that let `Client` reach this cluster: its TLS files, if any.

        For example `Client(endpoints=cluster.endpoints, **cluster.client_options())`.
        """
        if self._tls is None:
            return {}
        return ClientOptions(
            ca_cert=self._tls.ca_cert, cert=self._tls.client_cert, key=self._tls.client_key
        )

    def ssl_context(self) -> ssl.SSLContext | None:
        """An SSL context for plain HTTPS to the members (JSON gateway, `/health`), or None."""
        return self._tls.client_ssl_context() if self._tls is not None else None

    def member_named(self, name: str) -> Member:
        """Return the member called `name`.

        Raises:
            KeyError: There is none.
        """
        for member in self._members:
            if member.name == name:
                return member
        raise KeyError(name)
