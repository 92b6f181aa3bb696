"""Render an ImagePlan as a Dockerfile a person learning Docker can read.

Pip settings for a proxy or a private index (CA certificates, index URL) never go into a layer:
with BuildKit they are secret mounts of one RUN; with the classic builder they live in a
throw-away stage whose installed packages are copied into the final image.
"""

from __future__ import annotations

import json
import shlex
import textwrap
from enum import Enum

from cais import __version__
from cais.builders.pip_settings import PIP_CA_SECRET, PIP_CONF_SECRET
from cais.errors import PlanError
from cais.plan import Copy, DependencyStep, ImagePlan
from cais.requirements import LockFile

__all__ = [
    "BUILD_ONLY_SUFFIXES",
    "DEFAULT_DOCKERIGNORE",
    "SECRETS_DIR",
    "TEST_SUITE_FOLDER",
    "SecretsMode",
    "render_dockerfile",
]

# Where a classic build finds the pip settings inside its throw-away stage.
SECRETS_DIR = ".cais-build-secrets"

DEFAULT_DOCKERIGNORE = """\
# Kept out of the image by cais: version control, virtualenvs, caches, secrets and data.
.git
.hg
.svn
.venv
venv
**/__pycache__
**/*.py[cod]
.pytest_cache
.mypy_cache
.ruff_cache
.ipynb_checkpoints
.tox
.nox
*.egg-info
.env
.env.*
*.pem
*.key
data/
output/
*.parquet
*.h5
*.zip
*.tar
*.tar.gz
.DS_Store
Dockerfile
.dockerignore
"""


class SecretsMode(str, Enum):
    NONE = "none"  # no pip settings to pass
    BUILDKIT = "buildkit"  # RUN --mount=type=secret
    STAGE = "stage"  # classic builder: a throw-away stage


