"""`cais build MODEL --builder oci`: a serving image assembled on this machine, proved before it
is kept, behaving as the Docker builder's image does; `cais build REF REF … -t IMAGE`: one image
serving several models, or one sentence saying why they cannot share one (real engine, real
registry, uv through this machine's proxy)."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from cais.image import sbom
from tests.support import (
    LABELS,
    REGISTRY,
    TITLES,
    engine_image_ids,
    engine_tags,
    free_port,
    post_when_up,
    text_model,
)

pytestmark = [pytest.mark.engine, pytest.mark.registry]

NOWHERE = {"DOCKER_HOST": "unix:///nowhere/docker.sock"}
_SAME = ("User", "Cmd", "ExposedPorts", "WorkingDir", "Healthcheck")


@pytest.fixture
def env(tmp_path, layer_cache) -> dict[str, str]:
    """A store of the test's own; the run's shared layer cache (a test about the cache, or
    that it stays untouched, passes one of its own)."""
    return {
        "CAIS_HOME": str(tmp_path / "home"),
        "CAIS_CACHE": str(layer_cache),
        "CAIS_BASE_REGISTRY": REGISTRY,
    }


def _own_cache(env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    return {**env, "CAIS_CACHE": str(tmp_path / "cache")}


def _save(env: dict[str, str], model=None) -> str:
    import cais as cais_api

    return cais_api.save_model(
        model or text_model(), "products", input_example=["livro azul"], home=env["CAIS_HOME"]
    )


def _layout_layers(folder: Path) -> list[str]:
    [entry] = json.loads((folder / "index.json").read_text())["manifests"]
    blob = folder / "blobs" / "sha256" / entry["digest"].removeprefix("sha256:")
    return [layer["digest"] for layer in json.loads(blob.read_text())["layers"]]


def _layer_files(folder: Path, digest: str) -> list[str]:
    with tarfile.open(folder / "blobs" / "sha256" / digest.removeprefix("sha256:")) as layer:
        return [member.name for member in layer if member.isfile()]


def test_the_oci_image_serves_as_the_docker_builder_s_does(
    cais, engine, base_image, image_name, container_name, proxy, env
):
    reference = _save(env)
    model = text_model()
    oci, docker = f"{image_name}:oci", f"{image_name}:docker"
    built = cais("build", reference, "-t", oci, "--builder", "oci", *proxy, env=env)
    assert built.returncode == 0, built.stderr
    assert "predicted in the image, in the Docker Engine" in built.stderr
    assert "Traceback" not in built.stderr
    other = cais("build", reference, "-t", docker, "--builder", "docker", *proxy, env=env)
    assert other.returncode == 0, other.stderr

    ours, theirs = (engine.images.get(t).attrs["Config"] for t in (oci, docker))
    for key in _SAME:
        assert ours[key] == theirs[key], key
    assert ours["Labels"] == {**theirs["Labels"], "org.opencontainers.image.version": "oci"}
    assert "PYTHONPATH=/opt/cais" in ours["Env"]
    assert ours["User"] == "1000:1000"
    listing = "ls /model /opt/cais/cais; find /usr/local/lib -path '*-packages/*' -not -path '*/pip/*' -name tests | wc -l"
    shown = engine.containers.run(oci, ["sh", "-c", listing], remove=True).decode()
    assert "cais-model.json" in shown and "server" in shown
    assert shown.split()[-1] == "0"  # the installed packages' test suites were left out

    port = free_port()
    engine.containers.run(
        oci, detach=True, name=container_name, ports={"8080/tcp": ("127.0.0.1", port)}
    )
    texts = ["livro de bolo", "jogo de luta"]
    answer = post_when_up(f"http://127.0.0.1:{port}/predict", {"instances": texts})
    assert answer.json()["predictions"] == list(model.predict(texts))
    container = engine.containers.get(container_name)
    for _ in range(60):  # the HEALTHCHECK answers once the server is ready
        container.reload()
        if container.attrs["State"]["Health"]["Status"] != "starting":
            break
        import time

        time.sleep(1)
    assert container.attrs["State"]["Health"]["Status"] == "healthy"


def test_auto_builds_a_saved_model_on_the_host_and_it_serves(
    cais, engine, base_image, image_name, container_name, proxy, env
):
    reference = _save(env)
    tag = f"{image_name}:auto"
    built = cais("build", reference, "-t", tag, *proxy, env=env)
    assert built.returncode == 0, built.stderr
    said = " ".join(built.stderr.split())
    assert "with oci in" in said and "Docker builder" not in said
    assert "predicted in the image, in the Docker Engine" in said
    history = [h.get("CreatedBy", "") for h in engine.api.history(tag)]
    assert any("model products:1 in /model" in line for line in history)
    # Only what serving imports is byte-compiled, as in the Docker builder's image.
    sklearn = "/usr/local/lib/python3.11/site-packages/sklearn"
    listing = f"ls {sklearn}/__pycache__ {sklearn}/linear_model/__pycache__ {sklearn}/experimental"
    shown = engine.containers.run(tag, ["sh", "-c", listing], remove=True).decode().split()
    assert any(name.startswith("pipeline.cpython-311") for name in shown)  # the model's
    assert any(name.startswith("_logistic.cpython-311") for name in shown)
    assert "__pycache__" not in shown  # nothing imports sklearn.experimental
    port = free_port()
    engine.containers.run(
        tag, detach=True, name=container_name, ports={"8080/tcp": ("127.0.0.1", port)}
    )
    texts = ["livro de bolo", "jogo de luta"]
    answer = post_when_up(f"http://127.0.0.1:{port}/predict", {"instances": texts})
    assert answer.json()["predictions"] == list(text_model().predict(texts))


def test_auto_hands_a_models_package_without_a_wheel_to_the_docker_builder(
    cais, engine, base_image, image_name, proxy, env
):
    import cais as cais_api

    # docopt 0.6.2 is published as a source distribution only; pip builds it in the image.
    reference = cais_api.save_model(
        text_model(),
        "products",
        input_example=["livro azul"],
        requirements=["docopt==0.6.2"],
        home=env["CAIS_HOME"],
    )
    tag = f"{image_name}:fallback"
    built = cais("build", reference, "-t", tag, *proxy, env=env)
    assert built.returncode == 0, built.stderr
    said = " ".join(built.stderr.split())
    assert "`docopt` has no wheel for Python 3.11" in said
    assert said.count("the Docker builder takes over") == 1 and "error:" not in said
    assert "with oci in" not in said
    ran = engine.containers.run(
        tag, ["python", "-c", "import docopt; print(docopt.__version__)"], remove=True
    )
    assert ran.decode().strip() == "0.6.2"


def test_a_package_without_a_wheel_written_to_a_file_stays_one_sentence(cais, proxy, env, tmp_path):
    import cais as cais_api

    # the Docker builder writes no file: under `auto` the sentence is the OCI builder's
    reference = cais_api.save_model(
        text_model(), "products", requirements=["docopt==0.6.2"], home=env["CAIS_HOME"]
    )
    out = tmp_path / "out"
    # found before the base image is read: neither a registry nor an engine is reachable
    nowhere = {**env, **NOWHERE, "CAIS_BASE_REGISTRY": f"127.0.0.1:{free_port()}"}
    said = _one_error(cais("build", reference, "--output", f"oci:{out}", *proxy, env=nowhere))
    assert "`docopt` has no wheel for Python 3.11" in said and "takes over" not in said
    assert not out.exists()


def test_with_no_engine_the_image_is_proved_in_a_scratch_root_and_cached_by_layer(
    cais, tmp_path, proxy, env
):
    import os

    if os.geteuid() != 0:
        pytest.skip("a scratch root needs root (chroot)")
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from tests.support import LABELS, TITLES

    first = _save(env)
    env = {**env, **NOWHERE}
    out = tmp_path / "one"
    built = cais("build", first, "--builder", "oci", "--output", f"oci:{out}", *proxy, env=env)
    assert built.returncode == 0, built.stderr
    assert "unpacked into a scratch root on this machine" in built.stderr
    again = cais(
        "build", first, "-v", "--builder", "oci", "--output", f"oci:{tmp_path / 'two'}",
        *proxy, env=env,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    said = [line for line in again.stderr.splitlines() if ": cached sha256:" in line]
    assert (
        len(said) >= 4 and ": built sha256:" not in again.stderr
    )  # user, packages, runtime, model
    assert _layout_layers(tmp_path / "two") == _layout_layers(out)  # what the cache gave

    retrained = make_pipeline(TfidfVectorizer(), LogisticRegression(C=0.5)).fit(TITLES, LABELS)
    second = _save(env, retrained)
    newer = cais(
        "build", second, "--builder", "oci", "--output", f"oci:{tmp_path / 'three'}",
        *proxy, env=env,
    )  # fmt: skip
    assert newer.returncode == 0, newer.stderr
    before, after = _layout_layers(out), _layout_layers(tmp_path / "three")
    # A new model version moves the model layer, and the SBOM on top of it, which names the
    # image's model and version; every layer below the model stays.
    assert len(before) == len(after) and before[:-2] == after[:-2]
    assert before[-2] != after[-2]
    assert _layer_files(tmp_path / "three", after[-1]) == [sbom.PATH.lstrip("/")]


def _one_error(done) -> str:
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert done.returncode == 1, done.stderr
    assert len(errors) == 1 and "Traceback" not in done.stderr, done.stderr
    return done.stderr


@pytest.mark.parametrize("requirement", ["pyyaml==5.3.1", "pyyaml==5.4.1"])
def test_a_package_with_no_wheel_for_the_target_is_named(cais, proxy, env, tmp_path, requirement):
    import cais as cais_api

    reference = cais_api.save_model(
        text_model(), "products", requirements=[requirement], home=env["CAIS_HOME"]
    )
    out = tmp_path / "out"
    done = cais("build", reference, "--builder", "oci", "--output", f"oci:{out}", *proxy, env=env)
    said = _one_error(done)
    name = requirement.split("==")[0]
    assert f"`{name}` has no wheel for Python 3.11" in said
    assert "--builder docker" in said and "--python X.Y" in said
    assert not out.exists()


def test_a_damaged_bundle_is_refused_before_anything_is_built(cais, env, tmp_path):
    from cais.bundle.store import ModelStore

    env = _own_cache(env, tmp_path)
    reference = _save(env)
    artifact = ModelStore(Path(env["CAIS_HOME"])).get(reference).artifact
    artifact.write_bytes(artifact.read_bytes()[:-1])
    out = tmp_path / "out"
    done = cais("build", reference, "--builder", "oci", "--output", f"oci:{out}", env=env)
    assert "does not match its recorded sha256" in _one_error(done)
    assert not out.exists() and not (tmp_path / "cache").exists()


def test_an_image_only_written_out_is_proved_in_the_engine_and_not_left_there(
    cais, engine, tmp_path, proxy, env
):
    import tarfile

    reference = _save(env)
    out = tmp_path / "image.tar"
    done = cais("build", reference, "--builder", "oci", "--output", f"tar:{out}", *proxy, env=env)
    assert done.returncode == 0, done.stderr
    assert "predicted in the image, in the Docker Engine" in done.stderr
    with tarfile.open(out) as tar:
        [entry] = json.loads(tar.extractfile("manifest.json").read())
    image_id = "sha256:" + entry["Config"].split("/")[-1].removesuffix(".json")
    assert image_id not in engine_image_ids(engine)


def test_two_cold_builds_of_a_bundle_give_the_same_digest(cais, tmp_path, proxy, env):
    reference = _save(env)
    digests = []
    for number in (1, 2):  # separate caches: everything built twice, at different times
        out = tmp_path / f"layout{number}"
        done = cais(
            "build", reference, "--builder", "oci", "--output", f"oci:{out}", *proxy,
            env={**env, "CAIS_CACHE": str(tmp_path / f"cache{number}")},
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        [entry] = json.loads((out / "index.json").read_text())["manifests"]
        digests.append(entry["digest"])
    assert digests[0] == digests[1]


def test_an_image_for_another_platform_with_no_engine_is_built_and_said_unproved(
    cais, tmp_path, proxy, env
):
    import gzip
    import tarfile

    reference = _save(env)
    out = tmp_path / "arm64"
    done = cais(
        "build", reference, "--builder", "oci", "--platform", "linux/arm64",
        "--output", f"oci:{out}", *proxy, env={**env, **NOWHERE},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "the image was not proved" in done.stderr and "`linux/arm64" in done.stderr
    machines = set()
    for digest in _layout_layers(out):
        blob = out / "blobs" / "sha256" / digest.removeprefix("sha256:")
        with gzip.open(blob) as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                if (
                    member.isfile()
                    and ".cpython-311-" in member.name
                    and member.name.endswith(".so")
                ):
                    machines.add(member.name.rsplit("-", 3)[-3])
    assert machines == {"aarch64"}  # every compiled module of the packages is arm64's


# --- one image, several models: `cais build REF REF … -t IMAGE` ----------------------------

# Product titles the two versions answer differently: the second was trained on other labels.
ASKED = ["livro de bolo", "jogo de luta", "boneca azul"]
RELABELLED = ["produto" if label in ("livro", "game") else label for label in LABELS]


def _versions(env: dict[str, str]) -> list:
    """Two versions of `products`, trained on different labels, with the same stack."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    import cais as cais_api

    models = [
        make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(TITLES, labels)
        for labels in (LABELS, RELABELLED)
    ]
    for model in models:
        cais_api.save_model(model, "products", input_example=["livro azul"], home=env["CAIS_HOME"])
    return models


