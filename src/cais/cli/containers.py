"""`cais run`, `cais ps`, `cais logs`, `cais stop`, `cais rm`, `cais exec`: containers, as
with `docker run`."""

import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cais.cli._each import each
from cais.cli._listing import Format, print_listing
from cais.errors import CaisError, ContainerStartError
from cais.output import LayerDisplay, note, out, success

if TYPE_CHECKING:
    from cais.engine.containers import RunOptions

__all__ = ["exec", "logs", "ps", "rm", "run", "stop"]


def run(
    image: Annotated[str, typer.Argument(metavar="IMAGE", help="Image to run, name:tag.")],
    command: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="COMMAND",
            help="Command to run instead of the image's: everything after IMAGE, its options "
            "included (options of `cais run` go before IMAGE).",
        ),
    ] = None,
    publish: Annotated[
        list[str] | None,
        typer.Option(
            "-p", "--publish", metavar="HOST:CONTAINER", help="Publish a port, e.g. 8080:80."
        ),
    ] = None,
    volume: Annotated[
        list[str] | None,
        typer.Option(
            "-v",
            "--volume",
            metavar="HOST:CONTAINER[:ro]",
            help="Mount a host folder or file, e.g. ./out:/data; a missing folder is created.",
        ),
    ] = None,
    env: Annotated[
        list[str] | None,
        typer.Option(
            "-e", "--env", metavar="KEY=VALUE", help="Set a variable (KEY alone: from here)."
        ),
    ] = None,
    env_file: Annotated[
        list[Path] | None,
        typer.Option("--env-file", metavar="FILE", help="File of KEY=VALUE lines."),
    ] = None,
    interactive: Annotated[
        bool, typer.Option("-i", "--interactive", help="Keep standard input open (pipes work).")
    ] = False,
    tty: Annotated[
        bool, typer.Option("-t", "--tty", help="Give the container a terminal.")
    ] = False,
    detach: Annotated[bool, typer.Option("-d", "--detach", help="Run in the background.")] = False,
    name: Annotated[
        str | None, typer.Option("--name", metavar="NAME", help="Name of the container.")
    ] = None,
    rm: Annotated[bool, typer.Option("--rm", help="Remove the container when it exits.")] = False,
) -> None:
    """Run an image in a container (as `docker run --init`); its output streams here.

    As with `docker run`: options first, then IMAGE, then the command and its arguments."""
    from cais.engine.containers import RunOptions

    options = RunOptions(
        image=image,
        command=_command(command),
        publish=list(publish or []),
        volumes=list(volume or []),
        env=list(env or []),
        env_files=list(env_file or []),
        name=name,
        detach=detach,
        remove=rm,
    )
    try:
        _run(options, interactive=interactive, tty=tty)
    except CaisError as exc:
        # As `docker run`: 125 when it fails itself; 126 and 127 are the command's own.
        if not isinstance(exc, ContainerStartError):
            exc.exit_code = 125
        raise


def _run(options: "RunOptions", *, interactive: bool, tty: bool) -> None:
    from cais.engine.client import connect
    from cais.engine.containers import (
        create_container,
        interactive_command,
        prepare_mounts,
        run_attached,
        start_container,
    )
    from cais.registry.reference import parse_reference

    image = options.image
    parse_reference(image)
    if (interactive or tty) and options.detach:
        raise CaisError("`--detach` and `-i`/`-t` do not go together", hint="choose one")
    client = connect()
    _ensure_image(client, image)
    mounts = prepare_mounts(client, options)
    for line in mounts.notes:
        note(line)
    if interactive or tty:
        cli = _docker_cli()
        args = interactive_command(options, cli, mounts, tty=tty)
        sys.stdout.flush()
        os.execv(cli, args)
    container = create_container(client, options, mounts)
    if not options.detach:
        code = run_attached(client, container, options)
        if code:
            raise typer.Exit(code)
        return
    start_container(container, options)
    success(f"Started `{container.name}` ({container.short_id}) from `{image}`")
    note(
        f"follow its output with `cais logs -f {container.name}`, stop it with `cais stop {container.name}`"
    )
    out.print(container.name, markup=False)


