"""What cais's cache holds, described, and how it is trimmed.

The entries are the store's links that are not keyed by a blob: the layer cache (what went
into a layer → its diff id, or the list of a project's package layers) and the record of the
images cais holds by tag. An entry is described by the history its layers have in the images
cais holds (`package numpy for Python 3.11 on linux/amd64 (uv)`), its size is that of every
blob it reaches (its tars and their compressed forms; shared blobs count in each entry), and
its last use is the mtime of its link, touched on every lookup.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cais.errors import BlobError
from cais.image.blobs import GRACE, BlobStore, Link
from cais.image.image import Image
from cais.image.index import ImageIndex
from cais.image.local import IMAGE_INDEX, configs, records

__all__ = ["Entry", "Inventory", "Trimmed", "inventory", "prune"]

OK, MISSING, DAMAGED = "ok", "missing", "damaged"
_CAIS = "cais: "  # how the OCI builder's history entries begin


@dataclass(frozen=True)
class Entry:
    kind: str  # `image`, `layer`, or another index's name
    what: str
    size: int
    used: float
    state: str  # ok, or missing / damaged: such an entry is never used, and is pruned
    link: Link


@dataclass(frozen=True)
class Inventory:
    entries: tuple[Entry, ...]
    total: int  # every blob and temp file, in bytes
    blobs: int
    loose: int  # blobs no entry reaches: base images read, app layers of earlier builds
    loose_size: int


@dataclass(frozen=True)
class Trimmed:
    entries: tuple[Entry, ...]  # the entries removed
    blobs: int
    freed: int


def inventory(store: BlobStore, *, check: bool = False) -> Inventory:
    """Every entry of the cache; with `check`, every blob an entry reaches is read and checked
    against its digest first (a damaged one is removed, and its entries shown as damaged)."""
    links = store.links()
    roots = [link for link in links if not link.derived]
    damaged: set[str] = set()
    if check:
        for digest in sorted(store.reachable((r.target for r in roots if r.target), links)):
            if store.has(digest) and not store.verify(digest):
                damaged.add(digest)
    recorded = {r.link.path: r for r in records(store)}
    history = _history(store, (r.link for r in recorded.values()))
    entries = []
    reached: set[str] = set()
    for link in roots:
        reach = store.reachable([link.target], links) if link.target else set()
        reached |= reach
        found = recorded.get(link.path)
        if link.kind == IMAGE_INDEX and found is not None:
            whole = found.image is not None
            what = _image_what(found.reference, found.image, history)
        else:
            whole = _whole(store, link)
            what = _layer_what(store, link, history)
        state = OK if whole else DAMAGED if reach & damaged else MISSING
        size = sum(_size(store, digest) for digest in reach)
        entries.append(Entry(link.kind, what, size, link.used, state, link))
    sizes = {digest: _size(store, digest) for digest in store.digests()}
    loose = [digest for digest in sizes if digest not in reached]
    temporary = sum(_file_size(p) for p in (store.root / "tmp").glob("*"))
    return Inventory(
        tuple(sorted(entries, key=lambda e: (e.kind, -e.used))),
        sum(sizes.values()) + temporary,
        len(sizes),
        len(loose),
        sum(sizes[d] for d in loose),
    )


def prune(
    store: BlobStore,
    *,
    older_than: float | None = None,
    everything: bool = False,
    grace: float = GRACE,
) -> Trimmed:
    """Remove the entries not used for `older_than` seconds (all with `everything`) and the
    entries that are no longer whole, then the blobs no remaining entry reaches (those younger
    than `grace`, which a build running now may not have linked yet, stay)."""
    before = inventory(store, check=not everything)  # all goes: no need to read it first
    broken = [entry for entry in before.entries if entry.state != OK]
    for entry in broken:
        store.remove_link(entry.link.kind, entry.link.key)
    done = store.prune(older_than=older_than, everything=everything, grace=grace)
    gone = {link.path for link in done.links}
    removed = broken + [e for e in before.entries if e.link.path in gone and e.state == OK]
    return Trimmed(tuple(removed), done.blobs, done.freed)


def _whole(store: BlobStore, link: Link) -> bool:
    """The link's blob is there and so is every blob it names (a list of package layers)."""
    if link.target is None or not store.has(link.target):
        return False
    return all(store.has(digest) for digest in store.references(link.target))


def _history(store: BlobStore, links: Iterable[Link]) -> dict[str, str]:
    """What made each of cais's layers, from the history in the configs of the images cais
    holds (read even when a layer of theirs is gone)."""
    made: dict[str, str] = {}
    for link in links:
        for config in configs(store, link.target) if link.target else ():
            steps = [h for h in config.get("history") or [] if not h.get("empty_layer")]
            diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
            if len(steps) != len(diff_ids):
                continue
            for diff_id, step in zip(diff_ids, steps, strict=True):
                text = str(step.get("created_by") or "")
                if text.startswith(_CAIS):
                    made.setdefault(diff_id, text.removeprefix(_CAIS))
    return made


def _image_what(reference: str, image: Image | ImageIndex | None, history: dict[str, str]) -> str:
    if image is None:
        return f"`{reference}`"
    images = image.images if isinstance(image, ImageIndex) else (image,)
    platforms = ", ".join(str(one.platform) for one in images)
    layers = images[0].layers
    own = sum(1 for layer in layers if layer.diff_id in history)
    return f"`{reference}` ({platforms}: {_count(len(layers) - own, 'base layer')}, {own} of cais)"


def _layer_what(store: BlobStore, link: Link, history: dict[str, str]) -> str:
    if link.target is None:
        return f"{link.kind} entry"
    listing = _listing(store, link.target)
    if listing is None:
        return history.get(link.target, "a layer no image cais holds uses now")
    named = [name for name, _ in listing if name]
    first = next((history[d] for _, d in listing if d in history), None)
    what = first.split(" for ", 1)[1] if first and " for " in first else None
    text = f"packages for {what}" if what else "packages"
    if named:
        text += f", {_and(named)} in layers of their own"
    return text if what else f"{text} (no image cais holds uses them now)"


def _listing(store: BlobStore, digest: str) -> list[tuple[str, str]] | None:
    """A project's package layers (`[[name, diff id], …]`), or None for another blob."""
    if not store.references(digest):
        return None
    try:
        value = json.loads(store.get(digest, touch=False))
        return [(str(name), str(diff_id)) for name, diff_id in value]
    except (BlobError, ValueError, TypeError):  # damaged, or not a listing
        return None


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _and(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _size(store: BlobStore, digest: str) -> int:
    try:
        return store.size(digest)
    except FileNotFoundError:
        return 0


def _file_size(path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
