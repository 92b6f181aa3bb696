"""A CycloneDX SBOM of the Python packages in an image: made, stored in it, attached to it.

`document` reads the installed distributions (`*.dist-info`, `*.egg-info`) of the folders a
build installs into layers, and of the base image's layers (`packages_in_layers`; a layer cais
writes is listed from its entries as it is written, `note_layer`), and writes
a CycloneDX 1.6 JSON document with cyclonedx-python-lib: one library component per
distribution (name, version, `pkg:pypi` purl, declared licences, summary), the image as the
described component. Nothing in it comes from the clock or chance: the timestamp is the
image's `created` time and the serial number is derived from the rest of the document, so the
same packages give the same bytes, and the same layer digest.

`with_sbom` stores the document in the image at `PATH` and `read` finds it there again;
`referrer` makes the OCI 1.1 artifact that attaches it to the image in a registry
(`cais.registry.referrers.attach`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import posixpath
import re
import tarfile
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from datetime import datetime, timezone
from email.message import Message
from email.parser import HeaderParser
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from packaging.utils import canonicalize_name

from cais import __version__
from cais.errors import BlobError, BuildError
from cais.image.archive import Entry, File, write_layer
from cais.image.blobs import BlobStore
from cais.image.image import Image, append_layers, canonical_json
from cais.image.layer import Layer
from cais.image.media import MediaType
from cais.image.referrer import Referrer

if TYPE_CHECKING:
    from cyclonedx.model.component import Component
    from cyclonedx.model.license import License

__all__ = [
    "PATH",
    "SPEC_VERSION",
    "Package",
    "document",
    "note_layer",
    "packages",
    "packages_in_layers",
    "read",
    "read_ahead",
    "referrer",
    "with_sbom",
]

# `.cdx.json` is CycloneDX's recommended file name ending, which scanners look for in images
# (trivy's SBOM analyzer, for one); `/usr/local/share` is the FHS place for read-only data of
# software not installed by the distribution's package manager.
PATH = "/usr/local/share/cais/sbom.cdx.json"
_CREATED_BY = f"cais: SBOM at {PATH}"
SPEC_VERSION = "1.6"
# Fixed namespace of the name-based (version 5) UUIDs that serial numbers are made from.
_SERIALS = uuid.UUID("5b0f6b54-33c4-4b3e-9e58-0f4a1c2d8e71")
_ZERO = uuid.UUID(int=0)
_LONGEST = 100  # longer `License` fields hold a licence's whole text
# A distribution's metadata file in an image's Python (`/usr/local/lib/python3.11/site-packages`,
# Debian's `/usr/lib/python3/dist-packages`); `info` ends at its metadata folder or file.
_IN_SITE_PACKAGES = re.compile(
    r"(?:^|/)(?:site|dist)-packages/(?P<info>[^/]+\.dist-info(?=/METADATA$)"
    r"|[^/]+\.egg-info(?=/PKG-INFO$)|[^/]+\.egg-info$)"
)
_WHITEOUT = ".wh."  # OCI layers delete a lower layer's file with an empty `.wh.NAME`
_OPAQUE = ".wh..wh..opq"  # …and all of a lower layer's folder with this one in it
_CHUNK = 1 << 20
_SCANS = "python-packages-1"  # the blob store's index of layers' packages; bump when it changes
_DRAFTS = "sbom-drafts-1"  # the blob store's index of SBOM drafts, by what they are made of
# The document's time, as cyclonedx-python-lib writes it (in `metadata`, two levels deep).
_TIMESTAMP = '\n    "timestamp": "{}",\n'
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

    @property
    def purl(self) -> str:
        """`pkg:pypi/NAME@VERSION`, the name normalised as the purl spec asks (PEP 503)."""
        from packageurl import PackageURL

        return PackageURL(
            "pypi", name=canonicalize_name(self.name), version=self.version
        ).to_string()


def packages(folders: Sequence[Path]) -> list[Package]:
    """The distributions installed in `folders` (site-packages or `--target` folders), by purl;
    a package installed twice at one version is listed once."""
    found: list[Package] = []
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            raise BuildError(
                f"The folder of installed packages `{folder}` does not exist",
                hint="install the packages into it before making its SBOM",
            )
        found.extend(map(_package, [*folder.glob("*.dist-info"), *folder.glob("*.egg-info")]))
    return _by_purl(found)


def _by_purl(found: Iterable[Package]) -> list[Package]:
    """One package per purl (the first seen), sorted by purl."""
    unique: dict[str, Package] = {}
    for package in found:
        unique.setdefault(package.purl, package)
    return [unique[purl] for purl in sorted(unique)]


def packages_in_layers(layers: Sequence[Layer]) -> list[Package]:
    """The distributions in the `site-packages` (or `dist-packages`) folders of an image's
    layers, bottom first, less those a later layer deletes (whiteouts), by purl."""
    found: dict[str, Package] = {}  # the metadata folder's path in the image → its package
    for layer in layers:
        added, deleted = _scanned(layer)
        # A layer's whiteouts delete from the layers below it, never from itself.
        for gone in deleted:
            for info in [i for i in found if i == gone or i.startswith(gone.rstrip("/") + "/")]:
                del found[info]
        found.update(added)
    return _by_purl(found.values())


def read_ahead(layers: Sequence[Layer]) -> None:
    """Start listing the packages of `layers` (a base image's, known before the image's own
    layers are made) in a thread of their own, so that fetching and reading them overlaps the
    rest of the build; `packages_in_layers` then takes the answers. Layers already listed in
    the store are left alone."""
    todo: list[tuple[Layer, Future]] = []
    with _AHEAD_LOCK:
        for layer in layers:
            key = (layer.store.root, layer.diff_id)
            if key not in _AHEAD and layer.store.link(_SCANS, layer.diff_id) is None:
                _AHEAD[key] = Future()
                todo.append((layer, _AHEAD[key]))
    if todo:
        # A daemon: a build that fails first does not wait for it to end.
        threading.Thread(target=_answer, args=(todo,), name="sbom-read-ahead", daemon=True).start()


def _answer(todo: list[tuple[Layer, Future]]) -> None:
    for layer, future in todo:
        future.set_running_or_notify_cancel()
        try:
            future.set_result(_scan(layer))
        except BaseException as exc:  # raised where the answer is asked for
            future.set_exception(exc)


def _scanned(layer: Layer) -> tuple[dict[str, Package], list[str]]:
    """What `_scan` says of the layer: the read-ahead's answer when one was started."""
    with _AHEAD_LOCK:
        future = _AHEAD.pop((layer.store.root, layer.diff_id), None)
    return future.result() if future is not None else _scan(layer)


