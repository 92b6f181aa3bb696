"""The plan of an image that serves a model bundle (pure: no I/O)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

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
    "model_folders",
    "pinned_union",
    "plan_bundle",
    "plan_bundles",
    "requirements_for",
]

MODEL_DIR = "/model"
RUNTIME_DIR = "/opt/cais"  # cais's own server code, on PYTHONPATH
SERVING_PORT = 8080


def requirements_for(
    metadata: BundleMetadata | Sequence[BundleMetadata], runtime: dict[str, str]
) -> str:
    """requirements.txt of a serving image: the models' exact stack, the extra requirements
    saved with them, then the server's own packages where the models do not pin them."""
    models = [metadata] if isinstance(metadata, BundleMetadata) else list(metadata)
    if len(models) == 1:
        how = f"pinned by {models[0].pinned_by}" if models[0].pinned_by else "it was saved with"
        lines = [f"# {models[0].reference}: the packages {how}, exactly"]
    else:
        lines = [f"# {', '.join(m.reference for m in models)}: the packages they pin, exactly"]
    packages = pinned_union(models)
    lines += [f"{name}=={version}" for name, version in packages.items()]
    pinned = {canonicalize_name(name) for name in packages}
    extra = list(dict.fromkeys(line for m in models for line in m.requirements))
    if extra:
        lines.append("# named when it was saved")
        lines += extra
    lines.append("# the cais server")
    lines += [f"{n}=={v}" for n, v in runtime.items() if canonicalize_name(n) not in pinned]
    return "\n".join(lines) + "\n"


def pinned_union(models: Sequence[BundleMetadata]) -> dict[str, str]:
    """Every package the models pin, at the one version they agree on (the first model's
    spelling and order first); PlanError naming each package two of them pin differently."""
    union: dict[str, str] = {}
    spelled: dict[str, str] = {}
    # package → version (as pip compares them: `1.0` is `1.0.0`) → the models pinning it
    wanted: dict[str, dict[Version | str, list[str]]] = {}
    shown: dict[Version | str, str] = {}
    for model in models:
        for name, version in model.packages.items():
            key = canonicalize_name(name)
            spelled.setdefault(key, name)
            union.setdefault(spelled[key], version)
            same = _comparable(version)
            shown.setdefault(same, version)
            wanted.setdefault(key, {}).setdefault(same, []).append(model.reference)
    conflicts = {key: versions for key, versions in wanted.items() if len(versions) > 1}
    if conflicts:
        named = "; ".join(
            f"`{spelled[key]}` "
            + ", ".join(
                f"{shown[version]} for {', '.join(f'`{r}`' for r in refs)}"
                for version, refs in versions.items()
            )
            for key, versions in conflicts.items()
        )
        raise PlanError(
            f"The models pin different versions of the same packages, so one image cannot "
            f"serve them: {named}",
            hint="build an image for each of them, or save them again with the same packages",
        )
    return union


def _comparable(version: str) -> Version | str:
    try:
        return Version(version)
    except InvalidVersion:
        return version


def model_folders(models: Sequence[BundleMetadata]) -> tuple[str, ...]:
    """Where each model is in the image: /model for one (as ever), /model/NAME-VERSION each
    for several (a folder name the server does not read: it serves what the bundle records)."""
    if len(models) == 1:
        return (MODEL_DIR,)
    return tuple(f"{MODEL_DIR}/{m.name}-{m.version}" for m in models)


def _created(metadata: BundleMetadata) -> str:
    return metadata.created.replace(microsecond=0).isoformat().replace("+00:00", "Z")


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
        "org.opencontainers.image.created": _created(metadata),
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


def plan_bundles(
    models: Sequence[BundleMetadata],
    *,
    name: str,
    tag: str,
    python: str | None = None,
    platform: str | None = None,
) -> ImagePlan:
    """An image that serves several models with one server: one Python and one stack for all
    (PlanError when they disagree, before anything is fetched), each model in its own folder."""
    if len(models) == 1:
        return plan_bundle(models[0], name=name, tag=tag, python=python, platform=platform)
    references = [m.reference for m in models]
    twice = sorted({r for r in references if references.count(r) > 1})
    if twice:
        raise PlanError(
            f"{', '.join(f'`{r}`' for r in twice)} is named more than once",
            hint="name each model once",
        )
    pythons = {m.reference: ".".join(m.python.split(".")[:2]) for m in models}
    if python is None and len(set(pythons.values())) > 1:
        each = ", ".join(f"`{r}` Python {v}" for r, v in pythons.items())
        raise PlanError(
            f"The models were saved with different Pythons ({each}), and one image has one",
            hint="choose it with `--python X.Y`, one their packages install on",
        )
    pinned_union(models)
    chosen = python or next(iter(pythons.values()))
    plan = plan_bundle(models[0], name=name, tag=tag, python=chosen, platform=platform)
    newest = max(models, key=lambda m: m.created)
    labels = {
        key: value for key, value in plan.labels.items() if not key.startswith("dev.cais.model.")
    }
    labels["org.opencontainers.image.created"] = _created(newest)
    labels["dev.cais.models"] = ",".join(f"{m.name}:{m.version}" for m in models)
    commits = {m.git_commit for m in models}
    labels.pop("org.opencontainers.image.revision", None)
    if len(commits) == 1 and None not in commits:
        labels["org.opencontainers.image.revision"] = commits.pop()
    folders = model_folders(models)
    assert plan.dependencies is not None
    modules = [module for m in models for module in m.modules]
    dependencies = plan.dependencies.model_copy(
        update={
            "precompile": tuple(dict.fromkeys((*RUNTIME_IMPORTS, *modules)))
            if all(m.modules for m in models)
            else ()
        }
    )
    return plan.model_copy(
        update={
            "python_source": f"the Python that saved {', '.join(references)}",
            "labels": labels,
            "dependencies": dependencies,
            "entrypoint": ("python", "-m", "cais.server", *folders, "--port", str(SERVING_PORT)),
        }
    )
