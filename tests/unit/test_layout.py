"""cais.sinks.layout: an OCI image layout, written idempotently."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from cais.errors import SinkError
from cais.image.archive import File, write_layer
from cais.image.blobs import BlobStore
from cais.image.image import append_layers, empty
from cais.image.index import ImageIndex
from cais.image.media import MediaType
from cais.image.platform import Platform
from cais.sinks import layout

AMD64, ARM64 = Platform.parse("linux/amd64"), Platform.parse("linux/arm64")


@pytest.fixture
def store(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "cache")


def _image(store, platform=AMD64, text=b"hello"):
    layers = [write_layer({"app/a.txt": File(text)}, store=store, created=0, compression=None)]
    return append_layers(empty(platform), layers)


def _blobs(dest: Path) -> dict[str, Path]:
    return {"sha256:" + p.name: p for p in (dest / "blobs" / "sha256").iterdir()}


def test_a_layout_holds_every_blob_under_its_digest(tmp_path, store):
    image = _image(store)
    dest = tmp_path / "out"
    assert layout.write(image, dest, tag="1.0") == image.digest
    assert json.loads((dest / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    blobs = _blobs(dest)
    assert set(blobs) == {image.digest, image.config_digest, image.layers[0].digest}
    for digest, path in blobs.items():
        assert "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest() == digest
    index = json.loads((dest / "index.json").read_text())
    assert index["mediaType"] == MediaType.OCI_INDEX.value
    assert index["manifests"] == [
        {
            "mediaType": MediaType.OCI_MANIFEST.value,
            "digest": image.digest,
            "size": len(image.manifest_json),
            "platform": {"architecture": "amd64", "os": "linux"},
            "annotations": {layout.REF_NAME: "1.0"},
        }
    ]


def test_writing_again_changes_nothing(tmp_path, store):
    image = _image(store)
    dest = tmp_path / "out"
    layout.write(image, dest, tag="1.0")
    before = {path: path.stat().st_mtime_ns for path in dest.rglob("*")}
    layout.write(image, dest, tag="1.0")
    assert {path: path.stat().st_mtime_ns for path in dest.rglob("*")} == before


def test_a_tag_moves_and_other_entries_stay(tmp_path, store):
    dest = tmp_path / "out"
    first, second = _image(store, text=b"one"), _image(store, text=b"two")
    layout.write(first, dest, tag="latest")
    layout.write(first, dest, tag="1.0")
    layout.write(second, dest, tag="latest")
    layout.write(second, dest)
    layout.write(second, dest)  # unnamed: once per digest
    entries = json.loads((dest / "index.json").read_text())["manifests"]
    named = [(e.get("annotations", {}).get(layout.REF_NAME), e["digest"]) for e in entries]
    assert named == [("1.0", first.digest), ("latest", second.digest), (None, second.digest)]


def test_an_index_and_its_images(tmp_path, store):
    index = ImageIndex((_image(store, AMD64), _image(store, ARM64, b"arm")))
    dest = tmp_path / "out"
    assert layout.write(index, dest, tag="multi") == index.digest
    blobs = _blobs(dest)
    assert index.digest in blobs
    for image in index.images:
        assert {image.digest, image.config_digest, image.layers[0].digest} <= set(blobs)
    entry = json.loads((dest / "index.json").read_text())["manifests"][0]
    assert entry["mediaType"] == MediaType.OCI_INDEX.value and "platform" not in entry


def test_a_damaged_cache_blob_never_reaches_the_layout(tmp_path, store):
    image = _image(store)
    digest = image.layers[0].digest
    store.path(digest).write_bytes(b"damaged")
    from cais.errors import BlobError

    with pytest.raises(BlobError):
        layout.write(image, tmp_path / "out")
    assert digest not in _blobs(tmp_path / "out")
    assert not list((tmp_path / "out" / "blobs" / "sha256").glob(".tmp-*"))


@pytest.mark.parametrize("damage", ["not json", "file"])
def test_an_unusable_destination_is_one_sentence(tmp_path, store, damage):
    dest = tmp_path / "out"
    if damage == "file":
        dest.write_text("a file, not a folder")
        expected = f"Cannot write the OCI layout `{dest}`: "
    else:
        dest.mkdir()
        (dest / "index.json").write_text("{")
        expected = f"The OCI layout `{dest}` has an `index.json` that is not JSON"
    with pytest.raises(SinkError) as caught:
        layout.write(_image(store), dest)
    assert caught.value.message.startswith(expected)
    assert caught.value.hint
