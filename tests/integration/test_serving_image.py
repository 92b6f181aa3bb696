"""`cais build REF`: an image that serves a saved model, built and run on the real engine."""

from __future__ import annotations

import httpx
import pytest

from tests.support import free_port, post_when_up, text_model

pytestmark = pytest.mark.engine


def test_a_saved_model_becomes_a_serving_image(
    tmp_path, cais, engine, base_image, image_name, ca_certs
):
    import cais as cais_api

    home = tmp_path / "cais-home"
    model = text_model()
    reference = cais_api.save_model(
        model, "products", input_example=["livro azul"], metrics={"accuracy": 1.0}, home=home
    )
    env = {"CAIS_HOME": str(home)}
    tag = f"{image_name}:1"
    certs = [a for c in ca_certs for a in ("--ca-cert", str(c))]
    deploy = tmp_path / "deploy"  # a cais.yaml whose kept contract the image must answer too
    deploy.mkdir()
    (deploy / "cais.yaml").write_text(
        "routes:\n  - {path: /predizer_categoria, input: descricao, output: categoria}\n"
    )
    built = cais("build", reference, "-t", tag, *certs, env=env, cwd=deploy)
    assert built.returncode == 0, built.stderr
    assert "load products:1 in the image and predict its example" in built.stderr

    image = engine.images.get(tag)
    config = image.attrs["Config"]
    assert config["User"] == "1000:1000"
    assert config["Labels"]["dev.cais.model.name"] == "products"
    assert config["Labels"]["dev.cais.model.metrics.accuracy"] == "1"
    assert config["Healthcheck"]["Test"][0] == "CMD"
    leftover = engine.containers.run(
        tag, entrypoint=["sh", "-c", "find /usr/local/lib -type d -name tests | wc -l"], remove=True
    )
    assert leftover.decode().strip() == "0"  # the packages' own test suites were pruned
    layers = [h for h in engine.api.history(tag) if h.get("Size", 0) > 0]  # newest first
    assert "model /model" in layers[0]["CreatedBy"]  # the model is the last layer

    port = free_port()
    ran = cais("run", "-d", "--name", image_name, "-p", f"127.0.0.1:{port}:8080", tag)
    assert ran.returncode == 0, ran.stderr
    try:
        answer = post_when_up(
            f"http://127.0.0.1:{port}/predict", {"instances": ["livro de bolo", "jogo de luta"]}
        )
        assert answer.json()["predictions"] == list(
            model.predict(["livro de bolo", "jogo de luta"])
        )
        assert httpx.get(f"http://127.0.0.1:{port}/v2/models/products").json()["versions"] == ["1"]
        kept = httpx.post(
            f"http://127.0.0.1:{port}/predizer_categoria", json={"descricao": "livro de bolo"}
        )
        assert kept.json() == {"categoria": "livro"}
    finally:
        engine.containers.get(image_name).remove(force=True)


def test_a_model_name_that_is_neither_folder_nor_saved(cais, engine, tmp_path):
    done = cais("build", "no-such-model", env={"CAIS_HOME": str(tmp_path)})
    assert done.returncode == 1
    assert "error: `no-such-model` is neither a folder here nor a saved model" in done.stderr
