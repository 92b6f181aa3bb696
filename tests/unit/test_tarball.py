"""cais.sinks.tarball: the `docker save` format, streamed."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from cais.errors import BlobError, PlanError, SinkError
from cais.image.archive import File, write_layer
from cais.image.blobs import BlobStore
from cais.image.image import append_layers, empty
from cais.image.platform import Platform
from cais.sinks import tarball


@pytest.fixture
def image(tmp_path: Path):
    store = BlobStore(tmp_path / "cache")
    layers = [
        write_layer({name: File(name.encode() * 700)}, store=store, created=0, compression=None)
        for name in ("a", "b", "a")  # the same layer twice, as empty layers often are
    ]
    return append_layers(empty(Platform.parse("linux/amd64")), layers)


def _read(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}


def test_manifest_config_and_layer_tars(tmp_path, image):
    dest = tmp_path / "image.tar"
    assert tarball.write(image, dest, tags=["hello", "127.0.0.1:5000/team/app:1.0"]) == image.id
    members = _read(dest)
    manifest = json.loads(members["manifest.json"])
    config_name = image.config_digest[7:] + ".json"
    layer_names = [layer.diff_id[7:] + "/layer.tar" for layer in image.layers]
    assert manifest == [
        {
            "Config": config_name,
            "Layers": layer_names,
            "RepoTags": ["hello:latest", "127.0.0.1:5000/team/app:1.0"],
        }
    ]
    assert members[config_name] == image.config_json
    for layer, name in zip(image.layers, layer_names, strict=True):
        with layer.uncompressed() as stream:
            assert members[name] == stream.read()
    assert sorted(members) == sorted({config_name, "manifest.json", *layer_names})
    assert not list(tmp_path.glob(".image.tar-*"))


def test_layers_the_engine_holds_are_left_out(tmp_path, image):
    dest = tmp_path / "image.tar"
    tarball.write(image, dest, skip=2)
    members = _read(dest)
    names = json.loads(members["manifest.json"])[0]["Layers"]
    assert len(names) == 3  # still listed: the engine finds them by chain id
    assert names[1] not in members
    assert names[2] == names[0] in members  # the third layer is needed, and is the first's
    tarball.write(image, dest, skip=3)
    assert not set(names) & set(_read(dest))


def test_the_same_image_gives_the_same_bytes(tmp_path, image):
    one, two = tmp_path / "1.tar", tmp_path / "2.tar"
    tarball.write(image, one, tags=["x:1"])
    tarball.write(image, two, tags=["x:1"])
    assert one.read_bytes() == two.read_bytes()


@pytest.mark.parametrize(
    ("tag", "message"),
    [
        ("Bad Tag", "`Bad Tag` is not"),
        ("UPPER:1", "`UPPER:1`"),
        ("app@sha256:" + "a" * 64, "names a digest, which cannot be given to an image"),
    ],
)
def test_a_bad_tag_is_refused_before_writing(tmp_path, image, tag, message):
    with pytest.raises(PlanError, match=message):
        tarball.write(image, tmp_path / "x.tar", tags=["good:1", tag])
    assert list(tmp_path.glob("*.tar")) == []
    assert list(tmp_path.glob(".x.tar-*")) == []


@pytest.mark.parametrize("where", ["missing/x.tar", "file/x.tar"])
def test_an_unwritable_destination_is_one_sentence(tmp_path, image, where):
    (tmp_path / "file").write_text("")
    dest = tmp_path / where
    with pytest.raises(SinkError) as caught:
        tarball.write(image, dest)
    assert caught.value.message.startswith(f"Cannot write the image tarball `{dest}`: ")


@pytest.mark.parametrize("skip", [0, 1, 2, 3])
@pytest.mark.parametrize("tags", [[], ["x:1", "127.0.0.1:5000/team/app:1.0"]])
def test_the_stream_knows_its_length_before_it_starts(image, skip, tags):
    stream = tarball.stream(image, tags=tags, skip=skip)
    assert len(stream) == sum(len(chunk) for chunk in stream)
    assert len(stream) % 512 == 0
    # the config, the layer files not left out (the third is the first's), the manifest
    members = 2 + len({layer.diff_id for layer in image.layers[skip:]})
    assert repr(stream) == f"Stream(length={len(stream)}, members={members})"


def test_chunks_may_be_kept_and_give_the_written_file(tmp_path, image):
    """Each chunk is its own buffer: keeping them all gives the same bytes as the file."""
    kept = list(tarball.stream(image, tags=["x:1"]))
    tarball.write(image, tmp_path / "image.tar", tags=["x:1"])
    assert b"".join(kept) == (tmp_path / "image.tar").read_bytes()


def test_an_http_client_sends_it_with_a_content_length_not_chunked(image):
    """requests (under the Docker SDK) frames a body of unknown length as chunks, copying
    each; a sized stream goes out as it is."""
    import requests

    stream = tarball.stream(image, skip=1)
    request = requests.Request("POST", "http://engine/images/load", data=stream).prepare()
    assert request.headers["Content-Length"] == str(len(stream))
    assert "Transfer-Encoding" not in request.headers
    assert request.body is stream


def test_a_damaged_layer_stops_the_stream(tmp_path, image):
    damaged = image.layers[1]
    damaged.store.path(damaged.diff_id).write_bytes(b"not the tar the config lists")
    with pytest.raises(BlobError, match="is damaged and has been removed"):
        b"".join(tarball.stream(image))
    assert not damaged.store.has(damaged.diff_id)
