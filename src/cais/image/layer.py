"""A layer: an uncompressed tar known by its diff id, and its compressed form by digest.

Layers live in a `BlobStore`. A layer written by cais has its tar in the store and is
compressed only when a registry or an OCI layout needs it (once: the result is indexed by
diff id and compressor); a layer fetched from a registry has its compressed blob and is
decompressed (and its diff id checked) only when the engine or a tarball needs the tar; a
lazy layer (a base image's, held by the engine) has neither until some sink reads it, and
then asks its `fetch` to put its tar in the store.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import BinaryIO, Protocol

from cais.errors import BlobError
from cais.image.blobs import BlobStore, BlobWriter
from cais.image.media import Compression, MediaType

__all__ = ["Descriptor", "Layer", "Packer", "compress_layers", "compressor"]

_CHUNK = 1 << 20
# The pinned compressors: their names (with the library's version) key the compressed-blob
# index, so a different compressor never passes its output off as this one's.
GZIP_LEVEL = 2  # isal (igzip): as fast as level 1 here and 1.6 % smaller; see docs/design.md
ZSTD_LEVEL = 3


@dataclass(frozen=True)
class Descriptor:
    """What a manifest says about a blob."""

    media_type: MediaType
    digest: str
    size: int

    def to_json(self) -> dict[str, object]:
        return {"mediaType": self.media_type.value, "digest": self.digest, "size": self.size}


class Compressor(Protocol):
    def compress(self, data: bytes, /) -> bytes: ...
    def flush(self) -> bytes: ...


def compressor(compression: Compression) -> tuple[str, Compressor]:
    """The pinned compressor for a compression: its index name and a fresh stream object.

    gzip streams carry no file name and a zero timestamp (a raw deflate stream in a gzip
    wrapper made by the library, wbits=31), so equal tars give equal bytes.
    """
    if compression is Compression.GZIP:
        import isal
        from isal import isal_zlib

        name = f"gzip-isal-{isal.__version__}-{GZIP_LEVEL}"
        return name, isal_zlib.compressobj(GZIP_LEVEL, isal_zlib.DEFLATED, 31)
    import zstandard

    name = f"zstd-{zstandard.__version__}-{ZSTD_LEVEL}"
    return name, zstandard.ZstdCompressor(level=ZSTD_LEVEL).compressobj()


class Packer:
    """Feeds a compressor in blocks of one fixed size, whatever sizes it is written in.

    igzip's output depends on how its input is cut, so both ways of compressing a layer (while
    writing it, or later from the stored tar) must cut it the same way to give the same bytes.
    """

    def __init__(self, compression: Compression, out: BlobWriter) -> None:
        self.name, self._stream = compressor(compression)
        self.out = out
        self._pending = bytearray()

    def write(self, data: bytes | memoryview) -> None:
        self._pending += data
        if len(self._pending) >= _CHUNK:
            whole = len(self._pending) - len(self._pending) % _CHUNK
            view = memoryview(self._pending)
            for start in range(0, whole, _CHUNK):
                self.out.write(self._stream.compress(view[start : start + _CHUNK]))
            view.release()
            del self._pending[:whole]

    def finish(self) -> None:
        self.out.write(self._stream.compress(bytes(self._pending)) + self._stream.flush())
        self._pending.clear()


def _decompressing(stream: BinaryIO, compression: Compression) -> BinaryIO:
    if compression is Compression.GZIP:
        from isal import igzip

        return igzip.GzipFile(fileobj=stream, mode="rb")  # type: ignore[return-value]
    import zstandard

    return zstandard.ZstdDecompressor().stream_reader(stream, closefd=False)  # type: ignore[return-value]


def _decompression_errors(compression: Compression) -> tuple[type[Exception], ...]:
    if compression is Compression.GZIP:
        from isal import isal_zlib

        return (OSError, EOFError, isal_zlib.error)
    import zstandard

    return (zstandard.ZstdError,)


@dataclass(frozen=True)
class Layer:
    """One layer of an image.

    `diff_id` is the sha256 of the uncompressed tar (what an image config lists); `digest`
    and `compressed_size` name the compressed blob (what a manifest lists), and are computed
    on first use when the layer was written uncompressed.
    """

    diff_id: str
    store: BlobStore = field(repr=False, compare=False)
    compression: Compression = Compression.GZIP
    # What is known of the compressed form; layers are equal by diff id and compression.
    known_digest: str | None = field(default=None, compare=False)
    known_compressed_size: int | None = field(default=None, compare=False)
    # Puts the tar in the store, for a layer whose bytes are fetched only when read.
    fetch: Callable[[], None] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def from_store(
        cls, store: BlobStore, diff_id: str, *, compression: Compression = Compression.GZIP
    ) -> Layer:
        """The layer whose tar is in the store; its compressed form is found or made on use."""
        if not store.has(diff_id):
            raise _not_cached(diff_id)
        return cls(diff_id, store, compression)

    @classmethod
    def lazy(
        cls,
        store: BlobStore,
        diff_id: str,
        fetch: Callable[[], None],
        *,
        compression: Compression = Compression.GZIP,
    ) -> Layer:
        """A layer known by its diff id alone: `fetch` puts its tar in the store when its
        bytes are first needed (a sink that already holds the layer never asks for them)."""
        if store.has(diff_id):
            return cls(diff_id, store, compression)
        return cls(diff_id, store, compression, fetch=fetch)

    @property
    def held(self) -> bool:
        """Whether the store holds the layer's bytes (a lazy layer's, once fetched)."""
        if self.store.has(self.diff_id):
            return True
        return self.known_digest is not None and self.store.has(self.known_digest)

    @classmethod
    def from_compressed(
        cls,
        store: BlobStore,
        *,
        digest: str,
        diff_id: str,
        compression: Compression = Compression.GZIP,
    ) -> Layer:
        """A layer known by its compressed blob (in the store) and the diff id its image lists."""
        if not store.has(digest):
            raise _not_cached(digest)
        return cls(diff_id, store, compression, digest, store.size(digest))

    def descriptor(self, manifest_type: MediaType = MediaType.OCI_MANIFEST) -> Descriptor:
        """The manifest entry of this layer in a manifest of `manifest_type`'s family."""
        digest, size = self._compressed
        return Descriptor(manifest_type.layer(self.compression), digest, size)

    @property
    def digest(self) -> str:
        return self._compressed[0]

    @property
    def compressed_size(self) -> int:
        return self._compressed[1]

    def compressed(self) -> BinaryIO:
        """A checked reader of the compressed blob."""
        return self.store.open(self.digest)

    def uncompressed(self) -> BinaryIO:
        """A checked reader of the tar."""
        self._ensure_tar()
        return self.store.open(self.diff_id)

    @contextlib.contextmanager
    def tar(self) -> Iterator[BinaryIO]:
        """A checked reader of the tar that stores nothing: the stored tar, else the compressed
        blob decompressed as it is read (its diff id checked at the end; a lazy layer's bytes
        are fetched first)."""
        if self.known_digest is None or self.store.has(self.diff_id):
            with self.uncompressed() as stream:
                yield stream
            return
        with contextlib.ExitStack() as stack:
            packed = stack.enter_context(self.store.open(self.known_digest))
            source = _decompressing(packed, self.compression)
            stack.callback(source.close)
            yield _Unpacked(source, self)
            while packed.read(_CHUNK):  # to its end, where the reader checks its digest
                pass

    @property
    def uncompressed_size(self) -> int:
        self._ensure_tar()
        return self.store.size(self.diff_id)

    def compress(self) -> Layer:
        """This layer with its compressed form made (or found) in the store."""
        digest, size = self._compressed
        return replace(self, known_digest=digest, known_compressed_size=size)

    @functools.cached_property
    def _compressed(self) -> tuple[str, int]:
        if self.known_digest is not None and self.known_compressed_size is not None:
            return self.known_digest, self.known_compressed_size
        name, _ = compressor(self.compression)
        digest = self.store.link(name, self.diff_id)
        if digest is not None and self.store.verify(digest):
            return digest, self.store.size(digest)
        return self._compress(name)

    def _compress(self, name: str) -> tuple[str, int]:
        with self.uncompressed() as source, self.store.writer() as out:
            packer = Packer(self.compression, out)
            while chunk := source.read(_CHUNK):
                packer.write(chunk)
            packer.finish()
        self.store.set_link(name, self.diff_id, out.digest)
        return out.digest, out.size

    def _ensure_tar(self) -> None:
        """Decompress a fetched layer into the store, refusing a tar of another diff id."""
        if self.store.has(self.diff_id):
            return
        if self.known_digest is None:
            if self.fetch is not None:
                self.fetch()
            if not self.store.has(self.diff_id):
                raise _not_cached(self.diff_id)
            return
        with contextlib.ExitStack() as stack:
            packed = stack.enter_context(self.store.open(self.known_digest))
            source = _decompressing(packed, self.compression)
            stack.callback(source.close)
            try:
                with self.store.writer(expected=self.diff_id) as out:
                    while chunk := source.read(_CHUNK):
                        out.write(chunk)
            except _decompression_errors(self.compression) as exc:
                raise self._invalid() from exc
            while packed.read(_CHUNK):  # to its end, where the reader checks its digest
                pass

    def _invalid(self) -> BlobError:
        """The compressed blob does not decompress: removed, to be fetched again."""
        assert self.known_digest is not None
        self.store.remove(self.known_digest)
        return BlobError(
            f"The cached blob `{self.known_digest}` is not valid {self.compression.value} and "
            "has been removed",
            hint="run the command again to fetch it again",
        )


