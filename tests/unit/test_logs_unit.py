"""ETCD_LAYERS_DEBUG, the package loggers, and telemetry's switches without an SDK."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from etcd_layers import logs, telemetry


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    """The etcd_layers logger, restored after the test."""
    root = logging.getLogger("etcd_layers")
    level, handlers = root.level, list(root.handlers)
    try:
        yield root
    finally:
        root.setLevel(level)
        root.handlers[:] = handlers


@pytest.mark.parametrize(
    ("value", "level"),
    [("1", logging.DEBUG), ("true", logging.DEBUG), ("DEBUG", logging.DEBUG),
     ("info", logging.INFO), ("warning", logging.WARNING), ("error", logging.ERROR)],
)  # fmt: skip
def test_etcd_layers_debug_sets_the_level_and_a_stderr_handler(
    root_logger: logging.Logger, value: str, level: int
) -> None:
    root_logger.handlers.clear()
    assert logs.configure_from_env({"ETCD_LAYERS_DEBUG": value}) == level
    assert root_logger.level == level
    assert len(root_logger.handlers) == 1
    logs.configure_from_env({"ETCD_LAYERS_DEBUG": value})
    assert len(root_logger.handlers) == 1  # not twice


@pytest.mark.parametrize("value", ["", "0", "false", " "])
def test_etcd_layers_debug_off_leaves_logging_alone(
    root_logger: logging.Logger, value: str
) -> None:
    level = root_logger.level
    assert logs.configure_from_env({"ETCD_LAYERS_DEBUG": value}) is None
    assert root_logger.level == level


def test_a_bad_etcd_layers_debug_value_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"ETCD_LAYERS_DEBUG must be .* not 'loud'"):
        logs.configure_from_env({"ETCD_LAYERS_DEBUG": "loud"})


def test_one_logger_per_package() -> None:
    assert logs.logger("client").name == logs.CLIENT == "etcd_layers.client"
    assert logs.logger("leasing").name == "etcd_layers.leasing"


def test_telemetry_is_off_without_an_sdk_and_switches_explicitly() -> None:
    telemetry.reset()
    try:
        telemetry.refresh()  # no SDK installed globally in this process: stays off
        assert not telemetry.enabled()
        telemetry.enable()  # the global (API no-op) providers: on, reporting nowhere
        assert telemetry.enabled()
        telemetry.disable()
        telemetry.refresh()  # an explicit choice stands
        assert not telemetry.enabled()
    finally:
        telemetry.reset()


def test_record_keys_from_the_environment_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ETCD_LAYERS_OTEL_RECORD_KEYS", "perhaps")
    try:
        with pytest.raises(ValueError, match="ETCD_LAYERS_OTEL_RECORD_KEYS"):
            telemetry.enable()
    finally:
        telemetry.reset()
