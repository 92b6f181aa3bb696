"""Choose the builder: for `auto`, the OCI builder when it can build the project, else the
engine's; on the engine, BuildKit through a docker CLI when one can, else the classic one."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import docker

    from cais.project import Project

from cais.builders.base import Builder, BuilderChoice
from cais.builders.dockerfile import SecretsMode
from cais.errors import BuildError

__all__ = ["docker_reason", "secrets_mode_for", "select_builder"]


def docker_reason(project: Project) -> str | None:
    """Why only the Docker builder can build `project` (for `auto`), None when the OCI builder
    can: a Dockerfile of its own, a package to build, a lock file, a local package. Decided
    from the project alone, before any layer is written; a requirement with no wheel for the
    target shows only when uv looks, and the build then falls back (`cais.cli.project`)."""
    from cais.builders.packages import check_supported
    from cais.plan import plan_project

    if project.dockerfile is not None:
        return f"`{project.dockerfile.name}` is the project's own"
    plan = plan_project(project)
    if plan.app.install_project:
        return f"`{project.path.name}` is a package to build"
    if plan.dependencies is not None:
        try:
            check_supported(plan.dependencies)
        except BuildError as exc:
            return exc.message[:1].lower() + exc.message[1:]
    return None


def select_builder(
    connect: Callable[[], docker.DockerClient], choice: BuilderChoice = BuilderChoice.AUTO
) -> Builder:
    """BuildKit through a docker CLI when one can, else the engine's classic builder (only
    then is `connect` called: BuildKit builds need no Engine API client). The OCI builder
    is not one of these: it makes an Image on the host (`builders/oci.py`)."""
    # Imported here: `docker_reason` decides every `auto` build, most of which are the OCI
    # builder's and need neither.
    from cais.builders.buildkit import BuildKitBuilder, find_buildkit_cli
    from cais.builders.classic import ClassicBuilder

    if choice is BuilderChoice.OCI:
        raise ValueError("the OCI builder is made with OCIBuilder, not select_builder")
    if choice is BuilderChoice.CLASSIC:
        return ClassicBuilder(connect())
    cli = find_buildkit_cli()
    if cli is not None:
        return BuildKitBuilder(cli)
    if choice is BuilderChoice.BUILDKIT:
        raise BuildError(
            "No docker CLI that can build with BuildKit was found",
            hint="install the buildx plugin (or Debian's docker.io), or use `--builder classic`",
        )
    return ClassicBuilder(connect())


def secrets_mode_for(builder: Builder, has_pip_settings: bool) -> SecretsMode:
    if not has_pip_settings:
        return SecretsMode.NONE
    return SecretsMode.BUILDKIT if builder.name == "buildkit" else SecretsMode.STAGE
