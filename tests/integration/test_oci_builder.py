"""The OCI builder on real components: base images read from the local registry and the
engine, packages installed by uv through this machine's proxy, images loaded into the engine
or written as OCI layouts and tarballs with no engine at all."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import tarfile
import uuid
from pathlib import Path

import pytest

from cais.builders.packages import install
from cais.builders.pip_settings import pip_settings
from cais.bundle.pins import Target
from cais.image import engine_source, remote
from cais.image.blobs import BlobStore
from cais.image.platform import Platform
from cais.plan import DependencyStep
from cais.registry.client import RegistryClient
from tests.integration.test_registry_client import Counting
from tests.support import BASE_IMAGE, REGISTRY, unavailable

pytestmark = [pytest.mark.engine, pytest.mark.registry]

NOWHERE = {"DOCKER_HOST": "unix:///nowhere/docker.sock"}
EPOCH = "1700000000"
_AARCH64 = 183  # e_machine of an ELF file for arm64
_X86_64 = 62


@pytest.fixture(scope="module")
def registry_base(engine, base_image, registry) -> str:
    """The stand-in base image in the open registry, in a repository of this module's own."""
    repository = f"{registry}/cais-oci-{uuid.uuid4().hex[:8]}/python"
    tag = BASE_IMAGE.split(":")[1]
    engine.images.get(base_image).tag(repository, tag)
    try:
        for line in engine.images.push(repository, tag, stream=True, decode=True):
            if line.get("error"):
                unavailable(f"cannot push the base image to {registry}: {line['error']}")
    finally:
        engine.images.remove(f"{repository}:{tag}")
    return f"{repository}:{tag}"


def _project(cais, folder: Path, base: str | None = None) -> Path:
    done = cais("init", str(folder))
    assert done.returncode == 0, done.stderr
    if base:
        config = folder / "cais.yaml"
        config.write_text(config.read_text() + f"base_image: {base}\n")
    return folder


def _to_layout(cais, project: Path, out: Path, *options: str, env: dict):
    """`cais build PROJECT --builder oci --output oci:OUT`, with `options`."""
    return cais(
        "build", str(project), "--builder", "oci", "--output", f"oci:{out}", *options, env=env
    )


