"""The `cais` command: answers a rebuild with nothing changed before the CLI is imported.

Starting the full command line (Typer, Rich, Pydantic, the builders) takes longer than Docker
takes to find that every step of an unchanged build is cached. So `cais build [DIR] [-t TAG]…`
first looks its inputs up in the build records (`cais.builders.record`), when DIR can only
mean a project folder (`cais.resolve.is_plain_project`): when they are known to have built the
image that the engine still holds, it says so. Otherwise the real command runs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from cais.resolve import is_plain_project

__all__ = ["main", "quick_build"]


def main() -> None:
    if sys.argv[1:2] == ["build"]:
        code = quick_build(sys.argv[2:])
        if code is not None:
            sys.exit(code)
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
            pass  # more lines of a build, if one runs
        elif arg.startswith("-") or folder is not None:
            return None
        else:
            folder = arg
    # Only a folder that can mean nothing but a project: a saved model or a training
    # project's model is for the real command (cais.resolve).
    if not is_plain_project(folder or "."):
        return None
    return (Path(folder or "."), tuple(tags))


def quick_build(args: list[str]) -> int | None:
    """0 when `cais build ARGS` is already done (said as a build would say it); None when the
    real command must run. Anything unexpected means None: the real command then reports
    errors its own way."""
    try:
        plain = _plain_build(args)
        if plain is None:
            return None
        from cais.builders.record import fingerprint

        folder, tags = plain
        key = fingerprint(folder, tags)
        return 0 if key is not None and _up_to_date(key) else None
    except KeyboardInterrupt:
        from cais.output import report_interrupted

        report_interrupted()
        return 130
    except BrokenPipeError:  # `cais build | head -1`: the reader went away
        from cais.output import closed_output

        return closed_output()
    except Exception:
        return None


def _up_to_date(key: str) -> bool:
    from cais.builders.record import lookup

    record = lookup(key)
    if record is None:
        return False
    color = sys.stderr.isatty() and not os.environ.get("NO_COLOR")
    tick = "\033[32m✓\033[0m" if color else "✓"
    tags = ", ".join(record.tags)
    print(
        f"{tick} `{tags}` ({record.image_id.removeprefix('sha256:')[:12]}) is up to date: "
        f"nothing it was built from has changed\n• run it: `cais run "
        + "".join(f"-p {port}:{port} " for port in record.ports)
        + f"{record.tags[0]}`",
        file=sys.stderr,
    )
    print(record.tags[0], flush=True)
    return True
