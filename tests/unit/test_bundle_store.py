"""The model store: saving, numbering, metadata, verified loading, aliases and removal.

Every model here is tiny (a LogisticRegression on four rows, or a TF-IDF pipeline on a few
product titles) and made in the test, so the whole file runs in a few seconds.
"""

from __future__ import annotations

import datetime
import hashlib
import importlib
import importlib.metadata
import json
import os
import pickle
import platform
import re
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import make_column_transformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

import cais
from cais.bundle.metadata import METADATA_FILE, Tensor
from cais.bundle.store import Bundle, ModelStore, split_reference
from cais.errors import BundleError

TITLES = [
    "livro de receitas",
    "boneca de pano",
    "batom vermelho",
    "jogo de corrida",
    "livro de poemas",
    "carrinho de brinquedo",
    "base para maquiagem",
    "jogo de futebol",
]
CATEGORIES = ["livro", "brinquedo", "maquiagem", "game"] * 2

X = np.array([[0.0, 1.0], [1.0, 0.0], [4.0, 5.0], [5.0, 4.0]])
Y = np.array([0, 0, 1, 1])

pytestmark = pytest.mark.usefixtures("fast_package_scan")


# --- models that live in this module, so pickle can find them ------------------------------


class Constant:
    """Predicts 0 for every row; has no predict_proba."""

    def predict(self, rows):
        return np.zeros(len(rows), dtype=np.int64)


class FailsToPredict:
    def predict(self, rows):
        raise ValueError("this model was never fitted")


class NoPredict:
    def transform(self, rows):
        return rows


class CreatesMarker:
    """Unpickling it creates a folder: proof that unpickling ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


# --- fixtures and helpers ------------------------------------------------------------------


@pytest.fixture
def store(home: Path) -> ModelStore:
    return ModelStore(home)


@pytest.fixture(scope="module")
def logreg() -> LogisticRegression:
    return LogisticRegression().fit(X, Y)


@pytest.fixture(scope="module")
def other_logreg() -> LogisticRegression:
    """Learns the opposite labels, so its predictions differ from `logreg`'s."""
    return LogisticRegression().fit(X, 1 - Y)


@pytest.fixture(scope="module")
def text_pipeline():
    return make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(TITLES, CATEGORIES)


def leftovers(root: Path) -> list[Path]:
    """Temporary folders a save, replacement or removal may have left behind."""
    if not root.exists():
        return []
    return [
        p for p in root.rglob("*") if p.name.startswith((".saving-", ".replaced-", ".removing-"))
    ]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def raw_metadata(bundle: Bundle) -> dict:
    return json.loads((bundle.path / METADATA_FILE).read_text(encoding="utf-8"))


def edit_metadata(bundle: Bundle, change) -> None:
    file = bundle.path / METADATA_FILE
    data = json.loads(file.read_text(encoding="utf-8"))
    change(data)
    file.write_text(json.dumps(data), encoding="utf-8")


# --- saving and numbering ------------------------------------------------------------------


def test_save_model_returns_the_reference_and_numbers_from_one(home, store, logreg):
    assert cais.save_model(logreg, "precos") == "precos:1"  # CAIS_HOME chooses the store
    assert cais.save_model(logreg, "precos", home=home) == "precos:2"
    assert store.versions("precos") == ["1", "2"]
    assert store.names() == ["precos"]
    assert (home / "models" / "precos" / "2" / METADATA_FILE).is_file()
    assert leftovers(home) == []


def test_non_numeric_versions_do_not_break_numbering(store, logreg):
    assert store.save(logreg, "precos", "1.0").reference == "precos:1.0"
    assert store.save(logreg, "precos").reference == "precos:1"
    assert store.save(logreg, "precos", "beta").reference == "precos:beta"
    assert store.save(logreg, "precos").reference == "precos:2"
    assert store.versions("precos") == ["1", "1.0", "2", "beta"]


def test_explicit_string_versions(store, logreg):
    bundle = store.save(logreg, "precos", "2024.06-rc1")
    assert bundle.reference == "precos:2024.06-rc1"
    assert bundle.path == store.root / "precos" / "2024.06-rc1"
    assert store.get("precos:2024.06-rc1").metadata.version == "2024.06-rc1"


