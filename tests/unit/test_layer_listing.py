"""cais.image.listing: one pass over each layer of a base gives both what the SBOM lists and
the account files the user layer extends; the top-most layer that has a file (or deletes it)
wins; a fetched layer is read as it decompresses, checked against its diff id."""

from __future__ import annotations

import pytest

from cais.errors import BlobError
from cais.image import listing
from cais.image.archive import File, write_layer
from cais.image.blobs import BlobStore
from cais.image.layer import Layer
from cais.image.media import Compression

SITE = "usr/local/lib/python3.11/site-packages"
PIP = File(b"Metadata-Version: 2.1\nName: pip\nVersion: 24.0\n")


def layers(store: BlobStore, *contents: dict, compression=None) -> list[Layer]:
    return [
        write_layer(entries, store=store, created=0, compression=compression)
        for entries in contents
    ]


def fetched(store: BlobStore, layer: Layer) -> Layer:
    """The layer as a registry's: only its gzip blob in the store."""
    digest = layer.digest
    store.remove(layer.diff_id)
    return Layer.from_compressed(store, digest=digest, diff_id=layer.diff_id)


@pytest.fixture
def counted(monkeypatch) -> list:
    """The tars read, one entry a read."""
    read: list = []
    real = listing._members
    monkeypatch.setattr(listing, "_members", lambda stream: read.append(stream) or real(stream))
    return read


def test_one_read_of_a_layer_gives_its_packages_and_its_account_files(tmp_path, counted):
    store = BlobStore(tmp_path)
    (layer,) = layers(
        store,
        {
            "etc/passwd": File(b"root:x:0:0::/root:/bin/sh\n"),
            "etc/group": File(b"root:x:0:\n"),
            "etc/shadow": File(b"secret"),  # not asked for: not kept
            f"{SITE}/pip-24.0.dist-info/METADATA": PIP,
        },
    )
    listed = listing.listing(layer)
    assert [p.purl for p in listed.packages.values()] == ["pkg:pypi/pip@24.0"]
    assert {name: store.get(d) for name, d in listed.files.items()} == {
        "etc/passwd": b"root:x:0:0::/root:/bin/sh\n",
        "etc/group": b"root:x:0:\n",
    }
    assert listing.files([layer]) == {name: store.get(d) for name, d in listed.files.items()}
    assert len(counted) == 1  # the files come from the listing the SBOM's read made


CASES = {
    "the top-most layer's file": (
        [
            {"etc/passwd": File(b"low\n"), "etc/group": File(b"group\n")},
            {"etc/passwd": File(b"high\n")},
            {"usr/bin/tool": File(b"x")},
        ],
        {"etc/passwd": b"high\n", "etc/group": b"group\n"},
    ),
    "a whiteout deletes the file below": (
        [
            {"etc/passwd": File(b"low\n"), "etc/group": File(b"group\n")},
            {"etc/.wh.group": File(b"")},
        ],
        {"etc/passwd": b"low\n"},
    ),
    "a file deleted, then written again above": (
        [
            {"etc/passwd": File(b"first\n")},
            {"etc/.wh.passwd": File(b"")},
            {"etc/passwd": File(b"again\n")},
        ],
        {"etc/passwd": b"again\n"},
    ),
    "an opaque folder hides the files below, not its own": (
        [
            {"etc/passwd": File(b"low\n"), "etc/group": File(b"group\n")},
            {"etc/.wh..wh..opq": File(b""), "etc/passwd": File(b"own\n")},
        ],
        {"etc/passwd": b"own\n"},
    ),
    "the whole folder deleted": (
        [{"etc/passwd": File(b"low\n")}, {".wh.etc": File(b"")}],
        {},
    ),
    "a base with no account files": ([{"usr/bin/tool": File(b"x")}], {}),
}


@pytest.mark.parametrize(("contents", "expected"), CASES.values(), ids=CASES.keys())
@pytest.mark.parametrize("form", ["tar", "fetched"])
def test_the_files_are_those_the_layers_make_together(tmp_path, contents, expected, form):
    store = BlobStore(tmp_path)
    made = layers(store, *contents, compression=Compression.GZIP if form == "fetched" else None)
    if form == "fetched":
        made = [fetched(store, layer) for layer in made]
    assert listing.files(made) == expected
    if form == "fetched":  # read as it decompressed: no tar was stored
        assert not any(store.has(layer.diff_id) for layer in made)


