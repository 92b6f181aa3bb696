"""The server's pages (a page to try predictions, the API docs) and its OpenAPI document.

The pages are self-contained HTML (no scripts or styles from elsewhere), so they work in a
container with no network.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from cais import __version__
from cais.server.models import ModelSet
from cais.server.routes import LegacyRoute

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


def openapi_document(models: ModelSet, routes: list[LegacyRoute]) -> dict:
    """OpenAPI 3.1 for what this server serves, with each model's recorded input example."""
    default = models.get() if models.all() else None
    example = default.metadata.input_example if default else None
    instances = {
        "type": "object",
        "properties": {"instances": {"type": "array", "items": {}}},
        "required": ["instances"],
    }
    predictions = {
        "type": "object",
        "properties": {
            "predictions": {"type": "array", "items": {}},
            "model": {"type": "string"},
            "version": {"type": "string"},
        },
    }

    def predict_operation(summary: str) -> dict:
        return {
            "post": {
                "summary": summary,
                "parameters": [
                    {
                        "name": "proba",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "boolean"},
                        "description": "class probabilities",
                    }
                ],
                "requestBody": {
                    "required": True,
                    **_json(instances, {"instances": example} if example else None),
                },
                "responses": {
                    "200": {"description": "One prediction per instance", **_json(predictions)},
                    "400": _ERROR,
                    "404": _ERROR,
                    "413": _ERROR,
                    "422": _ERROR,
                },
            }
        }

    paths: dict[str, dict] = {
        "/predict": predict_operation(f"Predict with the default model ({models.default})"),
        "/models/{name}/predict": predict_operation("Predict with a model's newest version"),
        "/models/{name}/versions/{version}/predict": predict_operation("Predict with one version"),
        "/v2/models/{name}/infer": {
            "post": {
                "summary": "Open Inference Protocol V2 inference",
                "requestBody": {"required": True, **_json({"type": "object"})},
                "responses": {
                    "200": {"description": "V2 inference response"},
                    "400": _ERROR,
                    "404": _ERROR,
                },
            }
        },
        "/v2/models/{name}": {
            "get": {
                "summary": "V2 model metadata",
                "responses": {"200": {"description": "metadata"}},
            }
        },
        "/v2/health/ready": {
            "get": {"summary": "V2 readiness", "responses": {"200": {"description": "ready"}}}
        },
        "/health/live": {
            "get": {"summary": "Liveness", "responses": {"200": {"description": "live"}}}
        },
        "/health/ready": {
            "get": {
                "summary": "Readiness: every model is loaded",
                "responses": {"200": {"description": "ready"}},
            }
        },
        "/metrics": {
            "get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text"}}}
        },
        "/models": {
            "get": {"summary": "The served models", "responses": {"200": {"description": "models"}}}
        },
    }
    for route in routes:
        body = {"type": "object", "properties": {route.input: {}}, "required": [route.input]}
        answer = {"type": "object", "properties": {route.output: {}}}
        paths[route.path] = {
            "post": {
                "summary": f"Kept contract: {route.input} → {route.output} ({route.model or models.default})",
                "requestBody": {"required": True, **_json(body)},
                "responses": {
                    "200": {"description": "the prediction", **_json(answer)},
                    "400": _ERROR,
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
    }
