"""`cais models list | show | tag | rm`: the model store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from cais.output import note, out, success

__all__ = ["app"]

app = typer.Typer(
    help="Saved models: import, list, show, tag and remove versions.", no_args_is_help=True
)


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


@app.command("import")
def import_model(
    file: Annotated[Path, typer.Argument(help="A pickle or joblib file made elsewhere.")],
    name: Annotated[
        str, typer.Option("--name", "-n", metavar="NAME", help="The model's name in the store.")
    ],
    version: Annotated[
        str | None,
        typer.Option(
            "--version", metavar="VERSION", help="Its version (default: the next number)."
        ),
    ] = None,
    predictor: Annotated[
        Path | None,
        typer.Option(
            "--predictor", metavar="FILE", help="A .py file whose cais.Predictor wraps the pickle."
        ),
    ] = None,
    python: Annotated[
        str | None,
        typer.Option(
            "--python",
            metavar="X.Y",
            help="Python X.Y of the image (default: chosen, see CAIS_PYTHONS).",
        ),
    ] = None,
    requirement: Annotated[
        list[str] | None,
        typer.Option(
            "--requirement",
            "-r",
            metavar="REQUIREMENT",
            help="Another package to install: NAME or NAME==VERSION.",
        ),
    ] = None,
    input_example: Annotated[
        str | None,
        typer.Option(
            "--input-example",
            metavar="JSON",
            help="A few inputs as JSON, such as '[\"livro azul\"]'.",
        ),
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace name:version.")] = False,
) -> None:
    """Adopt an existing pickle: find the scikit-learn that made it, pin its whole stack, and
    choose the newest Python for which all of it installs from wheels."""
    from cais.bundle.adopt import plan_adoption
    from cais.errors import BundleError

    for given, what in ((file, "model file"), (predictor, "predictor file")):
        if given is not None and not given.is_file():
            raise BundleError(f"The {what} `{given}` does not exist")
    example = None
    if input_example is not None:
        try:
            example = json.loads(input_example)
        except json.JSONDecodeError as exc:
            raise BundleError(
                f"--input-example is not JSON: {exc}", hint="such as '[\"livro azul\"]'"
            ) from None
        if not isinstance(example, list) or not example:
            raise BundleError("--input-example must be a non-empty JSON list of inputs")
    from cais.bundle.store import predictor_entry

    own = set()
    if predictor is not None:  # checked before the slower work that follows
        own.add(predictor_entry(predictor).partition(":")[0])
    adoption = plan_adoption(file, python=python, requirements=requirement, own_modules=own)
    facts = adoption.facts
    made_with = (
        f"scikit-learn {facts.sklearn_version}" if facts.sklearn_version else "no recorded version"
    )
    note(f"read `{file.name}`: {facts.format}, a `{facts.top_class or 'object'}` ({made_with})")
    if adoption.cutoff is not None:
        note(f"the stack as of {adoption.cutoff:%Y-%m-%d}, when {adoption.anchor} came out")
    note("pinned " + " ".join(f"{n}=={v}" for n, v in adoption.packages.items()))
    note(
        f"Python {adoption.python}: "
        + ("as asked" if python else "the newest with wheels for all of it")
    )
    bundle = _store().adopt(
        file,
        name,
        version,
        python=adoption.python,
        packages=adoption.packages,
        model_class=facts.top_class,
        modules=sorted(
            {c.rpartition(".")[0] for c in facts.classes if c.split(".")[0] in facts.modules}
        ),
        imported={
            "file": file.name,
            "format": facts.format,
            "sklearn_version": facts.sklearn_version or "",
        },
        predictor=predictor,
        input_example=example,
        overwrite=overwrite,
    )
    success(
        f"Imported `{bundle.reference}`; build its image with "
        f"`cais build {bundle.reference} -t {bundle.metadata.name}:{bundle.metadata.version}`"
    )
