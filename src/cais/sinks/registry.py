"""Into a registry, through cais's registry client: no engine involved.

Blobs first (each skipped when the repository has it, mounted from another repository of
the same registry when the blob store knows one that holds it, else streamed up in its
compressed form), then the manifests: an index's images by digest, and the tag last, so a
tag never names an incomplete image. A tag that already names the image costs one HEAD.
Each image's SBOM (`cais.image.sbom`), when it has one, is then attached to that image's
manifest as an OCI 1.1 referrer: the image itself stays a plain manifest (or an index of
platform images only).
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import BinaryIO

from cais.errors import AuthError, NotInRegistry
from cais.image.blobs import BlobStore
from cais.image.image import Image
from cais.image.index import ImageIndex
from cais.registry.client import Opener, RegistryClient, Transfer
from cais.registry.reference import Reference
from cais.sinks._tags import parse_tags

__all__ = ["BlobProgress", "push_image_value", "write"]

# Called with (blob id, status, bytes done, bytes total), as the engine's push reports layers,
# so `cais.output.LayerDisplay` shows either. The id is the digest's hex.
BlobProgress = Callable[[str, str, int, int], None]

PUSHING = "Pushing"
PUSHED = "Pushed"
PRESENT = "Layer already exists"  # the engine's words, which the display knows
MOUNTED = "Mounted from {}"
JOBS = 4  # blobs sent at once, as go-containerregistry's remote.Write does


@dataclasses.dataclass(frozen=True)
class _Blob:
    digest: str
    size: int
    opener: Opener


def write(
    image: Image | ImageIndex,
    reference: str | Reference,
    *,
    client: RegistryClient | None = None,
    store: BlobStore | None = None,
    progress: BlobProgress | None = None,
    jobs: int = JOBS,
) -> Reference:
    """Push `image` (or an index) to the registry and tag `reference` names.

    Parameters:
        image: what to push; its layers are compressed first (once: the store keeps them).
        reference: `[registry/]name[:tag]`; a tag, not a digest (the digest is the image's).
        client: a client of that registry (one is made, with docker's credentials, if None).
        store: where blobs were pushed or pulled before is recorded (the layers' own store
            by default), so they can be mounted rather than sent again.
        progress: told each blob's bytes as they go and how it ended (from the threads that
            send them).
        jobs: how many blobs are sent at once.

    Returns the reference by digest (`name@sha256:…`) of what was pushed.
    """
    (target,) = parse_tags([str(reference)])
    own = client is None
    if client is None:
        client = RegistryClient(target.registry)
    elif client.registry != target.registry:
        raise ValueError(f"a client of {client.registry} cannot push to {target.registry}")
    try:
        _push(image, target, client, store or _store_of(image), progress, jobs)
    finally:
        if own:
            client.close()
    return dataclasses.replace(target, tag=None, digest=image.digest)


def push_image_value(
    image: Image | ImageIndex,
    tags: Sequence[str],
    *,
    store: BlobStore | None = None,
    progress: BlobProgress | None = None,
    connect: Callable[[str], RegistryClient] = RegistryClient,
) -> list[Reference]:
    """A build's `--push`: the image under every tag, each in the registry its name says.

    All tags are parsed before anything is sent; one client serves each registry, and a
    second tag in the same repository costs HEADs and one manifest.
    """
    targets = parse_tags(tags)
    clients: dict[str, RegistryClient] = {}
    try:
        pushed = []
        for target in targets:
            if target.registry not in clients:
                clients[target.registry] = connect(target.registry)
            client = clients[target.registry]
            pushed.append(write(image, target, client=client, store=store, progress=progress))
        return pushed
    finally:
        for client in clients.values():
            client.close()


def _push(
    image: Image | ImageIndex,
    target: Reference,
    client: RegistryClient,
    store: BlobStore,
    progress: BlobProgress | None,
    jobs: int,
) -> None:
    repository = target.repository
    tag = target.tag or "latest"
    images = image.images if isinstance(image, ImageIndex) else (image,)
    # The manifests first: making them compresses the layers (in parallel, once).
    manifests = [(one.digest, one.manifest_json, one.media_type.value) for one in images]
    blobs: dict[str, _Blob] = {}
    for one in images:
        config = one.config_json
        blobs.setdefault(
            one.config_digest, _Blob(one.config_digest, len(config), _bytes_opener(config))
        )
        for layer in one.layers:
            blobs.setdefault(
                layer.digest, _Blob(layer.digest, layer.compressed_size, layer.compressed)
            )
    if client.manifest_digest(repository, tag, push=True) == image.digest:
        # The tag already names this image, so the repository holds all of it.
        for digest in blobs:
            store.note_place(digest, client.registry, repository)
        _attach_sboms(client, repository, images)  # a push stopped after the tag completes
        return

    def send(blob: _Blob) -> None:
        _push_blob(client, store, repository, blob, progress)

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        sending = [pool.submit(send, blob) for blob in blobs.values()]
        try:
            for done in sending:
                done.result()
        except BaseException:
            for waiting in sending:  # a failed push stops without sending the rest
                waiting.cancel()
            raise
    if isinstance(image, ImageIndex):
        for digest, content, media_type in manifests:
            client.put_manifest(repository, digest, content, media_type)
    client.put_manifest(repository, tag, image.manifest_json, image.media_type.value)
    _attach_sboms(client, repository, images)


def _attach_sboms(client: RegistryClient, repository: str, images: Sequence[Image]) -> None:
    """Each image's SBOM as a referrer of its manifest (an index's platform images each have
    their own); attaching again changes nothing."""
    from cais.image import sbom
    from cais.registry.referrers import attach

    for one in images:
        document = sbom.read(one)
        if document is not None:
            attach(client, repository, sbom.referrer(one, document))


def _push_blob(
    client: RegistryClient,
    store: BlobStore,
    repository: str,
    blob: _Blob,
    progress: BlobProgress | None,
) -> None:
    name = blob.digest.removeprefix("sha256:")

    def tell(done: int) -> None:
        if progress is not None:
            progress(name, PUSHING, done, blob.size)

    opener = _checked(blob, tell)
    status = PUSHED
    if client.blob_exists(repository, blob.digest, push=True):
        status = PRESENT
    else:
        sources = [p for p in store.places(blob.digest, client.registry) if p != repository]
        moved = Transfer.UPLOADED
        if sources:
            try:
                moved = client.mount_blob(
                    repository, blob.digest, sources[0], size=blob.size, opener=opener
                )
            except (AuthError, NotInRegistry):
                # No right to read the source, or it is gone: send the blob instead.
                client.upload_blob(repository, blob.digest, blob.size, opener)
            if moved is Transfer.MOUNTED:
                status = MOUNTED.format(sources[0])
        else:
            client.upload_blob(repository, blob.digest, blob.size, opener)
    store.note_place(blob.digest, client.registry, repository)
    if progress is not None:
        progress(name, status, blob.size, blob.size)


def _checked(blob: _Blob, tell: Callable[[int], None]) -> Opener:
    """Each attempt's stream, reporting how far it got; at the blob's end it reads on to the
    end of the source, where a stored blob's reader checks the content against its digest."""

    def opener() -> BinaryIO:
        return _Watched(blob.opener(), blob.size, tell)  # type: ignore[return-value]

    return opener


class _Watched(io.RawIOBase):
    """A blob's stream that reports the bytes read and, at the blob's size, reads to its end."""

    def __init__(self, inner: BinaryIO, size: int, tell: Callable[[int], None]) -> None:
        super().__init__()
        self._inner = inner
        self._size = size
        self._tell = tell
        self._done = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        data = self._inner.read(len(buffer))
        count = len(data)
        buffer[:count] = data
        self._done += count
        if count and self._done >= self._size:
            self._inner.read()  # the end: a damaged stored blob raises BlobError here
        if count:
            self._tell(self._done)
        return count

    def close(self) -> None:
        self._inner.close()
        super().close()


def _bytes_opener(data: bytes) -> Opener:
    return lambda: io.BytesIO(data)


def _store_of(image: Image | ImageIndex) -> BlobStore:
    images = image.images if isinstance(image, ImageIndex) else (image,)
    for one in images:
        for layer in one.layers:
            return layer.store
    return BlobStore()
