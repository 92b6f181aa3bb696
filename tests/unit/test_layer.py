"""cais.image.layer: a layer's two forms, each made once and checked on every read."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from cais.errors import BlobError
from cais.image import layer as layer_module
from cais.image.archive import File, write_layer
from cais.image.blobs import BlobStore, sha256_digest
from cais.image.layer import Layer, compress_layers
from cais.image.media import Compression, MediaType


@pytest.fixture
def store(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "cache")


def _tar(store: BlobStore, text: str) -> Layer:
    return write_layer(
        {"f.txt": File(text.encode() * 5000)}, store=store, created=0, compression=None
    )


def test_a_layer_is_compressed_once_per_diff_id(store, monkeypatch):
    first = _tar(store, "one").compress()
    calls = []
    monkeypatch.setattr(Layer, "_compress", lambda self, name: calls.append(name))
    again = Layer.from_store(store, first.diff_id).compress()
    assert calls == []
    assert again.digest == first.digest and again.compressed_size == first.compressed_size


@pytest.mark.parametrize("damage", ["truncate", "flip", "remove"])
def test_a_damaged_compressed_blob_is_rebuilt_not_used(store, damage):
    first = _tar(store, "two").compress()
    path = store.path(first.digest)
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:-10])
    elif damage == "flip":
        data = bytearray(path.read_bytes())
        data[20] ^= 0xFF
        path.write_bytes(bytes(data))
    else:
        path.unlink()
    rebuilt = Layer.from_store(store, first.diff_id).compress()
    assert rebuilt.digest == first.digest
    assert store.verify(first.digest)


def test_a_layer_whose_tar_is_gone_says_so(store):
    layer = _tar(store, "three")
    store.remove(layer.diff_id)
    with pytest.raises(BlobError) as caught:
        Layer.from_store(store, layer.diff_id)
    assert caught.value.message == (
        f"The layer `{layer.diff_id}` is not in the cache (it was pruned or removed)"
    )
    with pytest.raises(BlobError, match="is not in the cache"):
        layer.uncompressed()
    with pytest.raises(BlobError, match="is not in the cache"):
        Layer.from_compressed(store, digest=sha256_digest(b"gone"), diff_id=layer.diff_id)


def test_a_fetched_layer_is_decompressed_and_its_diff_id_checked(store):
    tar = b"pretend tar" * 1000
    packed = gzip.compress(tar, mtime=0)  # another compressor than cais's: what a registry holds
    digest = store.put(packed)
    layer = Layer.from_compressed(store, digest=digest, diff_id=sha256_digest(tar))
    assert layer.digest == digest and layer.compressed_size == len(packed)
    with layer.uncompressed() as stream:
        assert stream.read() == tar
    assert layer.uncompressed_size == len(tar)
    assert layer.compress().digest == digest  # its own compressed form is kept, not redone


@pytest.mark.parametrize("compression", [Compression.GZIP, Compression.ZSTD])
def test_a_damaged_fetched_blob_is_caught_and_removed(store, compression):
    import random

    import zstandard

    tar = random.Random(0).randbytes(20_000)  # incompressible: the halves differ
    if compression is Compression.GZIP:
        packed = gzip.compress(tar, mtime=0)
    else:
        packed = zstandard.ZstdCompressor().compress(tar)
    digest = store.put(packed)
    layer = Layer.from_compressed(
        store, digest=digest, diff_id=sha256_digest(tar), compression=compression
    )
    for damage in (packed + b"\0" * 8, packed[: len(packed) // 2], b"garbage" + packed):
        store.path(digest).write_bytes(damage)
        with pytest.raises(BlobError, match=f"The cached blob `{digest}` is "):
            layer.uncompressed()
        assert not store.has(digest) and not store.has(layer.diff_id)


def test_a_fetched_layer_of_another_diff_id_is_refused(store):
    digest = store.put(gzip.compress(b"what was sent", mtime=0))
    claimed = sha256_digest(b"what the config lists")
    layer = Layer.from_compressed(store, digest=digest, diff_id=claimed)
    with pytest.raises(BlobError):
        layer.uncompressed()
    assert not store.has(claimed)


def test_layers_are_equal_by_diff_id_whatever_is_known_of_their_compressed_form(store):
    layer = _tar(store, "five")
    assert layer.compress() == layer and layer.compress().known_digest != layer.known_digest
    assert _tar(store, "six") != layer


def test_descriptor_follows_the_manifest_family(store):
    layer = _tar(store, "four")
    assert layer.descriptor().media_type is MediaType.OCI_LAYER_GZIP
    assert layer.descriptor(MediaType.DOCKER_MANIFEST).media_type is MediaType.DOCKER_LAYER_GZIP
    assert layer.descriptor().to_json() == {
        "mediaType": MediaType.OCI_LAYER_GZIP.value,
        "digest": layer.digest,
        "size": layer.compressed_size,
    }


def test_parallel_compression_gives_what_one_at_a_time_gives(tmp_path):
    one_store, many_store = BlobStore(tmp_path / "one"), BlobStore(tmp_path / "many")
    texts = ["a", "b", "c", "d", "e"]
    one = [_tar(one_store, text).compress().digest for text in texts]
    many = compress_layers([_tar(many_store, text) for text in texts], workers=4)
    assert [layer.digest for layer in many] == one


def test_the_compressor_is_named_with_its_version_and_level():
    name, _ = layer_module.compressor(Compression.GZIP)
    assert name.startswith("gzip-isal-") and name.endswith(f"-{layer_module.GZIP_LEVEL}")
    name, _ = layer_module.compressor(Compression.ZSTD)
    assert name.startswith("zstd-")


def test_a_lazy_layer_is_fetched_when_first_read_and_only_then(tmp_path, store):
    elsewhere = BlobStore(tmp_path / "elsewhere")
    source = _tar(elsewhere, "lazy")
    calls = []

    def fetch() -> None:
        calls.append(1)
        with elsewhere.open(source.diff_id) as stream, store.writer() as out:
            out.write(stream.read())

    lazy = Layer.lazy(store, source.diff_id, fetch)
    assert lazy.diff_id == source.diff_id and not lazy.held and calls == []
    assert lazy.compress().digest == source.compress().digest  # read, so fetched
    with lazy.uncompressed() as stream:
        assert stream.read() == elsewhere.get(source.diff_id)
    assert calls == [1] and lazy.held
    held = Layer.lazy(store, source.diff_id, fetch)  # the store has it: nothing to fetch
    assert held.fetch is None and held.held


@pytest.mark.parametrize("fetched", [b"", b"other bytes"])
def test_a_lazy_layer_whose_fetch_brings_something_else_is_an_error(store, fetched):
    wanted = sha256_digest(b"the layer")

    def fetch() -> None:
        if fetched:
            store.put(fetched)

    lazy = Layer.lazy(store, wanted, fetch)
    with pytest.raises(BlobError, match="is not in the cache"):
        lazy.uncompressed()
    with pytest.raises(BlobError, match="is not in the cache"):
        lazy.compress()
