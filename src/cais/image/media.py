"""Media types of OCI and Docker v2 manifests, indexes, configs and layers."""

from __future__ import annotations

import enum

__all__ = ["Compression", "MediaType"]


class Compression(str, enum.Enum):
    """How a layer's tar is compressed in a registry or an OCI layout."""

    GZIP = "gzip"
    ZSTD = "zstd"  # opt-in: only with OCI media types, older engines reject it


class MediaType(str, enum.Enum):
    OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
    OCI_INDEX = "application/vnd.oci.image.index.v1+json"
    OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
    OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
    OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
    OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
    DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
    DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
    DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
    DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
    DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
    # OCI 1.1 artifacts: the config of a manifest that is not an image, and what they carry.
    OCI_EMPTY = "application/vnd.oci.empty.v1+json"
    CYCLONEDX_JSON = "application/vnd.cyclonedx+json"

    def __str__(self) -> str:
        return self.value

    @property
    def is_oci(self) -> bool:
        return self.value.startswith("application/vnd.oci.")

    @property
    def is_index(self) -> bool:
        return self in (MediaType.OCI_INDEX, MediaType.DOCKER_MANIFEST_LIST)

    @property
    def is_manifest(self) -> bool:
        return self in (MediaType.OCI_MANIFEST, MediaType.DOCKER_MANIFEST)

    @property
    def is_config(self) -> bool:
        return self in (MediaType.OCI_CONFIG, MediaType.DOCKER_CONFIG)

    @property
    def is_layer(self) -> bool:
        return self in _LAYERS

    @property
    def compression(self) -> Compression | None:
        """The compression of a layer media type; None for an uncompressed tar."""
        if not self.is_layer:
            raise ValueError(f"{self.value} is not a layer media type")
        if self.value.endswith("gzip"):
            return Compression.GZIP
        if self.value.endswith("zstd"):
            return Compression.ZSTD
        return None

    @property
    def config(self) -> MediaType:
        """The config media type that goes with this manifest media type."""
        return MediaType.OCI_CONFIG if self.is_oci else MediaType.DOCKER_CONFIG

    @property
    def index(self) -> MediaType:
        """The index media type that lists manifests of this media type."""
        return MediaType.OCI_INDEX if self.is_oci else MediaType.DOCKER_MANIFEST_LIST

    def layer(self, compression: Compression | None) -> MediaType:
        """The layer media type, in this manifest's family, for a compression."""
        if compression is Compression.ZSTD and not self.is_oci:
            raise ValueError("zstd layers need OCI media types; Docker v2 manifests only know gzip")
        if self.is_oci:
            return {
                None: MediaType.OCI_LAYER,
                Compression.GZIP: MediaType.OCI_LAYER_GZIP,
                Compression.ZSTD: MediaType.OCI_LAYER_ZSTD,
            }[compression]
        return MediaType.DOCKER_LAYER_GZIP if compression else MediaType.DOCKER_LAYER


_LAYERS = frozenset(
    {
        MediaType.OCI_LAYER,
        MediaType.OCI_LAYER_GZIP,
        MediaType.OCI_LAYER_ZSTD,
        MediaType.DOCKER_LAYER,
        MediaType.DOCKER_LAYER_GZIP,
    }
)
