"""cais.image.sbom: a CycloneDX document of the installed distributions that is the same bytes
for the same packages, stored in an image and made into an OCI 1.1 referrer."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
import uuid
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from cais.errors import BlobError, BuildError
from cais.image import listing, sbom
from cais.image.archive import Directory, File, Symlink, write_layer
from cais.image.blobs import BlobStore, sha256_digest
from cais.image.image import append_layers, empty, timestamp, with_created
from cais.image.layer import Layer
from cais.image.media import MediaType
from cais.image.platform import Platform

CREATED = 1_700_000_000


def install(folder: Path, name: str, version: str, *fields: str, kind: str = "dist-info") -> Path:
    """A distribution's metadata folder as an installer leaves it; `fields` are header lines."""
    info = folder / f"{name.replace('-', '_')}-{version}.{kind}"
    info.mkdir(parents=True)
    text = "\n".join(["Metadata-Version: 2.4", f"Name: {name}", f"Version: {version}", *fields])
    (info / ("PKG-INFO" if kind == "egg-info" else "METADATA")).write_text(text + "\n")
    (info / "RECORD").write_text(f"{info.name}/METADATA,,\n")
    return info


@pytest.fixture
def site(tmp_path: Path) -> Path:
    folder = tmp_path / "site-packages"
    install(folder, "six", "1.16.0", "Summary: Python 2 and 3 compatibility", "License: MIT")
    install(folder, "attrs", "25.3.0", "License-Expression: MIT OR Apache-2.0")
    install(
        folder,
        "Scikit_Learn",
        "1.5.2",
        "License: new BSD",
        "Classifier: License :: OSI Approved :: BSD License",
    )
    install(
        folder,
        "packaging",
        "24.1",
        "Classifier: License :: OSI Approved :: Apache Software License",
        "Classifier: License :: OSI Approved :: BSD License",
        "Classifier: License :: OSI Approved",
    )
    (folder / "six.py").write_text("# the module itself\n")
    return folder


def parsed(document: bytes) -> dict:
    return json.loads(document)


def by_name(document: bytes) -> dict[str, dict]:
    return {c["name"]: c for c in parsed(document)["components"]}


# The document


def test_every_distribution_is_a_component_with_its_exact_version_and_purl(site):
    document = sbom.document([site], name="products", version="3", created=CREATED)
    components = by_name(document)
    assert {name: c["version"] for name, c in components.items()} == {
        "six": "1.16.0",
        "attrs": "25.3.0",
        "Scikit_Learn": "1.5.2",
        "packaging": "24.1",
    }
    assert components["Scikit_Learn"]["purl"] == "pkg:pypi/scikit-learn@1.5.2"
    assert all(c["bom-ref"] == c["purl"] and c["type"] == "library" for c in components.values())
    assert components["six"]["description"] == "Python 2 and 3 compatibility"


@pytest.mark.parametrize(
    ("name", "version", "purl"),
    [
        ("torch", "2.1.0+cpu", "pkg:pypi/torch@2.1.0%2Bcpu"),
        ("Zope.Interface", "6.0", "pkg:pypi/zope-interface@6.0"),
        ("ruamel.yaml.clib", "0.2.8", "pkg:pypi/ruamel-yaml-clib@0.2.8"),
    ],
)
def test_purls_are_normalised_and_encoded(tmp_path, name, version, purl):
    install(tmp_path / "site", name, version)
    document = sbom.document([tmp_path / "site"], name="p", created=CREATED)
    (component,) = parsed(document)["components"]
    assert (component["name"], component["version"], component["purl"]) == (name, version, purl)
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(document.decode()) is None


def test_the_image_is_the_described_component_and_depends_on_every_package(site):
    data = parsed(sbom.document([site], name="products", version="3", created=CREATED))
    root = data["metadata"]["component"]
    assert (root["type"], root["name"], root["version"]) == ("container", "products", "3")
    (edges,) = [d for d in data["dependencies"] if d["ref"] == root["bom-ref"]]
    assert sorted(edges["dependsOn"]) == sorted(c["purl"] for c in data["components"])
    assert data["metadata"]["tools"]["components"][0]["name"] == "cais"


