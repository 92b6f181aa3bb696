"""The Python of an imported model is chosen among the base images the site can have: those the
real engine holds, then those a base registry serves (a registry of the test's own, started
from Debian's docker-registry, holding what the test puts there)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cais.bases import available_pythons
from cais.project import KNOWN_PYTHONS
from tests.support import free_port, run_cais, unavailable
from tests.unit.test_pickle_scan import OldLogistic, OldPipeline, _dump
from tests.unit.test_pins import FakeIndex

NOWHERE = "unix:///nonexistent.sock"


class Registry:
    """A Distribution registry on a free loopback port, with its storage in a folder."""

    def __init__(self, folder: Path) -> None:
        self.host = f"127.0.0.1:{free_port()}"
        config = folder / "config.yml"
        config.write_text(
            "version: 0.1\n"
            f"storage:\n  filesystem:\n    rootdirectory: {folder / 'storage'}\n"
            f"http:\n  addr: {self.host}\n"
        )
        self.process = subprocess.Popen(
            ["docker-registry", "serve", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def wait(self) -> None:
        for _ in range(100):
            try:
                if httpx.get(f"http://{self.host}/v2/").status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        pytest.fail(f"the registry at {self.host} did not start")

    def tag(self, repository: str, tag: str) -> None:
        """Put an image with no layers at `repository:tag`: only the tag is asked about."""
        base = f"http://{self.host}/v2/{repository}"
        config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {}}).encode()
        digest = "sha256:" + hashlib.sha256(config).hexdigest()
        started = httpx.post(f"{base}/blobs/uploads/")
        location = httpx.URL(base).join(started.headers["location"])
        location = location.copy_merge_params({"digest": digest})  # keeps its _state
        httpx.put(location, content=config).raise_for_status()
        kind = "application/vnd.docker.distribution.manifest.v2+json"
        manifest = {
            "schemaVersion": 2,
            "mediaType": kind,
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": len(config),
                "digest": digest,
            },
            "layers": [],
        }
        httpx.put(
            f"{base}/manifests/{tag}", json=manifest, headers={"Content-Type": kind}
        ).raise_for_status()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture
def base_registry(tmp_path, monkeypatch) -> Iterator[Registry]:
    if shutil.which("docker-registry") is None:
        unavailable("no docker-registry command (the Debian package docker-registry)")
    registry = Registry(tmp_path)
    try:
        registry.wait()
        monkeypatch.setenv("CAIS_BASE_REGISTRY", registry.host)
        yield registry
    finally:
        registry.stop()


def test_the_engine_s_base_images_are_found_first(engine, base_registry):
    held = {tag for image in engine.images.list(name="python") for tag in image.tags}
    expected = tuple(p for p in KNOWN_PYTHONS if f"python:{p}-slim" in held)
    if not expected:
        unavailable("the engine holds no python:X.Y-slim image (run scripts/test-infra)")
    base_registry.tag("library/python", "3.12-slim")
    bases = available_pythons(KNOWN_PYTHONS)
    assert set(expected) <= set(bases.pythons)
    assert "3.12" in bases.pythons  # not in the engine (or there too): the registry has it
    assert bases.asked[0] == "the Docker Engine"


def test_without_an_engine_the_base_registry_answers_with_docker_hub_paths(
    base_registry, monkeypatch
):
    monkeypatch.setenv("DOCKER_HOST", NOWHERE)
    base_registry.tag("library/python", "3.10-slim")
    base_registry.tag("library/python", "3.13")  # not a -slim image
    base_registry.tag("python", "3.11-slim")  # not Docker Hub's path
    bases = available_pythons(["3.9", "3.10", "3.11", "3.13"])
    assert bases.pythons == ("3.10",)
    assert bases.asked == ("the Docker Engine", f"`{base_registry.host}`")


def test_an_unreachable_base_registry_has_none(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", NOWHERE)
    monkeypatch.setenv("CAIS_BASE_REGISTRY", f"http://127.0.0.1:{free_port()}/")
    bases = available_pythons(["3.9", "3.11"])
    assert bases.pythons == ()
    assert bases.asked[1].startswith("`127.0.0.1:")


@pytest.fixture
def old_pickle(tmp_path) -> Path:
    model = OldPipeline(
        steps=[("clf", OldLogistic(C=1.0, _sklearn_version="0.24.2"))],
        _sklearn_version="0.24.2",
    )
    return _dump(tmp_path / "old.joblib", model, compress=3)


@pytest.fixture
def fake_index(monkeypatch) -> Iterator[str]:
    with FakeIndex() as index:
        monkeypatch.setenv("PIP_INDEX_URL", index.url)
        monkeypatch.setenv("UV_HTTP_RETRIES", "0")
        yield index.url


def _import(file: Path, tmp_path: Path, *extra: str):
    return run_cais("models", "import", str(file), "--name", "legacy", *extra,
                    env={"CAIS_HOME": str(tmp_path / "home")})  # fmt: skip


def test_a_site_with_some_base_images_gets_one_of_them_with_no_setting(
    old_pickle, tmp_path, base_registry, fake_index, monkeypatch
):
    monkeypatch.setenv("DOCKER_HOST", NOWHERE)
    monkeypatch.delenv("CAIS_PYTHONS", raising=False)
    for tag in ("3.9-slim", "3.11-slim"):
        base_registry.tag("library/python", tag)
    imported = _import(old_pickle, tmp_path)
    assert imported.returncode == 0, imported.stderr
    said = " ".join(imported.stderr.split())
    assert "Python 3.9: the newest of the base images this site has" in said
    assert "(`python:3.9-slim`, `python:3.11-slim`)" in said
    # CAIS_PYTHONS overrides what the site has.
    monkeypatch.setenv("CAIS_PYTHONS", "3.8,3.9")
    again = _import(old_pickle, tmp_path, "--version", "2")
    assert again.returncode == 0, again.stderr
    assert "Python 3.9: the newest of CAIS_PYTHONS" in " ".join(again.stderr.split())


@pytest.mark.parametrize("registry", ["empty", "unreachable"])
def test_no_base_image_anywhere_is_one_sentence(
    old_pickle, tmp_path, base_registry, fake_index, monkeypatch, registry
):
    monkeypatch.setenv("DOCKER_HOST", NOWHERE)
    monkeypatch.delenv("CAIS_PYTHONS", raising=False)
    host = base_registry.host if registry == "empty" else f"127.0.0.1:{free_port()}"
    monkeypatch.setenv("CAIS_BASE_REGISTRY", host)
    base_registry.tag("library/python", "3.8-slim")  # too old for the server
    refused = _import(old_pickle, tmp_path)
    assert refused.returncode == 1
    lines = refused.stderr.strip().splitlines()
    message = " ".join(" ".join(lines).split())
    assert message.startswith(
        "error: None of the base images `python:3.9-slim`, `python:3.10-slim`"
    )
    assert f"is in the Docker Engine or `{host}`" in message
    assert "hint: pull or load one" in message
    assert "CAIS_BASE_REGISTRY" in message and "CAIS_PYTHONS or --python" in message
    assert "Traceback" not in refused.stderr
    assert not (tmp_path / "home" / "models" / "legacy").exists()


def _project_requiring(folder: Path, requires: str) -> Path:
    folder.mkdir()
    (folder / "script.py").write_text("print('hi')\n")
    (folder / "requirements.txt").write_text("")
    (folder / "pyproject.toml").write_text(f'[project]\nrequires-python = "{requires}"\n')
    return folder


@pytest.mark.parametrize(
    ("requires", "held", "expected"),
    [
        ("<3.11", ["3.9-slim", "3.11-slim"], "3.9"),  # 3.10 fits, but this site has no base
        (">=3.9,<3.13", ["3.10-slim", "3.12-slim"], "3.12"),
        ("==3.11.*", ["3.11-slim"], "3.11"),
    ],
)
def test_a_project_s_requires_python_gets_a_base_image_the_site_has(
    tmp_path, base_registry, monkeypatch, requires, held, expected
):
    monkeypatch.setenv("DOCKER_HOST", NOWHERE)
    monkeypatch.delenv("CAIS_PYTHONS", raising=False)
    for tag in held:
        base_registry.tag("library/python", tag)
    project = _project_requiring(tmp_path / "app", requires)
    done = run_cais("dockerfile", str(project))
    assert done.returncode == 0, done.stderr
    assert f"FROM python:{expected}-slim" in done.stdout


def test_the_engine_s_base_image_serves_a_project_s_requires_python(
    tmp_path, engine, base_registry, monkeypatch
):
    held = {tag for image in engine.images.list(name="python") for tag in image.tags}
    if "python:3.9-slim" not in held:
        unavailable("the engine holds no python:3.9-slim (run scripts/test-infra)")
    monkeypatch.delenv("CAIS_PYTHONS", raising=False)
    project = _project_requiring(tmp_path / "app", "==3.9.*")  # the registry has none
    done = run_cais("dockerfile", str(project))
    assert done.returncode == 0, done.stderr
    assert "FROM python:3.9-slim" in done.stdout


@pytest.mark.parametrize("registry", ["empty", "unreachable"])
def test_a_project_s_requires_python_with_no_base_image_here_is_one_sentence(
    tmp_path, base_registry, monkeypatch, registry
):
    monkeypatch.setenv("DOCKER_HOST", NOWHERE)
    monkeypatch.delenv("CAIS_PYTHONS", raising=False)
    host = base_registry.host if registry == "empty" else f"127.0.0.1:{free_port()}"
    monkeypatch.setenv("CAIS_BASE_REGISTRY", host)
    base_registry.tag("library/python", "3.11-slim")  # not one it allows
    project = _project_requiring(tmp_path / "app", ">=3.13")
    for command in ("dockerfile", "build"):
        refused = (
            run_cais(command, str(project), "--builder", "oci")
            if command == "build"
            else (run_cais(command, str(project)))
        )
        assert refused.returncode == 1, refused.stderr
        message = " ".join(refused.stderr.split())
        assert message.startswith(
            "error: None of the base images `python:3.14-slim`, `python:3.13-slim` that "
            "`requires-python = '>=3.13'` allows is in the Docker Engine or "
            f"`{host}` hint: pull or load one (`docker pull python:3.14-slim`)"
        ), message
        assert "CAIS_PYTHONS" in message and "`python:` in cais.yaml" in message
        assert "Traceback" not in refused.stderr
