"""scan_pickle: what an old pickle or joblib file needs, read without importing what it names.

The "old" models here are made of classes whose module paths the installed scikit-learn does
not have (`sklearn.linear_model.logistic` is `sklearn.linear_model._logistic` since 0.22): the
paths are importable only while the file is written, so a real load of it fails afterwards.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import pickle
import subprocess
import sys
import textwrap
import types
import warnings
import zipfile
from pathlib import Path

import joblib
import numpy as np
import pytest
import sklearn
from joblib.numpy_pickle import NumpyArrayWrapper
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from cais.bundle.pickle_scan import PickleFacts, scan_pickle
from cais.errors import BundleError

OLD = "0.22.2"
OLD_CLASSES = {
    "sklearn.pipeline.Pipeline",
    "sklearn.linear_model.logistic.LogisticRegression",
    "sklearn.feature_extraction.text.TfidfVectorizer",
}


class _OldEstimator:
    """An estimator as scikit-learn 0.22 pickled it: its state records the version."""

    def __init__(self, **params: object) -> None:
        self.__dict__.update(params)

    def __getstate__(self) -> dict:
        return {"_sklearn_version": OLD, **self.__dict__}  # a param may set another version


class _SlotsEstimator(_OldEstimator):
    def __getstate__(self) -> tuple:
        return {"_sklearn_version": "0.23.1"}, {"slot": 1}  # what objects with __slots__ give


def _old_class(module: str, qualname: str, base: type = _OldEstimator) -> type:
    return type(qualname, (base,), {"__module__": module, "__qualname__": qualname})


OldPipeline = _old_class("sklearn.pipeline", "Pipeline")
OldLogistic = _old_class("sklearn.linear_model.logistic", "LogisticRegression")
OldTfidf = _old_class("sklearn.feature_extraction.text", "TfidfVectorizer")
SlotsEstimator = _old_class("sklearn.svm.classes", "SVC", _SlotsEstimator)


@contextlib.contextmanager
def _importable(*classes: type):
    """The classes' fake module paths exist only inside this block."""
    saved = {cls.__module__: sys.modules.get(cls.__module__) for cls in classes}
    for cls in classes:
        module = types.ModuleType(cls.__module__)
        setattr(module, cls.__qualname__, cls)
        sys.modules[cls.__module__] = module
    try:
        yield
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def _old_model(large: bool = True) -> object:
    vectorizer = OldTfidf(
        vocabulary_={"livro": 0, "boneca": 1, "batom": 2},
        idf_=np.array([1.0, 1.2, 1.5]),
        stop_words_={"de", "do"},
        dtype=np.float64,
    )
    classifier = OldLogistic(
        C=1.0,
        coef_=np.random.default_rng(0).random((2, 80_000 if large else 3)),  # 1.28 MB
        intercept_=np.zeros(2),
        classes_=np.array(["livro", None, 3], dtype=object),
    )
    return OldPipeline(steps=[("tfidf", vectorizer), ("clf", classifier)], memory=None)


def _dump(path: Path, obj: object, protocol: int | None = None, compress=None) -> Path:
    """Write `obj` as the old scikit-learn did: with pickle, or joblib when `compress` is set."""
    with _importable(OldPipeline, OldLogistic, OldTfidf, SlotsEstimator):
        if compress is None:
            path.write_bytes(pickle.dumps(obj, protocol=protocol))
        else:
            joblib.dump(obj, path, compress=compress)
    return path


def _assert_real_load_fails(path: Path, loader) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the real TfidfVectorizer warns about 0.22.2 state
        with pytest.raises(ModuleNotFoundError, match=r"sklearn\.linear_model\.logistic"):
            loader(path)


def _pickle_load(path: Path) -> object:
    with path.open("rb") as file:
        return pickle.load(file)


