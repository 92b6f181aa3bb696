"""One rule for arguments that can name a folder or a saved model (`cais.resolve`), and the
commands that follow it: `cais serve`, `cais build`, `cais models show`."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from cais.bundle.store import ModelStore
from cais.cli import app
from cais.errors import CaisError
from cais.project import read_config
from cais.resolve import resolve
from tests.support import assert_one_error

pytestmark = pytest.mark.usefixtures("fast_package_scan")

TRAINING = "name: {name}\ntrain: train.py\nentrypoint: train.py\n"
SCRIPT = {"requirements.txt": "", "script.py": "print('hi')\n"}


@pytest.fixture
def store(home: Path) -> ModelStore:
    return ModelStore(home)


def save(store: ModelStore, name: str, times: int = 1) -> None:
    model = LogisticRegression().fit(np.array([[0.0], [1.0]]), np.array([0, 1]))
    for _ in range(times):
        store.save(model, name)


def training_project(folder: Path, name: str | None = None) -> Path:
    folder.mkdir(parents=True)
    (folder / "cais.yaml").write_text(TRAINING.format(name=name or folder.name))
    (folder / "requirements.txt").write_text("scikit-learn\n")
    (folder / "train.py").write_text("")
    return folder


def script_project(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for name, text in SCRIPT.items():
        (folder / name).write_text(text)
    return folder


def reference(found) -> str:
    return found.bundle.reference


# --- explicit spellings --------------------------------------------------------------------


@pytest.mark.parametrize("argument", ["shop:1", "shop:latest", "shop:production"])
@pytest.mark.parametrize("projects", [True, False], ids=["build", "serve"])
def test_a_version_or_alias_is_always_the_saved_model(store, here, argument, projects):
    save(store, "shop", 2)
    store.tag("shop:1", "production")
    script_project(here / "shop")  # a folder of the same name changes nothing
    found = resolve(argument, projects=projects, store=store)
    assert reference(found) == ("shop:2" if argument == "shop:latest" else "shop:1")
    assert found.project is None and found.note is None


@pytest.mark.parametrize("spelling", ["./hello", "hello/", "{abs}"])
def test_a_path_is_always_the_folder(store, here, spelling):
    save(store, "hello")
    script_project(here / "hello")
    argument = spelling.replace("{abs}", str(here / "hello"))
    found = resolve(argument, projects=True, store=store)
    assert found.project == Path(argument) and found.bundle is None and found.note is None


# --- a name that is both a folder and a model ------------------------------------------------


@pytest.mark.parametrize("spelling", ["shop", "./shop", "."])
@pytest.mark.parametrize("projects", [True, False], ids=["build", "serve"])
def test_a_training_project_stands_for_its_newest_model(
    store, here, monkeypatch, spelling, projects
):
    save(store, "shop", 2)
    training_project(here / "shop")
    if spelling == ".":
        monkeypatch.chdir(here / "shop")
    found = resolve(spelling, projects=projects, store=store)
    assert reference(found) == "shop:2"
    assert found.project is None
    assert found.origin == Path(spelling)
    assert found.note == f"`{spelling}` is a training project: taking its newest model `shop:2`"


def test_a_training_project_named_otherwise_takes_its_own_model_and_says_how_to_ask_for_the_other(
    store, here
):
    save(store, "shop")
    save(store, "products", 3)
    training_project(here / "shop", name="products")
    found = resolve("shop", projects=False, store=store)
    assert reference(found) == "products:3"
    assert "for the saved model `shop`, write `shop:latest`" in found.note


def test_a_project_folder_is_built_and_the_model_of_that_name_is_one_word_away(store, here):
    save(store, "hello")
    script_project(here / "hello")
    found = resolve("hello", projects=True, store=store)
    assert found.project == Path("hello") and found.bundle is None
    assert found.note == (
        "`hello` is taken as the folder `./hello`; for the saved model `hello`, write "
        "`hello:latest`"
    )
    assert reference(resolve("hello:latest", projects=True, store=store)) == "hello:1"


@pytest.mark.parametrize(
    ("make", "kind"),
    [(script_project, "a project"), (Path.mkdir, "neither a project nor a model")],
    ids=["project", "empty"],
)
def test_a_folder_that_cannot_be_served_gives_way_to_the_model(store, here, make, kind):
    save(store, "hello")
    make(here / "hello")
    found = resolve("hello", projects=False, store=store)
    assert reference(found) == "hello:1"
    assert (
        found.note == f"`hello` is the saved model `hello:1`; the folder `./hello` here is {kind}"
    )


def test_an_empty_folder_gives_way_to_the_model_in_a_build_too(store, here):
    save(store, "hello")
    (here / "hello").mkdir()
    assert reference(resolve("hello", projects=True, store=store)) == "hello:1"


@pytest.mark.parametrize("spelling", ["copy", "./copy"])
def test_a_bundle_folder_is_its_model(store, here, spelling):
    save(store, "shop")
    shutil.copytree(store.get("shop").path, here / "copy")
    found = resolve(spelling, projects=True, store=store)
    assert reference(found) == "shop:1"
    assert found.bundle.path == Path(spelling)


# --- what fits nothing: one sentence --------------------------------------------------------


@pytest.mark.parametrize(
    ("setup", "argument", "projects", "message", "hint"),
    [
        ("training", "shop", False, "The training project `shop` has not saved its model `shop` yet", "train it with `cais train shop`"),
        ("training", "./shop", True, "The training project `./shop` has not saved its model `shop` yet", "train it with `cais train ./shop`"),
        ("script", "hello", False, "`hello` is a project folder, not a model", "build and run it with `cais build hello`"),
        ("script", ".", False, "`.` is a project folder, not a model", "build and run it with `cais build .`"),
        ("empty", "stuff", False, "`stuff` is neither a model bundle nor a training project", "a bundle folder, or a training project folder"),
        ("none", "nothing", False, "No model is named `nothing` in the store `{store}`", "cais models list"),
        ("none", "nothing", True, "`nothing` is neither a folder here nor a saved model", "give a project folder, or a saved model (`other`)"),
        ("none", "Shop", True, "`Shop` is neither a folder here nor a saved model", "a saved model (`other`)"),
        ("none", "./nothing", False, "The folder `./nothing` does not exist", "`cais models list` lists them"),
        ("file", "./notes.txt", False, "`./notes.txt` is a file, not a folder", "give the folder"),
        ("none", "Shop", False, "`Shop` is not a model name", "lowercase"),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 12 else None,
)  # fmt: skip
def test_what_fits_nothing_says_what_it_is_and_what_to_do(
    store, here, monkeypatch, setup, argument, projects, message, hint
):
    save(store, "other")
    if setup == "training":
        training_project(here / "shop")
    elif setup == "script":
        script_project(here / "hello")
        monkeypatch.chdir(here / "hello") if argument == "." else None
    elif setup == "empty":
        (here / "stuff").mkdir()
    elif setup == "file":
        (here / "notes.txt").write_text("")
    with pytest.raises(CaisError) as raised:
        resolve(argument, projects=projects, store=store)
    assert raised.value.message == message.format(store=store.root)
    assert hint in raised.value.hint


@pytest.mark.parametrize("argument", ["./missing", "missing-folder/", "empty"])
def test_a_build_leaves_a_folder_that_is_no_project_to_the_project_loader(store, here, argument):
    (here / "empty").mkdir()
    assert resolve(argument, projects=True, store=store).project == Path(argument)


# --- the commands follow the rule -----------------------------------------------------------


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.mark.parametrize(
    ("command", "setup", "message"),
    [
        (["serve", "hello"], "script", "error: `hello` is a project folder, not a model"),
        (["serve", "shop"], "training", "error: The training project `shop` has not saved"),
        (["build", "shop"], "training", "error: The training project `shop` has not saved"),
        (["dockerfile", "shop"], "training", "error: The training project `shop` has not saved"),
        (["build", "nothing"], "none", "error: `nothing` is neither a folder here nor a saved"),
        (["serve", "nothing"], "none", "error: No model is named `nothing` in the store"),
        (["models", "show", "./shop"], "training", "error: The training project `./shop` has"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else None,
)
def test_commands_fail_in_one_sentence_before_anything_starts(
    runner, store, here, unreachable_engine, command, setup, message
):
    if setup == "training":
        training_project(here / "shop")
    elif setup == "script":
        script_project(here / "hello")
    output = assert_one_error(runner.invoke(app, command))
    assert message in output
    assert "not reachable" not in output


def test_models_show_takes_a_training_project(runner, store, here):
    save(store, "shop", 2)
    training_project(here / "shop")
    result = runner.invoke(app, ["models", "show", "shop"])
    assert result.exit_code == 0, result.output
    assert '"version": "2"' in result.stdout


def test_build_of_a_training_project_builds_its_model_not_the_folder(
    runner, store, here, monkeypatch, unreachable_engine
):
    """The folder's own image would run train.py without cais and crash: the serving image
    of its newest model is built instead, saying so, with the project's `routes:`."""
    import cais.build

    built = []

    def build_bundle_image(builder, bundle, options, display, pip, **kwargs):
        built.append((bundle.reference, [route.path for route in kwargs["routes"]]))
        raise CaisError("stopped before the build")

    monkeypatch.setattr(cais.build, "build_bundle_image", build_bundle_image)
    save(store, "shop")
    training_project(here / "shop")
    with (here / "shop" / "cais.yaml").open("a") as config:  # the project's API contract
        config.write("routes:\n  - {path: /old, input: text, output: label}\n")
    out = here / "out"
    result = runner.invoke(app, ["build", "shop", "-t", "shop:1", "--output", f"oci:{out}"])
    assert built == [("shop:1", ["/old"])]
    assert "• `shop` is a training project: taking its newest model `shop:1`" in result.output


