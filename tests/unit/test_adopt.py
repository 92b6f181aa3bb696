"""`cais models import`: reading an old pickle, choosing its stack and Python, keeping it as a
bundle — on pickles the tests make as old scikit-learn releases did, and a fake PyPI."""

from __future__ import annotations

import json
from pathlib import Path

import joblib
import pytest
from typer.testing import CliRunner

import cais
from cais.bundle.adopt import plan_adoption
from cais.bundle.store import ModelStore
from cais.cli import app
from cais.errors import BundleError, StackError
from tests.support import assert_one_error, text_model
from tests.unit.test_pickle_scan import OldLogistic, OldPipeline, _dump, _importable, _old_class
from tests.unit.test_wheels import FakePyPI

CustomStep = _old_class("mycompany", "Cleaner")


@pytest.fixture
def index():
    with FakePyPI().index() as index:
        yield index


@pytest.fixture
def old_pickle(tmp_path) -> Path:
    """A pipeline as scikit-learn 0.24.2 pickled it with joblib (zlib), under module paths
    today's scikit-learn no longer has."""
    model = OldPipeline(
        steps=[("clf", OldLogistic(C=1.0, _sklearn_version="0.24.2"))],
        _sklearn_version="0.24.2",
    )
    return _dump(tmp_path / "old.joblib", model, compress=3)


def test_an_old_pickle_gets_its_contemporary_stack_and_the_newest_python(old_pickle, index):
    adoption = plan_adoption(old_pickle, pythons=["3.9", "3.11"], index=index)
    assert adoption.python == "3.9"  # scikit-learn 0.24.2 has no wheel for 3.11
    assert adoption.packages["scikit-learn"] == "0.24.2"
    assert adoption.packages["numpy"] == "1.20.2"  # what there was when 0.24.2 came out
    assert adoption.packages["scipy"] == "1.6.3"
    assert adoption.anchor == "scikit-learn 0.24.2"
    assert adoption.cutoff is not None and adoption.cutoff.year == 2021
    assert adoption.facts.top_class == "sklearn.pipeline.Pipeline"


def test_a_python_without_wheels_is_refused_by_name(old_pickle, index):
    with pytest.raises(StackError) as caught:
        plan_adoption(old_pickle, python="3.11", index=index)
    assert "scikit-learn 0.24.2" in caught.value.message
    assert "3.11" in caught.value.message


def test_pythons_older_than_the_server_are_not_candidates(old_pickle, index):
    with pytest.raises(BundleError, match="3.9 or newer"):
        plan_adoption(old_pickle, pythons=["3.7", "3.8"], index=index)


def test_a_requirement_cannot_contradict_the_recorded_version(old_pickle, index):
    with pytest.raises(BundleError) as caught:
        plan_adoption(old_pickle, requirements=["scikit-learn==1.3.2"], index=index)
    assert "made with scikit-learn 0.24.2" in caught.value.message


@pytest.mark.parametrize("requirement", ["numpy>=1.20", "numpy; python_version<'3.10'", "=="])
def test_only_names_and_exact_pins_are_requirements(old_pickle, index, requirement):
    with pytest.raises(BundleError, match="not a package or an exact pin"):
        plan_adoption(old_pickle, requirements=[requirement], index=index)


def test_a_module_of_ones_own_must_be_named(tmp_path, index):
    model = OldPipeline(steps=[("clean", CustomStep())], _sklearn_version="0.24.2")
    with _importable(CustomStep):
        file = _dump(tmp_path / "custom.pkl", model)
    with pytest.raises(BundleError) as caught:
        plan_adoption(file, pythons=["3.9"], index=index)
    assert "`mycompany`" in caught.value.message
    assert "--predictor" in caught.value.hint
    adoption = plan_adoption(file, pythons=["3.9"], own_modules={"mycompany"}, index=index)
    assert "mycompany" not in adoption.packages


# --- the store ---------------------------------------------------------------------------


def test_an_imported_file_is_kept_byte_for_byte(old_pickle, home):
    bundle = ModelStore(home).adopt(
        old_pickle,
        "legacy",
        python="3.9",
        packages={"scikit-learn": "0.24.2"},
        model_class="sklearn.pipeline.Pipeline",
        modules=["sklearn.pipeline"],
        imported={"file": old_pickle.name, "sklearn_version": "0.24.2"},
        input_example=["livro azul"],
    )
    assert bundle.reference == "legacy:1"
    assert bundle.artifact.name == "model.joblib"
    assert bundle.artifact.read_bytes() == old_pickle.read_bytes()
    bundle.verify()
    saved = ModelStore(home).get("legacy")
    assert saved.metadata.python == "3.9"
    assert saved.metadata.imported["sklearn_version"] == "0.24.2"
    assert [t.datatype for t in saved.metadata.inputs] == ["BYTES"]


PREDICTOR = """
import cais


class Shouting(cais.Predictor):
    def predict(self, batch):
        return [label.upper() for label in self.model.predict(batch)]
"""