def test_an_existing_version_is_refused_and_left_intact(store, logreg, other_logreg):
    first = store.save(logreg, "precos", "1", metrics={"accuracy": 0.5})
    before = snapshot(first.path)
    with pytest.raises(BundleError, match=r"`precos:1` already exists") as caught:
        store.save(other_logreg, "precos", "1", metrics={"accuracy": 0.9})
    assert "overwrite=True" in caught.value.hint
    assert snapshot(first.path) == before
    assert store.versions("precos") == ["1"]
    assert leftovers(store.root) == []
    np.testing.assert_array_equal(store.load("precos:1").predict(X), logreg.predict(X))


def test_overwrite_replaces_a_version(store, logreg, other_logreg):
    store.save(logreg, "precos", "1", metrics={"accuracy": 0.5})
    bundle = store.save(other_logreg, "precos", "1", metrics={"accuracy": 0.9}, overwrite=True)
    assert bundle.reference == "precos:1"
    assert store.versions("precos") == ["1"]
    assert store.get("precos:1").metadata.metrics == {"accuracy": 0.9}
    predictions = store.load("precos:1").predict(X)
    np.testing.assert_array_equal(predictions, other_logreg.predict(X))
    assert not np.array_equal(predictions, logreg.predict(X))
    assert leftovers(store.root) == []


def test_a_model_that_cannot_predict_its_example_is_refused(store, logreg):
    store.save(logreg, "precos")
    with pytest.raises(BundleError, match="cannot predict its own input example: ValueError"):
        store.save(FailsToPredict(), "precos", input_example=X)
    with pytest.raises(BundleError, match="cannot predict"):
        store.save(FailsToPredict(), "novo", input_example=X)
    assert store.versions("precos") == ["1"]
    assert store.names() == ["precos"]
    assert leftovers(store.root) == []


def test_an_object_without_predict_is_refused(store):
    with pytest.raises(BundleError, match=r"A `NoPredict` has no `predict` method") as caught:
        store.save(NoPredict(), "precos")
    assert "cais.Predictor" in caught.value.hint
    assert store.names() == []
    assert leftovers(store.root) == []


def _interrupting_dump(monkeypatch):
    """joblib.dump writes half a file, then the user presses Ctrl-C."""
    import joblib

    def dump(value, filename, *args, **kwargs):
        Path(filename).write_bytes(b"\x80\x04half a pickle")
        raise KeyboardInterrupt

    monkeypatch.setattr(joblib, "dump", dump)


