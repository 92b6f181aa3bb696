"""`cais cache ls | prune`: the layer cache and the images cais holds."""

import re
from datetime import datetime, timezone
from typing import Annotated

import typer

from cais.cli._listing import Format, print_listing
from cais.errors import CaisError
from cais.output import note, success

__all__ = ["app", "parse_age"]

app = typer.Typer(
    help="The layer cache and the images cais built or pulled: list and trim.",
    no_args_is_help=True,
)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_age(text: str) -> float:
    """`90s`, `30m`, `12h`, `7d`, `2w` in seconds."""
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text)
    if not found:
        raise CaisError(
            f"`{text}` is not a duration", hint="give a number and a unit: `30m`, `12h`, `7d`, `2w`"
        )
    return float(found[1]) * _UNITS[found[2]]


def _store():
    from cais.image.blobs import BlobStore

    return BlobStore()


@app.command("ls")
def ls(
    check: Annotated[
        bool,
        typer.Option(
            "--check", help="Read every blob and check its digest (a damaged one is removed)."
        ),
    ] = False,
    format: Annotated[
        Format, typer.Option("--format", metavar="table|json", help="Output format.")
    ] = Format.table,
) -> None:
    """List what the cache holds: images by tag, layers by what made them, sizes, last use."""
    from cais.image.cache import inventory

    store = _store()
    found = inventory(store, check=check)
    print_listing(
        [
            {
                "id": entry.link.key,
                "kind": entry.kind,
                "what": entry.what,
                "size": entry.size,
                "last_used": _when(entry.used),
                "state": entry.state,
            }
            for entry in found.entries
        ],
        ("KIND", "WHAT", "SIZE", "LAST USE", "STATE"),
        (
            (entry.kind, entry.what, _size(entry.size), _when(entry.used), entry.state)
            for entry in found.entries
        ),
        quiet=False,
        format=format,
    )
    loose = (
        f"; {_size(found.loose_size)} in {found.loose} blobs no entry names" if found.loose else ""
    )
    note(f"{_size(found.total)} in `{store.root}` ({found.blobs} blobs{loose})")


@app.command()
def prune(
    older_than: Annotated[
        str | None,
        typer.Option(
            "--older-than", metavar="AGE", help="Also remove entries not used for AGE (`7d`)."
        ),
    ] = None,
    everything: Annotated[
        bool, typer.Option("--all", help="Remove everything (not while a build runs).")
    ] = False,
) -> None:
    """Remove damaged entries and blobs no entry needs; with --older-than, also the entries not
    used since; with --all, everything."""
    from cais.image.cache import prune as trim

    age = parse_age(older_than) if older_than is not None else None
    store = _store()
    done = trim(store, older_than=age, everything=everything)
    for entry in done.entries:
        why = "" if entry.state == "ok" else f" ({entry.state})"
        note(f"removed {entry.kind} {entry.what}{why}")
    success(
        f"Freed {_size(done.freed)} ({len(done.entries)} entries, {done.blobs} blobs) "
        f"from `{store.root}`"
    )


def _size(count: int) -> str:
    return f"{count / 1e6:.1f} MB"


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%d %H:%M")
