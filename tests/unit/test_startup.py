"""The common commands start without the libraries they do not use: the Docker SDK and httpx
only where an engine or a registry is talked to (each costs about a tenth of a second to
import), Pydantic not for `--version`, YAML only where a file of it is read or written.
(An edit's rebuild into the engine is checked in tests/integration/test_delivery.py.)"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

CHECK = """\
import sys
from cais.cli import app
try:
    app(sys.argv[1:])
except SystemExit:
    pass
heavy = {"docker", "httpx", "pydantic", "requests", "yaml"}
print("imported:", *sorted(heavy & {name.split(".")[0] for name in sys.modules}), file=sys.stderr)
"""


def imported_by(*args: str, cwd) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", CHECK, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "NO_COLOR": "1"},
        timeout=120,
    )
    last = done.stderr.splitlines()[-1] if done.stderr else ""
    assert last.startswith("imported:"), done.stderr
    return set(last.split()[1:])


@pytest.mark.parametrize(
    ("args", "allowed"),
    [
        (("--version",), set()),
        (("build", "--help"), {"pydantic"}),  # Typer converts values with Pydantic
        (("dockerfile", "app"), {"pydantic", "yaml"}),  # cais.yaml is read with Pydantic
        (("pipeline", "github", "--help"), {"pydantic"}),  # writing one needs YAML, not this
    ],
)
def test_a_command_imports_only_what_it_uses(tmp_path, write, args, allowed):
    write(tmp_path / "app", {"script.py": "print('hi')\n", "requirements.txt": ""})
    assert imported_by(*args, cwd=tmp_path) <= allowed


def _callbacks(app):
    for info in app.registered_commands:
        yield info.callback
    for group in app.registered_groups:
        yield from _callbacks(group.typer_instance)


def test_commands_have_their_annotations_evaluated_once():
    """Typer reads each command's parameters on every start, and evaluates again any
    annotation kept as a string (postponed annotations): a command module keeps them
    evaluated where it defines the commands."""
    from cais.cli import app

    callbacks = list(_callbacks(app))
    assert len(callbacks) > 30
    strings = {
        f"{f.__module__}.{f.__name__}: {name}"
        for f in callbacks
        for name, annotation in f.__annotations__.items()
        if isinstance(annotation, str)
    }
    assert strings == set()
