"""An OCI image layout folder: `oci-layout`, `index.json` and `blobs/sha256/…`.

Writes are idempotent: blobs already present are skipped, and writing the same image again
leaves `index.json` as it was.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from cais.errors import SinkError
from cais.image.image import Image, canonical_json
from cais.image.index import ImageIndex
from cais.image.media import MediaType

__all__ = ["REF_NAME", "write"]

REF_NAME = "org.opencontainers.image.ref.name"
_CHUNK = 1 << 20


def write(image: Image | ImageIndex, dest: Path, *, tag: str | None = None) -> str:
    """Add `image` (or an index) to the layout at `dest`, named `tag`; returns its digest.

    An entry of the same name (or, unnamed, of the same digest) is replaced.
    """
    dest = Path(dest)
    try:
        (dest / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        _write_file(dest / "oci-layout", canonical_json({"imageLayoutVersion": "1.0.0"}))
        images = image.images if isinstance(image, ImageIndex) else (image,)
        for one in images:
            _write_image(one, dest)
        if isinstance(image, ImageIndex):
            _write_blob(dest, image.digest, lambda: _bytes(image.manifest_json))
        _update_index(dest, image, tag)
    except OSError as exc:
        raise SinkError(
            f"Cannot write the OCI layout `{dest}`: {exc.strerror or exc}",
            hint="choose a folder you can write to",
        ) from exc
    return image.digest


def _write_image(image: Image, dest: Path) -> None:
    for layer in image.layers:
        _write_blob(dest, layer.digest, layer.compressed)
    _write_blob(dest, image.config_digest, lambda: _bytes(image.config_json))
    _write_blob(dest, image.digest, lambda: _bytes(image.manifest_json))


def _write_blob(dest: Path, digest: str, open_stream: Callable[[], BinaryIO]) -> None:
    path = dest / "blobs" / "sha256" / digest.removeprefix("sha256:")
    if path.is_file():
        return  # content-addressed: a blob of that name is that blob
    with open_stream() as source, _atomic(path) as handle:
        while chunk := source.read(_CHUNK):
            handle.write(chunk)


def _update_index(dest: Path, image: Image | ImageIndex, tag: str | None) -> None:
    path = dest / "index.json"
    try:
        index = json.loads(path.read_bytes())
    except FileNotFoundError:
        index = {"schemaVersion": 2, "mediaType": MediaType.OCI_INDEX.value, "manifests": []}
    except ValueError as exc:
        raise SinkError(
            f"The OCI layout `{dest}` has an `index.json` that is not JSON",
            hint="write to a new folder, or repair or remove that file",
        ) from exc
    entry = image.descriptor().to_json()
    if isinstance(image, Image):
        entry["platform"] = image.platform.to_json()
    if tag:
        entry["annotations"] = {REF_NAME: tag}
    index["manifests"] = [
        old for old in index.get("manifests", []) if not _same_entry(old, entry, tag)
    ] + [entry]
    _write_file(path, canonical_json(index))


def _same_entry(old: dict, new: dict, tag: str | None) -> bool:
    name = (old.get("annotations") or {}).get(REF_NAME)
    if tag:
        return name == tag
    return name is None and old.get("digest") == new["digest"]


def _write_file(path: Path, data: bytes) -> None:
    if path.is_file() and path.read_bytes() == data:
        return
    with _atomic(path) as handle:
        handle.write(data)


@contextlib.contextmanager
def _atomic(path: Path) -> Iterator[BinaryIO]:
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
        os.replace(name, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)


def _bytes(data: bytes) -> BinaryIO:
    return io.BytesIO(data)
