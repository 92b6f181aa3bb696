"""What `cais build` built from which inputs, so that a rebuild with nothing changed is a lookup.

A project build's inputs (every file of the project folder, the tags asked for, the settings
and environment that reach the Dockerfile or pip, the git commit, cais itself) are reduced to
a fingerprint of names and file stamps (mode, size, modification and change times, inode),
as git compares them. After a build, the
fingerprint is kept in the user's cache with the image id, the tags and the base image's id.
When the same fingerprint comes again and the engine still has those tags on that image and
the same base image, the image is up to date, and saying so takes a few milliseconds instead
of starting the CLI and a docker build.

A second fingerprint, the build's shape, leaves out the stamps of the files whose contents
cais never reads (the code, the data; not cais.yaml or .dockerignore): the same shape means
the same Dockerfile but for its `created` label. After a BuildKit build, how it ran (its
Dockerfile, tags, docker CLI) is kept under its shape, so that a rebuild after an edit of the
code runs docker again at once (`cais.builders.replay`).

This module is imported before the command line itself (`cais._entry`), so it uses only the
standard library, and anything unexpected means "not known to be up to date": the ordinary
build then runs, and its own layer cache decides.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import stat
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from cais import __version__

if TYPE_CHECKING:
    from cais.builders.base import BuildResult

__all__ = [
    "BUILD_ENVIRONMENT",
    "SHAPING_FILES",
    "BuildRecord",
    "Fingerprints",
    "fingerprint",
    "image_id",
    "lookup",
    "recipe_for",
    "remember",
    "remember_recipe",
    "remember_result",
]

# Settings read from the environment that change what a build makes or how pip reaches it
# (the docker CLI that runs BuildKit reads the DOCKER_ and BUILDX_ ones).
BUILD_ENVIRONMENT = (
    "DOCKER_HOST",
    "DOCKER_BUILDKIT",
    "DOCKER_CONTEXT",
    "DOCKER_CONFIG",
    "DOCKER_DEFAULT_PLATFORM",
    "BUILDX_BUILDER",
    "SOURCE_DATE_EPOCH",
    "PIP_CERT",
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "PIP_TRUSTED_HOST",
)
_CA_VARIABLES = ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")
# Settings that change where git finds the repository and its config, so the commit and origin.
_GIT_ENVIRONMENT = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_COMMON_DIR",
    "GIT_CEILING_DIRECTORIES",
    "GIT_DISCOVERY_ACROSS_FILESYSTEM",
    "GIT_CONFIG",  # and every GIT_CONFIG_… (files, count, keys and values, parameters)
)
_MAX_ENTRIES = 20_000  # a larger folder is not fingerprinted: the build decides
_KEPT_RECORDS = 200
_BUILDS = "builds.json"
_RECIPES = "recipes.json"
_ENGINE_TIMEOUT = 2.0
# What an image reference is made of (name, tag, digest); anything else is not looked up.
_REFERENCE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-/:@")


class BuildRecord(NamedTuple):
    image_id: str
    tags: tuple[str, ...]
    base_image: str
    base_id: str
    builder: str


# The files of a project whose contents cais reads to write its Dockerfile (of every other
# file only the name matters to cais; docker itself compares their contents; a lock file's
# local packages are copied beside it). In lower case: names are compared without case.
SHAPING_FILES = frozenset(
    {
        "cais.yaml",
        "pyproject.toml",
        ".python-version",
        ".dockerignore",
        "dockerfile",
        "uv.lock",
        "poetry.lock",
    }
)


class Fingerprints(NamedTuple):
    inputs: str  # everything a build reads, each file by its stamps
    shape: str  # what decides the Dockerfile cais writes: the same, less the other files' stamps


def fingerprint(folder: Path, tags: tuple[str, ...]) -> Fingerprints | None:
    """The fingerprints of building `folder` with `tags` (as given) and no other options;
    None when they cannot be taken cheaply and surely (a huge folder, an unusual git
    checkout)."""
    inputs, shape = hashlib.sha256(), hashlib.sha256()

    def feed(*values: object, shaping: bool = True) -> None:
        line = json.dumps(values).encode() + b"\n"
        inputs.update(line)
        if shaping:
            shape.update(line)

    try:
        root = folder.resolve(strict=True)
        feed(__version__, sys.version, str(root), list(tags))
        feed({name: os.environ.get(name) for name in BUILD_ENVIRONMENT})
        for name in _CA_VARIABLES:
            if os.environ.get(name):
                feed(name, _stamp(Path(os.environ[name])))
        for module in sorted(Path(__file__).resolve().parent.parent.rglob("*.py")):
            feed(str(module), _stamp(module))  # cais itself: a changed renderer, another image
        # The docker CLI's current context and buildx builder, which choose where it builds.
        docker = Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker")
        for file in (docker / "config.json", docker / "buildx" / "current"):
            feed(str(file), _stamp(file) if file.exists() else None)
        if not _feed_tree(root, feed) or not _feed_git(root, feed):
            return None
    except (OSError, ValueError):
        return None
    return Fingerprints(inputs.hexdigest(), shape.hexdigest())


def _stamp(path: Path) -> list:
    return _stat_stamp(path.stat())


def _stat_stamp(info: os.stat_result) -> list:
    """What git compares to notice a change: the change time too, which tools that restore a
    modification time (cp -p, rsync -a, tar) cannot set back."""
    return [info.st_mode, info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino]


def _feed_tree(root: Path, feed) -> bool:
    """Every entry of the folder (but the repository's own `.git` when the build leaves it
    out), in a fixed order; links by their text and by what they point to."""
    if (root / ".git").exists() and not _ignores_git(root):
        return False  # the image would hold .git: too much changes in it to follow
    seen = 0
    pending = [root]
    while pending:
        folder = pending.pop()
        with os.scandir(folder) as scan:
            entries = sorted(scan, key=lambda e: e.name)
        for entry in entries:
            seen += 1
            if seen > _MAX_ENTRIES:
                return False
            if entry.name == ".git" and folder == root:
                continue
            info = entry.stat(follow_symlinks=False)
            relative = os.path.relpath(entry.path, root)
            if entry.is_symlink():
                try:
                    target = _stat_stamp(os.stat(entry.path))  # cais.yaml -> ../shared.yaml
                except OSError:
                    target = None
                kind = None if target is None else "dir" if stat.S_ISDIR(target[0]) else "file"
                feed(relative, "link", os.readlink(entry.path), kind)
                feed(relative, target, shaping=folder == root and _shaping(entry.name))
            elif entry.is_dir(follow_symlinks=False):
                feed(relative, "dir", info.st_mode)
                pending.append(Path(entry.path))
            else:
                shaping = folder == root and _shaping(entry.name)
                feed(relative, "file")
                feed(relative, _stat_stamp(info), shaping=shaping)
    return True


def _shaping(name: str) -> bool:
    # Compared without case: on macOS and Windows file systems `Cais.yaml` is cais.yaml.
    return name.casefold() in SHAPING_FILES


def _ignores_git(root: Path) -> bool:
    """Whether the build context leaves `.git` out: cais's own ignore list does, and so does a
    project's .dockerignore that names it and re-includes nothing."""
    ignore = root / ".dockerignore"
    if not ignore.exists():
        return True
    lines = [
        line.strip() for line in ignore.read_text(encoding="utf-8", errors="replace").splitlines()
    ]
    if any(line.startswith("!") for line in lines):
        return False
    return any(line.strip("/") in (".git", ".git/**") for line in lines)


