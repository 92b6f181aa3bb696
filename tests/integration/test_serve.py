"""`cais serve` as a real process on a real port, spoken to by Triton's own V2 HTTP client."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

import cais
from tests.support import serve, text_model


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    home = tmp_path_factory.mktemp("cais-home")
    cais.save_model(text_model(), "products", input_example=["livro azul"], home=home)
    iris = load_iris()
    cais.save_model(
        LogisticRegression(max_iter=500).fit(iris.data, iris.target),
        "iris",
        input_example=iris.data[:2],
        home=home,
    )
    process, base = serve("products", "iris", home=home)
    yield base.removeprefix("http://")
    process.terminate()
    process.wait(timeout=10)


def test_triton_client_text_model(server):
    import tritonclient.http as triton

    client = triton.InferenceServerClient(url=server)
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("products")
    assert client.get_model_metadata("products")["inputs"][0]["datatype"] == "BYTES"
    data = triton.InferInput("input", [2], "BYTES")
    data.set_data_from_numpy(np.array(["jogo de luta", "boneca"], dtype=object), binary_data=False)
    wanted = triton.InferRequestedOutput("predict", binary_data=False)
    result = client.infer("products", [data], outputs=[wanted], request_id="t-1")
    assert result.get_response()["id"] == "t-1"
    assert [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("predict")] == [
        "game",
        "brinquedo",
    ]


def test_triton_client_table_model_with_probabilities(server):
    import tritonclient.http as triton

    client = triton.InferenceServerClient(url=server)
    data = triton.InferInput("input", [2, 4], "FP32")
    data.set_data_from_numpy(
        np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], dtype=np.float32), binary_data=False
    )
    outputs = [
        triton.InferRequestedOutput(n, binary_data=False) for n in ("predict", "predict_proba")
    ]
    result = client.infer("iris", [data], outputs=outputs)
    assert result.as_numpy("predict").tolist() == [0, 2]
    probabilities = result.as_numpy("predict_proba")
    assert probabilities.shape == (2, 3)
    assert np.allclose(probabilities.sum(axis=1), 1)


def test_triton_client_binary_inputs(server):
    """The client's defaults: inputs in the binary tensor data extension, binary outputs asked
    for (cais answers them in JSON, which the client reads too)."""
    import tritonclient.http as triton

    client = triton.InferenceServerClient(url=server)
    text = triton.InferInput("input", [2], "BYTES")
    text.set_data_from_numpy(np.array(["jogo de luta", "boneca"], dtype=object))
    result = client.infer("products", [text])
    assert [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("predict")] == [
        "game",
        "brinquedo",
    ]
    table = triton.InferInput("input", [2, 4], "FP64")
    table.set_data_from_numpy(np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]))
    result = client.infer("iris", [table], outputs=[triton.InferRequestedOutput("predict")])
    assert result.as_numpy("predict").tolist() == [0, 2]


def test_triton_client_sees_a_clear_error(server):
    import tritonclient.http as triton
    from tritonclient.utils import InferenceServerException

    client = triton.InferenceServerClient(url=server)
    data = triton.InferInput("input", [1, 4], "FP32")
    data.set_data_from_numpy(np.zeros((1, 4), dtype=np.float32), binary_data=False)
    with pytest.raises(InferenceServerException, match="no model named `nope`"):
        client.infer("nope", [data])


def test_simple_api_over_real_http(server):
    answer = httpx.post(f"http://{server}/predict", json={"instances": ["livro de bolo"]})
    assert answer.json()["predictions"] == ["livro"]
    assert httpx.post(f"http://{server}/predict", content=b"{oops").status_code == 400
    assert httpx.post(f"http://{server}/predict", json={"instances": ["livro"]}).status_code == 200


def _start(home, *options: str):
    """`cais serve products --port 0 OPTIONS`: the process and the URL its success line gives
    (read from stderr as it comes; the line must name the port the system chose)."""
    import os
    import re
    import subprocess
    import sys

    process = subprocess.Popen(
        [sys.executable, "-m", "cais", "serve", "products", "--port", "0", *options],
        env={**os.environ, "CAIS_HOME": str(home), "NO_COLOR": "1", "COLUMNS": "200"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    for line in process.stderr:
        found = re.search(r"Serving on (http://127\.0\.0\.1:(\d+))", line)
        if found:
            assert found.group(2) != "0"
            return process, found.group(1)
    process.communicate()
    pytest.fail(f"`cais serve` exited ({process.returncode}) without saying it serves")


def _stop(process) -> list[str]:
    process.terminate()
    return process.communicate(timeout=30)[1].splitlines()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_says_it_serves_once_it_answers_on_the_port_it_got(tmp_path, workers):
    cais.save_model(text_model(), "products", home=tmp_path)
    process, base = _start(tmp_path, "--workers", workers)
    try:
        # No waiting, no retry: once the line is out, every worker answers.
        with httpx.Client() as client:
            for _ in range(4):
                answer = client.post(f"{base}/predict", json={"instances": ["livro de bolo"]})
                assert answer.json()["predictions"] == ["livro"]
            assert client.get(f"{base}/nowhere").status_code == 404
    finally:
        lines = _stop(process)
    logged = [line.rsplit(" ", 1)[0] for line in lines if line.startswith(("POST ", "GET "))]
    assert logged == ["POST /predict 200"] * 4 + ["GET /nowhere 404"], lines


def test_serve_quiet_logs_no_requests(tmp_path):
    cais.save_model(text_model(), "products", home=tmp_path)
    process, base = _start(tmp_path, "--quiet")
    try:
        assert httpx.post(f"{base}/predict", json={"instances": ["livro"]}).status_code == 200
    finally:
        lines = _stop(process)
    assert not [line for line in lines if "/predict" in line], lines
