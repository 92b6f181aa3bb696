"""The README that `cais init` writes into a new project, run as it tells it, from inside the
project: there `cais train`, `cais build` and `cais dockerfile` mean this folder, and the
project's name means its saved model. The project is named with the test's unique image
name, so the README's own tags are unique too."""

from __future__ import annotations

import json

import pytest

from tests.e2e.readme import readme_block, replaced
from tests.support import free_port

pytestmark = [pytest.mark.engine, pytest.mark.slow]


def _enter_new_project(shell, name: str, template: str) -> list[str]:
    shell.run(f"cais init {name} --template {template}")
    shell.folder = shell.folder / name
    return readme_block(f"# {name}", shell.folder / "README.md")


def test_the_script_projects_readme(shell, base_image, image_name):
    lines = _enter_new_project(shell, image_name, "script")
    said = shell.run_all(lines, port=0)
    assert "Hello, Ana!" in said
    assert (shell.folder / "output" / "greeting.txt").read_text().startswith("Hello, Ana!")


def test_the_classifier_projects_readme(shell, base_image, image_name):
    port = free_port()
    lines = replaced(
        _enter_new_project(shell, image_name, "classifier"),
        [
            (f"cais serve {image_name}", f"cais serve {image_name} --port {port}"),
            ("8080:8080", f"127.0.0.1:{port}:8080"),
            ("127.0.0.1:8080", f"127.0.0.1:{port}"),
        ],
    )
    said = shell.run_all(lines, port)
    answers = [json.loads(line) for line in said.splitlines() if line.startswith("{")]
    assert len(answers) == 1  # the README asks once, of `cais serve`
    assert answers[0]["predictions"] == ["brinquedo"]
    assert f"{image_name}:1" in said  # `cais models list`
    assert "2 passed" in said  # the model's own tests
