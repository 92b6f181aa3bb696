"""How `cais ps` and `cais images` print: a table for people, ids (`-q`) or a JSON array
(`--format json`) for scripts; data goes to stdout."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from enum import Enum

from cais.output import out

__all__ = ["Format", "print_listing"]


class Format(str, Enum):
    table = "table"
    json = "json"


def print_listing(
    records: Sequence[dict[str, object]],
    headers: Sequence[str],
    table_rows: Iterable[Sequence[str]],
    *,
    quiet: bool,
    format: Format,
) -> None:
    """`records` (each with an `id`) for -q and JSON; `headers` and `table_rows` for people."""
    if quiet:
        for identifier in dict.fromkeys(str(record["id"]) for record in records):
            sys.stdout.write(identifier + "\n")
    elif format is Format.json:
        sys.stdout.write(json.dumps(list(records), indent=2) + "\n")
    else:
        from rich.table import Table  # for people only: scripts and other commands skip it
        from rich.text import Text

        table = Table(box=None, header_style="bold")
        for header in headers:
            table.add_column(header)
        for row in table_rows:
            table.add_row(*(Text(cell) for cell in row))
        out.print(table)
