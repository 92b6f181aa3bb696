"""`cais doctor`: checks what the build → run → push journey needs, and says what to do."""

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from cais.errors import CaisError
from cais.output import _ticks, out

__all__ = ["doctor"]


@dataclass
class Check:
    name: str
    ok: bool | None  # None: a warning, not a failure
    detail: str
    fix: str = ""


def doctor(
    directory: Annotated[
        Path, typer.Argument(help="Project folder whose base image to check.")
    ] = Path("."),
) -> None:
    """Check the engine, BuildKit, registry logins, CA settings and the base image."""
    from cais.builders.buildkit import find_buildkit_cli
    from cais.builders.pip_settings import pip_settings
    from cais.engine.client import connect, engine_errors, engine_host
    from cais.plan import default_base_image
    from cais.project import load_project, running_python
    from cais.registry import credentials

    checks: list[Check] = []
    client = None
    try:
        client = connect(timeout=10)
        with engine_errors():
            version = client.version()
        checks.append(Check("Docker Engine", True, f"{version.get('Version')} at {engine_host()}"))
    except CaisError as exc:
        checks.append(Check("Docker Engine", False, exc.message, exc.hint or ""))
    cli = find_buildkit_cli()
    if cli:
        how = "buildx plugin" if cli.buildx else "built-in BuildKit"
        checks.append(Check("BuildKit", True, f"`{cli.path}` {cli.version} ({how})"))
    else:
        checks.append(
            Check(
                "BuildKit",
                None,
                "no docker CLI can build with BuildKit; the classic builder will be used",
                "install the buildx plugin or Debian's docker.io for faster builds with secret mounts",
            )
        )
    try:
        registries = credentials.logged_in_registries()
        for registry in registries:
            found = credentials.get(registry)
            checks.append(
                Check(
                    f"Login {registry}",
                    True if found else None,
                    f"as `{found.username}`" if found else "entry without credentials",
                    "" if found else f"`cais login {registry}`",
                )
            )
        if not registries:
            checks.append(
                Check(
                    "Registry logins",
                    None,
                    f"none in `{credentials.config_path()}`",
                    "`cais login` (Docker Hub) or `cais login REGISTRY` before `cais push`",
                )
            )
    except CaisError as exc:
        checks.append(Check("Registry logins", False, exc.message, exc.hint or ""))
    try:
        pip = pip_settings()
        detail = pip.describe() or "none set (pip inside builds uses public certificates only)"
        checks.append(Check("CA and index settings", True, detail))
    except CaisError as exc:
        checks.append(Check("CA and index settings", False, exc.message, exc.hint or ""))
    try:
        project = load_project(directory)
        python, base = (
            project.python,
            project.config.base_image or default_base_image(project.python),
        )
    except CaisError:
        python, base = running_python(), default_base_image(running_python())
    if client is not None:
        try:
            with engine_errors(image=base):
                client.images.get(base)
            checks.append(Check("Base image", True, f"`{base}` (Python {python}) is in the engine"))
        except CaisError:
            checks.append(
                Check(
                    "Base image",
                    None,
                    f"`{base}` is not in the engine yet",
                    f"the first build pulls it; or fetch it now with `cais pull {base}`",
                )
            )
    failed = False
    for check in checks:
        mark = {True: "[green]✓[/green]", False: "[red]✗[/red]", None: "[yellow]![/yellow]"}[
            check.ok
        ]
        out.print(f"{mark} [bold]{check.name}[/bold]: {_ticks(check.detail)}")
        if check.fix:
            out.print(f"    [cyan]fix:[/cyan] {_ticks(check.fix)}")
        failed |= check.ok is False
    if failed:
        raise typer.Exit(1)
