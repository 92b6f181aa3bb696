"""A base image the engine holds, read lazily: for an image bound for that engine none of
its layers is exported, and a sink that needs their bytes (a layout, a registry) still gets
them, exported once and checked by digest."""

from __future__ import annotations

import json
import threading
import uuid

import pytest

from cais.engine.client import connect
from cais.image import engine_source, listing
from cais.image.blobs import BlobStore
from cais.image.layer import compress_layers
from cais.image.platform import Platform
from cais.registry.client import RegistryClient
from cais.sinks import layout
from tests.integration.test_oci_builder import _layout, _project, registry_base
from tests.support import REGISTRY, engine_images

pytestmark = [pytest.mark.engine, pytest.mark.registry]

__all__ = ["registry_base"]  # a fixture, shared with the OCI builder's tests


class Connections:
    """Connects to the engine, counting how many times (one per export)."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def __call__(self):
        with self._lock:
            self.count += 1
        return connect(timeout=30)


@pytest.fixture(scope="module")
def eager(engine, base_image, tmp_path_factory):
    """The base image exported whole, as a non-lazy read gives it."""
    store = BlobStore(tmp_path_factory.mktemp("eager"))
    image = engine_source.read(engine, base_image, store=store, platform=Platform.host())
    assert image is not None
    return image


def _lazy(engine, base_image, store, connections, eager, *, config=True):
    """The base read lazily; its config from `eager` (by digest), or with no `config` not."""
    return engine_source.read(
        engine,
        base_image,
        store=store,
        platform=Platform.host(),
        connect=connections,
        config=lambda digest: eager.config_json if config and digest == eager.id else None,
    )


def test_no_layer_is_exported_until_one_is_read(tmp_path, engine, base_image, eager):
    store, connections = BlobStore(tmp_path / "cache"), Connections()
    image = _lazy(engine, base_image, store, connections, eager)
    assert image is not None and image.id == eager.id
    assert [layer.diff_id for layer in image.layers] == [layer.diff_id for layer in eager.layers]
    assert not any(layer.held for layer in image.layers)
    assert connections.count == 0
    # Compressing every layer at once (as a push does) exports the image once, checked.
    compressed = compress_layers(image.layers, workers=4)
    assert connections.count == 1
    assert all(layer.held and store.verify(layer.diff_id) for layer in image.layers)
    assert [layer.digest for layer in compressed] == [
        layer.digest for layer in compress_layers(eager.layers)
    ]
    # The files a user layer needs, read from what the engine gave, as the eager copy has them.
    found = listing.files(image.layers)
    assert found == listing.files(eager.layers)
    assert set(found) == {"etc/passwd", "etc/group"} and b"root:x:0:0" in found["etc/passwd"]
    assert connections.count == 1


def test_a_config_not_to_be_had_otherwise_is_exported_with_the_layers(
    tmp_path, engine, base_image, eager
):
    connections = Connections()
    store = BlobStore(tmp_path / "cache")
    image = _lazy(engine, base_image, store, connections, eager, config=False)
    assert image is not None and image.id == eager.id
    assert all(layer.held for layer in image.layers)
    assert connections.count == 0  # the one export was the read's own


def test_a_lazy_image_written_to_a_layout_holds_every_layer(tmp_path, engine, base_image, eager):
    store, connections = BlobStore(tmp_path / "cache"), Connections()
    image = _lazy(engine, base_image, store, connections, eager)
    layout.write(image, tmp_path / "out", tag="base")
    digest, manifest, config = _layout(tmp_path / "out")  # every blob checked by digest
    assert digest == image.digest
    assert config["rootfs"]["diff_ids"] == [layer.diff_id for layer in eager.layers]
    assert len(manifest["layers"]) == len(eager.layers)


def test_an_image_built_for_the_engine_then_pushed_sends_every_layer(
    tmp_path, cais, engine, base_image, registry, image_name, proxy
):
    """`--load` reads the base from the engine lazily; a later `--push` of the same project,
    with the same cache, sends real bytes for every layer."""
    project = _project(cais, tmp_path / "hello")
    env = {"CAIS_CACHE": str(tmp_path / "cache"), "CAIS_BASE_REGISTRY": registry}
    loaded = cais("build", str(project), "--load", "-t", f"{image_name}:1", *proxy, env=env)
    assert loaded.returncode == 0, loaded.stderr
    repository = f"cais-lazy-{uuid.uuid4().hex[:8]}/hello"
    pushed = cais(
        "build", str(project), "--push", "-t", f"{registry}/{repository}:1", *proxy, env=env
    )
    assert pushed.returncode == 0, pushed.stderr
    store = BlobStore(tmp_path / "check")
    with RegistryClient(REGISTRY) as client:
        manifest = client.get_manifest(repository, "1", platform=str(Platform.host()))
        for layer in manifest.data["layers"]:  # fetched and checked against its digest
            client.get_blob(repository, layer["digest"], store.path(layer["digest"]))
            assert store.size(layer["digest"]) == layer["size"]
        config = json.loads(client.read_blob(repository, manifest.data["config"]["digest"]))
    held = engine.images.get(f"{image_name}:1").attrs["RootFS"]["Layers"]
    # The same layers in both places, but the SBOM's, which names the image by its tag.
    assert config["rootfs"]["diff_ids"][:-1] == held[:-1]
    assert len(held) == len(manifest.data["layers"])


def test_a_base_the_engine_lacks_is_read_from_the_registry(
    tmp_path, cais, engine, registry_base, image_name, proxy
):
    """The engine gets the image, but has no copy of its base: the registry's is read."""
    project = _project(cais, tmp_path / "hello", base=registry_base)
    env = {"CAIS_CACHE": str(tmp_path / "cache")}
    done = cais("build", str(project), "--load", "-t", image_name, "-v", *proxy, env=env)
    assert done.returncode == 0, done.stderr
    store = BlobStore(tmp_path / "cache")
    with RegistryClient(REGISTRY) as client:
        repository, _, tag = registry_base.partition("/")[2].rpartition(":")
        manifest = client.get_manifest(repository, tag, platform=str(Platform.host()))
    assert all(store.has(layer["digest"]) for layer in manifest.data["layers"])
    ran = cais("run", "--rm", image_name, "sh", "-c", "id -un")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "app"