@pytest.mark.parametrize(
    ("name", "licenses"),
    [
        ("six", [{"license": {"id": "MIT", "acknowledgement": "declared"}}]),
        ("attrs", [{"expression": "MIT OR Apache-2.0", "acknowledgement": "declared"}]),
        ("Scikit_Learn", [{"license": {"name": "new BSD", "acknowledgement": "declared"}}]),
        (
            "packaging",
            [
                {"license": {"name": "Apache Software License", "acknowledgement": "declared"}},
                {"license": {"name": "BSD License", "acknowledgement": "declared"}},
            ],
        ),
    ],
)
def test_licenses_are_read_as_declared(site, name, licenses):
    component = by_name(sbom.document([site], name="p", created=CREATED))[name]
    assert component["licenses"] == licenses


@pytest.mark.parametrize(
    "fields",
    [
        ["License: UNKNOWN"],
        ["License: Copyright (c) 2024\n        Permission is hereby granted, free of charge"],
        ["License: " + "A licence written out at length. " * 10],
        [],
    ],
    ids=["unknown", "whole-text", "too-long", "none"],
)
def test_a_licence_field_that_is_no_licence_name_falls_back_to_classifiers(tmp_path, fields):
    folder = tmp_path / "site"
    install(folder, "thing", "1.0", *fields, "Classifier: License :: OSI Approved :: MIT License")
    (component,) = parsed(sbom.document([folder], name="p", created=CREATED))["components"]
    assert component["licenses"] == [
        {"license": {"name": "MIT License", "acknowledgement": "declared"}}
    ]


def test_a_package_without_any_licence_has_none(tmp_path):
    folder = tmp_path / "site"
    install(folder, "thing", "1.0")
    (component,) = parsed(sbom.document([folder], name="p", created=CREATED))["components"]
    assert "licenses" not in component


def test_the_document_is_valid_cyclonedx_1_6(site, tmp_path):
    empty_folder = tmp_path / "nothing-installed"
    empty_folder.mkdir()
    validator = JsonStrictValidator(SchemaVersion.V1_6)
    for document in (
        sbom.document([site], name="products", version="3", created=CREATED),
        sbom.document([empty_folder], name="script", created=0),
    ):
        assert parsed(document)["specVersion"] == sbom.SPEC_VERSION
        assert validator.validate_str(document.decode()) is None


def test_a_broken_document_fails_the_validator_used_above(site):
    data = parsed(sbom.document([site], name="p", created=CREATED))
    data["components"][0]["type"] = "not-a-type"
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(data)) is not None


# Reproducible


def test_the_same_packages_give_the_same_bytes_wherever_and_whenever(site, tmp_path):
    first = sbom.document([site], name="products", version="3", created=CREATED)
    again = sbom.document([site], name="products", version="3", created=CREATED)
    elsewhere = shutil.copytree(site, tmp_path / "elsewhere" / "lib")
    for path in elsewhere.rglob("*"):
        path.touch()
    moved = sbom.document([elsewhere], name="products", version="3", created=CREATED)
    assert first == again == moved
    assert b"BomRef" not in first  # no reference the library would have made up at random


def test_the_timestamp_is_the_given_time_never_the_clock(site):
    data = parsed(sbom.document([site], name="p", created=CREATED))
    assert data["metadata"]["timestamp"] == "2023-11-14T22:13:20+00:00"  # CREATED, in UTC


