"""Poll a condition until it holds or a time bound runs out."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T | None],
    timeout: float = 5.0,
    interval: float = 0.02,
    message: str | Callable[[], str] | None = None,
    *,
    ignore: tuple[type[BaseException], ...] = (),
) -> T:
    """Call `predicate` until it returns a truthy value, and return that value.

    The predicate is always called at least once, and once more after the
    deadline has passed, so a condition that became true during the last
    interval is not reported as a timeout.

    Args:
        predicate: The condition to poll.
        timeout: Seconds to keep polling.
        interval: Seconds to wait between calls.
        message: What the condition means, for the failure message; a callable
            is called only on failure (to describe the state at that moment).
        ignore: Exception types that count as "not yet" instead of propagating,
            for example `(OSError,)` while a server comes up.

    Returns:
        The first truthy value `predicate` returned.

    Raises:
        AssertionError: The predicate was not truthy within `timeout`; the
            message names the condition and the last ignored exception.
        ValueError: `timeout` is negative or `interval` is not positive.
    """
    if timeout < 0:
        raise ValueError(f"timeout must be >= 0, not {timeout!r}")
    if interval <= 0:
        raise ValueError(f"interval must be > 0, not {interval!r}")
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        expired = time.monotonic() >= deadline
        try:
            value = predicate()
        except ignore as err:
            last_error = err
        else:
            if value:
                return value
        if expired:
            break
        time.sleep(min(interval, max(deadline - time.monotonic(), 0.0)))
    described = message() if callable(message) else message
    text = f"condition not met within {timeout:g}s"
    if described:
        text = f"{described} ({text})"
    if last_error is not None:
        text = f"{text}; last error: {last_error!r}"
    raise AssertionError(text)
