"""Build a project folder into an image: load → plan → render → build."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import docker

from cais.builders.base import BuilderChoice, BuildProgress, BuildRequest, BuildResult
from cais.builders.dockerfile import DEFAULT_DOCKERIGNORE, SecretsMode, render_dockerfile
from cais.builders.pip_settings import PipSettings
from cais.builders.select import secrets_mode_for, select_builder
from cais.plan import ImagePlan, plan_project
from cais.project import Project, load_project
from cais.registry.reference import parse_reference

__all__ = ["BuildOptions", "build_project", "dockerfile_for", "default_tag"]


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
    return builder.build(request, progress)
