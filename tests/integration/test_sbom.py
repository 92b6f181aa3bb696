"""The SBOM of packages really installed by uv, stored in an image, and attached to it in the
real local registry (CNCF Distribution 2.8, which has no referrers API: the fallback tag is
what lists the SBOM there)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packaging.version import Version

from cais.errors import AuthError, NotInRegistry
from cais.image import sbom
from cais.image.blobs import BlobStore
from cais.image.image import Image, empty
from cais.image.layer import Layer
from cais.image.media import MediaType
from cais.image.platform import Platform
from cais.registry.client import RegistryClient
from cais.registry.credentials import Credentials
from cais.registry.referrers import attach, fallback_tag, referrers
from tests.support import REGISTRY_PASSWORD, REGISTRY_USER, unavailable

PINS = {"six": "1.16.0", "idna": "3.7", "packaging": "24.1"}
CREATED = 1_700_000_000


def uv_install(folder: Path) -> Path:
    """The pinned packages installed from wheels into `folder`, as a build installs a layer."""
    from uv import find_uv_bin

    result = subprocess.run(
        [
            find_uv_bin(),
            "pip",
            "install",
            "--target",
            str(folder),
            "--python",
            sys.executable,
            "--only-binary",
            ":all:",
            "--no-deps",
            *(f"{name}=={version}" for name, version in PINS.items()),
        ],
        env={**os.environ, "UV_NATIVE_TLS": "1", "UV_PYTHON_DOWNLOADS": "never", "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode != 0:
        unavailable(f"uv cannot install from the package index: {result.stderr.strip()[-300:]}")
    return folder


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    return uv_install(tmp_path_factory.mktemp("first") / "site-packages")


def test_the_sbom_lists_the_installed_packages_with_their_exact_versions(site):
    document = sbom.document([site], name="products", version="1", created=CREATED)
    data = json.loads(document)
    assert {c["name"]: c["version"] for c in data["components"]} == PINS
    assert {c["purl"] for c in data["components"]} == {
        f"pkg:pypi/{name}@{version}" for name, version in PINS.items()
    }
    assert all(c.get("licenses") for c in data["components"])  # all three declare one
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(document.decode()) is None


def test_two_installs_in_other_folders_at_other_times_give_the_same_sbom_layer(site, tmp_path):
    again = uv_install(tmp_path / "elsewhere" / "lib")
    documents = [
        sbom.document([folder], name="products", version="1", created=CREATED)
        for folder in (site, again)
    ]
    assert documents[0] == documents[1]
    base = empty(Platform.parse("linux/amd64"), created=CREATED)
    images = [
        sbom.with_sbom(base, document, store=BlobStore(tmp_path / f"store{n}"))
        for n, document in enumerate(documents)
    ]
    assert images[0].layers[0].digest == images[1].layers[0].digest
    assert images[0].digest == images[1].digest


def push_image(client: RegistryClient, repository: str, tag: str, image: Image) -> None:
    config = image.config_json
    client.push_blob(repository, image.config_digest, len(config), lambda: io.BytesIO(config))
    for layer in image.layers:
        client.push_blob(repository, layer.digest, layer.compressed_size, layer.compressed)
    client.put_manifest(repository, tag, image.manifest_json, image.media_type.value)


@pytest.mark.registry
def test_the_sbom_is_attached_in_the_registry_and_read_back_through_the_fallback_tag(
    registry, site, tmp_path
):
    repository = f"cais-test-{uuid.uuid4().hex[:10]}/products"
    document = sbom.document([site], name="products", version="1", created=CREATED)
    base = empty(Platform.parse("linux/amd64"), created=CREATED)
    image = sbom.with_sbom(base, document, store=BlobStore(tmp_path / "store"))
    referrer = sbom.referrer(image, document)

    with RegistryClient(registry, credentials=None) as client:
        push_image(client, repository, "1", image)
        assert attach(client, repository, referrer) == referrer.digest
        assert client.referrers(repository, image.digest) is None  # Distribution 2.8: no API

        found = referrers(client, repository, image.digest, artifact_type=MediaType.CYCLONEDX_JSON)
        assert found == [referrer.index_entry()]
        manifest = client.get_manifest(repository, found[0]["digest"])
        assert manifest.content == referrer.manifest_json
        assert manifest.data["subject"]["digest"] == image.digest
        (layer,) = manifest.data["layers"]
        assert client.read_blob(repository, layer["digest"]) == document
        index = client.get_manifest(repository, fallback_tag(image.digest))
        assert index.media_type == MediaType.OCI_INDEX.value

        # The image's tag stays a plain manifest: nothing was added around it.
        tagged = client.get_manifest(repository, "1")
        assert (tagged.digest, tagged.media_type) == (image.digest, MediaType.OCI_MANIFEST.value)

        # Attached again, and another artifact beside it: listed once each, in order.
        attach(client, repository, referrer)
        other = sbom.referrer(image, b'{"bomFormat": "CycloneDX", "note": "another"}')
        attach(client, repository, other)
        found = referrers(client, repository, image.digest)
        assert [e["digest"] for e in found] == [referrer.digest, other.digest]


@pytest.mark.registry
def test_the_python_base_images_own_packages_are_read_from_its_layers(registry, tmp_path):
    store = BlobStore(tmp_path / "store")
    with RegistryClient(registry, credentials=None) as client:
        try:
            manifest = client.get_manifest("library/python", "3.11-slim", platform="linux/amd64")
        except NotInRegistry:
            unavailable(f"no python:3.11-slim in the registry {registry} (run scripts/test-infra)")
        config = json.loads(client.read_blob("library/python", manifest.data["config"]["digest"]))
        layers = []
        for entry, diff_id in zip(
            manifest.data["layers"], config["rootfs"]["diff_ids"], strict=True
        ):
            client.get_blob("library/python", entry["digest"], store.path(entry["digest"]))
            layers.append(Layer.from_compressed(store, digest=entry["digest"], diff_id=diff_id))
    found = {package.name.lower(): package.version for package in sbom.packages_in_layers(layers)}
    assert "pip" in found
    assert Version(found["pip"]) >= Version("20")


@pytest.mark.registry
def test_attaching_to_a_registry_with_a_login_needs_it(auth_registry, site, tmp_path):
    repository = f"cais-test-{uuid.uuid4().hex[:10]}/products"
    document = sbom.document([site], name="products", created=CREATED)
    image = sbom.with_sbom(
        empty(Platform.parse("linux/amd64"), created=CREATED),
        document,
        store=BlobStore(tmp_path / "store"),
    )
    referrer = sbom.referrer(image, document)
    user = Credentials(REGISTRY_USER, REGISTRY_PASSWORD)
    with RegistryClient(auth_registry, credentials=user) as client:
        push_image(client, repository, "1", image)
        attach(client, repository, referrer)
        assert [e["digest"] for e in referrers(client, repository, image.digest)] == [
            referrer.digest
        ]
    for credentials in (None, Credentials(REGISTRY_USER, "wrong-password")):
        with RegistryClient(auth_registry, credentials=credentials) as client:
            with pytest.raises(AuthError) as caught:
                attach(client, repository, sbom.referrer(image, b'{"another": "document"}'))
            assert "wrong-password" not in str(caught.value) + str(caught.value.hint)
