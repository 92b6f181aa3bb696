"""A content-addressed blob store on disk: `ROOT/blobs/sha256/HEX`.

Writes are atomic (a temp file in the store, then a rename), every read is checked against
the digest (a damaged entry is removed and reported, never used), and compressed layers are
indexed by the diff id and compressor that made them, so a layer is compressed once.
Beside the blobs, `places/` records which repositories of which registries are known to hold a
blob, so a push can ask a registry to mount it instead of sending it again.

Links (`index/KIND/KEY`) name blobs: a link is touched when it is looked up and a blob when it
is opened, so their mtimes say when they were last used. `prune` keeps what the kept links
reach (through the digests small JSON blobs name, and the links keyed by a kept blob's digest,
such as its compressed form) and removes the rest; a blob or temp file younger than `GRACE`
that no link reaches yet is kept, as a build may have just written it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from cais.errors import BlobError

__all__ = ["GRACE", "BlobStore", "Link", "Pruned", "default_root", "sha256_digest"]

_CHUNK = 1 << 20
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_PLACES_KEPT = 16  # repositories remembered per blob: the latest are the likeliest to last
_SMALL = 1 << 20  # JSON blobs up to this size are read for the digests they name
# How long a blob no link reaches is kept: a build writes its blobs before it links them.
GRACE = 3600.0


@dataclass(frozen=True)
class Link:
    """One entry of a named index: `kind`/`key` → `target`, last used at `used` (epoch)."""

    kind: str
    key: str
    target: str | None  # None when the file does not hold a digest
    used: float
    path: Path

    @property
    def derived(self) -> bool:
        """Keyed by a blob's digest (its compressed form, its scan): kept while that blob is."""
        return bool(_DIGEST.fullmatch(self.key))


@dataclass(frozen=True)
class Pruned:
    """What `BlobStore.prune` removed."""

    links: tuple[Link, ...]
    blobs: int
    freed: int


