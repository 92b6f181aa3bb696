"""`cais init`, `cais dockerfile`, `cais build`: from a project folder to an image."""

from __future__ import annotations

from enum import Enum
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cais.builders.base import BuilderChoice
from cais.errors import CaisError, ProjectError
from cais.output import BuildDisplay, note, out, report_built, run_command, success, warning

if TYPE_CHECKING:
    from cais.resolve import Resolved
    from cais.server.routes import LegacyRoute

__all__ = ["build", "dockerfile", "init"]


class Template(str, Enum):
    script = "script"
    flask = "flask"
    classifier = "classifier"


# Files whose {name} and {python} are filled in; `dockerignore` becomes `.dockerignore`.
_FILLED_IN = {"cais.yaml", "README.md", "train.py"}
_NEXT_STEPS = {
    Template.script: "`cais dockerfile {dir}` to see its Dockerfile, `cais build {dir}` to build it",
    Template.flask: "`cais build {dir}`, then `cais run -d -p 8080:8000 {name}:0.1.0` and open "
    "http://127.0.0.1:8080",
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
        Template,
        typer.Option(
            "--template", help="Kind of project: a script, a Flask web app, or a classifier."
        ),
    ] = Template.script,
    force: Annotated[bool, typer.Option("--force", help="Overwrite files that exist.")] = False,
) -> None:
    """Create a runnable example project (a script, a Flask web app, or a classifier to train
    and serve)."""
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
    saved = _saved_versions()
    done = subprocess.run([sys.executable, script], cwd=project.path)
    if done.returncode != 0:
        requirements = directory / (project.config.requirements or "requirements.txt")
        raise ProjectError(
            f"`{script}` failed with exit code {done.returncode}",
            hint="its output above says why; a missing module usually means the project's "
            f"packages are not installed here: `pip install -r {requirements}`",
        )
    success(f"`{script}` finished")
    new = sorted(_saved_versions() - saved)
    if project.config.train and any(r.startswith(f"{project.name}:") for r in new):
        # The folder stands for its newest model (cais.resolve), from here as from inside.
        note(f"next: `cais serve {directory}` serves it, `cais build {directory}` builds its image")
    elif new:
        note(f"next: `cais serve {new[-1]}` serves it, `cais build {new[-1]}` builds its image")


def _saved_versions() -> set[str]:
    """Every `name:version` in the model store."""
    from cais.bundle.store import ModelStore

    store = ModelStore()
    return {f"{name}:{version}" for name in store.names() for version in store.versions(name)}


# What `cais dockerfile` and `cais build` take: both follow cais.resolve.
_Source = Annotated[
    str,
    typer.Argument(
        help="Project folder, or a saved model: name[:version|alias] (a training project "
        "means its newest model)."
    ),
]