def _edit(env: dict[str, str], reference: str, change) -> None:
    """Change what a saved bundle records, as a bundle saved elsewhere would differ."""
    from cais.bundle.metadata import METADATA_FILE
    from cais.bundle.store import ModelStore

    file = ModelStore(Path(env["CAIS_HOME"])).get(reference).path / METADATA_FILE
    data = json.loads(file.read_text(encoding="utf-8"))
    change(data)
    file.write_text(json.dumps(data), encoding="utf-8")


def _infer(port: int, version: str) -> list:
    body = {"inputs": [{"name": "input", "shape": [3], "datatype": "BYTES", "data": ASKED}]}
    url = f"http://127.0.0.1:{port}/v2/models/products/versions/{version}/infer"
    answer = post_when_up(url, body)
    assert answer.status_code == 200, answer.text
    [output] = answer.json()["outputs"]
    assert answer.json()["model_version"] == version
    return output["data"]


def test_two_versions_of_a_model_are_served_by_one_image(
    cais, engine, base_image, image_name, container_name, proxy, env
):
    first, second = _versions(env)
    assert list(first.predict(ASKED)) != list(second.predict(ASKED))  # the test can tell them
    tag = f"{image_name}:both"
    built = cais("build", "products:1", "products:2", "-t", tag, *proxy, env=env)
    assert built.returncode == 0, built.stderr
    assert "Traceback" not in built.stderr
    assert "load products:1, products:2 in the image and predict each one's example" in (
        built.stderr
    )
    assert "predicted in the image, in the Docker Engine" in built.stderr

    config = engine.images.get(tag).attrs["Config"]
    assert config["Labels"]["dev.cais.models"] == "products:1,products:2"
    assert config["Cmd"] == [
        "python", "-m", "cais.server", "/model/products-1", "/model/products-2",
        "--port", "8080",
    ]  # fmt: skip
    assert config["User"] == "1000:1000"
    listing = engine.containers.run(
        tag, ["ls", "/model/products-1", "/model/products-2"], remove=True
    )
    assert listing.decode().count("cais-model.json") == 2

    port = free_port()
    engine.containers.run(
        tag, detach=True, name=container_name, ports={"8080/tcp": ("127.0.0.1", port)}
    )
    assert _infer(port, "1") == list(first.predict(ASKED))
    assert _infer(port, "2") == list(second.predict(ASKED))


