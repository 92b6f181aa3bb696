"""Writing one benchmark's section of docs/benchmarks.md, leaving the others as they are."""

from __future__ import annotations

from pathlib import Path

DOC_HEADER = """# Benchmarks

Measurements of cais against the way a Docker course does the same job, on one machine, with
the baseline measured in the same run. How to run them: [benchmarks/README.md](../benchmarks/README.md).

"""


def write_section(path: Path, text: str, begin: str, end: str) -> None:
    """Replace the text between the `begin` and `end` markers (or append it)."""
    old = path.read_text(encoding="utf-8") if path.exists() else DOC_HEADER
    if begin in old and end in old:
        head, rest = old.split(begin, 1)
        tail = rest.split(end, 1)[1].lstrip("\n")
        new = head + text + ("\n" + tail if tail else "")
    else:
        new = old.rstrip("\n") + "\n\n" + text
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(new, encoding="utf-8")
