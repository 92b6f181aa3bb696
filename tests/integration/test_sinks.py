"""Image values written to the real Docker Engine, to tarballs `docker load` reads, and to
OCI layouts; the base image's layers are read from the local registry."""

from __future__ import annotations

import hashlib
import json
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest

from cais.engine.client import docker_cli
from cais.errors import BlobError, EngineError
from cais.image.archive import File, write_layer
from cais.image.blobs import BlobStore
from cais.image.image import Image, append_layers, with_config
from cais.image.index import select_manifest
from cais.image.layer import Layer
from cais.image.media import MediaType
from cais.image.platform import Platform
from cais.sinks import engine as engine_sink
from cais.sinks import layout, tarball
from tests.support import BASE_IMAGE, engine_image_ids, unavailable

pytestmark = [pytest.mark.engine, pytest.mark.registry]

_ACCEPT = ", ".join(t.value for t in MediaType if t.is_index or t.is_manifest)
CREATED = 1_700_000_000


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> BlobStore:
    return BlobStore(tmp_path_factory.mktemp("blobs"))


@pytest.fixture(scope="module")
def base(registry, engine, store) -> Image:
    """The stand-in base image, read from the registry into the blob store (test-only reading:
    the registry client is cais.registry's)."""
    repository, _, tag = BASE_IMAGE.partition(":")
    with httpx.Client(base_url=f"http://{registry}/v2/{repository}", timeout=60) as client:
        answer = client.get(f"/manifests/{tag}", headers={"Accept": _ACCEPT})
        if answer.status_code != 200:
            unavailable(f"{BASE_IMAGE} is not in the registry {registry} (run scripts/test-infra)")
        manifest = answer.json()
        if MediaType(manifest["mediaType"]).is_index:
            entry = select_manifest(manifest, Platform.host())
            manifest = client.get(
                f"/manifests/{entry['digest']}", headers={"Accept": _ACCEPT}
            ).json()
        config = client.get(f"/blobs/{manifest['config']['digest']}").content
        diff_ids = json.loads(config)["rootfs"]["diff_ids"]
        layers = []
        for entry, diff_id in zip(manifest["layers"], diff_ids, strict=True):
            if not store.has(entry["digest"]):
                with client.stream("GET", f"/blobs/{entry['digest']}") as body:
                    with store.writer(expected=entry["digest"]) as out:
                        for chunk in body.iter_bytes(1 << 20):
                            out.write(chunk)
            layers.append(Layer.from_compressed(store, digest=entry["digest"], diff_id=diff_id))
    return Image(config, tuple(layers), MediaType(manifest["mediaType"]))


def _app(base: Image, store: BlobStore, text: str) -> Image:
    script = f"import os\nprint({text!r}, os.getuid())\n".encode()
    layer = write_layer(
        {"app/hello.py": File(script)}, store=store, created=CREATED, compression=None
    )
    image = append_layers(base, [layer], created_by=["COPY hello.py /app/"])
    return with_config(image, entrypoint=["python", "/app/hello.py"], user="1000", workdir="/app")


def _docker_load(path: Path) -> subprocess.CompletedProcess[str]:
    cli = docker_cli()
    if cli is None:
        unavailable("no docker CLI to run `docker load`")
    return subprocess.run([cli, "load", "-i", str(path)], capture_output=True, text=True)


def test_the_base_image_read_as_a_value_keeps_its_id(base, engine):
    assert base.id == engine.images.get(BASE_IMAGE).id


def test_an_image_written_to_the_engine_runs(base, store, engine, image_name):
    image = _app(base, store, f"hello from {image_name}")
    tag = f"{image_name}:1"
    assert engine_sink.write(image, engine, tags=[tag], candidates=[BASE_IMAGE]) == image.id
    assert engine.images.get(tag).id == image.id  # the image id is the config's digest
    output = engine.containers.run(tag, remove=True).decode()
    assert output == f"hello from {image_name} 1000\n"


def test_an_image_already_there_is_only_tagged(base, store, engine, image_name, monkeypatch):
    image = _app(base, store, f"tag only {image_name}")
    engine_sink.write(image, engine, tags=[f"{image_name}:first"])
    loads = []
    original = engine.api.load_image
    monkeypatch.setattr(engine.api, "load_image", lambda data: loads.append(1) or original(data))
    assert engine_sink.write(image, engine, tags=[f"{image_name}:second"]) == image.id
    assert loads == []
    assert engine.images.get(f"{image_name}:second").id == image.id