def default_root() -> Path:
    """`CAIS_CACHE`, else `$XDG_CACHE_HOME/cais`, else `~/.cache/cais`."""
    if os.environ.get("CAIS_CACHE"):
        return Path(os.environ["CAIS_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "cais"


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class BlobStore:
    """Blobs by digest under `root`; safe for several threads and processes at once."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_root()

    def __repr__(self) -> str:
        return f"BlobStore(root={str(self.root)!r})"

    def path(self, digest: str) -> Path:
        if not _DIGEST.fullmatch(digest):
            raise ValueError(f"not a sha256 digest: {digest!r}")
        return self.root / "blobs" / "sha256" / digest.removeprefix("sha256:")

    def has(self, digest: str) -> bool:
        """Whether the store holds the blob (its content is checked when it is read)."""
        return self.path(digest).is_file()

    def size(self, digest: str) -> int:
        return self.path(digest).stat().st_size

    def verify(self, digest: str) -> bool:
        """Whether the blob is there and intact; a damaged one is removed."""
        try:
            with self._open(digest, touch=False) as stream:  # a check is not a use
                while stream.read(_CHUNK):
                    pass
        except BlobError:
            return False
        return True

    def open(self, digest: str) -> BinaryIO:
        """A reader of the blob that raises `BlobError` at its end if the content is wrong."""
        return self._open(digest, touch=True)

    def _open(self, digest: str, *, touch: bool) -> BinaryIO:
        path = self.path(digest)
        try:
            handle = path.open("rb")
        except FileNotFoundError as exc:
            raise BlobError(
                f"The blob `{digest}` is not in the cache (it was pruned or removed)",
                hint="run the command again to rebuild it",
            ) from exc
        if touch:
            _touch(path)
        return _VerifyingReader(handle, digest, path)

    def get(self, digest: str, *, touch: bool = True) -> bytes:
        """A small blob (a manifest, a config), checked; `touch=False` to read it without
        counting it as used (to describe the cache)."""
        with self._open(digest, touch=touch) as stream:
            return stream.read()

    def put(self, data: bytes) -> str:
        with self.writer() as writer:
            writer.write(data)
        return writer.digest

    @contextlib.contextmanager
    def writer(self, expected: str | None = None) -> Iterator[BlobWriter]:
        """A file to stream a blob into; it is stored under its digest when the block ends.

        With `expected`, content of another digest is refused (`BlobError`) and not stored.
        """
        folder = self.root / "tmp"
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=folder, prefix="blob-")
        writer = BlobWriter(os.fdopen(fd, "wb"))
        try:
            yield writer
            writer.close()
            if expected is not None and writer.digest != expected:
                raise BlobError(
                    f"The content received for `{expected}` has the digest `{writer.digest}`",
                    hint="the source sent damaged data; try again",
                )
            target = self.path(writer.digest)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(name, target)
        finally:
            writer.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name)

    def remove(self, digest: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(digest).unlink()

    def link(self, kind: str, key: str) -> str | None:
        """The digest a named index (`kind`) records for `key`, if the blob is still there."""
        path = self._link_path(kind, key)
        try:
            digest = path.read_text().strip()
        except FileNotFoundError:
            return None
        if not _DIGEST.fullmatch(digest) or not self.has(digest):
            path.unlink(missing_ok=True)
            return None
        _touch(path)  # its last use, which `cais cache prune --older-than` reads
        return digest

    def set_link(self, kind: str, key: str, digest: str) -> None:
        path = self._link_path(kind, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=".link-")
        with os.fdopen(fd, "w") as handle:
            handle.write(digest)
        os.replace(name, path)

    def remove_link(self, kind: str, key: str) -> None:
        self._link_path(kind, key).unlink(missing_ok=True)

    def links(self, kind: str | None = None) -> list[Link]:
        """Every link (of one kind), without touching them."""
        found = []
        index = self.root / "index"
        kinds = [kind] if kind else sorted(p.name for p in _folders(index))
        for name in kinds:
            folder = index / name
            for path in sorted(folder.rglob("*")):
                if path.name.startswith(".") or not path.is_file():
                    continue
                try:
                    text = path.read_text().strip()
                    used = path.stat().st_mtime
                except (FileNotFoundError, UnicodeDecodeError):
                    continue  # removed meanwhile, or not a link
                key = path.relative_to(folder).as_posix()
                if re.fullmatch(r"sha256-[0-9a-f]{64}", key):
                    key = "sha256:" + key[7:]  # a digest key, as `set_link` was given it
                target = text if _DIGEST.fullmatch(text) else None
                found.append(Link(name, key, target, used, path))
        return found

    def digests(self) -> list[str]:
        """The digests of every blob the store holds."""
        folder = self.root / "blobs" / "sha256"
        return sorted(
            "sha256:" + path.name
            for path in _files(folder)
            if re.fullmatch(r"[0-9a-f]{64}", path.name)
        )

    def references(self, digest: str) -> set[str]:
        """The digests a small JSON blob names (a manifest, a config, a listing); none for any
        other blob. The blob is read unchecked: this only decides what to keep."""
        path = self.path(digest)
        try:
            if path.stat().st_size > _SMALL:
                return set()
            data = path.read_bytes()
        except FileNotFoundError:
            return set()
        if data[:1] not in (b"{", b"["):
            return set()
        try:
            value = json.loads(data)
        except ValueError:
            return set()
        return set(_digests_in(value))

    def reachable(self, targets: Iterable[str], links: Iterable[Link] | None = None) -> set[str]:
        """The blobs `targets` reach: themselves, the digests they name, and what the links
        keyed by them (their compressed forms) point at, and so on."""
        by_key: dict[str, list[str]] = {}
        for link in self.links() if links is None else links:
            if link.derived and link.target:
                by_key.setdefault(link.key, []).append(link.target)
        seen: set[str] = set()
        todo = [t for t in targets if _DIGEST.fullmatch(t)]
        while todo:
            digest = todo.pop()
            if digest in seen:
                continue
            seen.add(digest)
            todo.extend(self.references(digest) - seen)
            todo.extend(t for t in by_key.get(digest, ()) if t not in seen)
        return seen

    def prune(
        self,
        *,
        older_than: float | None = None,
        everything: bool = False,
        grace: float = GRACE,
    ) -> Pruned:
        """Remove links not used for `older_than` seconds (all of them with `everything`), and
        links whose blob is gone; then every blob the remaining links do not reach, unless it
        is younger than `grace` (with `everything`, every blob)."""
        now = time.time()
        removed: list[Link] = []
        links = self.links()
        survivors = []
        for link in links:
            if link.derived:
                survivors.append(link)
                continue
            stale = older_than is not None and link.used < now - older_than
            broken = link.target is None or not self.has(link.target)
            if everything or stale or broken:
                if stale and not everything and _used_since(link.path, now - older_than):
                    survivors.append(link)  # looked up meanwhile: in use again
                    continue
                link.path.unlink(missing_ok=True)
                removed.append(link)
            else:
                survivors.append(link)
        roots = [link.target for link in survivors if not link.derived and link.target]
        alive = self.reachable(roots, survivors)
        count = freed = 0
        for digest in self.digests():
            if digest in alive:
                continue
            path = self.path(digest)
            try:
                info = path.stat()
            except FileNotFoundError:
                continue
            if not everything and info.st_mtime > now - grace:
                continue
            path.unlink(missing_ok=True)
            count += 1
            freed += info.st_size
        for link in survivors:  # links keyed by a blob now gone
            if link.derived and not self.has(link.key):
                link.path.unlink(missing_ok=True)
        for path in _files(self.root / "tmp"):
            with contextlib.suppress(FileNotFoundError):
                if everything or path.stat().st_mtime < now - grace:
                    freed += path.stat().st_size
                    path.unlink()
        _remove_empty_folders(self.root / "index")
        return Pruned(tuple(removed), count, freed)

    def note_place(self, digest: str, registry: str, repository: str) -> None:
        """Record that `repository` of `registry` holds the blob (pushed there, or pulled)."""
        line = f"{registry} {repository}"
        if len(line.split()) != 2 or line != " ".join(line.split()):
            raise ValueError(f"not a registry and repository: {line!r}")
        path = self._places_path(digest)
        known = self._place_lines(path)
        if line in known:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        if len(known) < _PLACES_KEPT:
            with path.open("a") as handle:  # one short append: safe beside other writers
                handle.write(line + "\n")
            return
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=".places-")
        with os.fdopen(fd, "w") as handle:
            handle.write("".join(f"{kept}\n" for kept in [*known[1 - _PLACES_KEPT :], line]))
        os.replace(name, path)

    def places(self, digest: str, registry: str) -> list[str]:
        """The repositories of `registry` known to hold the blob, the latest recorded first.

        A record can be stale (a repository deleted since): it is a hint for a mount, which
        the registry answers with an upload when it no longer has the blob.
        """
        found = []
        for line in reversed(self._place_lines(self._places_path(digest))):
            host, _, repository = line.partition(" ")
            if host == registry and repository:
                found.append(repository)
        return found

    def _places_path(self, digest: str) -> Path:
        return self.root / "places" / self.path(digest).relative_to(self.root / "blobs")

    @staticmethod
    def _place_lines(path: Path) -> list[str]:
        try:
            text = path.read_text()
        except FileNotFoundError:
            return []
        return [line for line in text.splitlines() if line.strip()]

    def _link_path(self, kind: str, key: str) -> Path:
        if not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", kind):
            raise ValueError(f"not an index name: {kind!r}")
        return self.root / "index" / kind / key.replace(":", "-")


def _touch(path: Path) -> None:
    with contextlib.suppress(OSError):  # a read-only cache is still readable
        os.utime(path)


def _used_since(path: Path, since: float) -> bool:
    try:
        return path.stat().st_mtime >= since
    except FileNotFoundError:
        return False


def _folders(folder: Path) -> list[Path]:
    try:
        return [p for p in folder.iterdir() if p.is_dir()]
    except FileNotFoundError:
        return []


def _files(folder: Path) -> list[Path]:
    try:
        return [p for p in folder.iterdir() if p.is_file()]
    except FileNotFoundError:
        return []


def _remove_empty_folders(folder: Path) -> None:
    for path in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_dir():
            with contextlib.suppress(OSError):
                path.rmdir()  # only when empty


def _digests_in(value: object) -> Iterator[str]:
    if isinstance(value, str):
        if _DIGEST.fullmatch(value):
            yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _digests_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from _digests_in(item)


class BlobWriter:
    """A write-only file that hashes what goes through it."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self._hash = hashlib.sha256()
        self.size = 0
        self.digest = ""

    def write(self, data: bytes | memoryview) -> int:
        self._hash.update(data)
        self.size += len(data)
        return self._handle.write(data)

    def close(self) -> None:
        if not self._handle.closed:
            self._handle.close()
            self.digest = "sha256:" + self._hash.hexdigest()


class _VerifyingReader(io.RawIOBase):
    """Reads a stored blob, hashing it; at the end a mismatch removes the blob and raises."""

    def __init__(self, handle: BinaryIO, digest: str, path: Path) -> None:
        super().__init__()
        self._handle = handle
        self._digest = digest
        self._path = path
        self._hash = hashlib.sha256()
        self._checked = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        count = self._handle.readinto(buffer)
        if count:
            self._hash.update(memoryview(buffer)[:count])
        elif not self._checked:
            self._checked = True
            if "sha256:" + self._hash.hexdigest() != self._digest:
                self._path.unlink(missing_ok=True)
                raise BlobError(
                    f"The cached blob `{self._digest}` is damaged and has been removed",
                    hint="run the command again to rebuild it",
                )
        return count

    def close(self) -> None:
        self._handle.close()
        super().close()
