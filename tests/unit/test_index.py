"""cais.image.index: one image per platform, and choosing a platform in a registry's index."""

from __future__ import annotations

import json

import pytest

from cais.errors import PlanError
from cais.image.image import empty
from cais.image.index import ImageIndex, select_manifest
from cais.image.media import MediaType
from cais.image.platform import Platform

AMD64, ARM64 = Platform.parse("linux/amd64"), Platform.parse("linux/arm64")


def test_an_index_lists_each_image_with_its_platform():
    images = (empty(AMD64), empty(ARM64))
    index = ImageIndex(images)
    document = json.loads(index.manifest_json)
    assert document["mediaType"] == MediaType.OCI_INDEX.value
    assert [entry["digest"] for entry in document["manifests"]] == [i.digest for i in images]
    assert [entry["platform"] for entry in document["manifests"]] == [
        {"architecture": "amd64", "os": "linux"},
        {"architecture": "arm64", "os": "linux", "variant": "v8"},
    ]
    assert index.image(ARM64) is images[1]
    assert index.platforms == [AMD64, ARM64]


def test_a_docker_family_index_is_a_manifest_list():
    index = ImageIndex((empty(AMD64, media_type=MediaType.DOCKER_MANIFEST),))
    assert index.media_type is MediaType.DOCKER_MANIFEST_LIST


@pytest.mark.parametrize(
    ("images", "message"),
    [
        ((), "at least one image"),
        ((empty(AMD64), empty(AMD64, created=5)), "one image per platform"),
        ((empty(AMD64), empty(ARM64, media_type=MediaType.DOCKER_MANIFEST)), "cannot mix"),
    ],
)
def test_malformed_indexes_are_refused(images, message):
    with pytest.raises(ValueError, match=message):
        ImageIndex(images)


def test_a_missing_platform_names_those_there_are():
    with pytest.raises(PlanError) as caught:
        ImageIndex((empty(AMD64),)).image(ARM64)
    assert (
        caught.value.message == "The image has no `linux/arm64/v8` variant (it has `linux/amd64`)"
    )


_HUB_INDEX = {
    "manifests": [
        {"digest": "sha256:" + "1" * 64, "platform": {"architecture": "amd64", "os": "linux"}},
        {
            "digest": "sha256:" + "2" * 64,
            "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"},
        },
        {"digest": "sha256:" + "3" * 64, "platform": {"architecture": "unknown", "os": "unknown"}},
        {"digest": "sha256:" + "4" * 64, "annotations": {"vnd.docker.reference.type": "x"}},
    ]
}


def test_select_from_a_registry_index():
    assert select_manifest(_HUB_INDEX, ARM64)["digest"] == "sha256:" + "2" * 64
    assert select_manifest(_HUB_INDEX, AMD64)["digest"] == "sha256:" + "1" * 64
    with pytest.raises(PlanError) as caught:
        select_manifest(_HUB_INDEX, Platform.parse("linux/s390x"))
    assert "(it has `linux/amd64`, `linux/arm64/v8`, `unknown/unknown`)" in caught.value.message
    with pytest.raises(PlanError, match="it has none"):
        select_manifest({}, AMD64)
