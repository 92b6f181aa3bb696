"""Image values pushed by cais.sinks.registry to the real local registries (CNCF
Distribution), read back with the registry client, and pulled and run by the real engine."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from cais.errors import AuthError, RegistryError
from cais.image.archive import File, write_layer
from cais.image.blobs import BlobStore
from cais.image.image import Image, append_layers, empty
from cais.image.index import ImageIndex
from cais.image.platform import Platform
from cais.registry.client import RegistryClient
from cais.sinks import registry as registry_sink
from tests.integration.test_registry_client import Counting
from tests.integration.test_sinks import CREATED, _app, base, store  # noqa: F401 - fixtures
from tests.support import REGISTRY_PASSWORD, REGISTRY_USER, free_port

pytestmark = [pytest.mark.registry]


class CountingBytes(Counting):
    """The real transport, counting the request body bytes it sends."""

    def __init__(self) -> None:
        super().__init__()
        self.sent = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.stream
        counter = self

        class Counted(httpx.SyncByteStream):
            def __iter__(self):
                for chunk in body:  # type: ignore[union-attr]
                    counter.sent += len(chunk)
                    yield chunk

        request.stream = Counted()
        return super().handle_request(request)


@pytest.fixture
def repository() -> str:
    return f"cais-test-{uuid.uuid4().hex[:10]}/app"


def random_image(
    cache: BlobStore, folder: Path, platform: str = "linux/amd64", **sizes: int
) -> Image:
    """An image of one layer per named size of random bytes, kept in `folder`, so another
    process building it from the same folder gets the same image."""
    folder.mkdir(parents=True, exist_ok=True)
    layers = []
    for name, size in sizes.items():
        path = folder / name
        if not path.exists():
            path.write_bytes(os.urandom(size))
        layers.append(write_layer({f"data/{name}": File(path)}, store=cache, created=CREATED))
    return append_layers(empty(Platform.parse(platform), created=CREATED), layers)


def recorder() -> tuple[list[tuple[str, str, int, int]], registry_sink.BlobProgress]:
    calls: list[tuple[str, str, int, int]] = []
    return calls, lambda *call: calls.append(call)


def final_status(calls: list[tuple[str, str, int, int]], digest: str) -> str:
    return [status for name, status, _, _ in calls if name == digest.removeprefix("sha256:")][-1]


def test_an_image_value_pushed_reads_back_and_runs(
    base,  # noqa: F811 - the fixtures of test_sinks
    store,  # noqa: F811
    engine,
    registry,
    image_name,
):
    image = _app(base, store, f"pushed {image_name}")
    for layer in base.layers:  # the base was read from the registry's `python` repository
        store.note_place(layer.digest, registry, "python")
    calls, progress = recorder()
    pushed = registry_sink.write(image, f"{registry}/{image_name}/app:1", progress=progress)
    assert str(pushed) == f"{registry}/{image_name}/app@{image.digest}"
    for layer in base.layers:
        assert final_status(calls, layer.digest) == "Mounted from python"
    assert final_status(calls, image.layers[-1].digest) == "Pushed"

    with RegistryClient(registry) as client:
        manifest = client.get_manifest(f"{image_name}/app", "1")
        assert manifest.digest == image.digest and manifest.content == image.manifest_json
        config_digest = manifest.data["config"]["digest"]
        assert client.read_blob(f"{image_name}/app", config_digest) == image.config_json
        for number, described in enumerate(manifest.data["layers"]):
            fetched = client.get_blob(f"{image_name}/app", described["digest"], store.root / "x")
            with image.layers[number].compressed() as stream:
                assert fetched.read_bytes() == stream.read()

    tag = f"{registry}/{image_name}/app:1"
    assert engine.images.pull(f"{registry}/{image_name}/app", tag="1").id == image.id
    assert engine.containers.run(tag, remove=True).decode() == f"pushed {image_name} 1000\n"


def test_pushing_again_is_one_head_and_another_tag_no_upload(registry, repository, tmp_path):
    cache = BlobStore(tmp_path / "cache")
    image = random_image(cache, tmp_path, small=10_000, big=2_000_000)
    registry_sink.write(image, f"{registry}/{repository}:1")
    counting = Counting()
    with RegistryClient(registry, transport=counting) as client:
        assert registry_sink.write(image, f"{registry}/{repository}:1", client=client).digest == (
            image.digest
        )
        assert counting.methods() == ["HEAD"]
        registry_sink.write(image, f"{registry}/{repository}:2", client=client)
        assert counting.methods() == ["HEAD"] * 5 + ["PUT"]  # tag, 3 blobs; the manifest
        assert client.manifest_digest(repository, "2") == image.digest


def test_an_index_reads_back_per_platform(registry, repository, tmp_path):
    cache = BlobStore(tmp_path / "cache")
    amd64 = random_image(cache, tmp_path / "amd64", code=20_000)
    arm64 = random_image(cache, tmp_path / "arm64", platform="linux/arm64", code=20_000)
    index = ImageIndex((amd64, arm64))
    assert registry_sink.write(index, f"{registry}/{repository}:1").digest == index.digest
    with RegistryClient(registry) as client:
        listed = client.get_manifest(repository, "1")
        assert listed.is_index and listed.content == index.manifest_json
        for image in (amd64, arm64):
            chosen = client.get_manifest(repository, "1", platform=str(image.platform))
            assert chosen.digest == image.digest


def test_a_new_model_version_sends_only_its_layer(registry, repository, tmp_path):
    cache = BlobStore(tmp_path / "cache")
    shared = {"packages": 6_000_000, "runtime": 2_000_000}
    first = random_image(cache, tmp_path / "one", **shared, model=400_000)
    (tmp_path / "two").mkdir()
    for name in shared:  # the same packages and runtime, another model
        (tmp_path / "two" / name).write_bytes((tmp_path / "one" / name).read_bytes())
    second = random_image(cache, tmp_path / "two", **shared, model=400_000)
    assert first.layers[:2] == second.layers[:2] and first.layers[2] != second.layers[2]
    registry_sink.write(first, f"{registry}/{repository}:1")
    counting = CountingBytes()
    with RegistryClient(registry, transport=counting) as client:
        registry_sink.write(second, f"{registry}/{repository}:2", client=client)
    model = second.layers[2].compressed_size
    assert model <= counting.sent <= model * 1.05
    uploads = [path for method, path in counting.seen if method == "PUT" and "uploads" in path]
    assert len(uploads) == 2  # the model layer and the config; then the manifest


CHILD = """
import sys, time
from pathlib import Path
from cais.image.blobs import BlobStore
from cais.sinks import registry as registry_sink
from tests.integration.test_registry_sink import random_image

