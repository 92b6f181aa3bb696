"""The build context: the project folder less what .dockerignore keeps out.

Which files that is follows the Docker SDK's reading of .dockerignore (moby's rules: patterns
from the context's root, `**` across folders, `!` exceptions, the last match decides, a
matched folder keeps out what is in it), which the classic builder's archive uses. The
matching itself is done here, in a few lines checked against the SDK by the tests, because
importing the SDK costs more than a `cais dockerfile` does without it, and neither BuildKit
builds nor the OCI builder need the SDK otherwise.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import IO

from cais.builders.dockerfile import DEFAULT_DOCKERIGNORE

__all__ = [
    "WRITTEN_DOCKERIGNORE",
    "context_archive",
    "context_paths",
    "IgnoreRules",
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


class IgnoreRules:
    """.dockerignore patterns, compiled once; `.dockerignore` itself is always kept."""

    def __init__(self, patterns: list[str]) -> None:
        self._rules: list[tuple[bool, list[str], re.Pattern[str]]] = []
        for text in [*patterns, "!.dockerignore"]:
            exception = text.startswith("!")
            parts = _clean(text[1:] if exception else text)
            if parts:
                self._rules.append((exception, parts, re.compile(_translate("/".join(parts)))))

    def __repr__(self) -> str:
        return f"IgnoreRules({len(self._rules)} patterns)"

    def matches(self, path: str) -> bool:
        """Whether `path` (relative to the context, `/`-separated) is kept out."""
        parents = [part for part in os.path.dirname(path).split("/") if part and part != "."]
        matched = False
        for exception, parts, regex in self._rules:
            found = regex.match(path.lower()) is not None
            if not found and parents and len(parts) <= len(parents):
                found = regex.match("/".join(parents[: len(parts)]).lower()) is not None
            if found:
                matched = not exception
        return matched

    def kept(self, root: Path) -> set[str]:
        """The files and folders under `root` (relative paths) that are not kept out; a folder
        kept out is not entered unless an exception names something in it."""
        kept: set[str] = set()
        pending = [""]
        while pending:
            folder = pending.pop()
            for name in os.listdir(root / folder):
                path = f"{folder}/{name}" if folder else name
                out = self.matches(path)
                if not out:
                    kept.add(path)
                full = root / path
                if not full.is_dir() or full.is_symlink():
                    continue
                if out and not any(
                    exception and "/".join(parts).startswith(path)
                    for exception, parts, _ in self._rules
                ):
                    continue
                pending.append(path)
        return kept


def _clean(pattern: str) -> list[str]:
    """The pattern's path parts, as Go's filepath.Clean leaves them (no `.`, `..` applied)."""
    parts: list[str] = []
    for part in pattern.strip().split("/"):
        if part == "..":
            if parts:
                parts.pop()
        elif part and part != ".":
            parts.append(part)
    return parts


def _translate(pattern: str) -> str:
    """A regular expression for a pattern: `*` and `?` within one path part, `**` across
    parts, `[...]` classes (`[!...]` negated); case is ignored, as the SDK ignores it."""
    pattern = pattern.lower()
    out, i, n = "", 0, len(pattern)
    while i < n:
        c = pattern[i]
        i += 1
        if c == "*" and pattern[i : i + 1] == "*":
            i += 1
            if pattern[i : i + 1] == "/":
                i += 1
            out += ".*" if i >= n else "(.*/)?"
        elif c == "*":
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[":
            j = i + (pattern[i : i + 1] == "!")
            j += pattern[j : j + 1] == "]"
            j = pattern.find("]", j)
            if j < 0:
                out += "\\["
                continue
            members = pattern[i:j].replace("\\", "\\\\")
            i = j + 1
            if members.startswith("!"):
                members = "^" + members[1:]
            elif members.startswith("^"):
                members = "\\" + members
            out += f"[{members}]"
        else:
            out += re.escape(c)
    return f"^{out}$"


def excluded(patterns: list[str], paths: tuple[str, ...]) -> list[str]:
    """Which of `paths` (relative to the context) the ignore patterns keep out of it."""
    rules = IgnoreRules(patterns)
    return [path for path in paths if rules.matches(path)]


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
    # A Dockerfile is always sent to the engine: the archive keeps it, so this does too.
    return IgnoreRules([*ignore_patterns(context, default), "!Dockerfile"]).kept(context)
