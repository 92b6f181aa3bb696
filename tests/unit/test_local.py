"""cais.image.local: the record of the images cais holds, by tag."""

from __future__ import annotations

from pathlib import Path

import pytest

from cais.errors import PlanError
from cais.image.archive import File, write_layer
from cais.image.blobs import BlobStore
from cais.image.image import append_layers, empty
from cais.image.index import ImageIndex
from cais.image.layer import Layer
from cais.image.local import forget, lookup, records, remember
from cais.image.media import MediaType
from cais.image.platform import Platform


@pytest.fixture
def store(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "cache")


def _image(store, text: str, *, platform: str = "linux/amd64", compression="gzip"):
    layer = write_layer(
        {"app/x.txt": File(text.encode())},
        store=store,
        created=1,
        compression=None if compression is None else MediaType.OCI_LAYER_GZIP.compression,
    )
    return append_layers(empty(Platform.parse(platform)), [layer], created_by=["cais: COPY . /app"])


@pytest.mark.parametrize("compression", ["gzip", None])
def test_an_image_remembered_is_the_same_image_when_looked_up(store, compression):
    image = _image(store, "one", compression=compression)
    remember(store, ["127.0.0.1:5000/team/app:1", "app"], image)
    for tag in ("127.0.0.1:5000/team/app:1", "app:latest", "app", "docker.io/library/app"):
        found = lookup(store, tag)
        assert found is not None, tag
        assert found.id == image.id and found.digest == image.digest
    assert lookup(store, "app:2") is None
    assert sorted(r.reference for r in records(store)) == [
        "127.0.0.1:5000/team/app:1",
        "app:latest",
    ]


def test_a_fetched_layer_keeps_its_registrys_compressed_form(store):
    made = _image(store, "base").layers[0].compress()
    fetched = Layer.from_compressed(
        store, digest=made.digest, diff_id=made.diff_id, compression=made.compression
    )
    store.remove(made.diff_id)  # a fetched layer has only its compressed blob
    image = append_layers(empty(Platform.parse("linux/arm64")), [fetched])
    remember(store, ["base:1"], image)
    found = lookup(store, "base:1")
    assert found is not None and found.layers[0].digest == made.digest
    assert found.digest == image.digest


def test_a_tag_remembered_again_names_the_new_image(store):
    remember(store, ["app:1"], _image(store, "one"))
    second = _image(store, "two")
    remember(store, ["app:1"], second)
    found = lookup(store, "app:1")
    assert found is not None and found.id == second.id


def test_a_forgotten_tag_is_no_longer_found_and_others_stay(store):
    image = _image(store, "one")
    remember(store, ["app:1", "app:2"], image)
    forget(store, "app:1")
    forget(store, "never:remembered")
    assert lookup(store, "app:1") is None
    assert lookup(store, "app:2") is not None


def test_an_index_is_remembered_whole(store):
    index = ImageIndex(
        (_image(store, "x", platform="linux/amd64"), _image(store, "y", platform="linux/arm64"))
    )
    remember(store, ["multi:1"], index)
    found = lookup(store, "multi:1")
    assert isinstance(found, ImageIndex) and found.digest == index.digest


@pytest.mark.parametrize(
    ("lost", "how"), [("layer", "removed"), ("config", "damaged"), ("record", "damaged")]
)
def test_an_image_whose_blobs_are_gone_is_not_found(store, lost, how):
    """Layers are only looked for (a damaged one is refused when it is read, as it is sent);
    the config and the record are read, so damage to them is found at once."""
    image = _image(store, "one", compression=None)
    record = remember(store, ["app:1"], image)
    victim = {"layer": image.layers[0].diff_id, "config": image.config_digest, "record": record}
    if how == "removed":
        store.remove(victim[lost])
    else:
        store.path(victim[lost]).write_bytes(b"damaged")
    assert lookup(store, "app:1") is None
    [listed] = records(store)
    assert listed.reference == "app:1" and listed.image is None


@pytest.mark.parametrize("tag", ["Bad/Name", "a//b", ""])
def test_a_tag_that_is_no_reference_is_refused(store, tag):
    with pytest.raises(PlanError):
        remember(store, [tag], _image(store, "one"))
