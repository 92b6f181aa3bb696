"""`cais models import`: reading an old pickle, choosing its stack and Python, keeping it as a
bundle — on pickles the tests make as old scikit-learn releases did, and a small package index
served here (uv resolves against it)."""

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
from cais.project import running_python
from tests.support import assert_one_error, text_model
from tests.unit.test_pickle_scan import OldLogistic, OldPipeline, _dump, _importable, _old_class
from tests.unit.test_pins import FakeIndex

CustomStep = _old_class("mycompany", "Cleaner")


@pytest.fixture(scope="module")
def served():
    with FakeIndex() as index:
        yield index


@pytest.fixture
def index(served, monkeypatch):
    monkeypatch.setenv("UV_HTTP_RETRIES", "0")
    return served


@pytest.fixture(autouse=True)
def site(monkeypatch) -> dict[str, set[str]]:
    """The base images this site has, without asking the engine or Docker Hub: the engine
    holds `site["engine"]` (python:3.9-slim and python:3.11-slim, as on the test machines),
    the base registry `site["registry"]`."""
    import cais.bases

    held = {"engine": {"3.9", "3.11"}, "registry": set()}
    monkeypatch.setattr(cais.bases, "_in_engine", lambda pythons: held["engine"] & set(pythons))
    monkeypatch.setattr(
        cais.bases, "_in_registry", lambda registry, pythons: held["registry"] & set(pythons)
    )
    monkeypatch.delenv("CAIS_BASE_REGISTRY", raising=False)
    monkeypatch.delenv("CAIS_PYTHONS", raising=False)
    return held


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
    assert "`scikit-learn==0.24.2`" in caught.value.message
    assert "Python 3.11" in caught.value.message


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
    assert "`mycompany.Cleaner`" in caught.value.message
    assert "--predictor" in caught.value.hint
    adoption = plan_adoption(file, pythons=["3.9"], own_globals={"mycompany.Cleaner"}, index=index)
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
        pickle_globals=["sklearn.pipeline:Pipeline"],
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
        pickle_globals=[],
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
            pickle_globals=[], predictor=predictor,
        )  # fmt: skip
    assert not (home / "models" / "x").exists()


# --- the command -------------------------------------------------------------------------


@pytest.fixture
def fake_pypi(monkeypatch, index):
    monkeypatch.setenv("PIP_INDEX_URL", index.url)
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
        (["{pickle}", "--python", "3.11"], "cannot be installed from wheels on Python 3.11"),
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

    monkeypatch.setenv("PIP_INDEX_URL", f"http://127.0.0.1:{free_port()}/simple")
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
        imported={}, pickle_globals=[], predictor=predictor,
    )  # fmt: skip
    with pytest.raises(BundleError) as caught:  # its classes are not in today's scikit-learn
        cais.load_model("wrapped", home=home)
    assert "cannot be loaded" in caught.value.message
    assert "ModuleNotFoundError" in caught.value.message


# --- pickles are code ----------------------------------------------------------------------


def _protocol_0(module: str, name: str, args: str = "(S'true'\ntR") -> bytes:
    """A pickle that calls `module.name` with `args` (pickle's own opcodes, as a crafted file
    would be written)."""
    return f"c{module}\n{name}\n{args}.".encode()


EVIL = {
    "os.system": (_protocol_0("posix", "system"), "`posix.system`"),
    "subprocess": (
        _protocol_0("subprocess", "check_call", "((S'true'\nltR"),
        "`subprocess.check_call`",
    ),
    "eval": (_protocol_0("builtins", "eval", "(S'1+1'\ntR"), "`builtins.eval`"),
    "exec": (_protocol_0("__builtin__", "exec", "(S'pass'\ntR"), "`builtins.exec`"),
    "getattr": (
        b"cbuiltins\ngetattr\n(cbuiltins\n__import__\n(S'os'\ntRS'system'\ntR.",
        "`builtins.__import__`, `builtins.getattr`",
    ),
    "importlib": (
        _protocol_0("importlib", "import_module", "(S'os'\ntR"),
        "`importlib.import_module`",
    ),
    "numpy.load": (_protocol_0("numpy", "load", "(S'/x.npy'\ntR"), "`numpy.load`"),
    "numpy.testing": (
        _protocol_0("numpy.testing._private.utils", "runstring", "(S'1'\n(dtR"),
        "`numpy.testing._private.utils.runstring`",
    ),
    "a dotted name": (_protocol_0("sklearn.base", "os.system"), "`sklearn.base.os.system`"),
    "pandas.read_pickle": (
        _protocol_0("pandas", "read_pickle", "(S'/x'\ntR"),
        "`pandas.read_pickle`",
    ),
    "joblib.load": (_protocol_0("joblib", "load", "(S'/x'\ntR"), "`joblib.load`"),
}


