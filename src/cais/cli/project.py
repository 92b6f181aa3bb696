"""`cais init`, `cais dockerfile`, `cais build`: from a project folder to an image."""

from dataclasses import dataclass
from enum import Enum
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cais.builders.base import BuilderChoice
from cais.errors import BuildError, CaisError, ProjectError
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
            shown = _yaml_text(name) if Path(target).name == "cais.yaml" else name
            text = text.replace("{name}", shown).replace("{python}", running_python())
        (directory / target).parent.mkdir(parents=True, exist_ok=True)
        (directory / target).write_text(text, encoding="utf-8")
    success(f"Created the {template.value} project `{name}` in `{directory}`")
    note("next: " + _NEXT_STEPS[template].format(dir=directory, name=name))


def _yaml_text(value: str) -> str:
    """`value` as YAML reads it back as text: a name such as `1` or `true` quoted."""
    import yaml

    return value if isinstance(yaml.safe_load(value), str) else f'"{value}"'


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
    from cais.cli._destination import check_destination
    from cais.resolve import resolve

    if output is not None:
        check_destination(output)
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
    from cais.cli._destination import write_file

    if output is None:
        out.print(text, end="", markup=False, soft_wrap=True)
    else:
        write_file(output, text)
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


def _kept_routes(found: "Resolved") -> "list[LegacyRoute]":
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
    sources: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="SOURCE",
            help="Project folder, or saved models: name[:version|alias] (a training project "
            "means its newest model); several models make one image that serves them all "
            "(with -t).",
            show_default=False,
        ),
    ] = None,
    tag: Annotated[
        list[str] | None,
        typer.Option(
            "-t", "--tag", metavar="NAME:TAG", help="Name:tag of the image (repeat for more tags)."
        ),
    ] = None,
    platform: Annotated[
        str | None,
        typer.Option(
            "--platform",
            metavar="OS/ARCH[,…]",
            help="Target platform, such as linux/arm64; several, comma-separated, make one "
            "image index (with the OCI builder).",
        ),
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
            "CLI can, else classic); auto: oci for a saved model or a project it can build, "
            "else docker (also when a package has no wheel).",
        ),
    ] = BuilderChoice.AUTO,
    push: Annotated[
        bool,
        typer.Option("--push", help="Push the image to the registry each tag names."),
    ] = False,
    load: Annotated[
        bool,
        typer.Option(
            "--load",
            help="Put the image in the Docker Engine (the default with no --push or --output).",
        ),
    ] = False,
    output: Annotated[
        list[str] | None,
        typer.Option(
            "--output",
            metavar="oci:DIR|tar:FILE",
            help="Also write the image as an OCI layout or a `docker load` tarball (with "
            "the OCI builder; needs no engine).",
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
    """Build a project (on this machine, or on the Docker Engine when only it can) or the
    serving image of one or several saved models, for the engine, a registry or a file."""
    from cais.build import BuildOptions, pip_settings_unused
    from cais.builders.pip_settings import pip_settings
    from cais.deliver import parse_output, parse_platforms
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
    sinks = _Sinks(push=push, load=load, outputs=list(output or ()))
    # A bad project, tag, platform, output or certificate fails before the engine is contacted.
    for value in sinks.outputs:
        parse_output(value)
    for value in options.tags:
        parse_reference(value)
    platforms = parse_platforms(platform)
    if sources and len(sources) > 1:
        _build_models(sources, options, sinks, platforms, ca_cert, index_url, python, verbose)
        return
    source = sources[0] if sources else "."
    found = resolve(source, projects=True)
    if found.note:
        note(found.note)
    if found.bundle is not None:
        _build_bundle(found, options, sinks, platforms, ca_cert, index_url, python, verbose)
        return
    project = load_project(source)  # found.project: the folder, spelled as the user did
    for line in project.notes:
        note(line)
    plan = _tell(project) if project.dockerfile is None else None
    pip = pip_settings(list(ca_cert or ()), index_url)
    unused = pip_settings_unused(project, pip)
    if unused:
        note(unused)
    reason = _needs_docker(project, options)

    def on_host() -> None:
        _build_project_on_host(project, plan, options, pip, sinks, platforms, verbose=verbose)

    if not _built_on_host(on_host, reason, options, sinks, platforms):
        _build_on_engine(project, options, pip, sinks, verbose=verbose)


@dataclass(frozen=True)
class _Sinks:
    """Where the image goes, as the options say (`cais.deliver` checks them)."""

    push: bool
    load: bool
    outputs: list[str]


def _needs_docker(project, options) -> str | None:
    """Why the Docker builder builds this project (None: a saved model's serving image), None
    when the OCI builder does."""
    if options.builder is BuilderChoice.OCI:
        return None
    if options.builder is not BuilderChoice.AUTO:
        return f"`--builder {options.builder.value}`"
    if options.build_args:
        return "`--build-arg` is for a Dockerfile"
    if project is None:
        return None
    from cais.builders.select import docker_reason

    return docker_reason(project)


def _built_on_host(on_host, reason: str | None, options, sinks: _Sinks, platforms) -> bool:
    """Build with the OCI builder (`on_host()`) unless `reason` says why the Docker builder
    does; False when the Docker builder is to build, said in one line under `auto`: for
    `reason`, or because a package has no wheel for the target."""
    auto = options.builder is BuilderChoice.AUTO
    if reason is None:
        try:
            on_host()
            return True
        except BuildError as exc:
            # Only a package with no wheel is the Docker builder's to build instead, and only
            # when it can deliver the image as asked.
            if not auto or not exc.packages or sinks.outputs or len(platforms) > 1:
                raise
            note(f"{exc.message}: the Docker builder takes over")
            return False
    _only_on_host(sinks, len(platforms), reason if auto else None)
    if auto:
        note(f"building with the Docker builder: {reason}")
    return False


def _only_on_host(sinks: _Sinks, platforms: int, why: str | None) -> None:
    """Refuse, for the Docker builder, what only an image cais assembles itself can do;
    `why` says why the OCI builder does not build it (None: it was not chosen)."""
    hint = "add `--builder oci`" if why is None else f"cais builds it on the Docker Engine: {why}"
    if sinks.outputs:
        raise CaisError("`--output` writes an image cais assembles itself", hint=hint)
    if platforms > 1:
        raise CaisError(
            "An image of several platforms is assembled by the OCI builder",
            hint=hint if why is None else f"{hint}; build one `--platform` at a time",
        )


def _build_project_on_host(
    project, plan, options, pip, sinks: _Sinks, platforms, *, verbose: bool
) -> None:
    """Build a project with the OCI builder and hand the image to its sinks; `plan` is the
    one `_tell` printed (None for a project's own Dockerfile, which this builder refuses)."""
    from cais.build import build_image, default_tag
    from cais.builders.oci import check_platform

    if len(platforms) > 1 and plan is not None and plan.dependencies is not None:
        for platform in platforms:  # refused before the first platform is built
            check_platform(platform)

    def assembled(builder, wanted, display, loading):
        return build_image(builder, project, wanted, display, pip)

    _build_on_host(
        assembled,
        options.tags or (default_tag(project),),
        options,
        pip,
        sinks,
        platforms,
        verbose=verbose,
    )


def _build_on_host(build, tags, options, pip, sinks: _Sinks, platforms, *, verbose: bool) -> None:
    """Build with the OCI builder (`build(builder, options, display, loading)` gives one
    platform's image and plan) and hand the image to its sinks (`cais.deliver`)."""
    from cais.deliver import SinkKind, build_and_deliver, plan_delivery
    from cais.image.index import ImageIndex
    from cais.image.sbom import PATH

    delivery = plan_delivery(
        tags=tags,
        push=sinks.push,
        load=sinks.load,
        outputs=sinks.outputs,
        platforms=platforms,
    )
    tags = delivery.tags
    with BuildDisplay(verbose=verbose) as display:
        built = build_and_deliver(build, options, delivery, display)
    plan = built.plan
    if plan.dependencies is not None and pip:
        note(f"uv used {pip.describe()}; kept out of the image")
    image = built.image
    if isinstance(image, ImageIndex):
        what = f"{image.digest[7:19]}, for {', '.join(map(str, image.platforms))}"
    else:
        what = image.id[7:19]
    success(f"Built `{', '.join(tags)}` ({what}) with oci in {built.seconds:.1f}s")
    if plan.model is not None:  # a serving image: where it was proved
        note(plan.notes[-1])
    for done in built.delivered:
        if done.sink.kind is SinkKind.PUSH:
            success(f"Pushed `{done.reference}` ({done.digest})")
        elif done.sink.kind is SinkKind.OCI:
            note(f"wrote the OCI layout `{done.reference}` (digest {done.digest})")
        elif done.sink.kind is SinkKind.TAR:
            note(f"wrote the tarball `{done.reference}` (digest {done.digest})")
        elif isinstance(image, ImageIndex):
            note(f"loaded this machine's `{done.reference}` into the Docker Engine")
    pushed = any(done.sink.kind is SinkKind.PUSH for done in built.delivered)
    note(
        f"its packages are listed at `{PATH}` in the image"
        + (", and attached to it in the registry" if pushed else "")
    )
    if delivery.engine is not None:
        note(f"run it: `{run_command(tags[0], plan.ports)}`")
    out.print(tags[0], markup=False)


def _build_on_engine(project, options, pip, sinks: _Sinks, *, verbose: bool) -> None:
    """Build with the Docker Engine's builder; `--push` then pushes from the engine."""
    from cais.build import build_project
    from cais.engine.client import check_socket, connect

    check_socket()
    with BuildDisplay(verbose=verbose) as display:
        result = build_project(connect, project, options, display, pip)
    if sinks.push:
        _push_tags(result.tags)
    report_built(result, pip, own_dockerfile=project.dockerfile)


def _push_tags(tags) -> None:
    """Push each tag of an image the engine built, with the engine's own push."""
    from cais.cli.registry import push_from_engine
    from cais.registry.reference import parse_reference

    for reference in tags:
        digest = push_from_engine(parse_reference(reference))
        success(f"Pushed `{reference}`" + (f" ({digest})" if digest else ""))


def _build_models(
    sources, options, sinks: _Sinks, platforms, ca_cert, index_url, python, verbose: bool
) -> None:
    """One image that serves several saved models, built on this machine."""
    from cais.build import build_bundles_image
    from cais.builders.pip_settings import pip_settings
    from cais.resolve import resolve

    if not options.tags:
        raise CaisError(
            "An image of several models needs a name",
            hint=f"name it with `-t NAME:TAG`, such as `cais build {' '.join(sources)} -t "
            "models:1`",
        )
    if options.builder not in (BuilderChoice.AUTO, BuilderChoice.OCI):
        raise CaisError(
            f"`--builder {options.builder.value}` builds one model's image; several models "
            "share one image with the OCI builder",
            hint="leave out `--builder`, or build each model alone",
        )
    bundles = []
    for source in sources:
        found = resolve(source, projects=True)
        if found.bundle is None:
            raise ProjectError(
                f"`{source}` is a project folder, and only saved models share one image",
                hint=f"build `{source}` alone, or name saved models only (name:version)",
            )
        if found.origin is not None and _kept_routes(found):
            raise ProjectError(
                f"`routes:` in `{found.origin / 'cais.yaml'}` keeps an API contract for "
                f"`{found.bundle.reference}` alone, which an image of several models does not "
                "keep",
                hint=f"build `{source}` alone to keep its routes",
            )
        if found.note:
            note(found.note)
        bundles.append(found.bundle)
    pip = pip_settings(list(ca_cert or ()), index_url)

    def serving(builder, wanted, display, loading):
        return build_bundles_image(
            builder, bundles, wanted, display, pip, python=python, keep_in_engine=loading
        )

    _build_on_host(serving, options.tags, options, pip, sinks, platforms, verbose=verbose)


def _build_bundle(
    found, options, sinks: _Sinks, platforms, ca_cert, index_url, python, verbose: bool
) -> None:
    """The image that serves a saved model: on this machine (the OCI builder) unless the
    options ask for the engine's builder, which also takes over, under `auto`, a package
    with no wheel for the target."""
    from cais.build import build_bundle, build_bundle_image
    from cais.builders.pip_settings import pip_settings
    from cais.engine.client import check_socket, connect

    bundle = found.bundle
    routes = _kept_routes(found)
    pip = pip_settings(list(ca_cert or ()), index_url)

    def serving(builder, wanted, display, loading):
        return build_bundle_image(
            builder,
            bundle,
            wanted,
            display,
            pip,
            python=python,
            routes=routes,
            keep_in_engine=loading,
        )

    def on_host() -> None:
        tags = options.tags or (f"{bundle.metadata.name}:{bundle.metadata.version}",)
        _build_on_host(serving, tags, options, pip, sinks, platforms, verbose=verbose)

    if _built_on_host(on_host, _needs_docker(None, options), options, sinks, platforms):
        return
    check_socket()
    with BuildDisplay(verbose=verbose) as display:
        result = build_bundle(connect, bundle, options, display, pip, python=python, routes=routes)
    success(
        f"Built `{', '.join(result.tags)}` ({result.image_id[7:19]}), serving "
        f"`{bundle.reference}`, with {result.builder} in {result.seconds:.1f}s"
    )
    if sinks.push:
        _push_tags(result.tags)
    note(f"serve it: `cais run -p 8080:8080 {result.tags[0]}`")
    out.print(result.tags[0], markup=False)
