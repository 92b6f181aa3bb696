"""Login, push and pull against the real local registries (CNCF Distribution): images the
engine holds are pushed by the engine; what cais built or pulled, by cais's own client."""

from __future__ import annotations

import base64
import json
import re
import uuid
from pathlib import Path

import pytest

from cais.registry.client import RegistryClient
from cais.registry.reference import parse_reference
from tests.support import REGISTRY_PASSWORD, REGISTRY_USER

pytestmark = [pytest.mark.engine, pytest.mark.registry]

NOWHERE = "unix:///nowhere/docker.sock"


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, registry: str) -> Path:
    """A cache of the test's own; base images come from the local registry."""
    monkeypatch.setenv("CAIS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CAIS_BASE_REGISTRY", registry)
    return tmp_path / "cache"


def _build(cais, folder: Path, tag: str) -> str:
    """Build a project (made if missing) with no packages to install, with no engine (the
    image goes to a tarball); returns its digest."""
    if not folder.exists():
        assert cais("init", str(folder)).returncode == 0
        (folder / "requirements.txt").unlink()
        (folder / "script.py").write_text("print('hello')\n")
    done = cais(
        "build",
        str(folder),
        "--builder",
        "oci",
        "--output",
        f"tar:{folder}.tar",
        "-t",
        tag,
        env={"DOCKER_HOST": NOWHERE},
    )
    assert done.returncode == 0, done.stderr
    return re.search(r"digest\s+(sha256:[0-9a-f]{64})", done.stderr)[1]


def _in_registry(reference: str) -> str | None:
    ref = parse_reference(reference)
    with RegistryClient(ref.registry) as client:
        return client.manifest_digest(ref.repository, ref.tag or "latest")


def _tagged(engine, base_image: str, reference: str) -> str:
    repository, _, tag = reference.rpartition(":")
    assert engine.images.get(base_image).tag(repository, tag)
    return reference


def test_a_wrong_password_is_refused_and_nothing_is_saved(cais, auth_registry, docker_config):
    config = docker_config / "config.json"
    config.write_text(json.dumps({"auths": {}, "psFormat": "table {{.Names}}"}))
    before = config.read_bytes()
    done = cais("login", auth_registry, "-u", REGISTRY_USER, "--password-stdin", input="wrong\n")
    assert done.returncode == 1
    assert f"refused the username or password for `{REGISTRY_USER}`" in done.stderr
    assert "wrong" not in done.stderr
    assert config.read_bytes() == before


def test_login_saves_where_docker_reads_it(cais, auth_registry, docker_config):
    done = cais(
        "login", auth_registry, "-u", REGISTRY_USER, "--password-stdin", input=REGISTRY_PASSWORD
    )
    assert done.returncode == 0, done.stderr
    saved = json.loads((docker_config / "config.json").read_text())
    assert auth_registry in saved["auths"]
    assert (docker_config / "config.json").stat().st_mode & 0o777 == 0o600
    out = cais("logout", auth_registry)
    assert out.returncode == 0
    assert auth_registry not in json.loads((docker_config / "config.json").read_text())["auths"]


def test_push_without_login_says_to_log_in(
    cais, engine, base_image, auth_registry, docker_config, image_name
):
    reference = _tagged(engine, base_image, f"{auth_registry}/{image_name}:1")
    done = cais("push", reference)
    assert done.returncode == 1
    assert f"cais login {auth_registry}" in done.stderr
    assert "Traceback" not in done.stderr


def test_push_rmi_pull_gives_the_same_image(
    cais, engine, base_image, auth_registry, docker_config, image_name
):
    reference = _tagged(engine, base_image, f"{auth_registry}/{image_name}:1")
    login = cais(
        "login", auth_registry, "-u", REGISTRY_USER, "--password-stdin", input=REGISTRY_PASSWORD
    )
    assert login.returncode == 0, login.stderr
    pushed = cais("push", reference)
    assert pushed.returncode == 0, pushed.stderr
    digest = pushed.stdout.strip().rpartition("@")[2]
    assert digest.startswith("sha256:")
    image_id = engine.images.get(reference).id

    assert cais("rmi", reference).returncode == 0
    pulled = cais("pull", reference)
    assert pulled.returncode == 0, pulled.stderr
    assert engine.images.get(reference).id == image_id
    assert digest in pulled.stderr  # the registry's digest of what the engine pushed


def test_an_unreachable_registry_says_so(cais, engine, docker_config):
    done = cais("pull", "127.0.0.1:1/nothing:1")
    assert done.returncode == 1
    assert "does not answer" in done.stderr


