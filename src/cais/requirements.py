"""The files a project declares its packages in: requirement files, with the files they
include (`-r`, `-c`) and the local packages they name (`./mypkg`), and lock files.

Each requirement file is read with pip's own parser (pip-requirements-parser), one file at a
time, so that cais can follow the includes itself: every file the install reads must be in
the build context and in the dependency layer's COPY, or the layer cache would miss a change.
Packages from the web (`https://…/x.whl`, `name @ https://…`) are pip's to download; those
from version control (`git+https://…`) need git in the image, which the slim Python base
images do not have, so they are refused in one sentence unless the project names its own
base image.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import Enum
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit
from urllib.request import url2pathname

import tomllib

from cais.errors import ProjectError

__all__ = [
    "LockFile",
    "RequirementFiles",
    "check_packages",
    "find_lock_file",
    "lock_sources",
    "read_requirements",
]


class LockFile(str, Enum):
    """Lock files cais installs as locked (the value is the file's name)."""

    UV = "uv.lock"
    POETRY = "poetry.lock"


# Lock and environment files of other tools: what they are, and what to do instead.
_UNSUPPORTED = {
    "Pipfile.lock": ("a Pipenv lock file", "`pipenv requirements > requirements.txt`"),
    "Pipfile": ("a Pipenv file", "`pipenv requirements > requirements.txt`"),
    "pdm.lock": ("a PDM lock file", "`pdm export -o requirements.txt`"),
    "pixi.lock": ("a pixi lock file", "list the packages in requirements.txt"),
    "conda-lock.yml": ("a conda lock file", "list the pip packages in requirements.txt"),
    "environment.yml": ("a conda environment", "list the pip packages in requirements.txt"),
    "environment.yaml": ("a conda environment", "list the pip packages in requirements.txt"),
}


@dataclass(frozen=True)
class RequirementFiles:
    """What installing a requirement file needs from the project (paths relative to it)."""

    files: tuple[str, ...]  # the requirement and constraint files (the first one first), wheels
    folders: tuple[str, ...] = ()  # local packages given as folders


def read_requirements(root: Path, file: str, *, vcs_in_image: bool = False) -> RequirementFiles:
    """The requirement file `file` of the project in `root`, with everything it reaches.
    `vcs_in_image`: the project names its own base image, which may have git: requirements
    fetched from version control are then left to pip, as those from the web always are."""
    from pip_requirements_parser import InstallationError, RequirementsFile

    files: list[str] = []
    folders: list[str] = []
    first = _inside(root, root / file, f"`{file}`")
    pending: list[tuple[str, tuple[str, ...]]] = [(_relative(root, first), ())]
    while pending:
        current, chain = pending.pop(0)
        if current in files:
            continue
        files.append(current)
        try:
            parsed = RequirementsFile.from_file(str(root / current), include_nested=False)
        except (InstallationError, OSError, UnicodeDecodeError) as exc:
            raise ProjectError(
                f"`{current}` cannot be read as a requirement file: {exc}",
                hint="fix the file; pip's requirement file format is the one cais reads",
            ) from exc
        for invalid in parsed.invalid_lines:
            line = invalid.requirement_line
            # pip's reason is its message's first line: "Invalid requirement: : Expected …"
            reason = invalid.error_message.splitlines()[0].removeprefix("Invalid requirement:")
            raise ProjectError(
                f"Line {line.line_number} of `{current}` is not a valid requirement: "
                f"`{line.line.strip()}`",
                hint=f"pip reads it as: {reason.strip(' :.')}",
            )
        for option in parsed.options:
            line = option.requirement_line
            for kind in ("requirements", "constraints"):
                for name in option.options.get(kind, ()):
                    if "://" in name:
                        continue  # pip fetches it from the web itself
                    where = f"`{name}`, included by `{current}` (line {line.line_number}),"
                    target = _inside(root, (root / current).parent / name, where)
                    if not target.is_file():
                        raise ProjectError(
                            f"{where} does not exist", hint="create it, or remove that line"
                        )
                    included = _relative(root, target)
                    if included in (current, *chain):
                        cycle = " → ".join(f"`{f}`" for f in (*chain, current, included))
                        raise ProjectError(
                            f"The requirement files include each other in a cycle: {cycle}",
                            hint="remove one of those `-r`/`-c` lines",
                        )
                    pending.append((included, (*chain, current)))
        for requirement in parsed.requirements:
            link = requirement.link
            if link is None:
                continue
            line = requirement.requirement_line.line_number
            if link.is_vcs:  # git+https://…, hg+…: pip runs that tool in the image
                if not vcs_in_image:
                    written = requirement.requirement_line.line.strip()
                    where = f"`{written}`, named in `{current}` (line {line}),"
                    release = f"`{requirement.name}==VERSION`" if requirement.name else "a release"
                    raise _needs_vcs(
                        where,
                        link.scheme,
                        f"install {release} from the package index or the URL of a wheel instead",
                    )
                continue
            if link.scheme not in ("", "file"):
                continue  # https://…/x.whl, `name @ https://…`: pip downloads it
            if not (link.scheme or requirement.is_local_path):
                continue
            name = link.url
            if name.startswith("file:"):  # file:mypkg, file:///srv/pkg
                name = url2pathname(urlsplit(name).path)
            # pip finds local packages from where it runs: the project folder, in the image.
            target = _local_package(
                root, name, f"`{name}`, named in `{current}` (line {line}),", "the path"
            )
            (folders if target.is_dir() else files).append(_relative(root, target))
    return RequirementFiles(tuple(files), tuple(dict.fromkeys(folders)))


def check_packages(packages: tuple[str, ...], file: str, *, vcs_in_image: bool = False) -> None:
    """The dependencies a pyproject.toml lists: none may need a tool the image lacks (see
    `read_requirements`)."""
    from packaging.requirements import InvalidRequirement, Requirement

    for package in packages:
        try:
            requirement = Requirement(package)
        except InvalidRequirement:
            continue  # pip says what is wrong with it, in the build
        scheme = urlsplit(requirement.url or "").scheme
        if "+" in scheme and not vcs_in_image:  # git+https, hg+ssh …
            raise _needs_vcs(
                f"`{package}`, a dependency in `{file}`,",
                scheme,
                f"depend on a release from the package index (`{requirement.name}==VERSION`) "
                "or the URL of a wheel instead",
            )


def lock_sources(root: Path, lock: LockFile, *, vcs_in_image: bool = False) -> RequirementFiles:
    """The lock file with the local packages it locks (uv's `path`, `directory` and
    `editable` sources, workspace members; Poetry's `directory` and `file` sources): the
    export names them, so they are copied beside it. A package locked from a git repository
    is refused unless the base image is the project's own (see `read_requirements`)."""
    try:
        data = tomllib.loads((root / lock.value).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ProjectError(
            f"`{lock.value}` cannot be read: {exc}",
            hint=f"make it again with `{lock.name.lower()} lock`",
        ) from exc
    files: list[str] = ["pyproject.toml", lock.value]
    folders: list[str] = []
    for package in data.get("package", []):
        source = package.get("source") or {}
        repository = source.get("git") if lock is LockFile.UV else None
        if lock is LockFile.POETRY and source.get("type") == "git":
            repository = source.get("url")
        if isinstance(repository, str) and not vcs_in_image:
            raise _needs_vcs(
                f"`{package.get('name')}`, locked in `{lock.value}` from `{repository}`,",
                "git",
                f"depend on a release from the package index instead, then `{lock.name.lower()} "
                "lock` again",
            )
        if lock is LockFile.UV:
            names = [source.get(k) for k in ("path", "directory", "editable", "virtual")]
        elif source.get("type") in ("directory", "file"):
            names = [source.get("url")]
        else:
            names = []
        for name in names:
            if not isinstance(name, str) or name == ".":
                continue  # the project itself: installed with its code
            where = f"`{name}`, a local package in `{lock.value}`,"
            target = _local_package(root, name, where, "its path in pyproject.toml")
            (folders if target.is_dir() else files).append(_relative(root, target))
    return RequirementFiles(tuple(dict.fromkeys(files)), tuple(dict.fromkeys(folders)))


def find_lock_file(root: Path) -> LockFile | None:
    """The lock file of the project in `root` that cais installs, if it has one; a project
    with only another tool's lock or environment file is refused, naming it."""
    found = [lock for lock in LockFile if (root / lock.value).is_file()]
    if len(found) > 1:
        raise ProjectError(
            f"`{root}` has both `uv.lock` and `poetry.lock`, and cais cannot tell which to install",
            hint="remove the one your project no longer uses",
        )
    if found:
        return found[0]
    for name, (what, instead) in _UNSUPPORTED.items():
        if (root / name).is_file():
            raise ProjectError(
                f"`{name}` is {what}, which cais does not install",
                hint=f"write a requirements.txt instead: {instead}",
            )
    return None


def _needs_vcs(where: str, scheme: str, instead: str) -> ProjectError:
    """A package fetched from version control, which the slim Python base images cannot do."""
    tool = scheme.split("+")[0]  # the command pip runs: git+https → git, hg+ssh → hg
    return ProjectError(
        f"{where} is fetched with `{tool}`, which the slim Python base image does not have",
        hint=f"{instead}; or set `base_image:` in cais.yaml to an image that has `{tool}`",
    )


def _local_package(root: Path, name: str, where: str, what: str) -> Path:
    """The local package `name` of the project, which must reach the image."""
    if os.path.isabs(name):
        raise ProjectError(
            f"{where} is an absolute path, which does not exist inside the image",
            hint=f"make {what} relative to the project folder, such as `./mypkg`",
        )
    target = _inside(root, root / name, where)
    if not target.exists():
        raise ProjectError(f"{where} does not exist", hint=f"fix {what}")
    return target


def _inside(root: Path, path: Path, where: str) -> Path:
    resolved = Path(os.path.normpath(path.resolve()))
    if resolved != root and root not in resolved.parents:
        raise ProjectError(
            f"{where} is outside the project folder `{root}`",
            hint="only the project folder reaches the build: move it into the project",
        )
    return resolved


def _relative(root: Path, path: Path) -> str:
    return PurePosixPath(Path(os.path.normpath(path)).relative_to(root)).as_posix()