def render_dockerfile(plan: ImagePlan, *, secrets: SecretsMode = SecretsMode.NONE) -> str:
    """The Dockerfile text for `plan`."""
    out: list[str] = [
        f"# Dockerfile for {plan.name}, written by cais {__version__}.",
        "# Build it with `cais build` (or `docker build`); see `cais dockerfile --help`.",
        "",
    ]
    if not plan.uses_pip:
        secrets = SecretsMode.NONE  # nothing runs pip: no settings to pass
    if secrets is SecretsMode.STAGE:
        out += _throw_away_stages(plan)
    source = f" (Python {plan.python} from {plan.python_source})" if plan.python_source else ""
    out += [
        f"# The base image{source}.",
        f"FROM {plan.base_image}",
        "",
        "# No .pyc files, unbuffered output for `docker logs`, and a quiet pip without a cache",
        "# so that layers stay small.",
        "ENV PYTHONDONTWRITEBYTECODE=1 \\",
        "    PYTHONUNBUFFERED=1 \\",
        "    PIP_NO_CACHE_DIR=1 \\",
        "    PIP_DISABLE_PIP_VERSION_CHECK=1",
        "",
        f"WORKDIR {plan.workdir}",
        "",
    ]
    deps = plan.dependencies
    who = f"`{plan.user.name}` (uid {plan.user.uid})"
    if deps is None or secrets is SecretsMode.STAGE:
        out += [
            f"# An unprivileged user, {who}, runs the program; `USER` below names it by number",
            "# so runtimes can check it is not root. Its home folder is where libraries keep caches.",
            *_run(_add_user(plan)),
            "",
        ]
    if deps is not None:
        files = " or ".join((*deps.files, *(f"{f}/" for f in deps.folders)))
        about = "Dependencies first, in their own layer"
        about += f": it is rebuilt only when {files} changes." if files else "."
        if deps.added:
            added = ", ".join(deps.added)
            about += f" {added}: added by cais, as {deps.files[0] if deps.files else 'the project'} does not list it."
        out += _comment(about)
        if secrets is SecretsMode.STAGE:
            out.append("COPY --from=dependencies /install /usr/local")
        else:
            # One step with the user: a step fewer to run on a first build.
            out.append(f"# The same step adds the unprivileged user {who} that runs the program.")
            out += _copy(deps.files, "./") + _copy_folders(deps.folders)
            if secrets is SecretsMode.BUILDKIT:
                out.append(
                    "# pip settings for the proxy or private index arrive as build secrets, "
                    "never stored in the image."
                )
            out += _run(
                [
                    *_add_user(plan),
                    *_install(deps),
                    *_prune(deps, "/usr/local"),
                    *_precompile(deps),
                ],
                secrets,
            )
        out.append("")
    whole_context = plan.app.copies == (Copy(source=".", destination="."),)
    if secrets is SecretsMode.STAGE:
        out.append("# The program, from the clean copy of stage 2.")
        for copy in plan.app.copies:
            source = "/src" if copy.source == "." else f"/src/{copy.source}"
            out.append(
                f"COPY --from=program {source} {'./' if copy.destination == '.' else copy.destination}"
            )
        if plan.app.install_project:
            out.append("COPY --from=program /install /usr/local")
    else:
        out.append(
            "# The program itself; .dockerignore keeps out .git, virtualenvs, caches and data."
            if whole_context
            else "# The program."
        )
        out += [f"COPY {c.source} {c.destination}" for c in plan.app.copies]
        if plan.app.install_project:
            out += _run(["pip install --no-cache-dir --no-deps ."], secrets)
    if plan.app.byte_compile:
        out.append(
            "# Its .pyc files, made once here: the unprivileged user cannot write them later."
        )
        out += _run(
            [
                "python -m compileall -q --invalidation-mode unchecked-hash "
                + " ".join(shlex.quote(p) for p in plan.app.byte_compile)
            ]
        )
    out.append("")
    if plan.model is not None:
        out += [
            "# The model, in the last layer: a new model version changes only this layer.",
            f"COPY {plan.model.source} {plan.model.destination}",
            "",
        ]
    if plan.env:
        out.append("# Settings of the program.")
        out.append(_key_values("ENV", plan.env))
        out.append("")
    out.append(f"USER {plan.user.spec}")
    if plan.ports:
        out.append("EXPOSE " + " ".join(str(p) for p in plan.ports))
    out.append("")
    if plan.labels:
        out.append(
            "# OCI labels: what this image is, which version, built when, from which commit."
        )
        out.append(_key_values("LABEL", plan.labels))
    if plan.healthcheck:
        out.append("# Healthy once the model is loaded and the server answers.")
        out.append(
            "HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \\\n"
            "    CMD " + json.dumps(list(plan.healthcheck), ensure_ascii=False)
        )
    if plan.entrypoint_about:
        out += ["", *_comment(plan.entrypoint_about)]
    if plan.entrypoint:
        # CMD rather than ENTRYPOINT: `cais run IMAGE -- bash` can still open a shell inside.
        out.append("CMD " + json.dumps(list(plan.entrypoint), ensure_ascii=False))
    return "\n".join(out) + "\n"


def _throw_away_stages(plan: ImagePlan) -> list[str]:
    """The classic builder's stages that use the pip settings and are then thrown away."""
    settings = f"PIP_CONFIG_FILE=/run/secrets/{PIP_CONF_SECRET}"
    out: list[str] = []
    deps = plan.dependencies
    if deps is not None:
        site_packages = f"/install/lib/python{plan.python}/site-packages"
        # Its files where the image has them: pip finds local packages (`./mypkg`) from
        # where it runs, and an editable one is installed as a link to that folder.
        commands = _with_settings(
            [
                *_install(deps, prefix="/install"),
                *_prune(deps, "/install"),
                *_precompile(deps, site_packages),
            ]
        )
        out += [
            "# Stage 1, thrown away after the build: installs the dependencies with the pip",
            "# settings (CA certificates, index URL) that must not stay in the image.",
            f"FROM {plan.base_image} AS dependencies",
            f"COPY {SECRETS_DIR}/ /run/secrets/",
            f"WORKDIR {plan.workdir}",
            *_copy(deps.files, "./"),
            *_copy_folders(deps.folders),
            f"RUN {commands[0]}" + "".join(f" \\\n    && {c}" for c in commands[1:]),
            "",
        ]
    out += [
        "# Stage 2, thrown away too: the program's files without those pip settings.",
        f"FROM {plan.base_image} AS program",
    ]
    if plan.app.install_project:
        out += [
            f"COPY {SECRETS_DIR}/ /run/secrets/",
            "COPY . /src",
            f"RUN rm -rf /src/{SECRETS_DIR} \\",
            f"    && {settings} pip install --no-cache-dir --no-deps --prefix=/install /src",
        ]
    else:
        out += ["COPY . /src", f"RUN rm -rf /src/{SECRETS_DIR}"]
    return [*out, "", "# Stage 3, the image itself."]


