"""Deploy a stack file to a swarm with `docker stack deploy`, wait for its rolling update to
finish, and remove a stack with `docker stack rm` until nothing of it is left.

The engine's API has no stacks (they are the CLI's: services, networks and configs labelled
with the stack's name), so cais runs Debian's `docker` CLI for them and reads the result
through the API. `docker stack deploy` returns once it has asked for the services; an update
then rolls on, and may be rolled back, with the command's exit code 0 all the same. cais
watches each service until its update is `completed` and every replica runs the new spec, and
says when Swarm rolled an update back or paused it, with the failed replica's error and log.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cais.deploy.runner import LOG_LINES, answer, port_free
from cais.engine.client import docker_cli, engine_errors
from cais.errors import DeployError

if TYPE_CHECKING:
    import docker

__all__ = ["Stack", "deploy", "preflight", "remove"]

STACK_LABEL = "com.docker.stack.namespace"
# Update states that end an update without the new spec running everywhere.
_FAILED = {
    "rollback_completed": "was rolled back",
    "rollback_paused": "was paused while it rolled back",
    "paused": "was paused",
}
_RUNNING = ("updating", "rollback_started")
_GONE_TASK = ("failed", "rejected")


@dataclass(frozen=True)
class Stack:
    file: Path
    name: str
    port: int  # published on the host
    front: str  # the service published on it
    ready_path: str | None = "/health/ready"  # asked through the published port; None: not


def preflight(client: docker.DockerClient, stack: Stack) -> bool:
    """What would stop `deploy` before it starts, said before any file is written. Makes the
    engine a single-node swarm when it is in none: True when it did."""
    _cli()
    joined = _manager(client)
    if not _services(client, stack.name):  # a running stack holds its own port
        port_free(stack.port)
    return joined


def deploy(client: docker.DockerClient, stack: Stack, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    before = {s.name: s.attrs for s in _services(client, stack.name)}
    # --resolve-image never: the file names pushed images by digest already; an image never
    # pushed is on this engine only, and asking a registry for it would only wait
    _run(
        stack,
        "deploy",
        ["--compose-file", str(stack.file.resolve()), "--prune", "--resolve-image", "never"],
        timeout,
    )
    while True:
        services = _services(client, stack.name)
        waiting = [s for s in services if not _settled(client, stack, s, before.get(s.name))]
        if services and not waiting:
            break
        if time.monotonic() > deadline:
            raise _timed_out(client, stack, waiting or services, timeout)
        time.sleep(1)
    if stack.ready_path:
        url = f"http://127.0.0.1:{stack.port}{stack.ready_path}"
        status = answer(url, deadline)
        if status is not None:
            raise DeployError(
                f"The service `{stack.front}` of `{stack.name}` does not answer `{url}` ({status})",
                hint=f"`docker service logs {stack.name}_{stack.front}` shows why",
            )


def remove(client: docker.DockerClient, name: str, timeout: float) -> None:
    """`docker stack rm`, then wait until the stack's services, containers and networks are
    gone, and remove its volumes (which `docker stack rm` keeps)."""
    _cli()
    if not _manager(client, join=False) or not _left(client, name):
        raise DeployError(
            f"There is no stack `{name}` on this engine", hint="`docker stack ls` lists the stacks"
        )
    deadline = time.monotonic() + timeout
    _run(Stack(file=Path(), name=name, port=0, front=""), "rm", [], timeout)
    while left := _left(client, name):
        if time.monotonic() > deadline:
            raise DeployError(
                f"The stack `{name}` is not gone after {timeout:g} s: {', '.join(left)} still there",
                hint="`docker stack ps` shows its tasks; run `cais deploy swarm --down` again",
            )
        time.sleep(0.5)
    label = {"label": f"{STACK_LABEL}={name}"}
    with engine_errors():
        for volume in client.volumes.list(filters=label):
            volume.remove(force=True)


def _cli() -> str:
    path = docker_cli()
    if path is None:
        raise DeployError(
            "The `docker` command is not installed, and Swarm stacks are deployed and removed "
            "with it",
            hint="install it (`sudo apt-get install docker.io`); without `--up` or `--down`, "
            "cais writes the files alone",
        )
    return path


def _manager(client: docker.DockerClient, *, join: bool = True) -> bool:
    """Whether the engine is a swarm's manager; one in no swarm becomes its own single-node
    swarm's when `join` (then True: it had to), else is none (False)."""
    with engine_errors():
        swarm = client.info().get("Swarm") or {}
    state = swarm.get("LocalNodeState") or "inactive"
    if state == "active":
        if not swarm.get("ControlAvailable"):
            raise DeployError(
                "This engine is a worker of a swarm, and only a manager deploys stacks",
                hint="run it on a manager node, or point DOCKER_HOST at one",
            )
        return not join
    if state != "inactive":  # pending, locked, error
        why = f": {swarm['Error']}" if swarm.get("Error") else ""
        raise DeployError(
            f"This engine's swarm is `{state}`{why}",
            hint="`docker info` shows the swarm's state; `docker swarm unlock` opens a locked one",
        )
    if join:
        _init(client)
    return join


