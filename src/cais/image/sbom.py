"""A CycloneDX SBOM of the Python packages in an image: made, stored in it, attached to it.

`document` reads the installed distributions (`*.dist-info`, `*.egg-info`) of the folders a build installs
into a layer and writes a CycloneDX 1.6 JSON document with cyclonedx-python-lib: one library
component per distribution (name, version, `pkg:pypi` purl, declared licenses, summary), the
image as the described component. Nothing in it comes from the clock or chance: the
timestamp is the image's `created` time and the serial number is derived from the rest of
the document, so the same packages give the same bytes, and the same layer digest.

`with_sbom` stores the document in the image at `PATH` and `read` finds it there again;
`referrer` makes the OCI 1.1 artifact that attaches it to the image in a registry
(`cais.registry.referrers.attach`).
"""

from __future__ import annotations

import contextlib
import hashlib
import tarfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from email.message import Message
from email.parser import HeaderParser
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.utils import canonicalize_name

from cais import __version__
from cais.errors import BuildError
from cais.image.archive import File, write_layer
from cais.image.blobs import BlobStore
from cais.image.image import Image, append_layers
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
    "packages",
    "read",
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


@dataclass(frozen=True)
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
    found: dict[str, Package] = {}
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            raise BuildError(
                f"The folder of installed packages `{folder}` does not exist",
                hint="install the packages into it before making its SBOM",
            )
        for info in sorted([*folder.glob("*.dist-info"), *folder.glob("*.egg-info")]):
            package = _package(info)
            found.setdefault(package.purl, package)
    return [found[purl] for purl in sorted(found)]


def document(
    folders: Sequence[Path], *, name: str, version: str | None = None, created: int
) -> bytes:
    """The CycloneDX JSON document of the packages installed in `folders`.

    `name` and `version` describe the image (a model's name and version, a project's name);
    `created` (seconds since the epoch) is the document's timestamp.
    """
    from cyclonedx.model.bom import Bom, BomMetaData
    from cyclonedx.model.component import Component, ComponentType

    root = Component(
        type=ComponentType.CONTAINER, name=name, version=version, bom_ref=f"image:{name}"
    )
    components = [_component(package) for package in packages(folders)]
    tool = Component(type=ComponentType.APPLICATION, name="cais", version=__version__)
    bom = Bom(
        components=components,
        serial_number=_ZERO,
        metadata=BomMetaData(
            component=root,
            timestamp=datetime.fromtimestamp(created, timezone.utc),
            tools=None,
        ),
    )
    bom.metadata.tools.components.add(tool)
    # The image holds every package; which package needs which is not recorded.
    bom.register_dependency(root, components)
    # Written once with the zero serial; the serial made from those bytes then takes its place
    # (the same bytes a second writing would give, at half the cost).
    draft = _json(bom)
    serial = uuid.uuid5(_SERIALS, hashlib.sha256(draft).hexdigest())
    return draft.replace(_ZERO.urn.encode(), serial.urn.encode(), 1)


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
    metadata = HeaderParser().parsestr(text)
    if not metadata.get("Name") or not metadata.get("Version"):
        raise BuildError(
            f"The installed distribution `{info}` has no name or version in its metadata",
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
