"""What an argument that can name a folder or a saved model means (`cais serve`, `cais build`,
`cais models show`).

The rule, one for every command:

- `name:version` or `name:alias` is a saved model; a path (`.`, `./shop`, `shop/`, `/srv/m`,
  `~/m`) is a folder.
- A bare name such as `shop` is the folder `shop` when that folder holds a model bundle or a
  project (`cais.yaml`, `requirements.txt`, `pyproject.toml` or a `Dockerfile`) that the
  command can take; otherwise it is the saved model `shop`.
- A folder that holds a bundle is that model. A training project (`train:` in its cais.yaml)
  stands for the newest model it saved, the one named like the project: its image would only
  run the training script, so `cais build` builds the image that serves its model instead.
- When a bare name fits both a folder and a saved model, the folder is taken and a note says
  how to ask for the model (`shop:latest`) or the folder (`./shop`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from cais.bundle.store import Bundle, ModelStore

__all__ = ["Resolved", "resolve"]

# Files that make a folder a project cais can build.
PROJECT_FILES = ("cais.yaml", "requirements.txt", "pyproject.toml", "Dockerfile")


class Resolved(NamedTuple):
    """What an argument named: a saved model (`bundle`) or a project folder to build
    (`project`); `origin` is the project folder a model was named through, whose cais.yaml
    applies; `note` says what was taken when something else would have fitted too."""

    argument: str
    bundle: Bundle | None = None
    project: Path | None = None
    origin: Path | None = None
    note: str | None = None


def is_path(argument: str) -> bool:
    """Spelled as a path: never a model reference (names have no `/` and start with a letter
    or digit)."""
    return argument.startswith((".", "/", "~")) or "/" in argument or os.sep in argument


def resolve(argument: str, *, projects: bool, store: ModelStore | None = None) -> Resolved:
    """Resolve a command's argument by the rule above. `projects`: the command also takes a
    project folder to build (`cais build`); otherwise only models fit (`cais serve`)."""
    from cais.bundle.store import ModelStore

    store = store or ModelStore()
    if ":" in argument and not is_path(argument):
        return Resolved(argument, bundle=store.get(argument))
    folder = Path(argument).expanduser()
    if is_path(argument):
        return _folder(argument, folder, projects=projects, store=store, required=True)
    saved = _has_model(store, argument)
    if folder.is_dir():
        found = _folder(argument, folder, projects=projects, store=store, required=not saved)
        if found is not None:
            same = found.bundle is not None and found.bundle.metadata.name == argument
            if saved and not same:
                found = _with_note(
                    found,
                    f"`{argument}` is taken as the folder `./{argument}`; for the saved model "
                    f"`{argument}`, write `{argument}:latest`",
                )
            return found
        bundle = store.get(argument)
        kind = "a project" if _project_files(folder) else "neither a project nor a model"
        return Resolved(
            argument,
            bundle=bundle,
            note=f"`{argument}` is the saved model `{bundle.reference}`; the folder "
            f"`./{argument}` here is {kind}",
        )
    if saved:
        return Resolved(argument, bundle=store.get(argument))
    return _nothing(argument, store, projects=projects)


def _folder(
    argument: str, folder: Path, *, projects: bool, store: ModelStore, required: bool
) -> Resolved | None:
    """The folder's meaning for the command; None when it fits nothing and is not `required`
    (a saved model may fit instead), else the error saying why."""
    from cais.bundle.metadata import METADATA_FILE
    from cais.bundle.store import Bundle
    from cais.errors import BundleError, ProjectError

    if not folder.is_dir():
        if projects:
            return Resolved(argument, project=folder)  # loading the project says what is wrong
        if not folder.exists():
            raise ProjectError(
                f"The folder `{argument}` does not exist",
                hint="check the path, or give a saved model (`cais models list` lists them)",
            )
        raise ProjectError(
            f"`{argument}` is a file, not a folder",
            hint="give the folder that holds the model bundle or the training project",
        )
    if (folder / METADATA_FILE).is_file():
        return Resolved(argument, bundle=Bundle.from_folder(folder))
    files = _project_files(folder)
    if "cais.yaml" in files:
        from cais.project import image_name_from, read_config

        config = read_config(folder / "cais.yaml")
        if config.train:
            name = config.name or image_name_from(folder.resolve().name)
            if not _has_model(store, name):
                raise BundleError(
                    f"The training project `{argument}` has not saved its model `{name}` yet",
                    hint=f"train it with `cais train {argument}`",
                )
            bundle = store.get(name)
            return Resolved(
                argument,
                bundle=bundle,
                origin=folder,
                note=f"`{argument}` is a training project: taking its newest model "
                f"`{bundle.reference}`",
            )
    if projects and (files or required):
        return Resolved(argument, project=folder)  # loading the project says what is missing
    if not required:
        return None
    if files:
        raise BundleError(
            f"`{argument}` is a project folder, not a model",
            hint=f"build and run it with `cais build {argument}`; `cais models list` lists "
            "the models to serve",
        )
    raise BundleError(
        f"`{argument}` is neither a model bundle nor a training project",
        hint="give a saved model such as `products:1` (`cais models list` lists them), "
        "a bundle folder, or a training project folder",
    )


def _nothing(argument: str, store: ModelStore, *, projects: bool) -> Resolved:
    from cais.errors import BundleError

    if not projects:
        return Resolved(argument, bundle=store.get(argument))  # the store says it has none
    names = ", ".join(f"`{n}`" for n in store.names())
    raise BundleError(
        f"`{argument}` is neither a folder here nor a saved model",
        hint="give a project folder, or a saved model"
        + (f" ({names})" if names else " (none is saved yet)"),
    )


def _has_model(store: ModelStore, name: str) -> bool:
    from cais.bundle.store import split_reference
    from cais.errors import BundleError

    try:
        split_reference(name)
    except BundleError:
        return False
    return bool(store.versions(name))


def _project_files(folder: Path) -> list[str]:
    return [name for name in PROJECT_FILES if (folder / name).is_file()]


def _with_note(found: Resolved, note: str) -> Resolved:
    return found._replace(note=f"{found.note}; {note}" if found.note else note)
