"""Image references, parsed once: `[registry/]repository[:tag][@digest]`."""

from __future__ import annotations

import re
from dataclasses import dataclass

from cais.errors import PlanError

__all__ = ["DOCKER_HUB", "DOCKER_HUB_CONFIG_KEY", "Reference", "parse_reference", "registry_key"]

DOCKER_HUB = "docker.io"
# The key Docker Hub credentials have in ~/.docker/config.json, for historical reasons.
DOCKER_HUB_CONFIG_KEY = "https://index.docker.io/v1/"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DOCKER_HUB_ALIASES = ("docker.io", "index.docker.io", "registry-1.docker.io")
_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")


@dataclass(frozen=True)
class Reference:
    registry: str  # host[:port]; docker.io for Docker Hub
    repository: str  # path within the registry (library/python on Docker Hub)
    tag: str | None = None
    digest: str | None = None
    explicit_registry: bool = False

    @property
    def name(self) -> str:
        """The repository as the engine names it (`python`, `127.0.0.1:5000/hello`)."""
        if not self.explicit_registry:
            return self.repository.removeprefix("library/")
        return f"{self.registry}/{self.repository}"

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def parse_reference(text: str, *, default_tag: str | None = "latest") -> Reference:
    """Parse an image reference; fail early with a sentence saying what is wrong."""
    original = text
    if not text or text != text.strip() or "://" in text:
        raise PlanError(
            f"`{original}` is not an image reference", hint="use NAME[:TAG], such as hello:1.0"
        )
    digest = None
    if "@" in text:
        text, digest = text.split("@", 1)
        if not _DIGEST.fullmatch(digest):
            raise PlanError(
                f"`{original}` has a malformed digest", hint="digests look like sha256:<64 hex>"
            )
    tag = None
    last = text.rsplit("/", 1)[-1]
    if ":" in last:
        text, tag = text.rsplit(":", 1)
        if not _TAG.fullmatch(tag):
            raise PlanError(
                f"`{tag}` is not a valid tag",
                hint="tags use letters, digits, _ . - (up to 128), and do not start with . or -",
            )
    first, _, rest = text.partition("/")
    explicit = bool(rest) and ("." in first or ":" in first or first == "localhost")
    registry = first if explicit else DOCKER_HUB
    repository = rest if explicit else text
    if repository != repository.lower() and _REPOSITORY.fullmatch(repository.lower()):
        raise PlanError(
            f"`{original}` has capital letters, and image names are lowercase",
            hint=f"use `{text[: len(text) - len(repository)]}{repository.lower()}"
            f"{original[len(text) :]}`",
        )
    if not _REPOSITORY.fullmatch(repository):
        raise PlanError(
            f"`{original}` is not a valid image name",
            hint="names use lowercase letters, digits and . _ - separated by /",
        )
    if registry in _DOCKER_HUB_ALIASES:
        registry = DOCKER_HUB
    if registry == DOCKER_HUB and "/" not in repository:
        repository = f"library/{repository}"
    if tag is None and digest is None:
        tag = default_tag
    return Reference(registry, repository, tag, digest, explicit and registry != DOCKER_HUB)


def registry_key(registry: str | None) -> str:
    """The key a registry's credentials have in the docker config file."""
    if registry in (
        None,
        "",
        DOCKER_HUB,
        "index.docker.io",
        "registry-1.docker.io",
        DOCKER_HUB_CONFIG_KEY,
    ):
        return DOCKER_HUB_CONFIG_KEY
    return registry.removeprefix("https://").removeprefix("http://").rstrip("/")
