"""Build a project folder into an image: load → plan → render → build."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import docker

    from cais.builders.oci import OCIBuilder
    from cais.bundle.store import Bundle
    from cais.image.image import Image
    from cais.server.routes import LegacyRoute

from cais.builders.base import BuilderChoice, BuildProgress, BuildRequest, BuildResult
from cais.builders.dockerfile import DEFAULT_DOCKERIGNORE, SecretsMode, render_dockerfile
from cais.builders.pip_settings import (
    PIP_CA_SECRET,
    PIP_CONF_SECRET,
    PipSettings,
    mounted_pip_secrets,
)
from cais.errors import BuildError, ProjectError
from cais.plan import ImagePlan, plan_project
from cais.project import Project, load_project
from cais.registry.reference import parse_reference

__all__ = [
    "BuildOptions",
    "build_bundle",
    "build_bundle_image",
    "build_bundles_image",
    "build_image",
    "build_project",
    "copy_runtime",
    "default_tag",
    "dockerfile_for",
    "pip_settings_unused",
    "serving_dockerfile",
]


@dataclass(frozen=True)
class BuildOptions:
    tags: tuple[str, ...] = ()
    platform: str | None = None
    build_args: dict[str, str] | None = None
    no_cache: bool = False
    builder: BuilderChoice = BuilderChoice.AUTO


def default_tag(project: Project) -> str:
    return f"{project.name}:{project.version}"


def _plan(project: Project, tags: tuple[str, ...], platform: str | None) -> ImagePlan:
    first = parse_reference(tags[0]) if tags else None
    plan = plan_project(
        project,
        name=first.name if first else None,
        tag=first.tag if first else None,
        platform=platform,
    )
    _check_dependency_files(project, plan)
    return plan


def _check_dependency_files(project: Project, plan: ImagePlan) -> None:
    """The files the install step copies must be in the build context."""
    from cais.builders.context import excluded, ignore_patterns

    deps = plan.dependencies
    if deps is None:
        return
    patterns = ignore_patterns(project.path, DEFAULT_DOCKERIGNORE)
    for path in excluded(patterns, (*deps.files, *deps.folders)):
        if project.has_dockerignore:
            raise ProjectError(
                f"`{path}` is needed to install the packages, but .dockerignore keeps it out "
                "of the build",
                hint=f"add `!{path}` to .dockerignore, or remove the pattern that matches it",
            )
        raise ProjectError(
            f"`{path}` is needed to install the packages, but cais's default ignore list keeps "
            "it out of the build",
            hint="give the project a .dockerignore of its own, which replaces cais's defaults",
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
    from cais.builders.select import secrets_mode_for, select_builder

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
            pip=_own_dockerfile_pip(project.dockerfile, pip, builder.name),
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


def build_image(
    builder: OCIBuilder,
    project: Project,
    options: BuildOptions,
    progress: BuildProgress,
    pip: PipSettings,
) -> tuple[Image, ImagePlan]:
    """Build a loaded project into an image on the host (the OCI builder), and its plan;
    the tags in `options` label it, the sinks give them."""
    if project.dockerfile is not None:
        raise BuildError(
            f"`{project.dockerfile.name}` is the project's own Dockerfile, which only the "
            "Docker Engine builds",
            hint="build with `--builder docker`",
        )
    tags = tuple(str(parse_reference(tag)) for tag in options.tags or (default_tag(project),))
    plan = _plan(project, tags, options.platform)
    if not plan.uses_pip:
        pip = PipSettings()
    image = builder.build(project, plan, pip, progress)
    return _with_sbom(image, plan, progress), plan


def _with_sbom(image: Image, plan: ImagePlan, progress: BuildProgress) -> Image:
    """The image with the SBOM of its Python packages, in a layer of its own on top."""
    from cais.image.sbom import with_packages_sbom

    progress.step(f"[sbom] of the Python packages for {image.platform}")
    return with_packages_sbom(image, name=plan.name, version=plan.tag)


def _own_dockerfile_pip(dockerfile: Path, pip: PipSettings, builder: str) -> PipSettings:
    """The pip settings a project's own Dockerfile receives: as BuildKit secrets, when it
    mounts them (`RUN --mount=type=secret,id=cais-pip.conf …`); the classic builder cannot
    pass secrets, so such a Dockerfile is refused there."""
    if not pip or not mounted_pip_secrets(dockerfile.read_text(encoding="utf-8")):
        return PipSettings()  # `pip_settings_unused` tells the user when some were given
    if builder != "buildkit":
        raise BuildError(
            f"`{dockerfile.name}` mounts the pip settings as build secrets, which the classic "
            "builder cannot pass",
            hint="build with BuildKit (`--builder buildkit`, through a docker CLI that can)",
        )
    return pip


def pip_settings_unused(project: Project, pip: PipSettings) -> str | None:
    """A line for the user when pip settings are given but the project's own Dockerfile
    mounts none of them."""
    dockerfile = project.dockerfile
    if dockerfile is None or not pip:
        return None
    if mounted_pip_secrets(dockerfile.read_text(encoding="utf-8")):
        return None
    return (
        f"`{dockerfile.name}` mounts no pip settings (the build secrets `{PIP_CONF_SECRET}` and "
        f"`{PIP_CA_SECRET}`), so its pip steps run without {pip.describe()}"
    )


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
# What of cais a serving image holds: the server and the bundles it loads, nothing else (a
# list of what goes in, so that a new module of the command line never reaches an image).
_SERVED = ("__init__.py", "errors.py", "models.py", "server", "bundle")
_NOT_SERVED_IN_BUNDLE = ("adopt.py", "pickle_scan.py", "pins.py")  # imports, done on the host


def copy_runtime(target: Path) -> None:
    """Copy what of cais serving needs (its server and bundles) into the folder `target`."""
    import shutil

    import cais

    package = Path(cais.__file__).parent
    caches = shutil.ignore_patterns("__pycache__", "*.pyc")

    def ignore(directory: str, names: list[str]) -> set[str]:
        left_out = set(caches(directory, names))
        folder = Path(directory).relative_to(package).as_posix()
        if folder == ".":
            left_out.update(n for n in names if n not in _SERVED)
        elif folder == "bundle":
            left_out.update(n for n in names if n in _NOT_SERVED_IN_BUNDLE)
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


def _serving_plan(
    bundle: Bundle,
    tags: tuple[str, ...],
    *,
    python: str | None = None,
    platform: str | None = None,
    routes: list[LegacyRoute] | None = None,
) -> tuple[tuple[str, ...], ImagePlan]:
    """The tags (the model's `name:version` when none is given) and the plan of the image
    that serves `bundle`."""
    from cais.plan.serving import plan_bundle

    metadata = bundle.metadata
    tags = tags or (f"{metadata.name}:{metadata.version}",)
    tags = tuple(str(parse_reference(tag)) for tag in tags)
    first = parse_reference(tags[0])
    plan = plan_bundle(
        metadata,
        name=first.name,
        tag=first.tag or metadata.version,
        python=python,
        platform=platform,
        routes=routes,
    )
    return tags, plan


def serving_dockerfile(
    bundle: Bundle,
    *,
    tags: tuple[str, ...] = (),
    routes: list[LegacyRoute] | None = None,
    secrets: SecretsMode = SecretsMode.NONE,
) -> str:
    """The Dockerfile of the image that serves `bundle`, as `build_bundle` renders it (its
    context, the model with its packages and cais's server, is gathered by the build)."""
    _, plan = _serving_plan(bundle, tags, routes=routes)
    return render_dockerfile(plan, secrets=secrets)


def build_bundle_image(
    builder: OCIBuilder,
    bundle: Bundle,
    options: BuildOptions,
    progress: BuildProgress,
    pip: PipSettings,
    *,
    python: str | None = None,
    routes: list[LegacyRoute] | None = None,
    keep_in_engine: bool = True,
) -> tuple[Image, ImagePlan]:
    """Build an image that serves `bundle` on this machine (the OCI builder), and prove it
    before anything keeps it: the model loads inside the image and predicts its recorded
    example (in the engine when one answers, else in a scratch root here; without
    `keep_in_engine`, an image the proof loaded is removed after). The plan's notes end with
    where the proof ran; the tags in `options` label it, the sinks give them."""
    bundle.verify()  # a tampered or truncated bundle is refused before anything is built
    bundle.check_globals()
    _, plan = _serving_plan(
        bundle, options.tags, python=python, platform=options.platform, routes=routes
    )
    return _serving_image(builder, [bundle], plan, progress, pip, keep_in_engine=keep_in_engine)


def build_bundles_image(
    builder: OCIBuilder,
    bundles: list[Bundle],
    options: BuildOptions,
    progress: BuildProgress,
    pip: PipSettings,
    *,
    python: str | None = None,
    keep_in_engine: bool = True,
) -> tuple[Image, ImagePlan]:
    """Build one image that serves every bundle of `bundles` (several versions of one model
    too) with one server, as `build_bundle_image` builds one: their Pythons and pinned stacks
    must agree, which is checked before anything is fetched, and every model is proved."""
    from cais.plan.serving import plan_bundles

    if not options.tags:
        raise ValueError("an image of several models is named by its caller (`-t`)")
    reference = parse_reference(options.tags[0])
    plan = plan_bundles(
        [bundle.metadata for bundle in bundles],
        name=reference.name,
        tag=reference.tag or "latest",
        python=python,
        platform=options.platform,
    )
    for bundle in bundles:  # tampered, truncated or untrusted: refused before any build
        bundle.verify()
        bundle.check_globals()
    return _serving_image(builder, bundles, plan, progress, pip, keep_in_engine=keep_in_engine)


def _serving_image(
    builder: OCIBuilder,
    bundles: list[Bundle],
    plan: ImagePlan,
    progress: BuildProgress,
    pip: PipSettings,
    *,
    keep_in_engine: bool,
) -> tuple[Image, ImagePlan]:
    """The OCI builder's image of the serving `plan` for `bundles`, proved."""
    from cais.builders.oci import install_target
    from cais.builders.proof import prove
    from cais.image.platform import Platform
    from cais.plan.serving import model_folders, pinned_union, requirements_for

    models = [bundle.metadata for bundle in bundles]
    folders = model_folders(models)
    # A platform the OCI builder cannot install for fails before the runtime is pinned.
    install_target(plan.python, Platform.parse(plan.platform) if plan.platform else Platform.host())
    runtime = _runtime_pins(plan.python, pinned_union(models), platform=plan.platform, pip=pip)
    try:
        image = builder.build_bundle(
            dict(zip(folders, bundles, strict=True)),
            plan,
            requirements_for(models, runtime),
            pip,
            progress,
        )
    except BuildError as exc:
        if not exc.packages:
            raise
        hint = (
            "build with `--builder docker`, which compiles it inside the image, or on "
            "another Python with `--python X.Y` (such as the one the model was trained with)"
            if len(bundles) == 1
            else "build on another Python with `--python X.Y`, or an image for each model "
            "with `--builder docker`, which compiles it inside the image"
        )
        raise BuildError(exc.message, packages=exc.packages, hint=hint) from exc
    image = _with_sbom(image, plan, progress)
    references = tuple(bundle.reference for bundle in bundles)
    examples = "its example" if len(bundles) == 1 else "each one's example"
    progress.step(f"[check] load {', '.join(references)} in the image and predict {examples}")
    _, said = prove(
        image,
        references[0] if len(references) == 1 else references,
        engine=builder.engine,
        scratch=builder.store.root / "tmp",
        keep=keep_in_engine,
        folders=folders,
        candidates=[plan.base_image],
    )
    return image, plan.model_copy(update={"notes": (*plan.notes, said)})


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
    image and predicts its recorded input example. Only then is the image tagged: an image
    that fails the check is removed, and the tags stay where they were."""
    import shutil
    import tempfile

    from cais.builders.select import secrets_mode_for, select_builder
    from cais.plan.serving import requirements_for

    # A tampered or truncated bundle, or an imported pickle that would run code nobody
    # trusted, is refused before the engine is contacted.
    bundle.verify()
    bundle.check_globals()
    metadata = bundle.metadata
    tags, plan = _serving_plan(
        bundle, options.tags, python=python, platform=options.platform, routes=routes
    )
    builder = select_builder(connect, options.builder)
    with tempfile.TemporaryDirectory(prefix="cais-serving-") as scratch:
        context = Path(scratch)
        runtime = _runtime_pins(plan.python, metadata.packages, platform=plan.platform, pip=pip)
        (context / "requirements.txt").write_text(requirements_for(metadata, runtime))
        copy_runtime(context / "cais")
        shutil.copytree(bundle.path, context / "model")
        request = BuildRequest(
            context=context,
            tags=(),  # tagged after the check
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
    from cais.builders.proof import check_in_engine, discard

    progress.step(f"[check] load {metadata.reference} in the image and predict its example")
    client = connect()
    try:
        check_in_engine(client, result.image_id, metadata.reference)
    except BaseException:
        discard(client, result.image_id)
        raise
    _tag(client, result.image_id, tags)
    return replace(result, tags=tags)


def _explain_missing_wheels(error: BuildError, python: str) -> BuildError:
    """A requirement pip found nothing to install for: in a serving image these are the
    model's exact pins, so the image's Python is the likely cause."""
    if not error.packages:
        return error
    return BuildError(
        f"{', '.join(f'`{m}`' for m in error.packages)} cannot be installed on Python {python}",
        step=error.step,
        log_tail=error.log_tail,
        packages=error.packages,
        hint="the model's packages may have no wheels for this Python: try another with "
        "`--python X.Y` (such as the one the model was trained with)",
    )


def _tag(client: docker.DockerClient, image_id: str, tags: tuple[str, ...]) -> None:
    from cais.engine.client import engine_errors

    with engine_errors(image=image_id):
        image = client.images.get(image_id)
        for tag in tags:
            reference = parse_reference(tag)
            image.tag(reference.name, reference.tag)
