"""The model journey, as the README tells it (tests/e2e/readme.py): init a classifier →
train → serve (predict over HTTP) → build an image → run it → predict from the container;
then what follows it: login → push → rmi → pull → run → the same predictions."""

from __future__ import annotations

import json

import docker.errors
import pytest

from tests.e2e.readme import MODEL, readme_block, replaced
from tests.support import REGISTRY_PASSWORD, REGISTRY_USER, free_port

pytestmark = [pytest.mark.engine, pytest.mark.registry, pytest.mark.slow]

PREDICT = """curl -d '{"instances": ["boneca de pano"]}' http://127.0.0.1:PORT/predict"""


def test_model_journey(shell, engine, base_image, auth_registry, docker_config, image_name):
    port = free_port()
    lines = replaced(
        readme_block(MODEL),
        [
            ("cais serve shop", f"cais serve shop --port {port}"),
            ("8080:8080", f"127.0.0.1:{port}:8080"),
            ("127.0.0.1:8080", f"127.0.0.1:{port}"),
            ("USER/", f"{auth_registry}/{image_name}/"),
        ],
    )
    said = shell.run_all(lines, port)
    served, contained = (json.loads(line) for line in said.splitlines() if line.startswith("{"))

    # From the folder above the project, `shop` is the project and the model it saved.
    assert "saved shop:1; serve it with `cais serve shop`" in said  # train.py's own words
    assert "next: `cais serve shop` serves it, `cais build shop` builds its image" in said
    assert "`shop` is a training project: taking its newest model `shop:1`" in said
    assert served["predictions"] == ["brinquedo"]
    assert contained == served

    image = f"{auth_registry}/{image_name}/shop:1"
    shell.stop()
    shell.run(
        f"cais login {auth_registry} -u {REGISTRY_USER} --password-stdin <<< {REGISTRY_PASSWORD}"
    )
    shell.run(f"cais push {image}")
    local_id = engine.images.get(image).id
    shell.run(f"cais rmi {image}")
    with pytest.raises(docker.errors.ImageNotFound):
        engine.images.get(image)
    shell.run(f"cais pull {image}")
    assert engine.images.get(image).id == local_id
    shell.start(f"cais run --rm -p 127.0.0.1:{port}:8080 {image}", port)
    again = shell.run(PREDICT.replace("PORT", str(port)))
    assert json.loads(again.stdout) == served
