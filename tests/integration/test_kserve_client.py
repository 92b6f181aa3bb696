"""`cais serve` as a real process on a real port, spoken to by KServe's own V2 REST client
(`kserve.InferenceRESTClient` with `RESTConfig(protocol="v2")`).

The client runs in KServe's own virtual environment (tests/kserve_env.py). One script talks to
the server there and prints what it saw as JSON; the tests compare that with the same models'
predictions made here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import cais
from tests import kserve_env
from tests.support import serve, text_model

TEXTS = ["jogo de luta", "boneca de pano", "batom rosa", "livro de bolo"]
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.6, 3.0, 4.4, 1.4], [6.7, 3.1, 5.6, 2.4]]  # one per species

# Run with the KServe environment's Python; reads {"base", "texts", "rows"} on stdin and prints
# one JSON object: for each step either {"ok": value} or {"error": text, "status": code}.
CLIENT_SCRIPT = r"""
import asyncio
import json
import sys

import httpx
import numpy as np
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
from kserve.protocol.infer_type import RequestedOutput
from kserve.protocol.rest.v2_datamodels import ModelMetadataResponse, ServerMetadataResponse

given = json.load(sys.stdin)
base, texts, rows = given["base"], given["texts"], given["rows"]
BOTH = ["predict", "predict_proba"]


def seen(response):
    return {
        "id": response.id,
        "model_name": response.model_name,
        "outputs": {
            o.name: {"datatype": o.datatype, "shape": list(o.shape), "data": o.as_numpy().tolist()}
            for o in response.outputs
        },
    }


def request(model, tensor, *, request_id=None, outputs=()):
    wanted = [RequestedOutput(name) for name in outputs] or None
    return InferRequest(model, [tensor], request_id=request_id, request_outputs=wanted)


async def main():
    results = {}

    async def step(name, work):
        try:
            results[name] = {"ok": await work()}
        except Exception as exc:  # what the client raised, with the server's words if any
            response = getattr(exc, "response", None)
            results[name] = {
                "error": f"{type(exc).__name__}: {exc}",
                "status": getattr(response, "status_code", None),
            }

    config = RESTConfig(protocol="v2", timeout=30)
    async with InferenceRESTClient(config) as client, httpx.AsyncClient(timeout=30) as http:

        async def infer(model, made, **options):
            return seen(await client.infer(base, made, model_name=model, **options))

        async def metadata(path, schema):
            answer = await http.get(base + path)
            answer.raise_for_status()
            return schema.model_validate_json(answer.content).model_dump()

        await step("server_live", lambda: client.is_server_live(base))
        await step("server_ready", lambda: client.is_server_ready(base))
        for model in ("products", "iris", "nope"):
            await step(f"model_ready_{model}", lambda m=model: client.is_model_ready(base, m))
        # The REST client has no metadata call: read it with KServe's own V2 data models.
        await step("server_metadata", lambda: metadata("/v2", ServerMetadataResponse))
        for model in ("products", "iris"):
            await step(
                f"metadata_{model}",
                lambda m=model: metadata(f"/v2/models/{m}", ModelMetadataResponse),
            )

        text = InferInput("input", [len(texts)], "BYTES")
        text.set_data_from_numpy(np.array(texts, dtype=object), binary_data=False)
        await step(
            "infer_text",
            lambda: infer("products", request("products", text, request_id="kserve-text", outputs=BOTH)),
        )

        flat = [v for row in rows for v in row]
        fp64 = InferInput("input", [len(rows), 4], "FP64", data=flat)
        await step(
            "infer_table_fp64",
            lambda: infer("iris", request("iris", fp64, request_id="kserve-fp64", outputs=BOTH)),
        )
        fp32 = InferInput("input", [len(rows), 4], "FP32")
        fp32.set_data_from_numpy(np.array(rows, dtype=np.float32), binary_data=False)
        await step(
            "infer_table_fp32",
            lambda: infer("iris", request("iris", fp32, request_id="kserve-fp32", outputs=BOTH)),
        )
        plain = InferInput("input", [len(rows), 4], "FP64", data=flat)
        await step("infer_table_default_output", lambda: infer("iris", request("iris", plain)))
        # A plain dict body, as KServe's client also takes: the spec's request with nothing else.
        body = {"id": "kserve-dict", "inputs": [{"name": "input", "shape": [len(texts)], "datatype": "BYTES", "data": texts}]}
        await step("infer_dict_body", lambda: infer("products", body))

        unknown = InferInput("input", [1, 4], "FP64", data=rows[0])
        await step("error_unknown_model", lambda: infer("nope", request("nope", unknown)))
        short = InferInput("input", [2, 4], "FP64", data=rows[0])
        await step("error_bad_shape", lambda: infer("iris", request("iris", short)))

        # set_data_from_numpy's default: the binary tensor data extension.
        binary = InferInput("input", [len(rows), 4], "FP32")
        binary.set_data_from_numpy(np.array(rows, dtype=np.float32))
        await step("infer_binary", lambda: infer("iris", request("iris", binary, outputs=BOTH)))
    print(json.dumps(results))


