"""`cais deploy compose|swarm|k8s|kserve`: the files that run a model where an engine or a
cluster is, and their start."""

import re
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from cais.output import note, success

__all__ = ["app"]

app = typer.Typer(
    help="Deploy a model: Compose or Swarm stack files, Kubernetes manifests, applied where an "
    "engine or a cluster is.",
    no_args_is_help=True,
)

_PROJECT = re.compile(r"[a-z0-9][a-z0-9_-]*")
# Swarm names a stack's services STACK_SERVICE, and a service name is a DNS label at most
_STACK = re.compile(r"[a-z0-9]([a-z0-9_-]{0,48}[a-z0-9])?")
_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"  # a DNS label, as Kubernetes names are
_HOST = re.compile(rf"(\*\.)?{_LABEL}(\.{_LABEL})*")
_WHAT_HELP = "A saved model (name[:version]) whose image `cais build` made, or an image."


class Proxy(str, Enum):
    nginx = "nginx"
    none = "none"


# The options `compose` and `swarm` share.
_What = Annotated[str | None, typer.Argument(metavar="REF|IMAGE", help=_WHAT_HELP)]
_ProxyOption = Annotated[
    Proxy, typer.Option("--proxy", help="The reverse proxy in front of the API.")
]
_Monitoring = Annotated[
    bool, typer.Option("--monitoring", help="Add Prometheus, scraping the API's /metrics.")
]
_Port = Annotated[
    int, typer.Option("--port", metavar="N", min=1, max=65535, help="Host port to publish on.")
]
_Memory = Annotated[
    str, typer.Option("--memory", metavar="SIZE", help="The API's memory limit (512m, 2g).")
]


def _start_and_stop(up: str, down: str, wait: str) -> tuple:
    """`--up`, `--down` and `--timeout`, with the help of one command: Compose and Swarm start,
    stop and wait differently, and their help says how."""
    return (
        Annotated[bool, typer.Option("--up", help=up)],
        Annotated[bool, typer.Option("--down", help=down)],
        Annotated[float, typer.Option("--timeout", metavar="SECONDS", min=1, help=wait)],
    )


_ComposeUp, _ComposeDown, _ComposeTimeout = _start_and_stop(
    up="Start it and wait until every service is healthy.",
    down="Stop and remove what the file at -o started.",
    wait="How long --up waits for health.",
)
_SwarmUp, _SwarmDown, _SwarmTimeout = _start_and_stop(
    up="Deploy it (a rolling update of a running stack) and wait.",
    down="Remove the stack and wait until nothing is left.",
    wait="How long to wait for Swarm.",
)


@app.command()
def compose(
    what: _What = None,
    output: Annotated[
        Path, typer.Option("--output", "-o", metavar="FILE", help="The Compose file to write.")
    ] = Path("compose.yaml"),
    proxy: _ProxyOption = Proxy.nginx,
    monitoring: _Monitoring = False,
    port: _Port = 8080,
    memory: _Memory = "1g",
    name: Annotated[
        str | None,
        typer.Option("--name", metavar="NAME", help="Project name (default: the model's name)."),
    ] = None,
    start: _ComposeUp = False,
    stop: _ComposeDown = False,
    timeout: _ComposeTimeout = 180,
) -> None:
    """Write a Compose file: the model's API, nginx in front, optionally Prometheus."""
    from cais.cli._destination import check_destination
    from cais.errors import CaisError

    _up_or_down(start, stop, memory)
    if name is not None and not _PROJECT.fullmatch(name):
        raise CaisError(
            f"`{name}` cannot name a Compose project",
            hint="use lowercase letters, digits, `-` and `_`, starting with a letter or digit",
        )
    if stop:
        _down(output, name)
        return
    if what is None:
        raise CaisError(
            "Missing the model or image to deploy", hint="such as `cais deploy compose products:1`"
        )
    check_destination(output)
    options = _options(name, proxy, monitoring, port, memory)
    _write_and_start(what, output, options, start, timeout)


def _options(name: str | None, proxy: Proxy, monitoring: bool, port: int, memory: str, **more):
    """The deployment's options; an empty project name is the model's, once it is known."""
    from cais.deploy.compose import ComposeOptions

    return ComposeOptions(
        project=name or "",
        port=port,
        proxy=proxy is Proxy.nginx,
        monitoring=monitoring,
        memory=memory.lower(),
        **more,
    )