def _init(client: docker.DockerClient) -> None:
    """`docker swarm init`; on a machine with several addresses the engine cannot choose the
    one to advertise, and a single-node swarm needs none other than the loopback."""
    import docker.errors

    try:
        client.swarm.init()
        return
    except docker.errors.APIError as exc:
        if "advertise" not in str(exc.explanation or exc):
            raise _init_failed(exc) from None
    try:
        client.swarm.init(advertise_addr="127.0.0.1")
    except docker.errors.APIError as exc:
        raise _init_failed(exc) from None


def _init_failed(exc: Any) -> DeployError:
    why = str(getattr(exc, "explanation", None) or exc).strip().rstrip(".")
    return DeployError(
        f"This engine is in no swarm, and `docker swarm init` failed: {why}",
        hint="make it a swarm manager yourself (`docker swarm init --advertise-addr ADDRESS`)",
    )


def _run(stack: Stack, command: str, args: list[str], timeout: float) -> None:
    try:
        result = subprocess.run(
            [_cli(), "stack", command, *args, stack.name],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        raise DeployError(
            f"`docker stack {command}` did not end within {timeout:g} s for `{stack.name}`",
            hint="give it longer with `--timeout`",
        ) from None
    if result.returncode != 0:
        lines = [line for line in (result.stderr or result.stdout).splitlines() if line.strip()]
        last = lines[-1].strip().rstrip(".") if lines else "no output"
        raise DeployError(
            f"`docker stack {command}` failed for `{stack.name}`: {last}",
            hint=f"`docker stack ps {stack.name}` shows its tasks",
            log_tail=lines[-LOG_LINES:],
        )


def _services(client: docker.DockerClient, name: str) -> list:
    with engine_errors():
        return client.services.list(filters={"label": f"{STACK_LABEL}={name}"})


def _left(client: docker.DockerClient, name: str) -> list[str]:
    label = {"label": f"{STACK_LABEL}={name}"}
    with engine_errors():
        # the containers in one listing: `containers.list` inspects each one it listed, and
        # fails on one that Swarm removes meanwhile
        containers = client.api.containers(all=True, filters=label)
        return (
            [f"service {s.name}" for s in client.services.list(filters=label)]
            + [f"container {c['Names'][0].lstrip('/')}" for c in containers]
            + [f"network {n.name}" for n in client.networks.list(filters=label)]
        )


def _short(stack: Stack, service: Any) -> str:
    return service.name.removeprefix(f"{stack.name}_")


def _settled(client: docker.DockerClient, stack: Stack, service: Any, before: dict | None) -> bool:
    """Whether `service` runs its spec on every replica. Raises when Swarm gave up: an update
    rolled back or paused, or a new service whose replicas fail."""
    attrs = service.attrs
    update = attrs.get("UpdateStatus") or {}
    earlier = ((before or {}).get("UpdateStatus") or {}).get("StartedAt")
    # an update status left from an earlier deployment says nothing about this one
    state = update.get("State") if update and update.get("StartedAt") != earlier else None
    name = _short(stack, service)
    if state in _FAILED:
        what = f"The update of `{name}` in `{stack.name}` {_FAILED[state]}"
        raise _gave_up(client, stack, service, what)
    if state in _RUNNING:
        return False
    with engine_errors():
        tasks = service.tasks()
    if before is None and any(t["Status"]["State"] in _GONE_TASK for t in tasks):
        # created now, so there is nothing to roll back to: its first failure is the answer
        raise _gave_up(client, stack, service, f"The service `{name}` of `{stack.name}` fails")
    wanted = ((attrs["Spec"].get("Mode") or {}).get("Replicated") or {}).get("Replicas", 1)
    template = attrs["Spec"]["TaskTemplate"]
    meant = [t for t in tasks if t.get("DesiredState") == "running"]
    current = [t for t in meant if t["Status"]["State"] == "running" and _runs(t, template)]
    return len(current) == len(meant) == wanted


def _runs(task: dict, template: dict) -> bool:
    """Whether `task` was made from the service's spec `template`. The service's copy holds
    defaults the task's lacks (`Runtime`): only what both name is compared."""
    spec = task.get("Spec") or {}
    return all(spec[key] == value for key, value in template.items() if key in spec)


def _gave_up(client: docker.DockerClient, stack: Stack, service: Any, what: str) -> DeployError:
    """`what` happened, with why the newest replica that stopped did (its error, or its health
    check's last failure) and its last log lines."""
    with engine_errors():
        tasks = service.tasks()
    ended = sorted(
        (t for t in tasks if t.get("DesiredState") != "running"), key=lambda t: t["CreatedAt"]
    )
    why, lines = _why(client, ended[-1]) if ended else (None, [])
    return DeployError(
        what + (f": {why}" if why else "") + ("; its last log lines:" if lines else ""),
        hint=f"`docker service ps --no-trunc {service.name}` shows its replicas; "
        f"`cais deploy swarm --down --name {stack.name}` removes the stack",
        log_tail=lines,
    )


def _why(client: docker.DockerClient, task: dict) -> tuple[str | None, list[str]]:
    """Why a replica stopped, in words, and its container's last log lines."""
    import docker.errors

    status = task.get("Status") or {}
    error = (status.get("Err") or "").strip().rstrip(".")
    container_id = (status.get("ContainerStatus") or {}).get("ContainerID")
    try:
        container = client.containers.get(container_id) if container_id else None
        text = container.logs(tail=LOG_LINES).decode(errors="replace") if container else ""
    except docker.errors.DockerException:  # removed with the task history it belonged to
        container, text = None, ""
    health = (container.attrs.get("State") or {}).get("Health") or {} if container else {}
    if not error and health.get("Status") in ("unhealthy", "starting"):
        last = (health.get("Log") or [{}])[-1]
        said = " ".join((last.get("Output") or "").split())[:200]
        error = (
            "its new replica never got healthy (its health check "
            + (f"exited {last['ExitCode']}" if "ExitCode" in last else "did not run")
            + (f": {said}" if said else "")
            + ")"
        )
    return error or None, text.splitlines()


def _timed_out(
    client: docker.DockerClient, stack: Stack, waiting: list, timeout: float
) -> DeployError:
    service = waiting[0]
    with engine_errors():
        running = sum(
            t["Status"]["State"] == "running" and t.get("DesiredState") == "running"
            for t in service.tasks()
        )
    what = (
        f"The service `{_short(stack, service)}` of `{stack.name}` is not up to date after "
        f"{timeout:g} s ({running} replica{'s' * (running != 1)} running)"
    )
    return _gave_up(client, stack, service, what)
