"""`cais init`, `cais dockerfile`, `cais build`: from a project folder to an image."""

from __future__ import annotations

from enum import Enum
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer

from cais.builders.base import BuilderChoice
from cais.errors import CaisError, ProjectError
from cais.output import BuildDisplay, note, out, report_built, success

__all__ = ["build", "dockerfile", "init"]


class Template(str, Enum):
    script = "script"
    classifier = "classifier"


# Files whose {name} and {python} are filled in; `dockerignore` becomes `.dockerignore`.
_FILLED_IN = {"cais.yaml", "README.md", "train.py"}
_NEXT_STEPS = {
    Template.script: "`cais dockerfile {dir}` to see its Dockerfile, `cais build {dir}` to build it",
    Template.classifier: "`cais train {dir}` to train and save the model, then `cais serve {name}`",
}


def _template_files(template: Template) -> dict[str, object]:
    """Project path → the template's file, for every file of the template."""
    root = resources.files("cais.templates") / template.value
    files: dict[str, object] = {}
    pending = [(root, "")]
    while pending:
        folder, prefix = pending.pop()
        for entry in folder.iterdir():
            if entry.name == "__pycache__":
                continue
            if entry.is_dir():
                pending.append((entry, f"{prefix}{entry.name}/"))
            else:
                target = ".dockerignore" if entry.name == "dockerignore" else entry.name
                files[f"{prefix}{target}"] = entry
    return dict(sorted(files.items()))


def init(
    directory: Annotated[Path, typer.Argument(help="Folder to create the project in.")],
    template: Annotated[
        Template, typer.Option("--template", help="Kind of project: a script, or a classifier.")
    ] = Template.script,
    force: Annotated[bool, typer.Option("--force", help="Overwrite files that exist.")] = False,
) -> None:
    """Create a runnable example project (a script, or a classifier to train and serve)."""
    from cais.project import image_name_from, running_python

    files = _template_files(template)
    if directory.exists() and not directory.is_dir():
        raise ProjectError(f"`{directory}` is a file, not a folder")
    existing = [name for name in files if (directory / name).exists()]
    if existing and not force:
        raise ProjectError(
            f"`{directory}` already holds a project ({', '.join(existing)})",
            hint="choose another folder, or add `--force` to overwrite those files",
        )
    name = image_name_from(directory.resolve().name)
    for target, source in files.items():
        text = source.read_text(encoding="utf-8")  # type: ignore[attr-defined]
        if Path(target).name in _FILLED_IN:
            text = text.replace("{name}", name).replace("{python}", running_python())
        (directory / target).parent.mkdir(parents=True, exist_ok=True)
        (directory / target).write_text(text, encoding="utf-8")
    success(f"Created the {template.value} project `{name}` in `{directory}`")
    note("next: " + _NEXT_STEPS[template].format(dir=directory, name=name))


def train(
    directory: Annotated[Path, typer.Argument(help="Project folder.")] = Path("."),
) -> None:
    """Run the project's training script (`train:` in cais.yaml, else train.py)."""
    import subprocess
    import sys

    from cais.project import load_project

    project = load_project(directory)
    script = project.config.train or "train.py"
    if not (project.path / script).is_file():
        raise ProjectError(
            f"`{project.path}` has no training script `{script}`",
            hint="set `train: your_script.py` in cais.yaml, or create train.py",
        )
    note(f"running `python {script}` in `{project.path}`")
    done = subprocess.run([sys.executable, script], cwd=project.path)
    if done.returncode != 0:
        raise ProjectError(
            f"`{script}` failed with exit code {done.returncode}",
            hint="its output above says why; a missing module usually means the project's "
            "packages are not installed here: `pip install -r requirements.txt`",
        )
    success(f"`{script}` finished")


def dockerfile(
    directory: Annotated[Path, typer.Argument(help="Project folder.")] = Path("."),
    output: Annotated[
        Path | None,
        typer.Option(
            "-o", "--output", metavar="FILE", help="Write to this file instead of stdout."
        ),
    ] = None,
    tag: Annotated[
        list[str] | None,
        typer.Option("-t", "--tag", metavar="NAME:TAG", help="Image name:tag (sets the labels)."),
    ] = None,
    ca_cert: Annotated[
        list[Path] | None,
        typer.Option(
            "--ca-cert", metavar="FILE", help="Show the form used when CA certificates are passed."
        ),
    ] = None,
) -> None:
    """Print the Dockerfile cais writes for a project (or write it with -o)."""
    from cais.build import dockerfile_for
    from cais.builders.dockerfile import SecretsMode

    secrets = SecretsMode.BUILDKIT if ca_cert else SecretsMode.NONE
    project, text = dockerfile_for(directory, tags=tuple(tag or ()), secrets=secrets)
    if project.dockerfile is not None:
        raise ProjectError(
            f"`{project.dockerfile}` is the project's own Dockerfile, which cais builds as it is",
            hint="remove it to let cais write one",
        )
    if output is None:
        out.print(text, end="", markup=False, soft_wrap=True)
        return
    output.write_text(text, encoding="utf-8")
    success(f"Wrote `{output}`")


def _saved_model(source: str):
    """The bundle `source` names, when it is not a folder but a saved model's reference."""
    if Path(source).exists() or "/" in source or source.startswith("."):
        return None
    from cais.bundle.store import ModelStore, split_reference
    from cais.errors import BundleError

    try:
        name, _ = split_reference(source)
    except BundleError:
        return None
    store = ModelStore()
    if not store.versions(name):
        return None
    return store.get(source)


