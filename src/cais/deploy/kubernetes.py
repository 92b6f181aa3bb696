"""Kubernetes manifests for a model's API (Deployment, Service, optional HorizontalPodAutoscaler
and Ingress) and a KServe InferenceService. No I/O but `write`: the files are YAML a learner can
read, each setting that is a choice preceded by a comment saying why.

The pod runs as cais's serving images do: user 1000, never root, no privilege escalation, no
capabilities, a read-only root filesystem with a writable /tmp (the server writes nothing; a
library's scratch files go to /tmp), health on /health/ready and /health/live.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

import yaml

from cais.deploy.target import Target
from cais.registry.reference import parse_reference

__all__ = [
    "KubeOptions",
    "MANIFESTS",
    "inference_service",
    "manifests",
    "object_name",
    "write",
]

USER = 1000  # the user cais's serving images run as
HEADER = "# Written by `cais deploy"  # what marks a file as ours, to replace or remove
MANIFESTS = ("deployment.yaml", "service.yaml", "hpa.yaml", "ingress.yaml")
CPU_TARGET = 70  # % of the requested CPU at which the autoscaler adds a replica
# cais's server refuses bodies over 10 MB itself; ingress-nginx's default (1 MB) would refuse sooner.
MAX_BODY = "10m"


@dataclass(frozen=True)
class KubeOptions:
    namespace: str | None = None
    replicas: int = 1
    hpa: tuple[int, int] | None = None  # (min, max) replicas
    ingress: str | None = None  # the host the Ingress routes


def object_name(text: str) -> str:
    """A Kubernetes object name (DNS-1035 label, as Services need) from a model's name."""
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    name = re.sub(r"-{2,}", "-", name)
    if not name or not name[0].isalpha():
        name = f"model-{name}".rstrip("-")
    return name[:63].rstrip("-")


def _label_value(text: str) -> str:
    value = re.sub(r"[^A-Za-z0-9._-]+", "-", text)[:63]
    return re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", value)


def _labels(target: Target) -> dict[str, str]:
    version = target.model.split(":", 1)[1] if target.model else parse_reference(target.image).tag
    labels = {
        "app.kubernetes.io/name": object_name(target.name),
        "app.kubernetes.io/version": _label_value(version or ""),
        "app.kubernetes.io/component": "model-api",
        "app.kubernetes.io/managed-by": "cais",
    }
    return {k: v for k, v in labels.items() if v}


def _metadata(name: str, target: Target, options: KubeOptions, **more: dict) -> dict:
    metadata: dict = {"name": name}
    if options.namespace:
        metadata["namespace"] = options.namespace
    metadata["labels"] = _labels(target)
    metadata.update(more)
    return metadata


def _header(target: Target, command: str, what: str) -> list[str]:
    runs = f"the model `{target.model}`" if target.model else f"the image `{target.image}`"
    pinned = (
        "The image is named by its digest: a moved tag never changes what runs."
        if target.pinned
        else "The image was never pushed, so it has no digest: push it where the cluster pulls"
        f" from.\n# Its id: {target.image_id}"
    )
    return [f"{HEADER} {command}`: {what} of {runs}.", f"# {pinned}"]


def _probes(target: Target) -> dict:
    """Readiness gates traffic (the model is loaded); liveness restarts a hung server. An image
    cais did not build may lack the health endpoints: its port is probed instead."""
    if target.model:
        ready = {"httpGet": {"path": "/health/ready", "port": "http"}}
        live = {"httpGet": {"path": "/health/live", "port": "http"}}
    else:
        ready = live = {"tcpSocket": {"port": "http"}}
    return {
        # loading a large model takes a while: up to 5 min before liveness counts
        "startupProbe": {**live, "periodSeconds": 5, "failureThreshold": 60},
        "readinessProbe": {**ready, "periodSeconds": 5, "timeoutSeconds": 3, "failureThreshold": 2},
        "livenessProbe": {**live, "periodSeconds": 10, "timeoutSeconds": 3, "failureThreshold": 3},
    }


