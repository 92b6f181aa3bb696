"""The `cais` command line: one module per group of commands, joined here.

Command modules import the Docker SDK, httpx and the builders inside the commands that need
them, so `cais --help` and light commands start fast.
"""

import re
import sys
from typing import Annotated

import typer
from typer._click.exceptions import BadParameter, UsageError
from typer.core import TyperGroup

from cais import __version__
from cais.cli import (
    cache,
    check,
    containers,
    deploy,
    doctor,
    images,
    models,
    pipeline,
    project,
    registry,
    serve,
    status,
)
from cais.cli._help import readable
from cais.errors import CaisError
from cais.output import closed_output, report_error, report_interrupted, report_unexpected

__all__ = ["app", "main"]


class _Group(TyperGroup):
    """Turns every CaisError into one sentence (and a hint) with exit code 1; `--debug`
    shows the traceback instead. A closed output pipe ends cais quietly (as click does for
    `--help`, and Rich for what it prints)."""

    def invoke(self, ctx: typer.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except CaisError as exc:
            if _debug(ctx):
                raise
            report_error(exc)
            raise typer.Exit(getattr(exc, "exit_code", 1)) from None
        except KeyboardInterrupt:
            report_interrupted()
            raise typer.Exit(130) from None
        except BrokenPipeError:  # `cais ps | head -1`: the reader went away
            raise typer.Exit(closed_output()) from None
        except UsageError as exc:  # a value the command refuses (click's exit code, 2)
            if _debug(ctx):
                raise
            report_error(_usage_error(exc))
            raise typer.Exit(2) from None
        except Exception as exc:
            # Exits and usage errors belong to Typer (which vendors click): let them through.
            if _debug(ctx) or type(exc).__module__.startswith(("typer", "click")):
                raise
            # Anything else is a bug: one line, unless asked for the traceback.
            report_unexpected(exc)
            raise typer.Exit(2) from None

    def list_commands(self, ctx: typer.Context) -> list[str]:
        return list(self.commands)  # keep the journey order in --help

    def format_help(self, ctx: typer.Context, formatter) -> None:  # type: ignore[override]
        readable(self, ctx)
        super().format_help(ctx, formatter)

    def get_command(self, ctx: typer.Context, cmd_name: str):  # type: ignore[override]
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            readable(command, ctx)
        return command


def _usage_error(exc: UsageError) -> CaisError:
    """Click's message as one sentence: names in backticks, no final period, and the value
    refused (Typer checks values with Pydantic, whose error keeps it)."""
    message = exc.format_message()
    errors = getattr(exc.__cause__, "errors", None)
    if isinstance(exc, BadParameter) and exc.param is not None and callable(errors):
        value, hint = errors()[0].get("input"), exc.param.get_error_hint()
        message = f"Invalid value `{value}` for {hint}: {exc.message[:1].lower()}{exc.message[1:]}"
    message = re.sub(r"'([^'\s]+)'", r"`\1`", message).rstrip(".")
    command = exc.ctx.command_path if exc.ctx is not None else "cais"
    return CaisError(message, hint=f"see `{command} --help`")


def _debug(ctx: typer.Context) -> bool:
    return bool(ctx.obj and ctx.obj.get("debug"))


app = typer.Typer(
    cls=_Group,
    name="cais",
    help="From a notebook to a published, running, monitored container.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        print(f"cais {__version__}", flush=True)
        raise typer.Exit()


@app.callback()
def _main(
    ctx: typer.Context,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    ctx.obj = {"debug": debug}


for command in (
    project.init,
    project.dockerfile,
    project.build,
    project.train,
    containers.run,
    containers.ps,
    containers.logs,
    containers.stop,
    containers.rm,
    containers.exec,
    images.images,
    images.tag,
    images.rmi,
    registry.login,
    registry.logout,
    registry.push,
    registry.pull,
    serve.serve,
    status.status,
    check.check,
    doctor.doctor,
):
    app.command(
        cls=getattr(command, "command_class", None),
        rich_help_panel=getattr(command, "panel", None),
        context_settings=getattr(command, "context_settings", None),
    )(command)
app.add_typer(models.app, name="models")
app.add_typer(cache.app, name="cache")
app.add_typer(deploy.app, name="deploy")
app.add_typer(pipeline.app, name="pipeline")


def main() -> None:
    sys.exit(app())  # pragma: no cover
