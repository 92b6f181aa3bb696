"""A project folder: its cais.yaml, Python version, dependencies and entrypoint.

`load_project(path)` reads a folder once and answers every question a plan needs, so nothing
after it touches the file system to decide what goes into an image.
"""

from __future__ import annotations

import json
import platform
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from pathlib import Path

import tomllib
import yaml
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cais.errors import ProjectError
from cais.pysource import (
    WebApp,
    find_web_app,
    lists_package,
    local_servers,
    parse_script,
    program_imports,
)
from cais.requirements import (
    LockFile,
    check_packages,
    find_lock_file,
    lock_sources,
    read_requirements,
)
from cais.server.routes import LegacyRoute
from cais.sources import source_date

__all__ = [
    "CONFIG_FILE",
    "DependencyKind",
    "Dependencies",
    "LegacyRoute",
    "Project",
    "ProjectConfig",
    "git_revision",
    "image_name_from",
    "load_project",
    "read_config",
    "running_python",
]

CONFIG_FILE = "cais.yaml"
# Python releases a base image may be chosen from when only a range is known.
KNOWN_PYTHONS = ("3.9", "3.10", "3.11", "3.12", "3.13", "3.14")
# Scripts that are never "the one obvious script" of a folder.
_NOT_ENTRYPOINTS = {"setup.py", "conftest.py", "noxfile.py", "fabfile.py"}
_PYTHON_XY = re.compile(r"^(\d+)\.(\d+)(?:\.\d+)?$")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_IMAGE_NAME = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")


class _Fix(ValueError):
    """A wrong value in cais.yaml, with what to write instead."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


def _check_reference(text: str) -> None:
    from cais.errors import PlanError
    from cais.registry.reference import parse_reference

    try:
        parse_reference(text)
    except PlanError as exc:
        raise _Fix(exc.message, hint=exc.hint or "") from exc


class ProjectConfig(BaseModel):
    """What `cais.yaml` may say; every field is optional."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(default=None, description="image name; defaults to the folder name")
    version: str = Field(default="0.1.0", description="image tag and OCI version label")
    python: str | None = Field(default=None, description="Python X.Y of the image")
    entrypoint: list[str] | None = Field(default=None, description="script or command to run")
    base_image: str | None = Field(default=None, description="replaces python:X.Y-slim")
    requirements: str | None = Field(default=None, description="requirements file to install")
    train: str | None = Field(default=None, description="training script for `cais train`")
    env: dict[str, str] = Field(default_factory=dict, description="environment of the image")
    ports: list[int] = Field(default_factory=list, description="ports the program listens on")
    routes: list[LegacyRoute] = Field(
        default_factory=list, description="existing API contracts that `cais serve` keeps"
    )

    @field_validator("entrypoint", mode="before")
    @classmethod
    def _split_entrypoint(cls, value: object) -> object:
        # `entrypoint: script.py` is the common case; a list is a full command.
        if isinstance(value, str):
            try:
                return shlex.split(value)
            except ValueError as exc:
                raise _Fix(
                    f"`{value}` has a quote that is never closed",
                    hint="close it, or write the command as a list: `entrypoint: [python, app.py]`",
                ) from exc
        return value

    @field_validator("entrypoint", mode="after")
    @classmethod
    def _no_empty_entrypoint(cls, value: list[str] | None) -> list[str] | None:
        return value or None

    @field_validator("version")
    @classmethod
    def _tag(cls, value: str) -> str:
        # The version is the image's tag: checked as one (a `/` would make `image:` a host).
        _check_reference(f"image:{value.replace('/', ' ')}")
        return value

    @field_validator("base_image")
    @classmethod
    def _image_reference(cls, value: str | None) -> str | None:
        if value is not None:
            _check_reference(value)
        return value

    @field_validator("ports", mode="before")
    @classmethod
    def _ports(cls, value: object) -> object:
        if value is None:
            return []
        ports: list[int] = []
        for item in value if isinstance(value, list) else [value]:
            number = int(item) if isinstance(item, str) and item.strip().isdigit() else item
            if isinstance(number, bool) or not isinstance(number, int) or not 0 < number < 65536:
                raise _Fix(
                    f"`{item}` is not a port number",
                    hint="ports are whole numbers from 1 to 65535, such as `ports: [8000]`",
                )
            if number not in ports:
                ports.append(number)
        return ports

    @field_validator("python", mode="before")
    @classmethod
    def _python_xy(cls, value: object) -> object:
        if value is None:
            return None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            # A cais.yaml is refused earlier, quoting the text as written (see
            # _refuse_numbered_versions); this covers settings made in code.
            raise _Fix(
                f"`{value}` is a number, not a version",
                hint='write the version as text, such as "3.11"',
            )
        match = _PYTHON_XY.fullmatch(str(value).strip())
        if match is None:
            raise ValueError(f"`{value}` is not a Python version like 3.11")
        return f"{match.group(1)}.{match.group(2)}"

    @field_validator("env", mode="before")
    @classmethod
    def _env_strings(cls, value: object) -> object:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise _Fix(
                "`env` must be a mapping of names to values",
                hint="write one setting per line under `env:`, such as `NAME: world`",
            )
        for key, item in value.items():
            if not _ENV_NAME.fullmatch(str(key)):
                raise ValueError(f"`{key}` is not an environment variable name")
            if isinstance(item, (dict, list)):
                raise _Fix(
                    f"`{key}` has a list or mapping as its value, not text",
                    hint=f"give `{key}` one value, in quotes if it holds : or #",
                )
        # YAML's true/false become the text a program would read from the environment.
        return {
            str(k): "" if v is None else str(v).lower() if isinstance(v, bool) else str(v)
            for k, v in value.items()
        }

    @field_validator("name")
    @classmethod
    def _image_name(cls, value: str | None) -> str | None:
        if value is not None and not _IMAGE_NAME.fullmatch(value):
            raise ValueError(
                f"`{value}` is not a valid image name (lowercase letters, digits, . _ -)"
            )
        return value


