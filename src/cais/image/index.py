"""An image index: one image per platform, under one digest."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cais.errors import PlanError
from cais.image.blobs import sha256_digest
from cais.image.image import Image, canonical_json
from cais.image.layer import Descriptor
from cais.image.media import MediaType
from cais.image.platform import Platform

__all__ = ["ImageIndex", "select_manifest"]


@dataclass(frozen=True)
class ImageIndex:
    """Images of distinct platforms; the index's media type follows the images' family."""

    images: tuple[Image, ...]

    def __post_init__(self) -> None:
        if not self.images:
            raise ValueError("an index needs at least one image")
        if len({image.media_type for image in self.images}) != 1:
            raise ValueError("an index cannot mix OCI and Docker v2 manifests")
        platforms = [image.platform for image in self.images]
        if len(set(platforms)) != len(platforms):
            raise ValueError("an index holds one image per platform")

    def __repr__(self) -> str:
        return f"ImageIndex(platforms={[str(p) for p in self.platforms]})"

    @property
    def media_type(self) -> MediaType:
        return self.images[0].media_type.index

    @property
    def platforms(self) -> list[Platform]:
        return [image.platform for image in self.images]

    def image(self, platform: Platform) -> Image:
        for image in self.images:
            if image.platform == platform:
                return image
        raise _no_platform(platform, self.platforms)

    @functools.cached_property
    def manifest_json(self) -> bytes:
        entries = []
        for image in self.images:
            entry = image.descriptor().to_json()
            entry["platform"] = image.platform.to_json()
            entries.append(entry)
        return canonical_json(
            {"schemaVersion": 2, "mediaType": self.media_type.value, "manifests": entries}
        )

    @property
    def digest(self) -> str:
        return sha256_digest(self.manifest_json)

    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.digest, len(self.manifest_json))


def select_manifest(
    index: Mapping[str, Any], platform: Platform, *, image: str = "The image"
) -> dict[str, Any]:
    """The entry of a raw index document (from a registry) for `platform`; `image` names the
    index in the error that says which platforms it has instead."""
    entries: Sequence[Mapping[str, Any]] = index.get("manifests") or []
    for entry in entries:
        if platform.matches(entry.get("platform") or {}):
            return dict(entry)
    found = []
    for entry in entries:
        try:
            found.append(Platform.from_json(entry.get("platform") or {}))
        except KeyError:
            continue  # attestation entries carry no platform
    raise _no_platform(platform, found, image)


def _no_platform(
    platform: Platform, found: Sequence[Platform], image: str = "The image"
) -> PlanError:
    listed = ", ".join(f"`{p}`" for p in found) or "none"
    return PlanError(
        f"{image} has no `{platform}` variant (it has {listed})",
        hint="choose one of its platforms with `--platform`",
    )
