"""`cais build`'s sinks on real components: `--push` to the local registries (open, and with
basic auth after `cais login`) with no engine, the SBOM attached as a referrer, several
platforms as one index, the engine as the default sink, and `auto` choosing the OCI builder
(and the Docker builder taking over when a package has no wheel)."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path

import docker.errors
import pytest

from cais.image.media import MediaType
from cais.image.platform import Platform
from cais.image.sbom import PATH
from cais.registry.client import RegistryClient
from cais.registry.referrers import referrers
from tests.integration.test_registry_sink import _docker_config
from tests.support import REGISTRY_PASSWORD, REGISTRY_USER, free_port

pytestmark = [pytest.mark.registry]

NOWHERE = "unix:///nowhere/docker.sock"
_ELF = {"amd64": 62, "arm64": 183}  # e_machine of x86_64 and aarch64 objects


@pytest.fixture
def env(registry, layer_cache) -> dict[str, str]:
    """No engine, the run's shared layer cache, the base images from the local mirror."""
    return {"DOCKER_HOST": NOWHERE, "CAIS_CACHE": str(layer_cache), "CAIS_BASE_REGISTRY": registry}


@pytest.fixture
def repository() -> str:
    return f"cais-deliver-{uuid.uuid4().hex[:10]}/app"


def _project(cais, folder: Path, requirements: str | None = None) -> Path:
    done = cais("init", str(folder))
    assert done.returncode == 0, done.stderr
    if requirements is not None:
        (folder / "requirements.txt").write_text(requirements)
    return folder


def _one_error(done) -> tuple[str, str]:
    """The command failed with one `error:` sentence and no traceback: it and its hint."""
    assert done.returncode == 1, done.stderr
    assert done.stderr.count("error:") == 1 and "Traceback" not in done.stderr, done.stderr
    text = " ".join(done.stderr.split())
    error, _, hint = text[text.index("error:") :].partition(" hint: ")
    return error, hint


def _pushed_digest(done, tag: str) -> str:
    said = " ".join(done.stderr.split())
    start = said.index(f"Pushed `{tag}` (") + len(f"Pushed `{tag}` (")
    return said[start : said.index(")", start)]


def _sbom_of(client: RegistryClient, repository: str, digest: str) -> dict:
    """The one CycloneDX referrer of `digest`, read back from the registry."""
    [entry] = referrers(client, repository, digest, artifact_type=MediaType.CYCLONEDX_JSON)
    artifact = client.get_manifest(repository, entry["digest"]).data
    assert artifact["subject"]["digest"] == digest
    [layer] = artifact["layers"]
    return json.loads(client.read_blob(repository, layer["digest"]))


def _versions(document: dict) -> dict[str, str]:
    return {c["name"].lower(): c["version"] for c in document["components"]}


