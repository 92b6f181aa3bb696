"""What the benchmark scripts share: running a timed command, and writing their section of
docs/benchmarks.md while leaving the others as they are."""

from __future__ import annotations

import shlex
import subprocess
import time
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


def run(
    args: list[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    check: bool = True,
    timeout: float = 1800,
) -> tuple[float, str, int]:
    """Run a command; its wall time in seconds, its output (stdout then stderr), exit code."""
    started = time.perf_counter()
    done = subprocess.run(
        args,
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        errors="replace",
        stdin=subprocess.DEVNULL,
        timeout=timeout,
    )
    seconds = time.perf_counter() - started
    output = done.stdout + done.stderr
    if check and done.returncode != 0:
        raise SystemExit(
            f"command failed ({done.returncode}): {shlex.join(args)}\n{output[-3000:]}"
        )
    return seconds, output, done.returncode