def _assert_old_model(facts: PickleFacts) -> None:
    assert facts.sklearn_version == OLD
    assert facts.top_class == "sklearn.pipeline.Pipeline"
    assert facts.classes >= OLD_CLASSES
    assert "sklearn.linear_model.logistic" not in sys.modules
    assert not any(name.startswith("sklearn.") for name in facts.modules)


# --- old models ------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", [0, 1, 2, 4, 5])
def test_a_plain_pickle_of_an_old_model(tmp_path, protocol):
    path = _dump(tmp_path / "model.pkl", _old_model(), protocol=protocol)
    _assert_real_load_fails(path, _pickle_load)

    facts = scan_pickle(path)

    _assert_old_model(facts)
    assert facts.format == "pickle"
    assert facts.modules == {"sklearn", "numpy"}
    assert facts.pickle_protocol == (protocol if protocol >= 2 else 0)  # 0 and 1 do not say


@pytest.mark.parametrize(
    ("compress", "format"),
    [
        (0, "joblib"),
        (3, "joblib (zlib)"),
        (("gzip", 3), "joblib (gzip)"),
        (("lzma", 3), "joblib (lzma)"),
        (("xz", 3), "joblib (xz)"),
        (("bz2", 3), "joblib (bz2)"),
    ],
)
def test_a_joblib_file_of_an_old_model(tmp_path, compress, format):
    path = _dump(tmp_path / "model.joblib", _old_model(), compress=compress)
    _assert_real_load_fails(path, joblib.load)

    facts = scan_pickle(path)

    _assert_old_model(facts)
    assert facts.format == format
    assert facts.modules == {"sklearn", "numpy", "joblib"}
    assert "joblib.numpy_pickle.NumpyArrayWrapper" in facts.classes
    assert facts.pickle_protocol == pickle.DEFAULT_PROTOCOL


def test_a_file_of_the_joblib_vendored_in_old_scikit_learn(tmp_path):
    # `from sklearn.externals import joblib` wrote its wrapper under scikit-learn's name.
    path = tmp_path / "model.joblib"
    with _importable(OldPipeline, OldLogistic, OldTfidf):
        joblib.dump(_old_model(), path, protocol=2)  # protocol 2: globals are text lines
    wrapper = b"joblib.numpy_pickle\nNumpyArrayWrapper\n"
    assert wrapper in path.read_bytes()
    path.write_bytes(path.read_bytes().replace(wrapper, b"sklearn.externals." + wrapper))

    facts = scan_pickle(path)

    _assert_old_model(facts)
    assert "sklearn.externals.joblib.numpy_pickle.NumpyArrayWrapper" in facts.classes
    assert facts.modules == {"sklearn", "numpy"}
    assert facts.format == "joblib"


def test_a_zfile_of_joblib_before_0_10(tmp_path):
    from joblib.numpy_pickle_compat import write_zfile

    stream = _dump(tmp_path / "stream.pkl", _old_model(large=False), protocol=2).read_bytes()
    path = tmp_path / "model.joblib"
    with path.open("wb") as file:
        write_zfile(file, stream)

    facts = scan_pickle(path)

    _assert_old_model(facts)
    assert facts.format == "joblib (zfile)"


def test_the_arrays_between_the_opcodes_are_read_whole(tmp_path):
    # The vectorizer comes after the large and the object array: a misread would lose it.
    classifier = _old_model().steps[1][1]
    after = [OldTfidf(name=f"after the arrays {n}", _sklearn_version="0.21.3") for n in (1, 2)]
    path = _dump(tmp_path / "model.joblib", [classifier, *after], compress=0)

    facts = scan_pickle(path)

    assert facts.top_class == ""
    assert facts.classes >= OLD_CLASSES - {"sklearn.pipeline.Pipeline"}
    assert facts.sklearn_version == "0.21.3"  # twice against once


# --- the version recorded ----------------------------------------------------------------------


