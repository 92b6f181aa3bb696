"""`cais deploy compose`: the files that run a model where an engine is, and their start."""

from __future__ import annotations

import re
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from cais.output import note, success

__all__ = ["app"]

app = typer.Typer(
    help="Deploy a model: Compose files, applied where an engine is.", no_args_is_help=True
)

_PROJECT = re.compile(r"[a-z0-9][a-z0-9_-]*")


class Proxy(str, Enum):
    nginx = "nginx"
    none = "none"


@app.command()
def compose(
    what: Annotated[
        str | None,
        typer.Argument(
            metavar="REF|IMAGE",
            help="A saved model (name[:version]) whose image `cais build` made, or an image.",
        ),
    ] = None,
    output: Annotated[
        Path, typer.Option("--output", "-o", metavar="FILE", help="The Compose file to write.")
    ] = Path("compose.yaml"),
    proxy: Annotated[
        Proxy, typer.Option("--proxy", help="The reverse proxy in front of the API.")
    ] = Proxy.nginx,
    monitoring: Annotated[
        bool, typer.Option("--monitoring", help="Add Prometheus, scraping the API's /metrics.")
    ] = False,
    port: Annotated[
        int,
        typer.Option("--port", metavar="N", min=1, max=65535, help="Host port to publish on."),
    ] = 8080,
    memory: Annotated[
        str, typer.Option("--memory", metavar="SIZE", help="The API's memory limit (512m, 2g).")
    ] = "1g",
    name: Annotated[
        str | None,
        typer.Option("--name", metavar="NAME", help="Project name (default: the model's name)."),
    ] = None,
    start: Annotated[
        bool, typer.Option("--up", help="Start it and wait until every service is healthy.")
    ] = False,
    stop: Annotated[
        bool, typer.Option("--down", help="Stop and remove what the file at -o started.")
    ] = False,
    timeout: Annotated[
        float,
        typer.Option("--timeout", metavar="SECONDS", min=1, help="How long --up waits for health."),
    ] = 180,
) -> None:
    """Write a Compose file: the model's API, nginx in front, optionally Prometheus."""
    from cais.errors import CaisError

    if start and stop:
        raise CaisError("`--up` and `--down` cannot go together", hint="give one of them")
    if name is not None and not _PROJECT.fullmatch(name):
        raise CaisError(
            f"`{name}` cannot name a Compose project",
            hint="use lowercase letters, digits, `-` and `_`, starting with a letter or digit",
        )
    if not re.fullmatch(r"[1-9][0-9]*[kmg]?", memory.lower()):
        raise CaisError(
            f"`{memory}` is not a memory size", hint="use a number with k, m or g, such as 512m"
        )
    if stop:
        _down(output, name)
        return
    if what is None:
        raise CaisError(
            "Missing the model or image to deploy", hint="such as `cais deploy compose products:1`"
        )
    _write_and_start(what, output, proxy, monitoring, port, memory.lower(), name, start, timeout)


def _write_and_start(
    what: str,
    output: Path,
    proxy: Proxy,
    monitoring: bool,
    port: int,
    memory: str,
    name: str | None,
    start: bool,
    timeout: float,
) -> None:
    from cais.bundle.store import ModelStore
    from cais.deploy.compose import API, PROMETHEUS, PROXY, ComposeOptions, render, write
    from cais.deploy.runner import Project, preflight, up
    from cais.deploy.target import target_of
    from cais.engine.client import connect

    client = connect()
    target = target_of(client, what, ModelStore())
    options = ComposeOptions(
        project=name or _project_name(target.name),
        port=port,
        proxy=proxy is Proxy.nginx,
        monitoring=monitoring,
        memory=memory,
    )
    services = (API, *([PROXY] if options.proxy else []), *([PROMETHEUS] if monitoring else []))
    project = Project(
        file=output,
        name=options.project,
        services=services,
        port=port,
        front=PROXY if options.proxy else API,
        ready_path="/health/ready" if target.model else None,
    )
    if start:
        preflight(client, project)
    written = write(render(target, options, output.name), output.parent)
    success(f"Wrote {', '.join(str(p) for p in written)} for {target.image}")
    if not target.pinned:
        note(
            f"{target.image} was never pushed: the file names it by tag "
            f"(image id {target.image_id[:19]})"
        )
    if not start:
        note(
            f"start it with `cais deploy compose {what} -o {output} --up` or `docker-compose up -d`"
        )
        return
    up(client, project, timeout)
    success(f"{options.project} is up: http://127.0.0.1:{port}/ ({', '.join(services)} healthy)")


def _down(output: Path, name: str | None) -> None:
    from cais.deploy.compose import ENV_FILE
    from cais.deploy.runner import Project, down
    from cais.errors import DeployError

    if not output.is_file():
        raise DeployError(
            f"There is no Compose file at `{output}`",
            hint="give the file the deployment was written to with `-o FILE`",
        )
    if name is None:
        env = output.parent / ENV_FILE
        found = re.search(
            r"^COMPOSE_PROJECT_NAME=(\S+)$", env.read_text() if env.is_file() else "", re.M
        )
        name = found.group(1) if found else _project_name(output.resolve().parent.name)
    down(Project(file=output, name=name, services=(), port=0, front=""))
    success(f"{name} is down: its containers, network and volumes are removed")


def _project_name(text: str) -> str:
    """A Compose project name from a model's or folder's name (lowercase, `[a-z0-9_-]`)."""
    return re.sub(r"[^a-z0-9_-]+", "-", text.lower()).strip("-_") or "cais"