def _feed_git(root: Path, feed) -> bool:
    """The checked-out commit and the origin, which label the image: the files git keeps
    them in, found the way git finds its folder."""
    feed({k: v for k, v in os.environ.items() if k.startswith(_GIT_ENVIRONMENT)})
    for folder in (root, *root.parents):
        git = folder / ".git"
        if git.is_dir():
            break
        if git.exists():
            return False  # a worktree or submodule (`.git` is a file): leave it to git
    else:
        feed("no git")
        return True
    if (git / "reftable").exists():
        return False  # refs in git's reftable format: leave them to git
    config = git / "config"
    if config.is_file() and "[include" in config.read_text(encoding="utf-8", errors="replace"):
        return False  # settings in other files (include, includeIf): leave them to git
    head = (git / "HEAD").read_text(encoding="utf-8", errors="replace").strip()
    feed("git", str(git), head)
    for name in (
        "config",
        "packed-refs",
        head.removeprefix("ref: ") if head.startswith("ref: ") else "",
    ):
        path = git / name
        if name and path.is_file():
            feed(name, _stamp(path))
    return True


def _cache_file(name: str) -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "cais" / name


def _load(name: str = _BUILDS) -> dict[str, dict]:
    try:
        records = json.loads(_cache_file(name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return records if isinstance(records, dict) else {}


def _keep(name: str, key: str, value: dict) -> None:
    """Store `value` under `key` in the cache file `name` (the oldest entries make room)."""
    records = _load(name)
    records.pop(key, None)
    records[key] = {**value, "at": time.time()}
    kept = dict(list(records.items())[-_KEPT_RECORDS:])
    file = _cache_file(name)
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        temporary = file.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(kept), encoding="utf-8")
        os.replace(temporary, file)
    except OSError:
        pass  # a read-only cache only costs a docker build next time


def remember(key: str, record: BuildRecord) -> None:
    """Keep `record` as what `key`'s inputs built."""
    _keep(_BUILDS, key, {**record._asdict(), "tags": list(record.tags)})


def remember_result(key: str, result: BuildResult) -> None:
    """Keep what `key`'s inputs built, when its base image is known and in the engine (only
    then can a later lookup check it)."""
    if result.base_image and (base_id := image_id(result.base_image)):
        remember(
            key,
            BuildRecord(result.image_id, result.tags, result.base_image, base_id, result.builder),
        )


def remember_recipe(shape: str, recipe: dict) -> None:
    """Keep how a build of this shape ran (`cais.builders.replay` runs it again)."""
    _keep(_RECIPES, shape, recipe)


def recipe_for(shape: str) -> dict | None:
    """The recipe kept for `shape`, as it was given to `remember_recipe`."""
    found = _load(_RECIPES).get(shape)
    return found if isinstance(found, dict) else None


def lookup(key: str) -> BuildRecord | None:
    """The image `key`'s inputs built, when the engine still holds it under every one of its
    tags and its base image is the one it was built on."""
    saved = _load().get(key)
    try:
        record = BuildRecord(
            image_id=saved["image_id"],
            tags=tuple(saved["tags"]),
            base_image=saved["base_image"],
            base_id=saved["base_id"],
            builder=saved["builder"],
        )
    except (TypeError, KeyError):
        return None
    texts = [record.image_id, record.base_image, record.base_id, record.builder, *record.tags]
    if not record.tags or not all(isinstance(text, str) for text in texts):
        return None
    for tag in record.tags:
        if image_id(tag) != record.image_id:
            return None
    if image_id(record.base_image) != record.base_id:
        return None
    return record


def image_id(reference: str) -> str | None:
    """The engine's id for `reference`, or None (no such image, or no engine on a local
    socket to ask)."""
    host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    if not host.startswith("unix://") or not _REFERENCE.issuperset(reference):
        return None
    # One HTTP/1.0 request by hand: http.client would import the email package, which alone
    # takes longer than the whole lookup.
    request = f"GET /images/{reference.replace('/', '%2F')}/json HTTP/1.0\r\nHost: docker\r\n\r\n"
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(_ENGINE_TIMEOUT)
            sock.connect(host.removeprefix("unix://"))
            sock.sendall(request.encode())
            answer = b"".join(iter(lambda: sock.recv(65536), b""))
        head, _, body = answer.partition(b"\r\n\r\n")
        if head.split(b" ", 2)[1:2] != [b"200"]:
            return None
        found = json.loads(body).get("Id")
    except (OSError, ValueError, AttributeError):
        return None
    return found if isinstance(found, str) else None