@pytest.mark.parametrize(("verb", "code"), [("pull", 1), ("run", 125)])
@pytest.mark.parametrize("case", ["not-found", "needs-a-login", "login-refused"])
def test_an_image_that_cannot_be_pulled_is_one_sentence(
    cais, engine, registry, auth_registry, docker_config, image_name, verb, code, case
):
    """`cais pull` (through cais's client) and the pull of `cais run` (through the engine,
    exit 125 as docker run's own failures)."""
    host = registry if case == "not-found" else auth_registry
    image = f"{host}/{image_name}-missing:404"
    if case == "login-refused":
        saved = base64.b64encode(f"{REGISTRY_USER}:not-the-password".encode()).decode()
        (docker_config / "config.json").write_text(json.dumps({"auths": {host: {"auth": saved}}}))
    done = cais(verb, "--name", image_name, image) if verb == "run" else cais(verb, image)
    assert done.returncode == code, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith(("error:", "hint:"))]
    engine_said = verb == "run"
    expected = {
        "not-found": [
            f"error: `{image}` does not exist in the registry `{host}`",
            "hint: check the name and tag"
            + ("; `cais images` lists local images" if engine_said else ""),
        ],
        "needs-a-login": [
            f"error: The registry `{host}` needs a login to pull "
            + (f"`{image}`" if engine_said else f"`{image_name}-missing`"),
            f"hint: log in with `cais login {host}`" + (", then try again" if engine_said else ""),
        ],
        "login-refused": [
            f"error: The registry `{host}` refused the username or password for `{REGISTRY_USER}`",
            f"hint: log in again with `cais login {host}`; check them (Docker Hub wants an access "
            "token, not the account password, when two-factor authentication is on)",
        ],
    }
    assert lines == expected[case]
    assert "http" not in done.stderr and "Traceback" not in done.stderr
    assert not engine.containers.list(all=True, filters={"name": f"^/{image_name}$"})


# --- what cais built or pulled: pushed by cais's client, no engine needed -------------------


def test_what_cais_built_is_pushed_with_no_engine(cais, registry, tmp_path, image_name):
    tag = f"{registry}/{image_name}:1"
    digest = _build(cais, tmp_path / "app", tag)
    for attempt in ("first", "again"):  # again: the registry has every blob already
        done = cais("push", tag, env={"DOCKER_HOST": NOWHERE})
        assert done.returncode == 0, (attempt, done.stderr)
        assert done.stdout.strip() == f"{registry}/{image_name}@{digest}"
        assert f"Pushed `{tag}` to {registry} ({digest})" in done.stderr
    assert _in_registry(tag) == digest


@pytest.mark.parametrize("case", ["needs-a-login", "login-refused", "logged-in"])
def test_a_push_to_a_registry_with_a_login_names_the_push(
    cais, auth_registry, docker_config, tmp_path, image_name, case
):
    tag = f"{auth_registry}/{image_name}:1"
    digest = _build(cais, tmp_path / "app", tag)
    password = {"login-refused": "not-the-password", "logged-in": REGISTRY_PASSWORD}.get(case)
    if password:
        saved = base64.b64encode(f"{REGISTRY_USER}:{password}".encode()).decode()
        (docker_config / "config.json").write_text(
            json.dumps({"auths": {auth_registry: {"auth": saved}}})
        )
    done = cais("push", tag, env={"DOCKER_HOST": NOWHERE})
    if case == "logged-in":
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip().endswith(digest)
        return
    lines = [line for line in done.stderr.splitlines() if line.startswith(("error:", "hint:"))]
    assert done.returncode == 1 and "Traceback" not in done.stderr
    if case == "needs-a-login":
        assert lines == [
            f"error: The registry `{auth_registry}` needs a login to push to `{image_name}`",
            f"hint: log in with `cais login {auth_registry}`",
        ]
    else:
        assert lines[0] == (
            f"error: The registry `{auth_registry}` refused the username or password for "
            f"`{REGISTRY_USER}`"
        )
        assert lines[1].startswith(f"hint: log in again with `cais login {auth_registry}`; ")
        assert "not-the-password" not in done.stderr


@pytest.mark.parametrize("where", ["no engine", "engine"])
def test_a_push_of_an_image_nobody_holds_is_one_sentence(cais, engine, registry, where):
    tag = f"{registry}/cais-test-{uuid.uuid4().hex[:10]}:1"
    env = {"DOCKER_HOST": NOWHERE} if where == "no engine" else {}
    done = cais("push", tag, env=env)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith(("error:", "hint:"))]
    if where == "no engine":
        assert lines[0] == (
            f"error: `{tag}` is not an image cais built or pulled, and no Docker Engine "
            f"answers at `{NOWHERE}` to push it from"
        )
    else:
        assert lines[0] == (
            f"error: `{tag}` is neither an image cais built or pulled nor one the Docker "
            "Engine holds"
        )
    assert lines[1] == f"hint: build it with `cais build -t {tag}`" + (
        ", or start the Docker Engine"
        if where == "no engine"
        else f", or name it with `cais tag IMAGE {tag}`"
    )
    assert _in_registry(tag) is None


def test_a_push_to_a_registry_that_does_not_answer_says_so(cais, tmp_path):
    tag = f"127.0.0.1:1/cais-test-{uuid.uuid4().hex[:10]}:1"
    _build(cais, tmp_path / "app", tag)
    done = cais("push", tag, env={"DOCKER_HOST": NOWHERE})
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "error: The registry `127.0.0.1:1` does not answer" in done.stderr


