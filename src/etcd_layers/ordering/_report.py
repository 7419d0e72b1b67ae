"""What both ordering proxies tell operators of a violation: a log record and a metric."""

from __future__ import annotations

import logging

from etcd_layers import telemetry

__all__ = ["report_violation"]

logger = logging.getLogger("etcd_layers.ordering")


def report_violation(revision: int, seen: int) -> None:
    """A response came from revision `revision`, older than the `seen` one: say so."""
    logger.info(
        "ordering violation: a response at revision %d, older than revision %d already seen",
        revision,
        seen,
    )
    instruments = telemetry.active
    if instruments is not None:
        instruments.ordering_violations.add(1)
