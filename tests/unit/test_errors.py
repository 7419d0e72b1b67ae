"""Translation of gRPC failures into the EtcdError hierarchy."""

from __future__ import annotations

import grpc
import pytest

from etcd_layers import errors
from etcd_layers.errors import _BY_MESSAGE, error_class


@pytest.mark.parametrize(("message", "cls"), sorted(_BY_MESSAGE.items()))
def test_error_class_maps_every_etcd_message(message: str, cls: type[errors.EtcdError]) -> None:
    """Every etcdserver error string maps to its class whatever the status code."""
    assert error_class(grpc.StatusCode.UNKNOWN, message) is cls
    assert issubclass(cls, errors.EtcdError)


@pytest.mark.parametrize(
    ("code", "details", "cls"),
    [
        (
            grpc.StatusCode.UNAVAILABLE,
            "failed to connect to all addresses",
            errors.UnavailableError,
        ),
        (grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded", errors.DeadlineExceededError),
        (grpc.StatusCode.CANCELLED, "Cancelled", errors.CanceledError),
        (
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "Received message larger than max (5000 vs. 100)",
            errors.RequestTooLargeError,
        ),
        (
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "trying to send message larger than max (5 vs. 4)",
            errors.RequestTooLargeError,
        ),
        (grpc.StatusCode.UNKNOWN, "something new", errors.EtcdError),
        (
            grpc.StatusCode.UNIMPLEMENTED,
            "unknown method AuthStatus for service etcdserverpb.Auth",  # etcd 3.4's answer
            errors.NotCapableError,
        ),
        (
            grpc.StatusCode.INVALID_ARGUMENT,
            "context deadline exceeded",
            errors.DeadlineExceededError,
        ),
    ],
)
def test_error_class_falls_back_to_status_codes(
    code: grpc.StatusCode, details: str, cls: type[errors.EtcdError]
) -> None:
    """Messages etcd does not define map by gRPC status code (size limits included)."""
    assert error_class(code, details) is cls


def test_every_error_class_is_documented() -> None:
    """Every public error class has a docstring saying when it is raised."""
    classes = [
        value
        for name, value in vars(errors).items()
        if isinstance(value, type) and issubclass(value, Exception) and not name.startswith("_")
    ]
    assert classes
    assert all(cls.__doc__ for cls in classes)


def test_contract_error_names_exist() -> None:
    """Every error class API.md names is importable from etcd_layers.errors."""
    names = [
        "EtcdError",
        "EmptyKeyError",
        "KeyNotFoundError",
        "CompactedError",
        "FutureRevisionError",
        "LeaseNotFoundError",
        "TooManyOpsError",
        "DuplicateKeyError",
        "RequestTooLargeError",
        "InvalidSortOptionError",
        "NoLeaderError",
        "PermissionDeniedError",
        "AuthFailedError",
        "InvalidAuthTokenError",
        "UnavailableError",
        "NoSpaceError",
        "LeaseTTLTooLargeError",
        "LeaseExistsError",
        "UserEmptyError",
        "AuthNotEnabledError",
        "RequestTimeoutError",
        "LeaderChangedError",
        "TooManyRequestsError",
        "DeadlineExceededError",
        "CanceledError",
        "OrderViolationError",
        "NoGreaterRevisionError",
    ]
    for name in names:
        assert issubclass(getattr(errors, name), errors.EtcdError), name
    assert issubclass(errors.NoGreaterRevisionError, errors.OrderViolationError)