asyncio.run(main())
"""


@pytest.fixture(scope="module")
def kserve_python() -> Path:
    """The Python of a venv that has kserve==KSERVE_VERSION."""
    return kserve_env.kserve_python()


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Two saved models served by `cais serve`: (base URL, text model, table model)."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    home = tmp_path_factory.mktemp("cais-home")
    products = text_model()
    cais.save_model(products, "products", input_example=["livro azul"], home=home)
    iris = load_iris()
    flowers = LogisticRegression(max_iter=500).fit(iris.data, iris.target)
    cais.save_model(flowers, "iris", input_example=iris.data[:2], home=home)
    process, base = serve("products", "iris", home=home)
    yield base, products, flowers
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(scope="module")
def seen(kserve_python, models) -> dict:
    """What KServe's client saw, step by step."""
    base = models[0]
    given = json.dumps({"base": base, "texts": TEXTS, "rows": ROWS})
    done = kserve_env.run_in_kserve(kserve_python, CLIENT_SCRIPT, given, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _ok(seen: dict, step: str):
    assert "ok" in seen[step], f"{step}: {seen[step]}"
    return seen[step]["ok"]


def _outputs(seen: dict, step: str, *, model: str, request_id: str | None) -> dict:
    answer = _ok(seen, step)
    assert answer["model_name"] == model
    if request_id is not None:
        assert answer["id"] == request_id
    return answer["outputs"]


def test_health_and_readiness(seen):
    assert _ok(seen, "server_live") is True
    assert _ok(seen, "server_ready") is True
    assert _ok(seen, "model_ready_products") is True
    assert _ok(seen, "model_ready_iris") is True
    assert _ok(seen, "model_ready_nope") is False


def test_metadata_fits_kserve_data_models(seen):
    assert _ok(seen, "server_metadata") == {
        "name": "cais",
        "version": cais.__version__,
        "extensions": ["binary_tensor_data"],
    }
    products = _ok(seen, "metadata_products")
    assert products["name"] == "products"
    assert products["versions"] == ["1"]
    assert products["inputs"] == [{"name": "input", "datatype": "BYTES", "shape": [-1]}]
    assert products["outputs"] == [
        {"name": "predict", "datatype": "BYTES", "shape": [-1]},
        {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 4]},
    ]
    iris = _ok(seen, "metadata_iris")
    assert iris["name"] == "iris"
    assert iris["inputs"] == [{"name": "input", "datatype": "FP64", "shape": [-1, 4]}]
    assert iris["outputs"] == [
        {"name": "predict", "datatype": "INT64", "shape": [-1]},
        {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 3]},
    ]


def test_text_model_with_both_outputs(seen, models):
    products = models[1]
    outputs = _outputs(seen, "infer_text", model="products", request_id="kserve-text")
    assert set(outputs) == {"predict", "predict_proba"}
    predict = outputs["predict"]
    assert predict["datatype"] == "BYTES" and predict["shape"] == [len(TEXTS)]
    assert predict["data"] == products.predict(TEXTS).tolist()
    assert predict["data"] == ["game", "brinquedo", "maquiagem", "livro"]
    proba = outputs["predict_proba"]
    assert proba["datatype"] == "FP64" and proba["shape"] == [len(TEXTS), 4]
    assert np.allclose(proba["data"], products.predict_proba(TEXTS), rtol=1e-9, atol=0)


@pytest.mark.parametrize(("step", "dtype"), [("fp64", np.float64), ("fp32", np.float32)])
def test_table_model_with_both_outputs(seen, models, step, dtype):
    flowers = models[2]
    rows = np.array(ROWS, dtype=dtype)
    outputs = _outputs(seen, f"infer_table_{step}", model="iris", request_id=f"kserve-{step}")
    assert set(outputs) == {"predict", "predict_proba"}
    predict = outputs["predict"]
    assert predict["datatype"] == "INT64" and predict["shape"] == [len(ROWS)]
    assert predict["data"] == flowers.predict(rows).tolist() == [0, 1, 2]
    proba = outputs["predict_proba"]
    assert proba["datatype"] == "FP64" and proba["shape"] == [len(ROWS), 3]
    tolerance = 1e-9 if dtype is np.float64 else 1e-5
    assert np.allclose(proba["data"], flowers.predict_proba(rows), rtol=tolerance, atol=1e-9)


def test_default_output_is_predict_and_the_client_id_comes_back(seen, models):
    answer = _ok(seen, "infer_table_default_output")
    assert answer["id"]  # the client makes one up (a UUID) when not given; it is echoed
    assert list(answer["outputs"]) == ["predict"]
    assert answer["outputs"]["predict"]["data"] == models[2].predict(np.array(ROWS)).tolist()


def test_plain_dict_body(seen, models):
    outputs = _outputs(seen, "infer_dict_body", model="products", request_id="kserve-dict")
    assert outputs["predict"]["data"] == models[1].predict(TEXTS).tolist()


def test_errors_reach_the_client_with_the_server_text(seen):
    unknown = seen["error_unknown_model"]
    assert "error" in unknown, unknown
    assert unknown["error"].startswith("HTTPStatusError: ")
    assert unknown["status"] == 404
    assert "no model named `nope`" in unknown["error"]
    short = seen["error_bad_shape"]
    assert "error" in short, short
    assert short["status"] == 400
    assert "has 4 values but its shape [2, 4] needs 8" in short["error"]


def test_binary_tensor_data(seen, models):
    outputs = _outputs(seen, "infer_binary", model="iris", request_id=None)
    assert outputs["predict"]["data"] == models[2].predict(np.array(ROWS)).tolist()
