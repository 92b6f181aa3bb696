"""`python -m cais.server BUNDLE_FOLDER [--port 8080]`: the server inside a serving image.

It needs only the server's packages (no CLI), and `--check` loads the model and predicts its
recorded input example, to prove an image works before it is pushed.
"""

from __future__ import annotations

import argparse
import os
import sys

from cais.server.workers import DEFAULT_GRACE, collector_paused


def main(argv: list[str] | None = None) -> int:
    with collector_paused():
        return _main(argv)


def _main(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cais.server")
    parser.add_argument("bundles", nargs="+", help="bundle folders or name[:version] references")
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=_whole(0, 65535), default=8080)
    workers = os.environ.get("CAIS_WORKERS", "").strip()
    parser.add_argument(
        "--workers",
        type=_whole(1),
        default=workers if workers not in ("", "0") else str(_cpus()),  # type converts it
        help="worker processes (default: CAIS_WORKERS, else one per CPU this process may use)",
    )
    parser.add_argument(
        "--access-log",
        action=argparse.BooleanOptionalAction,
        default=os.environ.get("CAIS_ACCESS_LOG", "") not in ("", "0", "false"),
        help="log every request (default off: /metrics counts them; CAIS_ACCESS_LOG=1 turns it on)",
    )
    parser.add_argument(
        "--grace",
        type=_seconds,
        default=os.environ.get("CAIS_GRACE", "").strip() or str(DEFAULT_GRACE),
        help="on SIGTERM, how long requests in flight may take to finish (default: "
        f"CAIS_GRACE, else {DEFAULT_GRACE:g})",
    )
    parser.add_argument("--check", action="store_true", help="load, predict the example, exit")
    args = parser.parse_args(argv)

    from cais.errors import CaisError
    from cais.server.models import ModelSet

    try:
        served = ModelSet.load(args.bundles)
    except CaisError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    from cais.server.app import create_app
    from cais.server.routes import routes_from_environment

    app = create_app(
        served,
        routes=routes_from_environment(os.environ.get("CAIS_SERVE_ROUTES", "")),
        access_log=sys.stderr if args.access_log else None,
    )
    if args.check:  # the whole server imported and assembled; now the model must predict
        return _check(served)

    from cais.server.workers import listen, serve

    try:
        sockets = listen(args.host, args.port, args.workers)
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 1
    serve(
        app,
        sockets,
        log_level="info",
        grace=args.grace,
        on_ready=lambda port: print(
            f"cais: serving on http://{args.host}:{port}", file=sys.stderr, flush=True
        ),
    )
    return 0


def _check(served) -> int:
    """Predict every model's recorded input example, as `cais build` asks of a new image."""
    for loaded in served.all():
        example = loaded.metadata.input_example
        if example is None:
            print(f"{loaded.name}:{loaded.version} loads")
            continue
        try:
            predictions = loaded.predict(example)
        except Exception as exc:  # the proof failed: say how
            print(
                f"error: `{loaded.name}:{loaded.version}` cannot predict its input "
                f"example here: {type(exc).__name__}: {exc}",
                file=sys.stderr,
            )
            return 1
        print(f"{loaded.name}:{loaded.version} predicts {predictions!r}")
    return 0


def _whole(low: int, high: int | None = None):
    """An argparse type: a whole number from `low` (to `high`)."""

    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if value < low or (high is not None and value > high):
            limits = f"from {low} to {high}" if high is not None else f"of at least {low}"
            raise argparse.ArgumentTypeError(f"must be a whole number {limits}, not `{text}`")
        return value

    return convert


def _seconds(text: str) -> float:
    """An argparse type: a finite number of seconds, 0 or more."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds, 0 or more, not `{text}`")
    return value


def _cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


if __name__ == "__main__":
    sys.exit(main())
