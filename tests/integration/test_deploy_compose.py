"""`cais deploy compose --up / --down` on the real engine with Debian's docker-compose and the
nginx and Prometheus stand-ins of scripts/test-infra."""

from __future__ import annotations

import io
import shutil
import socket
import tarfile
import time
import uuid

import httpx
import pytest
import yaml

from tests.support import free_port, text_model, unavailable

pytestmark = pytest.mark.engine

PROJECT_LABEL = "com.docker.compose.project"


@pytest.fixture(scope="module")
def compose_ready(engine):
    from cais.deploy.compose import nginx_image, prometheus_image

    if shutil.which("docker-compose") is None:
        unavailable("docker-compose is not installed (scripts/test-infra installs it)")
    for image in (nginx_image(), prometheus_image()):
        try:
            engine.images.get(image)
        except Exception:  # noqa: BLE001 - any failure means the stand-in is not there
            unavailable(f"{image} is not in the engine (scripts/test-infra builds it)")


@pytest.fixture(scope="module")
def served(pushed_model, compose_ready):
    return pushed_model


@pytest.fixture
def project(engine):
    """A unique Compose project name; whatever it left is removed after the test."""
    name = f"cais-test-{uuid.uuid4().hex[:8]}"
    yield name
    label = {"label": f"{PROJECT_LABEL}={name}"}
    for container in engine.containers.list(all=True, filters=label, ignore_removed=True):
        container.remove(force=True, v=True)
    for network in engine.networks.list(filters=label):
        network.remove()
    for volume in engine.volumes.list(filters=label):
        volume.remove(force=True)


def _left(engine, project: str) -> list[str]:
    label = {"label": f"{PROJECT_LABEL}={project}"}
    return (
        [c.name for c in engine.containers.list(all=True, filters=label, ignore_removed=True)]
        + [n.name for n in engine.networks.list(filters=label)]
        + [v.name for v in engine.volumes.list(filters=label)]
    )


def _statuses_until(url: str, want: int, tries: int = 40) -> list[int]:
    """POST a prediction until the proxy answers `want` (bounded); every status seen."""
    seen = []
    for _ in range(tries):
        try:
            seen.append(httpx.post(url, json={"instances": ["livro"]}, timeout=10).status_code)
        except httpx.HTTPError:
            seen.append(0)
        if seen[-1] == want:
            break
        time.sleep(0.5)
    return seen


def test_up_serves_through_nginx_until_the_api_stops_and_down_removes_everything(
    cais, engine, served, project, tmp_path
):
    reference, env = served
    port = free_port()
    file = tmp_path / "deploy" / "compose.yaml"
    up = cais(
        "deploy", "compose", reference, "-o", str(file), "--monitoring", "--port", str(port),
        "--name", project, "--up", env=env,
    )  # fmt: skip
    assert up.returncode == 0, up.stderr
    assert f"{project} is up" in up.stderr

    services = yaml.safe_load(file.read_text())["services"]
    assert services["api"]["image"].startswith(f"127.0.0.1:5000/{reference}@sha256:")
    running = {
        c.labels["com.docker.compose.service"]: c
        for c in engine.containers.list(filters={"label": f"{PROJECT_LABEL}={project}"})
    }
    assert set(running) == {"api", "proxy", "prometheus"}
    for service in ("api", "prometheus"):
        assert running[service].attrs["State"]["Health"]["Status"] == "healthy"
    assert running["api"].attrs["HostConfig"]["Memory"] == 1024**3
    assert running["api"].attrs["HostConfig"]["PortBindings"] in (None, {})  # only nginx

    url = f"http://127.0.0.1:{port}/predict"
    answer = httpx.post(url, json={"instances": ["livro de bolo", "jogo de luta"]}, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"] == list(
        text_model().predict(["livro de bolo", "jogo de luta"])
    )
    # Prometheus knows the API as its scrape target (once its discovery has run: being
    # healthy means its web server answers, not that it has read its targets yet)
    wanted = b'"scrapeUrl":"http://api:8080/metrics"'
    for _ in range(60):
        targets = running["prometheus"].exec_run(
            ["wget", "-qO-", "http://127.0.0.1:9090/api/v1/targets"]
        )
        if wanted in targets.output:
            break
        time.sleep(0.5)
    assert wanted in targets.output, targets.output
    # the monitoring plugin, through nginx, with the model's recorded example
    check = cais("check", f"http://127.0.0.1:{port}", env=env)
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.startswith(f"CAIS OK - {reference} answered"), check.stdout

    running["api"].stop()
    seen = _statuses_until(url, 502)
    assert seen[-1] == 502, seen  # nginx says the API is gone
    assert 200 not in seen
    check = cais("check", f"http://127.0.0.1:{port}", env=env)
    assert check.returncode == 2, check.stdout + check.stderr
    assert check.stdout.startswith("CAIS CRITICAL - "), check.stdout
    running["api"].start()  # back, at whatever address: nginx finds it again
    seen = _statuses_until(url, 200, tries=120)
    assert seen[-1] == 200, seen

    down = cais("deploy", "compose", "--down", "-o", str(file), env=env)
    assert down.returncode == 0, down.stderr
    assert _left(engine, project) == []


def test_up_again_keeps_the_running_deployment(cais, engine, served, project, tmp_path):
    """A second `--up` of a running deployment is not refused for the port it holds itself."""
    reference, env = served
    port = free_port()
    file = tmp_path / "compose.yaml"
    args = ("deploy", "compose", reference, "-o", str(file), "--port", str(port), "--name", project)
    for _ in range(2):
        up = cais(*args, "--up", env=env)
        assert up.returncode == 0, up.stderr
    assert httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=5).status_code == 200
    assert cais(*args, "--down", env=env).returncode == 0
    assert _left(engine, project) == []