def test_the_serial_number_follows_the_content(site):
    def serial(**options) -> str:
        options = {"name": "products", "version": "3", "created": CREATED, **options}
        return parsed(sbom.document([site], **options))["serialNumber"]

    base = serial()
    zero = "urn:uuid:00000000-0000-0000-0000-000000000000"
    assert base.startswith("urn:uuid:") and base != zero
    document = sbom.document([site], name="products", version="3", created=CREATED)
    unnamed = document.replace(base.encode(), zero.encode())
    assert f"urn:uuid:{uuid.uuid5(sbom._SERIALS, hashlib.sha256(unnamed).hexdigest())}" == base
    assert serial() == base
    assert len({base, serial(version="4"), serial(created=CREATED + 1)}) == 3
    install(site, "idna", "3.7")
    assert serial() != base


# Reading the folders


def test_packages_from_several_folders_are_listed_once(site, tmp_path):
    runtime = tmp_path / "runtime"
    install(runtime, "six", "1.16.0", "License: MIT")
    install(runtime, "uvicorn", "0.30.0")
    install(runtime, "legacy", "0.1", kind="egg-info")
    (runtime / "old-2.0.egg-info").write_text("Metadata-Version: 1.0\nName: old\nVersion: 2.0\n")
    listed = sbom.packages([site, runtime])
    assert [p.purl for p in listed] == sorted(p.purl for p in listed)
    assert [p.purl for p in listed].count("pkg:pypi/six@1.16.0") == 1
    assert {"pkg:pypi/uvicorn@0.30.0", "pkg:pypi/legacy@0.1", "pkg:pypi/old@2.0"} <= {
        p.purl for p in listed
    }


def test_two_versions_of_one_package_are_both_listed(tmp_path):
    install(tmp_path / "a", "six", "1.16.0")
    install(tmp_path / "b", "six", "1.17.0")
    assert [p.version for p in sbom.packages([tmp_path / "a", tmp_path / "b"])] == [
        "1.16.0",
        "1.17.0",
    ]


def test_a_missing_folder_is_one_sentence(tmp_path):
    with pytest.raises(BuildError, match=r"The folder of installed packages `.*nowhere` does"):
        sbom.document([tmp_path / "nowhere"], name="p", created=CREATED)


@pytest.mark.parametrize(
    "metadata",
    [None, "Metadata-Version: 2.1\nVersion: 1.0\n", "Metadata-Version: 2.1\nName: thing\n"],
    ids=["no-metadata-file", "no-name", "no-version"],
)
def test_a_distribution_without_name_or_version_is_refused_not_left_out(tmp_path, metadata):
    info = tmp_path / "site" / "thing-1.0.dist-info"
    info.mkdir(parents=True)
    if metadata is not None:
        (info / "METADATA").write_text(metadata)
    with pytest.raises(BuildError, match=r"`.*thing-1\.0\.dist-info` has no name or version") as e:
        sbom.packages([tmp_path / "site"])
    assert e.value.hint


# The base image's packages

SITE = "usr/local/lib/python3.11/site-packages"
DEBIAN = "usr/lib/python3/dist-packages"


