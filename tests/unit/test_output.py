"""cais.output: the build display and how errors are printed."""

from __future__ import annotations

import os
import subprocess
import sys

from cais.errors import BuildError
from cais.output import BuildDisplay, report_error
from tests.support import run_cais


def test_the_display_names_a_step_without_its_mounts(capsys):
    with BuildDisplay(verbose=True) as display:
        display.step(
            "[4/5] RUN --mount=type=secret,id=cais-pip.conf --mount=type=cache,target=/root "
            "pip install -r requirements.txt"
        )
        display.log("Collecting rich")
    shown = capsys.readouterr().err
    assert "✓ [4/5] RUN pip install -r requirements.txt" in shown
    assert "--mount" not in shown
    assert "│ Collecting rich" in shown


def test_a_build_error_is_its_sentence_then_its_lines_then_the_hint(capsys):
    report_error(
        BuildError("`netifaces` must be compiled", log_tail=["gcc: not found"], hint="pin it")
    )
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert lines == ["error: `netifaces` must be compiled", "  │ gcc: not found", "hint: pin it"]


def test_data_printed_into_a_pipe_stays_on_one_line_however_long(tmp_path):
    """What a command prints as data (a path, a reference) is read by scripts: no wrapping at
    the 80 columns a console assumes when stdout is not a terminal."""
    project = tmp_path / "project"
    assert run_cais("init", str(project)).returncode == 0
    target = tmp_path / ("a-long-folder-name-" * 6) / "cais.yml"
    env = {name: value for name, value in os.environ.items() if name != "COLUMNS"}
    done = subprocess.run(
        [sys.executable, "-m", "cais", "pipeline", "github", str(project), "-o", str(target)],
        capture_output=True,
        text=True,
        env={**env, "NO_COLOR": "1"},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert len(str(target)) > 100
    assert done.stdout == f"{target}\n"