class DependencyKind(str, Enum):
    REQUIREMENTS = "requirements"
    PYPROJECT = "pyproject"
    NONE = "none"  # a script that imports only the standard library


@dataclass(frozen=True)
class Dependencies:
    """How a project declares the packages it needs."""

    kind: DependencyKind
    file: str  # relative to the project folder
    packages: tuple[str, ...] = ()  # only for pyproject projects
    installable: bool = False  # a pyproject project with a build system is pip-installed
    files: tuple[str, ...] = ()  # every file the install reads: `file`, its includes, wheels
    folders: tuple[str, ...] = ()  # local packages (folders) the install reads
    lock: LockFile | None = None  # a pyproject project installed as its lock file says


@dataclass(frozen=True)
class Project:
    """Everything a plan needs to know about a project folder."""

    path: Path
    config: ProjectConfig
    name: str
    python: str
    python_source: str
    dependencies: Dependencies
    entrypoint: tuple[str, ...]
    dockerfile: Path | None = None
    has_dockerignore: bool = False
    revision: str | None = None
    source_url: str | None = None
    # When the sources last changed: the image's `created` label, so that an unchanged
    # project rebuilds to the very same image (SOURCE_DATE_EPOCH overrides it).
    source_date: datetime | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    # The web app the entrypoint script defines, served by a production server, and whether
    # the project's dependencies list that server.
    web_app: WebApp | None = None
    server_listed: bool = False
    # What in the project will not work in a container (a server on 127.0.0.1), one line each.
    warnings: tuple[str, ...] = ()
    # The image's tag when none is given: cais.yaml's version, else pyproject.toml's.
    version: str = ProjectConfig.model_fields["version"].default


def load_project(path: str | Path = ".") -> Project:
    """Read the project in `path` and decide its Python version, dependencies and entrypoint."""
    root = Path(path).expanduser()
    if not root.exists():
        raise ProjectError(
            f"The project folder `{path}` does not exist",
            hint="give the folder that holds your script and requirements.txt, "
            "or create one with `cais init DIR`",
        )
    if not root.is_dir():
        raise ProjectError(f"`{path}` is a file, not a project folder", hint="give its folder")
    root = root.resolve()
    config = _read_config(root)
    pyproject = _read_pyproject(root)
    dockerfile = root / "Dockerfile"
    own_dockerfile = dockerfile if dockerfile.is_file() else None

    # Only a python:X.Y-slim base must be had: an own Dockerfile or base image brings its own.
    own_base = own_dockerfile is not None or config.base_image is not None
    python, python_source = _detect_python(root, config, pyproject, check_bases=not own_base)
    if own_dockerfile is not None:
        # A project's own Dockerfile is built as it is: nothing else needs to be found.
        dependencies = Dependencies(DependencyKind.REQUIREMENTS, "")
        entrypoint: tuple[str, ...] = ()
        web_app, warnings = None, ()
    else:
        # Hints name the project's files as the user spelled its folder: they work from there.
        shown = Path(path)
        entrypoint = _detect_entrypoint(root, config, pyproject, shown)
        dependencies = _detect_dependencies(root, config, pyproject, entrypoint, shown)
        web_app, warnings = _web_app(root, config, entrypoint)
    revision, source_url = _git_info(root)
    version, notes = _project_version(config, pyproject)
    return Project(
        path=root,
        config=config,
        name=config.name or image_name_from(root.name),
        python=python,
        python_source=python_source,
        dependencies=dependencies,
        entrypoint=entrypoint,
        dockerfile=own_dockerfile,
        has_dockerignore=(root / ".dockerignore").is_file(),
        revision=revision,
        source_url=source_url,
        source_date=source_date(root),
        web_app=web_app,
        server_listed=web_app is not None and _lists(root, dependencies, web_app.server),
        warnings=warnings,
        notes=notes,
        version=version,
    )