def metadata(name: str, version: str) -> File:
    return File(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\nLong text\n".encode())


@pytest.fixture(params=["libarchive", "tarfile"])
def reader(request, monkeypatch) -> str:
    """Layers read by libarchive, and by tarfile as on a system without libarchive."""
    if request.param == "tarfile":
        monkeypatch.setattr(listing, "_libarchive", lambda: None)
    elif listing._libarchive() is None:
        pytest.skip("the system has no libarchive for libarchive-c to load")
    return request.param


def tar_layer(store: BlobStore, members: list[tuple[tarfile.TarInfo, bytes]]):
    """A layer made of exactly these tar members (links, long names: what write_layer never
    writes), in the store by its diff id."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return Layer.from_store(store, store.put(buffer.getvalue()))


def member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


def test_the_base_layers_packages_are_read_less_those_a_later_layer_deletes(tmp_path, reader):
    store = BlobStore(tmp_path)
    lowest = {
        f"{SITE}/pip-24.0.dist-info/METADATA": metadata("pip", "24.0"),
        f"{SITE}/pip-24.0.dist-info/RECORD": File(b""),
        f"{SITE}/setuptools-65.5.0.dist-info/METADATA": metadata("setuptools", "65.5.0"),
        f"{DEBIAN}/old-1.0.egg-info": metadata("old", "1.0"),
        "opt/app/not-installed-1.0.dist-info/METADATA": metadata("not-installed", "1.0"),
    }
    upgraded = {
        f"{SITE}/.wh.setuptools-65.5.0.dist-info": File(b""),
        f"{SITE}/.wh.pip-24.0.dist-info": File(b""),
        f"{SITE}/pip-24.2.dist-info/METADATA": metadata("pip", "24.2"),
    }
    emptied = {  # an opaque folder hides what lower layers had there, not its own files
        f"{DEBIAN}/.wh..wh..opq": File(b""),
        f"{DEBIAN}/new-2.0.dist-info/METADATA": metadata("new", "2.0"),
    }
    layers = [write_layer(e, store=store, created=CREATED) for e in (lowest, upgraded, emptied)]
    assert [p.purl for p in sbom.packages_in_layers(layers)] == [
        "pkg:pypi/new@2.0",
        "pkg:pypi/pip@24.2",
    ]
    assert [p.purl for p in sbom.packages_in_layers(layers[:1])] == [
        "pkg:pypi/old@1.0",
        "pkg:pypi/pip@24.0",
        "pkg:pypi/setuptools@65.5.0",
    ]


def test_links_are_not_read_as_metadata_and_long_names_are(tmp_path, reader):
    store = BlobStore(tmp_path)
    text = b"Metadata-Version: 2.1\nName: pip\nVersion: 24.2\n"
    long = f"{SITE}/{'very-' * 30}long-1.0.dist-info/METADATA"  # a pax header holds its name
    layer = tar_layer(
        store,
        [
            (member(f"./{SITE}/pip-24.2.dist-info/METADATA"), text),
            (member(long), text.replace(b"pip", b"long").replace(b"24.2", b"1.0")),
            # Their targets' metadata is already listed; a link holds no metadata of its own.
            (member(f"{SITE}/hard-1.0.dist-info/METADATA", tarfile.LNKTYPE, long), b""),
            (member(f"{SITE}/soft-1.0.dist-info/METADATA", tarfile.SYMTYPE, "/etc/passwd"), b""),
        ],
    )
    assert [p.purl for p in sbom.packages_in_layers([layer])] == [
        "pkg:pypi/long@1.0",
        "pkg:pypi/pip@24.2",
    ]


@pytest.mark.parametrize("content", [b"not a tar at all" * 64, b"\x1f\x8b" + b"\0" * 1022])
def test_a_layer_that_is_no_tar_is_one_sentence(tmp_path, reader, content):
    store = BlobStore(tmp_path)
    layer = Layer.from_store(store, store.put(content))
    with pytest.raises(BuildError, match=r"^The layer `sha256:[0-9a-f]{64}` is not a readable tar"):
        sbom.packages_in_layers([layer])


def test_a_damaged_layer_is_said_damaged_and_removed(tmp_path, reader):
    store = BlobStore(tmp_path)
    text = b"Metadata-Version: 2.1\nName: pip\nVersion: 24.2\n"
    layer = tar_layer(store, [(member(f"{SITE}/pip-24.2.dist-info/METADATA"), text)])
    path = store.path(layer.diff_id)
    # Still a tar, no longer the layer: its metadata has lost its version, which the damage
    # explains, not the package.
    path.write_bytes(path.read_bytes().replace(b"Version: 24.2", b"Versiox: 24.2"))
    with pytest.raises(BlobError, match="is damaged and has been removed"):
        sbom.packages_in_layers([layer])
    assert not path.exists()


def test_a_layer_is_read_once_and_a_damaged_answer_is_read_again(tmp_path):
    store = BlobStore(tmp_path)
    entries = {
        f"{SITE}/pip-24.2.dist-info/METADATA": File(
            b"Metadata-Version: 2.1\nName: pip\nVersion: 24.2\nLicense: MIT\n"
            b"Classifier: License :: OSI Approved :: MIT License\n"
        ),
        f"{SITE}/.wh.old-1.0.dist-info": File(b""),
    }
    layer = write_layer(entries, store=store, created=CREATED)
    first = sbom.packages_in_layers([layer])
    (recorded,) = (tmp_path / "index" / listing._LISTINGS).iterdir()
    record = recorded.read_text()

    blobs = [store.path(layer.diff_id), store.path(layer.digest)]  # the tar and its gzip
    for number, blob in enumerate(blobs):
        blob.rename(tmp_path / f"away{number}")  # the answer is kept: the layer is not read
    assert sbom.packages_in_layers([layer]) == first
    assert first[0].classifiers == ("License :: OSI Approved :: MIT License",)

    for number, blob in enumerate(blobs):
        (tmp_path / f"away{number}").rename(blob)
    store.path(record).write_bytes(
        b'{"packages": {}, "deleted": [], "files": {}}'
    )  # not what its digest says
    assert sbom.packages_in_layers([layer]) == first
    assert store.verify(recorded.read_text())


_LAYERS = {
    "installed": {
        f"{SITE}/pip-24.0.dist-info/METADATA": metadata("pip", "24.0"),
        f"{SITE}/pip-24.0.dist-info/RECORD": File(b""),
        f"{DEBIAN}/old-1.0.egg-info": metadata("old", "1.0"),
        "opt/app/not-installed-1.0.dist-info/METADATA": metadata("not-installed", "1.0"),
    },
    "deleting": {
        f"{SITE}/.wh.setuptools-65.5.0.dist-info": File(b""),
        f"{SITE}/pip-24.2.dist-info/METADATA": metadata("pip", "24.2"),
        f"{DEBIAN}/.wh..wh..opq": File(b""),
    },
    "links and folders": {
        f"{SITE}/a-1.0.dist-info": Directory(),
        f"{SITE}/a-1.0.dist-info/METADATA": Symlink("../b-1.0.dist-info/METADATA"),
        f"{SITE}/b-1.0.dist-info/METADATA": metadata("b", "1.0"),
    },
    "none": {"model/weights.bin": File(b"x" * 10)},
    "accounts": {
        "etc/passwd": File(b"root:x:0:0:root:/root:/bin/sh\n"),
        "etc/group": File(b"root:x:0:\n"),
        "etc/.wh.shadow": File(b""),
    },
}


@pytest.mark.parametrize("name", sorted(_LAYERS))
def test_a_layer_noted_as_written_is_listed_as_reading_it_lists_it(tmp_path, name, reader):
    noted, read = BlobStore(tmp_path / "noted"), BlobStore(tmp_path / "read")
    written = write_layer(_LAYERS[name], store=noted, created=CREATED)
    listing.note_layer(written, _LAYERS[name])
    again = write_layer(_LAYERS[name], store=read, created=CREATED)
    assert sbom.packages_in_layers([again]) == sbom.packages_in_layers([written])
    records = [store.get(store.link(listing._LISTINGS, written.diff_id)) for store in (noted, read)]
    assert records[0] == records[1]


def test_a_noted_layer_is_not_read_back_and_its_files_may_come_from_a_folder(tmp_path):
    store = BlobStore(tmp_path / "store")
    info = tmp_path / "site" / "pip-24.2.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_bytes(metadata("pip", "24.2").source)
    entries = {f"{SITE}/pip-24.2.dist-info/METADATA": File(info / "METADATA")}
    layer = write_layer(entries, store=store, created=CREATED)
    listing.note_layer(layer, entries)
    store.path(layer.diff_id).unlink()  # the tar and its gzip gone: only the note answers
    store.path(layer.digest).unlink()
    assert [p.purl for p in sbom.packages_in_layers([layer])] == ["pkg:pypi/pip@24.2"]


def test_a_noted_distribution_without_a_version_is_refused(tmp_path):
    store = BlobStore(tmp_path)
    entries = {f"{SITE}/bad-1.0.dist-info/METADATA": File(b"Name: bad\n")}
    layer = write_layer(entries, store=store, created=CREATED)
    with pytest.raises(BuildError, match="bad-1.0.dist-info.*has no name or version"):
        listing.note_layer(layer, entries)


def test_the_document_lists_the_base_packages_with_the_installed_ones(site, tmp_path):
    base = [
        write_layer(
            {f"{SITE}/pip-24.2.dist-info/METADATA": metadata("pip", "24.2")},
            store=BlobStore(tmp_path),
            created=CREATED,
        )
    ]
    document = sbom.document([site], name="p", created=CREATED, base=base)
    assert by_name(document)["pip"]["purl"] == "pkg:pypi/pip@24.2"
    assert set(by_name(document)) == {"pip", "six", "attrs", "Scikit_Learn", "packaging"}
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(document.decode()) is None


def test_a_base_distribution_without_a_name_is_refused(tmp_path):
    broken = {f"{SITE}/thing-1.0.dist-info/METADATA": File(b"Metadata-Version: 2.1\n")}
    layer = write_layer(broken, store=BlobStore(tmp_path), created=CREATED)
    with pytest.raises(BuildError, match=r"`.*thing-1\.0\.dist-info in layer sha256:"):
        sbom.packages_in_layers([layer])


# In the image


def test_the_sbom_layer_holds_the_document_at_its_path_and_is_the_same_everywhere(site, tmp_path):
    document = sbom.document([site], name="products", created=CREATED)
    base = empty(Platform.parse("linux/amd64"), created=CREATED)
    images = [
        sbom.with_sbom(base, document, store=BlobStore(tmp_path / name)) for name in ("a", "b")
    ]
    assert images[0].digest == images[1].digest
    (layer,) = images[0].layers
    with layer.uncompressed() as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
        members = {m.name: (m, tar.extractfile(m).read() if m.isfile() else None) for m in tar}
    path = sbom.PATH.lstrip("/")
    assert sorted(members) == ["usr", "usr/local", "usr/local/share", "usr/local/share/cais", path]
    info, content = members[path]
    assert content == document
    assert (info.mode, info.uid, info.gid, info.mtime) == (0o644, 0, 0, CREATED)
    assert images[0].config["history"][-1]["created_by"] == f"cais: SBOM at {sbom.PATH}"


def test_the_document_is_read_back_from_the_image_by_its_layer(site, tmp_path):
    store = BlobStore(tmp_path)
    document = sbom.document([site], name="products", created=CREATED)
    base = empty(Platform.parse("linux/amd64"), created=CREATED)
    code = write_layer({"app/main.py": File(b"print(1)\n")}, store=store, created=CREATED)
    assert sbom.read(base) is None
    assert sbom.read(append_layers(base, [code])) is None
    image = sbom.with_sbom(append_layers(base, [code]), document, store=store)
    assert sbom.read(image) == document
    on_top = write_layer({"app/extra.py": File(b"")}, store=store, created=CREATED)
    assert sbom.read(append_layers(image, [on_top], created_by=["COPY extra.py"])) == document


def test_a_file_at_the_path_in_some_other_layer_is_not_taken_for_the_sbom(tmp_path):
    store = BlobStore(tmp_path)
    layer = write_layer({sbom.PATH: File(b"{}")}, store=store, created=CREATED)
    image = append_layers(empty(Platform.parse("linux/amd64")), [layer], created_by=["COPY . /"])
    assert sbom.read(image) is None


# The referrer


def test_the_referrer_is_an_oci_artifact_about_the_image(site, tmp_path):
    document = sbom.document([site], name="products", created=CREATED)
    image = sbom.with_sbom(
        empty(Platform.parse("linux/arm64"), created=CREATED), document, store=BlobStore(tmp_path)
    )
    referrer = sbom.referrer(image, document)
    manifest = json.loads(referrer.manifest_json)
    assert manifest["mediaType"] == MediaType.OCI_MANIFEST.value
    assert manifest["artifactType"] == "application/vnd.cyclonedx+json"
    assert manifest["config"] == {
        "mediaType": "application/vnd.oci.empty.v1+json",
        "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
        "size": 2,
    }
    assert manifest["layers"] == [
        {
            "mediaType": "application/vnd.cyclonedx+json",
            "digest": sha256_digest(document),
            "size": len(document),
        }
    ]
    assert manifest["subject"] == image.descriptor().to_json()
    assert manifest["annotations"] == {"org.opencontainers.image.created": timestamp(CREATED)}
    entry = referrer.index_entry()
    assert (entry["digest"], entry["size"]) == (referrer.digest, len(referrer.manifest_json))
    assert entry["artifactType"] == manifest["artifactType"]
    assert referrer.digest == sha256_digest(referrer.manifest_json)


def test_the_sbom_lists_the_packages_of_every_layer_reproducibly(tmp_path):
    import json

    from cais.image import sbom
    from cais.image.archive import File, write_layer
    from cais.image.blobs import BlobStore
    from cais.image.image import append_layers, empty, with_created
    from cais.image.platform import Platform

    store = BlobStore(tmp_path / "cache")
    site = "usr/local/lib/python3.11/site-packages"

    def installed(name: str, version: str):
        metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
        path = f"{site}/{name}-{version}.dist-info/METADATA"
        return write_layer({path: File(metadata)}, store=store, created=0)

    base = with_created(empty(Platform.parse("linux/arm64")), 1_700_000_000)
    image = append_layers(base, [installed("pip", "24.0"), installed("six", "1.16.0")])
    made = sbom.with_packages_sbom(image, name="app", version="1")
    assert len(made.layers) == 3 and made.config["history"][-1]["created_by"].endswith(sbom.PATH)
    document = json.loads(sbom.read(made) or b"")
    versions = {c["name"]: c["version"] for c in document["components"]}
    assert versions == {"pip": "24.0", "six": "1.16.0"}
    assert document["metadata"]["component"]["name"] == "app"
    assert sbom.with_packages_sbom(image, name="app", version="1").digest == made.digest


# Made once: the draft of a set of packages, the base's listing read ahead


def stacked(store: BlobStore, *packages: tuple[str, str], created: int = CREATED):
    """An image of one layer per package, made at `created`."""
    layers = [
        write_layer({f"{SITE}/{n}-{v}.dist-info/METADATA": metadata(n, v)}, store=store, created=0)
        for n, v in packages
    ]
    return append_layers(with_created(empty(Platform.parse("linux/amd64")), created), layers)


@pytest.mark.parametrize("created", [0, 1, CREATED, 4_102_444_800])
def test_a_draft_given_its_time_is_the_document_written_at_that_time(site, monkeypatch, created):
    listed = sbom.packages([site])
    stamped = sbom._stamped(sbom._draft(listed, name="p", version="1"), created)
    real = sbom._time
    monkeypatch.setattr(sbom, "_time", lambda seconds: real(created))
    written = sbom._draft(listed, name="p", version="1")  # cyclonedx writes the time itself
    serial = uuid.uuid5(sbom._SERIALS, hashlib.sha256(written).hexdigest())
    assert stamped == written.replace(uuid.UUID(int=0).urn.encode(), serial.urn.encode(), 1)
    assert parsed(stamped)["metadata"]["timestamp"] == real(created).isoformat()


def test_the_draft_is_written_once_for_the_same_packages_whatever_the_time(tmp_path, monkeypatch):
    store = BlobStore(tmp_path)
    first = sbom.with_packages_sbom(stacked(store, ("pip", "24.0")), name="app", version="1")
    drafts = []
    monkeypatch.setattr(sbom, "_draft", lambda *a, **k: drafts.append(a) or b"")
    later = stacked(store, ("pip", "24.0"), created=CREATED + 60)  # an edit: a later time
    again = sbom.with_packages_sbom(later, name="app", version="1")
    assert drafts == []
    assert parsed(sbom.read(again))["metadata"]["timestamp"] == "2023-11-14T22:14:20+00:00"
    assert parsed(sbom.read(again))["components"] == parsed(sbom.read(first))["components"]


@pytest.mark.parametrize(
    "change",
    [
        {"packages": (("pip", "24.2"),)},  # another base
        {"packages": (("pip", "24.0"), ("six", "1.16.0"))},  # one more package
        {"name": "other"},
        {"version": "2"},
    ],
)
def test_the_draft_is_written_again_when_what_it_is_made_of_changes(tmp_path, monkeypatch, change):
    store = BlobStore(tmp_path)
    sbom.with_packages_sbom(stacked(store, ("pip", "24.0")), name="app", version="1")
    drafts = []
    real = sbom._draft
    monkeypatch.setattr(sbom, "_draft", lambda *a, **k: drafts.append(a) or real(*a, **k))
    image = stacked(store, *change.get("packages", (("pip", "24.0"),)))
    made = sbom.with_packages_sbom(
        image, name=change.get("name", "app"), version=change.get("version", "1")
    )
    assert len(drafts) == 1
    document = parsed(sbom.read(made))
    assert document["metadata"]["component"]["name"] == change.get("name", "app")
    assert document["metadata"]["component"].get("version") == change.get("version", "1")
    assert [c["purl"] for c in document["components"]] == [
        f"pkg:pypi/{n}@{v}" for n, v in change.get("packages", (("pip", "24.0"),))
    ]


def test_a_damaged_draft_is_written_again_to_the_same_bytes(tmp_path):
    store = BlobStore(tmp_path)
    image = stacked(store, ("pip", "24.0"))
    made = sbom.with_packages_sbom(image, name="app", version="1")
    (link,) = (tmp_path / "index" / sbom._DRAFTS).iterdir()
    draft = link.read_text()
    store.path(draft).write_bytes(b"{}")  # not what its digest says
    assert sbom.with_packages_sbom(image, name="app", version="1").digest == made.digest
    assert store.verify(draft)


def test_the_base_read_ahead_is_the_answer_taken_and_each_layer_is_read_once(tmp_path, monkeypatch):
    store = BlobStore(tmp_path)
    image = stacked(store, ("pip", "24.0"), ("six", "1.16.0"))
    expected = sbom.packages_in_layers(image.layers)
    fresh = BlobStore(tmp_path / "fresh")
    image = stacked(fresh, ("pip", "24.0"), ("six", "1.16.0"))
    read = []
    real = listing._members
    monkeypatch.setattr(listing, "_members", lambda stream: read.append(stream) or real(stream))
    listing.read_ahead(image.layers)
    listing.read_ahead(image.layers)  # asked twice: started once
    assert sorted(d for root, d in listing._AHEAD if root == fresh.root) == sorted(
        layer.diff_id for layer in image.layers
    )
    assert sbom.packages_in_layers(image.layers) == expected
    assert not [key for key in listing._AHEAD if key[0] == fresh.root]  # the answers were taken
    assert len(read) == len(image.layers) == 2
    listing.read_ahead(image.layers)  # listed in the store: nothing to read
    assert sbom.packages_in_layers(image.layers) == expected
    assert len(read) == 2


def test_a_read_ahead_failure_is_raised_where_the_listing_is_asked_for(tmp_path):
    store = BlobStore(tmp_path)
    broken = {f"{SITE}/thing-1.0.dist-info/METADATA": File(b"Metadata-Version: 2.1\n")}
    layer = write_layer(broken, store=store, created=CREATED)
    listing.read_ahead([layer])
    with pytest.raises(BuildError, match=r"thing-1\.0\.dist-info in layer"):
        sbom.packages_in_layers([layer])
