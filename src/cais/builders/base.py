"""What every builder takes and gives back."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Protocol

from cais.builders.pip_settings import PipSettings

__all__ = [
    "BuildProgress",
    "BuildRequest",
    "BuildResult",
    "Builder",
    "BuilderChoice",
    "SilentProgress",
]


class BuilderChoice(str, Enum):
    AUTO = "auto"  # oci for what it can build (builders/select.docker_reason), else docker
    DOCKER = "docker"  # the engine: BuildKit through a docker CLI when one can, else classic
    BUILDKIT = "buildkit"
    CLASSIC = "classic"
    OCI = "oci"  # on the host, daemonless (builders/oci.py); gives an Image, not a BuildResult


@dataclass(frozen=True)
class BuildRequest:
    """One build: a context folder and either a rendered Dockerfile or the project's own."""

    context: Path
    tags: tuple[str, ...]
    dockerfile_text: str | None = None  # rendered by cais (None: use `dockerfile`)
    dockerfile: Path | None = None  # the project's own Dockerfile
    platform: str | None = None
    build_args: dict[str, str] = field(default_factory=dict)
    no_cache: bool = False
    pip: PipSettings = PipSettings()
    # Used when the project has no .dockerignore of its own.
    default_ignore: str | None = None


@dataclass(frozen=True)
class BuildResult:
    image_id: str
    tags: tuple[str, ...]
    builder: str
    seconds: float
    used_pip_settings: bool = False
    base_image: str | None = None  # the FROM of a Dockerfile cais wrote
    dockerfile_text: str | None = None  # the Dockerfile cais wrote
    ports: tuple[int, ...] = ()  # the ports it EXPOSEs, for the `cais run -p` hint


class BuildProgress(Protocol):
    """Receives a build's steps as they start and the lines they print."""

    def step(self, name: str) -> None: ...

    def log(self, line: str) -> None: ...


class SilentProgress:
    def step(self, name: str) -> None:
        pass

    def log(self, line: str) -> None:
        pass


class Builder(Protocol):
    name: str

    def build(self, request: BuildRequest, progress: BuildProgress) -> BuildResult: ...
