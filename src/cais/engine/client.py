"""The Docker Engine connection, and the one place Docker SDK errors become cais errors."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import requests.exceptions

from cais.errors import (
    CaisError,
    ContainerNotFound,
    EngineError,
    ImageNotFound,
    RegistryError,
)

__all__ = ["connect", "docker_cli", "engine_errors", "engine_host"]

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


def connect(timeout: int = 120) -> docker.DockerClient:
    """A client for the engine at DOCKER_HOST or the default socket, API version negotiated."""
    host = engine_host()
    if host.startswith("unix://") and not Path(host.removeprefix("unix://")).exists():
        raise EngineError(f"The Docker Engine at `{host}` is not reachable", hint=_START_HINT)
    with engine_errors():
        client = docker.from_env(version="auto", timeout=timeout)
    return client


@contextlib.contextmanager
def engine_errors(*, image: str | None = None, container: str | None = None) -> Iterator[None]:
    """Translate Docker SDK and transport errors raised inside the block into cais errors."""
    try:
        yield
    except CaisError:
        raise
    except docker.errors.ImageNotFound as exc:
        raise ImageNotFound(
            f"The image `{image or _explanation(exc)}` does not exist in the Docker Engine",
            hint="list images with `cais images`, build one with `cais build`, "
            "or fetch one with `cais pull`",
        ) from exc
    except docker.errors.NotFound as exc:
        if container is not None:
            raise ContainerNotFound(
                f"No container is named `{container}`",
                hint="list containers with `cais ps --all`",
            ) from exc
        if image is not None:
            raise ImageNotFound(
                f"The image `{image}` does not exist in the Docker Engine",
                hint="list images with `cais images`, or fetch it with `cais pull`",
            ) from exc
        raise EngineError(f"The Docker Engine did not find it: {_explanation(exc)}") from exc
    except docker.errors.APIError as exc:
        status = exc.status_code or 0
        text = _explanation(exc)
        if status == 409:
            raise EngineError(f"The Docker Engine refused: {text}") from exc
        if status >= 500 and _looks_like_registry(text):
            raise RegistryError(
                f"The registry did not answer as expected: {text}", temporary=True
            ) from exc
        raise EngineError(f"The Docker Engine refused the request: {text}") from exc
    except docker.errors.StreamParseError as exc:
        raise EngineError(f"The Docker Engine sent an answer cais cannot read: {exc}") from exc
    except requests.exceptions.Timeout as exc:
        raise EngineError(
            f"The Docker Engine at `{engine_host()}` did not answer in time",
            hint="check that it is not overloaded, then try again",
        ) from exc
    except requests.exceptions.RequestException as exc:
        raise EngineError(
            f"The Docker Engine at `{engine_host()}` is not reachable", hint=_START_HINT
        ) from exc
    except docker.errors.DockerException as exc:
        if "server API version" in str(exc) or "Connection" in str(exc):
            raise EngineError(
                f"The Docker Engine at `{engine_host()}` is not reachable", hint=_START_HINT
            ) from exc
        raise EngineError(f"The Docker Engine call failed: {_explanation(exc)}") from exc


def _explanation(exc: docker.errors.DockerException) -> str:
    text = getattr(exc, "explanation", None) or str(exc)
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return str(text).strip()


def _looks_like_registry(text: str) -> bool:
    return any(word in text for word in ("registry", 'Get "http', "dial tcp", "manifest"))
