"""`cais serve`: serve saved models over HTTP, in this process (no engine needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cais.output import note, success

__all__ = ["serve"]


def serve(
    models: Annotated[
        list[str], typer.Argument(help="Models to serve: name[:version|alias] or bundle folders.")
    ],
    host: Annotated[
        str, typer.Option("--host", metavar="ADDRESS", help="Address to listen on.")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", "-p", metavar="PORT", help="Port to listen on.")
    ] = 8080,
    workers: Annotated[int, typer.Option("--workers", metavar="N", help="Worker processes.")] = 1,
    max_body: Annotated[
        int,
        typer.Option(
            "--max-body", metavar="BYTES", help="Largest request body accepted, in bytes."
        ),
    ] = 10 * 1024 * 1024,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            metavar="FILE",
            help="cais.yaml whose `routes:` to keep (default: ./cais.yaml).",
        ),
    ] = None,
) -> None:
    """Serve models: a simple JSON API (POST /predict) and the Open Inference Protocol V2."""
    from cais.server.workers import collector_paused

    with collector_paused():
        _serve(models, host, port, workers, max_body, config)


def _serve(
    models: list[str], host: str, port: int, workers: int, max_body: int, config: Path | None
) -> None:
    from cais.errors import CaisError
    from cais.project import read_config
    from cais.server.app import create_app
    from cais.server.models import ModelSet, NotFound

    if config is not None and not config.is_file():
        raise CaisError(f"The config file `{config}` does not exist")
    routes = list(read_config(config or Path("cais.yaml")).routes)
    served = ModelSet.load(models)  # fails here, with one sentence, on a bad reference
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
    success(f"Serving on http://{host}:{port} (POST /predict, /v2/models/{served.default}/infer)")
    from cais.server.workers import serve as run_server

    app = create_app(served, max_body=max_body, routes=routes)
    try:
        run_server(app, host=host, port=port, workers=workers, log_level="warning")
    except OSError as exc:
        raise CaisError(
            f"Cannot listen on {host}:{port}: {exc.strerror}",
            hint="choose another --port, or stop what is using this one",
        ) from None
