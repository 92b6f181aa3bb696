"""Deterministic layer tars: the same entries give the same bytes, wherever and whenever.

Entries are sorted by path with every parent directory written explicitly; owners are
numeric (0 unless told) with no user or group names; modes are normalised (0755 for
directories and executables, 0644 for other files, 0777 for symlinks); every mtime is the
image's `created` time; hard links become regular files; PAX headers appear only for what
ustar cannot hold (long or non-ASCII names). The tar is streamed once through sha256 (the
diff id) and, when asked, the compressor, straight into the blob store: a layer is never
held in memory.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import stat
import tarfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

from cais.errors import BuildError
from cais.image.blobs import BlobStore, BlobWriter
from cais.image.layer import Layer, Packer
from cais.image.media import Compression

__all__ = ["Directory", "Entry", "File", "Symlink", "entries_from_folder", "write_layer"]

_BLOCK = 512
_CHUNK = 1 << 20


@dataclass(frozen=True)
class File:
    """A regular file from the host (`Path`) or from memory (`bytes`)."""

    source: Path | bytes
    mode: int | None = None  # None: 0755 if the host file is executable, else 0644


@dataclass(frozen=True)
class Directory:
    mode: int = 0o755
    # (uid, gid) of a folder a non-root user must write to (its home); None: the layer's owner
    owner: tuple[int, int] | None = None


@dataclass(frozen=True)
class Symlink:
    target: str


Entry = File | Directory | Symlink


def entries_from_folder(
    folder: Path, prefix: str = "", *, paths: Iterable[str] | None = None
) -> dict[str, Entry]:
    """The entries of a host folder, placed under `prefix` in the image; with `paths`
    (relative to the folder), only those.

    Symlinks stay symlinks, hard links become files; sockets, pipes and devices are refused.
    """
    folder = Path(folder)
    if paths is None:
        paths = [
            os.path.relpath(os.path.join(root, name), folder)
            for root, dirs, files in os.walk(folder)
            for name in dirs + files
        ]
    entries: dict[str, Entry] = {}
    for relative in paths:
        path = folder / relative
        inside = posixpath.join(prefix, Path(relative).as_posix())
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            entries[inside] = Symlink(os.readlink(path))
        elif stat.S_ISDIR(info.st_mode):
            entries[inside] = Directory()
        elif stat.S_ISREG(info.st_mode):
            entries[inside] = File(path)
        else:
            raise BuildError(
                f"The file `{path}` is not a regular file, folder or symlink",
                hint="remove it (or move it out of the folder) and build again",
            )
    return entries


def write_layer(
    entries: Mapping[str, Entry],
    *,
    store: BlobStore,
    created: int,
    compression: Compression | None = Compression.GZIP,
    uid: int = 0,
    gid: int = 0,
) -> Layer:
    """Write `entries` (image path → entry) as a layer into the store.

    `created` (seconds since the epoch) is every entry's mtime. With `compression=None` only
    the tar is written (enough for the engine); the compressed form is made when first needed.
    """
    tree = _with_parents(entries)
    with contextlib.ExitStack() as stack:
        tar_out = stack.enter_context(store.writer())
        packer = Packer(compression, stack.enter_context(store.writer())) if compression else None
        sink = _Tee(tar_out, packer)
        for path in sorted(tree, key=lambda p: p.split("/")):
            _write_entry(sink, path, tree[path], created, uid, gid)
        sink.write(b"\0" * (2 * _BLOCK))
        sink.finish()
    layer = Layer(tar_out.digest, store, compression or Compression.GZIP)
    if packer is None:
        return layer
    store.set_link(packer.name, tar_out.digest, packer.out.digest)
    return replace(layer, known_digest=packer.out.digest, known_compressed_size=packer.out.size)


def _normalise(path: str) -> str:
    clean = posixpath.normpath("/" + path).lstrip("/")
    if not clean or clean == "." or ".." in path.split("/"):
        raise BuildError(f"The path `{path}` cannot be placed in an image layer")
    return clean


def _with_parents(entries: Mapping[str, Entry]) -> dict[str, Entry]:
    tree: dict[str, Entry] = {}
    for path, entry in entries.items():
        clean = _normalise(path)
        if tree.get(clean, entry) != entry:
            raise BuildError(f"The path `{clean}` is given twice, with different content")
        tree[clean] = entry
    for path in list(tree):
        parent = posixpath.dirname(path)
        while parent and parent not in tree:
            tree[parent] = Directory()
            parent = posixpath.dirname(parent)
    for path in tree:
        parent = posixpath.dirname(path)
        if parent and not isinstance(tree[parent], Directory):
            raise BuildError(f"The path `{path}` is inside `{parent}`, which is not a folder")
    return tree


def _write_entry(sink: _Tee, path: str, entry: Entry, created: int, uid: int, gid: int) -> None:
    info = tarfile.TarInfo(path)
    info.mtime = created
    info.uid, info.gid, info.uname, info.gname = uid, gid, "", ""
    if isinstance(entry, Directory):
        info.type, info.mode = tarfile.DIRTYPE, entry.mode
        if entry.owner is not None:
            info.uid, info.gid = entry.owner
        sink.write(_header(info))
    elif isinstance(entry, Symlink):
        info.type, info.mode, info.linkname = tarfile.SYMTYPE, 0o777, entry.target
        sink.write(_header(info))
    elif isinstance(entry.source, bytes):
        info.size, info.mode = len(entry.source), 0o644 if entry.mode is None else entry.mode
        sink.write(_header(info))
        sink.write(entry.source)
        sink.write(_padding(info.size))
    else:
        with entry.source.open("rb") as handle:
            host = os.fstat(handle.fileno())
            info.size = host.st_size
            info.mode = (
                entry.mode if entry.mode is not None else (0o755 if host.st_mode & 0o111 else 0o644)
            )
            sink.write(_header(info))
            _copy(handle, sink, info.size, entry.source)
        sink.write(_padding(info.size))


def _header(info: tarfile.TarInfo) -> bytes:
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _padding(size: int) -> bytes:
    return b"\0" * (-size % _BLOCK)


def _copy(handle: BinaryIO, sink: _Tee, size: int, path: Path) -> None:
    left = size
    while left:
        chunk = handle.read(min(_CHUNK, left))
        if not chunk:
            break
        sink.write(chunk)
        left -= len(chunk)
    if left or handle.read(1):
        raise BuildError(
            f"The file `{path}` changed while it was being written into a layer",
            hint="build again once nothing is writing to it",
        )


class _Tee:
    """The tar's bytes to the tar blob (hashing the diff id) and through the compressor."""

    def __init__(self, tar_out: BlobWriter, packer: Packer | None) -> None:
        self._tar = tar_out
        self._packer = packer

    def write(self, data: bytes) -> None:
        self._tar.write(data)
        if self._packer is not None:
            self._packer.write(data)

    def finish(self) -> None:
        if self._packer is not None:
            self._packer.finish()
