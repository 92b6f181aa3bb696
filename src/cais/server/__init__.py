"""The HTTP server: a simple JSON API and the Open Inference Protocol V2 over the model store."""

# The oldest Python the server runs on, inside a serving image (its modules keep to 3.9: see
# the per-file target versions of ruff in pyproject.toml).
RUNTIME_PYTHON_MIN = (3, 9)

# Modules of the server's packages that a serving image byte-compiles ahead of time (with the
# model's own): pip would compile every module of every package, twice what serving imports.
# A unit test checks that serving imports nothing else from these packages.
RUNTIME_IMPORTS = (
    "uvicorn.main",
    "uvicorn.server",
    "uvicorn.protocols.http.httptools_impl",
    "uvicorn.lifespan.on",
    "uvicorn.loops.auto",
    "uvicorn.loops.asyncio",
    "uvicorn.protocols.http.auto",
    "uvicorn.protocols.websockets.auto",
    "starlette.applications",
    "starlette.routing",
    "starlette.responses",
    "starlette.requests",
    "starlette.concurrency",
    "anyio.to_thread",
    "anyio._backends._asyncio",
    "prometheus_client",
    "pydantic.main",
    "pydantic.json_schema",
    "pydantic._internal._generate_schema",
    "pydantic.plugin._schema_validator",
    "pydantic.plugin._loader",
    "pydantic.fields",
    "pydantic.types",
    "pydantic._internal._validators",
    "joblib",
)
