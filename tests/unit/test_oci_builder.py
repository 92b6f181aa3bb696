"""The OCI builder's pure parts: the user's lines, where a base image is read from, the user
layer made from a base's layers, and the layer cache (a damaged entry is rebuilt, never used)."""

from __future__ import annotations

import posixpath
import tarfile

import pytest

from cais.builders.oci import LAYER_INDEX, OCIBuilder, base_reference, user_files
from cais.image.archive import Directory, File, write_layer
from cais.image.blobs import BlobStore
from cais.image.image import append_layers, empty
from cais.image.layer import Layer
from cais.image.media import Compression
from cais.image.platform import Platform
from cais.plan import User

PASSWD = (
    b"root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
)
GROUP = b"root:x:0:\nnogroup:x:65534:\n"


def test_the_user_is_two_lines_of_etc_as_the_docker_builder_writes_them():
    passwd, group = user_files(PASSWD, GROUP, User())
    assert passwd == PASSWD + b"app:x:1000:1000::/home/app:/usr/sbin/nologin\n"
    assert group == GROUP + b"app:x:1000:\n"


def test_a_base_that_has_the_ids_keeps_them():
    base_passwd = PASSWD + b"node:x:1000:1000::/home/node:/bin/sh"  # no final newline
    base_group = GROUP + b"node:x:1000:\n"
    passwd, group = user_files(base_passwd, base_group, User())
    assert passwd == base_passwd and group == base_group
    # Only the gid taken: the user is added, in the group that exists.
    passwd, group = user_files(PASSWD, base_group, User())
    assert passwd.endswith(b"\napp:x:1000:1000::/home/app:/usr/sbin/nologin\n")
    assert group == base_group


def test_a_base_without_etc_files_gets_the_users_lines_alone():
    passwd, group = user_files(b"", b"", User(name="runner", uid=1001, gid=1001))
    assert passwd == b"runner:x:1001:1001::/home/runner:/usr/sbin/nologin\n"
    assert group == b"runner:x:1001:\n"


@pytest.mark.parametrize(
    ("image", "mirror", "expected"),
    [
        ("python:3.11-slim", None, ("docker.io", "library/python", "3.11-slim")),
        ("python:3.11-slim", "127.0.0.1:5000", ("127.0.0.1:5000", "library/python", "3.11-slim")),
        (
            "python:3.11-slim",
            "https://mirror.example/",
            ("mirror.example", "library/python", "3.11-slim"),
        ),
        ("bitnami/python:3.11", "mirror.example", ("mirror.example", "bitnami/python", "3.11")),
        # A base that names its registry is read from it, mirror or not.
        ("ghcr.io/org/python:3.11", "mirror.example", ("ghcr.io", "org/python", "3.11")),
        ("127.0.0.1:5000/t/python:3.9-slim", None, ("127.0.0.1:5000", "t/python", "3.9-slim")),
    ],
)
def test_where_a_base_image_is_read_from(monkeypatch, image, mirror, expected):
    if mirror is None:
        monkeypatch.delenv("CAIS_BASE_REGISTRY", raising=False)
    else:
        monkeypatch.setenv("CAIS_BASE_REGISTRY", mirror)
    reference = base_reference(image)
    assert (reference.registry, reference.repository, reference.tag) == expected


def test_a_layer_cache_hit_is_used_and_a_damaged_one_rebuilt(tmp_path):
    store = BlobStore(tmp_path / "cache")
    builder = OCIBuilder(store=store)
    layer = write_layer({"app/a.py": File(b"print(1)\n")}, store=store, created=1)
    store.set_link(LAYER_INDEX, "key", layer.diff_id)
    assert builder._cached("key").diff_id == layer.diff_id
    assert OCIBuilder(store=store, no_cache=True)._cached("key") is None
    path = store.path(layer.diff_id)
    path.write_bytes(path.read_bytes().replace(b"print(1)", b"print(2)"))
    assert builder._cached("key") is None  # detected by its digest, never used
    assert not store.has(layer.diff_id)  # and removed, so the next build writes it again