def test_the_version_of_the_top_object_wins(tmp_path):
    steps = [
        ("a", OldTfidf(_sklearn_version="0.24.1")),
        ("b", OldLogistic(_sklearn_version="0.24.1")),
    ]
    path = _dump(tmp_path / "model.pkl", OldPipeline(steps=steps), protocol=4)

    assert scan_pickle(path).sklearn_version == OLD


def test_else_the_most_common_version(tmp_path):
    models = [OldLogistic(_sklearn_version=v) for v in ("0.22.2", "0.24.1", "0.24.1")]
    path = _dump(tmp_path / "models.pkl", {"models": models}, protocol=4)

    facts = scan_pickle(path)

    assert facts.sklearn_version == "0.24.1"
    assert facts.top_class == ""


def test_a_state_with_slots_and_cycles(tmp_path):
    estimator = OldLogistic(_sklearn_version="0.20.0")
    estimator.itself = estimator
    models: list = [SlotsEstimator(), estimator]
    models.append(models)
    path = _dump(tmp_path / "models.pkl", (models,), protocol=2)

    facts = scan_pickle(path)

    assert facts.sklearn_version in {"0.23.1", "0.20.0"}
    assert "sklearn.svm.classes.SVC" in facts.classes


# --- models of today, and no model --------------------------------------------------------------


@pytest.fixture(scope="module")
def fitted():
    features = np.random.default_rng(1).random((40, 3))
    labels = (features[:, 0] > 0.5).astype(int)
    pipeline = make_pipeline(StandardScaler(), LogisticRegression()).fit(features, labels)
    boosting = GradientBoostingClassifier(n_estimators=3).fit(features, labels)
    return pipeline, boosting


@pytest.mark.parametrize("how", ["pickle", "joblib", "joblib-zlib"])
def test_a_model_of_the_installed_scikit_learn(tmp_path, fitted, how):
    path = tmp_path / "model.bin"
    if how == "pickle":
        path.write_bytes(pickle.dumps(fitted[0], protocol=5))
    else:
        joblib.dump(fitted[0], path, compress=3 if how == "joblib-zlib" else 0)

    facts = scan_pickle(path)

    assert facts.sklearn_version == sklearn.__version__
    assert facts.top_class == "sklearn.pipeline.Pipeline"
    assert {"sklearn", "numpy"} <= facts.modules
    assert "sklearn.linear_model._logistic.LogisticRegression" in facts.classes


def test_estimators_inside_an_object_array(tmp_path, fitted):
    # GradientBoosting keeps its trees in an object array: joblib writes it as a nested pickle.
    path = tmp_path / "boosting.joblib"
    joblib.dump(fitted[1], path)

    facts = scan_pickle(path)

    assert facts.top_class == "sklearn.ensemble._gb.GradientBoostingClassifier"
    assert "sklearn.tree._classes.DecisionTreeRegressor" in facts.classes
    assert facts.sklearn_version == sklearn.__version__


def test_a_pickle_without_scikit_learn(tmp_path):
    path = tmp_path / "data.pkl"
    path.write_bytes(pickle.dumps({"rows": np.arange(5), "names": ["a", "b"]}, protocol=4))

    facts = scan_pickle(path)

    assert facts.sklearn_version is None
    assert facts.modules == {"numpy"}
    assert facts.top_class == ""
    assert facts.format == "pickle"


def test_a_pickle_of_plain_python(tmp_path):
    path = tmp_path / "plain.pkl"
    path.write_bytes(pickle.dumps({"threshold": 0.5, "labels": ("a", "b")}, protocol=2))

    facts = scan_pickle(path)

    assert facts.modules == frozenset()
    assert facts.classes == frozenset()
    assert facts.sklearn_version is None
    assert facts.pickle_protocol == 2


# --- nothing named runs ---------------------------------------------------------------------


class _Calls:
    def __init__(self, function, *args) -> None:
        self.call = (function, args)

    def __reduce__(self):
        return self.call


