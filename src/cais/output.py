"""Terminal output: one stderr console for messages and progress, stdout for pipeable data."""

from __future__ import annotations

import os
import re
import time
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape

from cais.errors import CaisError

if TYPE_CHECKING:
    from pathlib import Path

    from rich.progress import TaskID

    from cais.builders.base import BuildResult
    from cais.builders.pip_settings import PipSettings

__all__ = [
    "BuildDisplay",
    "LayerDisplay",
    "closed_output",
    "err",
    "note",
    "out",
    "report_built",
    "report_error",
    "report_interrupted",
    "report_unexpected",
    "run_command",
    "success",
    "warning",
]

# Data (tags, paths, tables) is printed as it is, never wrapped: scripts read it from pipes.
out = Console(highlight=False, emoji=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, emoji=False)


def _ticks(text: str) -> str:
    """`code` spans in messages become bold; everything else is escaped."""
    parts = escape(text).split("`")
    return "".join(f"[bold]`{p}`[/bold]" if i % 2 else p for i, p in enumerate(parts))


def report_error(error: CaisError) -> None:
    err.print(f"[red bold]error:[/red bold] {_ticks(error.message)}")
    log_tail = getattr(error, "log_tail", None)  # a failed build's or deployment's
    if log_tail:
        err.print()
        for line in log_tail:
            err.print(f"  [dim]│[/dim] {escape(line)}")
    if error.hint:
        err.print()
        err.print(f"[cyan bold]hint:[/cyan bold] {_ticks(error.hint)}")


def report_unexpected(exc: Exception) -> None:
    """A failure cais did not foresee is a bug: one line, and how to get the traceback."""
    report_error(
        CaisError(
            f"cais failed unexpectedly: {type(exc).__name__}: {exc}",
            hint="run again with `cais --debug …` for the traceback, and report it",
        )
    )


def report_interrupted() -> None:
    err.print("[yellow]interrupted[/yellow]")


def closed_output() -> int:
    """The reader of cais's output went away (`cais ps | head -1`): end quietly, with the code
    to exit with. Python's recipe, which Rich (its `on_broken_pipe`) and click follow too:
    stdout and stderr point at /dev/null, so that nothing fails again on the way out, and 1."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    os.close(devnull)
    return 1


def report_built(result: BuildResult, pip: PipSettings, *, own_dockerfile: Path | None) -> None:
    """What a project build made and how to run it; the tag alone goes to stdout."""
    if result.used_pip_settings:
        note(f"pip used {pip.describe()}; kept out of the image")
    if own_dockerfile is not None:
        note(f"built with the project's own `{own_dockerfile.name}`")
    success(
        f"Built `{', '.join(result.tags)}` ({result.image_id[7:19]}) with {result.builder} "
        f"in {result.seconds:.1f}s"
    )
    note(f"run it: `{run_command(result.tags[0], result.ports)}`")
    out.print(result.tags[0], markup=False)


def run_command(image: str, ports: tuple[int, ...] | list[int] = ()) -> str:
    """`cais run` of an image, publishing each port it listens on to the same host port."""
    return "cais run " + "".join(f"-p {port}:{port} " for port in ports) + image


def success(text: str) -> None:
    err.print(f"[green]✓[/green] {_ticks(text)}")


def note(text: str) -> None:
    err.print(f"[dim]•[/dim] {_ticks(text)}")


def warning(text: str) -> None:
    err.print(f"[yellow bold]warning:[/yellow bold] {_ticks(text)}")


class BuildDisplay:
    """Shows each build step as it starts, with its time when it ends; `verbose` adds every
    line the steps print, otherwise only the latest one sits beside the spinner."""

    def __init__(self, *, verbose: bool = False) -> None:
        self.verbose = verbose
        self.current: str | None = None
        self.started = 0.0
        self.status = err.status("starting the build")

    def __enter__(self) -> BuildDisplay:
        if not self.verbose:
            self.status.start()
        return self

    def __exit__(self, kind, *_: object) -> None:
        self._finish(failed=kind is not None)
        self.status.stop()

    def _finish(self, failed: bool = False) -> None:
        if self.current is not None:
            mark = "[red]✗[/red]" if failed else "[green]✓[/green]"
            elapsed = time.monotonic() - self.started
            err.print(f"{mark} {escape(self.current)} [dim]{elapsed:.1f}s[/dim]")

    def step(self, name: str) -> None:
        self._finish()
        self.current = _shorten(_MOUNTS.sub("", name), 110)
        self.started = time.monotonic()
        self.status.update(escape(self.current))

    def log(self, line: str) -> None:
        if self.verbose:
            err.print(f"  [dim]│ {escape(line)}[/dim]")
        elif self.current is not None:
            self.status.update(
                f"{escape(self.current)}\n  [dim]{escape(_shorten(line, 100))}[/dim]"
            )


class LayerDisplay:
    """Per-layer bars with bytes and speed for pushes and pulls."""

    def __init__(self) -> None:
        # Imported here: builds, which start most often, have no use for the bars.
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TransferSpeedColumn,
        )

        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(bar_width=24),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=err,
            transient=False,
        )
        self.tasks: dict[str, TaskID] = {}

    def __enter__(self) -> LayerDisplay:
        self.progress.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.progress.stop()

    def __call__(self, layer: str, status: str, current: int, total: int) -> None:
        description = f"{layer[:12]} {status[:22]:<22}"
        task = self.tasks.get(layer)
        if task is None:
            if not total and status not in (
                "Layer already exists",
                "Already exists",
                "Pushed",
                "Pull complete",
            ):
                # Messages such as "Preparing" or "Waiting" add no bar until bytes move.
                return
            task = self.progress.add_task(description, total=total or None)
            self.tasks[layer] = task
        if status in (
            "Layer already exists",
            "Already exists",
            "Pushed",
            "Pull complete",
            "Download complete",
        ):
            finished = self.progress.tasks[self.tasks[layer]].total or 1
            self.progress.update(task, description=description, total=finished, completed=finished)
        else:
            self.progress.update(
                task, description=description, completed=current, total=total or None
            )


# A RUN's secret and cache mounts say nothing about what the step does.
_MOUNTS = re.compile(r"--mount=\S+\s+")


def _shorten(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"
