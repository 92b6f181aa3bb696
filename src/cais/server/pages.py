"""The server's pages (a page to try predictions, the API docs) and its OpenAPI document.

The pages are self-contained HTML (no scripts or styles from elsewhere), so they work in a
container with no network.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from cais import __version__
from cais.server.models import LoadedModel, ModelSet
from cais.server.routes import LegacyRoute
from cais.server.v2 import BINARY_HEADER_LENGTH, InferenceRequest, InferenceResponse

__all__ = ["openapi_document", "page"]


@cache
def page(name: str) -> str:
    return (resources.files("cais.server") / "static" / name).read_text(encoding="utf-8")


def _json(schema: dict, example: object | None = None) -> dict:
    content: dict = {"schema": schema}
    if example is not None:
        content["example"] = example
    return {"content": {"application/json": content}}


_ERROR = {
    "description": "A bad request: the body says why",
    **_json({"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}),
}
# 400: the request is malformed; 404: no such model or version; 413: the body is too large;
# 422: well formed, but not what the model takes.
_ERRORS = {status: _ERROR for status in ("400", "404", "413", "422")}
_ANSWER = {"200": {"description": "A JSON answer", **_json({"type": "object"})}}
_ANSWER_OR_404 = {**_ANSWER, "404": _ERROR}
_READY = {**_ANSWER, "503": {"description": "Not ready", **_json({"type": "object"})}}


def _instance_schema(models: list[LoadedModel]) -> dict:
    """One instance of any of `models`: what their signatures say (anything when unknown)."""
    schemas: list[dict] = []
    for model in models:
        expected = model.expects
        schema = expected.schema() if expected is not None else {}
        if schema not in schemas:
            schemas.append(schema)
    if {} in schemas or not schemas:
        return {}
    return schemas[0] if len(schemas) == 1 else {"anyOf": schemas}


def _v2_schemas() -> dict:
    """The V2 request and response as JSON schemas, under components/schemas."""
    components: dict = {}
    for model in (InferenceRequest, InferenceResponse):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(schema.pop("$defs", {}))
        components[model.__name__] = schema
    return components


def _parameter(name: str, values: list[str], where: str = "path") -> dict:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "schema": {"type": "string", "enum": values},
    }


def openapi_document(models: ModelSet, routes: list[LegacyRoute]) -> dict:
    """OpenAPI 3.1 for what this server serves, with each model's recorded input example."""
    default = models.get() if models.all() else None
    example = default.metadata.input_example if default else None
    names = sorted(models.models)
    versions = sorted({v for served in models.models.values() for v in served})
    name, version = _parameter("name", names), _parameter("version", versions)

    def instances(served: list[LoadedModel]) -> dict:
        return {
            "type": "object",
            "properties": {
                "instances": {"type": "array", "items": _instance_schema(served), "minItems": 1}
            },
            "required": ["instances"],
        }

    predictions = {
        "type": "object",
        "properties": {
            "predictions": {"type": "array", "items": {}},
            "model": {"type": "string"},
            "version": {"type": "string"},
        },
        "required": ["predictions", "model", "version"],
    }

    def predict_operation(summary: str, served: list[LoadedModel], path: list[dict]) -> dict:
        return {
            "post": {
                "summary": summary,
                "parameters": [
                    *path,
                    {
                        "name": "proba",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "boolean"},
                        "description": "class probabilities",
                    },
                ],
                "requestBody": {
                    "required": True,
                    **_json(instances(served), {"instances": example} if example else None),
                },
                "responses": {
                    "200": {"description": "One prediction per instance", **_json(predictions)},
                    **_ERRORS,
                },
            }
        }

    every = models.all()
    infer = {
        "post": {
            "summary": "Open Inference Protocol V2 inference",
            "description": "A single-input model takes its input under any name. With the "
            "binary tensor data extension, the body is the JSON request (its length in the "
            f"`{BINARY_HEADER_LENGTH}` header) followed by the tensors' bytes.",
            "parameters": [
                {
                    "name": BINARY_HEADER_LENGTH,
                    "in": "header",
                    "required": False,
                    "schema": {"type": "integer", "minimum": 0},
                }
            ],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"$ref": "#/components/schemas/InferenceRequest"}
                    },
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                },
            },
            "responses": {
                "200": {
                    "description": "V2 inference response",
                    **_json({"$ref": "#/components/schemas/InferenceResponse"}),
                },
                **_ERRORS,
            },
        }
    }
    metadata = {"get": {"summary": "V2 model metadata", "responses": _ANSWER_OR_404}}
    model_ready = {"get": {"summary": "V2 model readiness", "responses": _ANSWER_OR_404}}
    paths: dict[str, dict] = {
        "/predict": predict_operation(
            f"Predict with the default model ({models.default})", every[:1], []
        ),
        "/models/{name}/predict": predict_operation(
            "Predict with a model's newest version", every, [name]
        ),
        "/models/{name}/versions/{version}/predict": predict_operation(
            "Predict with one version", every, [name, version]
        ),
        "/v2/models/{name}/infer": {
            "post": {**infer["post"], "parameters": [name, *infer["post"]["parameters"]]}
        },
        "/v2/models/{name}/versions/{version}/infer": {
            "post": {**infer["post"], "parameters": [name, version, *infer["post"]["parameters"]]}
        },
        "/v2/models/{name}": {"get": {**metadata["get"], "parameters": [name]}},
        "/v2/models/{name}/versions/{version}": {
            "get": {**metadata["get"], "parameters": [name, version]}
        },
        "/v2/models/{name}/ready": {"get": {**model_ready["get"], "parameters": [name]}},
        "/v2/models/{name}/versions/{version}/ready": {
            "get": {**model_ready["get"], "parameters": [name, version]}
        },
        "/v2": {"get": {"summary": "V2 server metadata", "responses": _ANSWER}},
        "/v2/health/live": {"get": {"summary": "V2 liveness", "responses": _ANSWER}},
        "/v2/health/ready": {"get": {"summary": "V2 readiness", "responses": _READY}},
        "/health/live": {"get": {"summary": "Liveness", "responses": _ANSWER}},
        "/health/ready": {
            "get": {"summary": "Readiness: every model is loaded", "responses": _READY}
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "responses": {"200": {"description": "Prometheus text format"}},
            }
        },
        "/models": {"get": {"summary": "The served models", "responses": _ANSWER}},
    }
    for route in routes:
        served = [models.get(route.model)]
        one = _instance_schema(served)
        value = {"anyOf": [one, {"type": "array", "items": one, "minItems": 1}]} if one else {}
        body = {"type": "object", "properties": {route.input: value}, "required": [route.input]}
        answer = {"type": "object", "properties": {route.output: {}}, "required": [route.output]}
        paths[route.path] = {
            "post": {
                "summary": f"Kept contract: {route.input} → {route.output} ({route.model or models.default})",
                "requestBody": {"required": True, **_json(body)},
                "responses": {
                    "200": {"description": "the prediction", **_json(answer)},
                    **_ERRORS,
                },
            }
        }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "cais model server",
            "version": __version__,
            "description": "Models: " + ", ".join(f"{m.name}:{m.version}" for m in models.all()),
        },
        "paths": paths,
        "components": {"schemas": _v2_schemas()},
    }
