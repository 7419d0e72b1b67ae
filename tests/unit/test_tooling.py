"""The project's static checks (ruff format, ruff check, mypy --strict) run as part of the suite."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False
    )


@pytest.mark.parametrize(
    "command",
    [
        ("ruff", "format", "--check", "."),
        ("ruff", "check", "."),
        ("mypy",),
    ],
    ids=["ruff-format", "ruff-check", "mypy"],
)
def test_tooling_is_clean(command: tuple[str, ...]) -> None:
    """Formatting, lint and strict typing report nothing on the whole tree."""
    executable = BIN / command[0]
    if not executable.exists():
        pytest.skip(f"{command[0]} is not installed (install the [test] extra)")
    result = _run(str(executable), *command[1:])
    assert result.returncode == 0, result.stdout + result.stderr
