"""The `docker save` format, which `docker load` and the Engine's image-load API read.

`manifest.json` lists the config and one uncompressed tar per layer; the image id the
engine gives the result is the config's digest. Layers the engine already holds may be left
out: the engine reads a layer file only when it lacks the layer chain up to it.
"""

from __future__ import annotations

import contextlib
import os
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from cais.errors import SinkError
from cais.image.image import Image, canonical_json
from cais.sinks._tags import parse_tags

__all__ = ["chunks", "write"]

_BLOCK = 512
_CHUNK = 1 << 20


def write(image: Image, dest: Path, *, tags: Sequence[str] = (), skip: int = 0) -> str:
    """Write `image` as a tarball `docker load` accepts, tagged `tags`; returns the image id.

    `skip` leaves out the files of the first `skip` layers (for an engine that has them).
    """
    dest = Path(dest)
    folder = dest.parent if str(dest.parent) else Path(".")
    try:
        fd, name = tempfile.mkstemp(dir=folder, prefix=f".{dest.name}-")
    except OSError as exc:
        raise _cannot_write(dest, exc) from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            for chunk in chunks(image, tags=tags, skip=skip):
                handle.write(chunk)
        os.replace(name, dest)
    except OSError as exc:
        raise _cannot_write(dest, exc) from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
    return image.id


def chunks(image: Image, *, tags: Sequence[str] = (), skip: int = 0) -> Iterator[bytes]:
    """The tarball as a stream of chunks, never whole in memory."""
    repo_tags = [str(reference) for reference in parse_tags(tags)]
    config_name = image.config_digest.removeprefix("sha256:") + ".json"
    layer_names = [layer.diff_id.removeprefix("sha256:") + "/layer.tar" for layer in image.layers]
    manifest = [{"Config": config_name, "Layers": layer_names, "RepoTags": repo_tags}]
    yield from _member(config_name, image.config_json)
    written: set[str] = set()
    for position, (layer, name) in enumerate(zip(image.layers, layer_names, strict=True)):
        if position < skip or name in written:
            continue
        written.add(name)
        yield _header(name, layer.uncompressed_size)
        with layer.uncompressed() as stream:
            while chunk := stream.read(_CHUNK):
                yield chunk
        yield b"\0" * (-layer.uncompressed_size % _BLOCK)
    yield from _member("manifest.json", canonical_json(manifest))
    yield b"\0" * (2 * _BLOCK)


def _member(name: str, data: bytes) -> Iterator[bytes]:
    yield _header(name, len(data))
    yield data
    yield b"\0" * (-len(data) % _BLOCK)


def _header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o644, 0
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _cannot_write(dest: Path, exc: OSError) -> SinkError:
    return SinkError(
        f"Cannot write the image tarball `{dest}`: {exc.strerror or exc}",
        hint="choose a file in a folder that exists and that you can write to",
    )
