"""What a build needs to know of an image's layers, read in one pass over each layer's tar.

One read of a layer (libarchive where the system has it, else tarfile) gives what it adds
and deletes that a build asks about: the Python distributions in its `site-packages` (the
SBOM lists them), its whiteouts, and the account files `FILES` (the user layer extends them).
The answer is kept in the blob store under the layer's diff id, so a layer is read once; a
layer cais writes is listed from the entries it is written from (`note_layer`), never read.

A layer is read from its tar when the store holds it, else from its compressed blob,
decompressed on the way and checked against its diff id: no tar is written for a base image
whose layers the engine holds already. `read_ahead` reads an image's layers in a thread of
their own, so fetching and reading the base overlaps the making of the layers that do not
depend on it (see docs/design.md).
"""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import posixpath
import re
import tarfile
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from email.message import Message
from email.parser import HeaderParser
from pathlib import Path
from typing import BinaryIO

from packaging.utils import canonicalize_name

from cais.errors import BlobError, BuildError
from cais.image.archive import Entry, File
from cais.image.image import canonical_json
from cais.image.layer import Layer

__all__ = ["FILES", "Listing", "Package", "files", "listing", "note_layer", "read_ahead"]

# The files a layer's listing keeps the content of: what the user layer extends.
FILES = ("etc/passwd", "etc/group")
# A distribution's metadata file in an image's Python (`/usr/local/lib/python3.11/site-packages`,
# Debian's `/usr/lib/python3/dist-packages`); `info` ends at its metadata folder or file.
_IN_SITE_PACKAGES = re.compile(
    r"(?:^|/)(?:site|dist)-packages/(?P<info>[^/]+\.dist-info(?=/METADATA$)"
    r"|[^/]+\.egg-info(?=/PKG-INFO$)|[^/]+\.egg-info$)"
)
_WHITEOUT = ".wh."  # OCI layers delete a lower layer's file with an empty `.wh.NAME`
_OPAQUE = ".wh..wh..opq"  # …and all of a lower layer's folder with this one in it
_CHUNK = 1 << 20
_LISTINGS = "layer-listing-1"  # the blob store's index of layers' listings; bump when it changes
# Read-ahead answers not yet taken, by (store, diff id).
_AHEAD: dict[tuple[Path, str], Future] = {}
_AHEAD_LOCK = threading.Lock()


@dataclasses.dataclass(frozen=True)
class Package:
    """One installed distribution, as its metadata declares it."""

    name: str
    version: str
    summary: str | None = None
    license_expression: str | None = None  # PEP 639 `License-Expression`
    license: str | None = None  # the older free-text `License` field
    classifiers: tuple[str, ...] = ()

    @classmethod
    def from_metadata(cls, metadata: Message) -> Package:
        def field(key: str) -> str | None:
            return (metadata.get(key) or "").strip() or None

        return cls(
            name=str(metadata["Name"]).strip(),
            version=str(metadata["Version"]).strip(),
            summary=field("Summary"),
            license_expression=field("License-Expression"),
            license=field("License"),
            classifiers=tuple(str(c) for c in metadata.get_all("Classifier") or []),
        )

    @classmethod
    def parse(cls, text: str, where: str) -> Package:
        """The package whose metadata file (`METADATA`, `PKG-INFO`) is `text`, found `where`."""
        metadata = HeaderParser().parsestr(text)  # the headers: the description is most of it
        if not metadata.get("Name") or not metadata.get("Version"):
            raise BuildError(
                f"The installed distribution `{where}` has no name or version in its metadata",
                hint="install its package again, or remove the folder",
            )
        return cls.from_metadata(metadata)

    @property
    def purl(self) -> str:
        """`pkg:pypi/NAME@VERSION`, the name normalised as the purl spec asks (PEP 503)."""
        from packageurl import PackageURL

        return PackageURL(
            "pypi", name=canonicalize_name(self.name), version=self.version
        ).to_string()


