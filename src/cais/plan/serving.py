"""The plan of an image that serves a model bundle (pure: no I/O)."""

from __future__ import annotations

import json

from packaging.utils import canonicalize_name

from cais import __version__
from cais.bundle.metadata import BundleMetadata
from cais.errors import PlanError
from cais.plan.image_plan import AppStep, Copy, DependencyStep, ImagePlan, default_base_image
from cais.server import RUNTIME_IMPORTS, RUNTIME_PYTHON_MIN
from cais.server.routes import LegacyRoute

__all__ = [
    "MODEL_DIR",
    "RUNTIME_DIR",
    "SERVING_PORT",
    "plan_bundle",
    "requirements_for",
]

MODEL_DIR = "/model"
RUNTIME_DIR = "/opt/cais"  # cais's own server code, on PYTHONPATH
SERVING_PORT = 8080


def requirements_for(metadata: BundleMetadata, runtime: dict[str, str]) -> str:
    """requirements.txt of a serving image: the model's exact stack, the extra requirements
    saved with it, then the server's own packages where the model does not pin them."""
    how = f"pinned by {metadata.pinned_by}" if metadata.pinned_by else "it was saved with"
    lines = [f"# {metadata.reference}: the packages {how}, exactly"]
    pinned = set()
    for name, version in metadata.packages.items():
        lines.append(f"{name}=={version}")
        pinned.add(canonicalize_name(name))
    if metadata.requirements:
        lines.append("# named when it was saved")
        lines += metadata.requirements
    lines.append("# the cais server")
    lines += [f"{n}=={v}" for n, v in runtime.items() if canonicalize_name(n) not in pinned]
    return "\n".join(lines) + "\n"


def plan_bundle(
    metadata: BundleMetadata,
    *,
    name: str,
    tag: str,
    python: str | None = None,
    platform: str | None = None,
    routes: list[LegacyRoute] | None = None,
) -> ImagePlan:
    """An image that serves `metadata`'s model on port 8080 with cais's server."""
    major_minor = python or ".".join(metadata.python.split(".")[:2])
    if tuple(int(p) for p in major_minor.split(".")) < RUNTIME_PYTHON_MIN:
        raise PlanError(
            f"`{metadata.reference}` needs Python {major_minor}, and cais's server needs "
            "Python 3.9 or newer",
            hint="pass --python 3.9 (or newer) when its packages install there",
        )
    artifact_sha = metadata.files.get(metadata.artifact, "")
    labels = {
        "org.opencontainers.image.title": name,
        "org.opencontainers.image.version": tag,
        "org.opencontainers.image.created": metadata.created.replace(microsecond=0)
        .isoformat()
        .replace("+00:00", "Z"),
        "dev.cais.model.name": metadata.name,
        "dev.cais.model.version": metadata.version,
        "dev.cais.model.sha256": artifact_sha,
        "dev.cais.version": __version__,
    }
    labels.update({f"dev.cais.model.metrics.{k}": f"{v:g}" for k, v in metadata.metrics.items()})
    if metadata.git_commit:
        labels["org.opencontainers.image.revision"] = metadata.git_commit
    ready = f"http://127.0.0.1:{SERVING_PORT}/health/ready"
    env = {"PYTHONPATH": RUNTIME_DIR}
    if routes:  # kept API contracts travel as settings of the server
        env["CAIS_SERVE_ROUTES"] = json.dumps(
            [r.model_dump() for r in routes], separators=(",", ":")
        )
    return ImagePlan(
        name=name,
        tag=tag,
        base_image=default_base_image(major_minor),
        python=major_minor,
        python_source=f"the Python that saved {metadata.reference}",
        platform=platform,
        env=env,
        dependencies=DependencyStep(
            files=("requirements.txt",),
            requirements="requirements.txt",
            prune=True,
            slim=True,
            # Bundles saved before cais recorded their modules keep pip's compile-everything.
            precompile=(*RUNTIME_IMPORTS, *metadata.modules) if metadata.modules else (),
        ),
        app=AppStep(
            copies=(Copy(source="cais", destination=f"{RUNTIME_DIR}/cais"),),
            byte_compile=(f"{RUNTIME_DIR}/cais",),
        ),
        model=Copy(source="model", destination=MODEL_DIR),
        entrypoint=("python", "-m", "cais.server", MODEL_DIR, "--port", str(SERVING_PORT)),
        ports=(SERVING_PORT,),
        healthcheck=(
            "python",
            "-c",
            f"import urllib.request; urllib.request.urlopen('{ready}', timeout=2)",
        ),
        labels=labels,
    )
