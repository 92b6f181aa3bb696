"""The ASGI app: a simple JSON API, the Open Inference Protocol V2, health and metrics.

Every bad request gets a 4xx answer `{"error": "..."}` saying what was wrong; the model runs in
a worker thread so that a slow prediction never blocks other requests.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any, TextIO

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from cais import __version__
from cais.server.access_log import AccessLog
from cais.server.batching import Batcher
from cais.server.failures import model_failure
from cais.server.models import LoadedModel, ModelSet, NotFound
from cais.server.pages import openapi_document, page
from cais.server.routes import LegacyRoute
from cais.server.v2 import (
    BINARY_HEADER_LENGTH,
    InferenceRequest,
    InferenceResponse,
    TensorError,
    attach_binary_inputs,
    check_parameters,
    decode_inputs,
    encode_output,
    flatten,
    split_binary_body,
)

__all__ = ["DEFAULT_MAX_BODY", "create_app"]

DEFAULT_MAX_BODY = 10 * 1024 * 1024


class BadRequest(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class _ErrorResponse(JSONResponse):
    """An error as ASCII JSON: a message quoting the request's text is always written, even
    text that is no Unicode (a lone surrogate, `\\ud800` in the request's JSON)."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, separators=(",", ":")).encode("ascii")


_LONE_SURROGATE = (
    "the body holds half of a UTF-16 surrogate pair (an escape from `\\ud800` to `\\udfff` "
    "without its other half), which is no character"
)


class Metrics:
    """Prometheus metrics in a registry of the app's own (never the process-global one)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ["model", "version", "protocol"]
        self.requests = Counter(
            "cais_requests", "Prediction requests", labels, registry=self.registry
        )
        self.errors = Counter(
            "cais_request_errors",
            "Prediction requests answered with an error",
            [*labels, "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "cais_request_seconds",
            "Time to answer a prediction request",
            labels,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self.instances = Counter(
            "cais_instances", "Instances predicted", ["model", "version"], registry=self.registry
        )
        self.load_seconds = Gauge(
            "cais_model_load_seconds",
            "Time to load a model",
            ["model", "version"],
            registry=self.registry,
        )


def create_app(
    models: ModelSet,
    *,
    max_body: int = DEFAULT_MAX_BODY,
    routes: list[LegacyRoute] | None = None,
    access_log: TextIO | None = None,
) -> Starlette:
    """The server for `models`: every route, error handler and metric; `routes` keep
    existing API contracts (cais.yaml `routes:`) answering; `access_log` gets a line per
    request."""
    metrics = Metrics()
    batchers = {}
    for loaded in models.all():
        metrics.load_seconds.labels(loaded.name, loaded.version).set(loaded.load_seconds)
        batchers[loaded.name, loaded.version] = Batcher(loaded)

    async def read_body(request: Request) -> bytearray:
        declared = request.headers.get("content-length")
        if declared and declared.isascii() and declared.isdigit() and int(declared) > max_body:
            raise BadRequest(f"the body is larger than the limit of {max_body} bytes", 413)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_body:
                raise BadRequest(f"the body is larger than the limit of {max_body} bytes", 413)
        if not body:
            raise BadRequest("the body is empty: send a JSON object")
        return body

    def parse_json(body: bytes | bytearray) -> Any:
        try:  # JSON between systems is UTF-8 (RFC 8259); a byte order mark is skipped
            text = body.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise BadRequest(f"the body is not UTF-8 JSON (from byte {exc.start})") from exc
        try:
            return json.loads(text, parse_constant=_constant)
        except json.JSONDecodeError as exc:
            raise BadRequest(f"the body is not valid JSON: {exc}") from exc
        except ValueError as exc:  # Python's limit on the digits of an integer
            raise BadRequest(
                "the body holds an integer too long to read: send at most 4300 digits"
            ) from exc
        except RecursionError as exc:
            raise BadRequest("the body is nested too deeply to read") from exc

    async def read_json(request: Request) -> Any:
        return parse_json(await read_body(request))

    def find(request: Request) -> LoadedModel:
        params = request.path_params
        return models.get(params.get("name"), params.get("version"))

    async def timed(model: LoadedModel, protocol: str, work) -> Response:
        labels = (model.name, model.version, protocol)
        metrics.requests.labels(*labels).inc()
        started = time.perf_counter()
        try:
            return await work()
        except BadRequest as exc:
            metrics.errors.labels(*labels, str(exc.status)).inc()
            raise
        finally:
            metrics.latency.labels(*labels).observe(time.perf_counter() - started)

    async def run_model(model: LoadedModel, batch: object, method: str) -> list:
        refused = model.refuses(batch)
        if refused is not None:
            raise BadRequest(refused, 422)
        try:
            return await batchers[model.name, model.version].predict(batch, method)
        except Exception as exc:  # the model refused this input: the client's data is wrong
            raise BadRequest(model_failure(model, batch, exc), 422) from exc

    def answer(model: LoadedModel, content: dict) -> Response:
        try:
            return JSONResponse(content)
        except UnicodeEncodeError as exc:  # a `\ud800` escape of the request, sent back
            raise BadRequest(_LONE_SURROGATE) from exc
        except ValueError as exc:  # NaN or infinity, which JSON cannot carry
            raise BadRequest(
                f"the model `{model.name}` gave a number that is not finite for this input", 422
            ) from exc

    # -- simple JSON API ------------------------------------------------------------------

    async def predict(request: Request) -> Response:
        model = find(request)

        async def work() -> Response:
            body = await read_json(request)
            if not isinstance(body, dict) or "instances" not in body:
                raise BadRequest(
                    'send {"instances": [...]}: a JSON object with a list of instances'
                )
            instances = body["instances"]
            if not isinstance(instances, list):
                raise BadRequest('"instances" must be a list')
            if not instances:
                raise BadRequest('"instances" is empty: send at least one instance')
            batch = _batch_of(instances)
            if _flag(request, "proba"):
                if "predict_proba" not in model.methods:
                    raise BadRequest(f"the model `{model.name}` gives no probabilities", 400)
                rows = await run_model(model, batch, "predict_proba")
                classes = [str(c) for c in model.classes]
                predictions = [dict(zip(classes, row)) for row in rows]
            else:
                predictions = await run_model(model, batch, "predict")
            metrics.instances.labels(model.name, model.version).inc(len(instances))
            return answer(
                model, {"predictions": predictions, "model": model.name, "version": model.version}
            )

        return await timed(model, "json", work)

    # -- Open Inference Protocol V2 ------------------------------------------------------

    async def v2_server(request: Request) -> Response:
        return JSONResponse(
            {"name": "cais", "version": __version__, "extensions": ["binary_tensor_data"]}
        )

    async def live(request: Request) -> Response:
        return JSONResponse({"live": True})

    async def ready(request: Request) -> Response:
        return JSONResponse({"ready": bool(models.all())}, status_code=200 if models.all() else 503)

    async def model_metadata(request: Request) -> Response:
        model = find(request)
        meta = model.metadata
        return JSONResponse(
            {
                "name": model.name,
                "versions": sorted(models.models[model.name]),
                "platform": meta.model_class,
                "inputs": [t.model_dump() for t in meta.inputs],
                "outputs": [t.model_dump() for t in meta.outputs]
                + (
                    [
                        {
                            "name": "predict_proba",
                            "datatype": "FP64",
                            "shape": [-1, len(model.classes)],
                        }
                    ]
                    if "predict_proba" in model.methods
                    else []
                ),
            }
        )

    async def model_ready(request: Request) -> Response:
        find(request)
        return JSONResponse({"ready": True})

    async def infer(request: Request) -> Response:
        model = find(request)

        async def work() -> Response:
            body = await read_body(request)
            try:  # the binary tensor data extension: a JSON header, then the tensors' bytes
                header, tensors = split_binary_body(body, request.headers.get(BINARY_HEADER_LENGTH))
            except TensorError as exc:
                raise BadRequest(str(exc)) from exc
            try:
                inference = InferenceRequest.model_validate(parse_json(header))
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"]) or "body"
                raise BadRequest(
                    f"the request is not a V2 inference request: `{where}`: {first['msg']}"
                ) from exc
            nonlocal model
            named_version = inference.model_version
            if named_version and "version" not in request.path_params:
                model = models.get(model.name, named_version)  # the body names the version
            for field, served in (("model_name", model.name), ("model_version", model.version)):
                named = getattr(inference, field)
                if named is not None and named != served:
                    raise BadRequest(f"`{field}` is `{named}`, but this path serves `{served}`")
            try:
                attach_binary_inputs(inference, tensors)
                batch = decode_inputs(inference, [t.name for t in model.metadata.inputs])
                check_parameters(inference)
            except TensorError as exc:
                raise BadRequest(str(exc)) from exc
            wanted = [o.name for o in inference.outputs] if inference.outputs else ["predict"]
            outputs = []
            for name in wanted:
                if name not in ("predict", "predict_proba") or name not in model.methods:
                    raise BadRequest(
                        f"the model `{model.name}` has no output `{name}` (it has: {', '.join(model.methods)})"
                    )
                outputs.append(encode_output(name, await run_model(model, batch, name)))
            metrics.instances.labels(model.name, model.version).inc(
                outputs[0].shape[0] if outputs[0].shape else 1
            )
            response = InferenceResponse(
                model_name=model.name,
                model_version=model.version,
                id=inference.id,
                parameters=inference.parameters,
                outputs=outputs,
            )
            return answer(model, response.model_dump(exclude_none=True))

        return await timed(model, "v2", work)

    def legacy(route: LegacyRoute):
        async def handler(request: Request) -> Response:
            model = models.get(route.model)

            async def work() -> Response:
                body = await read_json(request)
                if not isinstance(body, dict) or route.input not in body:
                    raise BadRequest(
                        f'send {{"{route.input}": ...}}: a JSON object with `{route.input}`'
                    )
                value = body[route.input]
                expected = model.expects
                if expected is not None and expected.kind == "arrays":  # one instance: a list
                    many = _depth(value) > len(expected.shape)
                else:
                    many = isinstance(value, list)
                instances = value if many else [value]
                if not instances:
                    raise BadRequest(f"`{route.input}` is empty")
                predictions = await run_model(model, _batch_of(instances), "predict")
                metrics.instances.labels(model.name, model.version).inc(len(instances))
                return answer(model, {route.output: predictions if many else predictions[0]})

            return await timed(model, "legacy", work)

        return handler

    for route in routes or []:
        models.get(route.model)  # a route to a model not served fails at start, not per request

    async def openapi(request: Request) -> Response:
        return JSONResponse(openapi_document(models, routes or []))

    async def docs(request: Request) -> Response:
        return HTMLResponse(page("docs.html"))

    async def try_page(request: Request) -> Response:
        return HTMLResponse(page("index.html"))

    async def model_list(request: Request) -> Response:
        return JSONResponse(
            {
                "default": models.default,
                "models": [
                    {
                        "name": m.name,
                        "version": m.version,
                        "inputs": [t.model_dump() for t in m.metadata.inputs],
                        "input_example": m.metadata.input_example,
                        "classes": [str(c) for c in m.classes],
                        "metrics": m.metadata.metrics,
                    }
                    for m in models.all()
                ],
            }
        )

    async def metrics_endpoint(request: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def bad_request(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, BadRequest)
        return _ErrorResponse({"error": exc.message}, status_code=exc.status)

    async def not_found(request: Request, exc: Exception) -> Response:
        return _ErrorResponse({"error": str(exc)}, status_code=404)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        text = {
            404: f"there is no `{request.url.path}` here",
            405: f"`{request.method}` is not allowed on `{request.url.path}`",
        }.get(exc.status_code, str(exc.detail))
        return _ErrorResponse(
            {"error": text}, status_code=exc.status_code, headers=getattr(exc, "headers", None)
        )

    async def server_error(request: Request, exc: Exception) -> Response:
        return _ErrorResponse(
            {"error": "the server failed on this request; its log says why"}, status_code=500
        )

    model_paths = ["/v2/models/{name}", "/v2/models/{name}/versions/{version}"]
    table = [
        Route("/", try_page, methods=["GET"]),
        Route("/docs", docs, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/models", model_list, methods=["GET"]),
        Route("/predict", predict, methods=["POST"]),
        Route("/models/{name}/predict", predict, methods=["POST"]),
        Route("/models/{name}/versions/{version}/predict", predict, methods=["POST"]),
        Route("/health/live", live, methods=["GET"]),
        Route("/health/ready", ready, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        Route("/v2", v2_server, methods=["GET"]),
        Route("/v2/health/live", live, methods=["GET"]),
        Route("/v2/health/ready", ready, methods=["GET"]),
        *[Route(p, model_metadata, methods=["GET"]) for p in model_paths],
        *[Route(p + "/ready", model_ready, methods=["GET"]) for p in model_paths],
        *[Route(p + "/infer", infer, methods=["POST"]) for p in model_paths],
        *[Route(r.path, legacy(r), methods=["POST"]) for r in routes or []],
    ]
    return Starlette(
        routes=table,
        middleware=[Middleware(AccessLog, stream=access_log)] if access_log else [],
        exception_handlers={
            BadRequest: bad_request,
            NotFound: not_found,
            HTTPException: http_error,
            Exception: server_error,
        },
    )


def _constant(name: str) -> float:
    """`NaN` (what Python's json writes for a missing value) is read; infinities are not."""
    if name == "NaN":
        return math.nan
    raise BadRequest(f"the body holds `{name}`: numbers must be finite")


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _flag(request: Request, name: str) -> bool:
    """A true/false query parameter (absent: false)."""
    value = request.query_params.get(name)
    if value is None or value.lower() in _FALSE:
        return False
    if value.lower() in _TRUE:
        return True
    given = f", not `{value}`" if value else ""
    raise BadRequest(f"the query parameter `{name}` must be true or false{given}")


def _depth(value: object) -> int:
    depth = 0
    while isinstance(value, list) and value:
        value, depth = value[0], depth + 1
    return depth


def _batch_of(instances: list) -> object:
    """Instances as the model wants them: strings stay a list, (nested) rows of numbers become
    an array, objects (column → value) a table."""
    if all(isinstance(i, str) for i in instances):
        return instances
    if all(isinstance(i, dict) for i in instances):
        try:
            import pandas as pd
        except ImportError as exc:
            raise BadRequest(
                "instances given as objects need pandas on the server; send rows of values"
            ) from exc
        return pd.DataFrame(instances)
    if all(isinstance(i, list) for i in instances):
        if not all(type(v) in (int, float) or v is None for v in flatten(instances)):
            raise BadRequest(
                "instances given as rows must hold numbers only (or null for a missing value)"
            )
        import numpy as np

        try:
            array = np.asarray(instances, dtype=float)  # null becomes NaN, a missing value
        except OverflowError as exc:
            raise BadRequest("instances hold a number too large for a float") from exc
        except ValueError as exc:  # ragged rows, or more than numpy's 64 dimensions
            if _depth(instances) > 32:
                raise BadRequest("instances are nested too deeply: at most 32 levels") from exc
            raise BadRequest("every instance must have the same number of values") from exc
        if array.ndim < 2 or not array.size:
            raise BadRequest("every instance must have at least one value")
        if np.isinf(array).any():  # a number beyond a float's range
            raise BadRequest("instances hold a number too large for a float")
        return array
    raise BadRequest("instances must all be strings, all rows of numbers, or all objects")
