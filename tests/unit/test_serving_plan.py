"""The plan and Dockerfile of an image that serves a model bundle, and the in-image check."""

from __future__ import annotations

import gc
from datetime import datetime, timezone

import pytest

from cais.builders.dockerfile import SecretsMode, render_dockerfile
from cais.bundle.metadata import BundleMetadata
from cais.errors import PlanError
from cais.plan import LayerKind
from cais.plan.serving import (
    MODEL_DIR,
    model_folders,
    pinned_union,
    plan_bundle,
    plan_bundles,
    requirements_for,
)


def metadata(**changes) -> BundleMetadata:
    values = dict(
        name="products",
        version="3",
        created=datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
        python="3.11.7",
        packages={"numpy": "2.4.6", "scikit-learn": "1.9.1", "joblib": "1.6.0"},
        files={"model.joblib": "ab" * 32},
        metrics={"accuracy": 0.97},
        git_commit="c0ffee",
    )
    values.update(changes)
    return BundleMetadata(**values)


def test_requirements_pin_the_stack_then_the_server_without_repeats():
    text = requirements_for(
        metadata(requirements=["unidecode>=1.3"]),
        {"starlette": "1.10.0", "joblib": "1.5.0", "uvicorn": "0.54.0"},
    )
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    assert lines == [
        "numpy==2.4.6",
        "scikit-learn==1.9.1",
        "joblib==1.6.0",
        "unidecode>=1.3",
        "starlette==1.10.0",
        "uvicorn==0.54.0",
    ]


def test_plan_serves_the_model_from_its_own_last_layer():
    plan = plan_bundle(metadata(), name="registry.example/products", tag="3")
    assert plan.base_image == "python:3.11-slim"
    assert plan.layers == (LayerKind.DEPENDENCIES, LayerKind.APP, LayerKind.MODEL)
    assert plan.ports == (8080,)
    assert plan.entrypoint[:4] == ("python", "-m", "cais.server", MODEL_DIR)
    assert plan.labels["dev.cais.model.sha256"] == "ab" * 32
    assert plan.labels["dev.cais.model.version"] == "3"
    assert plan.labels["dev.cais.model.metrics.accuracy"] == "0.97"
    assert plan.labels["org.opencontainers.image.revision"] == "c0ffee"
    assert plan.labels["org.opencontainers.image.created"] == "2026-01-02T03:04:05Z"


@pytest.mark.parametrize("mode", list(SecretsMode))
def test_dockerfile_copies_the_model_last_and_checks_health(mode):
    text = render_dockerfile(plan_bundle(metadata(), name="products", tag="3"), secrets=mode)
    instructions = [line.split()[0] for line in text.splitlines() if line and line[0].isupper()]
    copies = [line for line in text.splitlines() if line.startswith("COPY")]
    assert copies[-1] == f"COPY model {MODEL_DIR}"
    assert instructions[-1] == "CMD" and "HEALTHCHECK" in instructions
    assert "USER 1000:1000" in text
    assert "/health/ready" in text


def test_python_override_and_old_pythons():
    assert (
        plan_bundle(metadata(), name="p", tag="1", python="3.12").base_image == "python:3.12-slim"
    )
    old = plan_bundle(metadata(python="3.9.18"), name="p", tag="1")
    assert old.base_image == "python:3.9-slim"
    with pytest.raises(PlanError) as caught:
        plan_bundle(metadata(python="3.8.10"), name="p", tag="1")
    assert "needs Python 3.9 or newer" in caught.value.message
    assert "--python" in caught.value.hint


def test_server_check_loads_and_predicts_the_example(tmp_path, capsys):
    from cais.server.__main__ import main

    folder = _tiny_model(tmp_path)
    assert main([str(folder), "--check"]) == 0
    assert "tiny:1 predicts [0]" in capsys.readouterr().out
    (folder / "model.joblib").write_bytes(b"broken")
    assert main([str(folder), "--check"]) == 1
    assert "does not match its recorded sha256" in capsys.readouterr().err
    assert main([str(tmp_path / "nothing"), "--check"]) == 1
    assert gc.isenabled()  # collections pause only while the server starts


