"""The auth token: logging in, and the metadata (token, require-leader flag) every call carries."""

from __future__ import annotations

import threading

import grpc

from etcd_layers.base._endpoint import Endpoint
from etcd_layers.base._methods import AUTHENTICATE
from etcd_layers.base._proto import rpc_pb2
from etcd_layers.base.deadline import Deadline
from etcd_layers.errors import AuthNotEnabledError, from_rpc_error


class Login:
    """A client's credentials and its current token; `generation` counts the logins.

    `metadata` and `generation` are read without the lock (each is one attribute, replaced
    whole); logging in holds it, so concurrent refusals of one token log in once.
    """

    __slots__ = ("_lock", "_password", "_require_leader", "_username", "generation", "metadata")

    def __init__(self, username: str | None, password: str | None, *, require_leader: bool) -> None:
        self._username = username
        self._password = password
        self._require_leader = require_leader
        self._lock = threading.Lock()
        self.generation = 0
        self.metadata = self._metadata(None)

    def _metadata(self, token: str | None) -> tuple[tuple[str, str], ...]:
        metadata: list[tuple[str, str]] = []
        if token:
            metadata.append(("token", token))
        if self._require_leader:
            metadata.append(("hasleader", "true"))  # etcd's rpctypes.MetadataRequireLeaderKey
        return tuple(metadata)

    @property
    def has_credentials(self) -> bool:
        """Whether a user name and password were given."""
        return self._username is not None

    def authenticate(
        self, endpoint: Endpoint, deadline: Deadline, seen_generation: int | None = None
    ) -> None:
        """Log in through `endpoint` and attach the new token to every later call.

        With `seen_generation`, do nothing if another thread logged in since.
        """
        if self._username is None:
            return
        with self._lock:
            if seen_generation is not None and seen_generation != self.generation:
                return
            request = rpc_pb2.AuthenticateRequest(
                name=self._username, password=self._password or ""
            )
            try:
                response = endpoint.callable(AUTHENTICATE)(
                    request.SerializeToString(), timeout=deadline.remaining()
                )
            except grpc.RpcError as err:
                error = from_rpc_error(err)
                if not isinstance(error, AuthNotEnabledError):
                    raise error from err
                token: str | None = None  # credentials are accepted by a cluster without auth
            else:
                token = response.token
            self.metadata = self._metadata(token)
            self.generation += 1