def _scan(layer: Layer) -> tuple[dict[str, Package], list[str]]:
    """What one layer adds (metadata folder → package) and deletes; a base layer's tar is
    read once, its answer kept in the blob store under the layer's diff id."""
    cached = layer.store.link(_SCANS, layer.diff_id)
    if cached is not None:
        try:
            data = json.loads(layer.store.get(cached))
        except BlobError:  # damaged, and removed by the store: read the layer again
            pass
        else:
            added = {
                info: Package(**{**fields, "classifiers": tuple(fields["classifiers"])})
                for info, fields in data["added"].items()
            }
            return added, data["deleted"]
    with layer.uncompressed() as stream:
        try:
            added, deleted = _listed(_members(stream), layer.diff_id)
        except (BuildError, *_unreadable()) as exc:
            while stream.read(_CHUNK):  # a damaged blob: the store's check says so first
                pass
            if isinstance(exc, BuildError):
                raise
            raise BuildError(
                f"The layer `{layer.diff_id}` is not a readable tar ({exc})",
                hint="remove it with `cais cache prune` and build again",
            ) from exc
        while stream.read(_CHUNK):  # to its end, where the store checks its digest
            pass
    _remember(layer, added, deleted)
    return added, deleted


def note_layer(layer: Layer, entries: Mapping[str, Entry]) -> None:
    """Keep what `layer`, just written from `entries`, adds and deletes, as reading it would
    find: its distributions are listed from the folder it was made of, and the SBOM does not
    read the layer back."""

    def reader(entry: Entry) -> Callable[[], bytes] | None:
        if not isinstance(entry, File):
            return None
        source = entry.source
        return (lambda: source) if isinstance(source, bytes) else source.read_bytes

    members = ((name, reader(entry)) for name, entry in sorted(entries.items()))
    _remember(layer, *_listed(members, layer.diff_id))


