"""cais.builders.proof: an image unpacked into a scratch root as the engine would see it, and
where a proof can run."""

from __future__ import annotations

import os
import shutil

import pytest

from cais.builders.proof import Proof, prove, prove_in_root, unpack
from cais.errors import BuildError
from cais.image.archive import Directory, File, Symlink, write_layer
from cais.image.blobs import BlobStore
from cais.image.image import append_layers, empty
from cais.image.platform import Platform


def _image(store: BlobStore, *layers: dict, platform: Platform | None = None):
    written = [write_layer(entries, store=store, created=1) for entries in layers]
    return append_layers(empty(platform or Platform.host()), written)


@pytest.mark.parametrize("filters", [True, False], ids=["tar-filter", "python-without-filters"])
def test_whiteouts_remove_and_opaque_folders_empty_what_the_layers_below_hold(
    tmp_path, monkeypatch, filters
):
    if not filters:
        import tarfile

        monkeypatch.delattr(tarfile, "tar_filter", raising=False)
    store = BlobStore(tmp_path / "cache")
    image = _image(
        store,
        {
            "etc": Directory(),
            "etc/gone": File(b"old"),
            "etc/kept": File(b"kept"),
            "data": Directory(),
            "data/a": File(b"a"),
            "data/sub": Directory(),
            "data/sub/b": File(b"b"),
            "bin": Directory(),
            "bin/tool": File(b"v1", 0o755),
        },
        {
            "etc/.wh.gone": File(b""),
            "data/.wh..wh..opq": File(b""),
            "data/c": File(b"c"),
            "bin/tool": Symlink("/usr/bin/other"),  # a file replaced by a link
        },
    )
    root = tmp_path / "root"
    root.mkdir()
    unpack(image, root)
    assert not (root / "etc" / "gone").exists() and (root / "etc" / "kept").read_bytes() == b"kept"
    assert sorted(p.name for p in (root / "data").iterdir()) == ["c"]
    assert (root / "bin" / "tool").is_symlink()
    assert str((root / "bin" / "tool").readlink()) == "/usr/bin/other"  # kept for the chroot
    assert not list(root.rglob(".wh.*"))


@pytest.mark.parametrize("filters", [True, False], ids=["tar-filter", "python-without-filters"])
def test_a_layer_cannot_write_outside_the_root(tmp_path, monkeypatch, filters):
    import tarfile
    import uuid
    from pathlib import Path

    if not filters:  # as on Debian 12's Python 3.11.2, whose tarfile has no extraction filters
        monkeypatch.delattr(tarfile, "tar_filter", raising=False)
    store = BlobStore(tmp_path / "cache")
    name = f"cais-escape-{uuid.uuid4().hex}"
    image = _image(
        store, {"escape": Symlink("/tmp")}, {"escape": Directory(), f"escape/{name}": File(b"x")}
    )
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(tarfile.TarError):
        unpack(image, root)
    assert not (Path("/tmp") / name).exists()
    if os.geteuid() == 0 and shutil.which("chroot"):  # the proof says so in one sentence
        with pytest.raises(BuildError) as caught:
            prove_in_root(image, "m:1", scratch=tmp_path / "scratch")
        assert caught.value.message.startswith("The image for `m:1` could not be unpacked")
        assert not list((tmp_path / "scratch").iterdir())  # the scratch root is removed


def test_an_image_for_another_platform_with_no_engine_is_not_proved(tmp_path):
    other = "linux/arm64" if Platform.host().architecture != "arm64" else "linux/amd64"
    image = _image(BlobStore(tmp_path / "cache"), {"x": File(b"")}, platform=Platform.parse(other))
    proof, said = prove(image, "m:1", engine=None, scratch=tmp_path / "scratch")
    assert proof is Proof.NONE
    assert f"an image for `{Platform.parse(other)}` does not run on this" in said


class _Engine:
    """An engine that answers and reports its platform, and must not be asked to run."""

    def __init__(self, arch: str) -> None:
        self.arch = arch
        self.closed = False

    def ping(self) -> bool:
        return True

    def version(self) -> dict:
        return {"Os": "linux", "Arch": self.arch}

    def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize(
    ("image", "engine"),
    [("linux/arm64", "amd64"), ("linux/amd64", "arm64"), ("linux/arm/v7", "x86_64")],
)
def test_an_image_the_engine_cannot_run_is_said_unproved_not_failed(tmp_path, image, engine):
    """Without QEMU the check would fail with `exec format error` and the image be refused."""
    fake = _Engine(engine)
    built = _image(BlobStore(tmp_path / "cache"), {"x": File(b"")}, platform=Platform.parse(image))
    proof, said = prove(built, ("m:1", "m:2"), engine=lambda: fake, scratch=tmp_path / "s")
    assert proof is Proof.NONE and fake.closed
    assert said == (
        f"the image was not proved: an image for `{Platform.parse(image)}` does not run on the "
        f"Docker Engine's `{Platform.parse('linux/' + engine)}`"
    )


def test_the_proofs_load_asks_the_engine_about_the_base_only(tmp_path, monkeypatch):
    """Naming no candidates, the load would inspect every image in the engine (1 s for 353)."""
    from cais.builders import proof
    from cais.sinks import engine

    asked = []

    class Engine:
        def version(self) -> dict:
            host = Platform.host()
            return {"Os": host.os, "Arch": host.architecture}

        def close(self) -> None:
            asked.append("closed")

    monkeypatch.setattr(proof, "_answering", lambda connect: Engine())
    monkeypatch.setattr(
        engine, "write", lambda image, client, **options: asked.append(options["candidates"])
    )
    monkeypatch.setattr("cais.engine.images.image_exists", lambda client, image_id: True)
    monkeypatch.setattr(proof, "check_in_engine", lambda client, image_id, model, **kw: None)
    image = _image(BlobStore(tmp_path / "cache"), {"a.txt": File(b"a")})
    said = prove(image, "m:1", engine=Engine, scratch=tmp_path, candidates=["python:3.11-slim"])
    assert said[0] is Proof.ENGINE
    assert asked == [["python:3.11-slim"], "closed"]
