"""cais.sinks.registry: image values pushed through the registry client to the in-memory
registry of test_registry_client (the real registries are in tests/integration)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from cais.errors import AuthError, BlobError, DigestMismatch, PlanError
from cais.image.archive import File, write_layer
from cais.image.blobs import BlobStore
from cais.image.image import Image, append_layers, empty
from cais.image.index import ImageIndex
from cais.image.platform import Platform
from cais.output import LayerDisplay
from cais.registry.credentials import Credentials
from cais.sinks import registry as registry_sink
from tests.unit.test_registry_client import HOST, USER, FakeRegistry, _error, _kind, sha

TAG = f"{HOST}/team/app:1.0"


@pytest.fixture
def store(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "cache")


def make_image(store: BlobStore, *contents: bytes, platform: str = "linux/amd64") -> Image:
    layers = [
        write_layer({f"app/file{n}": File(data)}, store=store, created=0)
        for n, data in enumerate(contents)
    ]
    return append_layers(empty(Platform.parse(platform)), layers)


def blob_digests(image: Image) -> list[str]:
    return [image.config_digest, *(layer.digest for layer in image.layers)]


def sent(registry: FakeRegistry, since: int = 0) -> list[tuple[str, str]]:
    """(method, what) of the requests after `since`: `manifests`, `uploads` or `blobs`."""
    return [(r.method, _kind(r)) for r in registry.requests[since:] if _kind(r) != "ping"]


def test_blobs_go_first_and_the_tag_last(store):
    registry = FakeRegistry()
    image = make_image(store, b"base" * 5000, b"app code")
    pushed = registry_sink.write(image, TAG, client=registry.client())
    assert str(pushed) == f"{HOST}/team/app@{image.digest}"
    assert registry.manifests["team/app"]["1.0"] == (image.media_type.value, image.manifest_json)
    held = registry.blobs["team/app"]
    assert held[image.config_digest] == image.config_json
    for layer in image.layers:
        with layer.compressed() as stream:
            assert held[layer.digest] == stream.read()
    requests = sent(registry)
    assert requests[0] == ("HEAD", "manifests")  # is the image already there?
    assert requests[-1] == ("PUT", "manifests")
    assert [r for r in requests if r[1] == "manifests"] == [
        ("HEAD", "manifests"),
        ("PUT", "manifests"),
    ]
    for digest in blob_digests(image):
        assert store.places(digest, HOST) == ["team/app"]


def test_the_same_image_again_is_one_head(store):
    registry = FakeRegistry()
    image = make_image(store, b"layer one", b"layer two")
    registry_sink.write(image, TAG, client=registry.client())
    before = len(registry.requests)
    again = registry_sink.write(image, TAG, client=registry.client())
    assert again.digest == image.digest
    assert sent(registry, before) == [("HEAD", "manifests")]
    # Pushed by another cache: the tag found in place still tells this store where blobs are.
    elsewhere = BlobStore(store.root.parent / "other-cache")
    registry_sink.write(image, TAG, client=registry.client(), store=elsewhere)
    for digest in blob_digests(image):
        assert elsewhere.places(digest, HOST) == ["team/app"]


def test_another_tag_of_a_pushed_image_sends_no_blob(store):
    registry = FakeRegistry()
    image = make_image(store, b"layer one", b"layer two")
    client = registry.client()
    registry_sink.write(image, TAG, client=client)
    before = len(registry.requests)
    registry_sink.write(image, f"{HOST}/team/app:latest", client=client)
    assert sent(registry, before) == [
        ("HEAD", "manifests"),
        *[("HEAD", "blobs")] * 3,
        ("PUT", "manifests"),
    ]
    assert registry.manifests["team/app"]["latest"][1] == image.manifest_json


def test_a_new_version_sends_only_its_new_layer(store):
    registry = FakeRegistry()
    first = make_image(store, b"packages" * 10_000, b"model one")
    second = make_image(store, b"packages" * 10_000, b"model two")
    client = registry.client()
    registry_sink.write(first, TAG, client=client)
    before = len(registry.requests)
    registry_sink.write(second, TAG, client=client)
    uploaded = [
        r.url.params["digest"]
        for r in registry.requests[before:]
        if r.method == "PUT" and "digest" in r.url.params
    ]
    assert sorted(uploaded) == sorted([second.config_digest, second.layers[1].digest])
    assert registry.manifests["team/app"]["1.0"][1] == second.manifest_json


def test_a_blob_seen_in_another_repository_is_mounted(store):
    registry = FakeRegistry()
    image = make_image(store, b"shared base layer" * 100, b"app")
    base = image.layers[0]
    with base.compressed() as stream:
        registry.put_blob("library/python", stream.read())
    store.note_place(base.digest, HOST, "library/python")
    store.note_place(base.digest, "other.example", "team/app")  # another registry: not asked
    calls: list[tuple[str, str, int, int]] = []
    registry_sink.write(image, TAG, client=registry.client(), progress=lambda *a: calls.append(a))
    mounts = [r for r in registry.requests if "mount" in r.url.params]
    assert [(r.url.params["mount"], r.url.params["from"]) for r in mounts] == [
        (base.digest, "library/python")
    ]
    uploaded = {r.url.params.get("digest") for r in registry.requests if r.method == "PUT"}
    assert base.digest not in uploaded
    name = base.digest.removeprefix("sha256:")
    assert (name, "Mounted from library/python", base.compressed_size, base.compressed_size) in (
        calls
    )
    assert store.places(base.digest, HOST) == ["team/app", "library/python"]


@pytest.mark.parametrize(
    "case",
    ["source lost the blob", "registry does not mount", "no right to read the source"],
)
def test_a_mount_that_cannot_happen_becomes_an_upload(store, case):
    registry = FakeRegistry(mounts=case != "registry does not mount")
    image = make_image(store, b"base layer" * 100)
    layer = image.layers[0]
    if case != "source lost the blob":
        with layer.compressed() as stream:
            registry.put_blob("team/base", stream.read())
    if case == "no right to read the source":
        registry.put_blob("team/app", image.config_json)  # the one POST is the mount
        registry.fail("POST", "uploads", _error(403, "DENIED"))
    store.note_place(layer.digest, HOST, "team/base")
    registry_sink.write(image, TAG, client=registry.client())
    with layer.compressed() as stream:
        assert registry.blobs["team/app"][layer.digest] == stream.read()
    assert any(r.url.params.get("digest") == layer.digest for r in registry.seen("PUT", "uploads"))


def test_progress_tells_bytes_and_how_each_blob_ended(store):
    registry = FakeRegistry()
    image = make_image(store, b"x" * 3_000_000, b"small")  # several reads for the big one
    calls: list[tuple[str, str, int, int]] = []
    registry_sink.write(image, TAG, client=registry.client(), progress=lambda *a: calls.append(a))
    sizes = {image.config_digest: len(image.config_json)}
    sizes.update({layer.digest: layer.compressed_size for layer in image.layers})
    for digest, size in sizes.items():
        mine = [c for c in calls if c[0] == digest.removeprefix("sha256:")]
        assert mine[-1] == (digest.removeprefix("sha256:"), "Pushed", size, size)
        pushing = [done for _, status, done, total in mine if status == "Pushing"]
        assert pushing == sorted(pushing) and pushing[-1] == size
        assert all(total == size for *_, total in mine)
    calls.clear()
    registry_sink.write(
        image, f"{HOST}/team/app:2", client=registry.client(), progress=lambda *a: calls.append(a)
    )
    assert {c[1] for c in calls} == {"Layer already exists"}


def test_the_push_display_shows_each_blob_done(store):
    registry = FakeRegistry()
    image = make_image(store, b"x" * 2_000_000, b"small")
    with LayerDisplay() as display:
        registry_sink.write(image, TAG, client=registry.client(), progress=display)
    tasks = display.progress.tasks
    assert len(tasks) == 3  # the config and two layers
    assert all(task.total and task.completed == task.total for task in tasks)
    assert {task.description.split()[0] for task in tasks} == {
        d.removeprefix("sha256:")[:12] for d in blob_digests(image)
    }


def test_an_index_puts_each_platform_by_digest_then_the_tag(store):
    registry = FakeRegistry()
    amd64 = make_image(store, b"shared", b"amd64 code", platform="linux/amd64")
    arm64 = make_image(store, b"shared", b"arm64 code", platform="linux/arm64")
    index = ImageIndex((amd64, arm64))
    pushed = registry_sink.write(index, TAG, client=registry.client())
    assert pushed.digest == index.digest
    puts = [r.url.path.rpartition("/")[2] for r in registry.seen("PUT", "manifests")]
    assert puts == [amd64.digest, arm64.digest, "1.0"]
    stored = registry.manifests["team/app"]
    assert stored["1.0"] == (index.media_type.value, index.manifest_json)
    assert stored[amd64.digest][1] == amd64.manifest_json
    listed = json.loads(stored["1.0"][1])["manifests"]
    assert [entry["platform"]["architecture"] for entry in listed] == ["amd64", "arm64"]
    # The shared layer is sent once.
    shared = amd64.layers[0].digest
    assert arm64.layers[0].digest == shared
    assert [r.url.params.get("digest") for r in registry.seen("PUT", "uploads")].count(shared) == 1


@pytest.mark.parametrize("damage", ["changed", "truncated", "longer"])
def test_a_damaged_cached_layer_is_never_pushed_and_is_rebuilt(store, damage):
    registry = FakeRegistry()
    image = make_image(store, b"the layer" * 50_000)
    image.manifest_json  # noqa: B018 - compressed now, damaged below
    path = store.path(image.layers[0].digest)
    data = bytearray(path.read_bytes())
    if damage == "changed":
        data[len(data) // 2] ^= 0xFF
    elif damage == "truncated":
        del data[-100:]
    else:
        data += b"more"
    path.write_bytes(bytes(data))
    with pytest.raises(BlobError) as caught:
        registry_sink.write(image, TAG, client=registry.client())
    assert "damaged" in caught.value.message
    assert "1.0" not in registry.manifests.get("team/app", {})
    assert image.layers[0].digest not in registry.blobs.get("team/app", {})
    assert not store.has(image.layers[0].digest)  # removed: the next run rebuilds it
    again = make_image(store, b"the layer" * 50_000)
    assert registry_sink.write(again, TAG, client=registry.client()).digest == image.digest


def test_a_registry_that_stores_another_manifest_is_an_error(store):
    registry = FakeRegistry()
    registry.answer_digest = "sha256:" + "0" * 64
    with pytest.raises(DigestMismatch) as caught:
        registry_sink.write(make_image(store, b"a"), TAG, client=registry.client())
    assert caught.value.message.startswith(f"The registry `{HOST}` stored the manifest of ")


def test_a_registry_that_stores_another_blob_is_an_error(store):
    registry = FakeRegistry()
    wrong = httpx.Response(201, headers={"Docker-Content-Digest": sha(b"something else")})
    registry.fail("PUT", "uploads", lambda request, body: wrong)
    with pytest.raises(DigestMismatch) as caught:
        registry_sink.write(make_image(store, b"a"), TAG, client=registry.client(), jobs=1)
    assert "stored the blob" in caught.value.message
    assert registry.manifests.get("team/app", {}) == {}  # no tag names the incomplete image


@pytest.mark.parametrize(
    "reference",
    [f"{HOST}/team/app@sha256:{'a' * 64}", f"{HOST}/Team/App:1", f"{HOST}/team/app:-bad"],
)
def test_a_reference_that_is_not_a_tag_sends_nothing(store, reference):
    registry = FakeRegistry()
    with pytest.raises(PlanError):
        registry_sink.write(make_image(store, b"a"), reference, client=registry.client())
    assert registry.requests == []


def test_a_client_of_another_registry_is_refused(store):
    with pytest.raises(ValueError):
        registry_sink.write(
            make_image(store, b"a"), "other.example/team/app:1", client=FakeRegistry().client()
        )


@pytest.mark.parametrize("auth", ["basic", "bearer"])
def test_wrong_credentials_are_one_sentence_and_push_nothing(store, auth):
    registry = FakeRegistry(auth=auth)
    client = registry.client(credentials=Credentials(USER.username, "wrong"))
    with pytest.raises(AuthError) as caught:
        registry_sink.write(make_image(store, b"a"), TAG, client=client)
    message = caught.value.message
    assert message == f"The registry `{HOST}` refused the username or password for `ana`"
    assert "wrong" not in f"{message} {caught.value.hint}"
    assert registry.blobs == {} and registry.manifests == {}


def test_the_right_credentials_push(store):
    registry = FakeRegistry(auth="bearer")
    image = make_image(store, b"a")
    registry_sink.write(image, TAG, client=registry.client(credentials=USER))
    assert registry.manifests["team/app"]["1.0"][1] == image.manifest_json


def test_push_image_value_pushes_every_tag(store):
    registry = FakeRegistry()
    image = make_image(store, b"a", b"b")
    made: list[str] = []

    def connect(name: str):
        made.append(name)
        return registry.client()

    tags = [TAG, f"{HOST}/team/app:latest", f"{HOST}/team/other:1"]
    pushed = registry_sink.push_image_value(image, tags, store=store, connect=connect)
    assert [str(p) for p in pushed] == [
        f"{HOST}/team/app@{image.digest}",
        f"{HOST}/team/app@{image.digest}",
        f"{HOST}/team/other@{image.digest}",
    ]
    assert made == [HOST]  # one client per registry
    assert registry.manifests["team/other"]["1"][1] == image.manifest_json
    # team/other got its layers by mounts from team/app, which the store recorded.
    assert len([r for r in registry.requests if "mount" in r.url.params]) == 3


def test_push_image_value_checks_every_tag_first(store):
    registry = FakeRegistry()
    with pytest.raises(PlanError):
        registry_sink.push_image_value(
            make_image(store, b"a"), [TAG, "Bad Name"], connect=lambda name: registry.client()
        )
    assert registry.requests == []


@pytest.mark.parametrize(
    "failure",
    [
        httpx.Response(503),
        httpx.Response(429, headers={"Retry-After": "2"}),
        httpx.WriteError("reset"),
    ],
    ids=["503", "429", "reset"],
)
def test_a_transient_failure_is_retried_with_the_blob_read_again(store, failure):
    registry = FakeRegistry()
    image = make_image(store, b"layer" * 300_000)
    registry.put_blob("team/app", image.config_json)  # so the one upload is the layer's
    registry.fail("PUT", "uploads", failure)
    client = registry.client()
    registry_sink.write(image, TAG, client=client, jobs=1)
    layer = image.layers[0]
    with layer.compressed() as stream:
        assert registry.blobs["team/app"][layer.digest] == stream.read()
    assert registry.manifests["team/app"]["1.0"][1] == image.manifest_json
    assert len(registry.sleeps) == 1


# --- the SBOM, attached as a referrer -------------------------------------------------------


def _with_sbom(store: BlobStore, image: Image, document: bytes) -> Image:
    from cais.image import sbom

    return sbom.with_sbom(image, document, store=store)


class NoReferrersAPI(FakeRegistry):
    """The fake registry answering the referrers API as Distribution 2.8 does: 404."""

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if "/referrers/" in request.url.path:
            self.requests.append(request)
            return _error(404, "NAME_UNKNOWN")
        return super().__call__(request)


def _referrers(registry: FakeRegistry, digest: str) -> list[dict]:
    from cais.registry.referrers import referrers

    return referrers(registry.client(), "team/app", digest)


def test_an_images_sbom_is_attached_to_its_manifest_after_the_tag(store):
    registry = NoReferrersAPI()
    image = _with_sbom(store, make_image(store, b"app code"), b'{"bomFormat": "CycloneDX"}')
    registry_sink.write(image, TAG, client=registry.client())
    [entry] = _referrers(registry, image.digest)
    assert entry["artifactType"] == "application/vnd.cyclonedx+json"
    media_type, manifest = registry.manifests["team/app"][entry["digest"]]
    assert json.loads(manifest)["subject"]["digest"] == image.digest
    puts = [r.url.path.rsplit("/", 1)[1] for r in registry.seen("PUT", "manifests")]
    assert puts.index("1.0") < puts.index(entry["digest"])  # the image is complete first


def test_an_image_without_an_sbom_gets_no_referrer(store):
    registry = NoReferrersAPI()
    image = make_image(store, b"app code")
    registry_sink.write(image, TAG, client=registry.client())
    assert set(registry.manifests["team/app"]) <= {"1.0", image.digest}


def test_each_platform_of_an_index_has_its_own_sbom(store):
    registry = NoReferrersAPI()
    images = tuple(
        _with_sbom(store, make_image(store, b"code", platform=p), f'{{"p": "{p}"}}'.encode())
        for p in ("linux/amd64", "linux/arm64")
    )
    index = ImageIndex(images)
    registry_sink.write(index, TAG, client=registry.client())
    for one in images:
        assert len(_referrers(registry, one.digest)) == 1
    assert _referrers(registry, index.digest) == []


def test_a_push_stopped_after_its_tag_attaches_the_sbom_when_run_again(store):
    registry = NoReferrersAPI()
    image = _with_sbom(store, make_image(store, b"app code"), b"{}")
    registry_sink.write(image, TAG, client=registry.client())
    [entry] = _referrers(registry, image.digest)
    for name in set(registry.manifests["team/app"]) - {"1.0", image.digest}:
        del registry.manifests["team/app"][name]  # as if killed before the referrer was put
    registry_sink.write(image, TAG, client=registry.client())
    assert _referrers(registry, image.digest) == [entry]
    registry_sink.write(image, TAG, client=registry.client())
    assert _referrers(registry, image.digest) == [entry]  # attached once, however often