def test_a_model_that_fails_in_the_shared_image_is_named_and_nothing_is_kept(
    cais, engine, base_image, image_name, proxy, env
):
    _versions(env)
    # The second version's example is not text: its model cannot predict it in the image.
    _edit(env, "products:2", lambda data: data.update({"input_example": [[1, 2]]}))
    tag = f"{image_name}:both"
    built = cais("build", "products:1", "products:2", "-t", tag, *proxy, env=env)
    assert built.returncode == 1
    errors = [line for line in built.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [
        "error: One of the models `products:1`, `products:2` does not work inside the image "
        "built for them, so the image was not kept"
    ]
    assert "`products:2` cannot predict its input example" in built.stderr
    assert "Traceback" not in built.stderr
    assert tag not in engine_tags(engine)


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (
            lambda data: data["packages"].update({"scikit-learn": "1.0.2"}),
            "so one image cannot serve them: `scikit-learn` ",
        ),
        (lambda data: data.update({"python": "3.9.18"}), "were saved with different Pythons"),
    ],
)
def test_models_that_disagree_are_refused_in_one_sentence(cais, tmp_path, env, change, said):
    env = _own_cache(env, tmp_path)
    _versions(env)
    _edit(env, "products:2", change)
    done = cais(
        "build", "products:1", "products:2", "-t", "both:1", "--output", f"oci:{tmp_path}/o",
        env={**env, "DOCKER_HOST": "unix:///nowhere/docker.sock"},
    )  # fmt: skip
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert done.returncode == 1 and len(errors) == 1, done.stderr
    assert said in errors[0]
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "cache").exists() and not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("arguments", "said"),
    [
        (["products:1", "products:2"], "error: An image of several models needs a name"),
        (["products:1", "PROJECT", "-t", "both:1"], "is a project folder, and only saved models"),
    ],
)
def test_a_missing_name_or_a_folder_among_models_is_one_sentence(
    cais, tmp_path, env, arguments, said
):
    _versions(env)
    project = tmp_path / "hello"
    assert cais("init", str(project), env=env).returncode == 0
    arguments = [str(project) if a == "PROJECT" else a for a in arguments]
    done = cais("build", *arguments, env=env)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert done.returncode == 1 and len(errors) == 1, done.stderr
    assert errors[0].startswith(said) or said in errors[0]
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("references", [["products:1"], ["products:1", "products:2"]])
def test_an_image_the_engine_cannot_run_is_built_and_said_unproved(
    cais, engine, tmp_path, proxy, env, references
):
    """With an engine of this machine's platform and no QEMU, the check of an image for
    another platform would fail with `exec format error`: the image is written, said unproved."""
    from cais.image.platform import Platform

    other = "linux/arm64" if Platform.host().architecture != "arm64" else "linux/amd64"
    _versions(env)
    out = tmp_path / "other"
    done = cais(
        "build", *references, "-t", "both:1", "--builder", "oci", "--platform", other,
        "--output", f"oci:{out}", *proxy, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    said = " ".join(done.stderr.split())  # the output wraps its lines
    assert (
        f"the image was not proved: an image for `{Platform.parse(other)}` does not run on " in said
    )
    assert "exec format error" not in said
    assert (out / "index.json").is_file()
