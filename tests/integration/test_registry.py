"""Login, push and pull against the real local registries (CNCF Distribution)."""

from __future__ import annotations

import base64
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


def test_an_unreachable_registry_says_so(cais, engine, docker_config):
    done = cais("pull", "127.0.0.1:1/nothing:1")
    assert done.returncode == 1
    assert "does not answer" in done.stderr


@pytest.mark.parametrize(("verb", "code"), [("pull", 1), ("run", 125)])
@pytest.mark.parametrize("case", ["not-found", "needs-a-login", "login-refused"])
def test_an_image_that_cannot_be_pulled_is_one_sentence(
    cais, engine, registry, auth_registry, docker_config, image_name, verb, code, case
):
    """`cais pull` and the pull of `cais run` (exit 125, as docker run's own failures)."""
    host = registry if case == "not-found" else auth_registry
    image = f"{host}/{image_name}-missing:404"
    if case == "login-refused":
        saved = base64.b64encode(f"{REGISTRY_USER}:not-the-password".encode()).decode()
        (docker_config / "config.json").write_text(json.dumps({"auths": {host: {"auth": saved}}}))
    done = cais(verb, "--name", image_name, image) if verb == "run" else cais(verb, image)
    assert done.returncode == code, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith(("error:", "hint:"))]
    expected = {
        "not-found": [
            f"error: `{image}` does not exist in the registry `{host}`",
            "hint: check the name and tag; `cais images` lists local images",
        ],
        "needs-a-login": [
            f"error: The registry `{host}` needs a login to pull `{image}`",
            f"hint: log in with `cais login {host}`, then try again",
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
