"""Read an image (one platform of an index) from a registry into the blob store.

Manifests, configs and layers are kept by digest: a blob the store holds is never fetched
again, and everything fetched is checked against its digest on the way in (the registry
client refuses a mismatch, and the store refuses content of another digest).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from cais.errors import NotInRegistry
from cais.image.blobs import BlobStore
from cais.image.image import Image
from cais.image.layer import Layer
from cais.image.media import MediaType
from cais.image.platform import Platform

if TYPE_CHECKING:
    from cais.registry.client import RegistryClient

__all__ = ["read"]


def read(
    client: RegistryClient,
    repository: str,
    reference: str,
    platform: Platform,
    *,
    store: BlobStore,
) -> Image:
    """The image `repository:reference` (a tag or a digest) for `platform`, its blobs in `store`.

    The tag is asked each time (it may have moved); what it names is fetched only once.
    """
    manifest = client.get_manifest(repository, reference, platform=str(platform))
    if not store.has(manifest.digest):
        with store.writer(expected=manifest.digest) as out:
            out.write(manifest.content)
    data = manifest.data
    media_type = MediaType(data.get("mediaType") or manifest.media_type)
    config_digest = data["config"]["digest"]
    if not store.has(config_digest):
        with store.writer(expected=config_digest) as out:
            out.write(client.read_blob(repository, config_digest))
    store.note_place(config_digest, client.registry, repository)
    config_json = store.get(config_digest)
    config = json.loads(config_json)
    if not platform.matches(config):
        raise NotInRegistry(
            f"`{client.registry}/{repository}:{reference}` is an image for "
            f"`{Platform.from_json(config)}`, not `{platform}`",
            hint="choose its platform with `--platform`, or another image",
        )
    diff_ids = config.get("rootfs", {}).get("diff_ids") or []
    entries = data.get("layers") or []
    if len(diff_ids) != len(entries):
        raise NotInRegistry(
            f"`{client.registry}/{repository}:{reference}` lists {len(entries)} layers but its "
            f"config {len(diff_ids)}",
            hint="the registry holds a damaged image: push it again",
        )
    layers = []
    for entry, diff_id in zip(entries, diff_ids, strict=True):
        digest = entry["digest"]
        if not store.has(digest):
            client.get_blob(repository, digest, store.path(digest))
        # A push to another repository of this registry then mounts the layer, not sends it.
        store.note_place(digest, client.registry, repository)
        compression = MediaType(entry["mediaType"]).compression
        if compression is None:  # an uncompressed layer: its digest is its diff id
            layers.append(Layer.from_store(store, diff_id))
        else:
            layers.append(
                Layer.from_compressed(
                    store, digest=digest, diff_id=diff_id, compression=compression
                )
            )
    return Image(config_json, tuple(layers), media_type)
