"""Builds on the real Docker Engine, with BuildKit (docker CLI) and the classic builder."""

from __future__ import annotations

import contextlib
import io
import shutil
import subprocess
import tarfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cais.builders.buildkit import find_buildkit_cli
from tests.support import run_cais, unavailable

pytestmark = pytest.mark.engine

BUILDERS = ["buildkit", "classic"]


@pytest.fixture(params=BUILDERS)
def builder(request) -> str:
    if request.param == "buildkit" and find_buildkit_cli() is None:
        unavailable("no docker CLI that can build with BuildKit")
    return request.param


@pytest.fixture(params=[*BUILDERS, "oci"])
def every_builder(request) -> str:
    """The engine's builders and the OCI builder (which loads its image into the engine)."""
    if request.param == "buildkit" and find_buildkit_cli() is None:
        unavailable("no docker CLI that can build with BuildKit")
    return request.param


def _project(tmp_path: Path, cais) -> Path:
    project = tmp_path / "hello"
    done = cais("init", str(project))
    assert done.returncode == 0, done.stderr
    return project


def _build(
    cais, project: Path, tag: str, builder: str, ca_certs: list[Path], *extra: str, env=None
):
    args = ["build", str(project), "-t", tag, "--builder", builder]
    for cert in ca_certs:
        args += ["--ca-cert", str(cert)]
    return cais(*args, *extra, env=env)


# A made-up trusted host stands for any pip setting: it must never reach the image.
MARKER_HOST = "cais-index-marker.invalid"


@dataclass(frozen=True)
class Built:
    """The script project as `cais init` makes it, built once by one builder."""

    project: Path
    tag: str
    done: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def built_hello(tmp_path_factory, engine, base_image, ca_certs) -> Iterator[Callable[[str], Built]]:
    """The script project built by each builder, once for the module: tests read and run
    these images, and build changed copies of the project under tags of their own. Built with
    a pip setting (`PIP_TRUSTED_HOST`) that must stay out of the image, like the CA."""
    builds: dict[str, Built] = {}
    name = f"cais-test-{uuid.uuid4().hex[:10]}"

    def build(builder: str) -> Built:
        if builder not in builds:
            project = _project(tmp_path_factory.mktemp(builder), run_cais)
            tag = f"{name}-{builder}:0.1.0"
            env = {"PIP_TRUSTED_HOST": MARKER_HOST}
            done = _build(run_cais, project, tag, builder, ca_certs, env=env)
            assert done.returncode == 0, done.stderr
            builds[builder] = Built(project, tag, done)
        return builds[builder]

    yield build
    for made in builds.values():
        with contextlib.suppress(Exception):  # best-effort cleanup
            engine.images.remove(made.tag, force=True)


def test_build_and_run_the_script_project(tmp_path, cais, engine, built_hello, every_builder):
    hello = built_hello(every_builder)
    tag, done = hello.tag, hello.done
    image_name = tag.partition(":")[0]
    assert done.stdout.strip() == tag
    assert f"with {every_builder}" in done.stderr

    config = engine.images.get(tag).attrs["Config"]
    assert config["User"] == "1000:1000"
    assert config["Labels"]["org.opencontainers.image.title"] == image_name
    assert config["Labels"]["org.opencontainers.image.version"] == "0.1.0"
    assert config["Cmd"] == ["python", "script.py"]

    output = tmp_path / "output"
    ran = cais("run", "--rm", "-e", "NAME=Ana", "-v", f"{output}:/data", tag)
    assert ran.returncode == 0, ran.stderr
    assert "Hello, Ana!" in ran.stdout
    assert (output / "greeting.txt").read_text().startswith("Hello, Ana!")

    # The user has a name, a group and a home folder it can write its caches to.
    who = cais("run", "--rm", tag, "--", "sh", "-c", 'id; echo "$HOME"; touch "$HOME/.cache"')
    assert who.returncode == 0, who.stderr
    assert who.stdout.splitlines() == ["uid=1000(app) gid=1000(app) groups=1000(app)", "/home/app"]