def test_a_pulled_image_is_in_the_engine_and_pushed_again_with_no_engine(
    cais, engine, registry, tmp_path, monkeypatch, image_name
):
    tag = f"{registry}/{image_name}:1"
    digest = _build(cais, tmp_path / "app", tag)
    assert cais("push", tag, env={"DOCKER_HOST": NOWHERE}).returncode == 0
    monkeypatch.setenv("CAIS_CACHE", str(tmp_path / "another-cache"))
    pulled = cais("pull", tag)
    assert pulled.returncode == 0, pulled.stderr
    assert digest in pulled.stderr
    loaded = engine.images.get(tag)
    assert loaded.attrs["Config"]["Cmd"][-1].endswith("script.py")
    pushed = cais("push", tag, env={"DOCKER_HOST": NOWHERE})  # known to cais since the pull
    assert pushed.returncode == 0, pushed.stderr
    assert pushed.stdout.strip().endswith(digest)


def test_a_damaged_cache_entry_is_shown_pruned_and_rebuilt(cais, tmp_path, cache, registry):
    tag = f"{registry}/cais-test-{uuid.uuid4().hex[:10]}:1"
    digest = _build(cais, tmp_path / "app", tag)
    links = [p for p in (cache / "index" / "layer").iterdir() if p.is_file()]
    [user] = [p.read_text() for p in links]  # the only layer of the cache: the user's
    blob = cache / "blobs" / "sha256" / user.removeprefix("sha256:")
    blob.write_bytes(blob.read_bytes()[:-1] + b"!")
    listed = cais("cache", "ls", "--check", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    states = {(r["kind"], r["state"]) for r in json.loads(listed.stdout)}
    # the image keeps its compressed copy of the layer, so it can still be pushed
    assert states == {("layer", "damaged"), ("image", "ok")}
    assert not blob.exists()  # found damaged, so removed: never used
    pruned = cais("cache", "prune")
    assert pruned.returncode == 0, pruned.stderr
    assert "removed layer user app (1000:1000) and its home (missing)" in pruned.stderr
    assert _build(cais, tmp_path / "app", tag) == digest  # rebuilt, to the same bytes
    assert blob.exists()
    listed = cais("cache", "ls", "--format", "json")
    assert {r["state"] for r in json.loads(listed.stdout)} == {"ok"}


def test_a_pull_for_a_platform_the_image_lacks_is_one_sentence(cais, engine, registry):
    image = f"{registry}/library/python:3.11-slim"  # the stand-in: linux/amd64 and linux/arm64
    done = cais("pull", "--platform", "linux/s390x", image)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith(("error:", "hint:"))]
    assert lines[0].startswith(f"error: `{image}` has no `linux/s390x` variant (it has ")
    assert "`linux/arm64/v8`" in lines[0] and "`linux/amd64`" in lines[0]
    assert lines[1:] == ["hint: choose one of those platforms with `--platform`, or another image"]


def test_a_pull_of_a_single_platform_image_for_another_is_one_sentence(
    cais, registry, tmp_path, image_name
):
    image = f"{registry}/{image_name}:1"
    _build(cais, tmp_path / "app", image)
    assert cais("push", image).returncode == 0  # a plain manifest, for this machine's platform
    done = cais("pull", "--platform", "linux/s390x", image)
    lines = [line for line in done.stderr.splitlines() if line.startswith(("error:", "hint:"))]
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith(f"error: `{image}` is an image for `linux/")
    assert lines[0].endswith("`, not `linux/s390x`")
    assert lines[1:] == ["hint: choose its platform with `--platform`, or another image"]


def test_a_name_cais_tag_gives_another_image_is_pushed_from_the_engine(
    cais, engine, base_image, registry, tmp_path, image_name
):
    tag = f"{registry}/{image_name}:1"
    built = _build(cais, tmp_path / "app", tag)
    assert cais("tag", base_image, tag).returncode == 0  # the name now means the base image
    done = cais("push", tag)
    assert done.returncode == 0, done.stderr
    pushed = done.stdout.strip().rpartition("@")[2]
    assert pushed != built and _in_registry(tag) == pushed
    assert engine.images.get(tag).id == engine.images.get(base_image).id


def test_an_image_built_only_for_the_engine_is_pushed_with_no_engine(
    cais, engine, registry, tmp_path, image_name
):
    """Its layers were written as tars (the engine loads tars): the push compresses them."""
    tag = f"{registry}/{image_name}:1"
    folder = tmp_path / "app"
    _build(cais, folder, f"{registry}/{image_name}:made")  # makes the project
    built = cais("build", str(folder), "--builder", "oci", "-t", tag)
    assert built.returncode == 0, built.stderr
    done = cais("push", tag, env={"DOCKER_HOST": NOWHERE})
    assert done.returncode == 0, done.stderr
    digest = done.stdout.strip().rpartition("@")[2]
    assert _in_registry(tag) == digest
    ref = parse_reference(tag)
    with RegistryClient(registry) as client:
        manifest = client.get_manifest(ref.repository, "1").data
    assert manifest["config"]["digest"] == engine.images.get(tag).id
