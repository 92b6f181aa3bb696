"""The Docker Engine connection, and the one place Docker SDK errors become cais errors."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import docker

from cais.errors import (
    CaisError,
    ContainerNotFound,
    EngineError,
    ImageNotFound,
    RegistryError,
)

__all__ = ["check_socket", "connect", "docker_cli", "engine_errors", "engine_host", "unreachable"]

_START_HINT = (
    "start the Docker Engine (`sudo systemctl start docker`, or `sudo dockerd &`), "
    "or point DOCKER_HOST at one; `cais doctor` checks the setup"
)


def engine_host() -> str:
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def docker_cli() -> str | None:
    """A docker CLI for what only the CLI does well (an interactive terminal)."""
    for candidate in (shutil.which("docker"), "/usr/bin/docker"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def unreachable() -> EngineError:
    return EngineError(f"The Docker Engine at `{engine_host()}` is not reachable", hint=_START_HINT)


def check_socket() -> None:
    """Fail at once, without a connection attempt, when DOCKER_HOST's socket file is missing."""
    host = engine_host()
    if host.startswith("unix://") and not Path(host.removeprefix("unix://")).exists():
        raise unreachable()


def connect(timeout: int = 120, *, version: str = "auto") -> docker.DockerClient:
    """A client for the engine at DOCKER_HOST or the default socket.

    With `version="auto"` the API version is negotiated, which is a request: the client comes
    back only from an engine that answered. A command that holds such a client already passes
    its version (`client.api.api_version`), and the next client asks the engine nothing.
    """
    check_socket()
    import docker  # the SDK (with requests) is imported only by commands that talk to the API

    with engine_errors():
        client = docker.from_env(version=version, timeout=timeout)
    return client


@contextlib.contextmanager
def engine_errors(*, image: str | None = None, container: str | None = None) -> Iterator[None]:
    """Translate Docker SDK and transport errors raised inside the block into cais errors."""
    try:
        yield
    except CaisError:
        raise
    except Exception as exc:
        translated = _translate(exc, image, container)
        if translated is None:
            raise
        raise translated from exc


def _translate(exc: Exception, image: str | None, container: str | None) -> CaisError | None:
    """The cais error for an SDK or `requests` error; None for anything else."""
    import docker.errors
    import requests.exceptions

    if isinstance(exc, docker.errors.ImageNotFound):
        name = image or "NAME"
        return ImageNotFound(
            f"The image `{image or _explanation(exc)}` does not exist in the Docker Engine",
            hint=f"list images with `cais images`, build it with `cais build DIR -t {name}`, "
            f"or fetch it with `cais pull {name}`",
        )
    if isinstance(exc, docker.errors.NotFound):
        if container is not None:
            return ContainerNotFound(
                f"No container is named `{container}`", hint="list containers with `cais ps --all`"
            )
        if image is not None:
            return ImageNotFound(
                f"The image `{image}` does not exist in the Docker Engine",
                hint=f"list images with `cais images`, or fetch it with `cais pull {image}`",
            )
        return EngineError(f"The Docker Engine did not find it: {_explanation(exc)}")
    if isinstance(exc, docker.errors.APIError):
        status = exc.status_code or 0
        text = _explanation(exc)
        if status == 409:
            return EngineError(f"The Docker Engine refused: {text}")
        if status >= 500 and _looks_like_registry(text):
            return RegistryError(f"The registry did not answer as expected: {text}", temporary=True)
        return EngineError(f"The Docker Engine refused the request: {text}")
    if isinstance(exc, docker.errors.StreamParseError):
        return EngineError(f"The Docker Engine sent an answer cais cannot read: {exc}")
    if isinstance(exc, requests.exceptions.Timeout):
        return EngineError(
            f"The Docker Engine at `{engine_host()}` did not answer in time",
            hint="check that it is not overloaded, then try again",
        )
    if isinstance(exc, requests.exceptions.RequestException):
        return unreachable()
    if isinstance(exc, docker.errors.DockerException):
        if "server API version" in str(exc) or "Connection" in str(exc):
            return unreachable()
        return EngineError(f"The Docker Engine call failed: {_explanation(exc)}")
    return None


def _explanation(exc: Exception) -> str:
    text = getattr(exc, "explanation", None) or str(exc)
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return str(text).strip()


def _looks_like_registry(text: str) -> bool:
    return any(word in text for word in ("registry", 'Get "http', "dial tcp", "manifest"))
