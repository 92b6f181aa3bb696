"""cais.registry.referrers over the in-memory registry of test_registry_client, with and without
the OCI 1.1 referrers API (the real Distribution 2.8, which has none, is in tests/integration)."""

from __future__ import annotations

import json

import httpx
import pytest

from cais.errors import RegistryError
from cais.image.layer import Descriptor
from cais.image.media import MediaType
from cais.image.referrer import Referrer
from cais.registry.client import RegistryClient
from cais.registry.referrers import attach, fallback_tag, referrers
from tests.unit.test_registry_client import HOST, FakeRegistry, sha

REPOSITORY = "team/app"
IMAGE = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}'
SUBJECT = Descriptor(MediaType.OCI_MANIFEST, sha(IMAGE), len(IMAGE))
OCI_INDEX = MediaType.OCI_INDEX.value


class ReferrersRegistry(FakeRegistry):
    """The fake registry, answering `GET /v2/NAME/referrers/DIGEST` from the manifests it holds
    when `api` is on (`page_size` entries a page, linked as the spec says), 404 when it is off."""

    def __init__(self, *, api: bool, page_size: int = 100) -> None:
        super().__init__()
        self.api = api
        self.page_size = page_size

    def __call__(self, request: httpx.Request) -> httpx.Response:
        repository, marker, digest = request.url.path.removeprefix("/v2/").partition("/referrers/")
        if not marker:
            return super().__call__(request)
        self.requests.append(request)
        if not self.api:
            return httpx.Response(404, text="404 page not found\n")
        found = {}
        for media_type, content in self.manifests.get(repository, {}).values():
            data = json.loads(content)
            if (data.get("subject") or {}).get("digest") == digest:
                found[sha(content)] = {
                    "mediaType": media_type,
                    "digest": sha(content),
                    "size": len(content),
                    "artifactType": data.get("artifactType"),
                    "annotations": data.get("annotations") or {},
                }
        entries = [found[key] for key in sorted(found)]
        start = int(request.url.params.get("page", 0))
        headers = {"Content-Type": OCI_INDEX}
        if start + self.page_size < len(entries):
            following = f"/v2/{repository}/referrers/{digest}?page={start + self.page_size}"
            headers["Link"] = f'<{following}>; rel="next"'
        index = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": entries[start : start + self.page_size],
        }
        return httpx.Response(200, json=index, headers=headers)

    def tag(self, tag: str) -> tuple[str, dict] | None:
        stored = self.manifests.get(REPOSITORY, {}).get(tag)
        return None if stored is None else (stored[0], json.loads(stored[1]))


def artifact(content: bytes = b'{"bomFormat":"CycloneDX"}', *, created: int = 1) -> Referrer:
    return Referrer(SUBJECT, MediaType.CYCLONEDX_JSON, content, created)


def test_the_fallback_tag_is_the_digest_with_a_dash():
    assert fallback_tag(SUBJECT.digest) == "sha256-" + SUBJECT.digest.removeprefix("sha256:")


def test_without_the_api_the_artifact_is_listed_in_an_index_under_the_fallback_tag():
    registry = ReferrersRegistry(api=False)
    client = registry.client()
    sbom = artifact()
    assert attach(client, REPOSITORY, sbom) == sbom.digest

    assert registry.manifests[REPOSITORY][sbom.digest][1] == sbom.manifest_json
    assert registry.blobs[REPOSITORY][sha(sbom.content)] == sbom.content
    assert registry.blobs[REPOSITORY][sha(b"{}")] == b"{}"
    media_type, index = registry.tag(fallback_tag(SUBJECT.digest))
    assert media_type == OCI_INDEX
    assert index["manifests"] == [sbom.index_entry()]
    assert referrers(client, REPOSITORY, SUBJECT.digest) == [sbom.index_entry()]


def test_the_fallback_index_is_extended_not_overwritten_and_never_holds_one_twice():
    registry = ReferrersRegistry(api=False)
    client = registry.client()
    first, second = artifact(b'{"n":1}'), artifact(b'{"n":2}', created=2)
    attach(client, REPOSITORY, first)
    attach(client, REPOSITORY, second)
    attach(client, REPOSITORY, first)  # pushed again: nothing changes
    _, index = registry.tag(fallback_tag(SUBJECT.digest))
    assert [e["digest"] for e in index["manifests"]] == [first.digest, second.digest]


