"""Every command a message suggests works from the folder where it was printed: it names what
the user named (the folder as they spelled it, the image, the registry), never a bare
`cais build` that means the current folder."""

from __future__ import annotations

import json
import re

import docker.errors
import pytest
import requests
from typer.testing import CliRunner

from cais.bundle.store import ModelStore
from cais.cli import app
from cais.engine.client import engine_errors
from cais.errors import CaisError
from cais.registry import credentials
from cais.resolve import resolve
from tests.support import assert_one_error

pytestmark = pytest.mark.usefixtures("fast_package_scan")


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def commands(output: str) -> list[list[str]]:
    """The `cais …` commands in backticks, as argument lists."""
    return [c.split() for c in re.findall(r"`(cais [^`]+)`", output)]


@pytest.mark.parametrize("folder", ["shop", "projects/shop", "."])
def test_init_and_train_suggest_commands_that_reach_the_model_from_here(runner, home, here, folder):
    created = runner.invoke(app, ["init", folder, "--template", "classifier"])
    assert created.exit_code == 0, created.output
    suggested = commands(created.output)
    assert suggested[0] == ["cais", "train", folder]
    trained = runner.invoke(app, suggested[0][1:])
    assert trained.exit_code == 0, trained.output
    suggested += commands(trained.output)
    following = [c for c in suggested if c[1] in ("serve", "build")]
    assert len(following) == 3  # init's serve; train's serve and build
    for command in following:
        found = resolve(command[2], projects=command[1] == "build", store=ModelStore(home))
        assert found.bundle.reference == "shop:1" if folder != "." else "work:1", command


def test_a_failed_training_names_the_projects_requirements_from_here(runner, here):
    project = here / "shop"
    project.mkdir()
    (project / "requirements.txt").write_text("")
    (project / "train.py").write_text("import no_such_module\n")
    result = runner.invoke(app, ["train", "shop"])
    assert result.exit_code == 1
    assert "`pip install -r shop/requirements.txt`" in result.output


@pytest.mark.parametrize("folder", ["nb", "projects/nb", "."])
@pytest.mark.parametrize(
    ("files", "hint"),
    [
        (
            {"analysis.ipynb": "{}", "requirements.txt": ""},
            "`jupyter nbconvert --to script {0}analysis.ipynb` (or `jupytext --to py "
            "{0}analysis.ipynb`)",
        ),
        ({"a.py": "", "b.py": "", "requirements.txt": ""}, "<script>.py` in `{0}cais.yaml`"),
        ({"requirements.txt": ""}, "set `entrypoint:` in `{0}cais.yaml`"),
        ({"cais.yaml": "entrypoint: gone.py\n"}, "fix `entrypoint:` in `{0}cais.yaml`"),
        ({"cais.yaml": "requirements: r.txt\n", "x.py": ""}, "`requirements:` in `{0}cais.yaml`"),
        ({"x.py": "import numpy\n"}, "provide them in `{0}requirements.txt`"),
        ({"x.py": "", "cais.yaml": "entrypoint: [gunicorn, x:app]\n"}, "in `{0}requirements.txt`"),
    ],
    ids=["notebook", "scripts", "no script", "entrypoint", "requirements", "imports", "command"],
)
def test_hints_name_the_projects_files_as_the_folder_was_spelled(
    runner, here, write, folder, files, hint
):
    """`cais dockerfile nb` from the folder above names `nb/analysis.ipynb`, not a file that is
    not there."""
    write(here / folder, files)
    output = assert_one_error(runner.invoke(app, ["dockerfile", folder]))
    prefix = "" if folder == "." else f"{folder}/"
    assert hint.format(prefix) in output
    # every file the hint names is in the project, seen from here
    for named in re.findall(r"[\w/]+\.(?:ipynb|yaml|txt)", output.split("hint:")[1]):
        assert (here / named).parent.resolve() == (here / folder).resolve(), named


@pytest.mark.parametrize("text", ["name: x\n  bad: [\n", "- a list\n"], ids=["yaml", "list"])
def test_a_broken_cais_yaml_points_at_an_example_that_can_be_written(runner, here, text):
    project = here / "mine"
    project.mkdir()
    (project / "cais.yaml").write_text(text)
    output = assert_one_error(runner.invoke(app, ["dockerfile", "mine"]))
    suggested = commands(output)
    assert suggested == [["cais", "init", "example"]]
    assert runner.invoke(app, suggested[0][1:]).exit_code == 0
    assert runner.invoke(app, ["dockerfile", "example"]).exit_code == 0


def test_a_missing_image_names_it_in_the_commands_that_make_it():
    answer = requests.Response()
    answer.status_code = 404
    for error in (docker.errors.ImageNotFound, docker.errors.NotFound):
        with pytest.raises(CaisError) as caught, engine_errors(image="hello:1"):
            raise error("No such image: hello:1", answer)
        assert ["cais", "pull", "hello:1"] in commands(caught.value.hint)
    with pytest.raises(CaisError) as caught, engine_errors(image="hello:1"):
        raise docker.errors.ImageNotFound("No such image: hello:1", answer)
    assert ["cais", "build", "DIR", "-t", "hello:1"] in commands(caught.value.hint)


@pytest.mark.parametrize(
    ("registry", "login"),
    [("reg.example:5000", ["cais", "login", "reg.example:5000"]), (None, ["cais", "login"])],
    ids=["registry", "docker-hub"],
)
def test_a_corrupt_login_names_the_registry_to_log_in_to(registry, login):
    file = credentials.config_path()
    file.parent.mkdir(parents=True, exist_ok=True)
    keys = ("reg.example:5000", "https://index.docker.io/v1/")
    file.write_text(json.dumps({"auths": {key: {"auth": "!!!not base64"} for key in keys}}))
    with pytest.raises(CaisError) as caught:
        credentials.get(registry)
    assert commands(caught.value.hint) == [login]