@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_nothing_the_file_names_is_called(tmp_path, protocol):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pkl"
    calls = [
        _Calls(os.system, f"touch {marker}"),
        _Calls(eval, f"open({str(marker)!r}, 'w')"),
        _Calls(importlib.import_module, "tabnanny"),
    ]
    path.write_bytes(pickle.dumps(calls, protocol=protocol))
    imported = "tabnanny" in sys.modules

    facts = scan_pickle(path)

    assert not marker.exists()
    assert ("tabnanny" in sys.modules) == imported
    assert {f"{os.system.__module__}.system", "builtins.eval"} <= facts.classes
    assert facts.modules == frozenset()  # all of it is the standard library


def test_scanning_imports_nothing_it_names(tmp_path):
    """In a fresh interpreter: scikit-learn stays unimported, fake paths stay absent."""
    plain = _dump(tmp_path / "model.pkl", _old_model(large=False), protocol=4)
    packed = _dump(tmp_path / "model.joblib", _old_model(large=False), compress=3)
    script = f"""
        import json, sys
        from cais.bundle.pickle_scan import _scan_here as scan_pickle  # in this process
        facts = [scan_pickle(p) for p in ({str(plain)!r}, {str(packed)!r})]
        print(json.dumps({{
            "versions": [f.sklearn_version for f in facts],
            "imported": sorted(m for m in sys.modules if m.split(".")[0] in ("sklearn", "scipy")),
        }}))
    """
    run = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == {"versions": [OLD, OLD], "imported": []}


def test_without_numpy_and_joblib(tmp_path):
    plain = _dump(tmp_path / "model.pkl", _old_model(large=False), protocol=2)
    packed = _dump(tmp_path / "model.joblib", _old_model(large=False), compress=3)
    arrays = _dump(tmp_path / "arrays.joblib", _old_model(large=False), compress=0)
    script = f"""
        import json, sys
        sys.modules["numpy"] = sys.modules["joblib"] = None  # neither can be imported
        from cais.bundle.pickle_scan import _scan_here as scan_pickle  # in this process
        from cais.errors import BundleError
        facts = scan_pickle({str(plain)!r})
        hints = []
        for path in ({str(packed)!r}, {str(arrays)!r}):
            try:
                scan_pickle(path)
            except BundleError as error:
                hints.append(error.hint)
        print(json.dumps([facts.sklearn_version, facts.top_class, sorted(facts.modules), hints]))
    """
    run = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stderr
    version, top, modules, hints = json.loads(run.stdout)
    assert (version, top, modules) == (OLD, "sklearn.pipeline.Pipeline", ["numpy", "sklearn"])
    assert hints == ["pip install joblib numpy"] * 2


# --- files that are not (whole) pickles --------------------------------------------------------


def _error(path: Path) -> BundleError:
    with pytest.raises(BundleError) as caught:
        scan_pickle(path)
    assert caught.value.hint
    return caught.value


def test_a_missing_file(tmp_path):
    assert "does not exist" in str(_error(tmp_path / "nope.pkl"))


def test_a_folder(tmp_path):
    assert "is a folder" in str(_error(tmp_path))


def test_an_empty_file(tmp_path):
    (tmp_path / "empty.pkl").touch()
    assert "is empty" in str(_error(tmp_path / "empty.pkl"))


@pytest.mark.parametrize(
    "content",
    [b"city,population\nLisboa,545000\nPorto,232000\n", b"hello world\n", b'{"a": 1}\n'],
)
def test_a_text_file(tmp_path, content):
    path = tmp_path / "model.pkl"
    path.write_bytes(content)
    assert "is not a pickle or joblib file" in str(_error(path))


def test_a_zip_file(tmp_path):
    path = tmp_path / "model.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps([1, 2]))
    error = _error(path)
    assert "is not a pickle or joblib file" in str(error)
    assert "ZIP" in error.hint


