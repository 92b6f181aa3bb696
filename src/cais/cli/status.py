"""`cais status`: what cais has deployed in the engine, one row per service."""

from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated

import typer

from cais.cli._listing import Format, print_listing
from cais.output import note

if TYPE_CHECKING:
    from cais.deploy.status import Deployment, Service

__all__ = ["status"]

HEADERS = ("DEPLOYMENT", "VIA", "SERVICE", "MODEL", "REPLICAS", "HEALTH", "PORTS")


def status(
    format: Annotated[
        Format, typer.Option("--format", metavar="table|json", help="Output format.")
    ] = Format.table,
) -> None:
    """List what cais has deployed: Compose projects and Swarm stacks running a cais image,
    each service with its model, version, replicas (running/desired), health and ports."""
    from cais.deploy.status import read
    from cais.engine.client import connect

    found = read(connect())
    if not found and format is Format.table:
        note(
            "Nothing is deployed from a cais image here; deploy a model with `cais deploy compose REF --up`"
        )
        return
    print_listing(
        [asdict(deployment) for deployment in found],
        HEADERS,
        (row(deployment, service) for deployment in found for service in deployment.services),
        quiet=False,
        format=format,
    )


def row(deployment: "Deployment", service: "Service") -> tuple[str, ...]:
    """A service as the table shows it; a Swarm update in progress or undone follows its health."""
    update = f" ({service.update.words})" if service.update else ""
    return (
        deployment.name,
        deployment.kind,
        service.name,
        ", ".join(f"{model.name}:{model.version}" for model in service.models),
        f"{service.running}/{service.desired}",
        service.health + update,
        ", ".join(str(port) for port in service.ports),
    )