def test_code_change_reuses_the_dependency_layer(
    tmp_path, cais, engine, built_hello, image_name, every_builder, ca_certs
):
    hello = built_hello(every_builder)
    project = shutil.copytree(hello.project, tmp_path / hello.project.name)
    script = project / "script.py"
    script.write_text(script.read_text() + "\nprint('one more line')\n")
    env = {"PIP_TRUSTED_HOST": MARKER_HOST}  # the settings of the first build
    second = _build(cais, project, f"{image_name}:2", every_builder, ca_certs, env=env)
    assert second.returncode == 0, second.stderr

    layers_1 = engine.images.get(hello.tag).attrs["RootFS"]["Layers"]
    layers_2 = engine.images.get(f"{image_name}:2").attrs["RootFS"]["Layers"]
    # Same layers up to the code layer: only the code (and what follows it: the OCI builder's
    # SBOM, dated by the sources) changed.
    code = -2 if every_builder == "oci" else -1
    assert layers_1[:code] == layers_2[:code]
    assert layers_1[code] != layers_2[code]
    ran = cais("run", "--rm", "-e", "OUTPUT_DIR=/tmp/out", f"{image_name}:2")
    assert "one more line" in ran.stdout


def _image_files(engine, tag: str) -> dict[str, bytes]:
    """Every file of every layer of an image, and its config and history, from `docker save`."""
    blob = b"".join(engine.images.get(tag).save(named=True))
    found: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(blob)) as outer:
        for member in outer.getmembers():
            if not member.isfile():
                continue
            data = outer.extractfile(member).read()  # type: ignore[union-attr]
            if member.name.endswith("layer.tar"):
                with tarfile.open(fileobj=io.BytesIO(data)) as layer:
                    for entry in layer.getmembers():
                        if entry.isfile():
                            found[f"{member.name}:{entry.name}"] = layer.extractfile(entry).read()  # type: ignore[union-attr]
            else:
                found[member.name] = data
    return found


def test_ca_certificates_and_index_never_reach_the_image(
    engine, built_hello, every_builder, ca_certs
):
    if not ca_certs:
        pytest.skip("no proxy CA on this machine to pass")
    hello = built_hello(every_builder)
    tag, done = hello.tag, hello.done
    assert "kept out of the image" in done.stderr
    _assert_no_pip_settings(engine, tag, ca_certs, MARKER_HOST)
    history = engine.api.history(tag)
    assert ".cais-build-secrets" not in " ".join(
        e.get("CreatedBy", "") for e in history if "COPY --from" in e.get("CreatedBy", "")
    )


def _assert_no_pip_settings(engine, tag: str, ca_certs: list[Path], marker_host: str) -> None:
    """No line of the CA certificates and no pip setting in any layer, the config or history."""
    bodies = [
        line.encode()
        for cert in ca_certs
        for line in cert.read_text().splitlines()
        if len(line) > 40 and "CERTIFICATE" not in line
    ]
    assert bodies
    files = _image_files(engine, tag)
    for name, data in files.items():
        for body in bodies:
            assert body not in data, f"a CA certificate line is in {name}"
        assert marker_host.encode() not in data, f"the pip settings are in {name}"
        assert b"cais-pip.conf" not in data or name.endswith(".json"), name
    history = engine.api.history(tag)
    text = " ".join(entry.get("CreatedBy", "") for entry in history)
    assert marker_host not in text
    assert "BEGIN CERTIFICATE" not in text


def _requirements(text: str):
    def change(project: Path, registry: str) -> None:
        (project / "requirements.txt").write_text(text)

    return change


def _base_image(project: Path, registry: str) -> None:
    with (project / "cais.yaml").open("a") as config:
        config.write(f"base_image: {registry}/nosuch/python:3.11-slim\n")


def _own_dockerfile(text: str):
    def change(project: Path, registry: str) -> None:
        (project / "Dockerfile").write_text(text)

    return change


