"""Build a project folder into an image: load → plan → render → build."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import docker

    from cais.bundle.store import Bundle

from cais.builders.base import BuilderChoice, BuildProgress, BuildRequest, BuildResult
from cais.builders.dockerfile import DEFAULT_DOCKERIGNORE, SecretsMode, render_dockerfile
from cais.builders.pip_settings import PipSettings
from cais.builders.select import secrets_mode_for, select_builder
from cais.errors import BuildError
from cais.plan import ImagePlan, plan_project
from cais.project import Project, load_project
from cais.registry.reference import parse_reference
from cais.server.routes import LegacyRoute

__all__ = [
    "BuildOptions",
    "build_bundle",
    "build_project",
    "copy_runtime",
    "default_tag",
    "dockerfile_for",
]


@dataclass(frozen=True)
class BuildOptions:
    tags: tuple[str, ...] = ()
    platform: str | None = None
    build_args: dict[str, str] | None = None
    no_cache: bool = False
    builder: BuilderChoice = BuilderChoice.AUTO


def default_tag(project: Project) -> str:
    return f"{project.name}:{project.config.version}"


def _plan(project: Project, tags: tuple[str, ...], platform: str | None) -> ImagePlan:
    first = parse_reference(tags[0]) if tags else None
    return plan_project(
        project,
        name=first.name if first else None,
        tag=first.tag if first else None,
        platform=platform,
    )


def dockerfile_for(
    path: str | Path,
    *,
    tags: tuple[str, ...] = (),
    secrets: SecretsMode = SecretsMode.NONE,
) -> tuple[Project, str]:
    """The project and the Dockerfile cais writes for it."""
    project = load_project(path)
    return project, render_dockerfile(_plan(project, tags, None), secrets=secrets)


def build_project(
    connect: Callable[[], docker.DockerClient],
    project: Project,
    options: BuildOptions,
    progress: BuildProgress,
    pip: PipSettings,
) -> BuildResult:
    """Build a loaded project; `pip` comes from `pip_settings` (checked before the engine
    is contacted)."""
    tags = options.tags or (default_tag(project),)
    tags = tuple(str(parse_reference(tag)) for tag in tags)
    builder = select_builder(connect, options.builder)
    if project.dockerfile is not None:
        request = BuildRequest(
            context=project.path,
            tags=tags,
            dockerfile=project.dockerfile,
            platform=options.platform,
            build_args=options.build_args or {},
            no_cache=options.no_cache,
        )
        return builder.build(request, progress)
    plan = _plan(project, tags, options.platform)
    if not plan.uses_pip:
        pip = PipSettings()  # nothing to install: pass no settings at all
    text = render_dockerfile(plan, secrets=secrets_mode_for(builder, bool(pip)))
    request = BuildRequest(
        context=project.path,
        tags=tags,
        dockerfile_text=text,
        platform=plan.platform,
        build_args=options.build_args or {},
        no_cache=options.no_cache,
        pip=pip,
        default_ignore=DEFAULT_DOCKERIGNORE,
    )
    result = builder.build(request, progress)
    return replace(result, base_image=plan.base_image, dockerfile_text=text, ports=plan.ports)


# The server's own packages: what the cais server inside the image imports.
_RUNTIME_PACKAGES = (
    "starlette",
    "uvicorn",
    "httptools",  # uvicorn's fast HTTP parser: measured 9–31 % more requests/s than h11
    "prometheus-client",
    "pydantic",
    "joblib",
)


# What of cais a serving image leaves out (paths in its package): the command line and what
# only it uses, such as adopting old pickles (a unit test serves from such a copy).
_NOT_SERVED = (
    "cli",
    "templates",
    "builders",
    "engine",
    "registry",
    "plan",
    "build.py",
    "project.py",
    "__main__.py",
    "output.py",
    "sources.py",
    "bundle/adopt.py",
    "bundle/pickle_scan.py",
    "bundle/pins.py",
)


def copy_runtime(target: Path) -> None:
    """Copy what of cais serving needs (its server and bundles) into the folder `target`."""
    import shutil

    import cais

    package = Path(cais.__file__).parent
    caches = shutil.ignore_patterns("__pycache__", "*.pyc")

    def ignore(directory: str, names: list[str]) -> set[str]:
        left_out = set(caches(directory, names))
        folder = Path(directory).relative_to(package)
        left_out.update(n for n in names if (folder / n).as_posix() in _NOT_SERVED)
        return left_out

    shutil.copytree(package, target, ignore=ignore)


def _runtime_pins(
    python: str, model: dict[str, str], *, platform: str | None, pip: PipSettings
) -> dict[str, str]:
    """Exact versions of the server's packages for an image with Python `python`.

    On the Python cais runs on, the versions installed here (the ones its tests ran with);
    on another, the newest that install from wheels there, resolved together with the
    model's own pins so that nothing they share disagrees (or, when the model's pins cannot
    be resolved from the index, such as sdists or private packages, alone: pip places them)."""
    import importlib.metadata
    import platform as host

    from cais.project import running_python

    if python == running_python():
        return {name: importlib.metadata.version(name) for name in _RUNTIME_PACKAGES}
    from cais.bundle.pins import Index, Target, compile_pins
    from cais.errors import StackError

    wanted: dict[str, str | None] = {name: None for name in _RUNTIME_PACKAGES}
    if tuple(int(p) for p in python.split(".")) < (3, 10):
        wanted["eval-type-backport"] = None  # lets pydantic read `X | None` annotations
    machine = platform.split("/")[1] if platform and "/" in platform else host.machine()
    target = Target(python, machine)
    index = Index.from_settings(pip)
    try:
        resolved = compile_pins({**wanted, **model}, target, index=index)
    except StackError:
        resolved = compile_pins(wanted, target, index=index)
    from packaging.utils import canonicalize_name

    own = {canonicalize_name(name) for name in model}  # uv writes names canonical
    return {name: v for name, v in resolved.items() if canonicalize_name(name) not in own}


def build_bundle(
    connect: Callable[[], docker.DockerClient],
    bundle: Bundle,
    options: BuildOptions,
    progress: BuildProgress,
    pip: PipSettings,
    *,
    python: str | None = None,
    routes: list[LegacyRoute] | None = None,
) -> BuildResult:
    """Build an image that serves `bundle`, then prove it: the model loads inside the new
    image and predicts its recorded input example."""
    import shutil
    import tempfile

    import cais
    from cais.plan.serving import SLIMLIBS, plan_bundle, requirements_for

    # A tampered or truncated bundle, or an imported pickle that would run code nobody
    # trusted, is refused before the engine is contacted.
    bundle.verify()
    bundle.check_globals()
    metadata = bundle.metadata
    tags = options.tags or (f"{metadata.name}:{metadata.version}",)
    tags = tuple(str(parse_reference(tag)) for tag in tags)
    first = parse_reference(tags[0])
    plan = plan_bundle(
        metadata,
        name=first.name,
        tag=first.tag or metadata.version,
        python=python,
        platform=options.platform,
        routes=routes,
    )
    builder = select_builder(connect, options.builder)
    with tempfile.TemporaryDirectory(prefix="cais-serving-") as scratch:
        context = Path(scratch)
        runtime = _runtime_pins(plan.python, metadata.packages, platform=plan.platform, pip=pip)
        (context / "requirements.txt").write_text(requirements_for(metadata, runtime))
        shutil.copyfile(Path(cais.__file__).parent / "builders" / "slimlibs.py", context / SLIMLIBS)
        copy_runtime(context / "cais")
        shutil.copytree(bundle.path, context / "model")
        request = BuildRequest(
            context=context,
            tags=tags,
            dockerfile_text=render_dockerfile(plan, secrets=secrets_mode_for(builder, bool(pip))),
            platform=plan.platform,
            build_args=options.build_args or {},
            no_cache=options.no_cache,
            pip=pip,
        )
        try:
            result = builder.build(request, progress)
        except BuildError as exc:
            raise _explain_missing_wheels(exc, plan.python) from exc
    progress.step(f"[check] load {metadata.reference} in the image and predict its example")
    _prove(connect(), tags[0])
    return result


_NO_DISTRIBUTION = re.compile(
    r"No matching distribution found for ([A-Za-z0-9_.\-]+(?:[=<>!~]=?[^\s]+)?)"
)


def _explain_missing_wheels(error: BuildError, python: str) -> BuildError:
    """pip's "no matching distribution" becomes a sentence that names the packages."""
    missing = sorted(set(_NO_DISTRIBUTION.findall("\n".join(error.log_tail))))
    if not missing:
        return error
    return BuildError(
        f"{', '.join(f'`{m}`' for m in missing)} cannot be installed on Python {python}",
        step=error.step,
        log_tail=error.log_tail,
        hint="the model's packages may have no wheels for this Python: try another with "
        "`--python X.Y` (such as the one the model was trained with)",
    )


def _prove(client: docker.DockerClient, image: str) -> None:
    import docker.errors

    from cais.plan.serving import MODEL_DIR

    try:
        client.containers.run(
            image,
            ["python", "-m", "cais.server", MODEL_DIR, "--check"],
            remove=True,
            stdout=True,
            stderr=True,
        )
    except docker.errors.ContainerError as exc:
        text = (exc.stderr or b"").decode(errors="replace").strip().splitlines()
        raise BuildError(
            f"The image `{image}` was built, but the model does not work inside it",
            log_tail=text[-15:],
            hint="the model's packages may not install or run on this Python; try `--python X.Y`",
        ) from exc
