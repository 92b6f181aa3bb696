"""`cais run`, `cais ps`, `cais logs`, `cais stop`: containers, as with `docker run`."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from cais.errors import CaisError
from cais.output import LayerDisplay, note, out, success

__all__ = ["logs", "ps", "run", "stop"]


def run(
    image: Annotated[str, typer.Argument(help="Image to run, name:tag.")],
    command: Annotated[
        list[str] | None, typer.Argument(help="Command to run instead of the image's (after --).")
    ] = None,
    publish: Annotated[
        list[str] | None, typer.Option("-p", "--publish", help="HOST:CONTAINER port, e.g. 8080:80.")
    ] = None,
    volume: Annotated[
        list[str] | None,
        typer.Option(
            "-v",
            "--volume",
            help="HOST_FOLDER:/container/path[:ro]; made writable for the image's user.",
        ),
    ] = None,
    env: Annotated[
        list[str] | None, typer.Option("-e", "--env", help="KEY=VALUE (KEY alone: from here).")
    ] = None,
    env_file: Annotated[
        list[Path] | None, typer.Option("--env-file", help="File of KEY=VALUE lines.")
    ] = None,
    interactive: Annotated[
        bool, typer.Option("-i", "--interactive", help="Keep standard input open.")
    ] = False,
    tty: Annotated[
        bool, typer.Option("-t", "--tty", help="Give the container a terminal.")
    ] = False,
    detach: Annotated[bool, typer.Option("-d", "--detach", help="Run in the background.")] = False,
    name: Annotated[str | None, typer.Option("--name", help="Name of the container.")] = None,
    rm: Annotated[bool, typer.Option("--rm", help="Remove the container when it exits.")] = False,
) -> None:
    """Run an image in a container (as `docker run`); its output streams here."""
    from cais.engine.client import connect, docker_cli
    from cais.engine.containers import (
        RunOptions,
        interactive_command,
        prepare_bind_mounts,
        run_container,
        wait_attached,
    )

    options = RunOptions(
        image=image,
        command=list(command or []),
        publish=list(publish or []),
        volumes=list(volume or []),
        env=list(env or []),
        env_files=list(env_file or []),
        name=name,
        detach=detach,
        remove=rm,
    )
    client = connect()
    _ensure_image(client, image)
    if interactive or tty:
        if detach:
            raise CaisError("`--detach` and `-i`/`-t` do not go together", hint="choose one")
        cli = docker_cli()
        if cli is None:
            raise CaisError(
                "An interactive session needs the docker CLI, which is not installed",
                hint="install it (Debian: `apt-get install docker.io`), or run without -i/-t",
            )
        _, user, fixes = prepare_bind_mounts(client, options)
        _report_fixes(fixes)
        args = interactive_command(options, cli, user)
        sys.stdout.flush()
        os.execv(cli, args)
    container, fixes = run_container(client, options)
    _report_fixes(fixes)
    if detach:
        success(f"Started `{container.name}` ({container.short_id}) from `{image}`")
        note(
            f"follow its output with `cais logs -f {container.name}`, stop it with `cais stop {container.name}`"
        )
        out.print(container.name, markup=False)
        return
    code = wait_attached(container, remove=rm)
    if code:
        raise typer.Exit(code)


def _ensure_image(client, image: str) -> None:
    """Pull an image that is not in the engine yet, as `docker run` does, with progress."""
    from cais.engine.images import image_exists, pull

    if image_exists(client, image):
        return
    note(f"`{image}` is not in the engine; pulling it")
    with LayerDisplay() as display:
        pull(client, image, display)


def _report_fixes(fixes) -> None:
    for fix in fixes:
        note(f"`{fix.path}`: {fix.action}")


def ps(
    all: Annotated[bool, typer.Option("-a", "--all", help="Show stopped containers too.")] = False,
) -> None:
    """List containers."""
    from cais.engine.client import connect
    from cais.engine.containers import list_containers

    containers = list_containers(connect(), all=all)
    table = Table(box=None, header_style="bold")
    for column in ("NAME", "IMAGE", "STATUS", "PORTS", "ID"):
        table.add_column(column)
    for c in containers:
        table.add_row(c.name, c.image, c.status, c.ports, c.id)
    out.print(table)


def logs(
    name: Annotated[str, typer.Argument(help="Container name or id.")],
    follow: Annotated[
        bool, typer.Option("-f", "--follow", help="Keep following new output.")
    ] = False,
) -> None:
    """Print a container's output."""
    from cais.engine.client import connect
    from cais.engine.containers import follow_logs

    for chunk in follow_logs(connect(), name, follow=follow):
        sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()


def stop(
    names: Annotated[list[str], typer.Argument(help="Container names or ids.")],
    time: Annotated[int, typer.Option("-t", "--time", help="Seconds to wait before killing.")] = 10,
) -> None:
    """Stop running containers."""
    from cais.engine.client import connect
    from cais.engine.containers import stop_container

    client = connect()
    for name in names:
        stop_container(client, name, timeout=time)
        success(f"Stopped `{name}`")
