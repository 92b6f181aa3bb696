"""Where a command writes with `-o`: checked before any work is done, and a write that fails
all the same said in the same words (`cais dockerfile`, `cais deploy …`, `cais pipeline …`)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from cais.errors import CaisError

__all__ = ["check_destination", "write_file", "writing"]

_ELSEWHERE = "choose another place with `-o`"


def check_destination(path: Path, *, folder: bool = False, replace: bool = True) -> None:
    """Refuse a `path` that cannot be written: a folder where the file goes (a file where the
    folder goes, with `folder`), a path through a file, a place that is not writable; with
    `replace` False (a command that has `--force` and was not given it), a file that exists.
    Missing folders on the way are fine: the command creates them."""
    if path.exists() and path.is_dir() != folder:
        kind, wanted = (
            ("file", "folder to write the files to") if folder else ("folder", "file to write")
        )
        raise CaisError(
            f"`{path}` is a {kind}, and `-o` names the {wanted}",
            hint=f"give `-o` the path of a {'folder' if folder else 'file'}",
        )
    if path.is_file() and not replace:
        raise CaisError(
            f"`{path}` exists already",
            hint="add `--force` to replace it, or give another file with `-o`",
        )
    existing = next(p for p in (path, *path.parents) if p.exists())
    if existing != path and not existing.is_dir():
        raise CaisError(f"Cannot write `{path}`: `{existing}` is not a folder", hint=_ELSEWHERE)
    if not os.access(existing, os.W_OK):
        if existing == path:
            raise CaisError(f"`{path}` is not writable", hint=_ELSEWHERE)
        raise CaisError(f"Cannot write `{path}`: `{existing}` is not writable", hint=_ELSEWHERE)


@contextlib.contextmanager
def writing(path: Path, *, folder: bool = False) -> Iterator[None]:
    """The OSError of a write inside the block (to `path`, or to files beside or in it) as one
    sentence: the check's, when it now sees why (a file put in the way since), else the
    system's reason and the file it refused."""
    try:
        yield
    except OSError as exc:
        check_destination(path, folder=folder)
        failed = exc.filename or path
        raise CaisError(f"Cannot write `{failed}`: {exc.strerror or exc}", hint=_ELSEWHERE) from exc


def write_file(path: Path, text: str) -> None:
    """Write `text` to `path`, creating the folders on the way."""
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
