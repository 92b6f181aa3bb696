"""The HTTP server, through Starlette's test client: simple JSON API, V2, health, metrics,
and every kind of bad request (each answered 4xx with a JSON error, then a good request)."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest
from starlette.testclient import TestClient

import cais
from cais.server.app import create_app
from cais.server.models import ModelSet
from cais.server.routes import LegacyRoute
from tests.support import serving_models, text_model

MAX_BODY = 100_000


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    home = tmp_path_factory.mktemp("cais-home")
    cais.save_model(text_model(), "bare", home=home)  # no input example: no signature
    _save_numeric_models(home)
    return serving_models(home, "bare", "trees", "plain")


@pytest.fixture(scope="module")
def client(models):
    routes = [
        LegacyRoute(path="/predizer_categoria", input="descricao", output="categoria"),
        LegacyRoute(path="/flor", model="iris", input="medidas", output="especie"),
    ]
    with TestClient(create_app(models, max_body=MAX_BODY, routes=routes)) as test_client:
        yield test_client


def _save_numeric_models(home) -> None:
    """`trees`, a decision tree (it computes in 32-bit floats), and `plain`, a logistic
    regression saved without an input example (no signature: nothing is checked before it
    runs), both on iris's 4 measurements."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.tree import DecisionTreeClassifier

    iris = load_iris()
    trees = DecisionTreeClassifier(max_depth=3).fit(iris.data, iris.target)
    cais.save_model(trees, "trees", input_example=iris.data[:2], home=home)
    plain = LogisticRegression(max_iter=500).fit(iris.data, iris.target)
    cais.save_model(plain, "plain", home=home)


def test_simple_api_predicts_a_batch(client):
    answer = client.post("/predict", json={"instances": ["livro de bolo", "batom rosa"]})
    assert answer.status_code == 200
    assert answer.json() == {
        "predictions": ["livro", "maquiagem"],
        "model": "products",
        "version": "2",
    }


def test_probabilities_name_the_classes(client):
    answer = client.post("/predict?proba=true", json={"instances": ["livro de bolo"]})
    probabilities = answer.json()["predictions"][0]
    assert set(probabilities) == {"livro", "brinquedo", "maquiagem", "game"}
    assert abs(sum(probabilities.values()) - 1) < 1e-9
    assert max(probabilities, key=probabilities.get) == "livro"


def test_named_model_and_version(client):
    assert (
        client.post("/models/products/versions/1/predict", json={"instances": ["jogo"]}).json()[
            "version"
        ]
        == "1"
    )
    iris = client.post("/models/iris/predict", json={"instances": [[5.1, 3.5, 1.4, 0.2]]})
    assert iris.json()["predictions"] == [0]


def test_v2_text_model(client):
    answer = client.post(
        "/v2/models/products/infer",
        json={
            "id": "r-1",
            "inputs": [
                {
                    "name": "input",
                    "shape": [2],
                    "datatype": "BYTES",
                    "data": ["jogo de luta", "boneca"],
                }
            ],
        },
    )
    assert answer.status_code == 200
    body = answer.json()
    assert body["id"] == "r-1"
    assert body["model_name"] == "products"
    assert body["outputs"] == [
        {"name": "predict", "shape": [2], "datatype": "BYTES", "data": ["game", "brinquedo"]}
    ]


@pytest.mark.parametrize("datatype", ["FP32", "FP64", "FP16"])
def test_v2_table_model_with_output_selection(client, datatype):
    answer = client.post(
        "/v2/models/iris/versions/1/infer",
        json={
            "inputs": [
                {
                    "name": "input",
                    "shape": [2, 4],
                    "datatype": datatype,
                    "data": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]],
                }
            ],
            "outputs": [{"name": "predict"}, {"name": "predict_proba"}],
        },
    )
    assert answer.status_code == 200, answer.text
    predict, proba = answer.json()["outputs"]
    assert predict == {"name": "predict", "shape": [2], "datatype": "INT64", "data": [0, 2]}
    assert proba["shape"] == [2, 3] and proba["datatype"] == "FP64" and len(proba["data"]) == 6


def test_v2_integer_tensors(client):
    answer = client.post(
        "/v2/models/iris/infer",
        json={
            "inputs": [
                {"name": "input", "shape": [1, 4], "datatype": "INT64", "data": [5, 3, 1, 0]}
            ]
        },
    )
    assert answer.status_code == 200
    assert answer.json()["outputs"][0]["data"] == [0]


def test_v2_metadata_health_and_readiness(client):
    assert client.get("/v2").json() == {
        "name": "cais",
        "version": cais.__version__,
        "extensions": ["binary_tensor_data"],
    }
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").status_code == 200
    assert client.get("/health/ready").json() == {"ready": True}
    meta = client.get("/v2/models/products").json()
    assert meta["versions"] == ["1", "2"]
    assert meta["inputs"] == [{"name": "input", "datatype": "BYTES", "shape": [-1]}]
    assert client.get("/v2/models/products/versions/1/ready").json() == {"ready": True}


