"""`cais build --builder oci`, `--load` and `--output`: what is refused, in one sentence,
before anything is downloaded or built."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from cais.cli import app
from tests.support import assert_one_error, text_model

NOWHERE = "unix:///nowhere/docker.sock"
runner = CliRunner()


@pytest.fixture
def project(tmp_path):
    """The seed project (`cais init`)."""
    assert runner.invoke(app, ["init", str(tmp_path / "hello")]).exit_code == 0
    return tmp_path / "hello"


@pytest.fixture
def no_engine(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", NOWHERE)
    monkeypatch.setenv("CAIS_CACHE", str(tmp_path / "cache"))


@pytest.mark.parametrize("value", ["layout", "oci:", "zip:out.zip", ":dir", "docker:x"])
def test_an_output_that_is_not_oci_or_tar_is_refused(project, no_engine, value):
    result = runner.invoke(app, ["build", str(project), "--builder", "oci", "--output", value])
    message = assert_one_error(result)
    assert f"`{value}` is not an output cais writes" in message
    assert "oci:DIR" in message and "tar:FILE" in message


@pytest.mark.parametrize("builder", ["docker", "buildkit", "classic"])
def test_output_needs_the_oci_builder(project, no_engine, builder, tmp_path):
    result = runner.invoke(
        app,
        ["build", str(project), "--builder", builder, "--output", f"oci:{tmp_path / 'layout'}"],
    )
    message = assert_one_error(result)
    assert "`--builder oci`" in message
    assert not (tmp_path / "layout").exists()


@pytest.mark.parametrize("builder", [[], ["--builder", "oci"], ["--platform", "linux/arm64"]])
def test_with_no_engine_and_no_sink_the_sinks_are_named(project, no_engine, tmp_path, builder):
    result = runner.invoke(app, ["build", str(project), *builder])
    message = assert_one_error(result)
    assert f"No Docker Engine answers at `{NOWHERE}`" in message
    assert "`--push`" in message and "`--output oci:DIR`" in message
    assert not (tmp_path / "cache").exists()  # refused before anything was fetched


def test_load_with_no_engine_says_the_engine_is_unreachable(project, no_engine, tmp_path):
    out = tmp_path / "image.tar"
    result = runner.invoke(
        app, ["build", str(project), "--builder", "oci", "--load", "--output", f"tar:{out}"]
    )
    message = assert_one_error(result)
    assert f"The Docker Engine at `{NOWHERE}` is not reachable" in message
    assert not out.exists()


def test_a_projects_own_dockerfile_is_for_the_docker_builder(project, no_engine, tmp_path):
    (project / "Dockerfile").write_text("FROM python:3.11-slim\n")
    result = runner.invoke(
        app, ["build", str(project), "--builder", "oci", "--output", f"oci:{tmp_path / 'o'}"]
    )
    message = assert_one_error(result)
    assert "`Dockerfile` is the project's own Dockerfile" in message
    assert "`--builder docker`" in message


@pytest.mark.parametrize(
    ("files", "named"),
    [
        (
            {"requirements.txt": "./mypkg\n", "mypkg/pyproject.toml": "[project]\nname='m'\n"},
            "mypkg/",
        ),
        (
            {
                "pyproject.toml": "[project]\nname = 'hello'\nversion = '1.0'\n"
                "dependencies = ['six']\n",
                "uv.lock": "version = 1\n",
            },
            "uv.lock",
        ),
    ],
)
def test_what_only_the_docker_builder_installs_is_refused_before_any_download(
    project, no_engine, tmp_path, files, named
):
    if "pyproject.toml" in files:
        (project / "requirements.txt").unlink()
    for name, text in files.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(text)
    result = runner.invoke(
        app, ["build", str(project), "--builder", "oci", "--output", f"oci:{tmp_path / 'o'}"]
    )
    message = assert_one_error(result)
    assert f"`{named}`" in message and "`--builder docker`" in message
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize(
    "platforms", ["linux/s390x", "linux/amd64,linux/s390x", "linux/arm64,linux/amd64,linux/s390x"]
)
def test_an_unknown_platform_is_refused_before_any_download(
    project, no_engine, tmp_path, platforms
):
    """Among several platforms too: refused before the first one is built."""
    output = f"oci:{tmp_path / 'o'}"
    result = runner.invoke(
        app,
        ["build", str(project), "--builder", "oci", "--platform", platforms, "--output", output],
    )
    message = assert_one_error(result)
    assert "`linux/s390x`" in message and "`linux/arm64`" in message
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize(
    ("options", "said"),
    [
        ([], "No Docker Engine answers at"),  # nowhere to load it, and no output asked
        (["--platform", "linux/s390x", "--output", "oci:o"], "`linux/s390x`"),
        (
            ["--platform", "linux/ppc64le", "--python", "3.9", "--output", "oci:o"],
            "`linux/ppc64le`",
        ),
        (["--python", "3.8", "--output", "oci:o"], "cais's server needs Python 3.9 or newer"),
    ],
)
def test_a_saved_model_the_oci_builder_cannot_build_is_refused_first(
    home, no_engine, tmp_path, monkeypatch, options, said
):
    import cais

    monkeypatch.chdir(tmp_path)
    cais.save_model(text_model(), "products", home=home)
    result = runner.invoke(app, ["build", "products", "--builder", "oci", *options])
    assert said in assert_one_error(result)
    assert not (tmp_path / "o").exists()


# --- one image, several models: what is refused before anything is fetched --------------------


def _save_two(home, edit=None) -> list[str]:
    """Two versions of `products`; `edit(data)` changes the second one's recorded metadata."""
    import json

    import cais
    from cais.bundle.metadata import METADATA_FILE
    from cais.bundle.store import ModelStore

    saved = [cais.save_model(text_model(), "products", home=home) for _ in range(2)]
    if edit is not None:
        file = ModelStore(home).get(saved[1]).path / METADATA_FILE
        data = json.loads(file.read_text(encoding="utf-8"))
        edit(data)
        file.write_text(json.dumps(data), encoding="utf-8")
    return saved


