"""`cais models list | show | tag | rm` through typer's CliRunner, on a store in a tmp folder."""

from __future__ import annotations

import datetime
import importlib.metadata
import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from typer.testing import CliRunner

from cais.bundle.store import ModelStore
from cais.cli import app
from tests.support import assert_one_error

X = np.array([[0.0, 1.0], [1.0, 0.0], [4.0, 5.0], [5.0, 4.0]])
Y = np.array([0, 0, 1, 1])
TITLES = ["livro de receitas", "boneca de pano", "batom vermelho", "jogo de corrida"]
CATEGORIES = ["livro", "brinquedo", "maquiagem", "game"]

pytestmark = pytest.mark.usefixtures("fast_package_scan")


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def store(home: Path) -> ModelStore:
    """precos:1 (production), precos:2 (latest) with metrics; categorias:1."""
    store = ModelStore(home)
    model = LogisticRegression().fit(X, Y)
    store.save(model, "precos", metrics={"accuracy": 0.75})
    store.save(model, "precos", metrics={"accuracy": 0.875, "f1": 0.5})
    store.tag("precos:1", "production")
    text = make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(TITLES, CATEGORIES)
    store.save(text, "categorias", input_example=["livro de receitas"])
    return store


def rows(stdout: str) -> list[list[str]]:
    """The table's lines, split on runs of two or more spaces."""
    import re

    return [re.split(r"\s{2,}", line.strip()) for line in stdout.splitlines() if line.strip()]


# --- list ----------------------------------------------------------------------------------


def test_list_shows_versions_aliases_latest_and_metrics(runner, store):
    result = runner.invoke(app, ["models", "list"])
    assert result.exit_code == 0, result.output
    header, *table = rows(result.stdout)
    assert header == ["MODEL", "VERSION", "ALIASES", "CREATED", "METRICS"]
    today = f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d}"
    assert [row[:3] for row in table] == [
        ["categorias", "1", "latest"],
        ["precos", "1", "production"],
        ["precos", "2", "latest"],
    ]
    assert all(row[3].startswith(today) for row in table), table
    assert table[0][4:] == []  # no metrics
    assert table[1][4] == "accuracy=0.75"
    assert table[2][4] == "accuracy=0.875, f1=0.5"


def test_list_of_one_model(runner, store):
    store.tag("precos:2", "staging")
    result = runner.invoke(app, ["models", "list", "precos"])
    assert result.exit_code == 0, result.output
    _, *table = rows(result.stdout)
    assert [row[:3] for row in table] == [
        ["precos", "1", "production"],
        ["precos", "2", "latest, staging"],
    ]


def test_list_of_an_empty_store(runner, home):
    result = runner.invoke(app, ["models", "list"])
    assert result.exit_code == 0, result.output
    assert rows(result.stdout) == [["MODEL", "VERSION", "ALIASES", "CREATED", "METRICS"]]


def test_list_of_an_unknown_model_is_an_error(runner, store):
    output = assert_one_error(runner.invoke(app, ["models", "list", "nada"]))
    assert "No model is named `nada`" in output
    assert_one_error(runner.invoke(app, ["models", "list", "../x"]))


# --- show ----------------------------------------------------------------------------------


