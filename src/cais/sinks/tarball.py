"""The `docker save` format, which `docker load` and the Engine's image-load API read.

`manifest.json` lists the config and one uncompressed tar per layer; the image id the
engine gives the result is the config's digest. Layers the engine already holds may be left
out: the engine reads a layer file only when it lacks the layer chain up to it.

The stream knows its length before it starts (`len(stream(...))`), so an HTTP client sends
it with a Content-Length rather than re-framing every chunk for chunked encoding, and each
layer is read straight into the buffer that is sent (hashed on the way, never copied again).
"""

from __future__ import annotations

import contextlib
import os
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from cais.errors import SinkError
from cais.image.image import Image, canonical_json
from cais.image.layer import Layer
from cais.sinks._tags import parse_tags

__all__ = ["Stream", "stream", "write"]

_BLOCK = 512
_END = 2 * _BLOCK  # two zero blocks end a tar
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
            for chunk in stream(image, tags=tags, skip=skip):
                handle.write(chunk)
        os.replace(name, dest)
    except OSError as exc:
        raise _cannot_write(dest, exc) from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
    return image.id


@dataclass(frozen=True)
class _Member:
    header: bytes
    body: bytes | Layer
    size: int

    def __len__(self) -> int:
        return len(self.header) + self.size + -self.size % _BLOCK


@dataclass(frozen=True)
class Stream:
    """The tarball as an iterable of chunks (bytes-like, each its own buffer, so they may be
    kept), never whole in memory; `len()` is its size in bytes."""

    members: tuple[_Member, ...]

    def __repr__(self) -> str:
        return f"Stream(length={len(self)}, members={len(self.members)})"

    def __len__(self) -> int:
        return sum(len(member) for member in self.members) + _END

    def __iter__(self) -> Iterator[bytes | memoryview]:
        for member in self.members:
            yield member.header
            if isinstance(member.body, bytes):
                yield member.body
            else:
                with member.body.uncompressed() as reader:
                    while True:
                        buffer = bytearray(_CHUNK)
                        count = reader.readinto(buffer)
                        if not count:
                            break
                        yield memoryview(buffer)[:count]
            yield b"\0" * (-member.size % _BLOCK)
        yield b"\0" * _END


def stream(image: Image, *, tags: Sequence[str] = (), skip: int = 0) -> Stream:
    """The tarball of `image`, tagged `tags`, without the files of its first `skip` layers."""
    repo_tags = [str(reference) for reference in parse_tags(tags)]
    config_name = image.config_digest.removeprefix("sha256:") + ".json"
    layer_names = [layer.diff_id.removeprefix("sha256:") + "/layer.tar" for layer in image.layers]
    manifest = [{"Config": config_name, "Layers": layer_names, "RepoTags": repo_tags}]
    members = [_bytes(config_name, image.config_json)]
    written: set[str] = set()
    for position, (layer, name) in enumerate(zip(image.layers, layer_names, strict=True)):
        if position < skip or name in written:
            continue
        written.add(name)
        members.append(
            _Member(_header(name, layer.uncompressed_size), layer, layer.uncompressed_size)
        )
    members.append(_bytes("manifest.json", canonical_json(manifest)))
    return Stream(tuple(members))


def _bytes(name: str, data: bytes) -> _Member:
    return _Member(_header(name, len(data)), data, len(data))


def _header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o644, 0
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _cannot_write(dest: Path, exc: OSError) -> SinkError:
    return SinkError(
        f"Cannot write the image tarball `{dest}`: {exc.strerror or exc}",
        hint="choose a file in a folder that exists and that you can write to",
    )
