"""`cais check URL`: a monitoring plugin for Nagios and Icinga (exit codes 0/1/2/3, perfdata)."""

from typing import Annotated, NoReturn

import typer
from typer._click.exceptions import UsageError
from typer.core import TyperCommand

__all__ = ["check"]


class _PluginCommand(TyperCommand):
    """Arguments the check cannot use are UNKNOWN (exit 3), as the plugin guidelines say, not
    click's usage error (exit 2): a monitoring system would read 2 as CRITICAL."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except UsageError as exc:
            from cais.cli import _usage_error

            _unknown(_usage_error(exc).message)


def _unknown(message: str) -> NoReturn:
    from cais.monitor import NAME

    print(f"{NAME} UNKNOWN - {message}", flush=True)
    raise typer.Exit(3)


def check(
    url: Annotated[
        str,
        typer.Argument(
            metavar="URL",
            help="The server (http://host:8080), or with --field a plain JSON API's endpoint.",
        ),
    ],
    model: Annotated[
        str | None,
        typer.Option(
            "--model", "-m", metavar="NAME[:VERSION]", help="The model to ask (several served)."
        ),
    ] = None,
    input: Annotated[
        str | None,
        typer.Option(
            "--input",
            "-i",
            metavar="JSON",
            help="The known input: JSON, or plain text (default on a cais server: the "
            "model's recorded example).",
        ),
    ] = None,
    expect: Annotated[
        str | None,
        typer.Option("--expect", "-e", metavar="VALUE", help="The answer it must give."),
    ] = None,
    field: Annotated[
        str | None,
        typer.Option(
            "--field",
            "--path",
            metavar="FIELD",
            help="A plain JSON API: where its answer is (`categoria`, `result.labels.0`).",
        ),
    ] = None,
    warning: Annotated[
        str,
        typer.Option("--warning", "-w", metavar="RANGE", help="WARNING outside this time range."),
    ] = "",
    critical: Annotated[
        str,
        typer.Option("--critical", "-c", metavar="RANGE", help="CRITICAL outside this time range."),
    ] = "",
    timeout: Annotated[
        str,
        typer.Option("--timeout", "-t", metavar="SECONDS", help="CRITICAL without an answer."),
    ] = "10",
) -> None:
    """Check a served model, for Nagios and Icinga: post a known input, compare the answer.

    Prints one line, `CAIS OK - products:3 answered "livro" in 12 ms | time=0.012s;0.5;1;0`,
    and exits 0 (OK), 1 (WARNING), 2 (CRITICAL) or 3 (UNKNOWN).
    Time ranges are in seconds, in the Nagios syntax: `0.5`, `0.2:`, `~:1`, `@0.2:0.5`.
    """
    import nagiosplugin

    from cais.monitor import Target, UsageProblem, parse_input, parse_url, threshold
    from cais.monitor import check as make_check

    try:
        target = Target(
            url=parse_url(url),
            model=model or None,
            input=None if input is None else parse_input(input),
            field=field,
            timeout=_seconds(timeout),
        )
        ranges = threshold(warning, "-w"), threshold(critical, "-c")
    except UsageProblem as exc:
        _unknown(str(exc))
    plugin = make_check(target, warning=ranges[0], critical=ranges[1], expect=expect)
    # guarded: anything unforeseen is still one UNKNOWN line, never a traceback.
    nagiosplugin.guarded(verbose=0)(plugin.main)(verbose=0, timeout=0)


def _seconds(text: str) -> float:
    from cais.monitor import UsageProblem

    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        raise UsageProblem(f"`-t {text}` is not a number of seconds above 0")
    return value


check.command_class = _PluginCommand  # type: ignore[attr-defined]
