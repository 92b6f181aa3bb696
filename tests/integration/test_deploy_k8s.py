"""`cais deploy k8s` and `cais deploy kserve` against real components: the InferenceService
read by KServe's own models (in KServe's environment, tests/kserve_env.py), the manifests of a
model built and pushed for real, the pod's security settings holding on the real engine, and
`kubectl` itself for `--apply`. No Kubernetes API server runs here: files are validated, not
applied."""

from __future__ import annotations

import json
import shutil
import time
import uuid
from pathlib import Path

import httpx
import pytest
import yaml

from cais.deploy.kubernetes import KubeOptions, inference_service, manifests
from tests import kserve_env
from tests.support import free_port, text_model, unavailable
from tests.unit.test_deploy_k8s import TARGETS, _validate

# Run with KServe's Python; reads a JSON list of documents and prints, for each, {"ok": the
# predictor container's name} or {"error": what KServe's models refused}. Every field must be
# one the models define (deserialising alone would drop unknown ones silently); required fields
# and types are the models' own checks.
STRICT_SCRIPT = r"""
import json
import re
import sys

import kserve.models
import kubernetes.client.models
from kserve import V1beta1InferenceService

NATIVE = {"str": str, "int": int, "bool": bool, "float": float, "object": object}


def build(data, klass, path):
    if data is None:
        return None
    listed = re.fullmatch(r"[lL]ist\[(.*)\]", klass)
    if listed:
        return [build(item, listed.group(1), f"{path}[{i}]") for i, item in enumerate(data)]
    mapped = re.fullmatch(r"[dD]ict[\[(]([^,]*), (.*)[\])]", klass)
    if mapped:
        return {k: build(v, mapped.group(2), f"{path}.{k}") for k, v in data.items()}
    if klass in NATIVE:
        if NATIVE[klass] is not object and not isinstance(data, NATIVE[klass]):
            raise TypeError(f"{path}: {data!r} is not {klass}")
        return data
    model = getattr(kserve.models, klass, None) or getattr(kubernetes.client.models, klass)
    if not isinstance(data, dict):
        raise TypeError(f"{path}: {data!r} is not a {klass}")
    by_key = {key: attr for attr, key in model.attribute_map.items()}
    unknown = sorted(set(data) - set(by_key))
    if unknown:
        raise KeyError(f"{path}: {klass} has no field {unknown[0]!r}")
    return model(**{
        by_key[k]: build(v, model.openapi_types[by_key[k]], f"{path}.{k}") for k, v in data.items()
    })


results = []
for document in json.load(sys.stdin):
    try:
        made = build(document, "V1beta1InferenceService", "$")
        assert isinstance(made, V1beta1InferenceService)
        results.append({"ok": made.spec.predictor.containers[0].name})
    except Exception as exc:
        results.append({"error": f"{type(exc).__name__}: {exc}"})
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def kserve_python() -> Path:
    return kserve_env.kserve_python()


def _kserve_read(python: Path, documents: list[dict]) -> list[dict]:
    done = kserve_env.run_in_kserve(python, STRICT_SCRIPT, json.dumps(documents), timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_every_inference_service_fits_kserve_models(kserve_python):
    documents = [
        yaml.safe_load(inference_service(target, namespace))
        for target in TARGETS
        for namespace in (None, "ml")
    ]
    assert _kserve_read(kserve_python, documents) == [{"ok": "kserve-container"}] * len(documents)


def test_kserve_models_refuse_what_they_should(kserve_python):
    """The check can fail: an unknown field, a missing required one, a wrong type."""
    good = yaml.safe_load(inference_service(TARGETS[0]))
    unknown, missing, wrong = (json.loads(json.dumps(good)) for _ in range(3))
    unknown["spec"]["predictor"]["containers"][0]["healthcheck"] = {}
    del missing["spec"]["predictor"]["containers"][0]["name"]
    wrong["spec"]["predictor"]["minReplicas"] = "one"
    seen = _kserve_read(kserve_python, [unknown, missing, wrong])
    assert "V1Container has no field 'healthcheck'" in seen[0]["error"]
    assert "name" in seen[1]["error"]
    assert "minReplicas" in seen[2]["error"]


# ------------------------------------------------------------------ a model built and pushed


@pytest.mark.engine
def test_a_pushed_model_gives_valid_manifests_pinned_by_digest(
    cais, pushed_model, registry, kserve_python, tmp_path
):
    reference, env = pushed_model
    folder = tmp_path / "k8s"
    done = cais(
        "deploy", "k8s", reference, "-o", str(folder), "--hpa", "2:5",
        "--ingress", "models.example.com", "--namespace", "ml", env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "never pushed" not in done.stderr
    files = sorted(p.name for p in folder.iterdir())
    assert files == ["deployment.yaml", "hpa.yaml", "ingress.yaml", "service.yaml"]
    for path in folder.iterdir():
        _validate(yaml.safe_load(path.read_text()))
    deployment = yaml.safe_load((folder / "deployment.yaml").read_text())
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"].startswith(f"{registry}/{reference}@sha256:")
    name, version = reference.split(":")
    assert deployment["metadata"]["labels"]["app.kubernetes.io/name"] == name
    assert deployment["metadata"]["labels"]["app.kubernetes.io/version"] == version

    file = tmp_path / "isvc.yaml"
    done = cais("deploy", "kserve", reference, "-o", str(file), env=env)
    assert done.returncode == 0, done.stderr
    service = yaml.safe_load(file.read_text())
    assert service["spec"]["predictor"]["containers"][0]["image"] == container["image"]
    assert _kserve_read(kserve_python, [service]) == [{"ok": "kserve-container"}]


@pytest.mark.engine
def test_the_pod_security_settings_hold_on_the_real_engine(engine, pushed_model, tmp_path):
    """What the Deployment asks of the container, asked of the engine: user 1000, a read-only
    root filesystem with /tmp writable, no capabilities, no privilege escalation. The server
    loads its model, gets ready and predicts."""
    reference, env = pushed_model
    target = _target_of(engine, reference, env)
    pod = yaml.safe_load(manifests(target, KubeOptions())["deployment.yaml"])["spec"]["template"]
    pod = pod["spec"]
    (container,) = pod["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    port = free_port()
    running = engine.containers.run(
        reference,
        detach=True,
        name=f"cais-test-{uuid.uuid4().hex[:8]}",
        user=str(pod["securityContext"]["runAsUser"]),
        read_only=True,
        tmpfs={"/tmp": ""},
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        ports={f"{container['ports'][0]['containerPort']}/tcp": ("127.0.0.1", port)},
    )
    try:
        status = None
        for _ in range(240):  # bounded: the model loads, then readiness answers 200
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=2).status_code
            except httpx.HTTPError:
                status = None
            running.reload()
            if status == 200 or running.status != "running":
                break
            time.sleep(0.5)
        logs = running.logs().decode(errors="replace")
        assert status == 200, logs
        answer = httpx.post(f"http://127.0.0.1:{port}/predict", json={"instances": ["livro"]})
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"] == list(text_model().predict(["livro"]))
        assert httpx.get(f"http://127.0.0.1:{port}/metrics").status_code == 200
        assert "Read-only file system" not in logs
        assert running.exec_run(["id", "-u"]).output.strip() == b"1000"
    finally:
        running.remove(force=True)


def _target_of(engine, reference: str, env: dict):
    from cais.bundle.store import ModelStore
    from cais.deploy.target import target_of

    return target_of(engine, reference, ModelStore(Path(env["CAIS_HOME"])))


# ------------------------------------------------------------------ failures, one sentence each


def _one_error(done) -> str:
    """One `error:` line (what was written before it may be said first), no traceback."""
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    (error,) = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    return error


@pytest.mark.engine
@pytest.mark.parametrize("command", ["k8s", "kserve"])
def test_apply_to_a_cluster_that_does_not_answer(cais, pushed_model, tmp_path, command):
    """kubectl is configured (a current context) but its API server is not there: kubectl's
    own complaint in one sentence; the files are written for later."""
    if shutil.which("kubectl") is None:
        unavailable("kubectl is not installed (scripts/test-infra installs it)")
    reference, env = pushed_model
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {"name": "gone", "cluster": {"server": f"https://127.0.0.1:{free_port()}"}}
                ],
                "users": [{"name": "me", "user": {"token": "none"}}],
                "contexts": [{"name": "gone", "context": {"cluster": "gone", "user": "me"}}],
                "current-context": "gone",
            }
        )
    )
    done = cais(
        "deploy", command, reference, "--apply", cwd=tmp_path,
        env={**env, "KUBECONFIG": str(kubeconfig), "HOME": str(tmp_path)},
    )  # fmt: skip
    error = _one_error(done)
    assert "The cluster `gone` does not answer at 127.0.0.1:" in error, error
    assert "connection refused" in error
    written = tmp_path / ("k8s" if command == "k8s" else "inferenceservice.yaml")
    assert written.exists()


@pytest.mark.engine
@pytest.mark.parametrize("command", ["k8s", "kserve"])
@pytest.mark.parametrize(
    ("argument", "says"),
    [
        ("no-such-model:1", "`no-such-model:1` is neither a saved model nor an image"),
        ("127.0.0.1:5000/no/such-image:1", "The image `127.0.0.1:5000/no/such-image:1` is not"),
    ],
)
def test_unknown_model_or_missing_image(cais, engine, tmp_path, command, argument, says):
    done = cais("deploy", command, argument, cwd=tmp_path, env={"CAIS_HOME": str(tmp_path)})
    assert says in _one_error(done)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.engine
@pytest.mark.parametrize("command", ["k8s", "kserve"])
def test_an_image_exposing_no_port_is_refused(cais, engine, base_image, tmp_path, command):
    done = cais("deploy", command, base_image, cwd=tmp_path, env={"CAIS_HOME": str(tmp_path)})
    assert "exposes no TCP port, so a deployment cannot know where it listens" in _one_error(done)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.engine
@pytest.mark.parametrize("command", ["k8s", "kserve"])
def test_latest_alone_is_refused(cais, engine, base_image, image_name, tmp_path, command):
    """An image only tagged `latest`, never pushed: nothing says which version would run."""
    made = engine.containers.create(base_image, command=["true"])
    try:  # a commit has no registry digest, unlike the pulled base image
        made.commit(repository=image_name, tag="latest", changes=["EXPOSE 8080"])
    finally:
        made.remove()
    done = cais("deploy", command, image_name, cwd=tmp_path, env={"CAIS_HOME": str(tmp_path)})
    assert f"`{image_name}:latest` names no version" in _one_error(done)
    assert list(tmp_path.iterdir()) == []