def test_an_interrupted_save_leaves_no_half_bundle(store, logreg, monkeypatch):
    store.save(logreg, "precos")
    before = snapshot(store.root)
    _interrupting_dump(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        store.save(logreg, "precos")
    with pytest.raises(KeyboardInterrupt):
        store.save(logreg, "precos", "2.0")
    assert store.versions("precos") == ["1"]
    assert store.resolve("precos:latest") == "precos:1"
    assert leftovers(store.root) == []
    assert snapshot(store.root) == before


def test_an_interrupted_first_save_lists_nothing(store, logreg, monkeypatch):
    _interrupting_dump(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        store.save(logreg, "precos")
    assert store.versions("precos") == []
    assert leftovers(store.root) == []
    assert store.names() == []


def test_an_unpicklable_model_is_refused_with_a_bundle_error(store):
    model = make_pipeline(FunctionTransformer(lambda rows: rows), LogisticRegression()).fit(X, Y)
    with pytest.raises(BundleError):
        store.save(model, "precos")


def test_the_version_latest_is_refused(store, logreg):
    with pytest.raises(BundleError):
        store.save(logreg, "precos", "latest")


def test_a_version_named_like_an_alias_is_refused(store, logreg):
    store.save(logreg, "precos")
    store.tag("precos:1", "production")
    with pytest.raises(BundleError):
        store.save(logreg, "precos", "production")
    assert store.resolve("precos:production") == "precos:1"


def test_a_main_class_is_refused_with_a_clear_sentence(store, monkeypatch):
    class NotebookModel:
        def predict(self, rows):
            return [0 for _ in rows]

    NotebookModel.__module__ = "__main__"
    NotebookModel.__qualname__ = "NotebookModel"
    monkeypatch.setattr(sys.modules["__main__"], "NotebookModel", NotebookModel, raising=False)
    pickle.dumps(NotebookModel())  # pickle itself finds it, so only cais can refuse it
    with pytest.raises(BundleError) as caught:
        store.save(NotebookModel(), "caderno")
    assert "defined in a notebook or in a script run as `__main__`" in caught.value.message
    assert "another process cannot import" in caught.value.message
    assert ".py file" in caught.value.hint
    assert store.names() == []
    assert leftovers(store.root) == []


def test_invalid_names_are_refused_before_anything_is_written(store, logreg, tmp_path):
    for name in ("Precos", "meus modelos", "../x"):
        with pytest.raises(BundleError, match="is not a model name"):
            store.save(logreg, name)
    with pytest.raises(BundleError, match="is not a version"):
        store.save(logreg, "precos", "../x")
    assert not store.root.exists()
    assert not (tmp_path / "x").exists()


# --- split_reference -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("precos", ("precos", None)),
        ("precos:", ("precos", None)),
        ("precos:3", ("precos", "3")),
        ("precos:1.0", ("precos", "1.0")),
        ("loja.catalogo_v2-b:Production", ("loja.catalogo_v2-b", "Production")),
    ],
)
def test_split_reference(reference, expected):
    assert split_reference(reference) == expected


@pytest.mark.parametrize(
    "reference", ["Precos", "meus modelos", "../x", "", ".escondido", "a/b", "-precos", "preços"]
)
def test_split_reference_refuses_invalid_names(reference):
    with pytest.raises(BundleError, match="is not a model name") as caught:
        split_reference(reference)
    assert "lowercase" in caught.value.hint


@pytest.mark.parametrize(
    "reference", ["precos:../x", "precos:1 0", "precos:.1", "precos:a/b", "precos:-1"]
)
def test_split_reference_refuses_invalid_versions(reference):
    with pytest.raises(BundleError, match="is not a version or alias"):
        split_reference(reference)


# --- metadata ------------------------------------------------------------------------------


def test_metadata_records_python_packages_and_class(store, logreg):
    before = datetime.datetime.now(datetime.timezone.utc)
    bundle = store.save(logreg, "precos")
    metadata = store.get("precos:1").metadata
    assert metadata == bundle.metadata
    assert metadata.python == platform.python_version()
    for package in ("scikit-learn", "numpy", "scipy", "joblib"):
        assert metadata.packages[package] == importlib.metadata.version(package), package
    assert metadata.model_class == "sklearn.linear_model._logistic.LogisticRegression"
    assert metadata.methods == ["predict", "predict_proba"]
    assert metadata.cais_version == cais.__version__
    assert metadata.created.tzinfo is not None
    assert before <= metadata.created <= datetime.datetime.now(datetime.timezone.utc)
    assert metadata.artifact == "model.joblib"


def test_a_model_without_predict_proba_records_only_predict(store):
    metadata = store.save(Constant(), "constante").metadata
    assert metadata.methods == ["predict"]
    assert metadata.model_class == f"{__name__}.Constant"


def test_files_are_listed_with_their_sha256(store, logreg):
    bundle = store.save(logreg, "precos")
    assert set(bundle.metadata.files) == {"model.joblib"}
    for relative, digest in bundle.metadata.files.items():
        assert hashlib.sha256((bundle.path / relative).read_bytes()).hexdigest() == digest
    assert sorted(p.name for p in bundle.path.iterdir()) == [METADATA_FILE, "model.joblib"]


