"""Apply a Compose deployment with Debian's `docker-compose` (1.29), and wait for its health.

`docker-compose up -d` returns when the containers are started (and, through
`depends_on: service_healthy`, once what they wait for is healthy); it does not wait for the
last services' own health. cais watches every container of the project until each is healthy
(running, for one without a health check) and then asks the published port itself, so `--up`
returns only when requests go through.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cais.engine.client import engine_errors
from cais.errors import DeployError

if TYPE_CHECKING:
    import docker

__all__ = ["Project", "answer", "down", "port_free", "preflight", "up"]

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
LOG_LINES = 15


@dataclass(frozen=True)
class Project:
    file: Path
    name: str
    services: tuple[str, ...]
    port: int  # published on the host
    front: str  # the service published on it
    ready_path: str | None = "/health/ready"  # asked through the published port; None: not


def preflight(client: docker.DockerClient, project: Project) -> None:
    """What would stop `up` before it starts, said before any file is written."""
    _compose(project)
    if not _running(client, project.name):  # a running project holds its own port
        port_free(project.port)


def up(client: docker.DockerClient, project: Project, timeout: float) -> None:
    command = _compose(project)
    deadline = time.monotonic() + timeout
    try:
        # up waits for the services others depend on, without end when one keeps restarting
        result = subprocess.run(
            [*command, "up", "--detach", "--remove-orphans"],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        _failed_service(client, project)
        raise _timed_out(client, project, timeout) from None
    if result.returncode != 0:
        _failed_service(client, project)  # an unhealthy or exited service says more
        raise _compose_failed(project, "up", result)
    while not _healthy(client, project):
        if time.monotonic() > deadline:
            raise _timed_out(client, project, timeout)
        time.sleep(0.5)
    if project.ready_path:
        _answers(client, project, deadline)


def down(project: Project) -> None:
    result = subprocess.run(
        [*_compose(project), "down", "--volumes", "--remove-orphans"],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise _compose_failed(project, "down", result)


def _compose_failed(
    project: Project, command: str, result: subprocess.CompletedProcess[str]
) -> DeployError:
    lines = [line for line in (result.stderr or result.stdout).splitlines() if line.strip()]
    last = lines[-1].removeprefix("ERROR: ").strip().rstrip(".") if lines else "no output"
    return DeployError(
        f"`docker-compose {command}` failed for `{project.name}`: {last}",
        hint=f"see `docker-compose -f {project.file} logs`",
        log_tail=lines[-LOG_LINES:],
    )


def _compose(project: Project) -> list[str]:
    path = shutil.which("docker-compose")
    if path is None:
        raise DeployError(
            "`docker-compose` is not installed, and it starts and stops Compose deployments",
            hint="install it (`sudo apt-get install docker-compose`); without `--up` or "
            "`--down`, cais writes the files alone",
        )
    return [path, "--file", str(project.file), "--project-name", project.name]


def port_free(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            raise DeployError(
                f"The port {port} is taken on this machine",
                hint="choose another with `--port N`, or stop what is using it",
            ) from None


def _containers(client: docker.DockerClient, name: str) -> list:
    with engine_errors():
        # ignore_removed: a container removed between the listing and its inspection
        # (docker-compose replacing it) is gone, not an error
        return client.containers.list(
            all=True, filters={"label": f"{PROJECT_LABEL}={name}"}, ignore_removed=True
        )


def _running(client: docker.DockerClient, name: str) -> bool:
    return any(c.status == "running" for c in _containers(client, name))


def _health(container) -> str:
    """`healthy`, `running` (no health check), `starting`, `unhealthy`, or the container's
    status when it does not run (`exited`, `restarting`, `created`, …)."""
    state = container.attrs.get("State") or {}
    if state.get("Status") != "running":
        return str(state.get("Status"))
    return str((state.get("Health") or {}).get("Status", "running"))


def _problem(container) -> str | None:
    """What is wrong with a service's container for good, in words; None while it may still
    become healthy. A container that exited and was restarted by its policy is wrong too."""
    state = container.attrs.get("State") or {}
    health = _health(container)
    if health == "unhealthy":
        return "is unhealthy"
    restarts = int(container.attrs.get("RestartCount") or 0)
    if health in ("exited", "dead", "restarting") or (restarts and health != "healthy"):
        code = state.get("ExitCode")
        return (
            "exited"
            + (f" with code {code}" if code else "")
            + (f" and was restarted {restarts} time{'s' * (restarts > 1)}" if restarts else "")
        )
    return None


def _by_service(client: docker.DockerClient, project: Project) -> dict[str, object]:
    return {c.labels.get(SERVICE_LABEL): c for c in _containers(client, project.name)}


def _healthy(client: docker.DockerClient, project: Project) -> bool:
    _failed_service(client, project)
    found = _by_service(client, project)
    return all(s in found and _health(found[s]) in ("healthy", "running") for s in project.services)


def _failed_service(client: docker.DockerClient, project: Project) -> None:
    found = _by_service(client, project)
    for service in project.services:
        problem = _problem(found[service]) if service in found else None
        if problem:
            raise _service_error(client, project, service, problem)


def _timed_out(client: docker.DockerClient, project: Project, timeout: float) -> DeployError:
    found = _by_service(client, project)
    waiting = [
        s
        for s in project.services
        if s not in found or _health(found[s]) not in ("healthy", "running")
    ]
    service = (waiting or list(project.services))[0]
    return _service_error(client, project, service, f"is not healthy after {timeout:g} s")


def _service_error(
    client: docker.DockerClient, project: Project, service: str, what: str
) -> DeployError:
    container = _by_service(client, project).get(service)
    lines: list[str] = []
    if container is not None:
        with engine_errors():
            text = container.logs(tail=LOG_LINES).decode(errors="replace")
        lines = text.splitlines()
    return DeployError(
        f"The service `{service}` of `{project.name}` {what}"
        + ("; its last log lines:" if lines else " and wrote no log"),
        hint=f"`docker-compose -f {project.file} logs {service}` shows more; "
        f"`cais deploy compose --down -o {project.file}` removes the deployment",
        log_tail=lines,
    )


def _answers(client: docker.DockerClient, project: Project, deadline: float) -> None:
    """The published port answers the readiness path: nginx runs, has its config, and
    reaches the API (nginx's image has no HTTP client for a health check of its own)."""
    url = f"http://127.0.0.1:{project.port}{project.ready_path}"
    status = answer(url, deadline)
    if status is not None:
        raise _service_error(client, project, project.front, f"does not answer `{url}` ({status})")


def answer(url: str, deadline: float) -> str | None:
    """Ask `url` until it answers 200 (None) or `deadline` passes: the last status, or the
    error's name, then."""
    import httpx

    status = "no answer"
    while time.monotonic() < deadline:
        try:
            status = str(httpx.get(url, timeout=2).status_code)
            if status == "200":
                return None
        except httpx.HTTPError as exc:
            status = type(exc).__name__
        time.sleep(0.5)
    return status
