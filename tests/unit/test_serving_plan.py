"""The plan and Dockerfile of an image that serves a model bundle, and the in-image check."""

from __future__ import annotations

import gc
from datetime import datetime, timezone

import pytest

from cais.builders.dockerfile import SecretsMode, render_dockerfile
from cais.bundle.metadata import BundleMetadata
from cais.errors import PlanError
from cais.plan import LayerKind
from cais.plan.serving import MODEL_DIR, plan_bundle, requirements_for


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
    from sklearn.linear_model import LogisticRegression

    import cais
    from cais.bundle.store import ModelStore
    from cais.server.__main__ import main

    model = LogisticRegression().fit([[0, 1], [1, 0], [0, 0], [1, 1]], [0, 1, 0, 1])
    cais.save_model(model, "tiny", input_example=[[0, 1]], home=tmp_path)
    folder = ModelStore(tmp_path).get("tiny").path
    assert main([str(folder), "--check"]) == 0
    assert "tiny:1 predicts [0]" in capsys.readouterr().out
    (folder / "model.joblib").write_bytes(b"broken")
    assert main([str(folder), "--check"]) == 1
    assert "does not match its recorded sha256" in capsys.readouterr().err
    assert main([str(tmp_path / "nothing"), "--check"]) == 1
    assert gc.isenabled()  # collections pause only while the server starts


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
