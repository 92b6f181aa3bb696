"""The images cais holds: a record, in the blob store, of every image built or pulled by tag.

`remember` writes, for each tag, a link of the `image` index to a small JSON description of
the image (its config's digest and its layers: diff id, compression, compressed digest when
known), with the config stored beside it. `lookup` makes the `Image` (or `ImageIndex`) again
from the store, so `cais push` sends what cais built with no engine involved. The description
names layers by diff id rather than by a manifest digest: an image built for the engine alone
has uncompressed layers, and recording it must not cost compressing them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

from cais.errors import BlobError
from cais.image.blobs import BlobStore, Link
from cais.image.image import Image, canonical_json
from cais.image.index import ImageIndex
from cais.image.layer import Layer
from cais.image.media import Compression, MediaType
from cais.registry.reference import parse_reference

__all__ = ["IMAGE_INDEX", "Recorded", "configs", "forget", "lookup", "records", "remember"]

IMAGE_INDEX = "image"


@dataclass(frozen=True)
class Recorded:
    """A tag cais holds an image for, and that image (None when its blobs are gone)."""

    reference: str
    link: Link
    image: Image | ImageIndex | None


def remember(store: BlobStore, tags: Sequence[str], image: Image | ImageIndex) -> str:
    """Record `image` under every tag (`NAME` meaning `NAME:latest`); returns the record's
    digest."""
    record = _describe(store, image)
    for tag in tags:
        store.set_link(IMAGE_INDEX, _key(_normal(tag)), record)
    return record


def forget(store: BlobStore, tag: str) -> None:
    """Drop the record of `tag` (the engine's image of that name is another now)."""
    store.remove_link(IMAGE_INDEX, _key(_normal(tag)))


def lookup(store: BlobStore, tag: str) -> Image | ImageIndex | None:
    """The image recorded for `tag`, or None when there is none or its blobs are no longer all
    in the store (a damaged blob is found when it is read, and refused then)."""
    record = store.link(IMAGE_INDEX, _key(_normal(tag)))
    return None if record is None else _rebuild(store, record, touch=True)


def records(store: BlobStore) -> list[Recorded]:
    """Every tag recorded, with its image when still whole."""
    found = []
    for link in store.links(IMAGE_INDEX):
        image = None if link.target is None else _rebuild(store, link.target, touch=False)
        found.append(Recorded(unquote(link.key), link, image))
    return found


def configs(store: BlobStore, record: str) -> list[dict[str, Any]]:
    """The configs of the images a record names that can still be read (even when a layer of
    theirs is gone): what made each layer, from their history."""
    try:
        data = json.loads(store.get(record, touch=False))
        if "manifests" in data:
            return [config for part in data["manifests"] for config in configs(store, part)]
        return [json.loads(store.get(data["config"], touch=False))]
    except (BlobError, ValueError, KeyError, TypeError):
        return []


def _normal(tag: str) -> str:
    return str(parse_reference(tag))


def _key(reference: str) -> str:
    return quote(reference, safe="")  # reversible, and no `/` or `:` in a file name


def _describe(store: BlobStore, image: Image | ImageIndex) -> str:
    if isinstance(image, ImageIndex):
        parts = [_describe(store, one) for one in image.images]
        return store.put(canonical_json({"manifests": parts}))
    config = store.put(image.config_json)
    layers = []
    for layer in image.layers:
        entry: dict[str, Any] = {"diffId": layer.diff_id, "compression": layer.compression.value}
        if layer.known_digest is not None:
            entry["digest"] = layer.known_digest
        layers.append(entry)
    return store.put(
        canonical_json({"mediaType": image.media_type.value, "config": config, "layers": layers})
    )


def _rebuild(store: BlobStore, record: str, *, touch: bool) -> Image | ImageIndex | None:
    try:
        data = json.loads(store.get(record, touch=touch))
        if "manifests" in data:
            images = [_rebuild(store, part, touch=touch) for part in data["manifests"]]
            if any(not isinstance(one, Image) for one in images):
                return None
            return ImageIndex(tuple(images))  # type: ignore[arg-type]
        config = store.get(data["config"], touch=touch)
        layers = [_layer(store, entry) for entry in data["layers"]]
        return Image(config, tuple(layers), MediaType(data["mediaType"]))
    except (BlobError, ValueError, KeyError, TypeError):
        return None  # a blob pruned or damaged, or a record of another shape: not whole


def _layer(store: BlobStore, entry: dict[str, Any]) -> Layer:
    compression = Compression(entry["compression"])
    digest = entry.get("digest")
    if digest is not None and store.has(digest):
        return Layer.from_compressed(
            store, digest=digest, diff_id=entry["diffId"], compression=compression
        )
    return Layer.from_store(store, entry["diffId"], compression=compression)
