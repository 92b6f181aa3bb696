"""cais.image.image: an image is a value; changing it gives a new one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cais.image.archive import File, write_layer
from cais.image.blobs import BlobStore, sha256_digest
from cais.image.image import (
    Image,
    append_layers,
    canonical_json,
    empty,
    timestamp,
    with_config,
    with_created,
)
from cais.image.media import MediaType
from cais.image.platform import Platform

AMD64 = Platform.parse("linux/amd64")


@pytest.fixture
def store(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "cache")


def _layer(store, name: str):
    return write_layer({name: File(name.encode())}, store=store, created=0)


def test_empty_is_from_scratch():
    image = empty(AMD64, created=86400)
    assert image.layers == ()
    assert image.platform == AMD64
    assert image.config["rootfs"] == {"type": "layers", "diff_ids": []}
    assert image.config["created"] == "1970-01-02T00:00:00Z"
    assert image.created == 86400
    assert image.id == image.config_digest == sha256_digest(image.config_json)


def test_append_layers_lists_them_with_history(store):
    base = empty(AMD64, created=10)
    one, two = _layer(store, "a"), _layer(store, "b")
    image = append_layers(base, [one, two], created_by=["deps", "app"])
    assert image.layers == (one, two)
    assert image.config["rootfs"]["diff_ids"] == [one.diff_id, two.diff_id]
    assert image.config["history"] == [
        {"created": timestamp(10), "created_by": "deps"},
        {"created": timestamp(10), "created_by": "app"},
    ]
    assert base.layers == () and base.config["rootfs"]["diff_ids"] == []  # unchanged
    with pytest.raises(ValueError, match="one created_by per layer"):
        append_layers(base, [one], created_by=[])


def test_with_config_merges_and_never_mutates():
    base = with_config(
        empty(AMD64),
        env={"PATH": "/usr/bin", "LANG": "C.UTF-8"},
        cmd=["python3"],
        labels={"a": "1"},
    )
    before = base.config_json
    image = with_config(
        base,
        env={"PATH": "/app/bin:/usr/bin", "PORT": "8080"},
        user="1000:1000",
        workdir="/app",
        entrypoint=["python", "-m", "app"],
        exposed_ports=["8080", "9000/udp"],
        labels={"b": "2"},
        healthcheck={"Test": ["CMD", "true"], "Interval": 5_000_000_000},
    )
    settings = image.config["config"]
    assert settings["Env"] == ["PATH=/app/bin:/usr/bin", "LANG=C.UTF-8", "PORT=8080"]
    assert settings["User"] == "1000:1000" and settings["WorkingDir"] == "/app"
    assert settings["Entrypoint"] == ["python", "-m", "app"]
    assert "Cmd" not in settings  # a new entrypoint drops the inherited command
    assert settings["ExposedPorts"] == {"8080/tcp": {}, "9000/udp": {}}
    assert settings["Labels"] == {"a": "1", "b": "2"}
    assert settings["Healthcheck"]["Test"] == ["CMD", "true"]
    assert base.config_json == before
    assert with_config(image, entrypoint=["x"], cmd=["y"]).config["config"]["Cmd"] == ["y"]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("2023-11-14T22:13:20Z", 1_700_000_000),
        ("2023-11-14T22:13:20.123456789Z", 1_700_000_000),
        ("2023-11-14T23:13:20+01:00", 1_700_000_000),
        ("yesterday", None),
        ("", None),
    ],
)
def test_created_is_read_as_engines_write_it(text, seconds):
    config = {**empty(AMD64).config, "created": text}
    assert Image(canonical_json(config), ()).created == seconds


def test_config_is_a_copy():
    image = empty(AMD64)
    image.config["os"] = "windows"
    assert image.platform == AMD64


def test_with_created_sets_the_time_and_changes_the_id():
    image = empty(AMD64, created=0)
    later = with_created(image, 1_700_000_000)
    assert later.config["created"] == "2023-11-14T22:13:20Z"
    assert later.id != image.id and image.created == 0


def test_config_and_manifest_are_canonical(store):
    image = with_config(
        append_layers(empty(AMD64), [_layer(store, "a")]), labels={"z": "1", "a": "2"}
    )
    text = image.config_json.decode()
    assert " " not in text and text == json.dumps(
        json.loads(text), sort_keys=True, separators=(",", ":")
    )
    manifest = json.loads(image.manifest_json)
    assert manifest["schemaVersion"] == 2
    assert manifest["mediaType"] == MediaType.OCI_MANIFEST.value
    assert manifest["config"] == {
        "mediaType": MediaType.OCI_CONFIG.value,
        "digest": image.config_digest,
        "size": len(image.config_json),
    }
    assert [entry["digest"] for entry in manifest["layers"]] == [image.layers[0].digest]
    assert image.digest == sha256_digest(image.manifest_json)
    assert image.descriptor().size == len(image.manifest_json)


def test_a_docker_v2_image_lists_docker_media_types(store):
    image = append_layers(empty(AMD64, media_type=MediaType.DOCKER_MANIFEST), [_layer(store, "a")])
    manifest = json.loads(image.manifest_json)
    assert manifest["mediaType"] == MediaType.DOCKER_MANIFEST.value
    assert manifest["config"]["mediaType"] == MediaType.DOCKER_CONFIG.value
    assert manifest["layers"][0]["mediaType"] == MediaType.DOCKER_LAYER_GZIP.value


def test_the_manifest_compresses_layers_written_without(store):
    layer = write_layer({"a": File(b"a")}, store=store, created=0, compression=None)
    image = append_layers(empty(AMD64), [layer])
    assert json.loads(image.manifest_json)["layers"][0]["digest"] == layer.compress().digest


def test_config_and_layers_must_agree(store):
    config = empty(AMD64).config_json
    with pytest.raises(ValueError, match="do not list the image's layers"):
        Image(config, (_layer(store, "a"),))
    with pytest.raises(ValueError, match="not an image manifest media type"):
        Image(config, (), MediaType.OCI_INDEX)
