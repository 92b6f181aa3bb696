"""A rebuild after an edit of the code runs the last BuildKit build of the same shape again.

The full `cais build` loads the project, plans and renders its Dockerfile, all inside a
command line of Typer and Pydantic; for a one-line edit of a script that takes longer than
docker's own rebuild. When the build's shape (`cais.builders.record`) is one cais built before
with BuildKit, the Dockerfile it wrote then is the one it would write now, but for its
`created` label: that label is computed again, and the same docker CLI runs the same build,
with the same display, the pip settings read again from where they come from (they are never
kept), and the same record afterwards.

Only the standard library and cais's light modules are imported before the build starts;
anything unexpected before then means "no replay", and the full command runs.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from cais.builders.record import Fingerprints, recipe_for, remember_recipe

if TYPE_CHECKING:
    from cais.builders.base import BuildRequest, BuildResult
    from cais.builders.buildkit import BuildKitCLI
    from cais.project import Project

__all__ = ["keep_recipe", "replay"]

_CREATED = re.compile(r'org\.opencontainers\.image\.created="([^"]*)"')


def keep_recipe(shape: str, result: BuildResult, project: Project, cli: BuildKitCLI) -> None:
    """Keep how a BuildKit build of `project` with this shape ran. Not kept: a Dockerfile
    whose `created` label is not there exactly once, and a project whose cais.yaml names
    files the shape does not follow (see `_names_only_own_files`)."""
    if result.dockerfile_text is not None and len(_CREATED.findall(result.dockerfile_text)) != 1:
        return
    if result.dockerfile_text is None and project.dockerfile is None:
        return
    if not _names_only_own_files(project):
        return
    deps = project.dependencies
    requirements = (
        deps.file if deps.kind.value == "requirements" and project.dockerfile is None else None
    )
    if requirements and (len(deps.files) > 1 or deps.folders):
        return  # the Dockerfile follows those includes and local packages: see _plain
    from cais.builders.dockerfile import DEFAULT_DOCKERIGNORE

    remember_recipe(
        shape,
        {
            "context": str(project.path),
            "tags": list(result.tags),
            "dockerfile_text": result.dockerfile_text,
            "dockerfile": str(project.dockerfile) if project.dockerfile else None,
            "default_ignore": None if project.dockerfile else DEFAULT_DOCKERIGNORE,
            "pip": result.used_pip_settings,
            "base_image": result.base_image,
            "cli": [cli.path, cli.buildx, cli.version],
            "requirements": requirements,
        },
    )


def _names_only_own_files(project: Project) -> bool:
    """Whether the files cais.yaml names (requirements, entrypoint script) are the project's
    own, not reached through a linked folder or outside it: the build's shape follows only
    the project's own entries, and a replay must fail wherever a full build would."""
    config = project.config
    named = [config.requirements] if config.requirements else []
    if config.entrypoint and config.entrypoint[0].endswith(".py"):
        named.append(config.entrypoint[0])
    for name in named:
        path = os.path.normpath(project.path / name)
        if os.path.realpath(path) != path or not path.startswith(f"{project.path}{os.sep}"):
            return False
    return True


# A requirement line that names another file or a folder (`-r base.txt`, `./mypkg`,
# `pkg @ file:…`): the Dockerfile copies what those name, so it may differ now.
_NAMES_FILES = re.compile(r"^\s*(-|\.|/|~|file:)|@\s*file:|^[^#]*[/\\]")


def _plain(requirements: Path) -> bool:
    """Whether the requirement file still names only packages: then an edit of it changes
    the dependency layer (docker sees it) but not the Dockerfile cais writes."""
    try:
        text = requirements.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    return not any(_NAMES_FILES.search(line) for line in text.splitlines())


def replay(keys: Fingerprints, *, verbose: bool = False) -> int | None:
    """Run the build kept for `keys.shape` again, as `cais build` would report it; its exit
    code, or None when there is none to run. An error before the build starts is raised (the
    caller then runs the full command); one during or after it is reported here."""
    prepared = _prepare(keys.shape)
    if prepared is None:
        return None
    request, cli, recipe = prepared
    return _run(keys, request, cli, recipe, verbose)


def _prepare(shape: str) -> tuple[BuildRequest, BuildKitCLI, dict] | None:
    from cais.builders.base import BuildRequest
    from cais.builders.buildkit import BuildKitCLI, find_buildkit_cli
    from cais.builders.pip_settings import PipSettings, pip_settings
    from cais.engine.client import check_socket
    from cais.sources import created_label, source_date

    recipe = recipe_for(shape)
    if recipe is None:
        return None
    cli = BuildKitCLI(*recipe["cli"])
    if find_buildkit_cli() != cli:
        return None  # another docker CLI now: the full command chooses again
    context = Path(recipe["context"])
    if recipe.get("requirements") and not _plain(context / recipe["requirements"]):
        return None
    text = recipe["dockerfile_text"]
    if text is not None:
        if len(_CREATED.findall(text)) != 1:
            return None
        label = f'org.opencontainers.image.created="{created_label(source_date(context))}"'
        text = _CREATED.sub(label, text)
        recipe = {**recipe, "dockerfile_text": text}
    check_socket()
    request = BuildRequest(
        context=context,
        tags=tuple(recipe["tags"]),
        dockerfile_text=text,
        dockerfile=Path(recipe["dockerfile"]) if recipe["dockerfile"] else None,
        pip=pip_settings() if recipe["pip"] else PipSettings(),
        default_ignore=recipe["default_ignore"],
    )
    return request, cli, recipe


def _run(
    keys: Fingerprints, request: BuildRequest, cli: BuildKitCLI, recipe: dict, verbose: bool
) -> int:
    from dataclasses import replace

    from cais.builders.buildkit import BuildKitBuilder
    from cais.builders.record import remember_result
    from cais.errors import CaisError

    display = _DisplayFromFirstLine(verbose)
    try:
        with display:
            result = BuildKitBuilder(cli).build(request, display)
        from cais.output import report_built

        result = replace(result, base_image=recipe["base_image"])
        remember_result(keys.inputs, result)
        remember_recipe(keys.shape, recipe)
        report_built(result, request.pip, own_dockerfile=request.dockerfile)
    except CaisError as exc:
        from cais.output import report_error

        report_error(exc)
        return 1
    except KeyboardInterrupt:
        from cais.output import report_interrupted

        report_interrupted()
        return 130
    except Exception as exc:  # a bug: one line, as the full command reports it
        from cais.output import report_unexpected

        report_unexpected(exc)
        return 2
    return 0


class _DisplayFromFirstLine:
    """cais's build display, started by the build's first line: importing Rich then happens
    while the docker CLI is already at work, instead of before it starts."""

    def __init__(self, verbose: bool) -> None:
        self.verbose = verbose
        self.display = None

    def __enter__(self) -> _DisplayFromFirstLine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.display is not None:
            self.display.__exit__(*exc_info)

    def _shown(self):
        if self.display is None:
            from cais.output import BuildDisplay

            self.display = BuildDisplay(verbose=self.verbose).__enter__()
        return self.display

    def step(self, name: str) -> None:
        self._shown().step(name)

    def log(self, line: str) -> None:
        self._shown().log(line)