def _target_of(what: str, options, longest: int | None = None):
    """The engine, the image `what` names, and `options` named after its model unless named."""
    from dataclasses import replace

    from cais.bundle.store import ModelStore
    from cais.deploy.target import target_of
    from cais.engine.client import connect

    client = connect()
    target = target_of(client, what, ModelStore())
    if not options.project:
        project = _project_name(target.name)[:longest].strip("-_") or "cais"
        options = replace(options, project=project)
    return client, target, options


def _write_and_start(what: str, output: Path, options, start: bool, timeout: float) -> None:
    from cais.cli._destination import writing
    from cais.deploy.compose import API, PROMETHEUS, PROXY, render, write
    from cais.deploy.runner import Project, preflight, up

    client, target, options = _target_of(what, options)
    port, monitoring = options.port, options.monitoring
    services = (API, *([PROXY] if options.proxy else []), *([PROMETHEUS] if monitoring else []))
    project = Project(
        file=output,
        name=options.project,
        services=services,
        port=port,
        front=PROXY if options.proxy else API,
        ready_path="/health/ready" if target.model else None,
    )
    if start:
        preflight(client, project)
    with writing(output):
        written = write(render(target, options, output.name), output.parent)
    _wrote(written, target)
    if not start:
        note(
            f"start it with `cais deploy compose {what} -o {output} --up` or `docker-compose up -d`"
        )
        return
    up(client, project, timeout)
    success(f"{options.project} is up: http://127.0.0.1:{port}/ ({', '.join(services)} healthy)")


def _down(output: Path, name: str | None) -> None:
    from cais.deploy.compose import ENV_FILE
    from cais.deploy.runner import Project, down
    from cais.errors import DeployError

    if not output.is_file():
        raise DeployError(
            f"There is no Compose file at `{output}`",
            hint="give the file the deployment was written to with `-o FILE`",
        )
    if name is None:
        env = output.parent / ENV_FILE
        found = re.search(
            r"^COMPOSE_PROJECT_NAME=(\S+)$", env.read_text() if env.is_file() else "", re.M
        )
        name = found.group(1) if found else _project_name(output.resolve().parent.name)
    down(Project(file=output, name=name, services=(), port=0, front=""))
    success(f"{name} is down: its containers, network and volumes are removed")


def _up_or_down(start: bool, stop: bool, memory: str) -> None:
    from cais.errors import CaisError

    if start and stop:
        raise CaisError("`--up` and `--down` cannot go together", hint="give one of them")
    if not re.fullmatch(r"[1-9][0-9]*[kmg]?", memory.lower()):
        raise CaisError(
            f"`{memory}` is not a memory size", hint="use a number with k, m or g, such as 512m"
        )


@app.command()
def swarm(
    what: _What = None,
    output: Annotated[
        Path, typer.Option("--output", "-o", metavar="FILE", help="The stack file to write.")
    ] = Path("stack.yaml"),
    name: Annotated[
        str | None,
        typer.Option("--name", metavar="STACK", help="Stack name (default: the model's name)."),
    ] = None,
    replicas: Annotated[
        int, typer.Option("--replicas", metavar="N", min=1, help="Replicas of the API.")
    ] = 2,
    proxy: _ProxyOption = Proxy.nginx,
    monitoring: _Monitoring = False,
    port: _Port = 8080,
    memory: _Memory = "1g",
    start: _SwarmUp = False,
    stop: _SwarmDown = False,
    timeout: _SwarmTimeout = 300,
) -> None:
    """Write a Swarm stack file (the API's replicas behind nginx) and deploy it with rolling
    updates."""
    from cais.cli._destination import check_destination
    from cais.errors import CaisError

    _up_or_down(start, stop, memory)
    if name is not None and not _STACK.fullmatch(name):
        raise CaisError(
            f"`{name}` cannot name a Swarm stack",
            hint="use up to 50 lowercase letters, digits, `-` and `_`, starting and ending with "
            "a letter or digit",
        )
    if proxy is Proxy.none and replicas > 1:
        raise CaisError(
            f"{replicas} replicas need the proxy: without it one replica holds the host's port",
            hint="leave out `--proxy none`, or give `--replicas 1`",
        )
    if stop:
        _stack_down(output, name, timeout)
        return
    if what is None:
        raise CaisError(
            "Missing the model or image to deploy", hint="such as `cais deploy swarm products:1`"
        )
    check_destination(output)
    options = _options(name, proxy, monitoring, port, memory, swarm=True, replicas=replicas)
    _stack_up(what, output, options, start, timeout)


