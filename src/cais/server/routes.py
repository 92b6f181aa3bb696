"""Kept API contracts: a served model also answers under a hand-made API's path and fields.

It lives with the server (not the project) because the server inside an image reads it from
`CAIS_SERVE_ROUTES` and must not need the build-side modules.
"""

from __future__ import annotations

import json

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["LegacyRoute", "routes_from_environment"]


class LegacyRoute(BaseModel):
    """An existing API contract a served model keeps answering, such as a hand-made Flask
    API's `POST /predizer_categoria {"descricao": …} → {"categoria": …}`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(pattern=r"^/[A-Za-z0-9_./-]*$")
    model: str | None = None  # the default model when not given
    input: str
    output: str


def routes_from_environment(value: str) -> list[LegacyRoute]:
    """The routes a serving image was built with (`CAIS_SERVE_ROUTES`, JSON)."""
    return [LegacyRoute.model_validate(r) for r in json.loads(value or "[]")]
