"""What a deployment runs: a saved model's serving image or any image, as the engine knows it.

The image is named by version tag and digest, never by `latest` alone. The digest is the
manifest digest a registry gave the image (`RepoDigests`), so the file pulls exactly these
bytes anywhere; an image that was never pushed has no such digest, and is named by its tag
alone, with its id recorded in a comment beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cais.engine.client import engine_errors
from cais.errors import DeployError, ImageNotFound
from cais.registry.reference import parse_reference

if TYPE_CHECKING:
    import docker

    from cais.bundle.store import ModelStore

__all__ = ["Target", "target_of"]

LATEST = "latest"
_HEALTH_FORMS = ("CMD", "CMD-SHELL")


@dataclass(frozen=True)
class Target:
    """The image a deployment runs, and what its files need to know about it."""

    image: str  # as the compose file names it: NAME:TAG@sha256:… or NAME:TAG
    image_id: str
    name: str  # the model's name, or the repository's last part: names the deployment
    model: str | None  # `name:version` of the model the image serves, if cais built it
    port: int  # where the API listens inside the container
    healthcheck: tuple[str, ...] | None  # Docker's form: ("CMD", …) or ("CMD-SHELL", "…")

    @property
    def pinned(self) -> bool:
        return "@sha256:" in self.image


def target_of(client: docker.DockerClient, argument: str, store: ModelStore) -> Target:
    """The image `argument` names: a saved model (`name:version`, `name`) whose serving image
    `cais build` made, or an image reference the engine holds."""
    model = _saved_model(store, argument)
    if model is not None:
        try:
            with engine_errors(image=model):
                image = client.images.get(model)
        except ImageNotFound:
            raise DeployError(
                f"The model `{model}` has no image in the engine",
                hint=f"build it with `cais build {model}`",
            ) from None
        return _target(image, parse_reference(model))
    reference = parse_reference(argument)
    try:
        with engine_errors(image=argument):
            image = client.images.get(argument)
    except ImageNotFound:
        if "/" in argument or "@" in argument:
            raise DeployError(
                f"The image `{argument}` is not in the engine",
                hint=f"pull it with `cais pull {argument}`, or build it",
            ) from None
        raise DeployError(
            f"`{argument}` is neither a saved model nor an image in the engine",
            hint="`cais models list` lists the models, `cais images` the images",
        ) from None
    return _target(image, reference)


def _saved_model(store: ModelStore, argument: str) -> str | None:
    """`name:version` of the saved model `argument` names; None when it names none. A name
    with a version the store lacks is the store's error (it lists the versions it has)."""
    from cais.bundle.store import split_reference
    from cais.errors import BundleError

    if "/" in argument or "@" in argument:
        return None
    try:
        name, _ = split_reference(argument)
    except BundleError:
        return None
    if not store.versions(name):
        return None
    metadata = store.get(argument).metadata
    return f"{metadata.name}:{metadata.version}"


def _target(image: Any, wanted: Any) -> Target:
    attrs = image.attrs
    config = attrs.get("Config") or {}
    labels = config.get("Labels") or {}
    model_name, version = labels.get("dev.cais.model.name"), labels.get("dev.cais.model.version")
    model = f"{model_name}:{version}" if model_name and version else None
    name = model_name or wanted.name.rsplit("/", 1)[-1]
    return Target(
        image=_pinned_reference(attrs, wanted, version),
        image_id=image.id,
        name=name,
        model=model,
        port=_port(config, str(wanted)),
        healthcheck=_healthcheck(config),
    )


def _pinned_reference(attrs: dict, wanted: Any, version: str | None) -> str:
    """NAME:TAG@DIGEST when a registry holds the image, else NAME:TAG; the tag is a version
    (the one asked for, else another tag of the same image), `latest` only with a digest."""
    tags = [parse_reference(t) for t in attrs.get("RepoTags") or []]
    digests = [parse_reference(d, default_tag=None) for d in attrs.get("RepoDigests") or []]
    same_name = [d for d in digests if d.name == wanted.name]
    pushed = (same_name or digests or [None])[0]
    name = pushed.name if pushed else wanted.name
    tag = wanted.tag or LATEST  # `name@digest` asks for no tag: a version tag is found
    if wanted.digest and any(d.digest == wanted.digest for d in digests):
        pushed = next(d for d in digests if d.digest == wanted.digest)
        name = pushed.name
    if tag == LATEST:
        versions = [t.tag for t in tags if t.name in (name, wanted.name) and t.tag != LATEST]
        tag = version if version in versions else (versions[0] if versions else LATEST)
    if pushed:
        return f"{name}:{tag}@{pushed.digest}"
    if tag == LATEST:
        raise DeployError(
            f"`{wanted}` names no version, and no registry holds it by digest",
            hint=f"tag it with its version (`cais tag {wanted} {wanted.name}:1.0`), or push it",
        )
    return f"{name}:{tag}"


def _port(config: dict, image: str) -> int:
    """The port the image exposes (cais's serving port when it exposes several)."""
    ports = sorted(
        int(p.split("/")[0]) for p in (config.get("ExposedPorts") or {}) if p.endswith("/tcp")
    )
    if not ports:
        raise DeployError(
            f"The image `{image}` exposes no TCP port, so a deployment cannot know where it listens",
            hint="add `EXPOSE PORT` to its Dockerfile and build it again",
        )
    return 8080 if 8080 in ports else ports[0]


def _healthcheck(config: dict) -> tuple[str, ...] | None:
    test = (config.get("Healthcheck") or {}).get("Test") or []
    return tuple(test) if test and test[0] in _HEALTH_FORMS else None