def test_metrics_labels_and_requirements_are_recorded(store, logreg):
    store.save(
        logreg,
        "precos",
        metrics={"accuracy": 0.75, "f1": 0.5},
        labels={"equipe": "dados", "dataset": "vendas-2024"},
        requirements=["unidecode==1.3.8"],
    )
    data = raw_metadata(store.get("precos"))
    assert data["metrics"] == {"accuracy": 0.75, "f1": 0.5}
    assert data["labels"] == {"equipe": "dados", "dataset": "vendas-2024"}
    assert data["requirements"] == ["unidecode==1.3.8"]


@pytest.mark.parametrize(
    ("value", "said"),
    [
        (float("nan"), "`auc` is nan, which a bundle cannot record"),
        (float("inf"), "`auc` is inf, which a bundle cannot record"),
        (float("-inf"), "`auc` is -inf, which a bundle cannot record"),
        ("high", "`auc` is `'high'`, not a number"),
        (None, "`auc` is `None`, not a number"),
    ],
)
def test_a_metric_json_cannot_hold_is_refused_before_anything_is_saved(store, logreg, value, said):
    with pytest.raises(BundleError, match=re.escape(said)):
        store.save(logreg, "precos", metrics={"auc": value})
    assert store.versions("precos") == []


def test_numpy_metrics_are_recorded_as_numbers(store, logreg):
    store.save(logreg, "precos", metrics={"accuracy": np.float32(0.5), "n": np.int64(3)})
    assert store.get("precos").metadata.metrics == {"accuracy": 0.5, "n": 3.0}


def test_a_pandas_series_example_is_stored_as_its_values(store):
    import pandas as pd

    from tests.support import text_model

    bundle = store.save(text_model(), "textos", input_example=pd.Series(["livro azul", "bola"]))
    assert raw_metadata(bundle)["input_example"] == ["livro azul", "bola"]


def test_a_numpy_example_is_stored_as_json_with_its_signature(store, logreg):
    bundle = store.save(logreg, "precos", input_example=X[:2])
    data = raw_metadata(bundle)
    assert data["input_example"] == [[0.0, 1.0], [1.0, 0.0]]
    assert data["inputs"] == [{"name": "input", "datatype": "FP64", "shape": [-1, 2]}]
    assert data["outputs"] == [{"name": "predict", "datatype": "INT64", "shape": [-1]}]


def test_a_list_of_strings_is_stored_as_json_with_its_signature(store, text_pipeline):
    example = ["livro de receitas", "batom vermelho"]
    bundle = store.save(text_pipeline, "categorias", input_example=example)
    data = raw_metadata(bundle)
    assert data["input_example"] == example
    assert bundle.metadata.inputs == [Tensor(name="input", datatype="BYTES", shape=[-1])]
    assert bundle.metadata.outputs == [Tensor(name="predict", datatype="BYTES", shape=[-1])]
    assert bundle.metadata.methods == ["predict", "predict_proba"]
    assert bundle.metadata.model_class == "sklearn.pipeline.Pipeline"


def test_a_dataframe_example_is_stored_as_json_with_named_columns(store):
    frame = pd.DataFrame({"preco": [10.0, 99.9, 5.5, 42.0], "quantidade": [1, 3, 2, 8]})
    model = LogisticRegression().fit(frame, Y)
    bundle = store.save(model, "precos", input_example=frame.head(2))
    data = raw_metadata(bundle)
    assert data["input_example"] == {"preco": [10.0, 99.9], "quantidade": [1, 3]}
    assert data["inputs"] == [
        {"name": "preco", "datatype": "FP64", "shape": [-1]},
        {"name": "quantidade", "datatype": "INT64", "shape": [-1]},
    ]
    assert data["outputs"] == [{"name": "predict", "datatype": "INT64", "shape": [-1]}]


def test_a_dataframe_example_with_a_text_column_can_be_saved(store):
    frame = pd.DataFrame({"titulo": TITLES, "preco": [1.0, 2.0, 0.5, 6.0] * 2})
    model = make_pipeline(
        make_column_transformer((TfidfVectorizer(), "titulo"), remainder="passthrough"),
        LogisticRegression(),
    ).fit(frame, CATEGORIES)
    bundle = store.save(model, "categorias", input_example=frame.head(2))
    assert bundle.metadata.inputs[0] == Tensor(name="titulo", datatype="BYTES", shape=[-1])
    assert bundle.metadata.input_example == {
        "titulo": TITLES[:2],
        "preco": [1.0, 2.0],
    }


