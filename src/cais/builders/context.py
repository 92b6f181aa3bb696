"""The build context: the project folder less what .dockerignore keeps out."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import IO

from cais.builders.dockerfile import DEFAULT_DOCKERIGNORE

__all__ = [
    "WRITTEN_DOCKERIGNORE",
    "context_archive",
    "context_paths",
    "excluded",
    "ignore_patterns",
]

# cais's default ignore list as the .dockerignore `cais dockerfile -o` writes into a project
# that has none, saying who wrote it and why.
WRITTEN_DOCKERIGNORE = (
    """\
# Written by cais with the Dockerfile beside it, so that `docker build` leaves out what
# `cais build` leaves out: version control and virtualenvs (large, and of this machine only),
# caches, secrets (anyone who pulls an image can read its files) and data (mount it when the
# container runs instead). Edit it as you need: cais never replaces it.
"""
    + DEFAULT_DOCKERIGNORE
)


def ignore_patterns(context: Path, default: str | None) -> list[str]:
    """The project's .dockerignore patterns, or cais's defaults when it has none."""
    own = context / ".dockerignore"
    text = own.read_text(encoding="utf-8") if own.is_file() else (default or "")
    return [
        line.strip()
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def excluded(patterns: list[str], paths: tuple[str, ...]) -> list[str]:
    """Which of `paths` (relative to the context) the ignore patterns keep out of it."""
    from docker.utils.build import PatternMatcher  # the engine's own rules, as for the archive

    matcher = PatternMatcher(patterns)
    return [path for path in paths if matcher.matches(path)]


def context_archive(
    context: Path,
    *,
    patterns: list[str],
    dockerfile_name: str,
    extra_files: dict[str, str],
) -> IO[bytes]:
    """A tar of the context (a temporary file, rewound) with generated files added."""
    # The SDK's .dockerignore matcher and tar writer follow the engine's own rules.
    from docker.utils.build import create_archive, exclude_paths

    files = sorted(exclude_paths(str(context), patterns, dockerfile=dockerfile_name))
    extra = [(name, text) for name, text in extra_files.items()]
    fileobj = tempfile.TemporaryFile()  # noqa: SIM115 (handed to the caller, who closes it)
    create_archive(root=str(context), files=files, fileobj=fileobj, extra_files=extra)
    fileobj.seek(0)
    return fileobj


def context_paths(context: Path, default: str | None) -> set[str]:
    """The files and folders of the context (relative paths) a `COPY . .` copies: those the
    project's .dockerignore (or `default`, when it has none) leaves in."""
    from docker.utils.build import exclude_paths  # the engine's own rules, as for the archive

    return set(exclude_paths(str(context), ignore_patterns(context, default)))