@pytest.mark.parametrize("case", sorted(EVIL))
def test_a_pickle_that_runs_code_outside_the_stack_is_refused_by_name(
    tmp_path, home, fake_pypi, case
):
    content, named = EVIL[case]
    file = tmp_path / "model.pkl"
    file.write_bytes(content)
    result = CliRunner().invoke(app, ["models", "import", str(file), "--name", "evil"])
    message = assert_one_error(result)
    assert f"error: `model.pkl` would run {named} when loaded" in message
    assert "--trust" in message
    assert not (home / "models" / "evil").exists()


def test_code_in_a_compressed_joblib_file_is_refused_too(tmp_path, home, fake_pypi):
    import os

    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    file = tmp_path / "model.joblib"
    joblib.dump([text_model(), Payload()], file, compress=3)
    message = assert_one_error(
        CliRunner().invoke(app, ["models", "import", str(file), "--name", "evil"])
    )
    assert "would run `posix.mkdir` when loaded" in message
    assert not marker.exists()


@pytest.fixture
def stack_here(monkeypatch):
    """Wheels for the running stack are not on the fake index: choosing the Python keeps the
    pins it is given (and records them)."""
    import cais.bundle.pins

    chosen = {}

    def choose_python(pins, candidates, **options):
        chosen.update(pins=dict(pins), **options)
        return candidates[-1], {name: version for name, version in pins.items() if version}

    monkeypatch.setattr(cais.bundle.pins, "choose_python", choose_python)
    return chosen


def _trusting_pickle(tmp_path) -> Path:
    """Today's text model with a `fractions.Fraction` in it: outside the stack, harmless."""
    from fractions import Fraction

    model = text_model()
    model.weight = Fraction(1, 3)
    file = tmp_path / "model.joblib"
    joblib.dump(model, file)
    return file


def test_trust_imports_says_what_was_trusted_and_records_it(tmp_path, home, fake_pypi, stack_here):
    import importlib.metadata

    file = _trusting_pickle(tmp_path)
    refused = CliRunner().invoke(app, ["models", "import", str(file), "--name", "frac"])
    assert "would run `fractions.Fraction`" in assert_one_error(refused)
    result = CliRunner().invoke(
        app,
        [
            "models",
            "import",
            str(file),
            "--name",
            "frac",
            "--trust",
            "--input-example",
            '["livro"]',
        ],
    )
    assert result.exit_code == 0, result.output
    assert "trusted, as asked: `fractions.Fraction`" in result.output
    shown = json.loads(CliRunner().invoke(app, ["models", "show", "frac:1"]).stdout)
    assert shown["trusted_globals"] == ["fractions.Fraction"]
    assert "fractions:Fraction" in shown["pickle_globals"]
    assert "sklearn.pipeline:Pipeline" in shown["pickle_globals"]
    # Made by the scikit-learn installed here: pinned to the stack installed here, no dates.
    assert shown["pinned_by"].startswith("cais: the stack installed here")
    for package in ("scikit-learn", "numpy", "scipy", "joblib"):
        assert shown["packages"][package] == importlib.metadata.version(package)
    assert stack_here["cutoff"] is None
    assert cais.load_model("frac", home=home).predict(["livro azul"]) == ["livro"]


def _edited(bundle, **fields) -> None:
    from cais.bundle.metadata import METADATA_FILE

    file = bundle.path / METADATA_FILE
    data = json.loads(file.read_text())
    data.update(fields)
    file.write_text(json.dumps(data))


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"trusted_globals": []}, "would run `fractions.Fraction`, which was not trusted"),
        ({"pickle_globals": None}, "does not record what its pickle runs"),
        ({"pickle_globals": ["posix:system"]}, "would run `posix.system`"),
    ],
)
def test_loading_and_building_keep_the_verdict(tmp_path, home, fake_pypi, stack_here, fields, says):
    from cais.build import BuildOptions, build_bundle
    from cais.builders.pip_settings import PipSettings
    from cais.server.models import ModelSet
    from tests.support import RecordingProgress

    file = _trusting_pickle(tmp_path)
    args = ["models", "import", str(file), "--name", "frac", "--trust"]
    assert CliRunner().invoke(app, args).exit_code == 0
    store = ModelStore(home)
    _edited(store.get("frac:1"), **fields)
    bundle = store.get("frac:1")
    for load in (
        lambda: cais.load_model("frac", home=home),
        lambda: ModelSet.load([str(bundle.path)]),
        lambda: build_bundle(
            _no_engine, bundle, BuildOptions(), RecordingProgress(), PipSettings()
        ),
    ):
        with pytest.raises(BundleError, match=says):
            load()