@dataclasses.dataclass(frozen=True)
class Listing:
    """What one layer adds and deletes, as far as a build asks.

    `packages`: a distribution's metadata path in the image → its package; `deleted`: the
    paths its whiteouts delete from the layers below (a folder's ends with `/`); `files`:
    each of `FILES` the layer holds as a regular file → the digest of its content in the store.
    """

    packages: dict[str, Package]
    deleted: tuple[str, ...]
    files: dict[str, str]

    def deletes(self, path: str) -> bool:
        """Whether the layer deletes `path` of the layers below it."""
        return any(path == gone or path.startswith(gone.rstrip("/") + "/") for gone in self.deleted)


def files(layers: Sequence[Layer], names: Sequence[str] = FILES) -> dict[str, bytes]:
    """The content of the files `names` (among `FILES`) in the filesystem `layers` make: the
    top-most layer that holds a file, or deletes it, wins; an absent file is left out."""
    if not set(names) <= set(FILES):
        raise ValueError(f"a listing keeps only {FILES}, not {names}")  # a bug, never input
    found: dict[str, bytes] = {}
    todo = list(names)
    for layer in reversed(layers):
        listed = listing(layer)
        for name in list(todo):
            if name in listed.files:
                found[name] = layer.store.get(listed.files[name])
            elif not listed.deletes(name):
                continue
            todo.remove(name)
        if not todo:
            break
    return found


def read_ahead(
    layers: Sequence[Layer], *, through: Callable[[], Sequence[Layer] | None] | None = None
) -> None:
    """Start listing `layers` (a base image's, known before the image's own layers are made)
    in a thread of their own; `listing` then takes the answers. `through` gives the same
    layers (by diff id) in a form cheaper to read, or None: a registry's copy of a base the
    engine holds. Layers already listed in the store are left alone."""
    todo: list[tuple[Layer, Future]] = []
    with _AHEAD_LOCK:
        for layer in layers:
            key = (layer.store.root, layer.diff_id)
            if key not in _AHEAD and layer.store.link(_LISTINGS, layer.diff_id) is None:
                _AHEAD[key] = Future()
                todo.append((layer, _AHEAD[key]))
    if todo:
        # A daemon: a build that fails first does not wait for it to end.
        thread = threading.Thread(
            target=_answer, args=(todo, through), name="base-read-ahead", daemon=True
        )
        thread.start()


def _answer(todo: list[tuple[Layer, Future]], through: Callable[[], Sequence[Layer] | None] | None):
    for _, future in todo:
        future.set_running_or_notify_cancel()
    try:
        cheaper = {layer.diff_id: layer for layer in (through() if through else None) or ()}
    except BaseException as exc:  # raised where the answers are asked for
        for _, future in todo:
            future.set_exception(exc)
        return
    for layer, future in todo:
        try:
            future.set_result(_read(cheaper.get(layer.diff_id, layer)))
        except BaseException as exc:
            future.set_exception(exc)


def listing(layer: Layer) -> Listing:
    """What the layer adds and deletes: the read-ahead's answer when one was started, else
    the store's, else the layer read now (and its answer stored)."""
    with _AHEAD_LOCK:
        future = _AHEAD.pop((layer.store.root, layer.diff_id), None)
    return future.result() if future is not None else _read(layer)


def _read(layer: Layer) -> Listing:
    store = layer.store
    cached = store.link(_LISTINGS, layer.diff_id)
    if cached is not None:
        try:
            data = json.loads(store.get(cached))
        except BlobError:  # damaged, and removed by the store: read the layer again
            pass
        else:
            if all(store.has(digest) for digest in data["files"].values()):
                packages = {
                    info: Package(**{**fields, "classifiers": tuple(fields["classifiers"])})
                    for info, fields in data["packages"].items()
                }
                return Listing(packages, tuple(data["deleted"]), data["files"])
    return _remember(layer, _scan(layer))


def note_layer(layer: Layer, entries: Mapping[str, Entry]) -> None:
    """Keep the listing of `layer`, just written from `entries`, as reading it would find it:
    a layer cais writes is listed from the folder it was made of, never read back."""

    def reader(entry: Entry) -> Callable[[], bytes] | None:
        if not isinstance(entry, File):
            return None
        source = entry.source
        return (lambda: source) if isinstance(source, bytes) else source.read_bytes

    members = ((name, reader(entry)) for name, entry in sorted(entries.items()))
    _remember(layer, _listed(members, layer))


