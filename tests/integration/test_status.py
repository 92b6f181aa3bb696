"""`cais status` on the real engine: a deployment made by `cais deploy compose --up`, and a
stack made by `docker stack deploy` on the engine's single-node swarm."""

from __future__ import annotations

import json
import subprocess
import time
import uuid

import pytest

from tests.integration.test_deploy_compose import compose_ready, project  # noqa: F401 - fixtures
from tests.support import free_port, unavailable

pytestmark = pytest.mark.engine

STACK_LABEL = "com.docker.stack.namespace"


def _deployment(cais, env, name: str) -> dict | None:
    listed = cais("status", "--format", "json", env=env)
    assert listed.returncode == 0, listed.stderr
    return next((d for d in json.loads(listed.stdout) if d["name"] == name), None)


def _services(deployment: dict) -> dict[str, dict]:
    return {service["name"]: service for service in deployment["services"]}


def _row(table: str, deployment: str) -> list[str]:
    """The words of the table's row of the `api` service of `deployment`."""
    rows = [line.split() for line in table.splitlines()]
    return next(row for row in rows if row[:1] == [deployment] and row[2:3] == ["api"])


def _until(read, done, tries: int = 120):
    """read() until done(value) (bounded); the last value read."""
    for _ in range(tries):
        value = read()
        if done(value):
            break
        time.sleep(1)
    return value


def test_a_compose_deployment_shows_healthy_then_down_when_its_api_stops(
    cais,
    engine,
    pushed_model,
    compose_ready,  # noqa: F811 - the fixture imported above
    project,  # noqa: F811
    tmp_path,
):
    reference, env = pushed_model
    name, version = reference.split(":")
    port = free_port()
    file = tmp_path / "compose.yaml"
    up = cais(
        "deploy", "compose", reference, "-o", str(file), "--monitoring", "--port", str(port),
        "--name", project, "--up", env=env,
    )  # fmt: skip
    assert up.returncode == 0, up.stderr

    deployment = _deployment(cais, env, project)
    assert deployment is not None
    assert (deployment["kind"], deployment["files"]) == ("compose", [str(file)])
    services = _services(deployment)
    assert set(services) == {"api", "proxy", "prometheus"}
    api = services["api"]
    assert api["models"] == [{"name": name, "version": version}]
    assert api["image"].startswith(f"127.0.0.1:5000/{name}:{version}@sha256:")
    assert (api["running"], api["desired"], api["health"]) == (1, 1, "healthy")
    assert services["prometheus"]["health"] == "healthy"
    assert services["proxy"]["ports"] == [
        {"published": port, "target": 80, "protocol": "tcp", "host_ip": "0.0.0.0"}
    ]
    table = cais("status", env=env)
    assert table.returncode == 0, table.stderr
    assert _row(table.stdout, project) == [project, "compose", "api", reference, "1/1", "healthy"]

    container = engine.containers.list(
        filters={
            "label": [f"com.docker.compose.project={project}", "com.docker.compose.service=api"]
        }
    )[0]
    container.stop()
    api = _services(_deployment(cais, env, project))["api"]
    assert (api["running"], api["desired"], api["health"]) == (0, 1, "down")
    assert _services(_deployment(cais, env, project))["proxy"]["health"] == "running"

    down = cais("deploy", "compose", "--down", "-o", str(file), env=env)
    assert down.returncode == 0, down.stderr
    assert _deployment(cais, env, project) is None


@pytest.fixture
def swarm(engine):
    """The engine in a swarm (a single-node one is made when it is in none; it is never left:
    other tests may be using it)."""
    import docker.errors

    if engine.info()["Swarm"]["LocalNodeState"] != "active":
        try:
            engine.swarm.init(advertise_addr="127.0.0.1")
        except docker.errors.APIError as exc:
            if "already part of a swarm" not in str(exc):  # made meanwhile by another test
                unavailable(f"the engine cannot start a swarm: {exc}")
    if not engine.info()["Swarm"]["ControlAvailable"]:
        unavailable("the engine is a swarm worker, and only a manager lists services")
    return engine


@pytest.fixture
def stack(swarm):
    """A unique stack name; the stack is removed after the test."""
    name = f"cais-test-{uuid.uuid4().hex[:8]}"
    yield name
    subprocess.run(["docker", "stack", "rm", name], capture_output=True)
    for _ in range(60):  # `stack rm` returns before its network is gone
        if not swarm.networks.list(filters={"label": f"{STACK_LABEL}={name}"}):
            break
        time.sleep(1)


def test_a_swarm_stack_shows_its_replicas_model_and_update(
    cais, registry, pushed_model, stack, tmp_path
):
    from cais.engine.client import docker_cli

    cli = docker_cli()
    if cli is None:
        unavailable("the docker CLI is not installed, and `docker stack deploy` is in it")
    reference, env = pushed_model
    name, version = reference.split(":")
    # This kernel has no IPVS: the API without a virtual IP, and nothing published.
    file = tmp_path / "stack.yaml"
    file.write_text(
        f"""\
version: "3.8"
services:
  api:
    image: {registry}/{name}:{version}
    deploy:
      replicas: 2
      endpoint_mode: dnsrr
      update_config:
        order: start-first
"""
    )
    deployed = subprocess.run(
        [cli, "stack", "deploy", "--compose-file", str(file), stack], capture_output=True, text=True
    )
    assert deployed.returncode == 0, deployed.stderr

    def api() -> dict | None:
        found = _deployment(cais, env, stack)
        return _services(found)["api"] if found else None

    service = _until(api, lambda s: s is not None and s["running"] == 2)
    assert service is not None
    assert service["models"] == [{"name": name, "version": version}]
    assert (service["running"], service["desired"], service["health"]) == (2, 2, "healthy")
    assert service["image"].startswith(f"{registry}/{name}:{version}@sha256:")
    assert service["ports"] == []
    table = cais("status", env=env).stdout
    assert _row(table, stack) == [stack, "swarm", "api", reference, "2/2", "healthy"]

    # an update shows while it runs and once it is done
    updated = subprocess.run(
        [cli, "service", "update", "--detach", "--force", f"{stack}_api"],
        capture_output=True,
        text=True,
    )
    assert updated.returncode == 0, updated.stderr
    service = _until(api, lambda s: (s["update"] or {}).get("state") == "completed", tries=180)
    assert service["update"] == {"state": "completed", "message": "update completed"}
    table = cais("status", env=env).stdout
    assert _row(table, stack) == [stack, "swarm", "api", reference, "2/2", "healthy", "(updated)"]
