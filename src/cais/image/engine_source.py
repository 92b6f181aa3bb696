"""Read an image the Docker Engine holds into the blob store, through its image-save API.

The engine's `docker save` stream gives the config exactly as the engine hashed it (so the
image id is kept) and one uncompressed tar per layer (so diff ids need no decompression).
An image whose config and layers the store already holds is not read again.

Exporting is the slow part (the whole image, 3.4 s for `python:3.11-slim` here), and an
image bound for the same engine needs none of its base's bytes: read lazily, the image is
its config (from the store, or fetched by digest where the engine's image came from) and
the diff ids the engine lists, and its layers are read only when a sink (or the SBOM) reads
one: from the registry the image came from when it holds the same config (1.0 s for the
stand-in `python:3.11-slim`, against 1.95 s for the export stream alone), else exported.
"""

from __future__ import annotations

import io
import json
import posixpath
import tarfile
import threading
from collections.abc import Callable, Iterator
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
    client: docker.DockerClient,
    reference: str,
    *,
    store: BlobStore,
    platform: Platform,
    connect: Callable[[], docker.DockerClient] | None = None,
    config: Callable[[str], bytes | None] | None = None,
    pull: Callable[[str], bool] | None = None,
) -> Image | None:
    """The engine's image `reference` with its blobs in `store`; None when the engine has no
    such image, or has it for another platform.

    With `connect`, the layers the store lacks are lazy: exported (through a new connection)
    when first read. `config` gives the config's bytes by digest (None when it cannot): with
    it, a config the store lacks needs no export either. `pull` puts the layers of the image
    whose config has this digest in the store from elsewhere (False when it cannot): lazy
    layers are read through it before any export.
    """
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
    if connect is None:
        if not (store.has(image_id) and all(store.has(d) for d in diff_ids)):
            _save_into(client, image_id, store)
        return _image(store, image_id, diff_ids, reference, Layer.from_store)
    if not store.has(image_id):
        content = config(image_id) if config is not None else None
        if content is not None:
            with store.writer(expected=image_id) as out:
                out.write(content)
        else:
            _save_into(client, image_id, store)
    export = _Export(connect, image_id, store, reference, pull)
    return _image(store, image_id, diff_ids, reference, lambda s, d: Layer.lazy(s, d, export))


def _image(
    store: BlobStore,
    image_id: str,
    diff_ids: list[str],
    reference: str,
    layer: Callable[[BlobStore, str], Layer],
) -> Image:
    config_json = store.get(image_id)
    listed = (json.loads(config_json).get("rootfs") or {}).get("diff_ids") or []
    if listed != diff_ids:
        raise EngineError(
            f"The Docker Engine lists other layers for `{reference}` than its config does",
            hint="the engine's copy may be damaged: pull the image again",
        )
    return Image(config_json, tuple(layer(store, d) for d in diff_ids), MediaType.OCI_MANIFEST)


class _Export:
    """Puts an image's layers in the store once, when a layer is read (by whichever thread
    asks first; the others wait for it): through `pull` when it can, else the engine's export."""

    def __init__(
        self,
        connect: Callable[[], docker.DockerClient],
        image_id: str,
        store: BlobStore,
        reference: str,
        pull: Callable[[str], bool] | None = None,
    ) -> None:
        self._connect = connect
        self._pull = pull
        self._image_id = image_id
        self._store = store
        self._reference = reference
        self._lock = threading.Lock()

    def __call__(self) -> None:
        with self._lock:
            diff_ids = json.loads(self._store.get(self._image_id))["rootfs"]["diff_ids"]
            if all(self._store.has(d) for d in diff_ids):
                return
            pulled = self._pull is not None and self._pull(self._image_id)
            if pulled and all(self._store.has(d) for d in diff_ids):
                return
            from cais.engine.images import image_exists

            client = self._connect()
            try:
                # Removed (or pruned) since the build read it: the engine's export would fail
                # with its own words about its image database.
                if not image_exists(client, self._image_id):
                    raise EngineError(
                        f"The Docker Engine no longer holds the base image `{self._reference}` "
                        f"(`{self._image_id[7:19]}`) whose layers this image needs",
                        hint=f"pull `{self._reference}` again and build again",
                    )
                _save_into(client, self._image_id, self._store)
            finally:
                client.close()


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