def _no_engine():
    raise AssertionError("the engine was contacted")


def test_classes_the_predictor_file_defines_are_allowed(tmp_path, home, fake_pypi, index):
    model = OldPipeline(steps=[("clean", CustomStep())], _sklearn_version="0.24.2")
    with _importable(CustomStep):
        file = _dump(tmp_path / "custom.pkl", model)
    predictor = tmp_path / "mycompany.py"
    predictor.write_text(PREDICTOR + "\n\nclass Cleaner:\n    pass\n")
    args = ["models", "import", str(file), "--name", "own", "--predictor", str(predictor)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "trusted" not in result.output
    bundle = ModelStore(home).get("own")
    assert bundle.metadata.trusted_globals == []
    bundle.check_globals()
    predictor.write_text(PREDICTOR)  # a file that does not define Cleaner
    refused = CliRunner().invoke(app, [*args, "--version", "2"])
    assert "would run `mycompany.Cleaner`" in assert_one_error(refused)


def test_guessed_versions_are_labelled_as_pins(old_pickle, home, fake_pypi):
    result = CliRunner().invoke(app, ["models", "import", str(old_pickle), "--name", "legacy"])
    assert result.exit_code == 0, result.output
    assert "pinned by cais: each package's newest release before 2021-" in result.output
    shown = json.loads(CliRunner().invoke(app, ["models", "show", "legacy"]).stdout)
    assert shown["pinned_by"].endswith("when scikit-learn 0.24.2 came out")
    from cais.plan.serving import requirements_for

    text = requirements_for(ModelStore(home).get("legacy").metadata, {})
    assert text.startswith("# legacy:1: the packages pinned by cais: each package's newest")


def test_a_skew_with_pins_says_pinned_not_saved_with(tmp_path, home):
    file = tmp_path / "model.joblib"
    joblib.dump(text_model(), file)
    ModelStore(home).adopt(
        file, "pins", python="3.11", packages={"numpy": "0.0.1"}, model_class="", modules=[],
        imported={"file": file.name}, pickle_globals=[], pinned_by="cais: a guess",
    )  # fmt: skip
    with pytest.warns(RuntimeWarning, match=r"`pins:1` is pinned to numpy 0.0.1 \(running "):
        cais.load_model("pins", home=home)


@pytest.mark.parametrize("protocol", [0, 2, 5])
@pytest.mark.parametrize("compress", [0, 3])
def test_a_pickle_replaced_after_the_import_is_stopped_in_the_unpickler(
    tmp_path, home, fake_pypi, stack_here, protocol, compress
):
    """Even with its hash and its recorded globals made to match, the replaced file's new
    global is refused by the unpickler that reads it, before it is imported or called."""
    import hashlib
    import os

    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    file = _trusting_pickle(tmp_path)
    assert (
        CliRunner().invoke(app, ["models", "import", str(file), "-n", "frac", "--trust"]).exit_code
        == 0
    )
    bundle = ModelStore(home).get("frac:1")
    joblib.dump([text_model(), Payload()], bundle.artifact, compress=compress, protocol=protocol)
    digest = hashlib.sha256(bundle.artifact.read_bytes()).hexdigest()
    _edited(bundle, files={bundle.metadata.artifact: digest})
    with pytest.raises(BundleError, match="names `posix.mkdir`, which it did not name") as caught:
        cais.load_model("frac", home=home)
    assert "import it again" in caught.value.hint
    assert not marker.exists()
    # Outside the load, the same file runs its payload: the guard is what stopped it.
    joblib.load(bundle.artifact)
    assert marker.is_dir()


# --- a pickle made by the stack running here -----------------------------------------------

HERE = running_python()
# Pythons the running stack's wheels are served for on the index below.
WHEEL_PYTHONS = sorted({"3.9", HERE, "3.12", "3.14"}, key=lambda p: tuple(map(int, p.split("."))))


@pytest.fixture(scope="module")
def running_stack_index():
    """An index with wheels of the installed stack (scikit-learn, numpy, scipy, joblib …)
    for several Pythons, the running one among them."""
    from cais.bundle.introspect import packages_of_modules

    installed = packages_of_modules({"sklearn", "numpy", "joblib"})
    tags = [
        (
            f"cp{p.replace('.', '')}-cp{p.replace('.', '')}-manylinux_2_17_x86_64",
            "2025-01-01T00:00:00Z",
        )
        for p in WHEEL_PYTHONS
    ]
    projects = {name: {version: (tags, [])} for name, version in installed.items()}
    with FakeIndex(projects) as index:
        yield index


@pytest.fixture
def made_here(tmp_path, running_stack_index, monkeypatch) -> Path:
    """A logistic regression fitted and dumped by the scikit-learn installed here."""
    from sklearn.linear_model import LogisticRegression

    monkeypatch.setenv("PIP_INDEX_URL", running_stack_index.url)
    monkeypatch.setenv("UV_HTTP_RETRIES", "0")
    file = tmp_path / "lr.joblib"
    joblib.dump(LogisticRegression().fit([[1, 2], [3, 4], [5, 1]], [0, 1, 0]), file)
    return file


@pytest.mark.parametrize(
    ("engine", "registry", "chosen", "says"),
    [
        ({"3.9", HERE}, set(), HERE, "the Python running here, whose packages made the file"),
        # Newer base images with wheels do not win over the Python whose packages these are.
        ({"3.9", HERE}, {"3.12", "3.14"}, HERE, "the Python running here"),
        (set(), {HERE, "3.14"}, HERE, "the Python running here"),
        # Without its base image, the newest one the site has, and why.
        ({"3.9"}, set(), "3.9", f"(Python {HERE}, running here, is not among them)"),
        ({"3.9"}, {"3.12"}, "3.12", f"(Python {HERE}, running here, is not among them)"),
    ],
)
def test_a_pickle_made_here_gets_the_python_running_here(
    made_here, site, engine, registry, chosen, says
):
    import importlib.metadata

    site.update(engine=engine, registry=registry)
    adoption = plan_adoption(made_here)
    assert adoption.python == chosen
    assert says in adoption.python_from
    assert adoption.cutoff is None
    assert adoption.pinned_by.startswith("cais: the stack installed here")
    assert adoption.packages["scikit-learn"] == importlib.metadata.version("scikit-learn")
    assert adoption.base_missing_from == ()  # chosen among the base images the site has


def test_the_readme_names_the_pythons_cais_chooses_among():
    from cais.project import KNOWN_PYTHONS

    readme = " ".join((Path(__file__).parents[2] / "README.md").read_text().split())
    first, last = KNOWN_PYTHONS[0], KNOWN_PYTHONS[-1]
    assert f"among the `python:{first}-slim` to `python:{last}-slim` base images" in readme


def test_the_import_of_a_pickle_made_here_prints_a_build_that_works_here(made_here, home):
    """The reviewed case: the engine holds python:3.9-slim and python:3.11-slim, no base
    registry, a fresh CAIS_HOME; the printed build must use a base image the site has."""
    from cais.plan.serving import plan_bundle

    args = ["models", "import", str(made_here), "--name", "rvlr", "--input-example", "[[1,2]]"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert f"Python {HERE}: the Python running here" in said
    assert "build its image with `cais build rvlr:1 -t rvlr:1`" in said
    assert "warning" not in said
    bundle = ModelStore(home).get("rvlr:1")
    assert bundle.metadata.python == HERE
    plan = plan_bundle(bundle.metadata, name="rvlr", tag="1")
    assert plan.base_image == f"python:{HERE}-slim"  # one the engine holds


@pytest.mark.parametrize(
    ("how", "python", "missing"),
    [
        ("--python", "3.12", True),
        ("CAIS_PYTHONS", "3.12", True),
        ("CAIS_PYTHONS", "3.14", True),
        ("--python", HERE, False),
        ("CAIS_PYTHONS", HERE, False),
    ],
)
def test_a_named_python_without_a_base_image_is_said_and_the_build_waits_for_it(
    made_here, home, monkeypatch, how, python, missing
):
    args = ["models", "import", str(made_here), "--name", "named"]
    if how == "--python":
        args += ["--python", python]
    else:
        monkeypatch.setenv("CAIS_PYTHONS", python)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert f"Python {python}:" in said
    base = f"`python:{python}-slim`"
    if missing:
        assert f"warning: {base} is not in the Docker Engine or Docker Hub: pull or load it" in said
        assert f"once the engine has {base}, build it with `cais build named:1" in said
        assert "build its image with" not in said
    else:
        assert "warning" not in said
        assert "build its image with `cais build named:1 -t named:1`" in said
    assert ModelStore(home).get("named:1").metadata.python == python