# What `--check` imports, seen from a process of its own (this one has imported much more).
_CHECK_IN_A_PROCESS = """
import json, runpy, sys
sys.argv = ["cais.server", sys.argv[1], "--check"]
try:
    runpy.run_module("cais.server", run_name="__main__", alter_sys=True)
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "modules": sorted({m.split(".")[0] for m in sys.modules})}))
"""


def _tiny_model(home):
    from sklearn.linear_model import LogisticRegression

    import cais
    from cais.bundle.store import ModelStore

    model = LogisticRegression().fit([[0, 1], [1, 0], [0, 0], [1, 1]], [0, 1, 0, 1])
    cais.save_model(model, "tiny", input_example=[[0, 1]], home=home)
    return ModelStore(home).get("tiny").path


def test_the_check_assembles_the_app_but_never_imports_the_serving_loop(tmp_path):
    """The proof covers the packages the server needs to start (starlette, prometheus-client,
    pydantic: an image whose stack breaks them fails it), and not uvicorn's serving loop,
    which only serving needs."""
    import json
    import subprocess
    import sys

    folder = _tiny_model(tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", _CHECK_IN_A_PROCESS, str(folder)],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = done.stdout.splitlines()
    assert lines[0] == "tiny:1 predicts [0]"
    seen = json.loads(lines[-1])
    assert seen["code"] == 0
    assert {"starlette", "prometheus_client", "pydantic", "sklearn"} <= set(seen["modules"])
    assert not {"uvicorn", "h11", "httptools", "uvloop", "websockets"} & set(seen["modules"])


@pytest.mark.parametrize(
    "example",
    [[[0, 1, 2]], [["not", "numbers"]], [[]]],
    ids=["too-wide", "text", "empty-row"],
)
def test_a_model_that_cannot_predict_its_example_fails_the_check_in_one_sentence(
    tmp_path, capsys, example
):
    import json

    from cais.bundle.metadata import METADATA_FILE
    from cais.server.__main__ import main

    folder = _tiny_model(tmp_path)
    recorded = json.loads((folder / METADATA_FILE).read_text(encoding="utf-8"))
    recorded["input_example"] = example  # as a bundle saved elsewhere might record
    (folder / METADATA_FILE).write_text(json.dumps(recorded), encoding="utf-8")
    assert main([str(folder), "--check"]) == 1
    captured = capsys.readouterr()
    assert "predicts" not in captured.out
    [line] = captured.err.splitlines()
    assert line.startswith("error: `tiny:1` cannot predict its input example here: ValueError: ")


def test_the_collector_pauses_while_the_server_starts(tmp_path, monkeypatch):
    from cais.server import __main__ as entry

    seen = []
    monkeypatch.setattr(entry, "_main", lambda argv: seen.append(gc.isenabled()) or 0)
    assert entry.main([str(tmp_path)]) == 0
    assert seen == [False] and gc.isenabled()


def test_packages_without_wheels_are_named_with_a_hint():
    from cais.build import _explain_missing_wheels
    from cais.errors import BuildError

    failed = BuildError(
        "No distribution of `scikit-learn==0.24.2` was found on the package index",
        step="[4/6] RUN …",
        packages=["scikit-learn==0.24.2"],
    )
    explained = _explain_missing_wheels(failed, "3.11")
    assert explained.message == "`scikit-learn==0.24.2` cannot be installed on Python 3.11"
    assert "--python" in explained.hint
    assert explained.step == failed.step
    other = BuildError("pip cannot reach the package index: connection refused")
    assert _explain_missing_wheels(other, "3.11") is other


@pytest.mark.parametrize("mode", list(SecretsMode))
def test_package_test_suites_are_deleted_in_the_install_step(mode):
    text = render_dockerfile(plan_bundle(metadata(), name="products", tag="3"), secrets=mode)
    runs = [block for block in text.split("\nRUN ")[1:] if "pip install" in block]
    assert len(runs) == 1
    assert "-name tests" in runs[0] and "rm -rf" in runs[0]  # same step: never in a layer


def test_projects_keep_their_packages_whole():
    from cais.plan import DependencyStep, ImagePlan

    plan = ImagePlan(
        name="app",
        tag="1",
        base_image="python:3.11-slim",
        python="3.11",
        dependencies=DependencyStep(files=("requirements.txt",), requirements="requirements.txt"),
    )
    assert "-name tests" not in render_dockerfile(plan)


@pytest.mark.parametrize("mode", list(SecretsMode))
def test_only_what_serving_imports_is_byte_compiled(mode):
    modules = ["sklearn.pipeline", "sklearn.linear_model._logistic"]
    text = render_dockerfile(
        plan_bundle(metadata(modules=modules), name="products", tag="3"), secrets=mode
    )
    assert "pip install --no-cache-dir --no-compile" in text
    precompile = next(line for line in text.splitlines() if "PYTHONDONTWRITEBYTECODE= " in line)
    assert precompile.rstrip(" \\").endswith(
        "joblib sklearn.pipeline sklearn.linear_model._logistic"
    )
    assert "uvicorn.main" in precompile
    if mode is SecretsMode.STAGE:  # the throw-away stage imports from where it installed
        assert "PYTHONPATH=/install/lib/python3.11/site-packages" in precompile
    assert "-name '*.pyx'" in text and "-name tests" in text  # build-only files pruned too


def test_bundles_without_recorded_modules_keep_pip_compiling_everything():
    text = render_dockerfile(plan_bundle(metadata(), name="products", tag="3"))
    assert "--no-compile" not in text
    assert "PYTHONDONTWRITEBYTECODE= " not in text


def test_the_packages_are_slimmed_on_the_host_and_nothing_is_run_in_the_image_for_it():
    plan = plan_bundle(metadata(modules=["sklearn.pipeline"]), name="products", tag="3")
    assert plan.dependencies.slim and plan.dependencies.files == ("requirements.txt",)
    for mode in SecretsMode:
        text = render_dockerfile(plan, secrets=mode)
        assert "COPY requirements.txt ./" in text
        assert "strip" not in text.lower()  # no stripper of cais's own runs in users' images


@pytest.mark.parametrize("mode", list(SecretsMode))
def test_the_server_code_is_byte_compiled_once_copied(mode):
    text = render_dockerfile(plan_bundle(metadata(), name="products", tag="3"), secrets=mode)
    lines = text.splitlines()
    copy = next(
        i for i, line in enumerate(lines) if line.startswith("COPY") and "/opt/cais/cais" in line
    )
    compile_all = next(i for i, line in enumerate(lines) if "compileall" in line)
    assert compile_all > copy
    assert lines[compile_all] == (
        "RUN python -m compileall -q --invalidation-mode unchecked-hash /opt/cais/cais"
    )
    assert compile_all < lines.index(f"COPY model {MODEL_DIR}")  # the model stays the last layer


# --- one image, several models -----------------------------------------------------------------


def test_one_model_plans_exactly_as_before():
    one = metadata()
    assert plan_bundles([one], name="products", tag="3") == plan_bundle(
        one, name="products", tag="3"
    )
    assert model_folders([one]) == (MODEL_DIR,)
    assert requirements_for([one], {"uvicorn": "0.54.0"}) == requirements_for(
        one, {"uvicorn": "0.54.0"}
    )


def test_several_models_share_one_server_each_from_its_own_folder():
    first = metadata(version="1", modules=["sklearn.linear_model"])
    second = metadata(
        version="2",
        created=datetime(2026, 2, 1, tzinfo=timezone.utc),
        modules=["sklearn.pipeline"],
        git_commit="beef",
    )
    plan = plan_bundles([first, second], name="registry.example/shop", tag="7")
    folders = (f"{MODEL_DIR}/products-1", f"{MODEL_DIR}/products-2")
    assert model_folders([first, second]) == folders
    assert plan.entrypoint == ("python", "-m", "cais.server", *folders, "--port", "8080")
    assert plan.labels["dev.cais.models"] == "products:1,products:2"
    assert plan.labels["org.opencontainers.image.created"] == "2026-02-01T00:00:00Z"  # the newest
    assert plan.labels["org.opencontainers.image.title"] == "registry.example/shop"
    assert not any(key.startswith("dev.cais.model.") for key in plan.labels)  # no one model's
    assert "org.opencontainers.image.revision" not in plan.labels  # two commits: neither
    assert plan.dependencies is not None
    assert {"sklearn.linear_model", "sklearn.pipeline"} <= set(plan.dependencies.precompile)
    assert plan.base_image == "python:3.11-slim"


def test_the_stacks_are_united_and_spelled_once():
    first = metadata(version="1", packages={"scikit-learn": "1.9.1", "numpy": "2.4.6"})
    second = metadata(
        name="prices",
        version="1",
        packages={"Scikit_Learn": "1.9.1", "numpy": "2.4.6.0", "pandas": "3.0.1"},
        requirements=["unidecode>=1.3"],
    )
    assert pinned_union([first, second]) == {
        "scikit-learn": "1.9.1",
        "numpy": "2.4.6",
        "pandas": "3.0.1",
    }
    text = requirements_for([first, second], {"starlette": "1.10.0", "numpy": "1.0"})
    assert text.splitlines() == [
        "# products:1, prices:1: the packages they pin, exactly",
        "scikit-learn==1.9.1",
        "numpy==2.4.6",
        "pandas==3.0.1",
        "# named when it was saved",
        "unidecode>=1.3",
        "# the cais server",
        "starlette==1.10.0",
    ]


@pytest.mark.parametrize(
    ("others", "named"),
    [
        (  # one package
            [{"scikit-learn": "1.8.0", "numpy": "2.4.6"}],
            "`scikit-learn` 1.9.1 for `products:1`, 1.8.0 for `products:2`",
        ),
        (  # two packages, spelled differently
            [{"Scikit_Learn": "1.8.0", "numpy": "2.3.0"}],
            "`scikit-learn` 1.9.1 for `products:1`, 1.8.0 for `products:2`; `numpy` 2.4.6 for "
            "`products:1`, 2.3.0 for `products:2`",
        ),
        (  # three models, two of them agreeing
            [{"scikit-learn": "1.9.1"}, {"scikit-learn": "1.8.0"}],
            "`scikit-learn` 1.9.1 for `products:1`, `products:2`, 1.8.0 for `products:3`",
        ),
    ],
)
def test_a_package_pinned_differently_is_one_sentence_naming_who_wants_what(others, named):
    models = [metadata(version="1", packages={"scikit-learn": "1.9.1", "numpy": "2.4.6"})]
    models += [metadata(version=str(n), packages=p) for n, p in enumerate(others, start=2)]
    for plan in (pinned_union, lambda m: plan_bundles(m, name="shop", tag="1")):
        with pytest.raises(PlanError) as caught:
            plan(models)
        message = caught.value.message
        assert message == (
            "The models pin different versions of the same packages, so one image cannot serve "
            f"them: {named}"
        )
        assert "build an image for each" in caught.value.hint


def test_models_of_different_pythons_need_one_chosen():
    older = metadata(version="1", python="3.9.18")
    newer = metadata(version="2", python="3.11.7")
    with pytest.raises(PlanError) as caught:
        plan_bundles([older, newer], name="shop", tag="1")
    assert caught.value.message == (
        "The models were saved with different Pythons (`products:1` Python 3.9, `products:2` "
        "Python 3.11), and one image has one"
    )
    assert "`--python X.Y`" in caught.value.hint
    plan = plan_bundles([older, newer], name="shop", tag="1", python="3.11")
    assert plan.python == "3.11" and plan.base_image == "python:3.11-slim"
    with pytest.raises(PlanError, match="cais's server needs Python 3.9 or newer"):
        plan_bundles([older, newer], name="shop", tag="1", python="3.8")


def test_a_model_named_twice_is_refused():
    with pytest.raises(PlanError) as caught:
        plan_bundles([metadata(), metadata()], name="shop", tag="1")
    assert caught.value.message == "`products:3` is named more than once"