def test_several_models_need_a_name(home, no_engine, tmp_path):
    result = runner.invoke(app, ["build", "products:1", "products:2", "--output", "oci:o"])
    message = assert_one_error(result)
    assert "error: An image of several models needs a name" in message
    assert "`-t NAME:TAG`" in message
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("order", ["folder first", "folder last", "two folders"])
def test_a_project_folder_does_not_share_an_image_with_models(
    home, no_engine, tmp_path, project, order
):
    [model, _] = _save_two(home)
    sources = {
        "folder first": [str(project), model],
        "folder last": [model, str(project)],
        "two folders": [str(project), str(project)],
    }[order]
    result = runner.invoke(app, ["build", *sources, "-t", "both:1", "--output", "oci:o"])
    message = assert_one_error(result)
    assert f"error: `{project}` is a project folder, and only saved models share one image" in (
        message
    )
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("builder", ["docker", "buildkit", "classic"])
def test_several_models_are_built_by_the_oci_builder_only(home, no_engine, tmp_path, builder):
    saved = _save_two(home)
    result = runner.invoke(app, ["build", *saved, "-t", "both:1", "--builder", builder])
    message = assert_one_error(result)
    assert f"`--builder {builder}` builds one model's image" in message


@pytest.mark.parametrize(
    ("edit", "said"),
    [
        (
            lambda data: data["packages"].update({"scikit-learn": "0.0.1"}),
            "so one image cannot serve them: `scikit-learn` ",
        ),
        (
            lambda data: data["packages"].update({"numpy": "0.0.1", "joblib": "0.0.2"}),
            "0.0.1 for `products:2`",
        ),
        (lambda data: data.update({"python": "3.9.18"}), "saved with different Pythons"),
    ],
)
def test_models_that_disagree_are_refused_before_any_download(
    home, no_engine, tmp_path, edit, said
):
    saved = _save_two(home, edit)
    result = runner.invoke(app, ["build", *saved, "-t", "both:1", "--output", f"oci:{tmp_path}/o"])
    assert said in assert_one_error(result)
    assert not (tmp_path / "cache").exists() and not (tmp_path / "o").exists()