def _base(store: BlobStore, *layers: dict, compression=None):
    written = [
        write_layer(entries, store=store, created=0, compression=compression) for entries in layers
    ]
    return append_layers(empty(Platform.parse("linux/amd64")), written)


def _by_tarfile(image, names: tuple[str, ...]) -> dict[str, bytes]:
    """The files as Python's tarfile reads them from the tars, top layer first: a second,
    independent reader of the same layers."""
    found: dict[str, bytes] = {}
    for layer in reversed(image.layers):
        with layer.uncompressed() as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                name = member.name.removeprefix("./")
                folder, base = posixpath.split(name)
                gone = posixpath.join(folder, base.removeprefix(".wh."))
                if base.startswith(".wh.") and gone in names:
                    found.setdefault(gone, None)  # type: ignore[arg-type]
                elif name in names and name not in found and member.isfile():
                    found[name] = tar.extractfile(member).read()  # type: ignore[union-attr]
    return {name: data for name, data in found.items() if data is not None}


BASES = {
    "one layer": [{"etc/passwd": File(PASSWD), "etc/group": File(GROUP)}],
    "files in two layers": [
        {"etc/passwd": File(b"old:x:7:7::/:/bin/sh\n"), "etc/group": File(GROUP)},
        {"etc/passwd": File(PASSWD), "usr/bin/tool": File(b"x")},
    ],
    "group deleted above": [
        {"etc/passwd": File(PASSWD), "etc/group": File(GROUP)},
        {"etc/.wh.group": File(b"")},
    ],
    "no etc files": [{"usr/bin/tool": File(b"x")}],
}


@pytest.mark.parametrize("layers", BASES.values(), ids=BASES.keys())
@pytest.mark.parametrize("compression", [None, Compression.GZIP], ids=["tar", "fetched"])
def test_the_user_layer_is_the_one_made_from_the_bases_files_bit_for_bit(
    tmp_path, layers, compression
):
    store = BlobStore(tmp_path / "cache")
    base = _base(store, *layers, compression=compression)
    expected_files = _by_tarfile(base, ("etc/passwd", "etc/group"))
    if compression is not None:  # as a base fetched from a registry: only its gzip blobs
        base = append_layers(
            empty(Platform.parse("linux/amd64")),
            [_fetched(store, layer) for layer in base.layers],
        )
    user = User()
    made = OCIBuilder(store=store)._user_layer(base, user, 1)
    passwd, group = user_files(
        expected_files.get("etc/passwd", b""), expected_files.get("etc/group", b""), user
    )
    expected = write_layer(
        {
            "etc/passwd": File(passwd, 0o644),
            "etc/group": File(group, 0o644),
            "home/app": Directory(0o755, owner=(1000, 1000)),
        },
        store=BlobStore(tmp_path / "other"),
        created=1,
    )
    assert not made.cached and made.layer.diff_id == expected.diff_id
    assert OCIBuilder(store=store)._user_layer(base, user, 1).cached  # keyed by the base
    if compression is not None:  # read as it decompressed: no tar of the base was stored
        assert not any(store.has(layer.diff_id) for layer in base.layers)


def _fetched(store: BlobStore, layer: Layer) -> Layer:
    digest = layer.digest
    store.remove(layer.diff_id)
    return Layer.from_compressed(store, digest=digest, diff_id=layer.diff_id)


def test_the_bases_registry_copy_is_asked_for_once_a_build(tmp_path, monkeypatch):
    """The listing of a base the engine holds, then a sink's read of its layers, both ask
    the base's registry for its copy: one answer serves both, a missing one too."""
    builder = OCIBuilder(store=BlobStore(tmp_path / "cache"))
    asked = []
    monkeypatch.setattr(builder, "_read_copy", lambda *question: asked.append(question))
    amd64 = Platform.parse("linux/amd64")
    assert builder._registry_copy("python:3.11-slim", amd64, "sha256:a") is None
    assert builder._pull_base("python:3.11-slim", amd64, "sha256:a") is False
    assert builder._registry_copy("python:3.11-slim", amd64, "sha256:b") is None
    assert asked == [
        ("python:3.11-slim", amd64, "sha256:a"),
        ("python:3.11-slim", amd64, "sha256:b"),
    ]
