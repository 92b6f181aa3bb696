"""The model journey with the `cais` command, as a user would: init a classifier → train →
serve (predict over HTTP) → build an image → run it → predict from the container → push →
rmi → pull → run → the same predictions."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import docker.errors
import httpx
import pytest

from tests.support import REGISTRY_PASSWORD, REGISTRY_USER, free_port

pytestmark = [pytest.mark.engine, pytest.mark.registry, pytest.mark.slow]

TITLES = ["boneca de pelúcia", "console nintendo", "batom vermelho", "livro de poesia"]


def _predict(port: int) -> list:
    for _ in range(150):
        try:
            answer = httpx.post(
                f"http://127.0.0.1:{port}/predict", json={"instances": TITLES}, timeout=2
            )
            if answer.status_code == 200:
                return answer.json()["predictions"]
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    pytest.fail(f"nothing answered on port {port}")


def test_model_journey(
    tmp_path, cais, engine, base_image, auth_registry, docker_config, image_name, ca_certs
):
    env = {"CAIS_HOME": str(tmp_path / "home")}
    project = tmp_path / "shop"
    assert cais("init", str(project), "--template", "classifier").returncode == 0
    trained = cais("train", str(project), env=env)
    assert trained.returncode == 0, trained.stderr
    assert "saved shop:1" in trained.stdout

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "cais", "serve", "shop", "--port", str(port)],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        served = _predict(port)
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert served == ["brinquedo", "game", "maquiagem", "livro"]

    image = f"{auth_registry}/{image_name}:1"
    certs = [a for c in ca_certs for a in ("--ca-cert", str(c))]
    built = cais("build", "shop:1", "-t", image, *certs, env=env)
    assert built.returncode == 0, built.stderr

    def run_and_predict() -> list:
        port = free_port()
        name = f"{image_name}-{port}"
        ran = cais("run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:8080", image)
        assert ran.returncode == 0, ran.stderr
        try:
            return _predict(port)
        finally:
            engine.containers.get(name).remove(force=True)

    assert run_and_predict() == served

    login = cais(
        "login", auth_registry, "-u", REGISTRY_USER, "--password-stdin", input=REGISTRY_PASSWORD
    )
    assert login.returncode == 0, login.stderr
    pushed = cais("push", image)
    assert pushed.returncode == 0, pushed.stderr
    local_id = engine.images.get(image).id
    assert cais("rmi", image).returncode == 0
    with pytest.raises(docker.errors.ImageNotFound):
        engine.images.get(image)
    pulled = cais("pull", image)
    assert pulled.returncode == 0, pulled.stderr
    assert engine.images.get(image).id == local_id
    assert run_and_predict() == served
