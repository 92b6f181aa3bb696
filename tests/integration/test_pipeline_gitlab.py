"""The GitLab pipeline, run for real by gitlab-ci-local on this machine: its test job runs the
project's tests; its build job, in a container of the python base image with no Docker daemon
in reach, installs cais from this checkout, builds the project with the OCI builder and pushes
it to the basic-auth registry with GitLab's CI_REGISTRY_* variables; the image it pushed is
then pulled and serves: the project's app, or the model the train job saved."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

import cais
from tests.support import (
    AUTH_REGISTRY,
    REGISTRY,
    REGISTRY_PASSWORD,
    REGISTRY_USER,
    free_port,
    get_when_up,
    post_when_up,
    run_cais,
    unavailable,
)

SOURCE = Path(cais.__file__).resolve().parents[2]  # this checkout: pyproject.toml and src/
# gitlab-ci-local prepares each job's volumes with this image (a stand-in made by test-infra)
UTIL_IMAGE = "firecow/gitlab-ci-local-util:latest"
NO_DAEMON = (
    'test ! -e /var/run/docker.sock && [ -z "${DOCKER_HOST:-}" ] '
    "&& ! command -v docker && ! command -v dockerd && echo no-docker-daemon-here"
)


@pytest.fixture
def gitlab_ci_local(engine, base_image) -> str:
    tool = shutil.which("gitlab-ci-local")
    if tool is None:
        unavailable("gitlab-ci-local is not installed (scripts/test-infra installs it)")
    if shutil.which("rsync") is None:
        unavailable("rsync, which gitlab-ci-local needs, is not installed")
    try:
        engine.images.get(UTIL_IMAGE)
    except Exception:  # noqa: BLE001 - any failure means the stand-in is missing
        unavailable(f"the stand-in `{UTIL_IMAGE}` is not in the engine (run scripts/test-infra)")
    return tool


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.email=ci@example.com", "-c", "user.name=ci", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


TEST = """from app import app


def test_greets():
    assert app.test_client().get("/?name=Ana").get_json() == {"message": "Hello, Ana!"}
"""


def _repository(tmp_path: Path, template: str) -> Path:
    """A git repository holding a project made by `cais init` and the pipeline `cais pipeline
    gitlab` wrote for it, with one check added at the top of the build job: no daemon in
    reach. The Flask project gets a test."""
    repo = tmp_path / "shop"
    done = run_cais("init", str(repo), "--template", template)
    assert done.returncode == 0, done.stderr
    if template == "flask":
        (repo / "tests").mkdir()
        (repo / "tests" / "test_app.py").write_text(TEST)
    _git(tmp_path, "init", "-q", "-b", "main", str(repo))
    done = run_cais("pipeline", "gitlab", ".", cwd=repo)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str((repo / ".gitlab-ci.yml").resolve())
    pipeline = repo / ".gitlab-ci.yml"
    data = yaml.safe_load(pipeline.read_text())
    data["build"]["script"].insert(0, NO_DAEMON)
    pipeline.write_text(yaml.safe_dump(data, sort_keys=False))
    (repo / ".git" / "info" / "exclude").write_text(".gitlab-ci-local*\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "shop")
    return repo


def _run(tool: str, engine, repo: Path, variables: dict[str, str], *jobs: str) -> str:
    """gitlab-ci-local's log of `jobs` (every job when none is named), which must pass."""
    before = _job_volumes(engine)
    try:
        return _run_jobs(tool, repo, variables, *jobs)
    finally:
        # Its --cleanup does not wait for the volumes' removal before it exits.
        for name in _job_volumes(engine) - before:
            try:
                for container in engine.containers.list(all=True, filters={"volume": name}):
                    container.remove(force=True)
                engine.volumes.get(name).remove(force=True)
            except Exception:  # noqa: BLE001 - best-effort cleanup
                pass


def _job_volumes(engine) -> set[str]:
    return {v.name for v in engine.volumes.list() if v.name.startswith("gcl-")}


def _run_jobs(tool: str, repo: Path, variables: dict[str, str], *jobs: str) -> str:
    # What the generated file installs, overridden with this checkout (mounted below).
    variables = {"CAIS_PACKAGE": "/cais-src", **variables}
    command = [tool, *jobs, "--pull-policy", "if-not-present", "--cleanup", "--no-color"]
    # The job's 127.0.0.1 is the host's: the registries listen there.
    command += ["--network", "host", "--volume", f"{SOURCE}:/cais-src:ro"]
    for key, value in variables.items():
        command += ["--variable", f"{key}={value}"]
    done = subprocess.run(command, cwd=repo, capture_output=True, text=True, timeout=900)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log
    return log