def test_entries_others_put_in_the_fallback_index_are_kept():
    registry = ReferrersRegistry(api=False)
    client = registry.client()
    signature = {"mediaType": MediaType.OCI_MANIFEST.value, "digest": sha(b"sig"), "size": 3}
    signature["artifactType"] = "application/vnd.dev.cosign.artifact.sig.v1+json"
    existing = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [signature]}
    client.put_manifest(
        REPOSITORY, fallback_tag(SUBJECT.digest), json.dumps(existing).encode(), OCI_INDEX
    )
    sbom = artifact()
    attach(client, REPOSITORY, sbom)
    assert referrers(client, REPOSITORY, SUBJECT.digest) == [signature, sbom.index_entry()]
    only = referrers(client, REPOSITORY, SUBJECT.digest, artifact_type=MediaType.CYCLONEDX_JSON)
    assert only == [sbom.index_entry()]


def test_with_the_api_no_fallback_tag_is_written_and_the_api_lists_the_artifact():
    registry = ReferrersRegistry(api=True)
    client = registry.client()
    sbom = artifact()
    attach(client, REPOSITORY, sbom)
    assert registry.tag(fallback_tag(SUBJECT.digest)) is None
    assert [e["digest"] for e in referrers(client, REPOSITORY, SUBJECT.digest)] == [sbom.digest]


def test_every_page_of_the_api_is_read():
    registry = ReferrersRegistry(api=True, page_size=2)
    client = registry.client()
    pushed = [artifact(f'{{"n":{n}}}'.encode()) for n in range(5)]
    for referrer in pushed:
        attach(client, REPOSITORY, referrer)
    found = referrers(client, REPOSITORY, SUBJECT.digest)
    assert sorted(e["digest"] for e in found) == sorted(r.digest for r in pushed)
    pages = [r for r in registry.requests if "/referrers/" in r.url.path]
    assert any("page=4" in str(r.url) for r in pages)


def test_nothing_attached_is_an_empty_list_either_way():
    for api in (True, False):
        client = ReferrersRegistry(api=api).client()
        assert referrers(client, REPOSITORY, SUBJECT.digest) == []


@pytest.mark.parametrize(
    ("media_type", "content"),
    [
        (MediaType.OCI_MANIFEST.value, IMAGE),
        (OCI_INDEX, b'{"schemaVersion":2,"manifests":{"not":"a list"}}'),
    ],
    ids=["a-manifest", "not-an-index"],
)
def test_a_fallback_tag_that_holds_something_else_is_refused_untouched(media_type, content):
    registry = ReferrersRegistry(api=False)
    client = registry.client()
    tag = fallback_tag(SUBJECT.digest)
    client.put_manifest(REPOSITORY, tag, content, media_type)
    with pytest.raises(RegistryError, match=f"tag `{tag}`") as caught:
        attach(client, REPOSITORY, artifact())
    assert tag in caught.value.hint
    assert registry.manifests[REPOSITORY][tag] == (media_type, content)


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(200, text="<html>not json</html>"),
        httpx.Response(200, json={"manifests": "nope"}),
        httpx.Response(200, json=["a", "list"]),
    ],
    ids=["html", "manifests-not-a-list", "not-an-object"],
)
def test_an_api_answer_that_is_no_index_is_one_sentence(answer):
    registry = ReferrersRegistry(api=True)

    def broken(request: httpx.Request) -> httpx.Response:
        if "/referrers/" in request.url.path:
            return answer
        return registry(request)

    client = RegistryClient(HOST, transport=httpx.MockTransport(broken), credentials=None)
    with pytest.raises(RegistryError, match="answered the referrers of .* other than an index"):
        referrers(client, REPOSITORY, SUBJECT.digest)


def test_an_api_error_other_than_404_is_reported_not_taken_for_no_api():
    registry = ReferrersRegistry(api=True)

    def failing(request: httpx.Request) -> httpx.Response:
        if "/referrers/" in request.url.path:
            return httpx.Response(400, json={"errors": [{"code": "NAME_INVALID"}]})
        return registry(request)

    client = RegistryClient(HOST, transport=httpx.MockTransport(failing), credentials=None)
    with pytest.raises(RegistryError):
        attach(client, REPOSITORY, artifact())
    assert registry.tag(fallback_tag(SUBJECT.digest)) is None