def _listed(
    members: Iterable[tuple[str, Callable[[], bytes] | None]], diff_id: str
) -> tuple[dict[str, Package], list[str]]:
    """What a layer's members (name, reader of a regular file's content) add (metadata folder
    → package) and delete."""
    added: dict[str, Package] = {}
    deleted: list[str] = []
    for name, read in members:
        path = posixpath.normpath(name.lstrip("/")).removeprefix("./")
        folder, base = posixpath.split(path)
        if base == _OPAQUE:
            deleted.append(folder + "/")
        elif base.startswith(_WHITEOUT):
            deleted.append(posixpath.join(folder, base.removeprefix(_WHITEOUT)))
        elif read is not None and (match := _IN_SITE_PACKAGES.search(path)):
            info = path[: match.end("info")]
            text = read().decode("utf-8", "surrogateescape")
            added[info] = _parsed(text, f"{info} in layer {diff_id}")
    return added, deleted


def _remember(layer: Layer, added: dict[str, Package], deleted: list[str]) -> None:
    record = {"added": {i: dataclasses.asdict(p) for i, p in added.items()}, "deleted": deleted}
    layer.store.set_link(_SCANS, layer.diff_id, layer.store.put(canonical_json(record)))


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
    with libarchive.stream_reader(
        stream, format_name="tar", filter_name="none", block_size=_CHUNK
    ) as archive:
        for entry in archive:
            regular = entry.isfile and not entry.islnk  # a hard link has no content of its own
            yield entry.pathname, (lambda e=entry: b"".join(e.get_blocks())) if regular else None


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


def document(
    folders: Sequence[Path],
    *,
    name: str,
    version: str | None = None,
    created: int,
    base: Sequence[Layer] = (),
) -> bytes:
    """The CycloneDX JSON document of the packages installed in `folders`, and of those the
    `base` image's layers hold (a `python` image's own pip).

    `name` and `version` describe the image (a model's name and version, a project's name);
    `created` (seconds since the epoch) is the document's timestamp.
    """
    listed = _by_purl([*packages_in_layers(base), *packages(folders)])
    return _document(listed, name=name, version=version, created=created)


def _document(listed: Sequence[Package], *, name: str, version: str | None, created: int) -> bytes:
    return _stamped(_draft(listed, name=name, version=version), created)


def _draft(listed: Sequence[Package], *, name: str, version: str | None) -> bytes:
    """The document with the epoch as its time and the zero serial: what cyclonedx-python-lib
    writes for these packages, whatever the image's time."""
    from cyclonedx.model.bom import Bom, BomMetaData
    from cyclonedx.model.component import Component, ComponentType

    root = Component(
        type=ComponentType.CONTAINER, name=name, version=version, bom_ref=f"image:{name}"
    )
    components = [_component(package) for package in listed]
    tool = Component(type=ComponentType.APPLICATION, name="cais", version=__version__)
    bom = Bom(
        components=components,
        serial_number=_ZERO,
        metadata=BomMetaData(component=root, timestamp=_time(0), tools=None),
    )
    bom.metadata.tools.components.add(tool)
    # The image holds every package; which package needs which is not recorded.
    bom.register_dependency(root, components)
    return _json(bom)


def _stamped(draft: bytes, created: int) -> bytes:
    """The draft with its time, then with the serial made from those bytes: the bytes that
    writing the document with that time and serial gives (see docs/design.md)."""
    epoch, when = (_TIMESTAMP.format(_time(t).isoformat()).encode() for t in (0, created))
    if draft.count(epoch) != 1:
        raise ValueError("an SBOM draft has one time, the epoch")  # a bug, never input
    dated = draft.replace(epoch, when)
    serial = uuid.uuid5(_SERIALS, hashlib.sha256(dated).hexdigest())
    return dated.replace(_ZERO.urn.encode(), serial.urn.encode(), 1)


def _time(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, timezone.utc)


def with_packages_sbom(image: Image, *, name: str, version: str | None) -> Image:
    """`image` with the SBOM of every Python package in its layers (the base's, cais's) at
    `PATH`, in a layer of its own on top. The draft of the document is kept in the store under
    what it is made of (the packages, `name`, `version`, the writers' versions): an edit that
    changes no package only puts the image's time in it."""
    layers = image.layers
    store = layers[-1].store if layers else BlobStore()
    listed = packages_in_layers(layers)
    made = _stamped(_stored_draft(store, listed, name=name, version=version), image.created or 0)
    return with_sbom(image, made, store=store)


