"""When a project's sources last changed: the image's `created` label."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

__all__ = ["created_label", "source_date"]

# Folders whose changes never reach an image (they are in every default .dockerignore).
_NOT_SOURCES = {
    ".git",
    ".hg",
    ".svn",
    ".venv",
    "venv",
    "__pycache__",
    "node_modules",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    ".ipynb_checkpoints",
    ".tox",
    ".nox",
    "data",
    "output",
}
_MAX_SCANNED = 20_000


def source_date(root: Path) -> datetime:
    """SOURCE_DATE_EPOCH when set, else the newest modification time among the project's
    files (now, for a tree too large to scan quickly)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if epoch.isdigit():
        return datetime.fromtimestamp(int(epoch), timezone.utc)
    newest = 0.0
    scanned = 0
    pending = [str(root)]
    while pending:
        with os.scandir(pending.pop()) as entries:
            for entry in entries:
                scanned += 1
                if scanned > _MAX_SCANNED:
                    return datetime.now(timezone.utc)
                if entry.is_dir(follow_symlinks=False):
                    if entry.name not in _NOT_SOURCES:
                        pending.append(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    newest = max(newest, entry.stat(follow_symlinks=False).st_mtime)
    return datetime.fromtimestamp(int(newest), timezone.utc)


def created_label(when: datetime) -> str:
    """`when` as the `org.opencontainers.image.created` label writes it (RFC 3339, seconds)."""
    return when.replace(microsecond=0).isoformat().replace("+00:00", "Z")
