"""The `cais` command: answers a rebuild with nothing changed before the CLI is even imported.

Starting the full command line (Typer, Rich, Pydantic, the builders) takes longer than Docker
takes to find that every step of an unchanged build is cached. So `cais build [DIR] [-t TAG]…`
first looks its inputs up in the build records (`cais.builders.record`); only when they are not
known to have built the image that the engine still holds does the real command run.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["main", "up_to_date_build"]


def main() -> None:
    if sys.argv[1:2] == ["build"] and up_to_date_build(sys.argv[2:]):
        sys.exit(0)
    from cais.cli import main as cli

    cli()


def _plain_build(args: list[str]) -> tuple[Path, tuple[str, ...]] | None:
    """(folder, tags) of `build [DIR] [-t TAG]… [-v]`; None for anything else (other options
    change the image or how it is built: the real command handles them)."""
    folder: str | None = None
    tags: list[str] = []
    rest = iter(args)
    for arg in rest:
        if arg in ("-t", "--tag"):
            tag = next(rest, None)
            if tag is None:
                return None
            tags.append(tag)
        elif arg.startswith("--tag="):
            tags.append(arg.removeprefix("--tag="))
        elif arg in ("-v", "--verbose"):
            continue
        elif arg.startswith("-") or folder is not None:
            return None
        else:
            folder = arg
    path = Path(folder or ".")
    return (path, tuple(tags)) if path.is_dir() else None


def up_to_date_build(args: list[str]) -> bool:
    """Whether `cais build ARGS` is already done; if so, say so as a build would. Anything
    unexpected means no: the real command then runs, and reports errors its own way."""
    try:
        return _up_to_date_build(args)
    except Exception:
        return False


def _up_to_date_build(args: list[str]) -> bool:
    plain = _plain_build(args)
    if plain is None:
        return False
    from cais.builders.record import fingerprint, lookup

    key = fingerprint(*plain)
    record = lookup(key) if key else None
    if record is None:
        return False
    color = sys.stderr.isatty() and not os.environ.get("NO_COLOR")
    tick = "\033[32m✓\033[0m" if color else "✓"
    tags = ", ".join(record.tags)
    print(
        f"{tick} `{tags}` ({record.image_id.removeprefix('sha256:')[:12]}) is up to date: "
        f"nothing it was built from has changed\n• run it: `cais run {record.tags[0]}`",
        file=sys.stderr,
    )
    print(record.tags[0])
    return True