def _build_args(values: list[str] | None) -> dict[str, str]:
    args: dict[str, str] = {}
    for value in values or []:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise CaisError(f"`{value}` is not a build argument", hint="use --build-arg KEY=VALUE")
        args[key] = val
    return args


def build(
    source: Annotated[
        str, typer.Argument(help="Project folder, or a saved model: name[:version|alias].")
    ] = ".",
    tag: Annotated[
        list[str] | None,
        typer.Option(
            "-t", "--tag", metavar="NAME:TAG", help="Name:tag of the image (repeat for more tags)."
        ),
    ] = None,
    platform: Annotated[
        str | None,
        typer.Option("--platform", metavar="OS/ARCH", help="Target platform, such as linux/arm64."),
    ] = None,
    build_arg: Annotated[
        list[str] | None,
        typer.Option("--build-arg", metavar="KEY=VALUE", help="KEY=VALUE for the build."),
    ] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Rebuild every step.")] = False,
    ca_cert: Annotated[
        list[Path] | None,
        typer.Option(
            "--ca-cert",
            metavar="FILE",
            help="Extra CA certificate (PEM) for pip, e.g. a proxy's; never stored in the image. "
            "Default: PIP_CERT, SSL_CERT_FILE or REQUESTS_CA_BUNDLE.",
        ),
    ] = None,
    index_url: Annotated[
        str | None,
        typer.Option(
            "--index-url", metavar="URL", help="Package index for pip (default: PIP_INDEX_URL)."
        ),
    ] = None,
    builder: Annotated[
        BuilderChoice,
        typer.Option("--builder", help="BuildKit (docker CLI) or the classic builder."),
    ] = BuilderChoice.AUTO,
    python: Annotated[
        str | None,
        typer.Option(
            "--python",
            metavar="X.Y",
            help="Python X.Y of a model's serving image (default: its own).",
        ),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("-v", "--verbose", help="Show every build line.")
    ] = False,
) -> None:
    """Build a project, or an image that serves a saved model, on the Docker Engine."""
    from cais.build import BuildOptions, build_project
    from cais.builders.pip_settings import PipSettings, pip_settings
    from cais.builders.record import fingerprint
    from cais.engine.client import check_socket, connect
    from cais.plan import parse_platform
    from cais.project import load_project
    from cais.registry.reference import parse_reference

    options = BuildOptions(
        tags=tuple(tag or ()),
        platform=platform,
        build_args=_build_args(build_arg),
        no_cache=no_cache,
        builder=builder,
    )
    # Unless options change what is built, the next `cais build DIR [-t TAG]` of unchanged
    # inputs is a lookup (cais._entry): take the inputs' fingerprint before anything reads
    # them. (--no-cache and --builder change how, not what.)
    plain = not (platform or build_arg or ca_cert or index_url or python)
    keys = fingerprint(Path(source), options.tags) if plain else None
    # A bad project, tag, platform or certificate fails before the engine is contacted.
    for value in options.tags:
        parse_reference(value)
    parse_platform(platform)
    bundle = _saved_model(source)
    if bundle is not None:
        from cais.build import build_bundle
        from cais.project import read_config

        # Kept API contracts (`routes:` of ./cais.yaml) are served by the image too.
        routes = list(read_config(Path("cais.yaml")).routes)
        if routes and any(r.model not in (None, bundle.metadata.name) for r in routes):
            raise ProjectError(
                "`routes:` in cais.yaml names a model this image does not serve",
                hint=f"the image serves `{bundle.metadata.name}`; fix `model:` in the routes",
            )
        pip = pip_settings(list(ca_cert or ()), index_url)
        check_socket()
        with BuildDisplay(verbose=verbose) as display:
            result = build_bundle(
                connect, bundle, options, display, pip, python=python, routes=routes
            )
        success(
            f"Built `{', '.join(result.tags)}` ({result.image_id[7:19]}), serving "
            f"`{bundle.reference}`, with {result.builder} in {result.seconds:.1f}s"
        )
        note(f"serve it: `cais run -p 8080:8080 {result.tags[0]}`")
        out.print(result.tags[0], markup=False)
        return
    project = load_project(source)
    pip = (
        pip_settings(list(ca_cert or ()), index_url)
        if project.dockerfile is None
        else PipSettings()
    )
    check_socket()
    with BuildDisplay(verbose=verbose) as display:
        result = build_project(connect, project, options, display, pip)
    if keys:
        _keep_records(keys, project, result)
    report_built(result, pip, own_dockerfile=project.dockerfile)


def _keep_records(keys, project, result) -> None:
    """After a plain build: the image its inputs made (a rebuild with nothing changed is a
    lookup) and, for BuildKit, how it ran (a rebuild after an edit of the code runs it again
    at once); see `cais.builders.record` and `cais.builders.replay`."""
    from cais.builders.buildkit import find_buildkit_cli
    from cais.builders.record import remember_result
    from cais.builders.replay import keep_recipe

    remember_result(keys.inputs, result)
    cli = find_buildkit_cli() if result.builder == "buildkit" else None
    if cli is not None:
        keep_recipe(keys.shape, result, project, cli)
