"""`cais pipeline github|gitlab [DIR]`: a CI/CD pipeline for a project, and `cais pipeline
version DIR`, the version its jobs tag the image with."""

from pathlib import Path
from typing import Annotated

import typer

from cais.cli._destination import check_destination, write_file
from cais.output import note, out, success
from cais.pipeline import Deploy, PipelineOptions, Provider

__all__ = ["app"]

app = typer.Typer(
    help="Write a CI/CD pipeline (GitHub Actions or GitLab CI) that tests, trains, builds "
    "with no Docker daemon, pushes and deploys a project.",
    no_args_is_help=True,
)

_FILES = {Provider.github: "`.github/workflows/cais.yml`", Provider.gitlab: "`.gitlab-ci.yml`"}


def _command(provider: Provider):
    def command(
        directory: Annotated[
            Path,
            typer.Argument(
                metavar="DIR", help="The project folder, or a folder a model was saved into."
            ),
        ] = Path("."),
        output: Annotated[
            Path | None,
            typer.Option(
                "--output",
                "-o",
                metavar="FILE",
                help=f"The file to write (default: {_FILES[provider]} at the top of the git "
                "repository).",
            ),
        ] = None,
        registry: Annotated[
            str | None,
            typer.Option(
                "--registry",
                metavar="HOST[/NAMESPACE]",
                help="Where the image goes (default: the CI's own registry: "
                + ("ghcr.io" if provider is Provider.github else "GitLab's")
                + "), with REGISTRY_USER and REGISTRY_PASSWORD from the CI's secrets.",
            ),
        ] = None,
        deploy: Annotated[
            Deploy,
            typer.Option(
                "--deploy",
                help="Deploy from the default branch: `cais deploy compose` over SSH, or "
                "`kubectl` with the manifests `cais deploy k8s` wrote into DIR/k8s.",
            ),
        ] = Deploy.none,
        force: Annotated[
            bool, typer.Option("--force", help="Replace the file when it exists.")
        ] = False,
    ) -> None:
        _write(provider, directory, output, registry, deploy, force=force)

    kind = "GitHub Actions workflow" if provider is Provider.github else "GitLab CI pipeline"
    command.__doc__ = (
        f"Write the {kind} of a project: test, train, build with no Docker daemon, push "
        "tagged with the version and the commit, deploy."
    )
    return command


def _write(
    provider: Provider,
    directory: Path,
    output: Path | None,
    registry: str | None,
    deploy: Deploy,
    *,
    force: bool,
) -> None:
    from cais.pipeline import default_output, registry_image, render, subject_of

    options = PipelineOptions(provider=provider, registry=registry, deploy=deploy)
    if registry is not None:
        registry_image(registry, "name")  # a bad registry fails before the project is read
    subject = subject_of(directory)
    target = output or default_output(provider, subject.root)
    check_destination(target, replace=force)
    text = render(subject, options)
    write_file(target, text)
    success(f"Wrote `{target}` for `{subject.name}`")
    if deploy is Deploy.kubectl and not (directory / "k8s" / "deployment.yaml").is_file():
        note(
            f"the deploy job applies `{directory / 'k8s'}`: write it with `cais deploy k8s "
            f"REF -o {directory / 'k8s'}` and commit it"
        )
    out.print(str(target), markup=False)


app.command("github")(_command(Provider.github))
app.command("gitlab")(_command(Provider.gitlab))


@app.command("version")
def version(
    directory: Annotated[
        Path, typer.Argument(metavar="DIR", help="The project folder, or a model's folder.")
    ] = Path("."),
) -> None:
    """Print the version a pipeline tags DIR's image with (the model's, else the project's)."""
    from cais.pipeline import image_version

    out.print(image_version(directory), markup=False)
