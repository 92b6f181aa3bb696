"""cais.output: the build display and how errors are printed."""

from __future__ import annotations

from cais.errors import BuildError
from cais.output import BuildDisplay, report_error


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