def _git(*args: str, cwd: Path) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True)
    return done.stdout.strip()


def test_git_commit_is_recorded_in_a_repository(home, store, logreg, tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    repo.mkdir()
    _git("init", "-q", cwd=repo)
    (repo / "train.py").write_text("print('treino')\n")
    _git("add", "train.py", cwd=repo)
    _git("-c", "user.email=a@b", "-c", "user.name=n", "commit", "-q", "-m", "treino", cwd=repo)
    head = _git("rev-parse", "HEAD", cwd=repo)
    monkeypatch.chdir(repo)
    reference = cais.save_model(logreg, "precos")
    assert store.get(reference).metadata.git_commit == head
    assert len(head) == 40


def test_git_commit_is_none_outside_a_repository(store, logreg, tmp_path, monkeypatch):
    outside = tmp_path / "outside"
    outside.mkdir()
    monkeypatch.chdir(outside)
    assert subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True).returncode != 0
    reference = cais.save_model(logreg, "precos")
    assert store.get(reference).metadata.git_commit is None
    assert raw_metadata(store.get(reference))["git_commit"] is None


# --- loading -------------------------------------------------------------------------------


def test_load_predicts_like_the_original(home, logreg, text_pipeline):
    cais.save_model(logreg, "precos")
    cais.save_model(text_pipeline, "categorias", input_example=["jogo de corrida"])
    loaded = cais.load_model("precos")
    assert type(loaded) is LogisticRegression
    np.testing.assert_array_equal(loaded.predict(X), logreg.predict(X))
    np.testing.assert_array_equal(loaded.predict_proba(X), logreg.predict_proba(X))
    titles = ["livro de receitas", "boneca de pano", "batom vermelho", "jogo de corrida"]
    loaded_text = cais.load_model("categorias:1", home=home)
    assert list(loaded_text.predict(titles)) == list(text_pipeline.predict(titles))
    assert list(loaded_text.predict(titles)) == ["livro", "brinquedo", "maquiagem", "game"]


def test_load_by_version_alias_and_latest(store, logreg, other_logreg):
    store.save(logreg, "precos")
    store.save(other_logreg, "precos")
    store.tag("precos:1", "production")
    for reference, model in [
        ("precos:1", logreg),
        ("precos:production", logreg),
        ("precos:2", other_logreg),
        ("precos:latest", other_logreg),
        ("precos", other_logreg),
    ]:
        np.testing.assert_array_equal(store.load(reference).predict(X), model.predict(X))


def test_an_unchanged_bundle_loads_without_warnings(store, logreg):
    store.save(logreg, "precos")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        store.load("precos")
    assert [w.message for w in caught] == []


