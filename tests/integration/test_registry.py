"""Login, push and pull against the real local registries (CNCF Distribution)."""

from __future__ import annotations

import json

import pytest

from tests.support import REGISTRY_PASSWORD, REGISTRY_USER

pytestmark = [pytest.mark.engine, pytest.mark.registry]


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
    image = engine.images.get(reference)
    assert image.id == image_id
    assert any(d.endswith(digest) for d in image.attrs["RepoDigests"])


def test_pulling_a_missing_image_says_so(cais, engine, registry, docker_config):
    done = cais("pull", f"{registry}/cais-no-such-image:404")
    assert done.returncode == 1
    assert "does not exist" in done.stderr


def test_an_unreachable_registry_says_so(cais, engine, docker_config):
    done = cais("pull", "127.0.0.1:1/nothing:1")
    assert done.returncode == 1
    assert "does not answer" in done.stderr


def test_running_a_missing_local_image_is_pulled_or_explained(
    cais, engine, registry, docker_config
):
    done = cais("run", "--rm", f"{registry}/cais-no-such-image:404")
    assert done.returncode == 1
    assert "does not exist" in done.stderr
