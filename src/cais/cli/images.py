"""`cais images`, `cais rmi`, `cais tag`: images in the engine."""

from dataclasses import asdict
from functools import partial
from typing import Annotated

import typer

from cais.cli._each import each
from cais.cli._listing import Format, print_listing
from cais.output import out, success

__all__ = ["images", "rmi", "tag"]


def images(
    name: Annotated[
        str | None, typer.Argument(metavar="[NAME]", help="Only images of this name.")
    ] = None,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Only the ids.")] = False,
    format: Annotated[
        Format, typer.Option("--format", metavar="table|json", help="Output format.")
    ] = Format.table,
) -> None:
    """List images in the Docker Engine."""
    from cais.engine.client import connect
    from cais.engine.images import list_images

    found = list_images(connect(), name)
    print_listing(
        [asdict(image) for image in found],
        ("IMAGE", "ID", "CREATED", "SIZE"),
        (
            (tag, image.id, image.created, f"{image.size / 1e6:.1f} MB")
            for image in found
            for tag in image.tags or ("<none>",)
        ),
        quiet=quiet,
        format=format,
    )


def rmi(
    references: Annotated[
        list[str], typer.Argument(metavar="IMAGE...", help="Images to remove: names or ids.")
    ],
    force: Annotated[
        bool, typer.Option("-f", "--force", help="Remove even if a stopped container uses it.")
    ] = False,
) -> None:
    """Remove images (as `docker rmi`); each is reported, and a failure does not stop the
    others. An image a container uses is named with the container and how to remove it."""
    from cais.engine.client import connect
    from cais.engine.images import remove_image

    each(references, partial(remove_image, connect(), force=force), "Removed `{}`")


def tag(
    source: Annotated[str, typer.Argument(metavar="SOURCE", help="Image to name: name or id.")],
    target: Annotated[str, typer.Argument(metavar="TARGET", help="New name: [registry/]name:tag.")],
) -> None:
    """Give an image another name (as `docker tag`), such as one in a registry."""
    from cais.engine.client import connect
    from cais.engine.images import tag_image
    from cais.image.blobs import BlobStore
    from cais.image.local import forget
    from cais.registry.reference import parse_reference

    parse_reference(source)
    parse_reference(target)
    ref = tag_image(connect(), source, target)
    forget(BlobStore(), str(ref))  # `cais push` of the name then sends the engine's image
    success(f"Tagged `{source}` as `{ref}`")
    out.print(str(ref), markup=False)
