"""The OCI builder's pure parts: the user's lines, where a base image is read from, files read
from a base's layers, and the layer cache (a damaged entry is rebuilt, never used)."""

from __future__ import annotations

import pytest

from cais.builders.oci import LAYER_INDEX, OCIBuilder, _files_of, base_reference, user_files
from cais.image.archive import File, write_layer
from cais.image.blobs import BlobStore
from cais.image.image import append_layers, empty
from cais.image.layer import Layer
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


def _image(store: BlobStore, *layers: dict):
    written = [write_layer(entries, store=store, created=0, compression=None) for entries in layers]
    return append_layers(empty(Platform.parse("linux/amd64")), written)


def test_files_are_read_from_the_topmost_layer_that_has_them(tmp_path):
    store = BlobStore(tmp_path / "cache")
    image = _image(
        store,
        {"etc/passwd": File(b"old\n"), "etc/group": File(b"group\n"), "etc/shadow": File(b"s")},
        {"etc/passwd": File(b"new\n"), "usr/bin/tool": File(b"x")},
    )
    assert _files_of(image, ("etc/passwd", "etc/group")) == {
        "etc/passwd": b"new\n",
        "etc/group": b"group\n",
    }


def test_a_file_a_layer_deletes_is_absent(tmp_path):
    store = BlobStore(tmp_path / "cache")
    image = _image(
        store,
        {"etc/passwd": File(b"old\n"), "etc/group": File(b"group\n")},
        {"etc/.wh.group": File(b"")},  # an overlay whiteout: the file is gone
    )
    assert _files_of(image, ("etc/passwd", "etc/group")) == {"etc/passwd": b"old\n"}


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


def test_a_fetched_layer_is_read_as_it_decompresses_and_not_stored_whole(tmp_path):
    store = BlobStore(tmp_path / "cache")
    written = write_layer(
        {"etc/group": File(b"group\n"), "etc/passwd": File(b"passwd\n"), "usr/big": File(b"x")},
        store=store,
        created=0,
    )
    store.remove(written.diff_id)  # as a layer fetched from a registry: only its gzip blob
    fetched = Layer.from_compressed(store, digest=written.digest, diff_id=written.diff_id)
    image = append_layers(empty(Platform.parse("linux/amd64")), [fetched])
    assert _files_of(image, ("etc/passwd", "etc/group")) == {
        "etc/passwd": b"passwd\n",
        "etc/group": b"group\n",
    }
    assert not store.has(written.diff_id)
