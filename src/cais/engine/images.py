"""Images in the Docker Engine: list, tag, remove, push and pull with per-layer progress."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

import docker

from cais.engine.client import engine_errors
from cais.errors import AuthError, EngineError, ImageNotFound, NotInRegistry, RegistryError
from cais.registry.reference import Reference, parse_reference

__all__ = [
    "ImageSummary",
    "LayerProgress",
    "image_exists",
    "list_images",
    "pull",
    "push",
    "remove_image",
    "tag_image",
]

# Called with (layer id, status, bytes done, bytes total) for every progress message.
LayerProgress = Callable[[str, str, int, int], None]


@dataclass(frozen=True)
class ImageSummary:
    id: str
    tags: tuple[str, ...]
    size: int
    created: str


def list_images(client: docker.DockerClient, name: str | None = None) -> list[ImageSummary]:
    # The engine's summaries, in one request: `client.images.list` inspects each image it
    # listed, and fails when another process removes one meanwhile.
    with engine_errors():
        images = client.api.images(name=name)
    return [
        ImageSummary(
            str(image["Id"]).removeprefix("sha256:")[:12],
            tuple(tag for tag in image.get("RepoTags") or () if tag != "<none>:<none>"),
            int(image.get("Size") or 0),
            datetime.fromtimestamp(int(image.get("Created") or 0), timezone.utc).strftime(
                "%Y-%m-%d %H:%M:%S"
            ),
        )
        for image in images
    ]


def image_exists(client: docker.DockerClient, reference: str) -> bool:
    try:
        with engine_errors(image=reference):
            client.images.get(reference)
        return True
    except ImageNotFound:
        return False


def remove_image(client: docker.DockerClient, reference: str, *, force: bool = False) -> None:
    """Remove an image (a name or an id); one in use by a container says which and how."""
    parse_reference(reference)  # cais's own sentence for a malformed name (capitals, spaces)
    with engine_errors(image=reference):
        try:
            client.images.remove(reference, force=force)
        except docker.errors.APIError as exc:
            if exc.status_code != 409:
                raise
            raise _in_use(client, reference, str(exc.explanation or exc)) from exc


def _in_use(client: docker.DockerClient, reference: str, reason: str) -> EngineError:
    users = client.containers.list(all=True, filters={"ancestor": reference}, ignore_removed=True)
    if not users:  # another conflict, such as images built on this one
        return EngineError(f"The image `{reference}` cannot be removed: {reason}")
    user = users[0]
    if user.status == "running":
        how = f"stop and remove it first with `cais rm -f {user.name}`"
    else:
        how = (
            f"remove it first with `cais rm {user.name}`, "
            f"or untag the image anyway with `cais rmi --force {reference}`"
        )
    return EngineError(f"The image `{reference}` is used by the container `{user.name}`", hint=how)


def tag_image(client: docker.DockerClient, source: str, target: str) -> Reference:
    """Give the image `source` (a name or an id) the name `target`, as `docker tag`."""
    parse_reference(source)
    ref = parse_reference(target)
    if ref.digest:
        raise EngineError(
            f"`{target}` names a digest, which is not a tag", hint="use NAME:TAG, such as hello:2"
        )
    with engine_errors(image=source):
        client.images.get(source).tag(ref.name, tag=ref.tag)
    return ref


def push(client: docker.DockerClient, reference: str, progress: LayerProgress | None = None) -> str:
    """Push `reference` from the engine to its registry; returns the pushed manifest digest."""
    ref = parse_reference(reference)
    with engine_errors(image=reference):
        client.images.get(str(ref))  # a clear "does not exist" before talking to the registry
        stream = client.api.push(ref.name, tag=ref.tag, stream=True, decode=True)
        digest = ""
        for message in stream:
            if "error" in message:
                raise _registry_error(ref, message, "push")
            digest = (message.get("aux") or {}).get("Digest", digest)
            _report(message, progress)
    return digest


def pull(client: docker.DockerClient, reference: str, progress: LayerProgress | None = None) -> str:
    """Pull `reference` into the engine; returns the image id."""
    ref = parse_reference(reference)
    with engine_errors(image=reference):
        try:
            stream = client.api.pull(ref.name, tag=ref.digest or ref.tag, stream=True, decode=True)
            for message in stream:
                if "error" in message:
                    raise _registry_error(ref, message, "pull")
                _report(message, progress)
        except docker.errors.APIError as exc:
            raise _registry_error(ref, {"error": exc.explanation or str(exc)}, "pull") from exc
        return client.images.get(str(ref)).id


def _report(message: dict, progress: LayerProgress | None) -> None:
    if progress is None or "id" not in message:
        return
    detail = message.get("progressDetail") or {}
    progress(
        message["id"],
        message.get("status", ""),
        int(detail.get("current") or 0),
        int(detail.get("total") or 0),
    )


def _registry_error(ref: Reference, message: dict, verb: str) -> RegistryError:
    """The engine's pull or push failure as one sentence naming the image and its registry:
    never the engine's `Head "http://…"` wording."""
    text = str(message.get("errorDetail", {}).get("message") or message["error"]).strip()
    lowered = text.lower()
    registry = ref.registry if ref.explicit_registry else "Docker Hub"
    login = f"cais login {ref.registry}" if ref.explicit_registry else "cais login"
    if "may require 'docker login'" in lowered:  # Docker Hub cannot tell which
        return NotInRegistry(
            f"`{ref}` does not exist in the registry `{registry}`, or needs a login",
            hint=f"check the name and tag; a private image needs `{login}` first",
        )
    if any(
        word in lowered
        for word in ("unauthorized", "authentication required", "no basic auth", "denied")
    ):
        return _refused(ref, registry, login, verb, denied="denied" in lowered)
    if any(word in lowered for word in ("not found", "manifest unknown", "does not exist")):
        return NotInRegistry(
            f"`{ref}` does not exist in the registry `{registry}`",
            hint="check the name and tag; `cais images` lists local images",
        )
    if any(
        word in lowered
        for word in ("connection refused", "no such host", "dial tcp", "timeout", "i/o")
    ):
        return RegistryError(
            # the cause alone: `Get "https://…/v2/": dial tcp …: connect: connection refused`
            f"The registry `{registry}` does not answer: {text.rpartition(': ')[2]}",
            hint="check its address and that it is running, then try again",
            temporary=True,
        )
    return RegistryError(f"The {verb} of `{ref}` failed: {text}")


def _refused(ref: Reference, registry: str, login: str, verb: str, *, denied: bool) -> AuthError:
    """Who the registry refused, from the login saved for it (the engine sent the same)."""
    from cais.registry import credentials
    from cais.registry.auth import refused

    action = "push to" if verb == "push" else "pull"
    saved = credentials.get(ref.registry)
    if saved is None:
        return AuthError(
            f"The registry `{registry}` needs a login to {action} `{ref}`",
            hint=f"log in with `{login}`, then try again",
        )
    if denied:  # the login is good, and may not do this
        return AuthError(
            f"The registry `{registry}` refused to let `{saved.username}` {action} `{ref}`",
            hint=f"check that this account may {verb} it, or log in with another (`{login}`)",
        )
    error = refused(registry, saved)
    error.hint = f"log in again with `{login}`; {error.hint}"
    return error