def read_config(file: Path) -> ProjectConfig:
    """A cais.yaml, checked; an empty config when the file does not exist."""
    return _read_config(file.parent, file.name)


def _read_config(root: Path, name: str = CONFIG_FILE) -> ProjectConfig:
    file = root / name
    if not file.is_file():
        return ProjectConfig()
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ProjectError(
            f"`{file}` is not valid YAML{where}",
            hint="fix the syntax; `cais init example` writes a valid one",
        ) from exc
    if data is None:
        return ProjectConfig()
    if not isinstance(data, dict):
        raise ProjectError(
            f"`{file}` must be a mapping of settings (name:, python:, entrypoint: …)",
            hint="`cais init example` writes a valid one",
        )
    _refuse_numbered_versions(file, data)
    try:
        return ProjectConfig.model_validate(data)
    except ValidationError as exc:
        raise _config_error(file, exc) from exc


def _refuse_numbered_versions(file: Path, data: dict) -> None:
    """`python: 3.10` is the number 3.1 to YAML, `version: 1.10` is 1.1: versions must be
    quoted. The message quotes the value as it was written."""
    for key in ("python", "version"):
        value = data.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        written = _written(file, key) or str(value)
        read = "" if written == str(value) else f" {value}"
        raise ProjectError(
            f"`{file}` has a wrong value for `{key}`: YAML reads the unquoted `{written}` "
            f"as the number{read}",
            hint=f'write it in quotes: `{key}: "{written}"`',
        )