BAD_REQUESTS = [
    ("post", "/predict", {"content": b"{not json"}, 400, "not valid JSON"),
    ("post", "/predict", {"content": b""}, 400, "body is empty"),
    ("post", "/predict", {"json": {"rows": ["x"]}}, 400, '{"instances": [...]}'),
    ("post", "/predict", {"json": {"instances": "livro"}}, 400, "must be a list"),
    ("post", "/predict", {"json": {"instances": []}}, 400, "is empty"),
    ("post", "/predict", {"json": {"instances": ["a", 1]}}, 400, "all be strings"),
    (
        "post",
        "/models/iris/predict",
        {"json": {"instances": [[1, 2], [1, 2, 3]]}},
        400,
        "same number of values",
    ),
    (
        "post",
        "/models/iris/predict",
        {"json": {"instances": [[1, 2]]}},
        422,
        "the model `iris` takes rows of 4 numbers, not rows of 2 numbers",
    ),
    (
        "post",
        "/predict",
        {"content": b'{"instances": ["' + b"x" * MAX_BODY + b'"]}'},
        413,
        "larger than the limit",
    ),
    ("post", "/models/nope/predict", {"json": {"instances": ["x"]}}, 404, "no model named `nope`"),
    (
        "post",
        "/models/products/versions/9/predict",
        {"json": {"instances": ["x"]}},
        404,
        "no version `9`",
    ),
    ("get", "/predict", {}, 405, "`GET` is not allowed"),
    ("get", "/nowhere", {}, 404, "there is no `/nowhere` here"),
    ("post", "/v2/models/iris/infer", {"json": {"inputs": []}}, 400, "not a V2 inference request"),
    ("post", "/v2/models/iris/infer", {"json": {"input": []}}, 400, "not a V2 inference request"),
    (
        "post",
        "/v2/models/iris/infer",
        {
            "json": {
                "inputs": [
                    {"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3]}
                ]
            }
        },
        400,
        "has 3 values but its shape [1, 4] needs 4",
    ),
    (
        "post",
        "/v2/models/iris/infer",
        {
            "json": {
                "inputs": [
                    {"name": "input", "shape": [1, 4], "datatype": "FP99", "data": [1, 2, 3, 4]}
                ]
            }
        },
        400,
        "unknown datatype `FP99`",
    ),
    (
        "post",
        "/v2/models/iris/infer",
        {
            "json": {
                "inputs": [
                    {
                        "name": "input",
                        "shape": [1, 4],
                        "datatype": "FP32",
                        "data": ["a", "b", "c", "d"],
                    }
                ]
            }
        },
        400,
        "must be a number",
    ),
    (
        "post",
        "/v2/models/iris/infer",
        {
            "json": {
                "inputs": [{"name": "input", "shape": [1, 2], "datatype": "BOOL", "data": [1, 0]}]
            }
        },
        400,
        "true or false",
    ),
    (
        "post",
        "/v2/models/iris/infer",
        {"json": {"inputs": [{"name": "input", "shape": [0, 4], "datatype": "FP32", "data": []}]}},
        400,
        "is empty",
    ),
    (
        "post",
        "/v2/models/iris/infer",
        {
            "json": {
                "inputs": [
                    {"name": "input", "shape": [1, 4], "datatype": "INT8", "data": [500, 1, 1, 1]}
                ]
            }
        },
        400,
        "does not fit INT8",
    ),
    (
        "post",
        "/v2/models/products/infer",
        {"json": {"inputs": [{"name": "input", "shape": [1], "datatype": "BYTES", "data": [1]}]}},
        400,
        "must be a string",
    ),
    (
        "post",
        "/v2/models/iris/infer",
        {
            "json": {
                "inputs": [
                    {"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}
                ],
                "outputs": [{"name": "embedding"}],
            }
        },
        400,
        "no output `embedding`",
    ),
    ("post", "/v2/models/nope/infer", {"json": {}}, 404, "no model named `nope`"),
]


def _binary_body(inputs: list[tuple[dict, bytes]], **request) -> tuple[bytes, dict]:
    """A request in the binary tensor data extension: the JSON part, then each tensor's bytes."""
    header = json.dumps(
        {
            **request,
            "inputs": [
                {**meta, "parameters": {"binary_data_size": len(raw)}} for meta, raw in inputs
            ],
        }
    ).encode()
    body = header + b"".join(raw for _, raw in inputs)
    headers = {
        "content-type": "application/octet-stream",
        "inference-header-content-length": str(len(header)),
    }
    return body, headers


def _bytes_elements(*texts: str) -> bytes:
    return b"".join(len(t.encode()).to_bytes(4, "little") + t.encode() for t in texts)


ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]


@pytest.mark.parametrize("datatype", ["FP32", "FP64"])
def test_v2_binary_tensor_data(client, datatype):
    raw = np.array(ROWS, dtype="<f4" if datatype == "FP32" else "<f8").tobytes()
    body, headers = _binary_body(
        [({"name": "input", "shape": [2, 4], "datatype": datatype}, raw)],
        id="bin-1",
        model_name="iris",
        outputs=[{"name": "predict", "parameters": {"binary_data": True}}],
    )
    answer = client.post("/v2/models/iris/infer", content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["id"] == "bin-1"
    assert answer.json()["outputs"][0]["data"] == [0, 2]


def test_v2_a_version_named_in_the_body_is_served(client):
    body = {
        "model_version": "1",
        "inputs": [{"name": "input", "shape": [1], "datatype": "BYTES", "data": ["livro azul"]}],
    }
    answer = client.post("/v2/models/products/infer", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["model_version"] == "1"  # not the latest, 2
    missing = client.post("/v2/models/products/infer", json={**body, "model_version": "9"})
    assert missing.status_code == 404
    clash = client.post("/v2/models/products/versions/2/infer", json=body)
    assert clash.status_code == 400
    assert "`model_version` is `1`, but this path serves `2`" in clash.json()["error"]


def test_v2_binary_text_tensor(client):
    body, headers = _binary_body(
        [
            (
                {"name": "input", "shape": [2], "datatype": "BYTES"},
                _bytes_elements("livro azul", "jogo de luta"),
            )
        ]
    )
    answer = client.post("/v2/models/products/infer", content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["outputs"][0]["data"] == list(
        text_model().predict(["livro azul", "jogo de luta"])
    )


def _binary_case(raw: bytes, *, shape=(1, 4), datatype="FP32", length=None, extra=b""):
    body, headers = _binary_body(
        [({"name": "input", "shape": list(shape), "datatype": datatype}, raw)]
    )
    if length is not None:
        headers["inference-header-content-length"] = length
    return {"content": body + extra, "headers": headers}


BINARY_FOUR = np.zeros(4, dtype="<f4").tobytes()
BAD_REQUESTS += [
    ("post", "/v2/models/iris/infer", _binary_case(BINARY_FOUR, length="lots"), 400,
     "must be the length of the JSON part"),
    ("post", "/v2/models/iris/infer", _binary_case(BINARY_FOUR, length="99999"), 400,
     "must be the length of the JSON part"),
    ("post", "/v2/models/iris/infer", _binary_case(BINARY_FOUR, length=b"\xb2"), 400,
     "must be the length of the JSON part"),
    ("post", "/v2/models/iris/infer", _binary_case(BINARY_FOUR, length="9" * 5000), 400,
     "must be the length of the JSON part"),
    ("post", "/v2/models/iris/infer", _binary_case(BINARY_FOUR[:6]), 400,
     "6 bytes are not a whole number of FP32 values"),
    ("post", "/v2/models/iris/infer", _binary_case(BINARY_FOUR, shape=(2, 4)), 400,
     "has 4 values but its shape [2, 4] needs 8"),
    ("post", "/v2/models/iris/infer", _binary_case(BINARY_FOUR, extra=b"more"), 400,
     "4 bytes after the JSON part that no input declares"),
    ("post", "/v2/models/products/infer",
     _binary_case(_bytes_elements("livro")[:-2], shape=(1,), datatype="BYTES"), 400,
     "cut short"),
    ("post", "/v2/models/iris/infer",
     {"json": {"model_name": "products", "inputs": [
         {"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}},
     400, "`model_name` is `products`, but this path serves `iris`"),
    ("post", "/v2/models/iris/infer",
     {"json": {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32"}]}},
     400, "input `input` has no data"),
]  # fmt: skip


def _infer(*inputs: dict, **request) -> dict:
    return {"json": {**request, "inputs": list(inputs)}}


def _tensor(shape: list[int], datatype: str, data, name: str = "input") -> dict:
    return {"name": name, "shape": shape, "datatype": datatype, "data": data}


DEEP = b"[" * 20_000 + b"]" * 20_000
LONG = b"1" * 5000  # more digits than Python reads into an integer
ROW = [5.1, 3.5, 1.4, 0.2]
GRID = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]


@pytest.mark.parametrize(
    ("path", "tensor", "answer"),
    [
        ("/v2/models/iris/infer", _tensor([1, 4], "FP32", ROW, "predict"), [0]),
        ("/v2/models/iris/infer", _tensor([1, 4], "FP64", ROW, "x"), [0]),
        ("/v2/models/products/infer", _tensor([1], "BYTES", ["livro de bolo"], "predict"), ["livro"]),
        ("/v2/models/grid/infer", _tensor([1, 2, 3], "FP64", GRID, "image"), [0]),
    ],
)  # fmt: skip
def test_v2_a_single_input_model_takes_its_input_under_any_name(client, path, tensor, answer):
    response = client.post(path, json={"inputs": [tensor]})
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["data"] == answer


def test_missing_values_reach_a_model_that_takes_them(tmp_path):
    from sklearn.ensemble import HistGradientBoostingClassifier

    rows = [[0.0], [1.0], [np.nan], [2.0]] * 5
    model = HistGradientBoostingClassifier(max_iter=5).fit(rows, [0, 1, 0, 1] * 5)
    cais.save_model(model, "gaps", input_example=np.array([[np.nan], [1.0]]), home=tmp_path)
    expected = model.predict([[np.nan], [1.0]]).tolist()
    with TestClient(create_app(ModelSet.load(["gaps"], home=tmp_path))) as client:
        null = client.post("/predict", json={"instances": [[None], [1.0]]})
        assert null.json()["predictions"] == expected
        nan = client.post("/predict", content=b'{"instances": [[NaN], [1.0]]}')  # Python's json
        assert nan.json()["predictions"] == expected
        tensor = _tensor([2, 1], "FP32", [1.0, 1.0])
        binary = _binary_case(np.array([np.nan, 1.0], "<f4").tobytes(), shape=(2, 1))
        assert client.post("/v2/models/gaps/infer", json={"inputs": [tensor]}).status_code == 200
        answer = client.post("/v2/models/gaps/infer", **binary)
        assert answer.json()["outputs"][0]["data"] == expected


def test_arrays_and_tables_on_both_protocols(client):
    grid = client.post("/models/grid/predict", json={"instances": [GRID, GRID]})
    assert grid.status_code == 200, grid.text
    assert grid.json()["predictions"] == [0, 0]
    parts = [{"size": 1.0, "weight": 10.0}, {"size": 4.0, "weight": 1.0}]
    table = client.post("/models/parts/predict", json={"instances": parts})
    assert table.json()["predictions"] == ["big", "small"]
    columns = [
        _tensor([2], "FP64", [p[name] for p in parts], name) for name in ("weight", "size")
    ]  # by name, in any order
    v2 = client.post("/v2/models/parts/infer", json={"inputs": columns})
    assert v2.json()["outputs"][0]["data"] == ["big", "small"]
    assert client.post("/flor", json={"medidas": ROW}).json() == {"especie": 0}
    proba = client.post("/models/iris/predict?proba=yes", json={"instances": [ROW]})
    assert set(proba.json()["predictions"][0]) == {"0", "1", "2"}
    plain = client.post("/models/iris/predict?proba=false", json={"instances": [ROW]})
    assert plain.json()["predictions"] == [0]


# Classes of bodies that once got a 500, or an error that spoke of the server's insides
# (`'numpy.ndarray' object has no attribute 'lower'`), each on every route it can reach.
BAD_REQUESTS += [
    # nesting deeper than a JSON reader can follow
    ("post", "/predict", {"content": DEEP}, 400, "nested too deeply"),
    ("post", "/models/iris/predict", {"content": b'{"instances": ' + DEEP + b"}"}, 400,
     "nested too deeply"),
    ("post", "/v2/models/iris/infer", {"content": b'{"inputs": ' + DEEP + b"}"}, 400,
     "nested too deeply"),
    ("post", "/predizer_categoria", {"content": b'{"descricao": ' + DEEP + b"}"}, 400,
     "nested too deeply"),
    ("post", "/models/iris/predict", {"json": {"instances": [functools.reduce(
        lambda v, _: [v], range(100), 1.0)]}}, 400, "instances are nested too deeply"),
    # integers too long to read, or to convert
    ("post", "/models/iris/predict", {"content": b'{"instances": [[' + LONG + b', 1, 1, 1]]}'},
     400, "integer too long to read"),
    ("post", "/v2/models/iris/infer", {"content": b'{"inputs": [{"name": "input", "shape": [1],'
     b' "datatype": "INT64", "data": [' + LONG + b"]}]}"}, 400, "integer too long to read"),
    ("post", "/flor", {"content": b'{"medidas": [' + LONG + b"]}"}, 400,
     "integer too long to read"),
    ("post", "/models/iris/predict", {"json": {"instances": [[10**400, 1, 1, 1]]}}, 400,
     "too large for a float"),
    ("post", "/v2/models/iris/infer", _infer(_tensor([1, 4], "FP64", [10**400, 1, 1, 1])), 400,
     "does not fit FP64"),
    ("post", "/v2/models/iris/infer", _infer(_tensor([1, 4], "INT64", [2**63, 1, 1, 1])), 400,
     "does not fit INT64: its values must be from -9223372036854775808"),
    # numbers out of range for the datatype, and numbers JSON does not have
    ("post", "/v2/models/iris/infer", _infer(_tensor([1, 4], "FP32", [1e39, 1, 1, 1])), 400,
     "does not fit FP32"),
    ("post", "/v2/models/iris/infer", _infer(_tensor([1, 4], "FP16", [70000, 1, 1, 1])), 400,
     "does not fit FP16"),
    ("post", "/v2/models/iris/infer", _infer(_tensor([1, 4], "UINT8", [-1, 1, 1, 1])), 400,
     "does not fit UINT8: its values must be from 0 to 255"),
    ("post", "/v2/models/iris/infer", _infer(_tensor([1, 4], "INT32", [1.5, 1, 1, 1])), 400,
     "every value must be a whole number"),
    ("post", "/v2/models/iris/infer", _infer(_tensor([1, 4], "FP64", [True, 1, 1, 1])), 400,
     "every value must be a number"),
    ("post", "/models/iris/predict", {"content": b'{"instances": [[Infinity, 1, 1, 1]]}'}, 400,
     "the body holds `Infinity`: numbers must be finite"),
    ("post", "/flor", {"content": b'{"medidas": [[-Infinity, 1, 1, 1]]}'}, 400,
     "the body holds `-Infinity`"),
    ("post", "/models/iris/predict", {"content": b'{"instances": [[1e400, 1, 1, 1]]}'}, 400,
     "instances hold a number too large for a float"),
    ("post", "/v2/models/iris/infer", {"content": b'{"inputs": [{"name": "input", "shape": [1, 4],'
     b' "datatype": "FP64", "data": [1e400, 1, 1, 1]}]}'}, 400, "holds an infinity"),
    ("post", "/v2/models/iris/infer", _binary_case(np.array([np.inf, 1, 1, 1], "<f4").tobytes()),
     400, "input `input` holds an infinity: send finite numbers"),
    ("post", "/v2/models/iris/infer", {"content": b'{"parameters": {"x": 1e400}, "inputs": [{"name":'
     b' "input", "shape": [1, 4], "datatype": "FP64", "data": [1, 1, 1, 1]}]}'}, 400,
     "`parameters` hold a number that is not finite"),
    # more inputs than a single-input model takes; a table's inputs go by name
    ("post", "/v2/models/iris/infer", _infer(_tensor([1, 4], "FP32", ROW, "a"),
     _tensor([1, 4], "FP32", ROW, "b")), 400, "takes one input, and this request has 2: `a`, `b`"),
    ("post", "/v2/models/products/infer", _infer(_tensor([1], "BYTES", ["a"]),
     _tensor([1], "BYTES", ["b"], "other")), 400, "takes one input, and this request has 2"),
    ("post", "/v2/models/parts/infer", _infer(_tensor([1], "FP64", [1.0], "size"),
     _tensor([1], "FP64", [1.0], "height")), 400, "no input `height` (it has: size, weight)"),
    ("post", "/v2/models/parts/infer", _infer(_tensor([1], "FP64", [1.0], "size")), 400,
     "missing input(s): weight"),
    ("post", "/v2/models/parts/infer", _infer(_tensor([1, 2], "FP64", [1.0, 2.0], "size"),
     _tensor([1], "FP64", [1.0], "weight")), 400, "input `size` is one column of a table"),
    ("post", "/v2/models/parts/infer", _infer(_tensor([1], "FP64", [1.0], "size"),
     _tensor([1], "FP64", [1.0], "size")), 400, "each input must have its own name"),
    # shapes (and kinds) that do not fit the model's input
    ("post", "/v2/models/iris/infer", _infer(_tensor([1, 3], "FP32", [1, 2, 3])), 422,
     "the model `iris` takes rows of 4 numbers, not rows of 3 numbers"),
    ("post", "/v2/models/grid/infer", _infer(_tensor([1, 6], "FP32", [1, 2, 3, 4, 5, 6])), 422,
     "the model `grid` takes arrays of numbers of shape [2, 3], one per instance, not rows of 6"),
    ("post", "/models/grid/predict", {"json": {"instances": [[1, 2, 3, 4, 5, 6]]}}, 422,
     "the model `grid` takes arrays of numbers of shape [2, 3]"),
    ("post", "/models/grid/predict", {"json": {"instances": [[[1, 2], [3, 4], [5, 6]]]}}, 422,
     "not arrays of numbers of shape [3, 2]"),
    ("post", "/models/products/predict", {"json": {"instances": [ROW]}}, 422,
     "the model `products` takes text (one string per instance), not rows of 4 numbers"),
    ("post", "/v2/models/products/infer", _infer(_tensor([1, 4], "FP32", ROW)), 422,
     "the model `products` takes text"),
    ("post", "/v2/models/iris/infer", _infer(_tensor([1, 4], "BYTES", ["a", "b", "c", "d"])), 422,
     "the model `iris` takes rows of 4 numbers, not text of shape [4]"),
    ("post", "/models/iris/predict", {"json": {"instances": ["livro"]}}, 422,
     "the model `iris` takes rows of 4 numbers, not text"),
    ("post", "/models/iris/predict", {"json": {"instances": [{"a": 1}]}}, 422,
     "the model `iris` takes rows of 4 numbers, not objects with `a`"),
    ("post", "/models/parts/predict", {"json": {"instances": [{"size": 1.0}]}}, 422,
     "the model `parts` takes objects with `size`, `weight`, not objects with `size`"),
    ("post", "/models/parts/predict", {"json": {"instances": [["x"]]}}, 400,
     "must hold numbers only"),
    ("post", "/predizer_categoria", {"json": {"descricao": [ROW]}}, 422,
     "the model `products` takes text"),
    ("post", "/flor", {"json": {"medidas": "livro"}}, 422, "the model `iris` takes rows of 4"),
    ("post", "/models/bare/predict", {"json": {"instances": [ROW]}}, 422,
     "the model `bare` cannot predict this input"),
    # invalid query parameters
    ("post", "/predict?proba=maybe", {"json": {"instances": ["livro"]}}, 400,
     "the query parameter `proba` must be true or false, not `maybe`"),
    ("post", "/models/iris/predict?proba=2", {"json": {"instances": [ROW]}}, 400,
     "`proba` must be true or false, not `2`"),
    ("post", "/models/products/versions/1/predict?proba=", {"json": {"instances": ["livro"]}},
     400, "the query parameter `proba` must be true or false"),
]  # fmt: skip

# What an error message must never show: the server's insides.
INTERNALS = ("numpy", "ndarray", "object has no attribute", "Traceback", "sys.", "Error:")


@pytest.mark.parametrize(("method", "path", "kwargs", "status", "message"), BAD_REQUESTS)
def test_bad_requests_get_a_4xx_json_error_and_the_server_goes_on(
    client, method, path, kwargs, status, message
):
    answer = getattr(client, method)(path, **kwargs)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert message in error
    assert not any(word in error for word in INTERNALS), error
    assert client.post("/predict", json={"instances": ["livro"]}).status_code == 200


# A model that raised on a request: its refusal said in the request's terms (which instance,
# which value, what the model takes), never in the model's (`Input X contains NaN`,
# `dtype('float32')`, `X has 3 features`), on every protocol and for every kind of input.
CAST_OVERFLOWS = pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
MODEL_FAILURES = [
    # a missing value, to a model that cannot take one
    ("/models/iris/predict", {"json": {"instances": [ROW, [None, 1, 1, 1]]}},
     "instance 1 has a missing value (null or NaN), which the model `iris` cannot take"),
    ("/models/iris/predict", {"content": b'{"instances": [[1, NaN, 1, 1]]}'},
     "instance 0 has a missing value (null or NaN), which the model `iris` cannot take"),
    ("/v2/models/iris/infer", {"content": b'{"inputs": [{"name": "input", "shape": [2, 4],'
     b' "datatype": "FP64", "data": [1, 1, 1, 1, NaN, 1, 1, 1]}]}'},
     "instance 1 has a missing value (null or NaN), which the model `iris` cannot take"),
    ("/v2/models/iris/infer", _binary_case(np.array([1, 1, np.nan, 1], "<f4").tobytes()),
     "instance 0 has a missing value (null or NaN), which the model `iris` cannot take"),
    ("/flor", {"json": {"medidas": [1, None, 1, 1]}},
     "instance 0 has a missing value (null or NaN), which the model `iris` cannot take"),
    ("/models/grid/predict", {"json": {"instances": [[[1, 2, 3], [4, None, 6]]]}},
     "instance 0 has a missing value (null or NaN), which the model `grid` cannot take"),
    ("/models/plain/predict", {"json": {"instances": [ROW, ROW, [1, 1, 1, None]]}},
     "instance 2 has a missing value (null or NaN), which the model `plain` cannot take"),
    ("/models/parts/predict", {"json": {"instances": [{"size": 1.0, "weight": 2.0},
                                                      {"size": 1.0, "weight": None}]}},
     "instance 1 has a missing value for `weight` (null or NaN), which the model `parts` "
     "cannot take"),
    ("/v2/models/parts/infer", {"content": b'{"inputs": [{"name": "size", "shape": [1], '
     b'"datatype": "FP64", "data": [NaN]}, {"name": "weight", "shape": [1], "datatype": '
     b'"FP64", "data": [1]}]}'},
     "instance 0 has a missing value for `size` (null or NaN), which the model `parts` "
     "cannot take"),
    # a value beyond the floats the model computes with (numpy warns as it casts, as in a
    # server, where warnings are not errors, then the model refuses the infinity)
    pytest.param("/models/trees/predict", {"json": {"instances": [[1e39, 1, 1, 1]]}},
                 "instance 0 has a value too large for the model `trees`, which computes with "
                 "32-bit floats (at most 3.403e+38 in size)", marks=CAST_OVERFLOWS),
    pytest.param("/v2/models/trees/infer",
                 _infer(_tensor([2, 4], "FP64", [*ROW, 1, -1e39, 1, 1])),
                 "instance 1 has a value too large for the model `trees`, which computes with "
                 "32-bit floats", marks=CAST_OVERFLOWS),
    # what a model saved without a signature takes, said when it refuses
    ("/models/plain/predict", {"json": {"instances": [[1, 2, 3]]}},
     "instances have 3 values, but the model `plain` takes 4"),
    ("/v2/models/plain/infer", _infer(_tensor([2, 2], "FP64", [1, 2, 3, 4])),
     "instances have 2 values, but the model `plain` takes 4"),
    ("/models/plain/predict", {"json": {"instances": [[[1, 2], [3, 4]]]}},
     "instances are arrays of shape [2, 2], but the model `plain` takes rows of numbers"),
    # text where the model needs a number
    ("/models/parts/predict", {"json": {"instances": [{"size": "big", "weight": 1.0}]}},
     "`big` for `size` is not a number, which the model `parts` needs there"),
    ("/v2/models/parts/infer", _infer(_tensor([1], "FP64", [1.0], "size"),
                                      _tensor([1], "BYTES", ["heavy"], "weight")),
     "`heavy` for `weight` is not a number, which the model `parts` needs there"),
    ("/v2/models/plain/infer", _infer(_tensor([1, 4], "BYTES", ["a", "b", "c", "d"])),
     "`a` is not a number, which the model `plain` needs there"),
]  # fmt: skip

# The model's own words that must not reach a client.
MODEL_WORDS = ("Input X", "contains NaN", "dtype", "features as input", "Found array", "float:")


@pytest.mark.parametrize(("path", "kwargs", "message"), MODEL_FAILURES)
def test_a_models_refusal_is_said_in_the_requests_terms(client, path, kwargs, message):
    answer = client.post(path, **kwargs)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error.startswith(message), error
    assert not any(word in error for word in INTERNALS + MODEL_WORDS), error
    assert client.post("/predict", json={"instances": ["livro"]}).status_code == 200


@pytest.mark.parametrize(
    ("raised", "said"),
    [
        # a predictor's own sentence about the values is the client's to read
        (ValueError("price must be positive\nsee the docs"),
         "the model `iris` cannot predict this input: price must be positive"),
        # one that speaks of arrays is not: the client hears what the model takes
        (ValueError("Expected 2D array, got 1D array instead:\narray=[1. 2.]"),
         "the model `iris` cannot predict this input: it takes rows of 4 numbers"),
        (ValueError("Input contains NaN"),  # no missing value in the batch to point at
         "the model `iris` cannot predict this input: it takes rows of 4 numbers"),
        (KeyError("weights"),
         "the model `iris` cannot predict this input: it takes rows of 4 numbers"),
        (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"),
         "the model `iris` cannot predict this input: it takes rows of 4 numbers"),
    ],
)  # fmt: skip
def test_a_failure_without_request_terms_says_what_the_model_takes(models, raised, said, capsys):
    from cais.server.failures import model_failure

    batch = np.array([ROW])
    assert model_failure(models.get("iris"), batch, raised) == said
    assert type(raised).__name__ in capsys.readouterr().err  # the server's log has the rest


# Bodies that are not UTF-8 (JSON between systems is UTF-8): one sentence, not the codec's.
NOT_UTF8 = [
    ("/predict", b'{"instances": ["\xff"]}'),
    ("/predict", b'{"instances": ["livro \xc3"]}'),  # a character cut short
    ("/models/iris/predict", b'{"instances": [[1, 2, 3, 4]], "x": "\xc0\xaf"}'),  # overlong
    ("/v2/models/iris/infer", b'{"id": "\xed\xa0\x80", "inputs": []}'),  # an encoded surrogate
    ("/flor", '{"medidas": [1, 2, 3, 4]}'.encode("utf-16")),
    ("/v2/models/iris/infer", '{"inputs": []}'.encode("utf-32")),
]


@pytest.mark.parametrize(("path", "body"), NOT_UTF8)
def test_a_body_that_is_not_utf8_is_one_sentence(client, path, body):
    answer = client.post(path, content=body)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error.startswith("the body is not UTF-8 JSON (from byte "), error
    assert "codec" not in error and "decode" not in error


def test_a_body_that_is_not_utf8_names_where_it_stops_being_utf8(client):
    answer = client.post("/predict", content=b'{"instances": ["\xff"]}')
    assert answer.json() == {"error": "the body is not UTF-8 JSON (from byte 16)"}
    header = (
        b'{"id": "\xff", "inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", '
        b'"parameters": {"binary_data_size": 16}}]}'
    )
    binary = client.post(
        "/v2/models/iris/infer",
        content=header + BINARY_FOUR,
        headers={"inference-header-content-length": str(len(header))},
    )  # the binary extension's JSON part
    assert binary.json() == {"error": "the body is not UTF-8 JSON (from byte 8)"}
    bom = client.post("/predict", content=b'\xef\xbb\xbf{"instances": ["livro"]}')
    assert bom.status_code == 200, bom.text  # a byte order mark is skipped


V2_IRIS = (
    b'"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": [1, 1, 1, 1]}]'
)


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        # sent back in the answer, which cannot hold it
        ("/v2/models/iris/infer", b'{"id": "r-\\ud800", ' + V2_IRIS + b"}", 400,
         "the body holds half of a UTF-16 surrogate pair"),
        ("/v2/models/iris/infer", b'{"parameters": {"note": "\\udfff"}, ' + V2_IRIS + b"}", 400,
         "the body holds half of a UTF-16 surrogate pair"),
        # quoted in an error
        ("/v2/models/iris/infer", b'{"model_name": "\\ud800x", ' + V2_IRIS + b"}", 400,
         "`model_name` is `\ud800x`, but this path serves `iris`"),
        ("/models/parts/predict", b'{"instances": [{"\\udbff": 1.0}]}', 422,
         "the model `parts` takes objects with `size`, `weight`, not objects with `\udbff`"),
    ],
)  # fmt: skip
def test_a_lone_surrogate_escape_gets_a_4xx(client, path, body, status, message):
    answer = client.post(path, content=body)
    assert answer.status_code == status, answer.text
    assert message in answer.json()["error"]
    assert client.post("/predict", json={"instances": ["livro"]}).status_code == 200


def test_surrogate_pairs_and_text_that_is_not_sent_back_are_served(client):
    pair = client.post(
        "/v2/models/iris/infer", content=b'{"id": "\\ud83d\\ude00", ' + V2_IRIS + b"}"
    )
    assert pair.status_code == 200, pair.text
    assert pair.json()["id"] == "\U0001f600"
    lone = client.post("/predict", content=b'{"instances": ["livro \\ud800"]}')
    assert lone.status_code == 200, lone.text  # read by the model, never written back


# V2 data nested in lists must be rectangular and of the input's shape (sizes of 1 aside).
RAGGED = [
    ("iris", _tensor([1, 3], "FP32", [[1, 2], [3]]),
     "input `input` has ragged data: the lists at one depth of its nesting must all hold as "
     "many values (its shape is [1, 3])"),
    ("iris", _tensor([2, 4], "FP64", [ROW, ROW[:3]]), "input `input` has ragged data"),
    ("iris", _tensor([2, 4], "FP64", [ROW, [1, 2, [3], 4]]), "input `input` has ragged data"),
    ("iris", _tensor([1, 4], "FP64", [1, [2, 3], 4]), "input `input` has ragged data"),
    ("grid", _tensor([1, 2, 3], "FP64", [[[1, 2, 3], [4, 5]]]), "input `input` has ragged data"),
    ("products", _tensor([2], "BYTES", [["livro"], "jogo"]), "input `input` has ragged data"),
    ("iris", _tensor([2, 4], "FP64", [[1, 2], [3, 4], [5, 6], [7, 8]]),
     "input `input` has data nested as the shape [4, 2], not its shape [2, 4]"),
    ("iris", _tensor([8], "FP64", [ROW, ROW]),
     "input `input` has data nested as the shape [2, 4], not its shape [8]"),
    ("parts", [_tensor([2], "FP64", [[1.0], [2.0], [3.0]], "size"),
               _tensor([2], "FP64", [1.0, 2.0], "weight")],
     "input `size` has data nested as the shape [3, 1], not its shape [2]"),
]  # fmt: skip


@pytest.mark.parametrize(("model", "tensor", "message"), RAGGED)
def test_v2_nested_data_must_be_of_its_shape(client, model, tensor, message):
    inputs = tensor if isinstance(tensor, list) else [tensor]  # a table's columns, or one
    answer = client.post(f"/v2/models/{model}/infer", json={"inputs": inputs})
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"].startswith(message)


@pytest.mark.parametrize(
    ("model", "tensor"),
    [
        ("iris", _tensor([2, 4], "FP64", ROWS)),
        ("iris", _tensor([1, 4], "FP64", [[ROW]])),  # a size of 1 more or less
        ("products", _tensor([2], "BYTES", [["livro"], ["jogo"]])),
        ("grid", _tensor([1, 2, 3], "FP64", [GRID])),
        ("grid", _tensor([1, 2, 3], "FP64", GRID)),
    ],
)
def test_v2_nested_data_of_its_shape_is_served(client, model, tensor):
    answer = client.post(f"/v2/models/{model}/infer", json={"inputs": [tensor]})
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/models/plain/predict", {"instances": [[]]}),
        ("/models/plain/predict", {"instances": [[], []]}),
        ("/models/plain/predict", {"instances": [[[]]]}),
        ("/flor", {"medidas": [[]]}),
    ],
)
def test_instances_without_values_are_refused(client, path, body):
    answer = client.post(path, json=body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "every instance must have at least one value"


@pytest.mark.parametrize("declared", [b"\xb2", b"\xb9\xb3"])  # `²`, `¹³`: digits to str.isdigit
def test_a_content_length_that_is_no_number_is_not_read_as_one(models, declared):
    """Servers refuse such a header before the app; in process it reaches the app, which
    must not take it for a length (was a 500)."""
    import asyncio

    app = create_app(models)
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/predict", "raw_path": b"/predict", "query_string": b"",
        "root_path": "", "headers": [(b"content-length", declared)], "client": ("t", 1),
        "server": ("t", 80),
    }  # fmt: skip
    received = [{"type": "http.request", "body": b'{"instances": ["livro"]}'}]
    sent: list[dict] = []

    async def receive() -> dict:
        return received.pop(0) if received else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 200


def test_metrics_count_requests_errors_and_load_time(client):
    client.post("/models/iris/predict", json={"instances": [[5.1, 3.5, 1.4, 0.2]]})
    client.post("/models/iris/predict", json={"instances": []})
    text = client.get("/metrics").text
    assert 'cais_requests_total{model="iris",protocol="json",version="1"}' in text
    assert (
        'cais_request_errors_total{model="iris",protocol="json",status="400",version="1"}' in text
    )
    assert (
        'cais_request_seconds_bucket{le="0.005",model="iris",protocol="json",version="1"}' in text
    )
    assert 'cais_model_load_seconds{model="products",version="1"}' in text
    assert 'cais_instances_total{model="iris",version="1"}' in text


def test_serving_an_unknown_model_fails_before_listening(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from cais.cli import app

    monkeypatch.setenv("CAIS_HOME", str(tmp_path))
    result = CliRunner().invoke(app, ["serve", "nothing:1"])
    assert result.exit_code == 1
    assert "No model is named `nothing`" in result.output


@pytest.fixture(scope="module")
def legacy_client(tmp_path_factory):

    from cais.server.routes import LegacyRoute

    home = tmp_path_factory.mktemp("cais-home")
    text = text_model()
    cais.save_model(text, "products", input_example=["livro azul"], home=home)
    route = LegacyRoute(path="/predizer_categoria", input="descricao", output="categoria")
    with TestClient(
        create_app(ModelSet.load(["products"], home=home), routes=[route])
    ) as test_client:
        yield test_client


def test_a_kept_contract_answers_like_the_old_api(legacy_client):
    one = legacy_client.post("/predizer_categoria", json={"descricao": "livro de bolo"})
    assert one.json() == {"categoria": "livro"}
    many = legacy_client.post(
        "/predizer_categoria", json={"descricao": ["livro de bolo", "jogo de luta"]}
    )
    assert many.json() == {"categoria": ["livro", "game"]}
    wrong = legacy_client.post("/predizer_categoria", json={"texto": "livro"})
    assert wrong.status_code == 400
    assert "`descricao`" in wrong.json()["error"]
    assert legacy_client.post("/predizer_categoria", json={"descricao": []}).status_code == 400


def test_openapi_docs_and_try_page(legacy_client):
    spec = legacy_client.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    assert "/predizer_categoria" in spec["paths"]
    example = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"][
        "example"
    ]
    assert example == {"instances": ["livro azul"]}
    assert "<title>cais — API documentation</title>" in legacy_client.get("/docs").text
    assert "<title>cais — try a prediction</title>" in legacy_client.get("/").text
    listed = legacy_client.get("/models").json()
    assert listed["default"] == "products"
    assert listed["models"][0]["classes"] == ["brinquedo", "game", "livro", "maquiagem"]


def test_a_route_to_a_model_not_served_fails_at_start(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from cais.cli import app

    home = tmp_path / "home"
    from sklearn.linear_model import LogisticRegression

    cais.save_model(LogisticRegression().fit([[0], [1]], [0, 1]), "tiny", home=home)
    (tmp_path / "cais.yaml").write_text(
        "routes:\n  - path: /old\n    model: other\n    input: x\n    output: y\n"
    )
    monkeypatch.setenv("CAIS_HOME", str(home))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["serve", "tiny"])
    assert result.exit_code == 1
    assert "The route `/old` names a model that is not served" in result.output


def test_an_access_log_line_per_request(tmp_path):
    import io
    import re

    log = io.StringIO()
    cais.save_model(text_model(), "products", home=tmp_path)
    app = create_app(ModelSet.load(["products"], home=tmp_path), access_log=log)
    with TestClient(app) as client:
        client.post("/predict", json={"instances": ["livro"]})
        client.post("/predict?proba=maybe", json={"instances": ["livro"]})
        client.get("/nowhere")
    lines = log.getvalue().splitlines()
    assert [line.rsplit(" ", 1)[0] for line in lines] == [
        "POST /predict 200",
        "POST /predict 400",
        "GET /nowhere 404",
    ]
    assert all(re.fullmatch(r".* \d+\.\dms", line) for line in lines), lines


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--port", "70000"], "Invalid value `70000` for `--port` / `-p`: input should be less"),
        (["--port", "-1"], "Invalid value `-1` for `--port` / `-p`: input should be greater"),
        (["--port", "http"], "Invalid value `http` for `--port` / `-p`: input should be a valid"),
        (["--workers", "0"], "Invalid value `0` for `--workers`: input should be greater than"),
        (["--max-body", "-5"], "Invalid value `-5` for `--max-body`: input should be greater"),
        (["--max-body", "1e9"], "Invalid value `1e9` for `--max-body`"),
        (["--prot", "80"], "No such option: --prot"),
    ],
)
def test_serve_refuses_settings_out_of_range_in_one_sentence(options, message, tmp_path):
    from typer.testing import CliRunner

    from cais.cli import app
    from tests.support import assert_one_error

    result = CliRunner().invoke(app, ["serve", "products", *options])
    output = assert_one_error(result, code=2)
    assert message in output
    assert "hint: see `cais serve --help`" in output


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_on_a_busy_port_fails_in_one_sentence_before_loading(workers, monkeypatch, tmp_path):
    import socket

    from typer.testing import CliRunner

    from cais.cli import app
    from tests.support import assert_one_error

    monkeypatch.setenv("CAIS_HOME", str(tmp_path))  # empty: loading would fail otherwise
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(
            app, ["serve", "products", "-p", str(port), "--workers", workers]
        )
    output = assert_one_error(result)
    assert f"error: Cannot listen on 127.0.0.1:{port}: Address already in use" in output


def test_openapi_describes_every_route_with_its_parameters_and_bodies(client):
    spec = client.get("/openapi.json").json()
    served = {route.path for route in client.app.routes} - {"/", "/docs", "/openapi.json"}
    assert set(spec["paths"]) == served
    for path, item in spec["paths"].items():
        for operation in item.values():
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == {part[1:-1] for part in path.split("/") if part.startswith("{")}
    name = spec["paths"]["/models/{name}/predict"]["post"]["parameters"][0]
    assert name["schema"]["enum"] == ["bare", "grid", "iris", "parts", "plain", "products", "trees"]
    body = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"]["properties"]["instances"]["items"] == {"type": "string"}
    infer = spec["paths"]["/v2/models/{name}/infer"]["post"]["requestBody"]["content"]
    assert infer["application/json"]["schema"] == {"$ref": "#/components/schemas/InferenceRequest"}
    assert {"InferenceRequest", "RequestInput", "InferenceResponse"} <= set(
        spec["components"]["schemas"]
    )


@pytest.mark.parametrize(
    ("arguments", "environment", "message"),
    [
        (["--port", "70000"], {}, "argument --port: must be a whole number from 0 to 65535, not `70000`"),
        (["--port", "²"], {}, "argument --port: must be a whole number from 0 to 65535, not `²`"),
        (["--workers", "-2"], {}, "argument --workers: must be a whole number of at least 1, not `-2`"),
        ([], {"CAIS_WORKERS": "many"}, "argument --workers: must be a whole number of at least 1, not `many`"),
        (["--grace", "-1"], {}, "argument --grace: must be a number of seconds, 0 or more, not `-1`"),
        (["--grace", "nan"], {}, "argument --grace: must be a number of seconds, 0 or more, not `nan`"),
        ([], {"CAIS_GRACE": "soon"}, "argument --grace: must be a number of seconds, 0 or more, not `soon`"),
    ],
)  # fmt: skip
def test_the_image_server_refuses_bad_settings_in_one_line(
    tmp_path, arguments, environment, message
):
    import os
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "cais.server", str(tmp_path), *arguments],
        env={**os.environ, **environment},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1] == f"python -m cais.server: error: {message}"
    assert "Traceback" not in done.stderr


def test_a_one_column_table_takes_its_v2_input_under_any_name(tmp_path):
    import pandas as pd
    from sklearn.compose import make_column_transformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from tests.support import LABELS, TITLES

    frame = pd.DataFrame({"title": TITLES})
    by_column = make_column_transformer((TfidfVectorizer(), "title"))
    model = make_pipeline(by_column, LogisticRegression()).fit(frame, LABELS)
    cais.save_model(model, "titles", input_example=frame[:2], home=tmp_path)
    with TestClient(create_app(ModelSet.load(["titles"], home=tmp_path))) as client:
        for name in ("title", "input", "predict"):
            tensor = _tensor([1], "BYTES", ["livro de bolo"], name)
            answer = client.post("/v2/models/titles/infer", json={"inputs": [tensor]})
            assert answer.json()["outputs"][0]["data"] == ["livro"], answer.text
        table = client.post("/predict", json={"instances": [{"title": "livro de bolo"}]})
        assert table.json()["predictions"] == ["livro"]
        text = client.post("/predict", json={"instances": ["livro de bolo"]})
        assert text.status_code == 422
        assert text.json()["error"] == "the model `titles` takes objects with `title`, not text"


def test_what_a_model_takes_is_read_from_its_signature_and_example():
    from cais.bundle.metadata import Tensor
    from cais.server.models import Expected

    text = [Tensor(name="input", datatype="BYTES", shape=[-1])]
    assert Expected.of(text, ["livro", "jogo"]) == Expected("text")
    assert Expected.of(text, [["livro"]]) == Expected("text")
    assert Expected.of(text, [{"texto": "livro"}]) is None  # a custom predictor's objects
    assert Expected.of(text, None) is None
    grid = [Tensor(name="input", datatype="FP32", shape=[-1, 2, 3])]
    assert Expected.of(grid, [[[0.0] * 3] * 2]) == Expected("arrays", shape=(2, 3))
    assert Expected.of([Tensor(name="input", datatype="FP64", shape=[-1])], [1.0]) is None
    columns = [Tensor(name="size", datatype="FP64", shape=[-1])]
    assert Expected.of(columns, {"size": [1.0]}).columns == ("size",)
    assert Expected.of([], None) is None