def test_a_model_with_kept_routes_does_not_share_an_image(runner, store, here, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nowhere/docker.sock")
    save(store, "shop")
    save(store, "other")
    training_project(here / "shop")
    with (here / "shop" / "cais.yaml").open("a") as config:
        config.write("routes:\n  - {path: /old, input: text, output: label}\n")
    result = runner.invoke(app, ["build", "other:1", "shop", "-t", "both:1"])
    output = assert_one_error(result)
    assert "error: `routes:` in `shop/cais.yaml` keeps an API contract for `shop:1` alone" in (
        output
    )
    assert "which an image of several models does not keep" in output
    assert "build `shop` alone" in output


def test_dockerfile_of_a_training_project_is_the_one_its_build_builds(runner, store, here):
    """`cais dockerfile` follows the rule of `cais build`: the serving image of the newest
    model, with the project's `routes:`, not an image that would run train.py."""
    from cais.build import serving_dockerfile

    save(store, "shop", 2)
    training_project(here / "shop")
    with (here / "shop" / "cais.yaml").open("a") as config:
        config.write("routes:\n  - {path: /old, input: text, output: label}\n")
    result = runner.invoke(app, ["dockerfile", "shop", "-t", "me/shop:7"])
    assert result.exit_code == 0, result.output
    assert "• `shop` is a training project: taking its newest model `shop:2`" in result.output
    assert "• `cais build shop` builds it" in result.output
    text = result.stdout
    assert text.splitlines()[-1] == (
        'CMD ["python", "-m", "cais.server", "/model", "--port", "8080"]'
    )
    assert "train.py" not in text
    assert 'org.opencontainers.image.title="me/shop"' in text
    assert "/old" in text  # the kept API contract travels with the image
    bundle = store.get("shop")
    routes = list(read_config(here / "shop" / "cais.yaml").routes)
    assert text == serving_dockerfile(bundle, tags=("me/shop:7",), routes=routes)


def test_dockerfile_of_a_script_project_is_its_own(runner, store, here):
    save(store, "other")
    script_project(here / "hello")
    result = runner.invoke(app, ["dockerfile", "hello"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == 'CMD ["python", "script.py"]'
    assert "training project" not in result.output