class _Unpacked(io.RawIOBase):
    """A layer's tar as its compressed blob decompresses, hashed on the way: at its end, a tar
    that is not the one the image lists (by diff id) is refused. Not seekable, so readers
    (libarchive) read it as a stream."""

    def __init__(self, source: BinaryIO, layer: Layer) -> None:
        super().__init__()
        self._source = source
        self._layer = layer
        self._hash = hashlib.sha256()
        self._checked = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        try:
            count = self._source.readinto(buffer)  # type: ignore[attr-defined]
        except _decompression_errors(self._layer.compression) as exc:
            raise self._layer._invalid() from exc
        if count:
            self._hash.update(memoryview(buffer)[:count])
        elif not self._checked:
            self._checked = True
            if "sha256:" + self._hash.hexdigest() != self._layer.diff_id:
                raise BlobError(
                    f"The layer `{self._layer.known_digest}` does not hold the tar its image "
                    f"lists (`{self._layer.diff_id}`)",
                    hint="the image is damaged: use another one, or push it again",
                )
        return count


def compress_layers(layers: Iterable[Layer], *, workers: int | None = None) -> list[Layer]:
    """The layers compressed in parallel (zlib-style compressors release the GIL)."""
    todo = list(layers)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(Layer.compress, todo))


def _not_cached(digest: str) -> BlobError:
    return BlobError(
        f"The layer `{digest}` is not in the cache (it was pruned or removed)",
        hint="run the command again to rebuild it",
    )
