"""cais.image.cache and `cais cache ls | prune`: what the cache holds, and trimming it."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cais.cli import app
from cais.cli.cache import parse_age
from cais.errors import CaisError
from cais.image.archive import File, write_layer
from cais.image.blobs import BlobStore
from cais.image.cache import inventory, prune
from cais.image.image import append_layers, canonical_json, empty
from cais.image.local import lookup, remember
from cais.image.platform import Platform
from tests.support import assert_one_error

WHERE = "Python 3.11 on linux/amd64 (uv)"


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> BlobStore:
    monkeypatch.setenv("CAIS_CACHE", str(tmp_path / "cache"))
    return BlobStore()


def _layer(store, name: str, text: str):
    return write_layer({name: File(text.encode())}, store=store, created=1, compression=None)


def _built(store) -> dict:
    """What a build leaves, as the OCI builder writes it: a base layer, a user layer and
    package layers in the layer cache, an app layer, and the image recorded by its tag."""
    base = _layer(store, "etc/os-release", "debian")
    user = _layer(store, "etc/passwd", "app:x:1000")
    numpy = _layer(store, "site-packages/numpy/__init__.py", "numpy")
    small = _layer(store, "site-packages/six.py", "six")
    app = _layer(store, "app/script.py", "print()")
    store.set_link("layer", "user-key", user.diff_id)
    listing = canonical_json([["", small.diff_id], ["numpy", numpy.diff_id]])
    store.set_link("layer", "packages-key", store.put(listing))
    image = append_layers(
        append_layers(empty(Platform.parse("linux/amd64")), [base], created_by=["debian"]),
        [user, small, numpy, app],
        created_by=[
            "cais: user app (1000:1000) and its home",
            f"cais: packages for {WHERE}",
            f"cais: package numpy for {WHERE}",
            "cais: COPY . /app",
        ],
    )
    remember(store, ["shop:1"], image)
    return {"image": image, "user": user, "numpy": numpy, "app": app, "base": base}


def _age(path: Path, seconds: float) -> None:
    when = time.time() - seconds
    os.utime(path, (when, when))


def _age_all(store, seconds: float) -> None:
    for path in (store.root / "blobs").rglob("*"):
        if path.is_file():
            _age(path, seconds)


def test_entries_are_described_by_what_made_them(store):
    made = _built(store)
    found = inventory(store)
    described = {(e.kind, e.what, e.state) for e in found.entries}
    assert described == {
        ("image", "`shop:1` (linux/amd64: 1 base layer, 4 of cais)", "ok"),
        ("layer", "user app (1000:1000) and its home", "ok"),
        ("layer", f"packages for {WHERE}, numpy in layers of their own", "ok"),
    }
    [image] = [e for e in found.entries if e.kind == "image"]
    sizes = [store.size(layer.diff_id) for layer in made["image"].layers]
    assert image.size >= sum(sizes)
    assert found.blobs == len(store.digests()) and found.loose == 0


def test_layers_no_recorded_image_uses_are_still_listed(store):
    layer = _layer(store, "x", "y")
    store.set_link("layer", "k", layer.diff_id)
    listing = canonical_json([["", layer.diff_id], ["scipy", layer.diff_id]])
    store.set_link("layer", "p", store.put(listing))
    assert {(e.what, e.state) for e in inventory(store).entries} == {
        ("a layer no image cais holds uses now", "ok"),
        ("packages, scipy in layers of their own (no image cais holds uses them now)", "ok"),
    }


def test_a_damaged_layer_is_shown_pruned_and_not_used_again(store):
    made = _built(store)
    user = made["user"].diff_id
    store.path(user).write_bytes(b"flipped bits")
    assert {e.state for e in inventory(store).entries} == {"ok"}  # not read without --check
    checked = {e.what: e.state for e in inventory(store, check=True).entries}
    assert checked["user app (1000:1000) and its home"] == "damaged"
    assert checked["`shop:1`"] == "damaged"  # an image of it: no longer whole
    assert not store.has(user)  # a damaged blob is removed as soon as it is found
    done = prune(store, grace=0)
    assert sorted(e.kind for e in done.entries) == ["image", "layer"]
    assert store.link("layer", "user-key") is None and lookup(store, "shop:1") is None
    assert store.link("layer", "packages-key") is not None  # what was whole stays


@pytest.mark.parametrize("gone", ["numpy", "app", "base"])
def test_an_entry_with_a_missing_blob_is_shown_missing_and_pruned(store, gone):
    made = _built(store)
    store.remove(made[gone].diff_id)
    states = {e.kind: e.state for e in inventory(store).entries if e.state != "ok"}
    assert states["image"] == "missing"
    assert (states.get("layer") == "missing") == (gone == "numpy")
    prune(store, grace=0)
    assert all(e.state == "ok" for e in inventory(store).entries)
    assert lookup(store, "shop:1") is None


def test_prune_older_than_keeps_what_was_used_since(store):
    made = _built(store)
    _age_all(store, 30 * 86400)
    for link in store.links("layer"):
        _age(link.path, 30 * 86400)
    assert lookup(store, "shop:1") is not None  # used today
    [listing] = [link.target for link in store.links("layer") if link.key == "packages-key"]
    done = prune(store, older_than=7 * 86400)
    assert sorted(e.what.split(" ")[0] for e in done.entries) == ["packages", "user"]
    assert lookup(store, "shop:1") is not None  # and its blobs with it
    assert store.has(made["numpy"].diff_id)  # the image it is in was used
    assert not store.has(listing) and done.blobs == 1  # only the old entry named it


def test_prune_removes_the_app_layers_of_earlier_builds_only_after_the_grace(store):
    first = _built(store)
    remember(store, ["shop:1"], empty(Platform.parse("linux/amd64")))  # the tag moved on
    assert prune(store).blobs == 0  # all of it is fresh: a build may be writing it
    _age_all(store, 2 * 3600)
    done = prune(store)
    assert not store.has(first["app"].diff_id) and done.freed > 0
    assert store.link("layer", "user-key") == first["user"].diff_id


# --- the commands ------------------------------------------------------------------------------


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_cache_ls_lists_entries_as_a_table_and_as_json(store, runner):
    _built(store)
    table = runner.invoke(app, ["cache", "ls"])
    assert table.exit_code == 0, table.output
    assert "`shop:1`" in table.output and "user app (1000:1000) and its home" in table.output
    assert f"in `{store.root}`" in table.output
    listed = runner.invoke(app, ["cache", "ls", "--format", "json"])
    records = json.loads(listed.stdout)
    assert {r["kind"] for r in records} == {"image", "layer"}
    assert all(r["state"] == "ok" and r["size"] > 0 for r in records)


def test_cache_ls_check_shows_a_damaged_entry(store, runner):
    made = _built(store)
    store.path(made["user"].diff_id).write_bytes(b"oops")
    done = runner.invoke(app, ["cache", "ls", "--check", "--format", "json"])
    states = {r["what"]: r["state"] for r in json.loads(done.stdout)}
    assert states["user app (1000:1000) and its home"] == "damaged"


def test_cache_prune_says_what_it_removed_and_freed(store, runner):
    _built(store)
    done = runner.invoke(app, ["cache", "prune", "--all"])
    assert done.exit_code == 0, done.output
    assert "removed image `shop:1`" in done.output
    assert "Freed " in done.output and f"from `{store.root}`" in done.output
    assert store.digests() == [] and store.links() == []
    again = runner.invoke(app, ["cache", "prune"])
    assert again.exit_code == 0 and "Freed 0.0 MB (0 entries, 0 blobs)" in again.output


@pytest.mark.parametrize("text", ["7x", "d", "-1d", "7 days", "1.d", ""])
def test_an_age_that_is_no_duration_is_one_sentence(store, runner, text):
    output = assert_one_error(runner.invoke(app, ["cache", "prune", "--older-than", text]))
    assert f"error: `{text}` is not a duration" in output
    assert "hint: give a number and a unit: `30m`, `12h`, `7d`, `2w`" in output


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("30m", 1800), ("12h", 43200), ("7d", 604800), ("2w", 1209600), ("1.5h", 5400)],
)
def test_ages(text, seconds):
    assert parse_age(text) == seconds


def test_parse_age_refuses_nonsense():
    with pytest.raises(CaisError):
        parse_age("soon")