def _container(target: Target, name: str, env: list[dict] | None = None) -> dict:
    container: dict = {"name": name, "image": target.image}
    container["imagePullPolicy"] = "IfNotPresent"
    if env:
        container["env"] = env
    container["ports"] = [{"name": "http", "containerPort": target.port, "protocol": "TCP"}]
    container.update(_probes(target))
    container["resources"] = {
        "requests": {"cpu": "250m", "memory": "512Mi"},
        "limits": {"memory": "1Gi"},
    }
    container["securityContext"] = {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    container["volumeMounts"] = [{"name": "tmp", "mountPath": "/tmp"}]
    return container


def _pod_security() -> dict:
    return {
        "runAsNonRoot": True,
        "runAsUser": USER,
        "runAsGroup": USER,
        "fsGroup": USER,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


_TMP = [{"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}]

# Comments before keys, in the order the keys appear in the dumped YAML (a key named twice,
# such as securityContext, gets each its own in turn).
_CONTAINER_NOTES = [
    ("imagePullPolicy", "a digest never names other bytes: pull once per node"),
    ("startupProbe", "the model may take a while to load: liveness waits for the server"),
    ("readinessProbe", "no traffic until the model is loaded and answers"),
    ("livenessProbe", "a server that stops answering is restarted"),
    (
        "resources",
        "requests place the pod and drive the autoscaler; the memory limit stops a model that"
        " grows instead of the node; no CPU limit, which would throttle latency",
    ),
    ("securityContext", "nothing to escalate to, no capabilities, an immutable image"),
    ("volumeMounts", "the only writable place: scratch files of the model's libraries"),
]
_POD_NOTES = [
    ("automountServiceAccountToken", "the server never talks to the Kubernetes API"),
    ("securityContext", "the user cais's images run as; never root"),
    (
        "terminationGracePeriodSeconds",
        "on SIGTERM the server finishes the requests in flight before it exits",
    ),
]


def _deployment(target: Target, options: KubeOptions, name: str) -> str:
    labels = _labels(target)
    selector = {"app.kubernetes.io/name": labels["app.kubernetes.io/name"]}
    spec: dict = {}
    if options.hpa is None:
        spec["replicas"] = options.replicas
    spec["selector"] = {"matchLabels": selector}
    spec["strategy"] = {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    spec["template"] = {
        "metadata": {
            "labels": labels,
            "annotations": {
                "prometheus.io/scrape": "true",
                "prometheus.io/port": str(target.port),
                "prometheus.io/path": "/metrics",
            },
        },
        "spec": {
            "automountServiceAccountToken": False,
            "securityContext": _pod_security(),
            "terminationGracePeriodSeconds": 30,
            "containers": [_container(target, "api")],
            "volumes": _TMP,
        },
    }
    document = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(name, target, options),
        "spec": spec,
    }
    scaled = (
        "the replicas are the autoscaler's: none here, so an apply never resets them"
        if options.hpa
        else "change with `kubectl scale`, or let `cais deploy k8s --hpa MIN:MAX` scale it"
    )
    notes = [
        ("replicas", scaled),
        ("selector", "the name only: a new version is the same Deployment, rolled"),
        ("strategy", "a new pod is ready before an old one goes: no capacity lost"),
        ("annotations", "Prometheus's usual pod discovery scrapes /metrics"),
        *_POD_NOTES,
        *_CONTAINER_NOTES,
    ]
    if options.hpa:
        notes[:2] = [("selector", f"{notes[1][1]}; {scaled}")]
    return _commented(
        _header(target, "k8s", "the Deployment") + ["#   apply the folder: kubectl apply -f DIR"],
        document,
        notes,
    )


def _service(target: Target, options: KubeOptions, name: str) -> str:
    document = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(name, target, options),
        "spec": {
            "type": "ClusterIP",
            "selector": {"app.kubernetes.io/name": _labels(target)["app.kubernetes.io/name"]},
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }
    notes = [
        ("type", f"inside the cluster only: http://{name}/ (the Ingress, if any, opens it)"),
        ("selector", "every ready pod of the Deployment, whatever its version"),
    ]
    return _commented(_header(target, "k8s", "the Service"), document, notes)


def _hpa(target: Target, options: KubeOptions, name: str) -> str:
    low, high = options.hpa or (1, 1)
    document = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(name, target, options),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": low,
            "maxReplicas": high,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": CPU_TARGET},
                    },
                }
            ],
        },
    }
    notes = [
        (
            "metrics",
            f"a replica is added when the pods use over {CPU_TARGET}% of the CPU they request"
            " (needs the cluster's metrics-server)",
        )
    ]
    return _commented(_header(target, "k8s", "the autoscaler"), document, notes)


