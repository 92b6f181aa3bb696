"""What cais has deployed in an engine: Compose projects and Swarm stacks that run a cais image,
each service with its model, replicas, health and published ports.

Read in two requests on a single node: the containers (Compose services, and this node's Swarm
tasks; a container carries its image's labels) and the Swarm services with their task counts
(only on a swarm manager). A service with no container here (its tasks run on other nodes)
costs one inspection of its image.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cais.engine.client import engine_errors
from cais.errors import EngineError

if TYPE_CHECKING:
    import docker

__all__ = ["Deployment", "Model", "Port", "Service", "Update", "deployments", "read"]

COMPOSE_PROJECT = "com.docker.compose.project"
COMPOSE_SERVICE = "com.docker.compose.service"
COMPOSE_FILES = "com.docker.compose.project.config_files"
COMPOSE_ONEOFF = "com.docker.compose.oneoff"  # `docker-compose run`: a command, not a replica
STACK = "com.docker.stack.namespace"
SWARM_SERVICE_ID = "com.docker.swarm.service.id"
CAIS_VERSION = "dev.cais.version"  # every image cais builds has it
MODEL_NAME, MODEL_VERSION = "dev.cais.model.name", "dev.cais.model.version"
MODELS = "dev.cais.models"  # an image of several models: `name:version,name:version`

_HEALTH = re.compile(r"\((healthy|unhealthy|health: starting)\)")
# Worst first: a service shows the worst of its containers.
_ORDER = ("down", "unhealthy", "degraded", "starting", "running", "healthy")
_SERVICES_STATUS_API = (1, 41)  # GET /services?status=true: running and desired task counts


@dataclass(frozen=True)
class Model:
    name: str
    version: str


@dataclass(frozen=True)
class Port:
    """A port published on the host: `published->target/protocol` on every address, else
    `host_ip:published->target/protocol`."""

    published: int
    target: int
    protocol: str = "tcp"
    host_ip: str = "0.0.0.0"

    def __str__(self) -> str:
        where = "" if self.host_ip == "0.0.0.0" else f"{self.host_ip}:"
        return f"{where}{self.published}->{self.target}/{self.protocol}"


@dataclass(frozen=True)
class Update:
    """A Swarm service's last update, as the engine says it (`UpdateStatus`)."""

    state: str  # updating, paused, completed, rollback_started, rollback_paused, rollback_completed
    message: str

    @property
    def words(self) -> str:
        return {
            "completed": "updated",
            "paused": "update paused",
            "rollback_started": "rolling back",
            "rollback_paused": "rollback paused",
            "rollback_completed": "rolled back",
        }.get(self.state, self.state)


@dataclass(frozen=True)
class Service:
    name: str
    image: str
    models: tuple[Model, ...]  # empty for a service that serves no model (nginx, Prometheus)
    cais_version: str | None  # the cais that built its image; None: not a cais image
    running: int
    desired: int
    health: str  # healthy, running (no health check), starting, degraded, unhealthy, down, stopped
    ports: tuple[Port, ...] = ()
    update: Update | None = None  # Swarm only


@dataclass(frozen=True)
class Deployment:
    name: str  # the Compose project or the Swarm stack
    kind: str  # compose or swarm
    services: tuple[Service, ...]
    files: tuple[str, ...] = ()  # the Compose files it was started from


def read(client: docker.DockerClient) -> list[Deployment]:
    """The deployments in the engine `client` talks to: Compose projects first, then stacks."""
    import docker.errors

    with engine_errors():
        containers = client.api.containers(all=True)
    services = _swarm_services(client)
    inspected: dict[str, dict[str, str]] = {}
    for image in {_image(spec) for spec in services} - set(_task_labels(containers)):
        try:
            with engine_errors():
                config = client.api.inspect_image(image).get("Config") or {}
        except EngineError as exc:
            if not isinstance(exc.__cause__, docker.errors.NotFound):
                raise
            config = {}  # not on this node: the service's model is not known here
        inspected[image] = config.get("Labels") or {}
    return deployments(containers, services, inspected)


def _swarm_services(client: docker.DockerClient) -> list[dict]:
    """The services of stacks with their task counts; none when the engine is not a swarm
    manager (not in a swarm, or a worker), which is no error."""
    import docker.errors

    version = client.api.api_version
    try:
        with engine_errors():
            if tuple(int(p) for p in version.split(".")) >= _SERVICES_STATUS_API:
                return client.api.services(filters={"label": STACK}, status=True)
            manager = (client.api.info().get("Swarm") or {}).get("ControlAvailable")
    except EngineError as exc:
        cause = exc.__cause__
        if isinstance(cause, docker.errors.APIError) and cause.status_code == 503:
            return []
        raise
    if not manager:
        return []
    raise EngineError(
        f"The Docker Engine speaks API {version}, and reading Swarm services' replicas needs 1.41",
        hint="upgrade the engine to Docker 20.10 or newer",
    )


def deployments(
    containers: list[dict],
    services: list[dict],
    inspected: dict[str, dict[str, str]] | None = None,
) -> list[Deployment]:
    """Deployments from the engine's own answers: container summaries (`GET /containers/json`),
    services with status (`GET /services?status=true`), and the labels of the services' images
    that no container here carries (`GET /images/{name}/json`), by the services' image."""
    return _compose(containers) + _stacks(services, containers, inspected or {})


