"""Into the Docker Engine, through its image-load API, with no compression.

The engine names an image by its config's digest, so an image already there is only
tagged. Otherwise the `docker save` stream is posted to `/images/load`, leaving out the
layers the engine already holds: it reads a layer file only when it lacks the chain of
layers up to it (checked against Docker 20.10 in tests/integration/test_sinks.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from cais.engine.client import engine_errors
from cais.engine.images import image_exists
from cais.errors import EngineError, ImageNotFound
from cais.image.image import Image
from cais.sinks import tarball
from cais.sinks._tags import parse_tags

if TYPE_CHECKING:
    import docker

__all__ = ["chain_ids", "held_chains", "held_layers", "write"]


def write(
    image: Image,
    client: docker.DockerClient,
    *,
    tags: Sequence[str] = (),
    candidates: Sequence[str] | None = None,
) -> str:
    """Put `image` in the engine tagged `tags` (an image already there is only tagged).

    The image is loaded untagged and then tagged, so both ways end the same. `candidates`
    (the base image, an earlier version) name the images likely to share its first layers;
    without them every image in the engine is looked at. Returns the image id.
    """
    references = parse_tags(tags)
    if not image_exists(client, image.id):
        skip = held_layers(image, held_chains(client, candidates))
        with engine_errors():
            messages = client.api.load_image(tarball.stream(image, skip=skip))
            for message in messages:
                if message.get("error"):
                    raise EngineError(
                        f"The Docker Engine did not load the image: {message['error']}"
                    )
        if not image_exists(client, image.id):
            raise EngineError(f"The Docker Engine loaded the image but has no `{image.id}`")
    for reference in references:
        with engine_errors(image=image.id):
            client.api.tag(image.id, reference.name, reference.tag or "latest")
    return image.id


def chain_ids(diff_ids: Iterable[str]) -> list[str]:
    """The chain id of every prefix of a layer list, as the engine's layer store names them."""
    chains: list[str] = []
    for diff_id in diff_ids:
        if not chains:
            chains.append(diff_id)
        else:
            text = f"{chains[-1]} {diff_id}".encode()
            chains.append("sha256:" + hashlib.sha256(text).hexdigest())
    return chains


def held_layers(image: Image, held_chains: set[str]) -> int:
    """How many of the image's first layers the engine holds (their files may be left out)."""
    count = 0
    for position, chain in enumerate(chain_ids(layer.diff_id for layer in image.layers)):
        if chain in held_chains:
            count = position + 1
    return count


def held_chains(client: docker.DockerClient, candidates: Sequence[str] | None = None) -> set[str]:
    """The layer chains of the `candidates` the engine has, or of all its images.

    The Engine API lists no layers by themselves: each image is inspected (one request each;
    0.36 s for 198 images here).
    """
    if candidates is None:
        with engine_errors():
            candidates = [summary["Id"] for summary in client.api.images(all=True)]
    held: set[str] = set()
    for reference in candidates:
        try:
            with engine_errors(image=reference):
                layers = client.api.inspect_image(reference)["RootFS"].get("Layers") or []
        except ImageNotFound:
            continue  # not there (or removed meanwhile): it holds nothing
        held.update(chain_ids(layers))
    return held
