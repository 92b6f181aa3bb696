"""The names a sink gives an image: tags, never digests."""

from __future__ import annotations

from collections.abc import Iterable

from cais.errors import PlanError
from cais.registry.reference import Reference, parse_reference

__all__ = ["parse_tags"]


def parse_tags(tags: Iterable[str]) -> list[Reference]:
    """Parse every tag before anything is written; `NAME` means `NAME:latest`."""
    references = []
    for text in tags:
        reference = parse_reference(text)
        if reference.digest:
            raise PlanError(
                f"`{text}` names a digest, which cannot be given to an image",
                hint="give a tag such as NAME:1.0; the image's digest follows from its content",
            )
        references.append(reference)
    return references