def dockerfile(
    source: _Source = ".",
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
    """Print the Dockerfile cais writes for a project, or for the image that serves a saved
    model (or write it with -o)."""
    from cais.build import dockerfile_for, serving_dockerfile
    from cais.builders.dockerfile import SecretsMode
    from cais.resolve import resolve

    secrets = SecretsMode.BUILDKIT if ca_cert else SecretsMode.NONE
    # The rule of `cais build`: a training project means the image that serves its newest model.
    found = resolve(source, projects=True)
    if found.note:
        note(found.note)
    if found.bundle is not None:
        text = serving_dockerfile(
            found.bundle, tags=tuple(tag or ()), routes=_kept_routes(found), secrets=secrets
        )
        _put(text, output)
        note(f"`cais build {source}` builds it: cais gathers the model and its server beside it")
        return
    project, text = dockerfile_for(source, tags=tuple(tag or ()), secrets=secrets)
    if project.dockerfile is not None:
        raise ProjectError(
            f"`{project.dockerfile}` is the project's own Dockerfile, which cais builds as it is",
            hint="remove it to let cais write one",
        )
    for line in project.notes:
        note(line)
    _put(text, output)
    if output is not None:
        _write_dockerignore(project.path, Path(source), output)
    plan = _tell(project)
    if plan.ports:
        from cais.build import default_tag

        image = (tag or [default_tag(project)])[0]
        note(f"once built, run it: `{run_command(image, plan.ports)}`")


def _put(text: str, output: Path | None) -> None:
    """The Dockerfile to stdout, or written to `output`."""
    if output is None:
        out.print(text, end="", markup=False, soft_wrap=True)
    else:
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise ProjectError(
                f"`{output}` cannot be written: {exc.strerror or exc}",
                hint="give a file in a folder that exists and that you can write to",
            ) from exc
        success(f"Wrote `{output}`")


def _write_dockerignore(root: Path, shown: Path, output: Path) -> None:
    """A Dockerfile written into the project is built by `docker build`, and by `cais build`
    as the project's own, with the project's .dockerignore: when there is none, cais's
    default ignore list goes there, so that every build leaves out the same files. An
    existing .dockerignore is never replaced."""
    from cais.builders.context import WRITTEN_DOCKERIGNORE

    if root not in output.resolve().parents:
        return  # built from elsewhere: which .dockerignore applies is the user's to say
    try:
        with (root / ".dockerignore").open("x", encoding="utf-8") as file:
            file.write(WRITTEN_DOCKERIGNORE)
    except FileExistsError:
        return
    note(
        f"wrote `{shown / '.dockerignore'}` too: cais's default ignore list, so that `docker "
        "build` leaves out .git, virtualenvs, caches, secrets and data as `cais build` does"
    )


def _kept_routes(found: Resolved) -> list[LegacyRoute]:
    """The kept API contracts (`routes:` of the project's cais.yaml) of a model named through
    its project: the image that serves it serves them too."""
    from cais.project import read_config

    bundle = found.bundle
    assert bundle is not None
    routes = list(read_config((found.origin or Path(".")) / "cais.yaml").routes)
    if routes and any(r.model not in (None, bundle.metadata.name) for r in routes):
        raise ProjectError(
            "`routes:` in cais.yaml names a model this image does not serve",
            hint=f"the image serves `{bundle.metadata.name}`; fix `model:` in the routes",
        )
    return routes


def _tell(project):
    """Print what cais decided for the project's image and what will not work in it."""
    from cais.plan import plan_project

    plan = plan_project(project)
    for text in plan.notes:
        note(text)
    for text in plan.warnings:
        warning(text)
    return plan


def _build_args(values: list[str] | None) -> dict[str, str]:
    args: dict[str, str] = {}
    for value in values or []:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise CaisError(f"`{value}` is not a build argument", hint="use --build-arg KEY=VALUE")
        args[key] = val
    return args


def build(
    source: _Source = ".",
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
        typer.Option(
            "--builder",
            help="oci: on this machine, no daemon; docker: the engine's (buildkit when a docker "
            "CLI can, else classic); auto: docker for now.",
        ),
    ] = BuilderChoice.AUTO,
    load: Annotated[
        bool,
        typer.Option(
            "--load", help="Put the image in the Docker Engine (the default with no --output)."
        ),
    ] = False,
    output: Annotated[
        list[str] | None,
        typer.Option(
            "--output",
            metavar="oci:DIR|tar:FILE",
            help="Also write the image as an OCI layout or a `docker load` tarball (with "
            "--builder oci; needs no engine).",
        ),
    ] = None,
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
    """Build a project (on the Docker Engine, or on this machine with `--builder oci`), or an
    image that serves a saved model."""
    from cais.build import BuildOptions, build_project, pip_settings_unused
    from cais.builders.pip_settings import pip_settings
    from cais.builders.record import fingerprint
    from cais.engine.client import check_socket, connect
    from cais.plan import parse_platform
    from cais.project import load_project
    from cais.registry.reference import parse_reference
    from cais.resolve import resolve

    options = BuildOptions(
        tags=tuple(tag or ()),
        platform=platform,
        build_args=_build_args(build_arg),
        no_cache=no_cache,
        builder=builder,
    )
    # Unless options change what is built, the next `cais build DIR [-t TAG]` of unchanged
    # inputs is a lookup (cais._entry): take the inputs' fingerprint before anything reads
    # them. (--no-cache and --builder change how, not what; the OCI builder's own layer cache
    # answers for it.)
    oci = builder is BuilderChoice.OCI
    plain = not (platform or build_arg or ca_cert or index_url or python or oci)
    outputs = [_output(value) for value in output or ()]
    if outputs and not oci:
        raise CaisError(
            "`--output` writes an image cais assembles itself",
            hint="add `--builder oci`",
        )
    key = fingerprint(Path(source), options.tags) if plain else None
    # A bad project, tag, platform or certificate fails before the engine is contacted.
    for value in options.tags:
        parse_reference(value)
    parse_platform(platform)
    found = resolve(source, projects=True)
    if found.note:
        note(found.note)
    bundle = found.bundle
    if bundle is not None and oci:
        from cais.build import build_bundle_image

        routes = _kept_routes(found)
        pip = pip_settings(list(ca_cert or ()), index_url)
        tags = options.tags or (f"{bundle.metadata.name}:{bundle.metadata.version}",)

        def serving(builder, display, loading):
            return build_bundle_image(
                builder,
                bundle,
                options,
                display,
                pip,
                python=python,
                routes=routes,
                keep_in_engine=loading,
            )

        _build_on_host(serving, tags, options, pip, outputs, load=load, verbose=verbose)
        return
    if bundle is not None:
        from cais.build import build_bundle

        routes = _kept_routes(found)
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
    project = load_project(source)  # found.project: the folder, spelled as the user did
    for line in project.notes:
        note(line)
    if project.dockerfile is None:
        _tell(project)
    pip = pip_settings(list(ca_cert or ()), index_url)
    unused = pip_settings_unused(project, pip)
    if unused:
        note(unused)
    if oci:
        from cais.build import build_image, default_tag

        def assembled(builder, display, loading):
            return build_image(builder, project, options, display, pip)

        tags = options.tags or (default_tag(project),)
        _build_on_host(assembled, tags, options, pip, outputs, load=load, verbose=verbose)
        return
    check_socket()
    with BuildDisplay(verbose=verbose) as display:
        result = build_project(connect, project, options, display, pip)
    if key:
        from cais.builders.record import remember_result

        remember_result(key, result)  # a rebuild with nothing changed is then a lookup
    report_built(result, pip, own_dockerfile=project.dockerfile)


def _output(value: str) -> tuple[str, Path]:
    """`oci:DIR` or `tar:FILE`, parsed."""
    kind, sep, where = value.partition(":")
    if not sep or kind not in ("oci", "tar") or not where:
        raise CaisError(
            f"`{value}` is not an output cais writes",
            hint="use `oci:DIR` (an OCI image layout) or `tar:FILE` (a tarball `docker load` "
            "reads)",
        )
    return kind, Path(where)


def _build_on_host(
    build, tags, options, pip, outputs: list[tuple[str, Path]], *, load: bool, verbose: bool
) -> None:
    """Build with the OCI builder (`build(builder, display, loading)` gives the image and its
    plan; `loading` says whether it goes to the engine), then hand the image to each sink:
    the engine (`--load`, the default when no output is given), OCI layouts, tarballs."""
    import time

    from cais.builders.oci import OCIBuilder
    from cais.engine.client import connect, engine_errors, engine_host
    from cais.image.media import Compression
    from cais.registry.reference import parse_reference
    from cais.sinks import engine, layout, tarball

    tags = [str(parse_reference(t)) for t in tags]
    client = None
    if load or not outputs:
        try:
            client = connect(timeout=30)
            with engine_errors():
                client.ping()
        except CaisError as exc:
            if load:
                raise
            raise CaisError(
                f"No Docker Engine answers at `{engine_host()}` to load the image into",
                hint="start one, or write the image with `--output oci:DIR` or `--output tar:FILE`",
            ) from exc
    builder = OCIBuilder(
        engine=lambda: connect(timeout=30),
        prefer_engine=client is not None and not outputs,
        compression=None if not outputs else Compression.GZIP,
        no_cache=options.no_cache,
    )
    started = time.monotonic()
    with BuildDisplay(verbose=verbose) as display:
        image, plan = build(builder, display, client is not None)
        for kind, where in outputs:
            display.step(f"[output] {kind}:{where}")
            if kind == "oci":
                layout.write(image, where, tag=plan.tag)
            else:
                tarball.write(image, where, tags=tags)
        if client is not None:
            display.step("[load] into the Docker Engine")
            engine.write(image, client, tags=tags, candidates=[plan.base_image])
    seconds = time.monotonic() - started
    if plan.dependencies is not None and pip:
        note(f"uv used {pip.describe()}; kept out of the image")
    success(f"Built `{', '.join(tags)}` ({image.id[7:19]}) with oci in {seconds:.1f}s")
    if plan.model is not None:  # a serving image: where it was proved
        note(plan.notes[-1])
    for kind, where in outputs:
        what = "the OCI layout" if kind == "oci" else "the tarball"
        note(f"wrote {what} `{where}` (digest {image.digest})")
    if client is not None:
        note(f"run it: `{run_command(tags[0], plan.ports)}`")
    out.print(tags[0], markup=False)
