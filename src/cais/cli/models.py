"""`cais models list | show | tag | untag | rm | import`: the model store."""

import json
from pathlib import Path
from typing import Annotated

import typer

from cais.output import err, note, out, success, warning

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
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    for column in ("MODEL", "VERSION", "ALIASES", "CREATED", "METRICS"):
        table.add_column(column)
    for row in _store().listing(name):
        tags = ", ".join(row.aliases)
        if row.problem is not None:  # listed, so that it can be seen and removed
            table.add_row(row.name, row.version or "-", tags, "damaged", row.problem)
            continue
        metrics = ", ".join(f"{k}={v:g}" for k, v in row.metadata.metrics.items())
        created = f"{row.metadata.created:%Y-%m-%d %H:%M}"
        table.add_row(row.name, row.version, tags, created, metrics)
    out.print(table)


@app.command()
def show(
    reference: Annotated[
        str, typer.Argument(help="name[:version|alias], a bundle folder or a training project")
    ],
) -> None:
    """Show everything a bundle records (JSON)."""
    from cais.resolve import resolve

    found = resolve(reference, projects=False, store=_store())
    if found.note:
        note(found.note)
    bundle = found.bundle
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
def untag(
    reference: Annotated[str, typer.Argument(help="name:alias to remove")],
) -> None:
    """Remove an alias; the version it points at stays."""
    version = _store().untag(reference)
    success(f"Removed the alias `{reference}` (`{version}` stays)")


@app.command()
def rm(
    reference: Annotated[str, typer.Argument(help="name:version to remove")],
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Remove the version an alias points at.")
    ] = False,
) -> None:
    """Remove a saved version (and the aliases pointing at it)."""
    from cais.bundle.store import split_reference
    from cais.errors import BundleError

    store = _store()
    name, wanted = split_reference(reference)
    resolved = store.resolve(reference) if wanted else reference
    if wanted and resolved != f"{name}:{wanted}" and not yes:  # named through an alias
        question = f"`{reference}` points at `{resolved}`: remove the version `{resolved}`?"
        refusal = BundleError(
            f"Nothing was removed: `{reference}` is an alias of `{resolved}`",
            hint=f"remove the version with `cais models rm {resolved}` (or --yes), or only "
            f"the alias with `cais models untag {reference}`",
        )
        if not _confirmed(question):
            raise refusal
    aliases = store.points_at(resolved) if wanted else []
    removed = store.remove(reference)
    gone = f", and its aliases {', '.join(f'`{a}`' for a in aliases)}" if aliases else ""
    success(f"Removed `{removed}`{gone}")


def _confirmed(question: str) -> bool:
    """Ask on a terminal; from a pipe or a closed stdin, read one answer without asking."""
    import sys

    if not sys.stdin.isatty():
        return sys.stdin.readline().strip().lower() in ("y", "yes")
    try:
        return typer.confirm(question, err=True)
    except typer.Abort:  # Ctrl-D or Ctrl-C
        err.print()  # end the question's line
        return False


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
            help="Python X.Y of the image (default: the newest with wheels for the model's "
            "packages among the base images this site has, or CAIS_PYTHONS).",
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
    trust: Annotated[
        bool,
        typer.Option(
            "--trust", help="Import a pickle that names code outside the model stack (it runs it)."
        ),
    ] = False,
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
    from cais.bundle.allowlist import defined_globals
    from cais.bundle.store import predictor_entry

    own = set()
    if predictor is not None:  # checked before the slower work that follows
        predictor_entry(predictor)
        own = defined_globals(predictor)
    adoption = plan_adoption(
        file, python=python, requirements=requirement, own_globals=own, trust=trust
    )
    facts = adoption.facts
    if adoption.trusted:
        note("trusted, as asked: " + ", ".join(f"`{g}`" for g in adoption.trusted))
    made_with = (
        f"scikit-learn {facts.sklearn_version}" if facts.sklearn_version else "no recorded version"
    )
    note(f"read `{file.name}`: {facts.format}, a `{facts.top_class or 'object'}` ({made_with})")
    note(f"pinned by {adoption.pinned_by}")
    note("pinned " + " ".join(f"{n}=={v}" for n, v in adoption.packages.items()))
    note(f"Python {adoption.python}: {adoption.python_from}")
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
        pinned_by=adoption.pinned_by,
        pickle_globals=sorted(f"{module}:{name}" for module, name in facts.globals),
        trusted_globals=adoption.trusted,
        predictor=predictor,
        input_example=example,
        overwrite=overwrite,
    )
    build = f"`cais build {bundle.reference} -t {bundle.metadata.name}:{bundle.metadata.version}`"
    if adoption.base_missing_from:
        base = f"`python:{adoption.python}-slim`"
        warning(
            f"{base} is not in {' or '.join(adoption.base_missing_from)}: pull or load it "
            "(or set CAIS_BASE_REGISTRY to a registry that has it) before building"
        )
        success(f"Imported `{bundle.reference}`; once the engine has {base}, build it with {build}")
        return
    success(f"Imported `{bundle.reference}`; build its image with {build}")
