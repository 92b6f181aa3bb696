"""What cais learns from a model object: the modules and packages its pickle needs, and its
input/output signature."""

from __future__ import annotations

import importlib.metadata
import sys
from collections import OrderedDict
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from cais.bundle.introspect import (
    _ModuleRecorder,
    modules_of_object,
    packages_of_modules,
    signature_of,
)
from cais.bundle.metadata import Tensor

TITLES = ["livro de receitas", "boneca de pano", "batom vermelho", "jogo de corrida"]
CATEGORIES = ["livro", "brinquedo", "maquiagem", "game"]


class Plain:
    """A class of this test module: its top-level module is `tests`."""

    def __init__(self) -> None:
        self.rows = np.arange(3)


@pytest.fixture(scope="module")
def pipeline():
    return make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(TITLES, CATEGORIES)


def _version(distribution: str) -> str:
    return importlib.metadata.version(distribution)


# --- modules_of_object ---------------------------------------------------------------------


def test_modules_of_a_pipeline(pipeline):
    modules = modules_of_object(pipeline)
    assert {"sklearn", "numpy"} <= modules
    assert not modules & set(sys.stdlib_module_names)
    assert "builtins" not in modules
    assert all("." not in module for module in modules)  # top-level modules only


def test_stdlib_modules_are_dropped_though_the_pickle_meets_them(pipeline):
    recorder = _ModuleRecorder()
    recorder.dump(pipeline)
    met = {module.split(".", 1)[0] for module in recorder.modules if module}
    assert met & (set(sys.stdlib_module_names) | {"builtins"})  # abc, builtins …
    assert modules_of_object(pipeline) == met - set(sys.stdlib_module_names) - {"builtins"}


def test_modules_of_plain_python_objects_are_none():
    value = {"a": [1, 2.0, "x", (None, True)], "b": {1, 2}, "c": OrderedDict(d=Fraction(1, 3))}
    assert modules_of_object(value) == set()


def test_modules_of_an_object_of_this_test_module():
    assert modules_of_object(Plain()) == {"tests", "numpy"}


def test_modules_of_a_main_class_keep_main(monkeypatch):
    class NotebookModel:
        pass

    NotebookModel.__module__ = "__main__"
    NotebookModel.__qualname__ = "NotebookModel"
    monkeypatch.setattr(sys.modules["__main__"], "NotebookModel", NotebookModel, raising=False)
    assert modules_of_object(NotebookModel()) == {"__main__"}
    assert modules_of_object([NotebookModel(), np.zeros(2)]) == {"__main__", "numpy"}


# --- packages_of_modules -------------------------------------------------------------------


def test_packages_of_sklearn_close_over_its_requirements():
    packages = packages_of_modules({"sklearn"})
    for distribution in ("scikit-learn", "numpy", "scipy", "joblib", "threadpoolctl"):
        assert packages[distribution] == _version(distribution), distribution
    assert "pandas" not in packages  # an optional extra of scikit-learn, not a requirement
    assert list(packages) == sorted(packages, key=str.lower)


def test_packages_of_the_modules_of_a_pipeline(pipeline):
    packages = packages_of_modules(modules_of_object(pipeline))
    assert packages["scikit-learn"] == _version("scikit-learn")
    assert packages["scipy"] == _version("scipy")
    assert packages["numpy"] == _version("numpy")


def test_packages_of_numpy_are_only_numpy():
    assert packages_of_modules(["numpy"]) == {"numpy": _version("numpy")}


def test_packages_of_stdlib_and_unknown_modules_are_none():
    assert packages_of_modules({"json", "tests", "modulo_que_nao_existe"}) == {}
    assert packages_of_modules([]) == {}


def test_packages_of_pandas_include_its_requirements():
    packages = packages_of_modules({"pandas"})
    assert packages["pandas"] == _version("pandas")
    assert packages["numpy"] == _version("numpy")
    assert packages["python-dateutil"] == _version("python-dateutil")


# --- signature_of --------------------------------------------------------------------------