def _command(args: list[str] | None) -> list[str]:
    """The command given after the image or container: `cais run IMAGE -- CMD` reads as well
    as `cais run IMAGE CMD`."""
    args = list(args or [])
    return args[1:] if args[:1] == ["--"] else args


def _docker_cli() -> str:
    from cais.engine.client import docker_cli

    cli = docker_cli()
    if cli is None:
        raise CaisError(
            "An interactive session needs the docker CLI, which is not installed",
            hint="install it (Debian: `apt-get install docker.io`), or run without -i/-t",
        )
    return cli


def _ensure_image(client, image: str) -> None:
    """Pull an image that is not in the engine yet, as `docker run` does, with progress."""
    from cais.engine.images import image_exists, pull

    if image_exists(client, image):
        return
    note(f"`{image}` is not in the engine; pulling it")
    with LayerDisplay() as display:
        pull(client, image, display)


def ps(
    all: Annotated[bool, typer.Option("-a", "--all", help="Show stopped containers too.")] = False,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Only the ids.")] = False,
    format: Annotated[
        Format, typer.Option("--format", metavar="table|json", help="Output format.")
    ] = Format.table,
) -> None:
    """List containers: status with exit code, health and uptime."""
    from cais.engine.client import connect
    from cais.engine.containers import list_containers

    containers = list_containers(connect(), all=all)
    print_listing(
        [asdict(c) for c in containers],
        ("NAME", "IMAGE", "STATUS", "PORTS", "ID"),
        ((c.name, c.image, c.status, c.ports, c.id) for c in containers),
        quiet=quiet,
        format=format,
    )


def logs(
    name: Annotated[str, typer.Argument(metavar="CONTAINER", help="Container name or id.")],
    follow: Annotated[
        bool, typer.Option("-f", "--follow", help="Keep following new output.")
    ] = False,
) -> None:
    """Print a container's output (its stderr to stderr)."""
    from cais.engine.client import connect
    from cais.engine.containers import copy_logs

    copy_logs(connect(), name, follow=follow)


def stop(
    names: Annotated[
        list[str], typer.Argument(metavar="CONTAINER...", help="Container names or ids.")
    ],
    time: Annotated[
        int, typer.Option("-t", "--time", metavar="SECONDS", help="Seconds to wait before killing.")
    ] = 10,
) -> None:
    """Stop running containers; each is reported, and a failure does not stop the others."""
    from cais.engine.client import connect
    from cais.engine.containers import stop_container

    client = connect()
    each(names, lambda name: stop_container(client, name, timeout=time), "Stopped `{}`")


def rm(
    names: Annotated[
        list[str], typer.Argument(metavar="CONTAINER...", help="Container names or ids.")
    ],
    force: Annotated[bool, typer.Option("-f", "--force", help="Stop running ones first.")] = False,
) -> None:
    """Remove containers; each is reported, and a failure does not stop the others."""
    from cais.engine.client import connect
    from cais.engine.containers import remove_container

    client = connect()
    each(names, lambda name: remove_container(client, name, force=force), "Removed `{}`")


def exec(
    name: Annotated[str, typer.Argument(metavar="CONTAINER", help="Container name or id.")],
    command: Annotated[
        list[str],
        typer.Argument(metavar="COMMAND...", help="Command to run, its options included."),
    ],
    interactive: Annotated[
        bool, typer.Option("-i", "--interactive", help="Keep standard input open (pipes work).")
    ] = False,
    tty: Annotated[bool, typer.Option("-t", "--tty", help="Give the command a terminal.")] = False,
) -> None:
    """Run a command in a running container (as `docker exec`)."""
    from cais.engine.client import connect
    from cais.engine.containers import exec_command, exec_in, running_container

    command = _command(command)
    client = connect()
    if interactive or tty:
        running_container(client, name)
        cli = _docker_cli()
        args = exec_command(name, command, cli, tty=tty)
        sys.stdout.flush()
        os.execv(cli, args)
    code = exec_in(client, name, command)
    if code:
        raise typer.Exit(code)


# As `docker run` and `docker exec`: what follows the image or the container's name is the
# command, its options included.
run.context_settings = {"allow_interspersed_args": False}  # type: ignore[attr-defined]
exec.context_settings = {"allow_interspersed_args": False}  # type: ignore[attr-defined]
