"""Render an ImagePlan as a Dockerfile a person learning Docker can read.

Pip settings for a proxy or a private index (CA certificates, index URL) never go into a layer:
with BuildKit they are secret mounts of one RUN; with the classic builder they live in a
throw-away stage whose installed packages are copied into the final image.
"""

from __future__ import annotations

import json
import shlex
from enum import Enum

from cais import __version__
from cais.plan import ImagePlan

__all__ = [
    "DEFAULT_DOCKERIGNORE",
    "PIP_CA_SECRET",
    "PIP_CONF_SECRET",
    "SECRETS_DIR",
    "SecretsMode",
    "render_dockerfile",
]

# Names of the pip settings a build receives (BuildKit secret ids, or files in the context).
PIP_CONF_SECRET = "cais-pip.conf"
PIP_CA_SECRET = "cais-ca.pem"
# Where a classic build finds them inside its throw-away stage.
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
    deps = plan.dependencies
    staged = secrets is SecretsMode.STAGE and deps is not None
    if staged:
        out += [
            "# Stage 1, thrown away after the build: installs the dependencies with the pip",
            "# settings (CA certificates, index URL) that must not stay in the image.",
            f"FROM {plan.base_image} AS dependencies",
            f"COPY {SECRETS_DIR}/ /run/secrets/",
            *_copy(deps.files, "/tmp/"),
            f"RUN PIP_CONFIG_FILE=/run/secrets/{PIP_CONF_SECRET} \\",
            f"    {_pip_install(deps, prefix='/install', directory='/tmp/')}",
            "",
            "# Stage 2, thrown away too: the program's files without those pip settings.",
            f"FROM {plan.base_image} AS program",
            "COPY . /src",
            f"RUN rm -rf /src/{SECRETS_DIR}",
            "",
            "# Stage 3, the image itself.",
        ]
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
        "# An unprivileged user runs the program; its numeric id lets runtimes check it is not root.",
        f"RUN groupadd --gid {plan.user.gid} {plan.user.name} \\",
        f"    && useradd --uid {plan.user.uid} --gid {plan.user.gid} --create-home "
        f"--shell /usr/sbin/nologin {plan.user.name}",
        "",
        f"WORKDIR {plan.workdir}",
        "",
    ]
    if deps is not None:
        files = ", ".join(deps.files)
        out.append(
            f"# Dependencies first, in their own layer: it is rebuilt only when {files} changes."
        )
        if staged:
            out.append("COPY --from=dependencies /install /usr/local")
        elif secrets is SecretsMode.BUILDKIT:
            out += _copy(deps.files, "./")
            out += [
                "# pip settings for the proxy or private index arrive as build secrets, "
                "never stored in the image.",
                f"RUN --mount=type=secret,id={PIP_CONF_SECRET} "
                f"--mount=type=secret,id={PIP_CA_SECRET} \\",
                f"    PIP_CONFIG_FILE=/run/secrets/{PIP_CONF_SECRET} {_pip_install(deps)}",
            ]
        else:
            out += _copy(deps.files, "./")
            out.append(f"RUN {_pip_install(deps)}")
        out.append("")
    if staged:
        out += [
            "# The program, from the clean copy of stage 2.",
            "COPY --from=program /src ./",
        ]
    else:
        out += [
            "# The program itself; .dockerignore keeps out .git, virtualenvs, caches and data.",
            "COPY . .",
        ]
    if plan.app.install_project:
        out.append("RUN pip install --no-deps .")
    out.append("")
    if plan.env:
        out.append("# Settings of the program, from cais.yaml.")
        out.append(_env(plan.env))
        out.append("")
    out.append(f"USER {plan.user.spec}")
    if plan.ports:
        out.append("EXPOSE " + " ".join(str(p) for p in plan.ports))
    out.append("")
    if plan.labels:
        out.append("# OCI labels: what this image is, which version, built when, from which commit.")
        out.append(_labels(plan.labels))
    if plan.entrypoint:
        # CMD rather than ENTRYPOINT: `cais run IMAGE -- bash` can still open a shell inside.
        out.append("CMD " + json.dumps(list(plan.entrypoint)))
    return "\n".join(out) + "\n"


def _copy(files: tuple[str, ...], destination: str) -> list[str]:
    return ["COPY " + " ".join(files) + f" {destination}"]


def _pip_install(deps, *, prefix: str | None = None, directory: str = "") -> str:
    args = ["pip", "install", "--no-cache-dir"]
    if prefix:
        args += [f"--prefix={prefix}"]
    if deps.requirements:
        args += ["-r", f"{directory}{deps.requirements}"]
    else:
        args += list(deps.packages)
    return shlex.join(args)


def _env(env: dict[str, str]) -> str:
    items = [f"{key}={json.dumps(value)}" for key, value in env.items()]
    return "ENV " + " \\\n    ".join(items)


def _labels(labels: dict[str, str]) -> str:
    items = [f"{key}={json.dumps(value)}" for key, value in labels.items()]
    return "LABEL " + " \\\n      ".join(items)