def test_the_engine_reads_no_layer_file_it_already_holds(base, store, engine, image_name):
    """Docker 20.10's load skips a layer whose chain id it holds: the sink relies on it."""
    image = _app(base, store, f"skip {image_name}")
    held = engine_sink.held_layers(image, engine_sink.held_chains(engine))
    assert held == len(base.layers)  # the base is in the engine, the new layer is not
    named = engine_sink.held_chains(engine, [BASE_IMAGE, f"{image_name}:absent"])
    assert engine_sink.held_layers(image, named) == held
    partial = store.root.parent / f"{image_name}-partial.tar"
    tarball.write(image, partial, tags=[f"{image_name}:partial"], skip=held)
    done = _docker_load(partial)
    assert done.returncode == 0, done.stderr
    assert engine.images.get(f"{image_name}:partial").id == image.id
    # Leaving out a layer the engine lacks fails: the skip is the engine's, not luck.
    other = _app(base, store, f"missing {image_name}")
    broken = store.root.parent / f"{image_name}-broken.tar"
    tarball.write(other, broken, tags=[f"{image_name}:broken"], skip=len(other.layers))
    failed = _docker_load(broken)
    assert failed.returncode != 0
    assert other.id not in engine_image_ids(engine)


def test_a_tarball_loads_with_the_id_the_engine_sink_gives(
    base, store, engine, image_name, tmp_path
):
    image = _app(base, store, f"tarball {uuid.uuid4().hex}")
    path = tmp_path / "image.tar"
    assert tarball.write(image, path, tags=[f"{image_name}:tar"]) == image.id
    done = _docker_load(path)
    assert done.returncode == 0, done.stderr
    assert f"Loaded image: {image_name}:tar" in done.stdout
    assert engine.images.get(f"{image_name}:tar").id == image.id
    assert engine_sink.write(image, engine, tags=[f"{image_name}:sink"]) == image.id
    assert engine.containers.run(f"{image_name}:sink", remove=True).decode().startswith("tarball")


def test_an_oci_layout_reads_back_to_the_same_digests(base, store, tmp_path):
    image = _app(base, store, "layout")
    dest = tmp_path / "layout"
    assert layout.write(image, dest, tag="1.0") == image.digest
    blobs = dest / "blobs" / "sha256"

    def blob(digest: str) -> bytes:
        data = (blobs / digest.removeprefix("sha256:")).read_bytes()
        assert "sha256:" + hashlib.sha256(data).hexdigest() == digest
        return data

    entry = json.loads((dest / "index.json").read_text())["manifests"][0]
    manifest = json.loads(blob(entry["digest"]))
    assert entry["digest"] == image.digest
    assert blob(manifest["config"]["digest"]) == image.config_json
    for described, layer in zip(manifest["layers"], image.layers, strict=True):
        assert described["size"] == len(blob(described["digest"])) == layer.compressed_size
    # The base layer keeps the registry's own compressed blob; the new one is compressed once.
    assert manifest["layers"][0]["digest"] == base.layers[0].digest


def test_a_damaged_layer_never_reaches_the_engine(base, store, engine, image_name):
    image = _app(base, store, f"damaged {image_name}")
    store.path(image.layers[-1].diff_id).write_bytes(b"not the tar the config lists")
    with pytest.raises(BlobError):
        engine_sink.write(image, engine, tags=[f"{image_name}:damaged"])
    assert image.id not in engine_image_ids(engine)
    assert not store.has(image.layers[-1].diff_id)


def test_an_engine_refusal_is_one_sentence(base, store, engine, image_name, monkeypatch):
    image = _app(base, store, f"refused {image_name}")
    # Leave out a layer the engine lacks: the engine refuses the load, in its own words.
    monkeypatch.setattr(engine_sink, "held_layers", lambda image, chains: len(image.layers))
    with pytest.raises(EngineError) as caught:
        engine_sink.write(image, engine, tags=[f"{image_name}:refused"])
    assert caught.value.message.startswith("The Docker Engine ")
    assert "Traceback" not in caught.value.message
    assert image.id not in engine_image_ids(engine)
