"""`cais deploy swarm --up / --down` on the real engine in swarm mode (a single-node swarm,
made by cais when the engine is in none, and never left: other tests share the engine), with
the nginx stand-in of scripts/test-infra, under load from tests/load.py."""

from __future__ import annotations

import shutil
import socket
import time
import uuid

import httpx
import pytest
import yaml

from tests.integration.test_deploy_compose import _image, _one_error
from tests.load import Load
from tests.support import CA_FOLDER, free_port, run_cais, text_model, unavailable

pytestmark = pytest.mark.engine

STACK_LABEL = "com.docker.stack.namespace"


@pytest.fixture(scope="module")
def versions(tmp_path_factory, engine, base_image, registry):
    """Versions 1 and 2 of one saved model (a unique name), each built by `cais build` and
    pushed to the open registry: (name, environment). They answer with their version."""
    import cais as cais_api
    from cais.deploy.compose import nginx_image

    if shutil.which("docker") is None:
        unavailable("the docker CLI is not installed (it runs `docker stack deploy`)")
    try:
        engine.images.get(nginx_image())
    except Exception:  # noqa: BLE001 - any failure means the stand-in is not there
        unavailable(f"{nginx_image()} is not in the engine (scripts/test-infra builds it)")
    home = tmp_path_factory.mktemp("cais-home")
    name = f"cais-test-{uuid.uuid4().hex[:8]}"
    env = {"CAIS_HOME": str(home)}
    certs = [a for c in sorted(CA_FOLDER.glob("*.crt")) for a in ("--ca-cert", str(c))]
    for version in ("1", "2"):
        reference = cais_api.save_model(text_model(), name, input_example=["livro"], home=home)
        assert reference == f"{name}:{version}"
        built = run_cais("build", reference, *certs, env=env)
        assert built.returncode == 0, built.stderr
        engine.images.get(reference).tag(f"{registry}/{name}", tag=version)
        for line in engine.api.push(f"{registry}/{name}", tag=version, stream=True, decode=True):
            assert "error" not in line, line
    yield name, env
    for version in ("1", "2"):
        for tag in (f"{name}:{version}", f"{registry}/{name}:{version}"):
            try:
                engine.images.remove(tag, force=True)
            except Exception:  # noqa: BLE001 - best-effort cleanup
                pass


@pytest.fixture
def stack(engine):
    """A unique stack name; whatever it left is removed after the test."""
    import subprocess

    name = f"cais-test-{uuid.uuid4().hex[:8]}"
    yield name
    if _left(engine, name):
        subprocess.run(["docker", "stack", "rm", name], capture_output=True)
        for _ in range(120):
            if not _left(engine, name):
                break
            time.sleep(0.5)
    for volume in engine.volumes.list(filters={"label": f"{STACK_LABEL}={name}"}):
        volume.remove(force=True)


def _left(engine, name: str) -> list[str]:
    label = {"label": f"{STACK_LABEL}={name}"}
    return (
        [s.name for s in engine.services.list(filters=label)]
        + [c["Id"] for c in engine.api.containers(all=True, filters=label)]  # one request
        + [n.name for n in engine.networks.list(filters=label)]
        + [v.name for v in engine.volumes.list(filters=label)]
    )


def _versions(url: str, count: int = 20) -> set[str]:
    answers = [httpx.post(url, json={"instances": ["livro"]}, timeout=10) for _ in range(count)]
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    return {a.json()["version"] for a in answers}