def _flip_a_byte(file: Path) -> None:
    data = bytearray(file.read_bytes())
    data[len(data) // 2] ^= 0x01
    file.write_bytes(bytes(data))


def test_a_tampered_artifact_is_refused(store, logreg):
    bundle = store.save(logreg, "precos")
    _flip_a_byte(bundle.artifact)
    with pytest.raises(
        BundleError, match=r"`model.joblib` of the bundle `precos:1` does not match"
    ) as caught:
        store.load("precos:1")
    assert "changed or truncated" in caught.value.message
    assert caught.value.hint


def test_a_truncated_artifact_is_refused(store, logreg):
    bundle = store.save(logreg, "precos")
    data = bundle.artifact.read_bytes()
    bundle.artifact.write_bytes(data[: len(data) // 2])
    with pytest.raises(BundleError, match="does not match its recorded sha256"):
        store.load("precos")
    with pytest.raises(BundleError, match="does not match its recorded sha256"):
        store.get("precos").verify()


def test_a_missing_artifact_is_refused(store, logreg):
    bundle = store.save(logreg, "precos")
    bundle.artifact.unlink()
    with pytest.raises(
        BundleError, match=r"The bundle `precos:1` is missing `model.joblib`"
    ) as caught:
        store.load("precos:1")
    assert "cais models rm precos:1" in caught.value.hint


def test_a_tampered_artifact_is_refused_before_it_is_unpickled(store, logreg, tmp_path):
    bundle = store.save(logreg, "precos")
    marker = tmp_path / "unpickled"
    bundle.artifact.write_bytes(pickle.dumps(CreatesMarker(marker)))
    with pytest.raises(BundleError, match="does not match its recorded sha256"):
        store.load("precos")
    assert not marker.exists()
    # The payload works: had the store unpickled the file, the marker would exist.
    pickle.loads(bundle.artifact.read_bytes())
    assert marker.is_dir()


def _truncate(file: Path) -> None:
    file.write_bytes(file.read_bytes()[:-1])


def _load_by_reference(store: ModelStore, bundle: Bundle) -> None:
    from cais.server.models import ModelSet

    ModelSet.load([bundle.reference], home=store.root.parent)


def _load_the_folder(store: ModelStore, bundle: Bundle) -> None:
    """As the server inside an image does: `python -m cais.server /model`."""
    from cais.server.models import ModelSet

    ModelSet.load([str(bundle.path)])


def _build(store: ModelStore, bundle: Bundle) -> None:
    from cais.build import BuildOptions, build_bundle
    from cais.builders.pip_settings import PipSettings
    from tests.support import RecordingProgress

    def connect():
        raise AssertionError("the engine was contacted")

    progress = RecordingProgress()
    try:
        build_bundle(connect, bundle, BuildOptions(), progress, PipSettings())
    finally:
        assert progress.steps == [] and progress.lines == []


@pytest.mark.parametrize("damage", [_flip_a_byte, _truncate], ids=["tampered", "truncated"])
@pytest.mark.parametrize(
    "use",
    [
        lambda store, bundle: cais.load_model(bundle.reference, home=store.root.parent),
        _load_by_reference,
        _load_the_folder,
        _build,
    ],
    ids=["load_model", "cais serve", "the image's server", "cais build"],
)
def test_every_path_checks_the_hashes_before_unpickling(store, logreg, tmp_path, damage, use):
    bundle = store.save(logreg, "precos")
    marker = tmp_path / "unpickled"
    payload = pickle.dumps(CreatesMarker(marker))
    bundle.artifact.write_bytes(payload)  # a different file under the recorded hash ...
    edit_metadata(bundle, lambda data: data["files"].update({"model.joblib": "0" * 64}))
    with pytest.raises(BundleError, match="does not match its recorded sha256"):
        use(store, store.get("precos:1"))
    assert not marker.exists()
    bundle = store.save(logreg, "precos", overwrite=True, version="1")
    damage(bundle.artifact)  # ... and the saved file, damaged
    with pytest.raises(BundleError, match="does not match its recorded sha256"):
        use(store, bundle)


def test_damaged_metadata_is_one_sentence_on_every_path(store, logreg):
    bundle = store.save(logreg, "precos")
    (bundle.path / METADATA_FILE).write_text('{"name": "precos"}', encoding="utf-8")
    for use in (_load_by_reference, _load_the_folder):
        with pytest.raises(BundleError, match=r"is damaged: Field required at `version`"):
            use(store, bundle)


def test_a_package_version_skew_warns_and_names_the_package(store, logreg):
    bundle = store.save(logreg, "precos")

    def skew(data):
        data["packages"]["scikit-learn"] = "0.0.1"
        data["packages"]["pacote-que-nao-existe"] = "1.0"

    edit_metadata(bundle, skew)
    running = importlib.metadata.version("scikit-learn")
    with pytest.warns(RuntimeWarning, match=r"`precos:1` was saved with") as caught:
        model = store.load("precos")
    message = str(caught[0].message)
    assert f"scikit-learn 0.0.1 (running {running})" in message
    assert "pacote-que-nao-existe 1.0 (running not installed)" in message
    assert "numpy" not in message  # unchanged packages are not named
    np.testing.assert_array_equal(model.predict(X), logreg.predict(X))


def test_unknown_names_versions_and_aliases_are_refused_with_a_hint(store, logreg):
    with pytest.raises(BundleError, match=r"No model is named `nada`") as caught:
        store.load("nada")
    assert "cais models list" in caught.value.hint
    store.save(logreg, "precos")
    store.save(logreg, "precos", "1.1")
    for missing in ("7", "production"):
        with pytest.raises(
            BundleError, match=rf"`precos` has no version or alias `{missing}`"
        ) as caught:
            store.get(f"precos:{missing}")
        assert caught.value.hint == "versions: 1, 1.1"


def test_corrupt_metadata_is_a_bundle_error(store, logreg):
    bundle = store.save(logreg, "precos")
    (bundle.path / METADATA_FILE).write_text("{not json", encoding="utf-8")
    with pytest.raises(BundleError, match="metadata of `precos:1` is damaged: Invalid JSON"):
        store.load("precos")


# --- aliases and removal -------------------------------------------------------------------


def test_tag_and_resolve_an_alias(store, logreg):
    store.save(logreg, "precos")
    store.save(logreg, "precos")
    assert store.tag("precos:1", "production") == "precos:1"
    assert store.resolve("precos:production") == "precos:1"
    assert store.aliases("precos") == {"production": "1"}
    assert store.tag("precos", "staging") == "precos:2"  # no version: the latest
    assert store.tag("precos:2", "production") == "precos:2"  # moving an alias
    assert store.aliases("precos") == {"production": "2", "staging": "2"}
    assert leftovers(store.root) == []


def test_latest_is_the_newest_version_in_natural_order(store, logreg):
    store.save(logreg, "precos", "9")
    store.save(logreg, "precos", "10")
    store.save(logreg, "precos", "2")
    assert store.versions("precos") == ["2", "9", "10"]
    assert store.resolve("precos") == "precos:10"
    assert store.resolve("precos:latest") == "precos:10"
    assert store.save(logreg, "precos").reference == "precos:11"
    assert store.resolve("precos:latest") == "precos:11"


def test_natural_order_of_dotted_versions(store, logreg):
    for version in ("1.10", "1.2", "1.9"):
        store.save(logreg, "precos", version)
    assert store.versions("precos") == ["1.2", "1.9", "1.10"]
    assert store.resolve("precos") == "precos:1.10"


def test_tag_refuses_latest_versions_and_invalid_aliases(store, logreg):
    store.save(logreg, "precos")
    store.save(logreg, "precos")
    for alias in ("latest", "1", "2", "em produção", "../x"):
        with pytest.raises(BundleError, match=r"cannot be an alias"):
            store.tag("precos:1", alias)
    assert store.aliases("precos") == {}
    with pytest.raises(BundleError, match="No model is named `nada`"):
        store.tag("nada:1", "production")
    with pytest.raises(BundleError, match="has no version or alias `3`"):
        store.tag("precos:3", "production")


def test_remove_a_version_and_its_aliases(store, logreg, other_logreg):
    store.save(logreg, "precos")
    store.save(other_logreg, "precos")
    store.tag("precos:1", "production")
    store.tag("precos:2", "staging")
    assert store.remove("precos:1") == "precos:1"
    assert store.versions("precos") == ["2"]
    assert store.aliases("precos") == {"staging": "2"}
    assert not (store.root / "precos" / "1").exists()
    with pytest.raises(BundleError, match="no version or alias `production`"):
        store.resolve("precos:production")
    np.testing.assert_array_equal(store.load("precos").predict(X), other_logreg.predict(X))
    assert leftovers(store.root) == []


def test_remove_through_an_alias(store, logreg):
    store.save(logreg, "precos")
    store.save(logreg, "precos")
    store.tag("precos:1", "production")
    assert store.remove("precos:production") == "precos:1"
    assert store.versions("precos") == ["2"]
    assert store.aliases("precos") == {}


def test_removing_the_last_version_removes_the_model(store, logreg):
    store.save(logreg, "precos")
    store.save(logreg, "outro")
    store.tag("precos:1", "production")
    store.remove("precos:1")
    assert not (store.root / "precos").exists()
    assert store.names() == ["outro"]
    with pytest.raises(BundleError, match="No model is named `precos`"):
        store.resolve("precos")
    assert store.save(logreg, "precos").reference == "precos:1"
    assert store.aliases("precos") == {}


def test_remove_needs_a_version(store, logreg):
    store.save(logreg, "precos")
    for reference in ("precos", "precos:latest"):
        with pytest.raises(BundleError, match="Name the version to remove") as caught:
            store.remove(reference)
        assert "cais models rm precos:1" in caught.value.hint
    assert store.versions("precos") == ["1"]
    with pytest.raises(BundleError, match="has no version or alias `9`"):
        store.remove("precos:9")
    with pytest.raises(BundleError, match="No model is named `nada`"):
        store.remove("nada:1")


# --- cais.Predictor ------------------------------------------------------------------------

PREDICTOR_MODULE = "cais_teste_categorias"
PREDICTOR_SOURCE = textwrap.dedent(
    '''
    """A keyword Predictor: the source cais copies into the bundle."""

    import cais


    class Categorias(cais.Predictor):
        def __init__(self, keywords):
            self.keywords = keywords
            self.loaded = False

        def load(self):
            self.loaded = True

        def predict(self, batch):
            return [
                next((c for word, c in self.keywords.items() if word in text), "outro")
                for text in batch
            ]
    '''
)


@pytest.fixture
def predictor_module(tmp_path, monkeypatch):
    folder = tmp_path / "notebook"
    folder.mkdir()
    source = folder / f"{PREDICTOR_MODULE}.py"
    source.write_text(PREDICTOR_SOURCE, encoding="utf-8")
    monkeypatch.syspath_prepend(str(folder))
    module = importlib.import_module(PREDICTOR_MODULE)
    yield module, source
    sys.modules.pop(PREDICTOR_MODULE, None)


def test_a_predictor_travels_with_its_source(home, store, predictor_module):
    module, source = predictor_module
    predictor = module.Categorias(
        {"livro": "livro", "boneca": "brinquedo", "batom": "maquiagem", "jogo": "game"}
    )
    example = ["livro de receitas", "batom vermelho"]
    reference = cais.save_model(predictor, "categorias", input_example=example)
    assert reference == "categorias:1"
    bundle = store.get(reference)
    copied = bundle.path / source.name
    assert copied.read_bytes() == source.read_bytes()
    assert set(bundle.metadata.files) == {"model.joblib", source.name}
    assert bundle.metadata.files[source.name] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert bundle.metadata.model_class == f"{PREDICTOR_MODULE}.Categorias"
    assert bundle.metadata.methods == ["predict"]
    assert bundle.metadata.outputs == [Tensor(name="predict", datatype="BYTES", shape=[-1])]

    # A new process: the module is neither imported nor importable from the notebook.
    del sys.modules[PREDICTOR_MODULE]
    sys.path.remove(str(source.parent))
    source.unlink()
    importlib.invalidate_caches()
    with pytest.raises(ImportError):
        importlib.import_module(PREDICTOR_MODULE)

    loaded = cais.load_model("categorias")
    assert type(loaded).__name__ == "Categorias"
    assert isinstance(loaded, cais.Predictor)
    assert loaded.loaded is True  # load() ran after unpickling
    assert Path(sys.modules[PREDICTOR_MODULE].__file__).parent == bundle.path
    assert str(bundle.path) not in sys.path
    assert loaded.predict(["jogo de corrida", "boneca de pano", "caneca"]) == [
        "game",
        "brinquedo",
        "outro",
    ]


def test_a_tampered_predictor_source_is_refused(store, predictor_module):
    module, source = predictor_module
    bundle = store.save(module.Categorias({"livro": "livro"}), "categorias")
    with (bundle.path / source.name).open("a", encoding="utf-8") as stream:
        stream.write("\nimport os  # added after the save\n")
    with pytest.raises(
        BundleError, match=rf"`{source.name}` of the bundle `categorias:1` does not match"
    ):
        cais.load_model("categorias", home=store.root.parent)
