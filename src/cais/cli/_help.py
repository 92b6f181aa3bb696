"""Help that reads: options show what to write (`HOST:CONTAINER`, `SECONDS`, given as their
`metavar`), arguments their name, flags nothing. Typer would add Python types beside them
(`<str>`, `<list[str]>`, `<bool>`), which say nothing to the people reading the help."""

from __future__ import annotations

import typer

__all__ = ["readable"]


def _no_type(*_: object, **__: object) -> None:
    return None


def readable(command, ctx: typer.Context) -> None:
    """Drop the type column of `command`'s arguments and flags, and of its subcommands'."""
    for param in command.get_params(ctx):
        if param.param_type_name == "argument" or getattr(param, "is_flag", False):
            param.display_type_rich = _no_type  # the one method Typer's help asks for a type
    for sub in getattr(command, "commands", {}).values():
        readable(sub, ctx)
