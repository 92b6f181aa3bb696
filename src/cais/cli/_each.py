"""Commands over several names (`cais stop A B`, `cais rmi A B`): each one is reported, a
failure does not stop the others, and the exit code says whether any failed."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import typer

from cais.errors import CaisError
from cais.output import report_error, success

__all__ = ["each"]


def each(names: Iterable[str], action: Callable[[str], object], done: str) -> None:
    """Call `action` on every name; `done` is the success line, with `{}` for the name."""
    failed = False
    for name in names:
        try:
            action(name)
        except CaisError as exc:
            report_error(exc)
            failed = True
        else:
            success(done.format(name))
    if failed:
        raise typer.Exit(1)