def test_a_predictor_wraps_an_imported_pickle(tmp_path, home):
    file = tmp_path / "model.pkl"
    joblib.dump(text_model(), file)
    predictor = tmp_path / "shouting.py"
    predictor.write_text(PREDICTOR)
    bundle = ModelStore(home).adopt(
        file,
        "wrapped",
        python="3.11",
        packages={},
        model_class="",
        modules=[],
        imported={"file": file.name},
        predictor=predictor,
    )
    assert bundle.metadata.predictor == "shouting:Shouting"
    assert (bundle.path / "shouting.py").is_file()
    model = cais.load_model("wrapped", home=home)
    assert model.predict(["livro de receitas"]) == ["LIVRO"]


@pytest.mark.parametrize(
    ("source", "count"),
    [("x = 1\n", "no"), (PREDICTOR + PREDICTOR.replace("Shouting", "Other"), "2")],
)
def test_a_predictor_file_needs_exactly_one_predictor(tmp_path, home, old_pickle, source, count):
    predictor = tmp_path / "p.py"
    predictor.write_text(source)
    with pytest.raises(BundleError, match=f"defines {count} `cais.Predictor` subclasses"):
        ModelStore(home).adopt(
            old_pickle, "x", python="3.9", packages={}, model_class="", modules=[], imported={},
            predictor=predictor,
        )  # fmt: skip
    assert not (home / "models" / "x").exists()


# --- the command -------------------------------------------------------------------------


@pytest.fixture
def fake_pypi(monkeypatch, index):
    import cais.bundle.wheels

    monkeypatch.setattr(cais.bundle.wheels, "PackageIndex", lambda *a, **k: index)
    monkeypatch.setenv("CAIS_PYTHONS", "3.9,3.11")


def test_the_import_command(old_pickle, home, fake_pypi):
    result = CliRunner().invoke(
        app,
        ["models", "import", str(old_pickle), "--name", "legacy", "--version", "2021"],
    )
    assert result.exit_code == 0, result.output
    assert "scikit-learn 0.24.2" in result.output
    assert "Python 3.9" in result.output
    assert "cais build legacy:2021" in result.output
    shown = json.loads(CliRunner().invoke(app, ["models", "show", "legacy:2021"]).stdout)
    assert shown["packages"]["numpy"] == "1.20.2"
    assert "sklearn.pipeline" in shown["modules"]  # byte-compiled in its image


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["missing.pkl"], "does not exist"),
        (["{csv}"], "not a pickle"),
        (["{pickle}", "--input-example", "[oops"], "--input-example is not JSON"),
        (["{pickle}", "--input-example", "[]"], "non-empty JSON list"),
        (["{pickle}", "--predictor", "nowhere.py"], "predictor file `nowhere.py` does not exist"),
        (["{pickle}", "--python", "3.11"], "no wheel for Python 3.11"),
        (["{pickle}", "--python", "3.8"], "needs Python 3.9 or newer, not 3.8"),
        (["{pickle}", "--python", "three"], "`three` is not a Python version"),
        (["{pickle}", "--predictor", "{dashed}"], "`my-predictor.py` cannot be imported"),
    ],
)
def test_import_errors_are_one_sentence(tmp_path, home, old_pickle, fake_pypi, args, says):
    csv = tmp_path / "data.csv"
    csv.write_text("titulo,categoria\nlivro,livro\n")
    dashed = tmp_path / "my-predictor.py"
    dashed.write_text(PREDICTOR)
    args = [a.format(csv=csv, pickle=old_pickle, dashed=dashed) for a in args]
    result = CliRunner().invoke(app, ["models", "import", *args, "--name", "legacy"])
    message = assert_one_error(result)
    assert says in message
    assert not (home / "models" / "legacy").exists()


def test_an_unreachable_package_index_is_one_error(old_pickle, home, monkeypatch):
    from tests.support import free_port

    monkeypatch.setenv("CAIS_PYPI_JSON_URL", f"http://127.0.0.1:{free_port()}/pypi")
    monkeypatch.setenv("CAIS_PYTHONS", "3.9")
    result = CliRunner().invoke(app, ["models", "import", str(old_pickle), "--name", "legacy"])
    message = assert_one_error(result)
    assert "did not answer about scikit-learn" in message
    assert not (home / "models" / "legacy").exists()


def test_a_wrapped_pickle_that_cannot_load_is_one_error(tmp_path, home, old_pickle):
    predictor = tmp_path / "shouting.py"
    predictor.write_text(PREDICTOR)
    ModelStore(home).adopt(
        old_pickle, "wrapped", python="3.11", packages={}, model_class="", modules=[],
        imported={}, predictor=predictor,
    )  # fmt: skip
    with pytest.raises(BundleError) as caught:  # its classes are not in today's scikit-learn
        cais.load_model("wrapped", home=home)
    assert "cannot be loaded" in caught.value.message
    assert "ModuleNotFoundError" in caught.value.message