def _written(file: Path, key: str) -> str | None:
    """The text of a top-level setting's value, as written in the YAML file."""
    try:
        root = yaml.compose(file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    for key_node, value_node in getattr(root, "value", []):
        if getattr(key_node, "value", None) == key and isinstance(value_node, yaml.ScalarNode):
            return value_node.value
    return None


# What a setting of the wrong type should have been, by pydantic's error type.
_EXPECTED = {
    "string_type": "text",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
}


def _config_error(file: Path, exc: ValidationError) -> ProjectError:
    """One sentence for the first wrong setting: the key, the value, what to write."""
    import difflib

    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "(top level)"
    known = list(ProjectConfig.model_fields)
    cause = first.get("ctx", {}).get("error")
    if first["type"] == "extra_forbidden":
        close = difflib.get_close_matches(where, known, n=1, cutoff=0.75)
        return ProjectError(
            f"`{file}` has a setting cais does not know: `{where}`",
            hint=f"did you mean `{close[0]}`?" if close else "known settings: " + ", ".join(known),
        )
    if isinstance(cause, _Fix):
        return ProjectError(f"`{file}` has a wrong value for `{where}`: {cause}", hint=cause.hint)
    if first["type"] in _EXPECTED:
        shown = json.dumps(first["input"], ensure_ascii=False, default=str)
        return ProjectError(
            f"`{file}` has a wrong value for `{where}`: `{shown}` is not "
            f"{_EXPECTED[first['type']]}",
            hint=f"fix `{first['loc'][0]}:` in {CONFIG_FILE}; `cais init` shows a valid example",
        )
    message = first["msg"].removeprefix("Value error, ")
    return ProjectError(
        f"`{file}` has a wrong value for `{where}`: {message}",
        hint=f"fix `{first['loc'][0]}:` in {CONFIG_FILE}",
    )


def _read_pyproject(root: Path) -> dict:
    file = root / "pyproject.toml"
    if not file.is_file():
        return {}
    try:
        return tomllib.loads(file.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ProjectError(f"`{file}` is not valid TOML: {exc}") from exc


def _detect_python(
    root: Path, config: ProjectConfig, pyproject: dict, *, check_bases: bool
) -> tuple[str, str]:
    if config.python:
        return config.python, CONFIG_FILE
    version_file = root / ".python-version"
    if version_file.is_file():
        text = version_file.read_text(encoding="utf-8").split()
        match = _PYTHON_XY.fullmatch(text[0]) if text else None
        if match is None:
            raise ProjectError(
                f"`{version_file}` does not hold a Python version like 3.11",
                hint="write one version per line, such as `3.11`",
            )
        return f"{match.group(1)}.{match.group(2)}", ".python-version"
    requires = pyproject.get("project", {}).get("requires-python")
    if requires:
        try:
            spec = SpecifierSet(requires)
        except InvalidSpecifier as exc:
            raise ProjectError(
                f"`requires-python = {requires!r}` in pyproject.toml is invalid"
            ) from exc
        fits = [xy for xy in KNOWN_PYTHONS if _any_release_fits(spec, xy)]
        if not fits:
            raise ProjectError(
                f"No known Python release satisfies `requires-python = {requires!r}`"
            )
        # This Python when it fits, else the newest that does.
        running = [running_python()] if spec.contains(platform.python_version()) else []
        preferred = list(dict.fromkeys([*running, *reversed(fits)]))
        python = _python_among(preferred, requires, check_bases=check_bases)
        return python, "pyproject.toml requires-python"
    return running_python(), "the running Python"


def _python_among(preferred: list[str], requires: str, *, check_bases: bool) -> str:
    """The first of `preferred` (the Pythons `requires` allows) that this site has: among those
    CAIS_PYTHONS names when it is set, else among those whose `python:X.Y-slim` the engine
    or the base registry holds (cais.bases)."""
    if not check_bases:
        return preferred[0]
    from cais.bundle.pins import default_pythons

    named = default_pythons()
    if named is not None:
        allowed = [python for python in preferred if python in named]
        if not allowed:
            raise ProjectError(
                f"None of the Pythons CAIS_PYTHONS names ({', '.join(named)}) satisfies "
                f"`requires-python = {requires!r}`",
                hint="add one it allows to CAIS_PYTHONS, or choose the Python with `python:` "
                "in cais.yaml",
            )
        return allowed[0]
    from cais.bases import available_pythons

    bases = available_pythons(preferred)
    if bases.pythons:
        return bases.pythons[0]
    raise ProjectError(
        f"None of the base images {bases.images(preferred)} that `requires-python = "
        f"{requires!r}` allows is in {' or '.join(bases.asked)}",
        hint=f"pull or load one (`docker pull python:{preferred[0]}-slim`), set "
        "CAIS_BASE_REGISTRY to a registry that mirrors Docker Hub, name the Pythons your site "
        "has with CAIS_PYTHONS, or choose the Python with `python:` in cais.yaml",
    )


def _any_release_fits(spec: SpecifierSet, xy: str) -> bool:
    return any(spec.contains(f"{xy}.{patch}") for patch in range(40))


def running_python() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def _detect_dependencies(
    root: Path,
    config: ProjectConfig,
    pyproject: dict,
    entrypoint: tuple[str, ...],
    shown: Path,
) -> Dependencies:
    # The slim Python base images have no git: only an own base image may fetch from it.
    vcs = config.base_image is not None
    if config.requirements:
        if not (root / config.requirements).is_file():
            raise ProjectError(
                f"`{config.requirements}` named in {CONFIG_FILE} does not exist in `{root}`",
                hint=f"create it, or fix `requirements:` in `{_in(shown, CONFIG_FILE)}`",
            )
        return _requirement_files(root, config.requirements, vcs)
    if (root / "requirements.txt").is_file():
        return _requirement_files(root, "requirements.txt", vcs)
    lock = find_lock_file(root)
    if lock is not None:
        if not pyproject:
            raise ProjectError(
                f"`{lock.value}` in `{root}` has no pyproject.toml beside it",
                hint="a lock file is installed with the pyproject.toml it was made from",
            )
        found = lock_sources(root, lock, vcs_in_image=vcs)
        return Dependencies(
            DependencyKind.PYPROJECT,
            "pyproject.toml",
            installable="build-system" in pyproject,
            files=found.files,
            folders=found.folders,
            lock=lock,
        )
    project_table = pyproject.get("project")
    if project_table:
        packages = project_table.get("dependencies", [])
        if not isinstance(packages, list) or not all(isinstance(p, str) for p in packages):
            raise ProjectError("`dependencies` in pyproject.toml must be a list of strings")
        check_packages(tuple(packages), "pyproject.toml", vcs_in_image=vcs)
        return Dependencies(
            DependencyKind.PYPROJECT,
            "pyproject.toml",
            packages=tuple(packages),
            installable="build-system" in pyproject,
            files=("pyproject.toml",),
        )
    if "poetry" in pyproject.get("tool", {}):
        raise ProjectError(
            "`pyproject.toml` lists its packages under `[tool.poetry]`, which cais installs "
            "only from poetry.lock",
            hint="run `poetry lock` in the project, or write a requirements.txt",
        )
    return _standard_library_only(root, entrypoint, shown)


def _requirement_files(root: Path, file: str, vcs_in_image: bool) -> Dependencies:
    found = read_requirements(root, file, vcs_in_image=vcs_in_image)
    return Dependencies(
        DependencyKind.REQUIREMENTS, found.files[0], files=found.files, folders=found.folders
    )


def _project_version(config: ProjectConfig, pyproject: dict) -> tuple[str, tuple[str, ...]]:
    """The default tag: cais.yaml's `version:`, else `[project].version` of pyproject.toml;
    a dynamic version (computed by the build backend) is named in a note."""
    if "version" in config.model_fields_set:
        return config.version, ()
    table = pyproject.get("project", {})
    version = table.get("version")
    if isinstance(version, str) and version.strip():
        return version.strip(), ()
    if "version" in table.get("dynamic", ()):
        return config.version, (
            f"the version in pyproject.toml is dynamic, which cais does not compute: the image "
            f"is tagged `{config.version}` (give `-t NAME:TAG`, or `version:` in cais.yaml)",
        )
    return config.version, ()


def _detect_entrypoint(
    root: Path, config: ProjectConfig, pyproject: dict, shown: Path
) -> tuple[str, ...]:
    config_file = _in(shown, CONFIG_FILE)
    if config.entrypoint:
        first = config.entrypoint[0]
        if first.endswith(".py"):
            if not (root / first).is_file():
                raise ProjectError(
                    f"The entrypoint `{first}` named in {CONFIG_FILE} does not exist in `{root}`",
                    hint=f"fix `entrypoint:` in `{config_file}`",
                )
            return ("python", *config.entrypoint)
        return tuple(config.entrypoint)
    scripts = pyproject.get("project", {}).get("scripts", {})
    if len(scripts) == 1 and "build-system" in pyproject:
        return (next(iter(scripts)),)
    candidates = sorted(
        p.name
        for p in root.glob("*.py")
        if p.name not in _NOT_ENTRYPOINTS and not p.name.startswith("test_")
    )
    for conventional in ("main.py", "app.py", "script.py"):
        if len(candidates) > 1 and conventional in candidates:
            return ("python", conventional)
    if len(candidates) == 1:
        return ("python", candidates[0])
    if not candidates:
        notebooks = sorted(p.name for p in root.glob("*.ipynb"))
        if notebooks:
            notebook = shlex.quote(_in(shown, notebooks[0]))
            raise ProjectError(
                f"`{root}` has notebooks ({', '.join(notebooks)}) but no Python script to run",
                hint=f"export the notebook as a script: `jupyter nbconvert --to script "
                f"{notebook}` (or `jupytext --to py {notebook}`), then build again",
            )
        raise ProjectError(
            f"`{root}` has no Python script to run",
            hint=f"add your script, or set `entrypoint:` in `{config_file}`",
        )
    raise ProjectError(
        f"`{root}` has several scripts ({', '.join(candidates)}) and cais cannot tell which to run",
        hint=f"set `entrypoint: <script>.py` in `{config_file}`",
    )


def _in(folder: Path, name: str) -> str:
    """`name` in the project folder, spelled from where the user is (`nb/analysis.ipynb`)."""
    return (folder / name).as_posix()


def _standard_library_only(root: Path, entrypoint: tuple[str, ...], shown: Path) -> Dependencies:
    """A project without requirements.txt or pyproject.toml needs none when its Python files
    import only the standard library and each other; otherwise the error names what they
    import."""
    requirements = _in(shown, "requirements.txt")
    missing = ProjectError(
        f"`{root}` has no requirements.txt",
        hint=f"list the packages your script imports in `{requirements}`, one per line "
        "(an empty file if it needs none)",
    )
    if entrypoint[:1] != ("python",):
        raise missing  # a command (gunicorn, uvicorn …) is itself a package to install
    imports = program_imports(root)
    if imports is None:
        raise missing  # cais cannot tell what it imports
    if not imports:
        return Dependencies(DependencyKind.NONE, "")
    named = ", ".join(f"`{module}` ({file})" for module, file in sorted(imports.items()))
    raise ProjectError(
        f"`{root}` has no requirements.txt, and its code imports {named}",
        hint=f"list the packages that provide them in `{requirements}`, one per line",
    )


def _web_app(
    root: Path, config: ProjectConfig, entrypoint: tuple[str, ...]
) -> tuple[WebApp | None, tuple[str, ...]]:
    """The web app the entrypoint script defines, when a production server is to serve it,
    and warnings about servers that would listen on 127.0.0.1 inside the container."""
    commands = tuple(_command_warnings(root, config, entrypoint))
    if entrypoint[:1] != ("python",) or len(entrypoint) < 2 or not entrypoint[1].endswith(".py"):
        return None, commands
    script = entrypoint[1]
    tree = parse_script(root / script)
    if tree is None:
        return None, commands
    # Only a bare script (found, or `entrypoint: app.py`): `[python, app.py]` or arguments
    # ask for the script itself to run.
    bare = len(entrypoint) == 2 and config.entrypoint in (None, [script])
    importable = "/" not in script and Path(script).stem.isidentifier()
    app = find_web_app(script, tree) if bare and importable else None
    if app is not None:
        return app, ()
    return None, (*(str(server) for server in local_servers(script, tree)), *commands)


def _command_warnings(root: Path, config: ProjectConfig, command: tuple[str, ...]) -> list[str]:
    """A server command in cais.yaml that would listen on 127.0.0.1 (each one's default)."""
    words = list(command)
    if words[:2] in (["python", "-m"], ["python3", "-m"]):
        words = words[2:]
    elif words[:1] in (["python"], ["python3"]):
        words = words[1:]  # python manage.py runserver
    if not words:
        return []

    def given(*options: str) -> bool:
        return any(w in options or w.startswith(tuple(f"{o}=" for o in options)) for w in words)

    shown = shlex.join(command)
    where = f"the entrypoint `{shown}` in {CONFIG_FILE} listens on 127.0.0.1, which nothing "
    where += "outside the container can reach; add "
    server = words[0]
    if server == "flask" and "run" in words and not given("--host", "-h"):
        if "FLASK_RUN_HOST" not in config.env:
            return [where + "`--host 0.0.0.0`"]
    elif server == "uvicorn" and not given("--host") and "UVICORN_HOST" not in config.env:
        return [where + "`--host 0.0.0.0`"]
    elif words[0].endswith("manage.py") and "runserver" in words:
        # Django's development server takes [addr:]port after the command; 127.0.0.1 by default.
        address = words[words.index("runserver") + 1 :]
        if not any(
            w.startswith(("0.0.0.0:", "[::]:")) or w in ("0.0.0.0", "[::]") for w in address
        ):
            return [where + f"`0.0.0.0:{(config.ports or [8000])[0]}` after `runserver`"]
    elif server == "gunicorn" and not given("--bind", "-b"):
        configured = "GUNICORN_CMD_ARGS" in config.env or (root / "gunicorn.conf.py").is_file()
        if not configured:
            return [where + f"`--bind 0.0.0.0:{(config.ports or [8000])[0]}`"]
    return []


def _lists(root: Path, dependencies: Dependencies, package: str) -> bool:
    if dependencies.kind is DependencyKind.REQUIREMENTS:
        return lists_package(root / dependencies.file, package)
    return lists_package(dependencies.packages, package)


def image_name_from(folder: str) -> str:
    name = re.sub(r"[^a-z0-9._-]+", "-", folder.lower()).strip("._-")
    return name or "app"


def git_revision(folder: Path) -> str | None:
    """The commit checked out in `folder`, when it is in a git repository."""
    return _git_info(folder)[0]


def _git_info(root: Path) -> tuple[str | None, str | None]:
    """The commit and origin URL (credentials removed) when the folder is in a git checkout."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=5
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() or None if done.returncode == 0 else None

    revision = git("rev-parse", "HEAD")
    url = git("config", "--get", "remote.origin.url") if revision else None
    if url:
        url = re.sub(r"//[^/@]+@", "//", url)
    return revision, url