def _stack_up(what: str, output: Path, options, start: bool, timeout: float) -> None:
    from cais.cli._destination import writing
    from cais.deploy.compose import API, PROXY, render, write
    from cais.deploy.swarm import Stack, deploy, preflight

    client, target, options = _target_of(what, options, longest=50)
    port, replicas = options.port, options.replicas
    stack = Stack(
        file=output,
        name=options.project,
        port=port,
        front=PROXY if options.proxy else API,
        ready_path="/health/ready" if target.model else None,
    )
    if start and preflight(client, stack):
        note("The engine was in no swarm: it is now a single-node swarm (`docker swarm init`)")
    with writing(output):
        written = write(render(target, options, output.name), output.parent)
    _wrote(written, target, "; only this engine can run it")
    if not start:
        note(f"deploy it with `cais deploy swarm {what} -o {output} --up`")
        return
    deploy(client, stack, timeout)
    success(
        f"{stack.name} is up to date: http://127.0.0.1:{port}/ "
        f"({replicas if options.proxy else 1} replica{'s' * (replicas > 1)} of {target.image})"
    )


def _stack_down(output: Path, name: str | None, timeout: float) -> None:
    from cais.deploy.compose import STACK_KEY
    from cais.deploy.swarm import remove
    from cais.engine.client import connect
    from cais.errors import DeployError

    if name is None:
        if not output.is_file():
            raise DeployError(
                f"There is no stack file at `{output}` to name the stack",
                hint="give the stack's name with `--name`, or its file with `-o FILE`",
            )
        found = re.search(rf"^{STACK_KEY}: *(\S+)$", output.read_text(), re.M)
        if not found:
            raise DeployError(
                f"`{output}` names no stack (`{STACK_KEY}`)",
                hint="give the stack's name with `--name`",
            )
        name = found.group(1)
    remove(connect(), name, timeout)
    success(f"{name} is down: its services, containers, networks and volumes are removed")


def _project_name(text: str) -> str:
    """A Compose project name from a model's or folder's name (lowercase, `[a-z0-9_-]`)."""
    return re.sub(r"[^a-z0-9_-]+", "-", text.lower()).strip("-_") or "cais"


@app.command()
def k8s(
    what: Annotated[str | None, typer.Argument(metavar="REF|IMAGE", help=_WHAT_HELP)] = None,
    output: Annotated[
        Path,
        typer.Option("--output", "-o", metavar="DIR", help="The folder to write the files to."),
    ] = Path("k8s"),
    replicas: Annotated[
        int | None,
        typer.Option("--replicas", metavar="N", min=1, help="Pods to run (default 1)."),
    ] = None,
    hpa: Annotated[
        str | None,
        typer.Option(
            "--hpa", metavar="MIN:MAX", help="Add an autoscaler between MIN and MAX pods."
        ),
    ] = None,
    ingress: Annotated[
        str | None,
        typer.Option("--ingress", metavar="HOST", help="Add an Ingress routing HOST to the API."),
    ] = None,
    namespace: Annotated[
        str | None, typer.Option("--namespace", metavar="NS", help="The objects' namespace.")
    ] = None,
    apply: Annotated[
        bool, typer.Option("--apply", help="Apply them with kubectl to the current cluster.")
    ] = False,
) -> None:
    """Write Kubernetes manifests: a Deployment and a Service, optionally an autoscaler and an
    Ingress."""
    from cais.cli._destination import check_destination, writing
    from cais.deploy.kubernetes import KubeOptions, manifests, write
    from cais.errors import CaisError

    if replicas is not None and hpa is not None:
        raise CaisError(
            "`--replicas` and `--hpa` cannot go together: the autoscaler sets the replicas",
            hint="give `--hpa MIN:MAX` alone",
        )
    check_destination(output, folder=True)
    options = KubeOptions(
        namespace=_namespace(namespace),
        replicas=replicas or 1,
        hpa=_hpa(hpa) if hpa is not None else None,
        ingress=_host(ingress) if ingress is not None else None,
    )
    target, context = _target_and_context(what, "k8s", apply)
    with writing(output, folder=True):
        written = write(manifests(target, options), output)
    _deliver(written, target, f"cais deploy k8s {what} -o {output}", output, context)