def _stored_draft(
    store: BlobStore, listed: Sequence[Package], *, name: str, version: str | None
) -> bytes:
    import cyclonedx  # its package only: the library is imported when a draft is written

    inputs = [
        __version__,
        cyclonedx.__version__,  # how the document is written
        SPEC_VERSION,
        name,
        version,
        [dataclasses.asdict(package) for package in listed],
    ]
    # Keyed by the digest of a blob of those inputs: the entry lasts as long as that blob.
    key = store.put(canonical_json(inputs))
    found = store.link(_DRAFTS, key)
    if found is not None:
        with contextlib.suppress(BlobError):  # damaged, and removed: written again
            return store.get(found)
    draft = _draft(listed, name=name, version=version)
    store.set_link(_DRAFTS, key, store.put(draft))
    return draft


def with_sbom(image: Image, document: bytes, *, store: BlobStore) -> Image:
    """The image with `document` at `PATH`, in a layer of its own on top."""
    layer = write_layer({PATH: File(document)}, store=store, created=image.created or 0)
    return append_layers(image, [layer], created_by=[_CREATED_BY])


def read(image: Image) -> bytes | None:
    """The document `with_sbom` stored in the image (a sink attaches it), None when none was;
    only the layer its history entry names is opened."""
    history = [entry for entry in image.config.get("history") or [] if not entry.get("empty_layer")]
    # Layers and their history entries line up from the top (a base may lack entries).
    for layer, entry in zip(reversed(image.layers), reversed(history), strict=False):
        if entry.get("created_by") != _CREATED_BY:
            continue
        with layer.uncompressed() as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                if member.name == PATH.lstrip("/") and member.isfile():
                    return tar.extractfile(member).read()  # type: ignore[union-attr]
    return None


def referrer(image: Image, document: bytes) -> Referrer:
    """The artifact that attaches `document` to `image` in a registry."""
    return Referrer(
        subject=image.descriptor(),
        artifact_type=MediaType.CYCLONEDX_JSON,
        content=document,
        created=image.created or 0,
    )


def _package(info: Path) -> Package:
    # The headers only: the long description that follows them is most of the file's parsing.
    text = ""
    # distutils wrote an `.egg-info` file; installers write folders.
    for path in (info,) if info.is_file() else (info / "METADATA", info / "PKG-INFO"):
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            text = path.read_text(encoding="utf-8", errors="surrogateescape")
            break
    return _parsed(text, str(info))


def _parsed(text: str, where: str) -> Package:
    metadata = HeaderParser().parsestr(text)
    if not metadata.get("Name") or not metadata.get("Version"):
        raise BuildError(
            f"The installed distribution `{where}` has no name or version in its metadata",
            hint="install its package again, or remove the folder",
        )
    return Package.from_metadata(metadata)


def _component(package: Package) -> Component:
    from cyclonedx.model.component import Component, ComponentType
    from packageurl import PackageURL

    return Component(
        type=ComponentType.LIBRARY,
        name=package.name,
        version=package.version,
        purl=PackageURL.from_string(package.purl),
        bom_ref=package.purl,
        description=package.summary,
        licenses=_licenses(package),
    )


def _licenses(package: Package) -> list[License]:
    """The declared licence: a PEP 639 expression, else a short `License:` field (an SPDX id,
    expression or name), else the names in `License ::` classifiers."""
    from cyclonedx.contrib.license.factories import LicenseFactory
    from cyclonedx.model.license import LicenseAcknowledgement

    factory = LicenseFactory()
    declared = LicenseAcknowledgement.DECLARED
    text = package.license_expression or package.license
    if text and text.upper() != "UNKNOWN" and "\n" not in text and len(text) <= _LONGEST:
        return [factory.make_from_string(text, license_acknowledgement=declared)]
    names = {
        classifier.split(" :: ")[-1]
        for classifier in package.classifiers
        if classifier.startswith("License :: ")
    } - {"OSI Approved"}
    return [factory.make_with_name(n, acknowledgement=declared) for n in sorted(names)]


def _json(bom) -> bytes:
    from cyclonedx.output.json import JsonV1Dot6

    return (JsonV1Dot6(bom).output_as_string(indent=2) + "\n").encode()