def test_without_a_proxy_the_api_is_published(cais, engine, served, project, tmp_path):
    reference, env = served
    port = free_port()
    file = tmp_path / "compose.yaml"
    args = ("deploy", "compose", reference, "-o", str(file), "--port", str(port), "--name", project)
    up = cais(*args, "--proxy", "none", "--up", env=env)
    assert up.returncode == 0, up.stderr
    (api,) = engine.containers.list(filters={"label": f"{PROJECT_LABEL}={project}"})
    assert api.labels["com.docker.compose.service"] == "api"
    answer = httpx.post(f"http://127.0.0.1:{port}/predict", json={"instances": ["livro"]})
    assert answer.json()["predictions"] == list(text_model().predict(["livro"]))
    assert cais("deploy", "compose", "--down", "-o", str(file), env=env).returncode == 0
    assert _left(engine, project) == []


# ------------------------------------------------------------------ failures, one sentence each


def _one_error(done) -> str:
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("error: "), done.stderr
    assert "Traceback" not in done.stderr
    return done.stderr


@pytest.mark.parametrize(
    ("argument", "says"),
    [
        ("no-such-model:1", "`no-such-model:1` is neither a saved model nor an image"),
        ("no-such-model", "`no-such-model` is neither a saved model nor an image"),
        ("127.0.0.1:5000/no/such-image:1", "The image `127.0.0.1:5000/no/such-image:1` is not"),
    ],
)
def test_unknown_model_or_missing_image(cais, engine, tmp_path, argument, says):
    done = cais("deploy", "compose", argument, cwd=tmp_path, env={"CAIS_HOME": str(tmp_path)})
    assert says in _one_error(done)
    assert not (tmp_path / "compose.yaml").exists()


def test_a_saved_model_without_an_image_or_that_version(cais, engine, tmp_path):
    import cais as cais_api

    home = tmp_path / "home"
    name = f"cais-test-{uuid.uuid4().hex[:8]}"
    cais_api.save_model(text_model(), name, input_example=["livro"], home=home)
    env = {"CAIS_HOME": str(home)}
    for argument, says in [
        (name, f"The model `{name}:1` has no image in the engine"),
        (f"{name}:1", f"The model `{name}:1` has no image in the engine"),
        (f"{name}:7", f"The model `{name}` has no version or alias `7`"),
    ]:
        done = cais("deploy", "compose", argument, cwd=tmp_path, env=env)
        assert says in _one_error(done)


def test_docker_compose_absent(cais, served, tmp_path):
    reference, env = served
    empty = tmp_path / "bin"
    empty.mkdir()
    done = cais(
        "deploy", "compose", reference, "--up", cwd=tmp_path, env={**env, "PATH": str(empty)}
    )
    assert "`docker-compose` is not installed" in _one_error(done)
    assert not (tmp_path / "compose.yaml").exists()  # said before anything is written
    written = cais("deploy", "compose", reference, cwd=tmp_path, env=env)
    assert written.returncode == 0, written.stderr
    done = cais("deploy", "compose", "--down", cwd=tmp_path, env={**env, "PATH": str(empty)})
    assert "`docker-compose` is not installed" in _one_error(done)


@pytest.mark.parametrize("address", ["0.0.0.0", "127.0.0.1"])
def test_port_taken(cais, engine, served, project, tmp_path, address):
    reference, env = served
    with socket.socket() as taken:
        taken.bind((address, 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = cais(
            "deploy", "compose", reference, "--port", str(port), "--name", project, "--up",
            cwd=tmp_path, env=env,
        )  # fmt: skip
    assert f"The port {port} is taken" in _one_error(done)
    assert _left(engine, project) == []
    assert not (tmp_path / "compose.yaml").exists()


def _image(engine, tag: str, dockerfile: str) -> None:
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile.encode())
        tar.addfile(info, io.BytesIO(dockerfile.encode()))
    data.seek(0)
    engine.images.build(fileobj=data, custom_context=True, tag=tag, rm=True)


@pytest.mark.parametrize(
    ("dockerfile", "state"),
    [
        # runs, but its health check never passes
        (
            'HEALTHCHECK --interval=1s CMD ["python", "-c", "raise SystemExit(1)"]\n'
            'CMD ["python", "-c", "print(\'starting\', flush=True); import time; time.sleep(600)"]',
            "is unhealthy",
        ),
        # exits at once
        (
            'HEALTHCHECK --interval=1s CMD ["python", "-c", "pass"]\n'
            'CMD ["python", "-c", "print(\'no model here\', flush=True); raise SystemExit(3)"]',
            "exited",  # with code 3, or restarted by its policy already
        ),
    ],
)
def test_a_service_that_never_gets_healthy(
    cais, engine, base_image, compose_ready, image_name, project, tmp_path, dockerfile, state
):
    tag = f"{image_name}:1"
    _image(engine, tag, f"FROM {base_image}\nEXPOSE 8080\n{dockerfile}\n")
    file = tmp_path / "compose.yaml"
    done = cais(
        "deploy", "compose", tag, "-o", str(file), "--name", project, "--port", str(free_port()),
        "--up", "--timeout", "120", env={"CAIS_HOME": str(tmp_path)},
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    (error,) = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert error.startswith(f"error: The service `api` of `{project}` {state}"), done.stderr
    assert "starting" in done.stderr or "no model here" in done.stderr  # its last log lines
    assert "Traceback" not in done.stderr
    down = cais("deploy", "compose", "--down", "-o", str(file))
    assert down.returncode == 0, down.stderr
    assert _left(engine, project) == []