@app.command()
def kserve(
    what: Annotated[str | None, typer.Argument(metavar="REF|IMAGE", help=_WHAT_HELP)] = None,
    output: Annotated[
        Path, typer.Option("--output", "-o", metavar="FILE", help="The file to write.")
    ] = Path("inferenceservice.yaml"),
    namespace: Annotated[
        str | None, typer.Option("--namespace", metavar="NS", help="The object's namespace.")
    ] = None,
    apply: Annotated[
        bool, typer.Option("--apply", help="Apply it with kubectl to the current cluster.")
    ] = False,
) -> None:
    """Write a KServe InferenceService: the model's image as its predictor, V2 protocol."""
    from cais.cli._destination import check_destination, write_file
    from cais.deploy.kubernetes import inference_service

    namespace = _namespace(namespace)
    check_destination(output)
    target, context = _target_and_context(what, "kserve", apply)
    write_file(output, inference_service(target, namespace))
    _deliver([output], target, f"cais deploy kserve {what} -o {output}", output, context)


def _target_and_context(what: str | None, command: str, apply: bool):
    """The image to deploy and, with --apply, kubectl's context: both known before any file is
    written."""
    from cais.bundle.store import ModelStore
    from cais.deploy.kubectl import preflight
    from cais.deploy.target import target_of
    from cais.engine.client import connect
    from cais.errors import CaisError

    if what is None:
        raise CaisError(
            "Missing the model or image to deploy",
            hint=f"such as `cais deploy {command} products:1`",
        )
    context = preflight() if apply else None
    return target_of(connect(), what, ModelStore()), context


def _wrote(written: list[Path], target, after: str = "", *, naming: str = "the file names") -> None:
    """Say which files were written for the image and, when it was never pushed, that they
    name it by tag (`naming`: the subject of that sentence; `after`: what follows from it)."""
    success(f"Wrote {', '.join(str(p) for p in written)} for {target.image}")
    if not target.pinned:
        note(
            f"{target.image} was never pushed: {naming} it by tag "
            f"(image id {target.image_id[:19]}){after}"
        )


def _deliver(written: list[Path], target, again: str, path: Path, context: str | None) -> None:
    """Say what was written, then apply it to the cluster `context` (None: say how to)."""
    from cais.deploy.kubectl import apply

    _wrote(written, target, "; push it where the cluster pulls from", naming="the files name")
    if context is None:
        note(f"apply them with `{again} --apply` or `kubectl apply -f {path}`")
        return
    for line in apply(path, context):
        note(line)
    success(f"Applied {path} to the cluster `{context}`")


def _namespace(value: str | None) -> str | None:
    from cais.errors import CaisError

    if value is not None and not re.fullmatch(_LABEL, value):
        raise CaisError(
            f"`{value}` cannot name a Kubernetes namespace",
            hint="use up to 63 lowercase letters, digits and `-`, starting and ending with a "
            "letter or digit",
        )
    return value


def _hpa(value: str) -> tuple[int, int]:
    from cais.errors import CaisError

    found = re.fullmatch(r"([0-9]+):([0-9]+)", value.strip())
    low, high = (int(found.group(1)), int(found.group(2))) if found else (0, 0)
    if not found or low < 1 or high < low:
        raise CaisError(
            f"`{value}` is not a range of replicas for `--hpa`",
            hint="give MIN:MAX with 1 <= MIN <= MAX, such as `--hpa 2:10`",
        )
    return low, high


def _host(value: str) -> str:
    from cais.errors import CaisError

    ip = re.fullmatch(r"[0-9.]+", value)
    if ip or len(value) > 253 or not _HOST.fullmatch(value):
        raise CaisError(
            f"`{value}` is not a host name an Ingress can route",
            hint="give a DNS name without scheme, port or path, such as `models.example.com`",
        )
    return value
