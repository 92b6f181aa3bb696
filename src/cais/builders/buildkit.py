"""BuildKit through the docker CLI (the Docker SDK for Python cannot drive BuildKit).

A docker CLI with the buildx plugin runs `docker buildx build --load`; a CLI older than 23.0
has BuildKit built in (`DOCKER_BUILDKIT=1 docker build`). Newer CLIs without buildx cannot
use BuildKit at all, so `find_buildkit_cli` looks past them (to Debian's /usr/bin/docker, say).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path

from cais.builders.base import BuildProgress, BuildRequest, BuildResult
from cais.builders.context import ignore_patterns
from cais.builders.failures import build_error
from cais.builders.pip_settings import PIP_CA_SECRET, PIP_CONF_SECRET
from cais.engine.client import unreachable
from cais.errors import BuildError, CaisError
from cais.image.blobs import default_root

__all__ = ["BuildKitBuilder", "BuildKitCLI", "find_buildkit_cli"]

_VERSION = re.compile(r"version (\d+)\.(\d+)")
# `#7 [2/5] RUN pip install …`, `#7 0.512 Collecting …`, `#7 DONE 3.2s`, `#7 ERROR: …`
_VERTEX = re.compile(r"^#(\d+) (.*)$")
_TIMED = re.compile(r"^\d+\.\d+ (.*)$")
_STEP_NAME = re.compile(r"^\[(?!internal\]|auth\])[^\]]*\] ")
_CACHE = "docker-cli.json"


@dataclass(frozen=True)
class BuildKitCLI:
    path: str
    buildx: bool
    version: str

    def command(self) -> list[str]:
        return [self.path, "buildx", "build", "--load"] if self.buildx else [self.path, "build"]


# Where docker CLI plugins such as buildx live; a change there can change the answer.
_PLUGIN_DIRS = (
    "~/.docker/cli-plugins",
    "/usr/local/lib/docker/cli-plugins",
    "/usr/local/libexec/docker/cli-plugins",
    "/usr/lib/docker/cli-plugins",
    "/usr/libexec/docker/cli-plugins",
)


def find_buildkit_cli() -> BuildKitCLI | None:
    """The first docker CLI on PATH (then /usr/bin/docker) that can build with BuildKit.

    Asking each CLI costs a few subprocesses, so the answer is kept in the user's cache and
    reused while the CLIs and plugin folders are unchanged."""
    candidates: list[str] = []
    for candidate in (shutil.which("docker"), "/usr/bin/docker", "/usr/local/bin/docker"):
        if (
            candidate
            and os.access(candidate, os.X_OK)
            and os.path.realpath(candidate) not in map(os.path.realpath, candidates)
        ):
            candidates.append(candidate)
    key = _fingerprint(candidates)
    saved = _load_cache()
    if isinstance(saved, dict) and saved.get("key") == key:
        try:
            return BuildKitCLI(**saved["cli"]) if saved["cli"] else None
        except (TypeError, KeyError):
            pass  # a cache of another shape: ask again
    found = _probe(candidates)
    _save_cache({"key": key, "cli": asdict(found) if found else None})
    return found


def _load_cache() -> object:
    """What `_save_cache` wrote; None when there is nothing to read."""
    try:
        return json.loads((default_root() / _CACHE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _save_cache(data: object) -> None:
    """Write the answer whole or not at all (a temporary file renamed into place: a cache
    that cannot be written only costs the probe next time, and leaves nothing behind)."""
    file = default_root() / _CACHE
    temporary = file.with_suffix(f".{os.getpid()}.tmp")
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_text(json.dumps(data), encoding="utf-8")
        os.replace(temporary, file)
    except OSError:
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)


def _fingerprint(candidates: list[str]) -> list:
    def stamp(path: str) -> list:
        try:
            info = os.stat(os.path.expanduser(path))
            return [path, info.st_mtime_ns, info.st_size]
        except OSError:
            return [path, None, None]

    return [stamp(c) for c in candidates] + [stamp(d) for d in _PLUGIN_DIRS]


def _probe(candidates: list[str]) -> BuildKitCLI | None:
    for candidate in candidates:
        version = _cli_version(candidate)
        if version is None:
            continue
        if _run_ok([candidate, "buildx", "version"]):
            return BuildKitCLI(candidate, True, version)
        major = int(_VERSION.search(f"version {version}").group(1))  # type: ignore[union-attr]
        if major < 23:
            return BuildKitCLI(candidate, False, version)
    return None


def _cli_version(path: str) -> str | None:
    try:
        done = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"version (\d+\.\d+[^\s,]*)", done.stdout)
    return match.group(1) if match else None


def _run_ok(args: list[str]) -> bool:
    try:
        return subprocess.run(args, capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


class BuildKitBuilder:
    name = "buildkit"

    def __init__(self, cli: BuildKitCLI) -> None:
        self.cli = cli

    def build(self, request: BuildRequest, progress: BuildProgress) -> BuildResult:
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="cais-build-") as scratch:
            work = Path(scratch)
            os.chmod(work, 0o700)  # the pip settings may hold an index token
            args = self.cli.command() + ["--progress=plain", "--iidfile", str(work / "iid")]
            if request.dockerfile_text is not None:
                dockerfile = work / "Dockerfile"
                dockerfile.write_text(request.dockerfile_text, encoding="utf-8")
                # BuildKit reads <Dockerfile>.dockerignore beside the Dockerfile, in place of
                # the project's: the same patterns, plus the ignore file itself (as the
                # classic builder does), so both builders copy the same files.
                patterns = ignore_patterns(request.context, request.default_ignore)
                ignore = work / "Dockerfile.dockerignore"
                ignore.write_text("\n".join([*patterns, ".dockerignore"]) + "\n", encoding="utf-8")
            else:
                assert request.dockerfile is not None
                dockerfile = request.dockerfile
            args += ["-f", str(dockerfile)]
            for tag in request.tags:
                args += ["-t", tag]
            if request.platform:
                args += ["--platform", request.platform]
            for key, value in request.build_args.items():
                args += ["--build-arg", f"{key}={value}"]
            if request.no_cache:
                args.append("--no-cache")
            if request.pip:
                ca = work / PIP_CA_SECRET
                ca.write_bytes(request.pip.ca_bundle)
                conf = work / PIP_CONF_SECRET
                conf.write_text(request.pip.pip_conf(f"/run/secrets/{PIP_CA_SECRET}"))
                args += ["--secret", f"id={PIP_CONF_SECRET},src={conf}"]
                args += ["--secret", f"id={PIP_CA_SECRET},src={ca}"]
            args.append(str(request.context))
            env = {**os.environ, "DOCKER_BUILDKIT": "1"}
            returncode, failure = _stream(args, env, progress)
            if returncode != 0:
                raise failure
            image_id = (work / "iid").read_text().strip()
        return BuildResult(
            image_id, request.tags, self.name, time.monotonic() - started, bool(request.pip)
        )


def _stream(args: list[str], env: dict[str, str], progress: BuildProgress) -> tuple[int, CaisError]:
    """Run the build, report steps and lines as they come; return the exit code and the error
    to raise if it failed."""
    names: dict[str, str] = {}
    logs: dict[str, deque[str]] = {}
    failed_vertex: str | None = None
    final_error: list[str] = []
    try:
        process = subprocess.Popen(
            args,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
        )
    except OSError as exc:
        raise BuildError(f"The docker CLI `{args[0]}` could not be started: {exc}") from exc
    with process:  # closes the pipe and reaps the CLI, even when interrupted
        assert process.stdout is not None
        for raw in process.stdout:
            line = raw.rstrip("\n")
            match = _VERTEX.match(line)
            if not match:
                if line.strip() and not line.startswith(("------", " > ")):
                    final_error.append(line.strip())
                continue
            vertex, rest = match.groups()
            if vertex not in names:
                names[vertex] = rest
                # Enough for the recogniser to find which package a pip failure is about.
                logs[vertex] = deque(maxlen=400)
                if _STEP_NAME.match(rest):
                    progress.step(rest)
                continue
            if rest.startswith("ERROR"):
                failed_vertex = failed_vertex or vertex
                logs[vertex].append(rest)
                continue
            timed = _TIMED.match(rest)
            if timed:
                logs[vertex].append(timed.group(1))
                progress.log(timed.group(1))
        returncode = process.wait()
    step = names.get(failed_vertex) if failed_vertex else None
    if any("connect to the docker daemon" in line.lower() for line in final_error):
        return returncode, unreachable()
    return returncode, build_error(step, list(logs.get(failed_vertex or "", ())), final_error)