def _ingress(target: Target, options: KubeOptions, name: str) -> str:
    document = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": _metadata(
            name,
            target,
            options,
            annotations={"nginx.ingress.kubernetes.io/proxy-body-size": MAX_BODY},
        ),
        "spec": {
            "rules": [
                {
                    "host": options.ingress,
                    "http": {
                        "paths": [
                            {
                                "path": "/",
                                "pathType": "Prefix",
                                "backend": {"service": {"name": name, "port": {"name": "http"}}},
                            }
                        ]
                    },
                }
            ],
        },
    }
    notes = [
        ("annotations", "ingress-nginx refuses bodies over 1 MB by default; the server takes 10"),
        ("spec", "no ingressClassName: the cluster's default class serves it"),
    ]
    return _commented(_header(target, "k8s", "the Ingress"), document, notes)


def manifests(target: Target, options: KubeOptions) -> dict[str, str]:
    """The files of the deployment by name, for one folder (`kubectl apply -f DIR`)."""
    name = object_name(target.name)
    files = {
        "deployment.yaml": _deployment(target, options, name),
        "service.yaml": _service(target, options, name),
    }
    if options.hpa:
        files["hpa.yaml"] = _hpa(target, options, name)
    if options.ingress:
        files["ingress.yaml"] = _ingress(target, options, name)
    return files


def inference_service(target: Target, namespace: str | None = None) -> str:
    """A KServe InferenceService whose predictor is the cais image, speaking the V2 protocol."""
    name = object_name(target.name)
    options = KubeOptions(namespace=namespace)
    # KServe's queue-proxy scrapes the container's own /metrics and merges it with its own
    annotations = {"serving.kserve.io/enable-prometheus-scraping": "true"}
    predictor = {
        "minReplicas": 1,
        "automountServiceAccountToken": False,
        "securityContext": _pod_security(),
        "terminationGracePeriodSeconds": 30,
        "containers": [
            _container(target, "kserve-container", env=[{"name": "PROTOCOL", "value": "v2"}])
        ],
        "volumes": _TMP,
    }
    document = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": _metadata(name, target, options, annotations=annotations),
        "spec": {"predictor": predictor},
    }
    notes = [
        ("annotations", "KServe merges the server's /metrics into what Prometheus scrapes"),
        ("minReplicas", "always one up: no cold start on the first request"),
        *_POD_NOTES,
        ("containers", "KServe's name for the predictor's container is kserve-container"),
        _CONTAINER_NOTES[0],
        ("env", "KServe reads the protocol of a custom predictor from PROTOCOL: cais speaks V2"),
        *_CONTAINER_NOTES[1:],
    ]
    lines = _header(target, "kserve", "the InferenceService") + [
        "#   V2 protocol: POST /v2/models/NAME/infer through KServe's URL for it"
    ]
    return _commented(lines, document, notes)


class _Plain(yaml.SafeDumper):
    """Settings used twice (a probe, the /tmp volume) written out twice, not as YAML aliases."""

    def ignore_aliases(self, data) -> bool:
        return True


def _commented(header: list[str], document: dict, notes: list[tuple[str, str]]) -> str:
    text = yaml.dump(document, Dumper=_Plain, sort_keys=False, default_flow_style=False, width=1000)
    lines = text.splitlines()
    out = list(header)
    pending = list(notes)
    for line in lines:
        stripped = line.lstrip(" -")
        if pending and stripped.startswith(pending[0][0] + ":"):
            indent = len(line) - len(line.lstrip(" "))
            why = textwrap.wrap(pending.pop(0)[1], width=max(40, 96 - indent))
            out += [" " * indent + "# " + part for part in why]
        out.append(line)
    if pending:  # a note whose key never came: the notes and the document disagree
        raise ValueError(f"no `{pending[0][0]}` to comment on")
    return "\n".join(out) + "\n"


def write(files: dict[str, str], folder: Path) -> list[Path]:
    """Write `files` in `folder`, and remove the manifests an earlier run wrote there that this
    one does not (an autoscaler or Ingress no longer asked for), so `kubectl apply -f` of the
    folder applies exactly these."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in MANIFESTS:
        stale = folder / name
        if name not in files and stale.is_file() and stale.read_text().startswith(HEADER):
            stale.unlink()
    written = []
    for name, text in files.items():
        path = folder / name
        path.write_text(text)
        written.append(path)
    return written