def test_signature_of_a_list_of_strings(pipeline):
    example = ["livro de receitas", "jogo de corrida"]
    inputs, outputs = signature_of(example, pipeline.predict(example))
    assert inputs == [Tensor(name="input", datatype="BYTES", shape=[-1])]
    assert outputs == [Tensor(name="predict", datatype="BYTES", shape=[-1])]


def test_signature_of_a_2d_float_array():
    inputs, outputs = signature_of(np.array([[0.5, 1.0], [2.0, 3.5]]), np.array([0, 1]))
    assert inputs == [Tensor(name="input", datatype="FP64", shape=[-1, 2])]
    assert outputs == [Tensor(name="predict", datatype="INT64", shape=[-1])]


def test_signature_of_other_numeric_types():
    inputs, outputs = signature_of(
        np.zeros((2, 3, 4), dtype=np.float32), np.zeros((2, 2), dtype=np.uint8)
    )
    assert inputs == [Tensor(name="input", datatype="FP32", shape=[-1, 3, 4])]
    assert outputs == [Tensor(name="predict", datatype="UINT8", shape=[-1, 2])]
    inputs, _ = signature_of([[1, 2], [3, 4]], None)
    assert inputs == [Tensor(name="input", datatype="INT64", shape=[-1, 2])]


def test_signature_of_a_bool_array():
    inputs, outputs = signature_of(np.array([[True, False, True]]), np.array([True]))
    assert inputs == [Tensor(name="input", datatype="BOOL", shape=[-1, 3])]
    assert outputs == [Tensor(name="predict", datatype="BOOL", shape=[-1])]


def test_signature_of_a_dataframe_names_its_columns():
    frame = pd.DataFrame(
        {
            "preco": [10.0, 99.9],
            "quantidade": [1, 3],
            "promocao": [True, False],
            "titulo": pd.Series(["livro de receitas", "batom vermelho"], dtype=object),
        }
    )
    inputs, outputs = signature_of(frame, np.array([0.1, 0.9]))
    assert inputs == [
        Tensor(name="preco", datatype="FP64", shape=[-1]),
        Tensor(name="quantidade", datatype="INT64", shape=[-1]),
        Tensor(name="promocao", datatype="BOOL", shape=[-1]),
        Tensor(name="titulo", datatype="BYTES", shape=[-1]),
    ]
    assert outputs == [Tensor(name="predict", datatype="FP64", shape=[-1])]


def test_signature_of_a_dataframe_with_a_default_text_column():
    frame = pd.DataFrame({"titulo": ["livro de receitas", "batom vermelho"], "preco": [1.0, 2.0]})
    inputs, _ = signature_of(frame, None)
    assert inputs == [
        Tensor(name="titulo", datatype="BYTES", shape=[-1]),
        Tensor(name="preco", datatype="FP64", shape=[-1]),
    ]


def test_signature_without_predictions_has_no_outputs():
    inputs, outputs = signature_of(["boneca de pano"], None)
    assert inputs == [Tensor(name="input", datatype="BYTES", shape=[-1])]
    assert outputs == []


def test_signature_of_probabilities(pipeline):
    _, outputs = signature_of(TITLES, pipeline.predict_proba(TITLES))
    assert outputs == [Tensor(name="predict", datatype="FP64", shape=[-1, 4])]


def test_large_arrays_pickled_out_of_band_are_fine():
    """Protocol 5 hands big arrays to the writer as PickleBuffers, which have no len()."""
    import numpy as np

    assert "numpy" in modules_of_object({"weights": np.zeros((800, 800))})


def test_the_store_takes_a_string_folder(tmp_path):
    from sklearn.linear_model import LogisticRegression

    import cais

    model = LogisticRegression().fit([[0], [1]], [0, 1])
    assert cais.save_model(model, "tiny", home=str(tmp_path)) == "tiny:1"
    assert cais.load_model("tiny", home=str(tmp_path)).predict([[1]]).tolist() == [1]
