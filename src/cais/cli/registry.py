"""`cais login`, `cais logout`: registry credentials shared with the docker CLI."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from cais.errors import CaisError
from cais.output import success
from cais.registry.reference import DOCKER_HUB

__all__ = ["login", "logout"]


def login(
    registry: Annotated[
        str | None, typer.Argument(help="Registry host[:port]; Docker Hub when omitted.")
    ] = None,
    username: Annotated[
        str | None, typer.Option("-u", "--username", metavar="USER", help="User name.")
    ] = None,
    password_stdin: Annotated[
        bool,
        typer.Option("--password-stdin", help="Read the password (or token) from standard input."),
    ] = False,
) -> None:
    """Log in to a registry: the credentials are checked, then saved where docker keeps them."""
    from cais.registry import credentials
    from cais.registry.auth import verify_login
    from cais.registry.credentials import Credentials

    shown = registry or DOCKER_HUB
    if not username:
        if not sys.stdin.isatty():
            raise CaisError("A user name is needed", hint="pass `-u USER --password-stdin`")
        username = typer.prompt("Username")
    if password_stdin:
        password = sys.stdin.read().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = typer.prompt("Password", hide_input=True)
    else:
        raise CaisError("No password was given", hint="pipe it in with `--password-stdin`")
    if not password:
        raise CaisError("The password is empty", hint="pipe it in with `--password-stdin`")
    creds = Credentials(username, password)
    verify_login(registry, creds)  # refuses wrong credentials before anything is saved
    where = credentials.store(registry, creds)
    success(f"Logged in to {shown} as `{username}`; saved in {where}")


def logout(
    registry: Annotated[
        str | None, typer.Argument(help="Registry host[:port]; Docker Hub when omitted.")
    ] = None,
) -> None:
    """Forget the saved credentials of a registry."""
    from cais.registry import credentials

    shown = registry or DOCKER_HUB
    if credentials.erase(registry):
        success(f"Logged out of {shown}")
    else:
        success(f"Not logged in to {shown}; nothing to do")