def test_a_base_removed_from_the_engine_before_its_layers_are_read_is_one_sentence(
    tmp_path, engine, base_image
):
    """The engine may lose the image between the build and a sink's read of its layers: the
    read then fails as cais's own error naming the image, never with a half-read layer."""
    from cais.errors import CaisError

    container = engine.containers.create(base_image, ["true"])
    try:
        made = container.commit(repository=f"cais-lazy-gone-{uuid.uuid4().hex[:8]}", tag="1")
    finally:
        container.remove(force=True)
    try:
        whole = engine_source.read(
            engine, made.id, store=BlobStore(tmp_path / "whole"), platform=Platform.host()
        )
        assert whole is not None
        store = BlobStore(tmp_path / "cache")
        image = _lazy(engine, made.id, store, Connections(), whole)
        assert image is not None and not image.layers[-1].held
    finally:
        engine.images.remove(made.id, force=True)
    with pytest.raises(CaisError) as failed:
        image.layers[-1].uncompressed()
    assert failed.value.message == (
        f"The Docker Engine no longer holds the base image `{made.id}` (`{made.id[7:19]}`) "
        "whose layers this image needs"
    )
    assert failed.value.hint == f"pull `{made.id}` again and build again"
    assert not any(layer.held for layer in image.layers)


@pytest.fixture
def own_base(engine, base_image, registry):
    """A base of this test's own (the stand-in, committed: a config no other test exports),
    pushed as `REPOSITORY:1` and held by the engine as that and as `REPOSITORY:local`."""
    repository = f"{registry}/cais-lazy-own-{uuid.uuid4().hex[:8]}/base"
    container = engine.containers.create(base_image, ["true"])
    try:
        image = container.commit(repository=repository, tag="1")
    finally:
        container.remove(force=True)
    image.tag(repository, "local")
    yield repository, image.id
    _forget(engine, repository, image.id)


def _forget(engine, repository: str, image_id: str) -> None:
    """Remove the engine's image and the digest references a push left on the stand-in."""
    engine.images.remove(image_id, force=True)
    for image in engine_images(engine):
        for reference in image.get("RepoDigests") or []:
            if reference.startswith(repository + "@"):
                engine.images.remove(reference)