def test_rolling_updates_drop_no_request_and_a_failed_one_is_rolled_back(
    cais, engine, versions, registry, stack, tmp_path
):
    name, env = versions
    port = free_port()
    file = tmp_path / "deploy" / "stack.yaml"
    args = ("-o", str(file), "--port", str(port), "--name", stack, "--monitoring", "--up")
    up = cais("deploy", "swarm", f"{name}:1", *args, env=env)
    assert up.returncode == 0, up.stderr
    assert f"{stack} is up to date" in up.stderr
    spec = yaml.safe_load(file.read_text())
    assert spec["services"]["api"]["image"].startswith(f"{registry}/{name}:1@sha256:")
    (api,) = engine.services.list(filters={"name": f"{stack}_api"})
    assert api.attrs["Spec"]["Mode"]["Replicated"]["Replicas"] == 2
    assert api.attrs["Spec"]["EndpointSpec"]["Mode"] == "dnsrr"
    url = f"http://127.0.0.1:{port}/predict"
    assert _versions(url) == {"1"}

    # version 2 under a steady load: nothing fails, and then only version 2 answers
    with Load(url, {"instances": ["livro"]}, limit_s=400) as load:
        time.sleep(2)
        rolled = cais("deploy", "swarm", f"{name}:2", *args, env=env)
        after = time.monotonic()
        time.sleep(2)
    assert rolled.returncode == 0, rolled.stderr
    assert load.failed == [], load.failed[:10]
    assert {a.version for a in load.answers} == {"1", "2"}
    assert {a.version for a in load.between(after, float("inf"))} == {"2"}
    assert _versions(url) == {"2"}
    assert len(api.tasks(filters={"desired-state": "running"})) == 2

    # a version that never gets healthy: rolled back, said so, and still nothing fails
    broken = f"{name}-unhealthy:3"
    # the version 2 image with a health check that never passes
    _image(
        engine,
        broken,
        f"FROM {registry}/{name}:2\n"
        'HEALTHCHECK --interval=2s CMD ["python", "-c", "raise SystemExit(1)"]\n',
    )
    try:
        with Load(url, {"instances": ["livro"]}, limit_s=400) as load:
            failed = cais("deploy", "swarm", broken, *args, "--timeout", "240", env=env)
    finally:
        engine.images.remove(broken, force=True)
    assert failed.returncode == 1, failed.stderr
    (error,) = [line for line in failed.stderr.splitlines() if line.startswith("error:")]
    assert error.startswith(f"error: The update of `api` in `{stack}` was rolled back"), error
    assert "never got" in failed.stderr and "healthy" in failed.stderr
    assert "Traceback" not in failed.stderr
    assert load.failed == [], load.failed[:10]
    assert {a.version for a in load.answers} == {"2"}
    assert _versions(url) == {"2"}

    down = cais("deploy", "swarm", "--down", "-o", str(file), env=env)
    assert down.returncode == 0, down.stderr
    assert _left(engine, stack) == []


# ------------------------------------------------------------------ failures, one sentence each


@pytest.mark.parametrize(
    ("argument", "says"),
    [
        ("no-such-model:1", "`no-such-model:1` is neither a saved model nor an image"),
        ("127.0.0.1:5000/no/such-image:1", "The image `127.0.0.1:5000/no/such-image:1` is not"),
    ],
)
def test_unknown_model_or_missing_image(cais, engine, tmp_path, argument, says):
    done = cais("deploy", "swarm", argument, "--up", cwd=tmp_path, env={"CAIS_HOME": str(tmp_path)})
    assert says in _one_error(done)
    assert not (tmp_path / "stack.yaml").exists()


@pytest.mark.parametrize("address", ["0.0.0.0", "127.0.0.1"])
def test_port_taken(cais, engine, versions, stack, tmp_path, address):
    name, env = versions
    with socket.socket() as taken:
        taken.bind((address, 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = cais(
            "deploy", "swarm", f"{name}:1", "--port", str(port), "--name", stack, "--up",
            cwd=tmp_path, env=env,
        )  # fmt: skip
    assert f"The port {port} is taken" in _one_error(done)
    assert _left(engine, stack) == []
    assert not (tmp_path / "stack.yaml").exists()


def test_down_of_a_stack_that_is_not_there(cais, engine, stack, tmp_path):
    done = cais("deploy", "swarm", "--down", "--name", stack, cwd=tmp_path)
    assert f"There is no stack `{stack}`" in _one_error(done)