def _ca_file_variable(repo: Path, ca_certs: list[Path]) -> None:
    """The proxy's CA as a File variable, as a GitLab project would set it."""
    bundle = "".join(cert.read_text() for cert in ca_certs)
    variables = {"CAIS_CA_CERT": {"type": "file", "values": {"*": bundle}}} if bundle else {}
    (repo / ".gitlab-ci-local-variables.yml").write_text(yaml.safe_dump(variables))


def _registry_variables(namespace: str) -> dict[str, str]:
    """The base image's mirror, and GitLab's predefined variables for the project's registry
    and the job's login."""
    return {
        "CAIS_BASE_REGISTRY": REGISTRY,
        "CI_REGISTRY": AUTH_REGISTRY,
        "CI_REGISTRY_IMAGE": namespace,
        "CI_REGISTRY_USER": REGISTRY_USER,
        "CI_REGISTRY_PASSWORD": REGISTRY_PASSWORD,
    }


def test_the_pipeline_tests_then_pushes_an_image_that_serves(
    tmp_path, gitlab_ci_local, auth_registry, registry, image_name, ca_certs, docker_config, engine
):
    repo = _repository(tmp_path, "flask")
    _ca_file_variable(repo, ca_certs)
    namespace = f"{AUTH_REGISTRY}/{image_name}"
    variables = _registry_variables(namespace)
    log = _run(gitlab_ci_local, engine, repo, variables)
    assert "PASS  test" in log and "PASS  build" in log, log
    assert re.search(r"^test +> .*\b1 passed\b", log, re.MULTILINE), log
    assert "build > no-docker-daemon-here" in log, log
    assert REGISTRY_PASSWORD not in log

    sha = _git(repo, "rev-parse", "--short=8", "HEAD")
    login = run_cais(
        "login", AUTH_REGISTRY, "-u", REGISTRY_USER, "--password-stdin", input=REGISTRY_PASSWORD
    )
    assert login.returncode == 0, login.stderr
    image = f"{namespace}/shop"
    digests = set()
    for tag in (sha, "0.1.0", "latest"):
        pulled = run_cais("pull", f"{image}:{tag}")
        assert pulled.returncode == 0, pulled.stderr
        digests.add(engine.images.get(f"{image}:{tag}").id)
    assert len(digests) == 1  # one image, three tags

    port = free_port()
    container = engine.containers.run(
        f"{image}:{sha}", detach=True, ports={"8000/tcp": ("127.0.0.1", port)}
    )
    try:
        answer = get_when_up(f"http://127.0.0.1:{port}/?name=Ana")
        assert answer.json() == {"message": "Hello, Ana!"}
    finally:
        container.remove(force=True)


def test_a_training_project_trains_then_pushes_an_image_that_serves_its_model(
    tmp_path, gitlab_ci_local, auth_registry, registry, image_name, ca_certs, docker_config, engine
):
    """The train job runs `cais train` and keeps the model store as the artifact the build
    job receives; the build job builds the saved model's serving image (proved in a scratch
    root: the job has no engine) and pushes it; pulled here, it answers predictions."""
    repo = _repository(tmp_path, "classifier")
    _ca_file_variable(repo, ca_certs)
    namespace = f"{AUTH_REGISTRY}/{image_name}"
    variables = _registry_variables(namespace)
    log = _run(gitlab_ci_local, engine, repo, variables, "train", "build")
    assert "PASS  train" in log and "PASS  build" in log, log
    assert "train > saved shop:1" in log, log
    assert "build > no-docker-daemon-here" in log, log
    assert "scratch root on this machine (no Docker Engine answered)" in log, log  # its proof
    store = repo / ".gitlab-ci-local" / "artifacts" / "train" / ".cais"
    saved = [p.parent for p in store.rglob("cais-model.json")]
    assert [p.name for p in saved] == ["1"], log

    login = run_cais(
        "login", AUTH_REGISTRY, "-u", REGISTRY_USER, "--password-stdin", input=REGISTRY_PASSWORD
    )
    assert login.returncode == 0, login.stderr
    sha = _git(repo, "rev-parse", "--short=8", "HEAD")
    image = f"{namespace}/shop:{sha}"
    pulled = run_cais("pull", image)
    assert pulled.returncode == 0, pulled.stderr
    labels = engine.images.get(image).labels
    assert labels["dev.cais.model.name"] == "shop" and labels["dev.cais.model.version"] == "1"
    port = free_port()
    container = engine.containers.run(image, detach=True, ports={"8080/tcp": ("127.0.0.1", port)})
    try:
        answer = post_when_up(
            f"http://127.0.0.1:{port}/predict", {"instances": ["livro romance capa dura"]}
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"] == ["livro"]
    finally:
        container.remove(force=True)