def _built_sbom(cais, engine, project, tag, env, proxy, base_id) -> tuple[bytes, int]:
    """The SBOM a cold `--load` build of `project` stores in its image, and how many times
    the build made the engine export (`docker save`) the base `base_id`."""
    import time

    from cais.image import sbom

    since = time.time()
    done = cais("build", str(project), "--builder", "oci", "--load", "-t", tag, *proxy, env=env)
    assert done.returncode == 0, done.stderr
    saves = engine.events(
        since=since - 1,
        until=time.time() + 1,
        filters={"type": "image", "event": "save"},
        decode=True,
    )
    document = engine.containers.run(tag, ["cat", sbom.PATH], entrypoint=[], remove=True)
    return document, sum(event["Actor"]["ID"] == base_id for event in saves)


def test_a_cold_engine_only_build_lists_the_bases_packages_without_exporting_it(
    tmp_path, cais, engine, own_base, image_name, proxy, eager
):
    """The base's registry holds the engine's base (the same config): its layers come from
    there, read as they decompress (the engine holds their tars: none is stored), and the SBOM
    is the one a build that exported the base writes."""
    from cais.image import sbom

    repository, base_id = own_base
    for line in engine.images.push(repository, "1", stream=True, decode=True):
        assert "error" not in line, line
    built = {
        # `local` was never pushed: the engine exports it.
        tag: _built_sbom(
            cais,
            engine,
            _project(cais, tmp_path / tag / "hello", base=f"{repository}:{tag}"),
            f"{image_name}:1",
            {"CAIS_CACHE": str(tmp_path / f"cache-{tag}")},
            proxy,
            base_id,
        )
        for tag in ("1", "local")
    }
    (pulled, saves), (exported, exports) = built["1"], built["local"]
    assert (saves, exports) == (0, 1)
    with RegistryClient(REGISTRY) as client:
        name = repository.partition("/")[2]
        manifest = client.get_manifest(name, "1", platform=str(Platform.host()))
    pulled_store = BlobStore(tmp_path / "cache-1")
    assert all(pulled_store.has(layer["digest"]) for layer in manifest.data["layers"])
    assert not any(pulled_store.has(layer.diff_id) for layer in eager.layers)
    # The same packages, described the same (the timestamps are the two projects' own).
    components = json.loads(pulled)["components"]
    assert components == json.loads(exported)["components"]
    listed = {c["name"] for c in components}
    base = {p.name for p in sbom.packages_in_layers(eager.layers)}
    assert base and base <= listed


@pytest.mark.parametrize("succeeds", [False, True])
def test_layers_a_pull_does_not_bring_are_exported(tmp_path, engine, base_image, eager, succeeds):
    """A pull that fails, or says it succeeded but left a layer out, leaves it to the export."""
    store, connections = BlobStore(tmp_path / "cache"), Connections()
    asked = []

    def pull(config_digest: str) -> bool:
        asked.append(config_digest)
        return succeeds

    image = engine_source.read(
        engine,
        base_image,
        store=store,
        platform=Platform.host(),
        connect=connections,
        config=lambda digest: eager.config_json if digest == eager.id else None,
        pull=pull,
    )
    assert image is not None and connections.count == 0
    image.layers[-1].uncompressed().close()
    assert asked == [eager.id] and connections.count == 1
    assert all(layer.held and store.verify(layer.diff_id) for layer in image.layers)


def test_a_base_registry_holding_another_image_under_the_name_leaves_it_to_the_export(
    tmp_path, cais, engine, own_base, base_image, image_name, proxy
):
    """The registry's `NAME:1` is not the engine's (though the registry holds the engine's
    config, under another tag): its layers would be another image's, so the engine's copy is
    exported, and the registry's layers are not fetched for nothing."""
    repository, base_id = own_base
    engine.images.get(base_id).tag(repository, "own")
    engine.images.get(base_image).tag(repository, "1")
    for tag in ("own", "1"):
        for line in engine.images.push(repository, tag, stream=True, decode=True):
            assert "error" not in line, line
    engine.images.get(base_id).tag(repository, "1")  # the engine's `1` is its own base again
    project = _project(cais, tmp_path / "hello", base=f"{repository}:1")
    document, saves = _built_sbom(
        cais, engine, project, image_name, {"CAIS_CACHE": str(tmp_path / "cache")}, proxy, base_id
    )
    assert saves == 1
    assert json.loads(document)["components"]
    with RegistryClient(repository.partition("/")[0]) as client:
        manifest = client.get_manifest(
            repository.partition("/")[2], "1", platform=str(Platform.host())
        )
    store = BlobStore(tmp_path / "cache")
    assert not any(store.has(layer["digest"]) for layer in manifest.data["layers"])
