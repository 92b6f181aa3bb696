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
_MANIFESTS = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)


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
    import httpx

    from cais.registry.auth import _is_loopback

    scheme = "http" if _is_loopback(registry) else "https"
    base = f"{scheme}://{registry}/v2/{_REPOSITORY}/manifests"
    found = set()
    try:
        timeout = httpx.Timeout(10, connect=5)
        with httpx.Client(timeout=timeout, follow_redirects=True, transport=transport) as client:
            headers = {"Accept": _MANIFESTS}
            for python in pythons:
                url = f"{base}/{python}-slim"
                response = client.head(url, headers=headers)
                if response.status_code == 401:  # Docker Hub: an anonymous token, then again
                    headers["Authorization"] = f"Bearer {_token(client, response)}"
                    response = client.head(url, headers=headers)
                if response.status_code == 200:
                    found.add(python)
    except (httpx.HTTPError, LookupError, ValueError):
        pass  # unreachable, or a challenge that gives no token: it has none to offer
    return found


def _token(client: httpx.Client, challenge: httpx.Response) -> str:
    """An anonymous pull token from the realm a 401's Bearer challenge names."""
    from cais.registry.auth import _parse_challenge

    scheme, _, params = challenge.headers.get("www-authenticate", "").partition(" ")
    fields = _parse_challenge(params)
    if scheme.lower() != "bearer" or "realm" not in fields:
        raise LookupError("no token service")
    query = {"scope": f"repository:{_REPOSITORY}:pull"}
    if "service" in fields:
        query["service"] = fields["service"]
    answer = client.get(fields["realm"], params=query).json()
    token = answer.get("token") or answer.get("access_token")
    if not token:
        raise LookupError("no token")
    return token