def _remember(layer: Layer, listed: Listing) -> Listing:
    record = {
        "packages": {info: dataclasses.asdict(p) for info, p in listed.packages.items()},
        "deleted": list(listed.deleted),
        "files": listed.files,
    }
    layer.store.set_link(_LISTINGS, layer.diff_id, layer.store.put(canonical_json(record)))
    return listed


def _scan(layer: Layer) -> Listing:
    """One read of the layer's tar, to its end (where its digest is checked)."""
    with layer.tar() as stream:
        try:
            listed = _listed(_members(stream), layer)
        except (BuildError, *_unreadable()) as exc:
            while stream.read(_CHUNK):  # a damaged blob: the store's check says so first
                pass
            if isinstance(exc, BuildError):
                raise
            raise BuildError(
                f"The layer `{layer.diff_id}` is not a readable tar ({exc})",
                hint="remove it with `cais cache prune` and build again",
            ) from exc
        while stream.read(_CHUNK):  # to its end, where its digest is checked
            pass
    return listed


def _listed(members: Iterable[tuple[str, Callable[[], bytes] | None]], layer: Layer) -> Listing:
    """The listing of a layer's members (name, reader of a regular file's content), in order;
    the content of `FILES` goes into the layer's store."""
    packages: dict[str, Package] = {}
    deleted: list[str] = []
    found: dict[str, str] = {}
    for name, read in members:
        path = posixpath.normpath(name.lstrip("/")).removeprefix("./")
        folder, base = posixpath.split(path)
        if base == _OPAQUE:
            deleted.append(folder + "/")
        elif base.startswith(_WHITEOUT):
            deleted.append(posixpath.join(folder, base.removeprefix(_WHITEOUT)))
        elif read is None:
            continue
        elif path in FILES:
            found[path] = layer.store.put(read())
        elif match := _IN_SITE_PACKAGES.search(path):
            info = path[: match.end("info")]
            text = read().decode("utf-8", "surrogateescape")
            packages[info] = Package.parse(text, f"{info} in layer {layer.diff_id}")
    return Listing(packages, tuple(deleted), found)


def _members(stream: BinaryIO) -> Iterator[tuple[str, Callable[[], bytes] | None]]:
    """The names of a tar's members, in order, each with a reader of its content when it is a
    regular file: read by libarchive where the system has it (a base image's 8,000 members in
    a tenth of tarfile's time, see docs/design.md), else by tarfile."""
    libarchive = _libarchive()
    if libarchive is None:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                read = functools.partial(_read_member, tar, member) if member.isfile() else None
                yield member.name, read
        return
    guarded = _Guarded(stream)
    try:
        with libarchive.stream_reader(
            guarded, format_name="tar", filter_name="none", block_size=_CHUNK
        ) as archive:
            for entry in archive:
                regular = entry.isfile and not entry.islnk  # a hard link has no own content
                yield (
                    entry.pathname,
                    (lambda e=entry: b"".join(e.get_blocks())) if regular else None,
                )
    except libarchive.ArchiveError:
        guarded.reraise()  # the stream's own error says more than "truncated input"
        raise
    guarded.reraise()


class _Guarded(io.RawIOBase):
    """A stream for libarchive's read callback, where an exception is printed and dropped
    (ctypes): the stream's error is kept, libarchive sees the end, and `reraise` raises it."""

    def __init__(self, stream: BinaryIO) -> None:
        super().__init__()
        self._stream = stream
        self._error: Exception | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        if self._error is not None:
            return 0
        try:
            return self._stream.readinto(buffer)  # type: ignore[attr-defined]
        except Exception as exc:  # raised again by `reraise`
            self._error = exc
            return 0

    def reraise(self) -> None:
        if self._error is not None:
            raise self._error


def _read_member(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    handle = tar.extractfile(member)
    return handle.read() if handle else b""


@functools.cache
def _libarchive():
    """libarchive-c, or None when the system has no libarchive for it to load."""
    try:
        import libarchive
    except (ImportError, OSError, AttributeError):  # AttributeError: no library was found
        return None
    return libarchive


def _unreadable() -> tuple[type[Exception], ...]:
    """The errors of a tar that cannot be read, by whichever reader `_members` uses."""
    libarchive = _libarchive()
    return (tarfile.TarError, *((libarchive.ArchiveError,) if libarchive else ()))
