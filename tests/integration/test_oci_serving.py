"""`cais build MODEL --builder oci`: a serving image assembled on this machine, proved before it
is kept, behaving as the Docker builder's image does (real engine, real registry, uv through
this machine's proxy)."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from cais.image import sbom
from tests.support import REGISTRY, engine_image_ids, free_port, post_when_up, text_model

pytestmark = [pytest.mark.engine, pytest.mark.registry]

NOWHERE = {"DOCKER_HOST": "unix:///nowhere/docker.sock"}
_SAME = ("User", "Cmd", "ExposedPorts", "WorkingDir", "Healthcheck")


@pytest.fixture
def proxy(ca_certs) -> list[str]:
    if not ca_certs:
        pytest.skip("no proxy CA on this machine: uv cannot reach PyPI")
    return [arg for cert in ca_certs for arg in ("--ca-cert", str(cert))]


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    return {
        "CAIS_HOME": str(tmp_path / "home"),
        "CAIS_CACHE": str(tmp_path / "cache"),
        "CAIS_BASE_REGISTRY": REGISTRY,
    }


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
    assert _layout_layers(tmp_path / "two") == _layout_layers(out)

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