def test_show_prints_the_metadata_and_path_as_json(runner, store):
    result = runner.invoke(app, ["models", "show", "precos:production"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    bundle = store.get("precos:1")
    assert data["path"] == str(bundle.path)
    assert data["name"] == "precos"
    assert data["version"] == "1"
    assert data["metrics"] == {"accuracy": 0.75}
    assert data["files"] == bundle.metadata.files
    assert data["packages"]["scikit-learn"] == importlib.metadata.version("scikit-learn")
    assert data["methods"] == ["predict", "predict_proba"]


def test_show_without_a_version_is_the_latest(runner, store):
    result = runner.invoke(app, ["models", "show", "categorias"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["version"] == "1"
    assert data["path"] == str(store.root / "categorias" / "1")
    assert data["input_example"] == ["livro de receitas"]
    assert data["inputs"] == [{"name": "input", "datatype": "BYTES", "shape": [-1]}]


# --- tag -----------------------------------------------------------------------------------


def test_tag_points_an_alias_at_a_version(runner, store):
    result = runner.invoke(app, ["models", "tag", "precos:2", "production"])
    assert result.exit_code == 0, result.output
    assert "`precos:production` now points at `precos:2`" in result.output
    assert result.stdout == ""  # messages go to stderr
    assert store.aliases("precos") == {"production": "2"}
    assert store.resolve("precos:production") == "precos:2"


def test_tag_refuses_latest(runner, store):
    output = assert_one_error(runner.invoke(app, ["models", "tag", "precos:1", "latest"]))
    assert "error: `latest` cannot be an alias" in output
    assert "hint: `latest` is always the newest version" in output
    assert store.aliases("precos") == {"production": "1"}


# --- rm ------------------------------------------------------------------------------------


def test_rm_removes_a_version_and_its_aliases(runner, store):
    result = runner.invoke(app, ["models", "rm", "precos:1"])
    assert result.exit_code == 0, result.output
    assert "Removed `precos:1`" in result.output
    assert store.versions("precos") == ["2"]
    assert store.aliases("precos") == {}
    listed = runner.invoke(app, ["models", "list", "precos"])
    assert [row[:3] for row in rows(listed.stdout)[1:]] == [["precos", "2", "latest"]]


def test_rm_of_the_last_version_removes_the_model(runner, store):
    result = runner.invoke(app, ["models", "rm", "categorias:1"])
    assert result.exit_code == 0, result.output
    assert store.names() == ["precos"]
    assert not (store.root / "categorias").exists()


# --- errors --------------------------------------------------------------------------------


def test_rm_without_a_version_is_an_error(runner, store):
    output = assert_one_error(runner.invoke(app, ["models", "rm", "precos"]))
    assert "error: Name the version to remove" in output
    assert "hint: such as `cais models rm precos:1`" in output
    assert store.versions("precos") == ["1", "2"]


@pytest.mark.parametrize(
    "arguments",
    [
        ["show", "nada"],
        ["show", "nada:1"],
        ["tag", "nada:1", "production"],
        ["rm", "nada:1"],
    ],
)
def test_an_unknown_model_is_an_error(runner, store, arguments):
    output = assert_one_error(runner.invoke(app, ["models", *arguments]))
    assert "error: No model is named `nada` in the store" in output
    assert "hint: list models with `cais models list`" in output


def test_an_unknown_version_is_an_error(runner, store):
    output = assert_one_error(runner.invoke(app, ["models", "show", "precos:7"]))
    assert "error: The model `precos` has no version or alias `7`" in output
    assert "hint: versions: 1, 2" in output


def test_an_invalid_name_is_an_error(runner, store):
    output = assert_one_error(runner.invoke(app, ["models", "show", "Meus Modelos"]))
    assert "is not a model name" in output


def test_a_tampered_bundle_does_not_break_show_or_list(runner, store):
    (store.get("precos:1").artifact).write_bytes(b"not a pickle")
    assert runner.invoke(app, ["models", "show", "precos:1"]).exit_code == 0
    assert runner.invoke(app, ["models", "list"]).exit_code == 0


def test_models_without_a_command_shows_help(runner, home):
    result = runner.invoke(app, ["models"])
    for command in ("list", "show", "tag", "rm"):
        assert f" {command} " in result.output


# --- a damaged store ------------------------------------------------------------------------


def _bad_json(bundle_path: Path) -> None:
    (bundle_path / "cais-model.json").write_text("{not json", encoding="utf-8")


def _no_metadata(bundle_path: Path) -> None:
    (bundle_path / "cais-model.json").unlink()


def _no_artifact(bundle_path: Path) -> None:
    (bundle_path / "model.joblib").unlink()


def _wrong_fields(bundle_path: Path) -> None:
    (bundle_path / "cais-model.json").write_text('{"name": 3}', encoding="utf-8")


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (_bad_json, "The metadata of `precos:1` is damaged: Invalid JSON"),
        (_no_metadata, "`precos:1` has no cais-model.json"),
        (_no_artifact, "`model.joblib` is missing"),
        (_wrong_fields, "The metadata of `precos:1` is damaged: Input should be a valid string"),
    ],
)
def test_a_damaged_bundle_is_listed_with_its_reason_among_the_others(runner, store, damage, reason):
    damage(store.root / "precos" / "1")
    result = runner.invoke(app, ["models", "list"])
    assert result.exit_code == 0, result.output
    _, *table = rows(result.stdout)
    assert [row[:4] for row in table] == [
        ["categorias", "1", "latest", table[0][3]],
        ["precos", "1", "production", "damaged"],
        ["precos", "2", "latest", table[2][3]],
    ]
    assert table[1][4].startswith(reason), table[1]
    assert table[2][4] == "accuracy=0.875, f1=0.5"
    if damage is not _no_artifact:  # its metadata: one sentence when shown
        shown = assert_one_error(runner.invoke(app, ["models", "show", "precos:1"]))
        assert reason in shown
    removed = runner.invoke(app, ["models", "rm", "precos:1"])  # and it can be removed
    assert removed.exit_code == 0, removed.output
    assert store.versions("precos") == ["2"]


@pytest.mark.parametrize("content", ["{not json", '["production"]', '{"production": 1}', ""])
def test_a_damaged_alias_file_is_listed_and_the_versions_still_are(runner, store, content):
    (store.root / "precos" / "aliases.json").write_text(content, encoding="utf-8")
    result = runner.invoke(app, ["models", "list"])
    assert result.exit_code == 0, result.output
    _, *table = rows(result.stdout)
    assert [row[:3] for row in table] == [
        ["categorias", "1", "latest"],
        ["precos", "-", "damaged"],
        ["precos", "1", table[2][2]],
        ["precos", "2", "latest"],
    ]
    assert table[1][3].startswith("The aliases of `precos`"), table[1]
    assert table[2][2] not in ("damaged",)
    assert runner.invoke(app, ["models", "show", "precos:1"]).exit_code == 0
    output = assert_one_error(runner.invoke(app, ["models", "show", "precos:production"]))
    assert "The aliases of `precos`" in output


# --- rm through an alias asks; untag removes only the alias ---------------------------------


@pytest.mark.parametrize("answer", [None, "n\n", "\n", "no\n", "yess\n"])
def test_rm_through_an_alias_without_a_yes_removes_nothing(runner, store, answer):
    output = assert_one_error(
        runner.invoke(app, ["models", "rm", "precos:production"], input=answer)
    )
    assert "error: Nothing was removed: `precos:production` is an alias of `precos:1`" in output
    assert "cais models untag precos:production" in output
    assert store.versions("precos") == ["1", "2"]
    assert store.aliases("precos") == {"production": "1"}


def test_rm_through_an_alias_from_a_closed_stdin_is_one_sentence(store):
    from tests.support import run_cais

    done = run_cais("models", "rm", "precos:production", input="")
    assert done.returncode == 1, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines[0] == "error: Nothing was removed: `precos:production` is an alias of `precos:1`"
    assert [line.split(":")[0] for line in lines] == ["error", "hint"]
    assert store.versions("precos") == ["1", "2"]
    assert store.aliases("precos") == {"production": "1"}


@pytest.mark.parametrize(
    ("options", "answer"), [(["--yes"], None), (["-y"], None), ([], "y\n"), ([], "YES\n")]
)
def test_rm_through_an_alias_with_a_yes_removes_the_version(runner, store, options, answer):
    result = runner.invoke(app, ["models", "rm", "precos:production", *options], input=answer)
    assert result.exit_code == 0, result.output
    assert "Removed `precos:1`, and its aliases `production`" in result.output
    assert store.versions("precos") == ["2"]
    assert store.aliases("precos") == {}


def test_rm_of_a_version_names_the_aliases_it_takes_along(runner, store):
    store.tag("precos:1", "staging")
    result = runner.invoke(app, ["models", "rm", "precos:1"])
    assert result.exit_code == 0, result.output
    assert "Removed `precos:1`, and its aliases `production`, `staging`" in result.output


def test_untag_removes_only_the_alias(runner, store):
    store.tag("precos:2", "staging")
    result = runner.invoke(app, ["models", "untag", "precos:production"])
    assert result.exit_code == 0, result.output
    assert "Removed the alias `precos:production` (`precos:1` stays)" in result.output
    assert store.versions("precos") == ["1", "2"]
    assert store.aliases("precos") == {"staging": "2"}


@pytest.mark.parametrize(
    ("reference", "says"),
    [
        ("precos:1", "error: `precos:1` is a version, not an alias"),
        ("precos:latest", "error: `precos` has no alias `latest` to remove"),
        ("precos:staging", "error: `precos` has no alias `staging` to remove"),
        ("precos", "error: Name the alias to remove"),
        ("nada:production", "error: No model is named `nada`"),
    ],
)
def test_untag_errors_are_one_sentence(runner, store, reference, says):
    output = assert_one_error(runner.invoke(app, ["models", "untag", reference]))
    assert says in output
    assert store.aliases("precos") == {"production": "1"}


@pytest.mark.parametrize("alias", ["3", "2021", "1.5", "2rc1", "0-beta"])
def test_tag_refuses_an_alias_that_looks_like_a_version(runner, store, alias):
    output = assert_one_error(runner.invoke(app, ["models", "tag", "precos:1", alias]))
    assert f"error: `{alias}` cannot be an alias" in output
    assert "starts with a letter" in output
    assert store.aliases("precos") == {"production": "1"}
