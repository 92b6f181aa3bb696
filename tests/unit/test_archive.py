"""cais.image.archive: layer tars that are the same bytes wherever and whenever."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import pytest

from cais.errors import BuildError
from cais.image.archive import Directory, File, Symlink, entries_from_folder, write_layer
from cais.image.blobs import BlobStore
from cais.image.image import append_layers, empty, with_config
from cais.image.media import Compression
from cais.image.platform import Platform

CREATED = 1_700_000_000


def _project(root: Path, *, mtime: int, owner: int, umask: int) -> Path:
    """The same content, made with other times, owners and permission bits."""
    old = os.umask(umask)
    try:
        (root / "src" / "pkg").mkdir(parents=True)
        (root / "empty").mkdir()
        (root / "src" / "pkg" / "__init__.py").write_text("")
        (root / "src" / "pkg" / "main.py").write_text("print('hi')\n")
        (root / "run.sh").write_text("#!/bin/sh\necho run\n")
        (root / "run.sh").chmod(0o777 & ~umask)
        (root / "data.bin").write_bytes(os.urandom(0) + bytes(range(256)) * 1000)
        os.link(root / "data.bin", root / "data-link.bin")
        (root / "latest").symlink_to("src/pkg/main.py")
    finally:
        os.umask(old)
    for path in [root, *root.rglob("*")]:
        os.utime(path, (mtime, mtime), follow_symlinks=False)
        if os.geteuid() == 0:
            os.lchown(path, owner, owner)
    return root


def _members(layer) -> list[tarfile.TarInfo]:
    with layer.uncompressed() as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
        return list(tar)


def _image(layer):
    image = append_layers(empty(Platform.parse("linux/amd64"), created=CREATED), [layer])
    return with_config(image, entrypoint=["/app/run.sh"], user="1000")


def test_same_content_same_digests_in_other_folders_times_owners_and_umasks(tmp_path):
    first = _project(tmp_path / "a", mtime=1_000_000_000, owner=0, umask=0o022)
    second = _project(tmp_path / "elsewhere" / "b", mtime=1_600_000_000, owner=1234, umask=0o077)
    one = write_layer(
        entries_from_folder(first, "app"), store=BlobStore(tmp_path / "c1"), created=CREATED
    )
    two = write_layer(
        entries_from_folder(second, "app"), store=BlobStore(tmp_path / "c2"), created=CREATED
    )
    assert one.diff_id == two.diff_id
    assert one.digest == two.digest
    assert _image(one).config_digest == _image(two).config_digest
    assert _image(one).digest == _image(two).digest


def test_the_created_time_is_an_input(tmp_path):
    store = BlobStore(tmp_path / "c")
    entries = {"a.txt": File(b"a")}
    assert (
        write_layer(entries, store=store, created=1).diff_id
        != write_layer(entries, store=store, created=2).diff_id
    )


def test_entries_sorted_with_parents_modes_owners_and_times(tmp_path):
    folder = _project(tmp_path / "p", mtime=5, owner=0, umask=0o022)
    layer = write_layer(
        entries_from_folder(folder, "/app"), store=BlobStore(tmp_path / "c"), created=CREATED
    )
    members = _members(layer)
    names = [member.name for member in members]
    assert names == [
        "app",
        "app/data-link.bin",
        "app/data.bin",
        "app/empty",
        "app/latest",
        "app/run.sh",
        "app/src",
        "app/src/pkg",
        "app/src/pkg/__init__.py",
        "app/src/pkg/main.py",
    ]
    by_name = {member.name: member for member in members}
    assert all(m.mtime == CREATED and m.uid == 0 and m.gid == 0 for m in members)
    assert all(m.uname == "" and m.gname == "" for m in members)
    assert by_name["app"].isdir() and by_name["app"].mode == 0o755
    assert by_name["app/empty"].isdir()
    assert by_name["app/run.sh"].mode == 0o755
    assert by_name["app/src/pkg/main.py"].mode == 0o644
    assert by_name["app/latest"].issym() and by_name["app/latest"].linkname == "src/pkg/main.py"
    assert by_name["app/latest"].mode == 0o777
    # A hard link is written as a second regular file with the content, never as a link.
    assert by_name["app/data-link.bin"].isreg()
    assert by_name["app/data-link.bin"].size == by_name["app/data.bin"].size == 256_000
    assert all(not m.islnk() for m in members)
    assert all(not m.pax_headers for m in members)  # ustar holds all of these


def test_parents_are_written_and_entries_placed_anywhere(tmp_path):
    layer = write_layer(
        {
            "/usr/local/bin/tool": File(b"#!/bin/sh\n", mode=0o755),
            "var/lib/app/": Directory(mode=0o1777),
            "etc/alias": Symlink("/usr/local/bin/tool"),
        },
        store=BlobStore(tmp_path / "c"),
        created=CREATED,
        uid=1000,
        gid=1000,
    )
    members = {m.name: m for m in _members(layer)}
    assert list(members) == [
        "etc",
        "etc/alias",
        "usr",
        "usr/local",
        "usr/local/bin",
        "usr/local/bin/tool",
        "var",
        "var/lib",
        "var/lib/app",
    ]
    assert members["usr/local/bin/tool"].mode == 0o755
    assert members["var/lib/app"].mode == 0o1777
    assert {m.uid for m in members.values()} == {1000}


def test_pax_headers_only_for_what_ustar_cannot_hold(tmp_path):
    long_name = "deep/" + "x" * 150 + ".py"
    layer = write_layer(
        {"plain.py": File(b""), long_name: File(b"1"), "café.txt": File(b"2")},
        store=BlobStore(tmp_path / "c"),
        created=CREATED,
    )
    members = {m.name: m for m in _members(layer)}
    assert members["plain.py"].pax_headers == {}
    assert members["deep"].pax_headers == {}
    assert members[long_name].pax_headers == {"path": long_name}
    assert members["café.txt"].pax_headers == {"path": "café.txt"}


@pytest.mark.parametrize("path", ["../etc/passwd", "app/../../x", "", ".", "/"])
def test_paths_outside_the_image_are_refused(tmp_path, path):
    with pytest.raises(BuildError) as caught:
        write_layer({path: File(b"x")}, store=BlobStore(tmp_path / "c"), created=0)
    assert caught.value.message == f"The path `{path}` cannot be placed in an image layer"


def test_one_path_given_twice_must_be_one_entry(tmp_path):
    store = BlobStore(tmp_path / "c")
    same = write_layer({"app/x": File(b"1"), "/app/x": File(b"1")}, store=store, created=0)
    assert same.diff_id == write_layer({"app/x": File(b"1")}, store=store, created=0).diff_id
    with pytest.raises(BuildError) as caught:
        write_layer({"app/x": File(b"1"), "/app//x": File(b"2")}, store=store, created=0)
    assert caught.value.message == "The path `app/x` is given twice, with different content"


@pytest.mark.parametrize("parent", [File(b"x"), Symlink("elsewhere")])
def test_an_entry_inside_a_non_folder_is_refused(tmp_path, parent):
    with pytest.raises(BuildError, match="is inside `app`, which is not a folder"):
        write_layer(
            {"app": parent, "app/x": File(b"y")}, store=BlobStore(tmp_path / "c"), created=0
        )


def test_special_files_are_refused_with_their_path(tmp_path):
    folder = tmp_path / "p"
    folder.mkdir()
    os.mkfifo(folder / "pipe")
    with pytest.raises(BuildError) as caught:
        entries_from_folder(folder)
    assert (
        caught.value.message
        == f"The file `{folder / 'pipe'}` is not a regular file, folder or symlink"
    )
    assert caught.value.hint


def test_a_file_that_changes_while_read_is_refused(tmp_path):
    status = Path("/proc/self/status")  # its size says 0, its reading gives more
    if not status.exists():
        pytest.skip("no /proc on this system")
    with pytest.raises(BuildError) as caught:
        write_layer({"status": File(status)}, store=BlobStore(tmp_path / "c"), created=0)
    assert (
        caught.value.message
        == f"The file `{status}` changed while it was being written into a layer"
    )
    assert not list((tmp_path / "c" / "blobs").rglob("*.*"))


def test_gzip_has_no_name_and_no_timestamp(tmp_path):
    layer = write_layer({"a": File(b"a" * 1000)}, store=BlobStore(tmp_path / "c"), created=CREATED)
    with layer.compressed() as stream:
        head = stream.read()
    assert head[:3] == b"\x1f\x8b\x08"
    assert head[3] == 0  # no FNAME, FCOMMENT or FEXTRA
    assert head[4:8] == b"\0\0\0\0"  # MTIME zero
    with layer.uncompressed() as stream:
        assert gzip.decompress(head) == stream.read()


def test_uncompressed_now_compressed_later_gives_the_same_blob(tmp_path):
    entries = {"a/b.txt": File(b"b" * 10_000)}
    later = write_layer(
        entries, store=BlobStore(tmp_path / "c1"), created=CREATED, compression=None
    )
    now = write_layer(entries, store=BlobStore(tmp_path / "c2"), created=CREATED)
    assert later.known_digest is None
    assert not any((tmp_path / "c1" / "index").glob("*/*"))  # nothing compressed yet
    assert later.diff_id == now.diff_id
    assert later.compress().digest == now.digest


def test_zstd_layers(tmp_path):
    import zstandard

    entries = {"a.txt": File(b"a" * 10_000)}
    layer = write_layer(
        entries, store=BlobStore(tmp_path / "c"), created=CREATED, compression=Compression.ZSTD
    )
    with layer.compressed() as stream:
        packed = stream.read()
    with layer.uncompressed() as stream:
        assert zstandard.ZstdDecompressor().decompressobj().decompress(packed) == stream.read()
    again = write_layer(
        entries, store=BlobStore(tmp_path / "c2"), created=CREATED, compression=Compression.ZSTD
    )
    assert again.digest == layer.digest


_MEMORY_PROBE = textwrap.dedent(
    """
    import re, sys
    from pathlib import Path
    from cais.image.archive import File, write_layer
    from cais.image.blobs import BlobStore

    big = Path(sys.argv[1])
    layer = write_layer({"model/weights.bin": File(big)}, store=BlobStore(Path(sys.argv[2])), created=0)
    # VmHWM is this process's own peak RSS (getrusage's ru_maxrss keeps the parent's from fork).
    peak_kib = re.search(r"VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text()).group(1)
    print(layer.uncompressed_size, int(peak_kib) * 1024)
    """
)


def test_a_layer_is_streamed_never_held_in_memory(tmp_path):
    if not Path("/proc/self/status").exists():
        pytest.skip("no /proc on this system to read a peak RSS from")
    big = tmp_path / "weights.bin"
    size = 300 * 1024 * 1024
    with big.open("wb") as handle:  # sparse: written fast, read as 300 MB of zeros
        handle.truncate(size)
    done = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE, str(big), str(tmp_path / "c")],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    layer_size, peak = map(int, done.stdout.split())
    assert layer_size > size
    assert peak < size / 3, f"peak RSS {peak / 2**20:.0f} MiB for a {size / 2**20:.0f} MiB layer"
