"""The auth token: logging in, and the metadata (token, require-leader flag) every call carries."""

from __future__ import annotations

import logging
import threading

import grpc

from etcd_layers.base._endpoint import Endpoint
from etcd_layers.base._methods import AUTHENTICATE
from etcd_layers.base._proto import rpc_pb2
from etcd_layers.base.deadline import Deadline
from etcd_layers.errors import AuthNotEnabledError, EtcdError, from_rpc_error

logger = logging.getLogger("etcd_layers.client")


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
            if self.outdated(seen_generation):
                return
            try:
                response = endpoint.callable(AUTHENTICATE)(
                    self.request(), timeout=deadline.remaining()
                )
            except grpc.RpcError as err:
                self.refused(from_rpc_error(err), err)
            else:
                self.accept(response.token)

    # The steps of a login, shared with the asyncio shell (base._aio_connection), which holds
    # its own asyncio.Lock around them.

    def outdated(self, seen_generation: int | None) -> bool:
        """Whether someone logged in since the token of `seen_generation` was refused."""
        return seen_generation is not None and seen_generation != self.generation

    def request(self) -> bytes:
        """Return the serialized AuthenticateRequest."""
        request = rpc_pb2.AuthenticateRequest(
            name=self._username or "", password=self._password or ""
        )
        return request.SerializeToString()

    def refused(self, error: EtcdError, cause: BaseException) -> None:
        """Take a failed login: a cluster without auth accepts any credentials (no token).

        Raises:
            EtcdError: `error`, any other refusal.
        """
        if not isinstance(error, AuthNotEnabledError):
            raise error from cause
        self.accept(None)

    def accept(self, token: str | None) -> None:
        """Attach `token` to every later call."""
        self.metadata = self._metadata(token)
        if self.generation and token is not None:
            logger.info("the auth token was refused or expired: logged in again")
        self.generation += 1
