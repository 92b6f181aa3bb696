"""The course's journey, run with the `cais` command as a user would:
init → dockerfile → build → run → login (wrong, then right) → push → rmi → pull → run."""

from __future__ import annotations

import json

import docker.errors
import pytest

from tests.support import REGISTRY_PASSWORD, REGISTRY_USER

pytestmark = [pytest.mark.engine, pytest.mark.registry, pytest.mark.slow]


def test_seed_journey(
    tmp_path, cais, engine, base_image, auth_registry, docker_config, image_name, ca_certs
):
    project = tmp_path / "hello"
    assert cais("init", str(project)).returncode == 0

    dockerfile = cais("dockerfile", str(project))
    assert dockerfile.returncode == 0
    assert dockerfile.stdout.startswith("# Dockerfile for hello")
    assert "FROM python:3.11-slim" in dockerfile.stdout

    image = f"{auth_registry}/{image_name}:0.1.0"
    build = cais(
        "build", str(project), "-t", image, *[a for c in ca_certs for a in ("--ca-cert", str(c))]
    )
    assert build.returncode == 0, build.stderr
    assert build.stdout.strip() == image

    output = tmp_path / "output"
    first = cais("run", "--rm", image, "-e", "NAME=Maria", "-v", f"{output}:/data")
    assert first.returncode == 0, first.stderr
    assert "Hello, Maria!" in first.stdout
    written = (output / "greeting.txt").read_text()
    assert written.startswith("Hello, Maria!")

    config = docker_config / "config.json"
    wrong = cais(
        "login", auth_registry, "-u", REGISTRY_USER, "--password-stdin", input="not-the-password"
    )
    assert wrong.returncode == 1
    assert "refused" in wrong.stderr
    assert not config.exists()

    login = cais(
        "login", auth_registry, "-u", REGISTRY_USER, "--password-stdin", input=REGISTRY_PASSWORD
    )
    assert login.returncode == 0, login.stderr
    assert auth_registry in json.loads(config.read_text())["auths"]

    push = cais("push", image)
    assert push.returncode == 0, push.stderr
    digest = push.stdout.strip().rpartition("@")[2]
    local_id = engine.images.get(image).id

    assert cais("rmi", image).returncode == 0
    with pytest.raises(docker.errors.ImageNotFound):
        engine.images.get(image)

    pull = cais("pull", image)
    assert pull.returncode == 0, pull.stderr
    pulled = engine.images.get(image)
    assert pulled.id == local_id
    assert any(d.endswith(digest) for d in pulled.attrs["RepoDigests"])

    second = cais("run", "--rm", image, "-e", "NAME=Maria", "-v", f"{output}:/data")
    assert second.returncode == 0, second.stderr
    assert second.stdout.splitlines()[0] == first.stdout.splitlines()[0] == "Hello, Maria!"
