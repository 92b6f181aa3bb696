"""ImagePlan: what an image must contain, as pure data, and the function that makes one.

A plan is decided once (from a project today, from a model bundle later) and then rendered by a
builder; nothing in this package does I/O.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from enum import Enum

from pydantic import BaseModel, ConfigDict, Field

from cais import __version__
from cais.errors import PlanError
from cais.project import DependencyKind, Project
from cais.pysource import WebApp
from cais.requirements import LockFile
from cais.sources import created_label

__all__ = [
    "APP_DIR",
    "WEB_PORT",
    "AppStep",
    "Copy",
    "DependencyStep",
    "ImagePlan",
    "LayerKind",
    "RUNTIME_USER",
    "User",
    "default_base_image",
    "parse_platform",
    "plan_project",
]

APP_DIR = "/app"
# The port a web app is served on when cais.yaml names none: gunicorn's and uvicorn's own
# default, so the command in the image reads as their documentation does.
WEB_PORT = 8000
_PLATFORM = re.compile(r"^(linux|windows)/(amd64|arm64|arm|386|ppc64le|s390x|riscv64)(/v[5-8])?$")


class LayerKind(str, Enum):
    """The layers of an image, in build order; the model gets its own layer so a new model
    version moves only that layer."""

    DEPENDENCIES = "dependencies"
    APP = "app"
    MODEL = "model"


class User(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str = "app"
    uid: int = 1000
    gid: int = 1000

    @property
    def spec(self) -> str:
        """`uid:gid`, numeric so runtimes (Kubernetes runAsNonRoot) can see it is not root."""
        return f"{self.uid}:{self.gid}"


# uid 1000 is also the first user on most Linux hosts, which keeps bind mounts writable.
RUNTIME_USER = User()


class DependencyStep(BaseModel):
    """Install the dependencies before the code is copied, so code changes reuse this layer."""

    model_config = ConfigDict(frozen=True)

    files: tuple[str, ...]  # copied into the image first
    folders: tuple[str, ...] = ()  # local packages a requirement file names, copied too
    requirements: str | None = None  # pip install -r FILE
    packages: tuple[str, ...] = ()  # pip install PKG ... (pyproject projects)
    # Of `packages`, those cais adds because the program needs them and the project does not
    # list them (the web server): said in the Dockerfile and the build's output.
    added: tuple[str, ...] = ()
    lock: LockFile | None = None  # the packages pinned in this lock file (one of `files`)
    # pip checks the lock's hashes, but cannot hash a local package: with one, it installs
    # the locked versions without checking them.
    lock_hashes: bool = True
    # Delete what running never reads, in the same step so it never reaches a layer: the
    # packages' own test suites (numpy, scipy, scikit-learn ship tens of MB of them), Cython
    # sources and type stubs.
    prune: bool = False
    # Byte-compile only what importing these modules loads, instead of every module of every
    # package as pip does (a model server imports about half of it); missing ones are skipped.
    precompile: tuple[str, ...] = ()
    # A serving image's packages made fit on the host by the OCI builder: debugging sections
    # stripped from compiled libraries (binutils' strip, where installed) and the modules
    # byte-compiled for the image's Python (where this machine has one).
    slim: bool = False


class Copy(BaseModel):
    """One COPY from the build context into the image."""

    model_config = ConfigDict(frozen=True)

    source: str
    destination: str


class AppStep(BaseModel):
    """Copy the program (the whole context by default); optionally pip-install the project
    itself (no dependencies)."""

    model_config = ConfigDict(frozen=True)

    copies: tuple[Copy, ...] = (Copy(source=".", destination="."),)
    install_project: bool = False
    # Folders to byte-compile once copied (hash-checked .pyc files): the image's user cannot
    # write them at start-up, so without them every start compiles these modules again.
    byte_compile: tuple[str, ...] = ()


class ImagePlan(BaseModel):
    """Everything an image must contain; builders render it, they decide nothing."""

    model_config = ConfigDict(frozen=True)

    name: str
    tag: str
    base_image: str
    python: str
    python_source: str = ""
    platform: str | None = None
    workdir: str = APP_DIR
    user: User = RUNTIME_USER
    env: dict[str, str] = Field(default_factory=dict)
    dependencies: DependencyStep | None = None
    app: AppStep = AppStep()
    model: Copy | None = None  # the model, in its own last layer
    entrypoint: tuple[str, ...] = ()
    ports: tuple[int, ...] = ()
    healthcheck: tuple[str, ...] = ()  # a command (exec form) that fails when unhealthy
    labels: dict[str, str] = Field(default_factory=dict)
    # What the command does, written above CMD (such as which server serves the app).
    entrypoint_about: str | None = None
    # What the user should know about decisions cais made, and what will not work.
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def reference(self) -> str:
        return f"{self.name}:{self.tag}"

    @property
    def uses_pip(self) -> bool:
        """Whether a build runs pip at all (and so needs the pip settings)."""
        return self.dependencies is not None or self.app.install_project

    @property
    def layers(self) -> tuple[LayerKind, ...]:
        kinds = [LayerKind.DEPENDENCIES] if self.dependencies else []
        return (*kinds, LayerKind.APP, *([LayerKind.MODEL] if self.model else []))


def default_base_image(python: str) -> str:
    return f"python:{python}-slim"


def parse_platform(value: str | None) -> str | None:
    """Check a `--platform` value such as `linux/amd64` or `linux/arm/v7`."""
    if value is None:
        return None
    if not _PLATFORM.fullmatch(value):
        raise PlanError(
            f"`{value}` is not a platform cais knows",
            hint="use os/arch[/variant], such as linux/amd64 or linux/arm64",
        )
    return value


def plan_project(
    project: Project,
    *,
    name: str | None = None,
    tag: str | None = None,
    platform: str | None = None,
    created: datetime | None = None,
) -> ImagePlan:
    """The plan of the image for a script project (not one with its own Dockerfile)."""
    if project.dockerfile is not None:
        raise PlanError(
            f"`{project.path}` has its own Dockerfile, which cais builds as it is",
            hint="remove it to let cais write one",
        )
    config = project.config
    deps = project.dependencies
    files = deps.files or (deps.file,)
    if deps.kind is DependencyKind.REQUIREMENTS:
        dependencies = DependencyStep(files=files, folders=deps.folders, requirements=deps.file)
    elif deps.lock is not None:
        local = deps.folders or files[2:]  # beyond pyproject.toml and the lock
        dependencies = DependencyStep(
            files=files, folders=deps.folders, lock=deps.lock, lock_hashes=not local
        )
    elif deps.packages:
        dependencies = DependencyStep(files=files, packages=deps.packages)
    else:
        dependencies = None  # a pyproject project without dependencies, or a stdlib script
    entrypoint, ports, about, notes = project.entrypoint, tuple(config.ports), None, []
    app = project.web_app
    if app is not None:
        port = ports[0] if ports else WEB_PORT
        ports = ports or (port,)
        entrypoint = _server_command(app, port)
        about = (
            f"{app.server}, a production {app.interface.upper()} server, serves the "
            f"{app.framework} app of {app.script} on every interface of the container "
            f"(0.0.0.0), port {port}: publish it with `-p {port}:{port}`."
        )
        notes.append(
            f"`{app.script}` defines a {app.framework} app: {app.server} serves it on port {port}"
        )
        if not project.server_listed:
            dependencies = _adding(dependencies, deps.file, app.server)
            listing = deps.file or "requirements.txt"
            notes.append(
                f"`{app.server}` is not in {listing}: the image installs its newest release "
                f"(add `{app.server}` to {listing} to pin it)"
            )
    name = name or project.name
    tag = tag or project.version
    when = created or project.source_date or datetime.now(timezone.utc)
    labels = {
        "org.opencontainers.image.title": name,
        "org.opencontainers.image.version": tag,
        "org.opencontainers.image.created": created_label(when),
    }
    if project.revision:
        labels["org.opencontainers.image.revision"] = project.revision
    if project.source_url:
        labels["org.opencontainers.image.source"] = project.source_url
    labels["dev.cais.version"] = __version__
    return ImagePlan(
        name=name,
        tag=tag,
        base_image=config.base_image or default_base_image(project.python),
        python=project.python,
        python_source=project.python_source,
        platform=parse_platform(platform),
        env=dict(config.env),
        dependencies=dependencies,
        app=AppStep(install_project=deps.installable),
        entrypoint=entrypoint,
        ports=ports,
        labels=labels,
        entrypoint_about=about,
        notes=tuple(notes),
        warnings=project.warnings,
    )


def _server_command(app: WebApp, port: int) -> tuple[str, ...]:
    """gunicorn or uvicorn serving `app` on every interface, in exec form."""
    target = f"{app.module}:{app.attribute}"
    if app.server == "gunicorn":
        return ("gunicorn", "--bind", f"0.0.0.0:{port}", target + ("()" if app.factory else ""))
    factory = ("--factory",) if app.factory else ()
    return ("uvicorn", target, "--host", "0.0.0.0", "--port", str(port), *factory)


def _adding(step: DependencyStep | None, file: str, package: str) -> DependencyStep:
    """The dependency step with `package` installed too."""
    if step is None:
        return DependencyStep(files=(file,) if file else (), packages=(package,), added=(package,))
    return step.model_copy(
        update={"packages": (*step.packages, package), "added": (*step.added, package)}
    )
