"""Read an image the Docker Engine holds into the blob store, through its image-save API.

The engine's `docker save` stream gives the config exactly as the engine hashed it (so the
image id is kept) and one uncompressed tar per layer (so diff ids need no decompression).
An image whose config and layers the store already holds is not read again.
"""

from __future__ import annotations

import io
import json
import posixpath
import tarfile
from collections.abc import Iterator
from typing import TYPE_CHECKING

from cais.engine.client import engine_errors
from cais.errors import EngineError, ImageNotFound
from cais.image.blobs import BlobStore
from cais.image.image import Image
from cais.image.layer import Layer
from cais.image.media import MediaType
from cais.image.platform import Platform

if TYPE_CHECKING:
    import docker

__all__ = ["read"]

_SMALL = 1 << 20  # members smaller than this (manifest.json, configs) are read into memory
_CHUNK = 1 << 20


def read(
    client: docker.DockerClient, reference: str, *, store: BlobStore, platform: Platform
) -> Image | None:
    """The engine's image `reference` with its blobs in `store`; None when the engine has no
    such image, or has it for another platform."""
    try:
        with engine_errors(image=reference):
            details = client.api.inspect_image(reference)
    except ImageNotFound:
        return None
    held = Platform(
        details.get("Os") or "linux", details.get("Architecture") or "", details.get("Variant")
    )
    if held != platform:
        return None
    image_id = details["Id"]
    diff_ids = (details.get("RootFS") or {}).get("Layers") or []
    if not (store.has(image_id) and all(store.has(d) for d in diff_ids)):
        _save_into(client, reference, store)
    config_json = store.get(image_id)
    layers = tuple(Layer.from_store(store, diff_id) for diff_id in diff_ids)
    return Image(config_json, layers, MediaType.OCI_MANIFEST)


def _save_into(client: docker.DockerClient, reference: str, store: BlobStore) -> None:
    """Stream the engine's `docker save` of `reference` into the store, checking that its
    config and layers are what its manifest says."""
    small: dict[str, bytes] = {}
    stored: dict[str, str] = {}  # member name → digest of what was stored
    with engine_errors(image=reference):
        stream = _ChunkReader(client.api.get_image(reference, chunk_size=_CHUNK))
        with tarfile.open(fileobj=stream, mode="r|") as archive:
            for member in archive:
                if not member.isfile():
                    continue
                source = archive.extractfile(member)
                if source is None:
                    continue
                name = posixpath.normpath(member.name)
                if member.size < _SMALL:
                    small[name] = source.read()
                    continue
                with store.writer() as out:
                    while chunk := source.read(_CHUNK):
                        out.write(chunk)
                stored[name] = out.digest
    try:
        manifest = json.loads(small["manifest.json"])[0]
        config_name = posixpath.normpath(manifest["Config"])
        layer_names = [posixpath.normpath(name) for name in manifest["Layers"]]
    except (KeyError, IndexError, ValueError) as exc:
        raise EngineError(
            f"The Docker Engine's export of `{reference}` has no readable manifest.json"
        ) from exc
    for name in [config_name, *layer_names]:
        if name in small:
            stored[name] = store.put(small[name])
        if name not in stored:
            raise EngineError(f"The Docker Engine's export of `{reference}` lacks `{name}`")
    config = json.loads(store.get(stored[config_name]))
    diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
    if [stored[name] for name in layer_names] != diff_ids:
        raise EngineError(
            f"The layers the Docker Engine exported for `{reference}` are not those its config "
            "lists",
            hint="the engine's copy may be damaged: pull the image again",
        )


class _ChunkReader(io.RawIOBase):
    """A file over an iterator of byte chunks (the engine's response stream)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        super().__init__()
        self._chunks = iter(chunks)
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        while not self._pending:
            try:
                self._pending = memoryview(next(self._chunks))
            except StopIteration:
                return 0
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count
