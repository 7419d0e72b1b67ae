"""etcd's HTTP side without gRPC: the JSON gateway, its errors and base64 fields, and /health."""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Mapping

__all__ = ["GatewayError", "b64", "health", "post_json", "unb64"]


class GatewayError(RuntimeError):
    """etcd's JSON gateway answered an HTTP error.

    Attributes:
        status: The HTTP status.
        code: The gRPC status code etcd reported (0 if it gave none).
        message: etcd's error message, for example `"etcdserver: unhealthy cluster"`.
    """

    def __init__(self, message: str, status: int = 0, code: int = 0) -> None:
        super().__init__(message, status, code)  # positional, so the error survives pickle
        self.message = message
        self.status = status
        self.code = code

    def __str__(self) -> str:
        return f"HTTP {self.status}, gRPC code {self.code}: {self.message}"

    @classmethod
    def from_body(cls, path: str, status: int, body: bytes) -> GatewayError:
        """Build the error from the gateway's JSON error body (or its raw text)."""
        text = body.decode("utf-8", "replace")
        try:
            decoded = json.loads(text)
        except ValueError:
            decoded = None
        if isinstance(decoded, dict):
            message = str(decoded.get("message") or decoded.get("error") or text)
            code = decoded.get("code")
            return cls(f"{path}: {message}", status, code if isinstance(code, int) else 0)
        return cls(f"{path}: {text}", status)


def post_json(
    base_url: str,
    path: str,
    body: Mapping[str, object] | None,
    *,
    timeout: float,
    ssl_context: ssl.SSLContext | None,
) -> dict[str, object]:
    """POST `body` as JSON to `base_url + path` and return the decoded JSON object.

    Raises:
        GatewayError: etcd answered with an error.
        OSError: The member could not be reached.
        ValueError: The answer is not a JSON object.
    """
    request = urllib.request.Request(
        base_url + path,
        data=json.dumps(dict(body or {})).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=ssl_context) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as err:
        with err:  # it holds the response's socket
            raise GatewayError.from_body(path, err.code, err.read()) from None
    if not isinstance(answer, dict):
        raise ValueError(f"etcd answered {path} with {answer!r}")  # noqa: TRY004  # not an argument
    return answer


def health(base_url: str, *, timeout: float, ssl_context: ssl.SSLContext | None) -> bool:
    """Whether `GET base_url/health` says `"health": "true"` (False when unreachable)."""
    try:
        with urllib.request.urlopen(
            f"{base_url}/health", timeout=timeout, context=ssl_context
        ) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as err:  # 503 while it has no leader or cannot read
        err.close()
        return False
    except (OSError, ValueError):  # refused, timed out, half-started and garbled
        return False
    return isinstance(body, dict) and body.get("health") == "true"


def b64(data: str | bytes) -> str:
    """Encode a key or value for the JSON gateway (base64 of its UTF-8 or raw bytes)."""
    raw = data.encode() if isinstance(data, str) else data
    return base64.b64encode(raw).decode("ascii")


def unb64(text: object) -> bytes:
    """Decode a base64 field of a JSON gateway answer (a missing field is empty)."""
    if text is None:
        return b""
    if not isinstance(text, str):
        raise TypeError(f"expected a base64 string, not {type(text).__name__}")
    return base64.b64decode(text)
