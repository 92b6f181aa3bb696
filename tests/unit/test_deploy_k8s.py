"""`cais deploy k8s` and `cais deploy kserve` without an engine or a cluster: the objects they
write (each variant validated by `kubernetes-validate --strict` for a pinned Kubernetes), the
security and health settings the pods get, and the mistakes they refuse."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from cais.cli import app
from cais.deploy.kubernetes import KubeOptions, inference_service, manifests, object_name, write
from cais.deploy.target import Target
from tests.support import assert_one_error, unavailable

KUBERNETES = "1.30.0"  # the version the manifests are validated against
DIGEST = "sha256:" + "ab" * 32
PINNED = f"127.0.0.1:5000/products:3@{DIGEST}"

VARIANTS = [
    KubeOptions(),
    KubeOptions(replicas=3),
    KubeOptions(hpa=(2, 10)),
    KubeOptions(ingress="models.example.com"),
    KubeOptions(namespace="ml", hpa=(1, 1), ingress="*.models.example.com"),
]


def _target(**changes) -> Target:
    values = {
        "image": PINNED,
        "image_id": "sha256:" + "cd" * 32,
        "name": "products",
        "model": "products:3",
        "port": 8080,
        "healthcheck": None,
    }
    return Target(**{**values, **changes})


TARGETS = [
    _target(),
    _target(image="products:3", name="Products_Classifier.v2"),  # never pushed
    _target(image="127.0.0.1:5000/other:1.2", name="other", model=None, port=5000),
]


def _objects(files: dict[str, str]) -> dict[str, dict]:
    return {name: yaml.safe_load(text) for name, text in files.items()}


def _validate(document: dict) -> None:
    try:
        import kubernetes_validate
    except ImportError:
        unavailable("kubernetes-validate is not installed (pip install -e '.[test]')")
    kubernetes_validate.validate(document, KUBERNETES, strict=True)  # raises on any flaw


@pytest.mark.parametrize("options", VARIANTS)
@pytest.mark.parametrize("target", TARGETS, ids=["model", "unpushed", "other-image"])
def test_every_variant_is_valid_kubernetes(options, target):
    files = manifests(target, options)
    expected = {"deployment.yaml", "service.yaml"}
    expected |= {"hpa.yaml"} if options.hpa else set()
    expected |= {"ingress.yaml"} if options.ingress else set()
    assert set(files) == expected
    for document in _objects(files).values():
        _validate(document)
        assert document["metadata"].get("namespace") == options.namespace


def test_kubernetes_validate_refuses_what_it_should():
    """The validation can fail: an unknown field, and a wrong type."""
    import kubernetes_validate

    deployment = _objects(manifests(_target(), KubeOptions()))["deployment.yaml"]
    deployment["spec"]["template"]["spec"]["containers"][0]["healthcheck"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate(deployment)
    deployment = _objects(manifests(_target(), KubeOptions()))["deployment.yaml"]
    deployment["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate(deployment)


def _pod(files: dict[str, str]) -> dict:
    return _objects(files)["deployment.yaml"]["spec"]["template"]


def test_the_pod_runs_as_user_1000_never_root_with_a_read_only_root():
    pod = _pod(manifests(_target(), KubeOptions()))["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 1000
    assert pod["automountServiceAccountToken"] is False
    (container,) = pod["containers"]
    security = container["securityContext"]
    assert security == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert pod["volumes"][0]["name"] == "tmp" and "emptyDir" in pod["volumes"][0]


def test_probes_ask_the_health_endpoints_of_cais_images():
    (container,) = _pod(manifests(_target(), KubeOptions()))["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "http"}
    assert container["startupProbe"]["httpGet"] == {"path": "/health/live", "port": "http"}
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert container["resources"]["requests"]["cpu"]
    assert container["resources"]["limits"]["memory"]


def test_an_image_cais_did_not_build_is_probed_on_its_port():
    other = _target(image="127.0.0.1:5000/other:1.2", name="other", model=None, port=5000)
    (container,) = _pod(manifests(other, KubeOptions()))["spec"]["containers"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["tcpSocket"] == {"port": "http"}, probe
    assert container["ports"][0]["containerPort"] == 5000


def test_image_by_digest_labels_and_metrics_annotations():
    template = _pod(manifests(_target(), KubeOptions()))
    assert template["spec"]["containers"][0]["image"] == PINNED
    assert template["metadata"]["labels"]["app.kubernetes.io/name"] == "products"
    assert template["metadata"]["labels"]["app.kubernetes.io/version"] == "3"
    assert template["metadata"]["annotations"] == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "8080",
        "prometheus.io/path": "/metrics",
    }


def test_the_selector_names_the_model_not_its_version():
    """A new version rolls the same Deployment: its selector (immutable) holds no version."""
    deployment = _objects(manifests(_target(), KubeOptions()))["deployment.yaml"]
    assert deployment["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": "products"}
    service = _objects(manifests(_target(), KubeOptions()))["service.yaml"]
    assert service["spec"]["selector"] == {"app.kubernetes.io/name": "products"}
    assert service["spec"]["ports"][0]["targetPort"] == "http"


def test_replicas_or_an_autoscaler_that_owns_them():
    fixed = _objects(manifests(_target(), KubeOptions(replicas=3)))
    assert fixed["deployment.yaml"]["spec"]["replicas"] == 3
    scaled = _objects(manifests(_target(), KubeOptions(hpa=(2, 10))))
    assert "replicas" not in scaled["deployment.yaml"]["spec"]
    hpa = scaled["hpa.yaml"]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 10)
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "products",
    }


def test_the_ingress_routes_its_host_to_the_service():
    ingress = _objects(manifests(_target(), KubeOptions(ingress="models.example.com")))[
        "ingress.yaml"
    ]
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "models.example.com"
    (path,) = rule["http"]["paths"]
    assert path["backend"] == {"service": {"name": "products", "port": {"name": "http"}}}


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("products", "products"),
        ("Products_Classifier.v2", "products-classifier-v2"),
        ("3d-model", "model-3d-model"),
        ("__", "model"),
        ("a" * 80, "a" * 63),
    ],
)
def test_object_names_are_dns_labels(text, name):
    assert object_name(text) == name


def _comments(text: str) -> str:
    """The comments of a file as one line (a long one is wrapped over several)."""
    return " ".join(line.strip()[2:] for line in text.splitlines() if line.strip()[:1] == "#")


def test_the_files_say_why():
    files = manifests(_target(), KubeOptions(hpa=(2, 4), ingress="models.example.com"))
    deployment = files["deployment.yaml"]
    assert deployment.startswith("# Written by `cais deploy k8s`")
    assert "a digest never names other bytes" in _comments(deployment)
    assert "no traffic until the model is loaded" in _comments(deployment)
    assert "the replicas are the autoscaler's" in _comments(deployment)
    assert "metrics-server" in _comments(files["hpa.yaml"])
    for text in [*files.values(), inference_service(_target())]:
        assert "&id" not in text and "*id" not in text  # settings written out, not aliased
        comments = [line for line in text.splitlines() if line.strip().startswith("# ")]
        assert max(len(line) for line in comments) <= 100
    unpushed = manifests(_target(image="products:3"), KubeOptions())["deployment.yaml"]
    assert "never pushed" in unpushed and "sha256:" + "cd" * 32 in unpushed


def test_a_second_write_removes_the_manifests_no_longer_asked_for(tmp_path):
    write(manifests(_target(), KubeOptions(hpa=(2, 4), ingress="a.example.com")), tmp_path)
    (tmp_path / "configmap.yaml").write_text("kind: ConfigMap\n")  # not ours: kept
    write(manifests(_target(), KubeOptions()), tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "configmap.yaml",
        "deployment.yaml",
        "service.yaml",
    ]


# ------------------------------------------------------------------ KServe


def test_the_inference_service_speaks_v2_from_the_cais_image():
    service = yaml.safe_load(inference_service(_target(), "ml"))
    assert service["apiVersion"] == "serving.kserve.io/v1beta1"
    assert service["kind"] == "InferenceService"
    assert service["metadata"]["namespace"] == "ml"
    predictor = service["spec"]["predictor"]
    (container,) = predictor["containers"]
    assert container["name"] == "kserve-container"
    assert container["image"] == PINNED
    assert container["env"] == [{"name": "PROTOCOL", "value": "v2"}]
    assert container["ports"][0]["containerPort"] == 8080
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert predictor["securityContext"]["runAsUser"] == 1000
    assert "KServe reads the protocol" in inference_service(_target())


# ------------------------------------------------------------------ the command's mistakes


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["products:1", "--hpa", "2-5"], "`2-5` is not a range of replicas"),
        (["products:1", "--hpa", "0:3"], "`0:3` is not a range of replicas"),
        (["products:1", "--hpa", "5:2"], "`5:2` is not a range of replicas"),
        (["products:1", "--hpa", "a:b"], "`a:b` is not a range of replicas"),
        (["products:1", "--hpa", "3"], "`3` is not a range of replicas"),
        (["products:1", "--ingress", "https://models.example.com"], "is not a host name"),
        (["products:1", "--ingress", "models.example.com:80"], "is not a host name"),
        (["products:1", "--ingress", "Models_Host"], "is not a host name"),
        (["products:1", "--ingress", "10.0.0.1"], "`10.0.0.1` is not a host name"),
        (["products:1", "--ingress", "-bad.example.com"], "is not a host name"),
        (["products:1", "--namespace", "Prod"], "`Prod` cannot name a Kubernetes namespace"),
        (["products:1", "--namespace", "ml_team"], "cannot name a Kubernetes namespace"),
        (["products:1", "--replicas", "2", "--hpa", "1:3"], "cannot go together"),
        ([], "Missing the model or image"),
    ],
)
def test_bad_input_is_one_sentence(tmp_path, monkeypatch, args, says):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["deploy", "k8s", *args])
    assert says in assert_one_error(result)
    assert not (tmp_path / "k8s").exists()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["products:1", "--namespace", "A"], "`A` cannot name a Kubernetes namespace"),
        ([], "Missing the model or image"),
    ],
)
def test_kserve_bad_input_is_one_sentence(tmp_path, monkeypatch, args, says):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["deploy", "kserve", *args])
    assert says in assert_one_error(result)
    assert not (tmp_path / "inferenceservice.yaml").exists()


@pytest.mark.parametrize("args", [["--replicas", "0"], ["--replicas", "many"]])
def test_values_the_options_refuse_are_one_sentence(tmp_path, monkeypatch, args):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["deploy", "k8s", "products:1", *args])
    assert "--replicas" in assert_one_error(result, code=2)


@pytest.mark.parametrize("command", ["k8s", "kserve"])
def test_apply_without_kubectl_is_one_sentence(tmp_path, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    result = CliRunner().invoke(app, ["deploy", command, "products:1", "--apply"])
    assert "`kubectl` is not installed" in assert_one_error(result)
    assert list(tmp_path.iterdir()) == []  # said before anything is written


def _kubectl() -> str:
    import shutil

    path = shutil.which("kubectl")
    if path is None:
        unavailable("kubectl is not installed (scripts/test-infra installs it)")
    return path


@pytest.mark.parametrize("config", ["missing", "empty", "no-context"])
@pytest.mark.parametrize("command", ["k8s", "kserve"])
def test_apply_without_a_cluster_is_one_sentence(tmp_path, monkeypatch, command, config):
    _kubectl()
    kubeconfig = tmp_path / "config"
    if config == "empty":
        kubeconfig.write_text("")
    elif config == "no-context":
        kubeconfig.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\n")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.kube/config of the machine's
    result = CliRunner().invoke(app, ["deploy", command, "products:1", "--apply"])
    assert "No Kubernetes cluster is configured" in assert_one_error(result)
    assert list(Path(work).iterdir()) == []