def _layout(folder: Path) -> tuple[str, dict, dict]:
    """The digest, manifest and config of the one image of an OCI layout, every blob checked."""
    index = json.loads((folder / "index.json").read_text())
    [entry] = index["manifests"]

    def blob(digest: str) -> bytes:
        data = (folder / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes()
        assert "sha256:" + hashlib.sha256(data).hexdigest() == digest
        return data

    manifest = json.loads(blob(entry["digest"]))
    config = json.loads(blob(manifest["config"]["digest"]))
    for layer in manifest["layers"]:
        assert len(blob(layer["digest"])) == layer["size"]
    return entry["digest"], manifest, config


def _layer_bytes(folder: Path, manifest: dict) -> list[bytes]:
    return [
        gzip.decompress(
            (folder / "blobs" / "sha256" / layer["digest"].removeprefix("sha256:")).read_bytes()
        )
        for layer in manifest["layers"]
    ]


def test_the_seed_project_runs_as_the_docker_builders_image_does(
    tmp_path, cais, engine, base_image, image_name, proxy
):
    project = _project(cais, tmp_path / "hello")
    env = {"CAIS_CACHE": str(tmp_path / "cache")}
    made = {}
    for builder in ("docker", "oci"):
        tag = f"{image_name}:{builder}"
        done = cais("build", str(project), "-t", tag, "--builder", builder, *proxy, env=env)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == tag
        made[builder] = engine.images.get(tag).attrs
    docker_config, oci_config = made["docker"]["Config"], made["oci"]["Config"]
    for key in ("User", "Cmd", "Entrypoint", "WorkingDir", "ExposedPorts"):
        assert oci_config.get(key) == docker_config.get(key), key
    assert sorted(oci_config["Env"]) == sorted(docker_config["Env"])
    version = "org.opencontainers.image.version"  # the tags differ: `:docker`, `:oci`
    assert {**oci_config["Labels"], version: "docker"} == docker_config["Labels"]
    said = {}
    for builder in ("docker", "oci"):
        command = 'id; echo "$HOME"; touch "$HOME/.cache"; python script.py; ls /app'
        ran = cais("run", "--rm", "-e", "NAME=Ana", f"{image_name}:{builder}", "sh", "-c", command)
        assert ran.returncode == 0, ran.stderr
        said[builder] = ran.stdout
    assert said["oci"] == said["docker"]
    assert "uid=1000(app) gid=1000(app) groups=1000(app)\n/home/app\nHello, Ana!" in said["oci"]


def test_two_builds_in_different_folders_and_times_give_one_digest(
    tmp_path, cais, registry_base, proxy
):
    first = _project(cais, tmp_path / "one" / "hello", base=registry_base)
    second = tmp_path / "two" / "elsewhere" / "hello"
    shutil.copytree(first, second, copy_function=shutil.copy)  # new files, new times
    for path in second.iterdir():
        os.utime(path, (1_600_000_000, 1_600_000_000))
    digests = []
    for number, project in enumerate((first, second)):
        env = {**NOWHERE, "SOURCE_DATE_EPOCH": EPOCH, "CAIS_CACHE": str(tmp_path / f"c{number}")}
        out = tmp_path / f"layout-{number}"
        done = _to_layout(cais, project, out, "-t", "hello:1", *proxy, env=env)
        assert done.returncode == 0, done.stderr
        digest, _, config = _layout(out)
        assert f"(digest {digest})" in done.stderr.replace("\n", " ")
        digests.append(digest)
    assert digests[0] == digests[1]
    assert config["created"] == "2023-11-14T22:13:20Z"


def test_a_one_line_edit_rebuilds_only_the_code_layer(tmp_path, cais, registry_base, proxy):
    project = _project(cais, tmp_path / "hello", base=registry_base)
    env = {**NOWHERE, "CAIS_CACHE": str(tmp_path / "cache")}

    def build(out: Path):
        done = _to_layout(cais, project, out, "-v", *proxy, env=env)
        assert done.returncode == 0, done.stderr
        return done.stderr, _layout(out)

    _, (first, manifest_1, _) = build(tmp_path / "1")
    said, (again, _, _) = build(tmp_path / "2")
    assert again == first  # nothing changed: the same image
    assert "packages for Python" in said and "cached" in said
    script = project / "script.py"
    script.write_text(script.read_text() + "print('one more line')\n")
    said, (edited, manifest_3, _) = build(tmp_path / "3")
    assert edited != first
    layers_1 = [layer["digest"] for layer in manifest_1["layers"]]
    layers_3 = [layer["digest"] for layer in manifest_3["layers"]]
    # The code layer, below the SBOM (dated by the sources, so it changes with them).
    assert layers_1[:-2] == layers_3[:-2] and layers_1[-2] != layers_3[-2]
    assert b"one more line" in _layer_bytes(tmp_path / "3", manifest_3)[-2]
    # No package changed: the SBOM's draft was written by the first build only, and the
    # edit's SBOM is it with the edit's time.
    assert len(list((tmp_path / "cache" / "index" / "sbom-drafts-1").iterdir())) == 1
    documents = []
    for folder, manifest in ((tmp_path / "1", manifest_1), (tmp_path / "3", manifest_3)):
        with tarfile.open(fileobj=io.BytesIO(_layer_bytes(folder, manifest)[-1])) as top:
            document = json.load(top.extractfile("usr/local/share/cais/sbom.cdx.json"))
        documents.append((document.pop("serialNumber"), document["metadata"].pop("timestamp")))
        documents.append(document)
    assert documents[1] == documents[3] and documents[0] != documents[2]


def test_outputs_need_no_engine_and_hold_no_pip_setting(
    tmp_path, cais, engine, registry_base, image_name, ca_certs, proxy
):
    project = _project(cais, tmp_path / "hello", base=registry_base)
    # tabulate has a console script: it must start the image's interpreter.
    (project / "requirements.txt").write_text("humanize==4.12.3\ntabulate==0.9.0\n")
    marker = "cais-uv-marker.invalid"
    env = {**NOWHERE, "CAIS_CACHE": str(tmp_path / "cache"), "PIP_TRUSTED_HOST": marker}
    tag = f"{image_name}:tar"
    out, tarball = tmp_path / "layout", tmp_path / "image.tar"
    done = cais(
        "build",
        str(project),
        "-t",
        tag,
        "--builder",
        "oci",
        "--output",
        f"oci:{out}",
        "--output",
        f"tar:{tarball}",
        *proxy,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert "kept out of the image" in done.stderr
    digest, manifest, config = _layout(out)
    # No line of the CA certificates and no index setting in any layer, the config or history.
    bodies = [
        line.encode()
        for cert in ca_certs
        for line in cert.read_text().splitlines()
        if len(line) > 40 and "CERTIFICATE" not in line
    ]
    texts = [*_layer_bytes(out, manifest), json.dumps(config).encode()]
    assert not any(b"site-packages/.lock" in t for t in texts)  # uv's lock of its target
    for data in texts:
        assert marker.encode() not in data
        assert not any(body in data for body in bodies)
    # The tarball is what `docker load` reads, and the image runs.
    with tarball.open("rb") as handle:
        loaded = engine.images.load(handle.read())
    assert loaded[0].id == manifest["config"]["digest"]
    ran = cais("run", "--rm", "-e", "NAME=Ana", tag)
    assert ran.returncode == 0, ran.stderr
    assert "Hello, Ana!" in ran.stdout
    table = cais("run", "--rm", tag, "--", "sh", "-c", "echo 'a 1' | tabulate")
    assert table.returncode == 0, table.stderr
    assert table.stdout.split() == ["-", "-", "a", "1", "-", "-"]


def _one_error(done) -> tuple[str, str]:
    """The command failed with one `error:` sentence and no traceback: it and its hint, each
    unwrapped (a long sentence is wrapped to the terminal's width)."""
    assert done.returncode == 1, done.stderr
    assert done.stderr.count("error:") == 1 and "Traceback" not in done.stderr, done.stderr
    text = " ".join(done.stderr.split())
    error, _, hint = text[text.index("error:") :].partition(" hint: ")
    return error, hint


def test_an_unreachable_base_registry_is_one_sentence(tmp_path, cais):
    project = _project(cais, tmp_path / "hello", base="127.0.0.1:1/python:3.11-slim")
    (project / "requirements.txt").write_text("")
    out = tmp_path / "o"
    env = {**NOWHERE, "CAIS_CACHE": str(tmp_path / "cache")}
    done = _to_layout(cais, project, out, env=env)
    error, _ = _one_error(done)
    assert "The base image `127.0.0.1:1/python:3.11-slim` for `linux/amd64`" in error
    assert "`127.0.0.1:1`" in error and "no Docker Engine answers at `unix:///nowhere" in error
    assert not out.exists()


def test_a_package_without_a_wheel_is_named_with_the_remedy(tmp_path, cais, registry_base, proxy):
    project = _project(cais, tmp_path / "hello", base=registry_base)
    (project / "requirements.txt").write_text("sklearn==0.0.post12\n")  # an sdist only
    out = tmp_path / "o"
    env = {**NOWHERE, "CAIS_CACHE": str(tmp_path / "cache")}
    done = _to_layout(cais, project, out, *proxy, env=env)
    error, hint = _one_error(done)
    assert "`sklearn` has no wheel for Python" in error
    assert "`--builder docker`" in hint
    assert not out.exists()


def _elf_machine(path: Path) -> int:
    header = path.read_bytes()[:20]
    assert header[:4] == b"\x7fELF"
    return int.from_bytes(header[18:20], "little")


@pytest.mark.parametrize(("machine", "elf"), [("aarch64", _AARCH64), ("x86_64", _X86_64)])
def test_the_package_layer_holds_the_targets_shared_objects(tmp_path, ca_certs, machine, elf):
    if not ca_certs:
        pytest.skip("no proxy CA on this machine: uv cannot reach PyPI")
    (tmp_path / "requirements.txt").write_text("numpy==2.2.6\n")
    step = DependencyStep(files=("requirements.txt",), requirements="requirements.txt")
    entries = install(
        step,
        project=tmp_path,
        target=Target("3.11", machine),
        pip=pip_settings(ca_certs),
        into=tmp_path / "layer",
    )
    objects = [name for name in entries if name.endswith(".so") and "/numpy/" in name]
    assert objects
    for name in objects:
        assert _elf_machine(entries[name].source) == elf, name  # type: ignore[union-attr]
    assert not any("/tests/" in name for name in entries)
    script = entries["usr/local/bin/f2py"].source  # type: ignore[union-attr]
    assert script.read_bytes().startswith(b"#!/usr/local/bin/python\n")


def test_an_arm64_image_is_built_without_emulation(tmp_path, cais, registry, proxy):
    with RegistryClient(registry) as client:
        try:
            client.get_manifest("library/python", "3.11-slim", platform="linux/arm64")
        except Exception as exc:  # noqa: BLE001 - no arm64 stand-in yet
            unavailable(f"no linux/arm64 `library/python:3.11-slim` in {registry}: {exc}")
    project = _project(cais, tmp_path / "hello")
    (project / "requirements.txt").write_text("numpy==2.2.6\n")
    out = tmp_path / "layout"
    env = {**NOWHERE, "CAIS_CACHE": str(tmp_path / "cache"), "CAIS_BASE_REGISTRY": registry}
    done = _to_layout(cais, project, out, "--platform", "linux/arm64", *proxy, env=env)
    assert done.returncode == 0, done.stderr
    _, manifest, config = _layout(out)
    assert (config["os"], config["architecture"]) == ("linux", "arm64")
    # numpy, a large package, has a layer of its own, just below the program's (and the SBOM).
    assert config["history"][-3]["created_by"].startswith("cais: package numpy-2.2.6 for ")
    with tarfile.open(fileobj=io.BytesIO(_layer_bytes(out, manifest)[-3])) as packages:
        objects = [m for m in packages.getmembers() if m.name.endswith(".so")]
        assert objects
        for member in objects:
            header = packages.extractfile(member).read(20)  # type: ignore[union-attr]
            assert int.from_bytes(header[18:20], "little") == _AARCH64, member.name


def test_base_images_are_read_by_digest_once(tmp_path, engine, base_image, registry_base):
    store = BlobStore(tmp_path / "cache")
    name, _, tag = registry_base.partition("/")[2].rpartition(":")
    counting = Counting()
    with RegistryClient(REGISTRY, transport=counting) as client:
        image = remote.read(client, name, tag, Platform.host(), store=store)
        first = [request for request in counting.seen if "/blobs/" in request[1]]
        again = remote.read(client, name, tag, Platform.host(), store=store)
    assert again == image
    assert len(first) == len(image.layers) + 1  # the config and each layer
    assert [r for r in counting.seen if "/blobs/" in r[1]] == first  # nothing fetched again
    held = engine.images.get(base_image).attrs
    assert image.id == held["Id"]  # the config as the registry serves it: the same image id
    from_engine = engine_source.read(
        engine, base_image, store=BlobStore(tmp_path / "e"), platform=Platform.host()
    )
    assert from_engine is not None
    assert from_engine.id == held["Id"]
    assert [layer.diff_id for layer in from_engine.layers] == held["RootFS"]["Layers"]
    assert (
        engine_source.read(engine, "cais-no-such-image:1", store=store, platform=Platform.host())
        is None
    )