def _compose(containers: list[dict]) -> list[Deployment]:
    projects: dict[str, dict[str, list[dict]]] = {}
    for row in containers:
        labels = row.get("Labels") or {}
        project, service = labels.get(COMPOSE_PROJECT), labels.get(COMPOSE_SERVICE)
        if project and service and labels.get(COMPOSE_ONEOFF) != "True":
            projects.setdefault(project, {}).setdefault(service, []).append(row)
    found = []
    for project, by_service in sorted(projects.items()):
        rows = [row for group in by_service.values() for row in group]
        files = {
            file
            for row in rows
            for file in (row["Labels"].get(COMPOSE_FILES) or "").split(",")
            if file
        }
        services = tuple(_compose_service(s, group) for s, group in sorted(by_service.items()))
        if any(service.cais_version for service in services):  # else: not cais's
            found.append(Deployment(project, "compose", services, tuple(sorted(files))))
    return found


def _compose_service(name: str, rows: list[dict]) -> Service:
    running = [row for row in rows if row.get("State") == "running"]
    newest = max(rows, key=lambda row: row.get("Created", 0))  # after a change of image
    labels = newest.get("Labels") or {}
    return Service(
        name=name,
        image=str(newest.get("Image", "")),
        models=_models(labels),
        cais_version=labels.get(CAIS_VERSION),
        running=len(running),
        desired=len(rows),  # Compose keeps every container of a service meant to run
        health=_health(running, len(running), len(rows)),
        ports=tuple(
            dict.fromkeys(
                Port(int(p["PublicPort"]), int(p["PrivatePort"]), p.get("Type", "tcp"), p["IP"])
                for row in running
                for p in row.get("Ports") or []
                if p.get("PublicPort") and p.get("IP") != "::"  # the IPv4 binding says it
            )
        ),
    )


def _stacks(
    services: list[dict], containers: list[dict], inspected: dict[str, dict[str, str]]
) -> list[Deployment]:
    labels = {**inspected, **_task_labels(containers)}
    tasks: dict[str, list[dict]] = {}
    for row in containers:
        service_id = (row.get("Labels") or {}).get(SWARM_SERVICE_ID)
        if service_id and row.get("State") == "running":
            tasks.setdefault(service_id, []).append(row)
    stacks: dict[str, list[Service]] = {}
    for spec in services:
        stack = ((spec.get("Spec") or {}).get("Labels") or {}).get(STACK)
        if stack:
            stacks.setdefault(stack, []).append(
                _swarm_service(spec, stack, tasks.get(spec["ID"], []), labels.get(_image(spec), {}))
            )
    return [
        Deployment(stack, "swarm", tuple(sorted(found, key=lambda s: s.name)))
        for stack, found in sorted(stacks.items())
        if any(service.cais_version for service in found)
    ]


def _task_labels(containers: list[dict]) -> dict[str, dict[str, str]]:
    """The labels of the images Swarm tasks run here, by image as their service names it."""
    return {
        row["Image"]: row["Labels"]
        for row in containers
        if SWARM_SERVICE_ID in (row.get("Labels") or {}) and row.get("Image")
    }


def _image(spec: dict) -> str:
    return spec["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]


def _swarm_service(spec: dict, stack: str, tasks: list[dict], labels: dict[str, str]) -> Service:
    image = _image(spec)
    counts = spec.get("ServiceStatus") or {}
    running, desired = int(counts.get("RunningTasks", 0)), int(counts.get("DesiredTasks", 0))
    update = spec.get("UpdateStatus")
    return Service(
        name=spec["Spec"]["Name"].removeprefix(f"{stack}_"),
        image=image,
        models=_models(labels),
        cais_version=labels.get(CAIS_VERSION),
        running=running,
        desired=desired,
        # Swarm counts a task with a health check as running once it is healthy; this
        # node's containers of the service say more (starting, unhealthy)
        health=_health(tasks, running, desired),
        ports=tuple(
            Port(int(p["PublishedPort"]), int(p["TargetPort"]), p.get("Protocol", "tcp"))
            for p in (spec.get("Endpoint") or {}).get("Ports") or []
            if p.get("PublishedPort")
        ),
        update=Update(update.get("State", ""), update.get("Message", "")) if update else None,
    )


def _health(containers: list[dict], running: int, desired: int) -> str:
    """The worst of the running `containers`' health (from the engine's status text, `Up 3
    minutes (healthy)`); `degraded` when fewer than `desired` run, `down` when none does,
    `stopped` when none should."""
    if not desired:
        return "stopped"  # a Swarm service scaled to 0
    if not running:
        return "down"
    states = ["degraded"] if running < desired else []
    for row in containers:
        found = _HEALTH.search(str(row.get("Status", "")))
        states.append(found.group(1).removeprefix("health: ") if found else "running")
    return min(states or ["running"], key=_ORDER.index)


def _models(labels: dict[str, str]) -> tuple[Model, ...]:
    if labels.get(MODEL_NAME) and labels.get(MODEL_VERSION):
        return (Model(labels[MODEL_NAME], labels[MODEL_VERSION]),)
    pairs = (item.rpartition(":") for item in (labels.get(MODELS) or "").split(",") if item)
    return tuple(Model(name, version) for name, _, version in pairs if name and version)
