"""The errors the in-memory store answers with: etcd 3.5's gRPC status code and message."""

from __future__ import annotations

from typing import Final


class StoreError(Exception):
    """A request the store refuses, as etcd would: a gRPC status code name and etcd's message.

    The code is the name of a `grpc.StatusCode` member (the core imports no grpc); the shells
    turn it into a gRPC status, so the real client maps it to the same EtcdError class.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return self.message


# server/etcdserver/api/v3rpc/rpctypes/error.go (etcd 3.5): code and message of each error.
EMPTY_KEY: Final = ("INVALID_ARGUMENT", "etcdserver: key is not provided")
KEY_NOT_FOUND: Final = ("INVALID_ARGUMENT", "etcdserver: key not found")
VALUE_PROVIDED: Final = ("INVALID_ARGUMENT", "etcdserver: value is provided")
LEASE_PROVIDED: Final = ("INVALID_ARGUMENT", "etcdserver: lease is provided")
TOO_MANY_OPS: Final = ("INVALID_ARGUMENT", "etcdserver: too many operations in txn request")
DUPLICATE_KEY: Final = ("INVALID_ARGUMENT", "etcdserver: duplicate key given in txn request")
INVALID_SORT_OPTION: Final = ("INVALID_ARGUMENT", "etcdserver: invalid sort option")
COMPACTED: Final = ("OUT_OF_RANGE", "etcdserver: mvcc: required revision has been compacted")
FUTURE_REVISION: Final = (
    "OUT_OF_RANGE",
    "etcdserver: mvcc: required revision is a future revision",
)
LEASE_NOT_FOUND: Final = ("NOT_FOUND", "etcdserver: requested lease not found")
LEASE_EXISTS: Final = ("FAILED_PRECONDITION", "etcdserver: lease already exists")
LEASE_TTL_TOO_LARGE: Final = ("OUT_OF_RANGE", "etcdserver: too large lease TTL")
UNIMPLEMENTED: Final = ("UNIMPLEMENTED", "Method not found!")  # grpc's own answer


def store_error(error: tuple[str, str]) -> StoreError:
    """Return the StoreError for one of the (code, message) pairs above."""
    return StoreError(*error)