def _add_user(plan: ImagePlan) -> list[str]:
    """A line each in /etc/group and /etc/passwd (unless the base image has the ids already)
    and an empty home folder: all a user that runs a program needs. useradd would also copy
    shell start-up files and back up four files of /etc, 8.9 kB for nothing here, and is
    missing from some base images."""
    user = plan.user
    home = f"/home/{user.name}"
    taken = "grep -q '^[^:]*:[^:]*:{id}:' {file}"
    return [
        f"{{ {taken.format(id=user.gid, file='/etc/group')} "
        f"|| echo '{user.name}:x:{user.gid}:' >> /etc/group; }}",
        f"{{ {taken.format(id=user.uid, file='/etc/passwd')} "
        f"|| echo '{user.name}:x:{user.uid}:{user.gid}::{home}:/usr/sbin/nologin' >> /etc/passwd; }}",
        f"mkdir -p {home}",
        f"chown {user.spec} {home}",
    ]


def _run(commands: list[str], secrets: SecretsMode = SecretsMode.NONE) -> list[str]:
    """A RUN of shell commands joined with `&&`, one per line; with BuildKit secrets the pip
    settings are mounted and each pip command is told where they are."""
    lines: list[str] = []
    first = "RUN "
    if secrets is SecretsMode.BUILDKIT:
        commands = _with_settings(commands)
        lines.append(
            f"RUN --mount=type=secret,id={PIP_CONF_SECRET} "
            f"--mount=type=secret,id={PIP_CA_SECRET} \\"
        )
        first = "    "
    for number, command in enumerate(commands):
        prefix = first if number == 0 else "    && "
        suffix = " \\" if number < len(commands) - 1 else ""
        lines.append(prefix + command + suffix)
    return lines


def _with_settings(commands: list[str]) -> list[str]:
    """Each pip command told where the pip settings are."""
    settings = f"PIP_CONFIG_FILE=/run/secrets/{PIP_CONF_SECRET} "
    return [settings + c if c.startswith("pip ") else c for c in commands]


def _copy_folders(folders: tuple[str, ...]) -> list[str]:
    """COPY each local package folder as that folder (COPY of a folder copies what it holds)."""
    return [f"COPY {f} ./{f}/" for f in folders]


def _copy(files: tuple[str, ...], destination: str) -> list[str]:
    """COPY each file to the same relative path under `destination` (so `-r reqs/x.txt`
    finds it); the files at the top of the context in one COPY."""
    top = [f for f in files if "/" not in f]
    nested = [f"COPY {f} {destination}{f}" for f in files if "/" in f]
    return ([f"COPY {' '.join(top)} {destination}"] if top else []) + nested


def _comment(text: str) -> list[str]:
    return textwrap.wrap(text, width=92, initial_indent="# ", subsequent_indent="# ")


def _prune(deps: DependencyStep, prefix: str) -> list[str]:
    if not deps.prune:
        return []
    build_only = " -o ".join(f"-name '*.{e}'" for e in BUILD_ONLY_SUFFIXES)
    return [
        f"find {prefix}/lib -depth -type d -name {TEST_SUITE_FOLDER} -path '*-packages/*' "
        "-exec rm -rf {} +",
        f"find {prefix}/lib -path '*-packages/*' -type f \\( {build_only} \\) -delete",
    ]


