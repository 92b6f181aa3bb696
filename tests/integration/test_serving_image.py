"""`cais build REF`: an image that serves a saved model, built and run on the real engine."""

from __future__ import annotations

import os

import httpx
import pytest

from cais.image.sbom import PATH as SBOM
from tests.support import REGISTRY, free_port, post_when_up, text_model, unavailable

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
        tag,
        entrypoint=[
            "sh",
            "-c",
            "find /usr/local/lib -type d -name tests -not -path '*/pip/*' | wc -l",
        ],
        remove=True,
    )  # the base image's own pip is the base's (docs/design.md)
    assert leftover.decode().strip() == "0"  # the packages' own test suites were left out
    layers = [h for h in engine.api.history(tag) if h.get("Size", 0) > 0]  # newest first
    assert layers[0]["CreatedBy"] == f"cais: SBOM at {SBOM}"  # the packages' list on top
    assert "model products:1 in /model" in layers[1]["CreatedBy"]  # the model under it

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


def _flip_a_byte(file) -> None:
    data = bytearray(file.read_bytes())
    data[len(data) // 2] ^= 0x01
    file.write_bytes(bytes(data))


def _truncate(file) -> None:
    file.write_bytes(file.read_bytes()[:-1])


def _remove(file) -> None:
    file.unlink()


@pytest.mark.parametrize("damage", [_flip_a_byte, _truncate, _remove])
def test_a_damaged_bundle_is_refused_before_any_build(cais, engine, tmp_path, image_name, damage):
    import cais as cais_api
    from cais.bundle.store import ModelStore

    home = tmp_path / "cais-home"
    cais_api.save_model(text_model(), "products", input_example=["livro azul"], home=home)
    damage(ModelStore(home).get("products:1").artifact)
    done = cais("build", "products:1", "-t", f"{image_name}:1", env={"CAIS_HOME": str(home)})
    assert done.returncode == 1, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines[0].startswith("error: ") and "products:1" in lines[0], lines
    assert all(line.startswith(("error:", "hint:")) for line in lines), lines  # no build output
    assert done.stdout == ""
    assert not engine.images.list(name=image_name)


PREDICTORS = '''
import socket
from pathlib import Path

import cais


class Sturdy(cais.Predictor):
    def predict(self, batch):
        return [len(text) for text in batch]


class Fragile(cais.Predictor):
    """Answers only beside its marker file: here, but not inside an image."""

    def predict(self, batch):
        if not Path(__file__).with_name("works-here").exists():
            raise RuntimeError("the marker file is missing")
        return [len(text) for text in batch]


class Online(cais.Predictor):
    """Needs a route out as it predicts (a UDP connect sends nothing, but needs a route)."""

    def predict(self, batch):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 53))
        return [len(text) for text in batch]
'''

SAVE = """
import sys

import cais
import predictors

for version, kind in enumerate(sys.argv[2:], start=1):
    model = getattr(predictors, kind)()
    cais.save_model(model, sys.argv[1], str(version), input_example=["abc"])
"""


def _save(tmp_path, name: str, *kinds: str):
    """Save one version of `name` per predictor class of PREDICTORS, in a CAIS_HOME of the
    test's own, from a folder with the marker file; returns that home and the folder."""
    import subprocess
    import sys

    home = tmp_path / "cais-home"
    code = tmp_path / "code"
    code.mkdir()
    (code / "predictors.py").write_text(PREDICTORS)
    (code / "works-here").write_text("")
    (code / "save.py").write_text(SAVE)
    saved = subprocess.run(
        [sys.executable, "save.py", name, *kinds],
        cwd=code,
        env={**os.environ, "CAIS_HOME": str(home)},
        capture_output=True,
        text=True,
    )
    assert saved.returncode == 0, saved.stderr
    return home, code


@pytest.mark.parametrize("builder", ["buildkit", "classic", "oci"])
def test_an_image_whose_model_fails_its_check_is_not_kept(
    tmp_path, cais, engine, base_image, image_name, ca_certs, layer_cache, builder
):
    from cais.builders.buildkit import find_buildkit_cli

    if builder == "buildkit" and find_buildkit_cli() is None:
        unavailable("no docker CLI that can build with BuildKit")
    home, _ = _save(tmp_path, image_name, "Sturdy", "Fragile")
    env = {"CAIS_HOME": str(home), "CAIS_CACHE": str(layer_cache)}
    if builder == "oci":  # the base image from the registry's stand-in of Docker Hub
        env["CAIS_BASE_REGISTRY"] = REGISTRY
    tag = f"{image_name}:serving"
    certs = [a for c in ca_certs for a in ("--ca-cert", str(c))]
    certs += ["--builder", builder]

    good = cais("build", f"{image_name}:1", "-t", tag, *certs, env=env, cwd=tmp_path)
    assert good.returncode == 0, good.stderr
    kept = engine.images.get(tag).id

    broken = cais("build", f"{image_name}:2", "-t", tag, *certs, env=env, cwd=tmp_path)
    _failed_its_check(broken, f"{image_name}:2", "the marker file is missing")
    # The tag still names the image that passed; the one that failed is gone, and so are the
    # classic builder's step images that only it used (they carry the same labels).
    assert engine.images.get(tag).id == kept
    labelled = engine.images.list(filters={"label": f"dev.cais.model.name={image_name}"})
    assert [image.id for image in labelled] == [kept]


def test_a_model_that_reaches_out_as_it_predicts_passes_the_check(
    tmp_path, cais, engine, base_image, image_name, ca_certs, layer_cache
):
    """The check runs with the network a served model has: a model that calls a service as it
    predicts is proved as it will run (a check with no network would refuse it for good)."""
    import subprocess
    import sys

    home, code = _save(tmp_path, image_name, "Online")
    here = subprocess.run(
        [sys.executable, "-c", "import predictors; print(predictors.Online().predict(['abc']))"],
        cwd=code,
        capture_output=True,
        text=True,
    )
    assert here.stdout == "[3]\n", here.stderr
    env = {"CAIS_HOME": str(home), "CAIS_CACHE": str(layer_cache), "CAIS_BASE_REGISTRY": REGISTRY}
    certs = [a for c in ca_certs for a in ("--ca-cert", str(c))]
    out = tmp_path / "online.tar"
    built = cais(
        "build", f"{image_name}:1", "--output", f"tar:{out}", *certs, "--builder", "oci",
        env=env, cwd=tmp_path,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    assert "its example predicted in the image, in the Docker Engine" in built.stderr
    assert out.is_file()


def _failed_its_check(result, reference: str, why: str) -> None:
    """The build failed with the proof's sentence, the model's own words among its log lines."""
    assert result.returncode == 1
    assert (
        f"error: The model `{reference}` does not work inside the image built for it, so the "
        "image was not kept" in result.stderr
    )
    assert why in result.stderr
    assert "Traceback" not in result.stderr
