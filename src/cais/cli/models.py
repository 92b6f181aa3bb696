"""`cais models list | show | tag | rm`: the model store."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from cais.cli._output import out, success

__all__ = ["app"]

app = typer.Typer(help="Saved models: list, show, tag and remove versions.", no_args_is_help=True)


def _store():
    from cais.bundle.store import ModelStore

    return ModelStore()


@app.command("list")
def list_models(
    name: Annotated[str | None, typer.Argument(help="Only the versions of this model.")] = None,
) -> None:
    """List saved models and their versions."""
    store = _store()
    table = Table(box=None, header_style="bold")
    for column in ("MODEL", "VERSION", "ALIASES", "CREATED", "METRICS"):
        table.add_column(column)
    if name:
        store.resolve(name)  # an unknown or malformed name is an error, not an empty table
    for model in [name] if name else store.names():
        aliases = store.aliases(model)
        versions = store.versions(model)
        for version in versions:
            metadata = store.get(f"{model}:{version}").metadata
            tags = [a for a, v in sorted(aliases.items()) if v == version]
            if version == versions[-1]:
                tags.insert(0, "latest")
            metrics = ", ".join(f"{k}={v:g}" for k, v in metadata.metrics.items())
            table.add_row(
                model, version, ", ".join(tags), f"{metadata.created:%Y-%m-%d %H:%M}", metrics
            )
    out.print(table)


@app.command()
def show(
    reference: Annotated[str, typer.Argument(help="name[:version|alias]")],
) -> None:
    """Show everything a bundle records (JSON)."""
    bundle = _store().get(reference)
    data = json.loads(bundle.metadata.model_dump_json())
    data["path"] = str(bundle.path)
    out.print_json(data=data)


@app.command()
def tag(
    reference: Annotated[str, typer.Argument(help="name:version to tag")],
    alias: Annotated[str, typer.Argument(help="alias, such as production")],
) -> None:
    """Point an alias (such as `production`) at a version."""
    resolved = _store().tag(reference, alias)
    success(f"`{resolved.split(':')[0]}:{alias}` now points at `{resolved}`")


@app.command()
def rm(
    reference: Annotated[str, typer.Argument(help="name:version to remove")],
) -> None:
    """Remove a saved version (and the aliases pointing at it)."""
    removed = _store().remove(reference)
    success(f"Removed `{removed}`")
