"""An OCI 1.1 artifact about another manifest (its `subject`): an SBOM, a signature.

The artifact is a manifest whose config is the empty blob `{}`, whose one layer is the
artifact's content and whose `subject` names the image it describes; registries list it under
that image's digest (the referrers API, or the `sha256-<hex>` tag where they have none).
The image itself is unchanged: a single-platform image stays a plain manifest, with no
attestation entries in an index that some platforms cannot read.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from cais.image.blobs import sha256_digest
from cais.image.image import canonical_json, timestamp
from cais.image.layer import Descriptor
from cais.image.media import MediaType

__all__ = ["EMPTY_CONFIG", "Referrer"]

EMPTY_CONFIG = b"{}"
# The annotation registries and clients sort referrers by (OCI image spec, annotations.md).
_CREATED = "org.opencontainers.image.created"


@dataclass(frozen=True)
class Referrer:
    """`content` of type `artifact_type`, about the manifest `subject`, made at `created`."""

    subject: Descriptor
    artifact_type: MediaType
    content: bytes
    created: int

    def __repr__(self) -> str:
        return (
            f"Referrer(artifact_type='{self.artifact_type}', subject={self.subject.digest!r}, "
            f"digest={self.digest!r})"
        )

    def config_descriptor(self) -> Descriptor:
        return Descriptor(MediaType.OCI_EMPTY, sha256_digest(EMPTY_CONFIG), len(EMPTY_CONFIG))

    def content_descriptor(self) -> Descriptor:
        return Descriptor(self.artifact_type, sha256_digest(self.content), len(self.content))

    @property
    def annotations(self) -> dict[str, str]:
        return {_CREATED: timestamp(self.created)}

    @functools.cached_property
    def manifest_json(self) -> bytes:
        return canonical_json(
            {
                "schemaVersion": 2,
                "mediaType": MediaType.OCI_MANIFEST.value,
                "artifactType": self.artifact_type.value,
                "config": self.config_descriptor().to_json(),
                "layers": [self.content_descriptor().to_json()],
                "subject": self.subject.to_json(),
                "annotations": self.annotations,
            }
        )

    @property
    def digest(self) -> str:
        return sha256_digest(self.manifest_json)

    def descriptor(self) -> Descriptor:
        return Descriptor(MediaType.OCI_MANIFEST, self.digest, len(self.manifest_json))

    def index_entry(self) -> dict[str, Any]:
        """This artifact's entry in a list of referrers: its descriptor, type and annotations."""
        return {
            **self.descriptor().to_json(),
            "artifactType": self.artifact_type.value,
            "annotations": self.annotations,
        }