def test_a_listing_is_kept_and_read_again_when_its_file_is_lost(tmp_path, counted):
    store = BlobStore(tmp_path)
    (layer,) = layers(store, {"etc/passwd": File(b"root\n")})
    assert listing.files([layer]) == {"etc/passwd": b"root\n"}
    assert listing.files([layer]) == {"etc/passwd": b"root\n"}
    assert len(counted) == 1  # the second answer came from the store
    store.remove(listing.listing(layer).files["etc/passwd"])  # pruned, say
    assert listing.files([layer]) == {"etc/passwd": b"root\n"}
    assert len(counted) == 2


def test_a_fetched_layer_that_is_not_its_diff_id_is_refused(tmp_path):
    store = BlobStore(tmp_path)
    (real,) = layers(store, {"etc/passwd": File(b"root\n")}, compression=Compression.GZIP)
    (other,) = layers(store, {"etc/passwd": File(b"evil\n")}, compression=Compression.GZIP)
    store.remove(real.diff_id)
    # The image says `real`'s tar, the blob holds another: nothing of it is believed.
    lying = Layer.from_compressed(store, digest=other.digest, diff_id=real.diff_id)
    with pytest.raises(BlobError, match=r"does not hold the tar its image lists"):
        listing.files([lying])
    assert store.link(listing._LISTINGS, real.diff_id) is None


def test_a_fetched_blob_that_does_not_decompress_is_removed(tmp_path):
    store = BlobStore(tmp_path)
    (real,) = layers(store, {"etc/passwd": File(b"root\n")})
    broken = store.put(b"\x1f\x8b\x08\x00" + b"not gzip at all" * 64)
    layer = Layer.from_compressed(store, digest=broken, diff_id=real.diff_id)
    store.remove(real.diff_id)
    with pytest.raises(BlobError, match=r"is not valid gzip and has been removed"):
        listing.files([layer])
    assert not store.has(broken)


def test_the_read_ahead_reads_the_cheaper_copy_it_is_given(tmp_path):
    store = BlobStore(tmp_path)
    made = layers(
        store,
        {"etc/passwd": File(b"root\n"), f"{SITE}/pip-24.0.dist-info/METADATA": PIP},
        {"etc/group": File(b"root:x:0:\n")},
        compression=Compression.GZIP,
    )
    copies = [fetched(store, layer) for layer in made]

    def export():
        raise AssertionError("the engine's export was asked for")

    lazy = [Layer.lazy(store, layer.diff_id, export) for layer in copies]
    listing.read_ahead(lazy, through=lambda: copies)
    assert listing.files(lazy) == {"etc/passwd": b"root\n", "etc/group": b"root:x:0:\n"}
    assert [p.name for p in listing.listing(lazy[0]).packages.values()] == ["pip"]


def test_without_a_cheaper_copy_the_layers_themselves_are_read(tmp_path):
    store = BlobStore(tmp_path)
    (layer,) = layers(store, {"etc/passwd": File(b"root\n")})
    listing.read_ahead([layer], through=lambda: None)
    assert listing.files([layer]) == {"etc/passwd": b"root\n"}


def test_a_failing_copy_is_raised_where_the_answer_is_asked_for(tmp_path):
    store = BlobStore(tmp_path)
    (layer,) = layers(store, {"etc/passwd": File(b"root\n")})

    def broken():
        raise BlobError("The blob `x` is damaged")

    listing.read_ahead([layer], through=broken)
    with pytest.raises(BlobError, match="damaged"):
        listing.files([layer])


def test_only_the_files_a_listing_keeps_can_be_asked_for(tmp_path):
    (layer,) = layers(BlobStore(tmp_path), {"etc/shadow": File(b"secret")})
    with pytest.raises(ValueError, match="etc/shadow"):
        listing.files([layer], ("etc/shadow",))
