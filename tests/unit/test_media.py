"""cais.image.media: media types as an enumeration with predicates."""

from __future__ import annotations

import pytest

from cais.image.media import Compression, MediaType


def test_families_and_kinds():
    assert MediaType.OCI_MANIFEST.is_manifest and MediaType.OCI_MANIFEST.is_oci
    assert MediaType.DOCKER_MANIFEST.is_manifest and not MediaType.DOCKER_MANIFEST.is_oci
    assert MediaType.OCI_INDEX.is_index and MediaType.DOCKER_MANIFEST_LIST.is_index
    assert not MediaType.OCI_MANIFEST.is_index
    assert MediaType.DOCKER_CONFIG.is_config and not MediaType.DOCKER_CONFIG.is_layer
    assert all(t.is_layer for t in MediaType if "layer" in t.value or "rootfs" in t.value)


@pytest.mark.parametrize(
    ("media_type", "compression"),
    [
        (MediaType.OCI_LAYER, None),
        (MediaType.OCI_LAYER_GZIP, Compression.GZIP),
        (MediaType.OCI_LAYER_ZSTD, Compression.ZSTD),
        (MediaType.DOCKER_LAYER, None),
        (MediaType.DOCKER_LAYER_GZIP, Compression.GZIP),
    ],
)
def test_layer_compression_round_trips(media_type, compression):
    assert media_type.compression is compression
    family = MediaType.OCI_MANIFEST if media_type.is_oci else MediaType.DOCKER_MANIFEST
    assert family.layer(compression) is media_type


def test_config_and_index_follow_the_manifest_family():
    assert MediaType.OCI_MANIFEST.config is MediaType.OCI_CONFIG
    assert MediaType.DOCKER_MANIFEST.config is MediaType.DOCKER_CONFIG
    assert MediaType.OCI_MANIFEST.index is MediaType.OCI_INDEX
    assert MediaType.DOCKER_MANIFEST.index is MediaType.DOCKER_MANIFEST_LIST


def test_zstd_needs_oci_media_types():
    with pytest.raises(ValueError, match="zstd layers need OCI media types"):
        MediaType.DOCKER_MANIFEST.layer(Compression.ZSTD)


@pytest.mark.parametrize("media_type", [MediaType.OCI_MANIFEST, MediaType.DOCKER_CONFIG])
def test_compression_of_a_non_layer_is_a_misuse(media_type):
    with pytest.raises(ValueError, match="not a layer media type"):
        _ = media_type.compression


def test_parsed_from_the_wire_and_printed_as_it():
    text = "application/vnd.docker.image.rootfs.diff.tar.gzip"
    assert MediaType(text) is MediaType.DOCKER_LAYER_GZIP
    assert str(MediaType.DOCKER_LAYER_GZIP) == text