def test_a_push_needs_no_engine_and_attaches_the_sbom(
    tmp_path, cais, registry, repository, env, proxy
):
    env = {**env, "CAIS_CACHE": str(tmp_path / "cache")}  # a cold build: the base read lazily
    project = _project(cais, tmp_path / "hello")
    tag = f"{registry}/{repository}:1"
    done = cais("build", str(project), "-t", tag, "--push", *proxy, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == tag
    digest = _pushed_digest(done, tag)
    assert f"listed at `{PATH}` in the image, and attached to it in the registry" in " ".join(
        done.stderr.split()
    )
    with RegistryClient(registry) as client:
        manifest = client.get_manifest(repository, "1")
        assert manifest.digest == digest
        # A single platform stays a plain manifest: no index with attestation entries.
        assert manifest.media_type == MediaType.OCI_MANIFEST.value
        config = json.loads(client.read_blob(repository, manifest.data["config"]["digest"]))
        assert config["history"][-1]["created_by"] == f"cais: SBOM at {PATH}"
        top = manifest.data["layers"][-1]["digest"]
        with tarfile.open(
            fileobj=io.BytesIO(gzip.decompress(client.read_blob(repository, top)))
        ) as tar:
            stored = json.loads(tar.extractfile(PATH.lstrip("/")).read())  # type: ignore[union-attr]
        attached = _sbom_of(client, repository, digest)
    assert attached == stored
    versions = _versions(attached)
    assert versions["humanize"] == "4.12.3"  # the project's pin
    assert "pip" in versions  # the base image's own packages are listed too


def test_pushing_again_sends_nothing_new(tmp_path, cais, registry, repository, env, proxy):
    project = _project(cais, tmp_path / "hello")
    tag = f"{registry}/{repository}:1"
    first = cais("build", str(project), "-t", tag, "--push", *proxy, env=env)
    assert first.returncode == 0, first.stderr
    again = cais("build", str(project), "-t", tag, "--push", "-v", *proxy, env=env)
    assert again.returncode == 0, again.stderr
    assert _pushed_digest(again, tag) == _pushed_digest(first, tag)
    assert ": Pushed (" not in again.stderr  # the tag named the image already
    with RegistryClient(registry) as client:
        entries = referrers(client, repository, _pushed_digest(first, tag))
    assert len(entries) == 1  # attached once


def test_a_push_to_the_auth_registry_after_login(
    tmp_path, cais, auth_registry, repository, env, proxy, docker_config
):
    project = _project(cais, tmp_path / "hello")
    tag = f"{auth_registry}/{repository}:1"
    refused = cais("build", str(project), "-t", tag, "--push", *proxy, env=env)
    error, hint = _one_error(refused)
    assert f"The registry `{auth_registry}` needs a login" in error
    assert f"`cais login {auth_registry}`" in hint
    login = cais(
        "login", auth_registry, "-u", REGISTRY_USER, "--password-stdin", input=REGISTRY_PASSWORD
    )
    assert login.returncode == 0, login.stderr
    done = cais("build", str(project), "-t", tag, "--push", *proxy, env=env)
    assert done.returncode == 0, done.stderr
    with RegistryClient(auth_registry) as client:
        assert client.manifest_digest(repository, "1") == _pushed_digest(done, tag)
        assert _versions(_sbom_of(client, repository, _pushed_digest(done, tag)))["humanize"]


@pytest.mark.parametrize("password", ["wrong", REGISTRY_PASSWORD + "x"])
def test_wrong_credentials_are_one_sentence(
    tmp_path, cais, auth_registry, repository, env, proxy, docker_config, password
):
    _docker_config(docker_config, auth_registry, password)
    project = _project(cais, tmp_path / "hello")
    done = cais(
        "build", str(project), "-t", f"{auth_registry}/{repository}:1", "--push", *proxy, env=env
    )
    error, hint = _one_error(done)
    assert f"refused the username or password for `{REGISTRY_USER}`" in error
    assert password not in done.stderr


@pytest.mark.parametrize("where", ["127.0.0.1:{port}", "localhost:{port}"])
def test_an_unreachable_registry_is_one_sentence(tmp_path, cais, env, proxy, where):
    address = where.format(port=free_port())
    project = _project(cais, tmp_path / "hello")
    done = cais("build", str(project), "-t", f"{address}/app:1", "--push", *proxy, env=env)
    error, _ = _one_error(done)
    assert f"The registry `{address}` does not answer" in error


def _elf_machines(layer: bytes) -> set[int]:
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        return {
            int.from_bytes(tar.extractfile(m).read(20)[18:20], "little")  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isfile() and m.name.endswith(".so") and "/numpy/" in m.name
        }


def test_several_platforms_push_one_index_without_emulation(
    tmp_path, cais, registry, repository, env, proxy
):
    with RegistryClient(registry) as client:
        try:
            client.get_manifest("library/python", "3.11-slim", platform="linux/arm64")
        except Exception as exc:  # noqa: BLE001 - no arm64 stand-in yet
            pytest.skip(f"no linux/arm64 `library/python:3.11-slim` in {registry}: {exc}")
    project = _project(cais, tmp_path / "hello", "numpy==2.2.6\n")
    tag = f"{registry}/{repository}:1"
    layout = tmp_path / "layout"
    done = cais(
        "build", str(project), "-t", tag, "--platform", "linux/amd64,linux/arm64",
        "--push", "--output", f"oci:{layout}", *proxy, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    digest = _pushed_digest(done, tag)
    index = json.loads((layout / "index.json").read_text())
    assert [entry["digest"] for entry in index["manifests"]] == [digest]
    with RegistryClient(registry) as client:
        pushed = client.get_manifest(repository, "1")
        assert pushed.digest == digest and pushed.media_type == MediaType.OCI_INDEX.value
        entries = pushed.data["manifests"]
        assert [Platform.from_json(e["platform"]) for e in entries] == [
            Platform.parse("linux/amd64"),
            Platform.parse("linux/arm64"),
        ]
        for entry in entries:
            image = client.get_manifest(repository, entry["digest"]).data
            config = json.loads(client.read_blob(repository, image["config"]["digest"]))
            architecture = config["architecture"]
            assert entry["platform"]["architecture"] == architecture
            # numpy has a layer of its own, below the program's and the SBOM's.
            assert config["history"][-3]["created_by"].startswith("cais: package numpy-2.2.6")
            numpy = gzip.decompress(client.read_blob(repository, image["layers"][-3]["digest"]))
            assert _elf_machines(numpy) == {_ELF[architecture]}
            # Each platform image has its own SBOM, attached to its own manifest.
            assert _versions(_sbom_of(client, repository, entry["digest"]))["numpy"] == "2.2.6"
        assert referrers(client, repository, digest) == []  # none on the index itself


@pytest.mark.engine
def test_the_engine_takes_the_hosts_image_of_several(
    tmp_path, cais, engine, registry, image_name, proxy
):
    project = _project(cais, tmp_path / "hello")
    env = {"CAIS_CACHE": str(tmp_path / "cache"), "CAIS_BASE_REGISTRY": registry}
    tag = f"{image_name}:1"
    done = cais(
        "build", str(project), "-t", tag, "--platform", "linux/arm64,linux/amd64", *proxy, env=env
    )
    assert done.returncode == 0, done.stderr
    assert f"loaded this machine's `{tag}` into the Docker Engine" in " ".join(done.stderr.split())
    assert engine.images.get(tag).attrs["Architecture"] == Platform.host().architecture


@pytest.mark.engine
def test_auto_builds_a_plain_project_on_the_host_into_the_engine(
    tmp_path, cais, engine, base_image, image_name, proxy
):
    project = _project(cais, tmp_path / "hello")
    tag = f"{image_name}:1"
    done = cais("build", str(project), "-t", tag, *proxy, env={"CAIS_CACHE": str(tmp_path / "c")})
    assert done.returncode == 0, done.stderr
    assert "with oci in" in done.stderr and "Docker builder" not in done.stderr
    history = [h.get("CreatedBy", "") for h in engine.api.history(tag)]
    assert history[0] == f"cais: SBOM at {PATH}"
    ran = cais("run", "--rm", "-e", "NAME=Ana", tag)
    assert ran.returncode == 0, ran.stderr
    assert "Hello, Ana!" in ran.stdout


# Runs `cais build` in this process, recording each request to the engine (through the Docker
# SDK's requests session), the bytes of the image it loads, and the modules it imported.
_RECORDED_BUILD = """\
import json, sys
import requests.sessions

asked, loaded = [], []
send = requests.sessions.Session.send


def counted(chunks):
    for chunk in chunks:
        loaded.append(len(chunk))
        yield chunk


def recording(self, request, **kwargs):
    asked.append(f"{request.method} {request.path_url}")
    if request.path_url.endswith("/images/load"):
        request.body = counted(request.body)
    return send(self, request, **kwargs)


requests.sessions.Session.send = recording
from cais.cli import app

try:
    app(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "asked": asked, "loaded": sum(loaded), "modules": sorted(sys.modules)}))
"""

# What an edit's rebuild of a script project into the engine never needs: serving, deploying,
# the registry client, the engine's own builders, the model libraries, Markdown help.
_NOT_ON_THE_BUILD_PATH = (
    "cais.server.app",
    "cais.server.models",
    "cais.predict",
    "cais.deploy",
    "cais.registry.client",
    "httpx",
    "cais.builders.buildkit",
    "cais.builders.classic",
    "cais.builders.proof",
    "starlette",
    "uvicorn",
    "sklearn",
    "numpy",
    "rich.markdown",
)


@pytest.mark.engine
@pytest.mark.parametrize(
    ("builder", "sink"), [(["--builder", "oci"], []), ([], ["--load"]), ([], [])]
)
def test_an_edit_rebuild_asks_the_engine_its_version_once_and_imports_no_more_than_it_uses(
    tmp_path, cais, engine, registry, layer_cache, image_name, proxy, builder, sink
):
    project = _project(cais, tmp_path / "hello")
    tag = f"{image_name}:1"
    env = {"CAIS_CACHE": str(layer_cache), "CAIS_BASE_REGISTRY": registry}
    first = cais("build", str(project), "-t", tag, *builder, *proxy, env=env)
    assert first.returncode == 0, first.stderr
    with (project / "script.py").open("a") as script:
        script.write('print("edited")\n')
    done = subprocess.run(
        [sys.executable, "-c", _RECORDED_BUILD, "build", str(project), "-t", tag, *builder]
        + [*sink, *proxy],
        capture_output=True,
        text=True,
        env={**os.environ, **env, "NO_COLOR": "1"},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    recorded = json.loads(done.stdout.splitlines()[-1])
    assert recorded["code"] in (0, None), done.stderr
    versions = [a for a in recorded["asked"] if a.split("?")[0].endswith("/version")]
    assert versions == ["GET /version"], recorded["asked"]  # negotiated once, by plan_delivery
    assert not any(a.endswith("/_ping") for a in recorded["asked"]), recorded["asked"]
    assert sum("/images/load" in a for a in recorded["asked"]) == 1
    # The image the tag named shares all but the edited layers: their files are left out.
    packages = next(h for h in engine.api.history(tag) if "packages for Python" in h["CreatedBy"])
    assert 0 < recorded["loaded"] < packages["Size"]
    loaded = {m for m in recorded["modules"] if m.startswith(_NOT_ON_THE_BUILD_PATH)}
    assert loaded == set(), loaded
    if builder:  # `--builder oci` does not ask which builder could build it
        assert "cais.builders.select" not in recorded["modules"]
    ran = cais("run", "--rm", tag)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip().endswith("edited")


@pytest.mark.engine
def test_auto_hands_a_package_without_a_wheel_to_the_docker_builder(
    tmp_path, cais, engine, base_image, image_name, proxy
):
    # docopt 0.6.2 is published as a source distribution only; pip builds it in the image.
    project = _project(cais, tmp_path / "hello", "docopt==0.6.2\n")
    tag = f"{image_name}:1"
    done = cais("build", str(project), "-t", tag, *proxy, env={"CAIS_CACHE": str(tmp_path / "c")})
    assert done.returncode == 0, done.stderr
    said = " ".join(done.stderr.split())
    assert "`docopt` has no wheel for Python" in said and "the Docker builder takes over" in said
    assert said.count("the Docker builder takes over") == 1 and "error:" not in said
    ran = cais("run", "--rm", tag, "python", "-c", "import docopt; print(docopt.__version__)")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "0.6.2"


@pytest.mark.engine
def test_the_docker_builders_image_is_pushed_by_the_engine(
    tmp_path, cais, engine, base_image, registry, repository, proxy
):
    project = _project(cais, tmp_path / "hello")
    tag = f"{registry}/{repository}:1"
    done = cais("build", str(project), "-t", tag, "--builder", "docker", "--push", *proxy)
    try:
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == tag
        digest = _pushed_digest(done, tag)
        with RegistryClient(registry) as client:
            assert client.manifest_digest(repository, "1") == digest
        assert any(d.endswith(digest) for d in engine.images.get(tag).attrs["RepoDigests"])
    finally:
        with contextlib.suppress(docker.errors.ImageNotFound):
            engine.images.remove(tag, force=True)


@pytest.mark.engine
def test_a_saved_models_image_is_pushed_by_the_engine(
    tmp_path, cais, engine, base_image, registry, repository, proxy
):
    import cais as cais_api
    from tests.support import text_model

    home = tmp_path / "cais-home"
    reference = cais_api.save_model(
        text_model(), "products", input_example=["livro azul"], home=home
    )
    tag = f"{registry}/{repository}:1"
    built = ("build", reference, "-t", tag, "--push", "--builder", "docker", *proxy)
    done = cais(*built, env={"CAIS_HOME": str(home)})
    try:
        assert done.returncode == 0, done.stderr
        assert "with buildkit in" in done.stderr or "with classic in" in done.stderr
        digest = _pushed_digest(done, tag)
        with RegistryClient(registry) as client:
            assert client.manifest_digest(repository, "1") == digest
    finally:
        with contextlib.suppress(docker.errors.ImageNotFound):
            engine.images.remove(tag, force=True)
