"""`cais images`, `cais rmi`, `cais push`, `cais pull`: images in the engine and registries."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from cais.output import LayerDisplay, note, out, success

__all__ = ["images", "pull", "push", "rmi"]


def images(
    name: Annotated[str | None, typer.Argument(help="Only images of this name.")] = None,
) -> None:
    """List images in the Docker Engine."""
    from cais.engine.client import connect
    from cais.engine.images import list_images

    table = Table(box=None, header_style="bold")
    for column in ("IMAGE", "ID", "CREATED", "SIZE"):
        table.add_column(column)
    for image in list_images(connect(), name):
        for tag in image.tags or ("<none>",):
            table.add_row(tag, image.id, image.created, f"{image.size / 1e6:.1f} MB")
    out.print(table)


def rmi(
    references: Annotated[list[str], typer.Argument(help="Images to remove.")],
    force: Annotated[
        bool, typer.Option("-f", "--force", help="Remove even if a container uses it.")
    ] = False,
) -> None:
    """Remove images from the Docker Engine."""
    from cais.engine.client import connect
    from cais.engine.images import remove_image

    client = connect()
    for reference in references:
        remove_image(client, reference, force=force)
        success(f"Removed `{reference}`")


def push(
    reference: Annotated[str, typer.Argument(help="Image to push: [registry/]name:tag.")],
) -> None:
    """Push an image to its registry (Docker Hub when the name has none)."""
    from cais.engine.client import connect
    from cais.engine.images import push as push_image
    from cais.registry.reference import parse_reference

    ref = parse_reference(reference)
    client = connect()
    with LayerDisplay() as display:
        digest = push_image(client, str(ref), display)
    where = ref.registry if ref.explicit_registry else "Docker Hub"
    success(f"Pushed `{ref}` to {where}" + (f" ({digest})" if digest else ""))
    note(f"run it anywhere with `cais run {ref}`")
    out.print(f"{ref.name}@{digest}" if digest else str(ref), markup=False)


def pull(
    reference: Annotated[str, typer.Argument(help="Image to pull: [registry/]name:tag.")],
) -> None:
    """Pull an image from its registry into the Docker Engine."""
    from cais.engine.client import connect
    from cais.engine.images import pull as pull_image
    from cais.registry.reference import parse_reference

    ref = parse_reference(reference)
    client = connect()
    with LayerDisplay() as display:
        image_id = pull_image(client, str(ref), display)
    success(f"Pulled `{ref}` ({image_id[7:19]})")
    out.print(str(ref), markup=False)