@pytest.mark.parametrize("compress", [None, 0, 3, ("gzip", 3), ("lzma", 3)])
def test_a_truncated_file(tmp_path, compress):
    path = _dump(tmp_path / "model.bin", _old_model(), protocol=4, compress=compress)
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    assert "is incomplete" in str(_error(path))


def test_a_compression_that_is_not_installed(tmp_path):
    if importlib.util.find_spec("lz4") is not None:
        pytest.skip("lz4 is installed here")
    path = tmp_path / "model.joblib.lz4"
    path.write_bytes(b"\x04\x22\x4d\x18" + b"\x00" * 64)
    error = _error(path)
    assert "compressed with lz4" in str(error)
    assert error.hint == "pip install lz4"


# --- crafted files ------------------------------------------------------------------------------


class _LyingDtype:  # a dtype whose state says "no objects" while its one field is an object
    def __reduce__(self):
        state = (3, "|", None, ("a",), {"a": (np.dtype("O"), 0)}, 8, 1, 0)
        return (np.dtype, ("V8", False, True), state)


class _ForgedPointer:  # raw bytes read as that dtype: an object pointer of the file's choosing
    def __reduce__(self):
        from numpy._core import numeric

        return (
            numeric._frombuffer,
            ((0x4141414141).to_bytes(8, "little"), _LyingDtype(), (1,), "C"),
        )


class _Printed:
    def __reduce__(self):
        return (str, (_ForgedPointer(),))


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(pickle.dumps(_Printed(), protocol=4), id="forged object pointer"),
        pytest.param(  # BUILD on a class: would set NumpyArrayWrapper.read for the process
            b"\x80\x02cjoblib.numpy_pickle\nNumpyArrayWrapper\n"
            b"N}X\x04\x00\x00\x00readX\x01\x00\x00\x00xs\x86b.",
            id="state set on a class",
        ),
        pytest.param(  # bytes(512 GiB): fails within the reading process's memory limit
            b"\x80\x02cbuiltins\nbytes\n\x8a\x05\x00\x00\x00\x00\x80\x85R.", id="huge allocation"
        ),
    ],
)
def test_crafted_files_are_refused_and_this_process_is_untouched(tmp_path, content):
    path = tmp_path / "crafted.pkl"
    path.write_bytes(content)
    read_before = NumpyArrayWrapper.read
    with pytest.raises(BundleError) as caught:
        scan_pickle(path)
    assert str(path) in caught.value.message
    assert NumpyArrayWrapper.read is read_before


def test_globals_keep_the_module_apart_from_a_dotted_name(tmp_path):
    file = tmp_path / "dotted.pkl"
    file.write_bytes(b"csklearn.base\nos.system\n(S'true'\ntR.")
    facts = scan_pickle(file)
    assert facts.globals == {("sklearn.base", "os.system")}
    assert facts.classes == {"sklearn.base.os.system"}


def test_the_allowlist_covers_real_pickles_of_the_installed_stack(tmp_path, fitted):
    """What the import lets through without --trust: today's estimators, in every format."""
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.preprocessing import OneHotEncoder

    from cais.bundle.allowlist import outside

    frame = pd.DataFrame({"n": np.arange(8.0), "c": ["a", "b"] * 4, "t": ["livro azul"] * 8})
    columns = ColumnTransformer(
        [
            ("n", StandardScaler(), ["n"]),
            ("c", OneHotEncoder(), ["c"]),
            ("t", TfidfVectorizer(), "t"),
        ]
    )
    forest = make_pipeline(columns, RandomForestClassifier(n_estimators=2))
    models = (*fitted, forest.fit(frame, [0, 1] * 4), frame)
    for how, protocol in (("pickle", 0), ("pickle", 2), ("pickle", 5), ("joblib", 0), ("zlib", 3)):
        file = tmp_path / f"model.{how}{protocol}"
        if how == "pickle":
            file.write_bytes(pickle.dumps(models, protocol=protocol))
        else:
            joblib.dump(models, file, compress=protocol)
        assert outside(scan_pickle(file).globals) == [], file.name
