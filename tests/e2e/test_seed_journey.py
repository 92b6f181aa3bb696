"""The course's journey, as the README tells it (tests/e2e/readme.py): init → dockerfile →
build → run → login → build → push; then what follows it: rmi → pull → run. A wrong password
first, which must leave no login behind."""

from __future__ import annotations

import json

import docker.errors
import pytest

from tests.e2e.readme import SEED, readme_block, replaced
from tests.support import REGISTRY_PASSWORD, REGISTRY_USER

pytestmark = [pytest.mark.engine, pytest.mark.registry, pytest.mark.slow]


def test_seed_journey(shell, engine, base_image, auth_registry, docker_config, image_name):
    config = docker_config / "config.json"
    wrong = shell.run(
        f"cais login {auth_registry} -u {REGISTRY_USER} --password-stdin <<< not-the-password",
        check=False,
    )
    assert wrong.returncode == 1
    assert "refused" in wrong.stderr
    assert not config.exists()

    lines = replaced(
        readme_block(SEED),
        [
            ("cais login -u USER", f"cais login {auth_registry} -u {REGISTRY_USER}"),
            (" hello:0.1.0", f" {image_name}:0.1.0"),
            ("USER/", f"{auth_registry}/{image_name}/"),
        ],
    )
    (shell.folder / "token.txt").write_text(REGISTRY_PASSWORD)
    init, dockerfile, build, run, login, publish = (shell.run(line) for line in lines)

    assert (shell.folder / "hello" / "cais.yaml").is_file()
    assert dockerfile.stdout.startswith("# Dockerfile for hello")
    assert "FROM python:3.11-slim" in dockerfile.stdout
    assert build.stdout.strip() == f"{image_name}:0.1.0"
    assert run.stdout.splitlines()[0] == "Hello, Ana!"
    output = shell.folder / "output"
    assert (output / "greeting.txt").read_text().startswith("Hello, Ana!")
    assert auth_registry in json.loads(config.read_text())["auths"]
    image = f"{auth_registry}/{image_name}/hello:0.1.0"
    *_, pushed = publish.stdout.split()
    assert pushed.startswith(image.rpartition(":")[0] + "@sha256:"), pushed
    digest = pushed.rpartition("@")[2]

    local_id = engine.images.get(image).id
    shell.run(f"cais rmi {image}")
    with pytest.raises(docker.errors.ImageNotFound):
        engine.images.get(image)
    pull = shell.run(f"cais pull {image}")
    assert digest in pull.stderr  # read by cais's client, loaded into the engine
    assert engine.images.get(image).id == local_id
    again = shell.run(f"cais run --rm -e NAME=Ana -v ./output:/data {image}")
    assert again.stdout.splitlines()[0] == "Hello, Ana!"
