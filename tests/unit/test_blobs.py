"""cais.image.blobs: a content-addressed store that never hands out damaged content."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from cais.errors import BlobError
from cais.image.blobs import BlobStore, default_root, sha256_digest


@pytest.fixture
def store(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "cache")


def test_put_and_get(store):
    digest = store.put(b"hello")
    assert digest == "sha256:" + hashlib.sha256(b"hello").hexdigest()
    assert store.has(digest) and store.size(digest) == 5
    assert store.get(digest) == b"hello"
    assert store.path(digest) == store.root / "blobs" / "sha256" / digest[7:]
    assert list((store.root / "tmp").iterdir()) == []  # no temp file left


@pytest.mark.parametrize("damage", [b"hellO", b"", b"hello!"])
def test_a_damaged_blob_is_detected_removed_and_never_used(store, damage):
    digest = store.put(b"hello")
    store.path(digest).write_bytes(damage)
    with pytest.raises(BlobError) as caught:
        store.get(digest)
    assert caught.value.message == f"The cached blob `{digest}` is damaged and has been removed"
    assert not store.has(digest)
    assert store.put(b"hello") == digest  # rebuilt, and good again
    assert store.verify(digest)


def test_a_missing_blob_is_one_sentence(store):
    digest = sha256_digest(b"never stored")
    with pytest.raises(BlobError) as caught:
        store.open(digest)
    assert (
        caught.value.message
        == f"The blob `{digest}` is not in the cache (it was pruned or removed)"
    )


def test_verify_removes_a_damaged_blob(store):
    digest = store.put(b"x" * 3_000_000)
    with store.path(digest).open("r+b") as handle:
        handle.seek(2_500_000)
        handle.write(b"y")
    assert not store.verify(digest)
    assert not store.has(digest)
    assert not store.verify(digest)  # missing is not intact either


def test_a_writer_with_an_expected_digest_refuses_other_content(store):
    expected = sha256_digest(b"what the manifest says")
    with pytest.raises(BlobError) as caught, store.writer(expected) as writer:
        writer.write(b"what the registry sent")
    assert f"`{expected}`" in caught.value.message
    assert not store.has(expected)
    assert not store.has(sha256_digest(b"what the registry sent"))
    assert list((store.root / "tmp").iterdir()) == []
    with store.writer(expected) as writer:
        writer.write(b"what the manifest says")
    assert writer.digest == expected and store.has(expected)


def test_a_failed_write_leaves_nothing(store):
    with pytest.raises(RuntimeError), store.writer() as writer:
        writer.write(b"half")
        raise RuntimeError("interrupted")
    assert not store.has(sha256_digest(b"half"))
    assert list((store.root / "tmp").iterdir()) == []


def test_links_point_at_blobs_that_are_still_there(store):
    digest = store.put(b"compressed")
    store.set_link("gzip-test", "sha256:" + "a" * 64, digest)
    assert store.link("gzip-test", "sha256:" + "a" * 64) == digest
    assert store.link("gzip-test", "sha256:" + "b" * 64) is None
    store.remove(digest)
    assert store.link("gzip-test", "sha256:" + "a" * 64) is None


@pytest.mark.parametrize("bad", ["sha256:abc", "md5:" + "a" * 32, "a" * 64, "sha256:" + "A" * 64])
def test_only_sha256_digests_name_blobs(store, bad):
    with pytest.raises(ValueError, match="not a sha256 digest"):
        store.path(bad)


def test_default_root(monkeypatch, tmp_path):
    monkeypatch.delenv("CAIS_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_root() == tmp_path / ".cache" / "cais"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_root() == tmp_path / "xdg" / "cais"
    monkeypatch.setenv("CAIS_CACHE", str(tmp_path / "mine"))
    assert default_root() == tmp_path / "mine"
    assert BlobStore().root == tmp_path / "mine"


# Where blobs are known to be, for mounts


def test_places_are_recorded_per_registry_latest_first(store):
    digest = store.put(b"layer")
    assert store.places(digest, "reg.example") == []
    store.note_place(digest, "reg.example", "library/python")
    store.note_place(digest, "reg.example", "team/app")
    store.note_place(digest, "reg.example", "library/python")  # known: not added twice
    store.note_place(digest, "other.example:5000", "team/app")
    assert store.places(digest, "reg.example") == ["team/app", "library/python"]
    assert store.places(digest, "other.example:5000") == ["team/app"]
    assert store.places(sha256_digest(b"never seen"), "reg.example") == []


def test_places_need_no_blob_and_survive_its_removal(store):
    digest = sha256_digest(b"config pushed from memory")
    store.note_place(digest, "reg.example", "team/app")
    store.remove(digest)
    assert store.places(digest, "reg.example") == ["team/app"]


def test_places_keep_only_the_latest(store):
    digest = sha256_digest(b"popular")
    for number in range(40):
        store.note_place(digest, "reg.example", f"team/app{number}")
    kept = store.places(digest, "reg.example")
    assert kept == [f"team/app{number}" for number in range(39, 23, -1)]


@pytest.mark.parametrize(
    ("registry", "repository"),
    [("reg example", "team/app"), ("reg.example", ""), ("reg.example", "team app")],
)
def test_a_place_that_cannot_be_recorded_is_refused(store, registry, repository):
    with pytest.raises(ValueError):
        store.note_place(sha256_digest(b"x"), registry, repository)


def test_a_damaged_places_record_is_read_past(store):
    digest = sha256_digest(b"x")
    store.note_place(digest, "reg.example", "team/app")
    path = store.root / "places" / "sha256" / digest.removeprefix("sha256:")
    path.write_text(path.read_text() + "garbage-without-space\n\n   \nreg.example \n")
    assert store.places(digest, "reg.example") == ["team/app"]


# --- last use, links, prune -----------------------------------------------------------------


def _age(path: Path, seconds: float) -> None:
    """Make a file look last used `seconds` ago."""
    import os
    import time

    when = time.time() - seconds
    os.utime(path, (when, when))


def test_a_lookup_marks_the_link_and_an_open_the_blob_as_used(store):
    digest = store.put(b"layer")
    store.set_link("layer", "key", digest)
    [link] = store.links("layer")
    _age(link.path, 3 * 86400)
    _age(store.path(digest), 3 * 86400)
    assert store.links("layer")[0].used < link.used - 86400  # listing touches nothing
    assert store.link("layer", "key") == digest
    assert store.links("layer")[0].used >= link.used
    old = store.path(digest).stat().st_mtime
    store.get(digest)
    assert store.path(digest).stat().st_mtime > old


def test_links_list_kinds_keys_and_targets(store):
    digest = store.put(b"x")
    store.set_link("layer", "abc", digest)
    store.set_link("gzip-test", digest, store.put(b"y"))
    store.set_link("image", "a%2Fb%3A1", digest)
    found = {(link.kind, link.key, link.target, link.derived) for link in store.links()}
    assert found == {
        ("layer", "abc", digest, False),
        ("gzip-test", digest, sha256_digest(b"y"), True),
        ("image", "a%2Fb%3A1", digest, False),
    }


def test_what_a_link_reaches_is_kept_and_the_rest_goes(store):
    tar = store.put(b"a tar")
    packed = store.put(b"its compressed form")
    store.set_link("gzip-test", tar, packed)
    listing = store.put(json.dumps([["", tar]]).encode())
    store.set_link("layer", "packages", listing)
    loose = store.put(b"an app layer of an earlier build")
    for digest in (tar, packed, listing, loose):
        _age(store.path(digest), 2 * 3600)
    done = store.prune()
    assert (done.blobs, done.freed, done.links) == (1, len(b"an app layer of an earlier build"), ())
    assert all(store.has(d) for d in (tar, packed, listing)) and not store.has(loose)


def test_a_blob_no_link_reaches_yet_is_kept_through_the_grace_period(store):
    fresh = store.put(b"just written by a running build")
    (store.root / "tmp").mkdir(exist_ok=True)
    partial = store.root / "tmp" / "blob-being-written"
    partial.write_bytes(b"half")
    assert store.prune().blobs == 0
    assert store.has(fresh) and partial.exists()
    _age(partial, 2 * 3600)
    _age(store.path(fresh), 2 * 3600)
    assert store.prune().blobs == 1
    assert not store.has(fresh) and not partial.exists()


@pytest.mark.parametrize("unused_days", [8, 30])
def test_prune_older_than_removes_links_unused_since_and_their_blobs(store, unused_days):
    old, recent = store.put(b"old layer"), store.put(b"recent layer")
    store.set_link("layer", "old", old)
    store.set_link("layer", "recent", recent)
    for link in store.links("layer"):
        if link.key == "old":
            _age(link.path, unused_days * 86400)
    for digest in (old, recent):
        _age(store.path(digest), 2 * 3600)
    done = store.prune(older_than=7 * 86400)
    assert [link.key for link in done.links] == ["old"]
    assert not store.has(old) and store.has(recent)
    assert store.link("layer", "recent") == recent


def test_links_to_missing_blobs_are_pruned_and_so_are_links_keyed_by_them(store):
    gone = store.put(b"gone")
    store.set_link("layer", "k", gone)
    store.set_link("gzip-test", gone, store.put(b"packed"))
    store.remove(gone)
    done = store.prune(grace=0)
    assert [link.key for link in done.links] == ["k"]
    assert store.links() == []


def test_prune_all_empties_the_store(store):
    store.set_link("layer", "k", store.put(b"kept until now"))
    store.put(b"fresh")
    done = store.prune(everything=True)
    assert done.blobs == 2 and store.digests() == [] and store.links() == []
