"""A virtual environment with the KServe SDK, for the tests that check cais against KServe's
own code (its V2 client, its InferenceService models).

The KServe SDK pins its own stack (fastapi, starlette, protobuf, grpcio, kubernetes...), which
does not fit this project's test environment, so it lives in a virtual environment of its own:
built once, kept under ~/.cache/cais-tests/ keyed by the KServe version (and Python's), reused
while it works.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.support import unavailable

KSERVE_VERSION = "0.21.0"  # the newest release on PyPI when these tests were written
STALE_BUILD_SECONDS = 3600


def _environment() -> dict[str, str]:
    """This process's environment without what would point another Python at our packages."""
    drop = {"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "PYTHONSAFEPATH"}
    return {k: v for k, v in os.environ.items() if k not in drop}


def _python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _works(venv: Path) -> bool:
    check = (
        "import importlib.metadata as m, kserve.inference_client; "
        f"assert m.version('kserve') == {KSERVE_VERSION!r}"
    )
    try:
        done = subprocess.run(
            [str(_python(venv)), "-c", check],
            env=_environment(),
            capture_output=True,
            timeout=120,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _clear_stale_builds(target: Path) -> None:
    """Builds a killed session left behind (a finished build is renamed, a failed one removed)."""
    for leftover in target.parent.glob(f".{target.name}-*"):
        try:
            if time.time() - leftover.stat().st_mtime > STALE_BUILD_SECONDS:
                shutil.rmtree(leftover, ignore_errors=True)
        except OSError:
            pass


def _build(target: Path) -> float:
    """Build the venv in a temporary folder beside `target` and rename it into place; returns
    the seconds it took. An interrupted build never leaves a folder under `target`'s name."""
    target.parent.mkdir(parents=True, exist_ok=True)
    _clear_stale_builds(target)
    started = time.monotonic()
    building = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        building.chmod(0o755)  # mkdtemp makes it private; the cache is an ordinary folder
        steps = [
            [sys.executable, "-m", "venv", str(building)],
            [
                str(_python(building)),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--retries",
                "2",
                f"kserve=={KSERVE_VERSION}",
            ],
        ]
        for command in steps:
            try:
                done = subprocess.run(
                    command, env=_environment(), capture_output=True, text=True, timeout=600
                )
            except subprocess.TimeoutExpired:
                unavailable(f"could not build KServe's client environment: `{command[2]}` hung")
            if done.returncode != 0:
                tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-5:])
                unavailable(f"could not build KServe's client environment ({command[2]}): {tail}")
        if not _works(building):
            pytest.fail(f"kserve=={KSERVE_VERSION} installed but its client does not import")
        try:
            building.rename(target)
        except OSError:  # another session finished the same build first: keep theirs
            if not _works(target):
                raise
        return time.monotonic() - started
    finally:
        shutil.rmtree(building, ignore_errors=True)  # gone already once renamed


def kserve_python() -> Path:
    """The Python of a venv that has kserve==KSERVE_VERSION."""
    if not (3, 10) <= sys.version_info[:2] < (3, 14):
        unavailable(f"kserve {KSERVE_VERSION} needs Python 3.10 to 3.13")
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cais-tests"
    python_tag = f"py{sys.version_info[0]}.{sys.version_info[1]}"
    target = cache / f"kserve-{KSERVE_VERSION}-{python_tag}"
    if target.exists():
        if _works(target):
            return _python(target)
        shutil.rmtree(target, ignore_errors=True)  # broken (its base Python went away...)
    seconds = _build(target)
    print(f"built KServe's client environment in {seconds:.1f} s at {target}")
    return _python(target)


def run_in_kserve(python: Path, script: str, given: str, timeout: float = 300):
    """Run `script` with the KServe environment's Python, `given` on its stdin."""
    return subprocess.run(
        [str(python), "-c", script],
        input=given,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
