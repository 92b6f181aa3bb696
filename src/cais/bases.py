"""Which `python:X.Y-slim` base images this site can have: those the engine holds, then those
the base registry serves — a Docker Hub mirror named by CAIS_BASE_REGISTRY=HOST, read with
Docker Hub's paths (`HOST/library/python:3.11-slim`) — or else Docker Hub itself.

A site without Docker Hub that holds only some of them gets an image's Python among those with
no setting. Only the tags are asked about (a HEAD of each manifest), never the images.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx

__all__ = ["BASE_REGISTRY_ENV", "Bases", "available_pythons", "base_registry"]

BASE_REGISTRY_ENV = "CAIS_BASE_REGISTRY"
_DOCKER_HUB = "registry-1.docker.io"
_REPOSITORY = "library/python"


@dataclass(frozen=True)
class Bases:
    """The Pythons whose base image can be had, and the places that were asked."""

    pythons: tuple[str, ...]
    asked: tuple[str, ...]

    def images(self, pythons: Iterable[str]) -> str:
        return ", ".join(f"`{_image(p)}`" for p in pythons)


def _image(python: str) -> str:
    return f"python:{python}-slim"


def base_registry() -> str | None:
    """The registry named by CAIS_BASE_REGISTRY (a host, with a port maybe), if any."""
    value = os.environ.get(BASE_REGISTRY_ENV, "").strip().rstrip("/")
    return value.removeprefix("https://").removeprefix("http://") or None


def available_pythons(pythons: Iterable[str]) -> Bases:
    """Those of `pythons` (X.Y) whose `python:X.Y-slim` is in the engine, or else in the
    base registry (Docker Hub when none is set). Places that do not answer count as having
    none; `asked` names them all."""
    wanted = list(dict.fromkeys(pythons))
    found = _in_engine(wanted)
    asked = ["the Docker Engine"]
    registry = base_registry() or _DOCKER_HUB
    missing = [p for p in wanted if p not in found]
    if missing:
        found |= _in_registry(registry, missing)
        asked.append(f"`{registry}`" if registry != _DOCKER_HUB else "Docker Hub")
    return Bases(tuple(p for p in wanted if p in found), tuple(asked))


def _in_engine(pythons: list[str]) -> set[str]:
    from cais.engine.client import connect
    from cais.errors import CaisError

    try:
        client = connect(timeout=10)
    except CaisError:
        return set()  # no engine is an answer: it holds none
    try:
        tags = {tag for image in client.images.list(name="python") for tag in image.tags}
    except Exception:  # noqa: BLE001 - an engine that does not answer holds none either
        return set()
    finally:
        client.close()
    return {p for p in pythons if {_image(p), f"docker.io/library/{_image(p)}"} & tags}


def _in_registry(
    registry: str, pythons: list[str], *, transport: httpx.BaseTransport | None = None
) -> set[str]:
    """The Pythons whose `python:X.Y-slim` the registry holds, asked anonymously (Docker Hub's
    token flow included) with one manifest HEAD each."""
    from cais.errors import CaisError
    from cais.registry.client import RegistryClient

    found = set()
    with RegistryClient(
        registry, credentials=None, transport=transport, timeout=10, attempts=1
    ) as client:
        for python in pythons:
            try:
                if client.manifest_digest(_REPOSITORY, f"{python}-slim") is not None:
                    found.add(python)
            except CaisError:
                break  # unreachable, or no token for us: it has none to offer
    return found