# Files wheels carry for Cython builds (sources, their Tempita templates), for linking (static
# libraries) and for type checkers, never read at run time (C sources and headers stay: some
# packages compile them at run time, such as triton's driver). The OCI builder (packages.py)
# leaves out the same files, and every folder of a package named TEST_SUITE_FOLDER.
TEST_SUITE_FOLDER = "tests"
BUILD_ONLY_SUFFIXES = ("pyx", "pxd", "pxi", "pyx.tp", "pxd.tp", "pxi.tp", "pyi", "a")

# Imports each module given, skipping any that fails (it may not exist in these versions, or
# need what only the running image has): this only saves start-up time. Python writes the
# .pyc files of everything they load (PYTHONDONTWRITEBYTECODE is cleared).
_PRECOMPILE = (
    "import importlib, sys\\n"
    "for name in sys.argv[1:]:\\n"
    "    try: importlib.import_module(name)\\n"
    "    except Exception: pass"
)


def _precompile(deps: DependencyStep, site_packages: str | None = None) -> list[str]:
    if not deps.precompile:
        return []
    path = f"PYTHONPATH={site_packages} " if site_packages else ""
    modules = " ".join(shlex.quote(m) for m in deps.precompile)
    return [f"{path}PYTHONDONTWRITEBYTECODE= python -c 'exec(\"{_PRECOMPILE}\")' {modules}"]


# A lock file becomes a requirement file with the lock tool's own export, offline: the tool
# and the export live in /tmp only for the step that installs them, so neither reaches a layer.
_LOCK_TOOL = "/tmp/cais-lock-tool"
_LOCKED = "/tmp/cais-locked.txt"
# (tool, export command, its option that leaves the hashes out)
_LOCK_EXPORT = {
    LockFile.UV: (
        "uv",
        f"{_LOCK_TOOL}/bin/uv export --no-cache --frozen --no-dev --no-emit-project "
        f"--format requirements-txt --output-file {_LOCKED}",
        "--no-hashes",
    ),
    LockFile.POETRY: (
        "poetry poetry-plugin-export",
        f"PYTHONPATH={_LOCK_TOOL} POETRY_CACHE_DIR={_LOCK_TOOL}/cache python -m poetry export "
        f"--only main --format requirements.txt --output {_LOCKED}",
        "--without-hashes",
    ),
}


def _install(deps: DependencyStep, *, prefix: str | None = None) -> list[str]:
    """The commands that install the dependencies (with pip, or with the lock tool's export)."""
    if deps.lock is None:
        return [_pip_install(deps, prefix=prefix)]
    tool, export, no_hashes = _LOCK_EXPORT[deps.lock]
    locked = deps.model_copy(update={"requirements": _LOCKED, "lock": None, "packages": ()})
    commands = [
        f"pip install --no-cache-dir --target {_LOCK_TOOL} {tool}",
        export if deps.lock_hashes else f"{export} {no_hashes}",
        _pip_install(locked, prefix=prefix),
    ]
    if deps.packages:  # what cais adds (a web server) has no hash in the lock: a step apart
        extra = deps.model_copy(update={"requirements": None, "lock": None})
        commands.append(_pip_install(extra, prefix=prefix))
    return [*commands, f"rm -rf {_LOCK_TOOL} {_LOCKED}"]


def _pip_install(deps: DependencyStep, *, prefix: str | None = None) -> str:
    args = ["pip", "install", "--no-cache-dir"]
    if deps.precompile:
        args.append("--no-compile")
    if prefix:
        args += [f"--prefix={prefix}"]
    if deps.requirements:
        args += ["-r", deps.requirements]
    return shlex.join([*args, *deps.packages])


def _quote(value: str) -> str:
    """A Dockerfile double-quoted word: `\\`, `"` and `$` escaped, anything else as it is."""
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise PlanError(
            f"The value {value!r} holds a control character (newline, tab …), "
            "which a Dockerfile setting cannot hold",
            hint="remove it from cais.yaml",
        )
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return f'"{escaped}"'


def _key_values(instruction: str, items: dict[str, str]) -> str:
    indent = " " * (len(instruction) + 1)
    lines = [f"{key}={_quote(value)}" for key, value in items.items()]
    return f"{instruction} " + f" \\\n{indent}".join(lines)
