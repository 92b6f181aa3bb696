"""`cais serve`: serve saved models over HTTP, in this process (no engine needed)."""

import socket
import sys
from pathlib import Path
from typing import Annotated

import typer

from cais.output import note, success
from cais.server.workers import DEFAULT_GRACE

__all__ = ["serve"]


def serve(
    models: Annotated[
        list[str], typer.Argument(help="Models: name[:version|alias], bundle or project folders.")
    ],
    host: Annotated[
        str, typer.Option("--host", metavar="ADDRESS", help="Address to listen on.")
    ] = "127.0.0.1",
    port: Annotated[
        int,
        typer.Option(
            "--port",
            "-p",
            metavar="PORT",
            min=0,
            max=65535,
            help="Port to listen on (0: any free one).",
        ),
    ] = 8080,
    workers: Annotated[
        int, typer.Option("--workers", metavar="N", min=1, help="Worker processes.")
    ] = 1,
    max_body: Annotated[
        int,
        typer.Option(
            "--max-body", metavar="BYTES", min=1, help="Largest request body accepted, in bytes."
        ),
    ] = 10 * 1024 * 1024,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            metavar="FILE",
            help="cais.yaml of `routes:` to keep (default: the project's).",
        ),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No line on stderr for each request.")
    ] = False,
    grace: Annotated[
        float,
        typer.Option(
            "--grace",
            metavar="SECONDS",
            min=0,
            help="On SIGTERM, how long requests in flight may take to finish.",
        ),
    ] = DEFAULT_GRACE,
) -> None:
    """Serve models: a simple JSON API (POST /predict) and the Open Inference Protocol V2."""
    from cais.server.workers import collector_paused

    with collector_paused():
        sockets = _listen(host, port, workers)  # before the models load: a busy port fails now
        try:
            _serve(sockets, models, host, max_body, config, quiet, grace)
        finally:
            for sock in set(sockets):
                sock.close()


def _listen(host: str, port: int, workers: int) -> list[socket.socket]:
    from cais.errors import CaisError
    from cais.server.workers import listen

    try:
        return listen(host, port, workers)
    except OSError as exc:
        raise CaisError(
            f"Cannot listen on {host}:{port}: {exc.strerror or exc}",
            hint="choose another --port, or stop what is using this one",
        ) from None


def _serve(
    sockets: list[socket.socket],
    models: list[str],
    host: str,
    max_body: int,
    config: Path | None,
    quiet: bool,
    grace: float,
) -> None:
    from cais.errors import CaisError
    from cais.project import read_config
    from cais.resolve import resolve
    from cais.server.app import create_app
    from cais.server.models import ModelSet, NotFound

    if config is not None and not config.is_file():
        raise CaisError(f"The config file `{config}` does not exist")
    found = [resolve(m, projects=False) for m in models]  # one sentence on a bad reference
    for each in found:
        if each.note:
            note(each.note)
    # A training project named on the command line brings its cais.yaml (`routes:`).
    origin = next((f.origin for f in found if f.origin is not None), Path("."))
    routes = list(read_config(config or origin / "cais.yaml").routes)
    served = ModelSet.of([f.bundle for f in found])
    for route in routes:
        try:
            served.get(route.model)
        except NotFound as exc:
            raise CaisError(
                f"The route `{route.path}` names a model that is not served: {exc}",
                hint="serve that model too, or fix `routes:` in cais.yaml",
            ) from None
        note(f"keeping `POST {route.path}` ({route.input} → {route.output})")
    for loaded in served.all():
        note(f"loaded `{loaded.name}:{loaded.version}` in {loaded.load_seconds:.2f}s")
    from cais.server.workers import serve as run_server

    def listening(port: int) -> None:  # said once every worker answers, with the real port
        success(
            f"Serving on http://{host}:{port} (POST /predict, /v2/models/{served.default}/infer)"
        )

    app = create_app(
        served, max_body=max_body, routes=routes, access_log=None if quiet else sys.stderr
    )
    run_server(app, sockets, log_level="warning", on_ready=listening, grace=grace)