# What breaks a build, and the sentence that says so (`{registry}`: the open test registry).
BROKEN = {
    "no such package": (
        _requirements("nosuchpackage-cais-test==1.0\n"),
        "The package `nosuchpackage-cais-test` was not found on the package index",
    ),
    "no such version": (
        _requirements("requests==0.0.0\n"),
        "`requests==0.0.0` matches none of the versions of `requests` on the package index",
    ),
    "no compiler": (
        _requirements("netifaces==0.11.0\n"),  # an sdist with a C extension, no cp311 wheel
        "`netifaces` must be compiled from source, and the image has no C compiler",
    ),
    "no such base image": (
        _base_image,
        "The base image `{registry}/nosuch/python:3.11-slim` was not found",
    ),
    "dockerfile syntax": (
        _own_dockerfile("FROM python:3.11-slim\nFORM nothing\n"),
        "Line 2 of the Dockerfile is not valid: unknown instruction: FORM",
    ),
    "copy of a missing file": (
        _own_dockerfile("FROM python:3.11-slim\nCOPY nosuch.txt /app/\n"),
        "`nosuch.txt` is not in the build context",
    ),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_failed_build_is_one_sentence_and_leaves_no_tag(
    tmp_path, cais, engine, base_image, registry, image_name, builder, ca_certs, case
):
    change, sentence = BROKEN[case]
    project = _project(tmp_path, cais)
    change(project, registry)
    done = _build(cais, project, f"{image_name}:broken", builder, ca_certs)
    assert done.returncode == 1
    report = done.stderr[done.stderr.index("error: ") :]
    lines = [line for line in report.splitlines() if line.strip()]
    assert lines[0] == f"error: {sentence.format(registry=registry)}"
    assert lines[-1].startswith("hint: ")
    assert all(line.startswith(("error:", "hint:", "  │")) for line in lines), lines
    assert "Traceback" not in done.stderr
    assert "--mount" not in report and "fix the step above" not in report
    assert not engine.images.list(name=image_name)


def test_a_base_image_that_needs_a_login_is_named_with_its_registry(
    tmp_path, cais, engine, auth_registry, image_name, builder
):
    project = tmp_path / "private"
    project.mkdir()
    (project / "Dockerfile").write_text(f"FROM {auth_registry}/{image_name}/base:1\n")
    logged_out = tmp_path / "docker-config"  # no credentials, whatever this machine has
    logged_out.mkdir()
    done = cais(
        "build",
        str(project),
        "-t",
        f"{image_name}:private",
        "--builder",
        builder,
        env={"DOCKER_CONFIG": str(logged_out)},
    )
    assert done.returncode == 1
    report = done.stderr[done.stderr.index("error: ") :]
    assert report.startswith(
        f"error: The registry `{auth_registry}` refused the base image "
        f"`{auth_registry}/{image_name}/base:1`: it needs a login\n"
    )
    assert f"hint: log in with `cais login {auth_registry}`" in report
    assert "Traceback" not in done.stderr
    assert not engine.images.list(name=image_name)


def test_a_project_with_its_own_dockerfile_is_built_as_it_is(
    tmp_path, cais, engine, base_image, image_name, builder
):
    project = tmp_path / "own"
    project.mkdir()
    (project / "Dockerfile").write_text(
        f'FROM {base_image}\nLABEL made.by=hand\nCMD ["python", "-c", "print(\'own dockerfile\')"]\n'
    )
    done = cais("build", str(project), "-t", f"{image_name}:own", "--builder", builder)
    assert done.returncode == 0, done.stderr
    assert "own `Dockerfile`" in done.stderr
    assert engine.images.get(f"{image_name}:own").labels["made.by"] == "hand"
    ran = cais("run", "--rm", f"{image_name}:own")
    assert ran.stdout.strip() == "own dockerfile"


# The README's example: the two secrets cais's own Dockerfile mounts, in a project's own.
OWN_DOCKERFILE_BEHIND_A_PROXY = """\
FROM {base_image}
WORKDIR /app
COPY requirements.txt .
RUN --mount=type=secret,id=cais-pip.conf --mount=type=secret,id=cais-ca.pem \\
    PIP_CONFIG_FILE=/run/secrets/cais-pip.conf pip install --no-cache-dir -r requirements.txt
CMD ["python", "-c", "import six; print('six', six.__version__)"]
"""


def test_a_projects_own_dockerfile_installs_through_the_proxy_with_the_pip_secrets(
    tmp_path, cais, engine, base_image, image_name, ca_certs
):
    if find_buildkit_cli() is None:
        unavailable("no docker CLI that can build with BuildKit")
    if not ca_certs:
        pytest.skip("no proxy CA on this machine to pass")
    project = tmp_path / "own"
    project.mkdir()
    (project / "Dockerfile").write_text(OWN_DOCKERFILE_BEHIND_A_PROXY.format(base_image=base_image))
    (project / "requirements.txt").write_text("six==1.16.0\n")
    tag = f"{image_name}:own"
    marker_host = "cais-own-dockerfile-marker.invalid"
    done = _build(cais, project, tag, "buildkit", ca_certs, env={"PIP_TRUSTED_HOST": marker_host})
    assert done.returncode == 0, done.stderr
    assert "kept out of the image" in done.stderr
    assert "mounts no pip settings" not in done.stderr
    assert engine.containers.run(tag, remove=True).decode().strip() == "six 1.16.0"
    _assert_no_pip_settings(engine, tag, ca_certs, marker_host)

    # The classic builder cannot pass build secrets: one sentence, nothing built.
    refused = _build(cais, project, f"{image_name}:classic", "classic", ca_certs)
    assert refused.returncode == 1
    assert refused.stderr.startswith(
        "error: `Dockerfile` mounts the pip settings as build secrets, which the classic builder "
        "cannot pass"
    ), refused.stderr
    assert "Traceback" not in refused.stderr


def test_dockerignore_keeps_clutter_out(
    tmp_path, cais, engine, base_image, image_name, builder, ca_certs
):
    project = _project(tmp_path, cais)
    (project / ".dockerignore").unlink()  # cais's defaults apply when the project has none
    for clutter in (".git/config", ".venv/bin/python", "data/big.csv", "__pycache__/x.pyc", ".env"):
        path = project / clutter
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("clutter")
    done = _build(cais, project, f"{image_name}:clean", builder, ca_certs)
    assert done.returncode == 0, done.stderr
    listing = (
        engine.containers.run(f"{image_name}:clean", entrypoint=["ls", "-A", "/app"], remove=True)
        .decode()
        .split()
    )
    assert sorted(listing) == ["README.md", "cais.yaml", "requirements.txt", "script.py"]


def test_a_written_dockerfile_leaves_out_what_cais_leaves_out_in_every_build(
    tmp_path, cais, engine, base_image, image_name, builder
):
    """`cais dockerfile -o` into the project writes cais's ignore list beside the Dockerfile:
    plain `docker build`, and `cais build` (now of the project's own Dockerfile), leave out
    .git, virtualenvs and secrets as a build without the written Dockerfile does."""
    import os
    import subprocess

    cli = find_buildkit_cli()  # Debian's 20.10 /usr/bin/docker here: `docker build`
    if cli is None:
        unavailable("no docker CLI that can build with BuildKit")
    docker_build = [cli.path, "buildx", "build", "--load"] if cli.buildx else [cli.path, "build"]
    project = tmp_path / "app"
    files = {
        ".git/HEAD": "ref: refs/heads/main\n",
        ".venv/bin/python": "",
        ".env": "TOKEN=secret\n",
        "run.py": "print('hi')\n",
        "cais.yaml": f'python: "{base_image.split(":")[1].removesuffix("-slim")}"\n',
    }
    for name, text in files.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(text)
    wrote = cais("dockerfile", str(project), "-o", str(project / "Dockerfile"))
    assert wrote.returncode == 0, wrote.stderr
    assert (project / ".dockerignore").is_file()
    plain = subprocess.run(
        [*docker_build, "-q", "-t", f"{image_name}:docker", str(project)],
        env={**os.environ, "DOCKER_BUILDKIT": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert plain.returncode == 0, plain.stderr
    built = cais("build", str(project), "-t", f"{image_name}:cais", "--builder", builder)
    assert built.returncode == 0, built.stderr
    assert "own `Dockerfile`" in built.stderr
    for tag in (f"{image_name}:docker", f"{image_name}:cais"):
        listing = engine.containers.run(tag, entrypoint=["ls", "-A", "/app"], remove=True)
        assert sorted(listing.decode().split()) == ["cais.yaml", "run.py"], tag


def test_an_unreachable_engine_is_named_by_both_builders(tmp_path, cais, engine, builder):
    project = _project(tmp_path, cais)
    done = cais(
        "build", str(project), "--builder", builder, env={"DOCKER_HOST": "tcp://127.0.0.1:1"}
    )
    assert done.returncode == 1
    assert "The Docker Engine at `tcp://127.0.0.1:1` is not reachable" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_unchanged_project_rebuilds_to_the_same_image(
    tmp_path, cais, engine, base_image, image_name, builder, ca_certs
):
    # Its own project, built twice in a row: the shared build's project may have been built
    # since in a changed copy, which the engine's cache may then serve instead.
    project = _project(tmp_path, cais)
    first = _build(cais, project, f"{image_name}:1", builder, ca_certs)
    assert first.returncode == 0, first.stderr
    again = _build(cais, project, f"{image_name}:1", builder, ca_certs)
    assert again.returncode == 0, again.stderr
    first_id = engine.images.get(f"{image_name}:1").id
    assert first_id[7:19] in first.stderr
    assert first_id[7:19] in again.stderr  # the very same image, not a new one
    # Both builders copy the same files: the ignore file itself stays out too.
    listing = (
        engine.containers.run(f"{image_name}:1", entrypoint=["ls", "-A", "/app"], remove=True)
        .decode()
        .split()
    )
    assert sorted(listing) == ["README.md", "cais.yaml", "requirements.txt", "script.py"]
