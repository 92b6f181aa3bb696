"""Constants and helpers the tests share (fixtures live in conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REGISTRY = os.environ.get("CAIS_TEST_REGISTRY", "127.0.0.1:5000")
AUTH_REGISTRY = os.environ.get("CAIS_TEST_AUTH_REGISTRY", "127.0.0.1:5001")
REGISTRY_USER = os.environ.get("CAIS_TEST_REGISTRY_USER", "cais")
REGISTRY_PASSWORD = os.environ.get("CAIS_TEST_REGISTRY_PASSWORD", "cais-test-password")
BASE_IMAGE = "python:3.11-slim"
CA_FOLDER = Path("/usr/local/share/ca-certificates")


def unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must have every component (scripts/test-infra starts them)")
    pytest.skip(reason)


def run_cais(
    *args: str,
    input: str | None = None,
    cwd: Path | None = None,
    env: dict | None = None,
    timeout: int = 600,
) -> subprocess.CompletedProcess[str]:
    """Run the `cais` command as a user would, in a fresh process."""
    return subprocess.run(
        [sys.executable, "-m", "cais", *args],
        input=input,
        cwd=cwd,
        env={**os.environ, **(env or {}), "NO_COLOR": "1", "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class RecordingProgress:
    """A BuildProgress that keeps what it was told."""

    def __init__(self) -> None:
        self.steps: list[str] = []
        self.lines: list[str] = []

    def step(self, name: str) -> None:
        self.steps.append(name)

    def log(self, line: str) -> None:
        self.lines.append(line)


def assert_one_error(result, *, code: int = 1) -> str:
    """The command failed with one `error:` sentence (and maybe a hint), no traceback."""
    assert result.exit_code == code, result.output
    output = result.output
    assert output.startswith("error: "), output
    assert "Traceback" not in output
    lines = [line for line in output.splitlines() if line.strip()]
    assert all(line.startswith(("error:", "hint:")) for line in lines), lines
    assert sum(line.startswith("error:") for line in lines) == 1
    return output