registry, repository, folder = sys.argv[1:]
folder = Path(folder)
image = random_image(BlobStore(folder / "cache"), folder, small=10_000, big=50_000_000)

def stall(name, status, done, total):
    if done > 25_000_000:  # half the big layer sent: say so, and wait to be killed
        print("halfway", flush=True)
        time.sleep(600)

registry_sink.write(image, f"{registry}/{repository}:1", progress=stall, jobs=1)
"""


def test_a_push_killed_halfway_completes_when_run_again(registry, repository, tmp_path):
    cache = BlobStore(tmp_path / "cache")
    image = random_image(cache, tmp_path, small=10_000, big=50_000_000)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, registry, repository, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        assert child.stdout.readline() == "halfway\n", "the child never got halfway"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    with RegistryClient(registry) as client:
        assert client.manifest_digest(repository, "1") is None  # no tag on half an image

    counting = Counting()
    calls, progress = recorder()
    with RegistryClient(registry, transport=counting) as client:
        registry_sink.write(image, f"{registry}/{repository}:1", client=client, progress=progress)
        assert client.get_manifest(repository, "1").digest == image.digest
    assert final_status(calls, image.config_digest) == "Layer already exists"
    assert final_status(calls, image.layers[0].digest) == "Layer already exists"
    assert final_status(calls, image.layers[1].digest) == "Pushed"
    assert counting.methods().count("PUT") == 2  # the big layer and the manifest


def _docker_config(folder: Path, registry: str, password: str) -> None:
    auth = base64.b64encode(f"{REGISTRY_USER}:{password}".encode()).decode()
    (folder / "config.json").write_text(json.dumps({"auths": {registry: {"auth": auth}}}))


@pytest.mark.parametrize("password", ["wrong", REGISTRY_PASSWORD + "x"])
def test_wrong_credentials_are_one_sentence(
    auth_registry, repository, tmp_path, docker_config, password
):
    _docker_config(docker_config, auth_registry, password)
    image = random_image(BlobStore(tmp_path / "cache"), tmp_path, small=1_000)
    with pytest.raises(AuthError) as caught:
        registry_sink.write(image, f"{auth_registry}/{repository}:1")
    message = caught.value.message
    assert message == (
        f"The registry `{auth_registry}` refused the username or password for `{REGISTRY_USER}`"
    )
    assert password not in f"{message} {caught.value.hint}"


def test_no_credentials_say_to_log_in(auth_registry, repository, tmp_path, docker_config):
    image = random_image(BlobStore(tmp_path / "cache"), tmp_path, small=1_000)
    with pytest.raises(AuthError) as caught:
        registry_sink.write(image, f"{auth_registry}/{repository}:1")
    assert caught.value.message.startswith(f"The registry `{auth_registry}` needs a login")
    assert caught.value.hint == f"log in with `cais login {auth_registry}`"


def test_the_right_credentials_push(auth_registry, repository, tmp_path, docker_config):
    _docker_config(docker_config, auth_registry, REGISTRY_PASSWORD)
    image = random_image(BlobStore(tmp_path / "cache"), tmp_path, small=1_000)
    pushed = registry_sink.write(image, f"{auth_registry}/{repository}:1")
    assert pushed.digest == image.digest
    with RegistryClient(auth_registry) as client:
        assert client.manifest_digest(repository, "1") == image.digest


def test_an_unreachable_registry_is_one_sentence(repository, tmp_path):
    address = f"127.0.0.1:{free_port()}"
    image = random_image(BlobStore(tmp_path / "cache"), tmp_path, small=1_000)
    with pytest.raises(RegistryError) as caught:
        registry_sink.write(image, f"{address}/{repository}:1")
    assert caught.value.message.startswith(f"The registry `{address}` does not answer at ")
    assert "\n" not in caught.value.message and not caught.value.message.endswith(".")


def test_a_push_needs_no_engine(registry, repository, tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nowhere/docker.sock")
    image = random_image(BlobStore(tmp_path / "cache"), tmp_path, small=5_000)
    assert registry_sink.write(image, f"{registry}/{repository}:1").digest == image.digest
