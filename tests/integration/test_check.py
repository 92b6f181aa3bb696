"""`cais check` against a real `cais serve`, a V2 server and a plain JSON API on free ports:
one plugin line and the exit code of the Nagios guidelines for every outcome."""

from __future__ import annotations

import re
import threading

import pytest

import cais
from tests.support import free_port, run_cais, save_sleeper, serve, text_model

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3


def _check(*args: str) -> tuple[int, str]:
    """Exit code and the one line a monitoring system reads (no traceback, nothing else)."""
    done = run_cais("check", *args, timeout=120)
    lines = done.stdout.splitlines()
    assert len(lines) == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    state = {OK: "OK", WARNING: "WARNING", CRITICAL: "CRITICAL", UNKNOWN: "UNKNOWN"}
    assert lines[0].startswith(f"CAIS {state[done.returncode]} - "), (done.returncode, lines)
    return done.returncode, lines[0]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("cais-home")
    import pandas as pd
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    cais.save_model(text_model(), "products", input_example=["livro azul"], home=home)
    save_sleeper(home)
    iris = load_iris()
    rows = LogisticRegression(max_iter=500).fit(iris.data, iris.target)
    cais.save_model(rows, "iris", input_example=iris.data[:2], home=home)
    cais.save_model(rows, "bare", home=home)  # no input example
    parts = pd.DataFrame({"size": [1.0, 2.0, 3.0, 4.0], "weight": [10.0, 9.0, 2.0, 1.0]})
    table = LogisticRegression().fit(parts, ["big", "big", "small", "small"])
    cais.save_model(table, "parts", input_example=parts[:2], home=home)
    process, base = serve("products", "sleeper", "iris", "bare", "parts", home=home)
    yield base
    process.terminate()
    process.wait(timeout=30)


def test_ok_with_the_recorded_example_and_perfdata(server):
    code, line = _check(server, "--model", "products", "--expect", "livro", "-w", "5", "-c", "9")
    assert code == OK
    assert re.fullmatch(
        r'CAIS OK - products:1 answered "livro" in \d+ ms \| time=[\d.]+s;5;9;0', line
    ), line


@pytest.mark.parametrize(
    "model, answer",
    [("iris", "0"), ("parts", '"big"')],  # the first of rows of numbers; a table's first row
)
def test_every_kind_of_recorded_example(server, model, answer):
    code, line = _check(server, "-m", model)
    assert (code, line.split(" in ")[0]) == (OK, f"CAIS OK - {model}:1 answered {answer}")


def test_a_model_without_an_example_needs_an_input(server):
    code, line = _check(server, "-m", "bare")
    assert code == UNKNOWN, line
    assert "the model `bare` has no recorded input example: give one with `--input`" in line
    code, line = _check(server, "-m", "bare", "-i", "[5.1, 3.5, 1.4, 0.2]", "-e", "0")
    assert code == OK, line


def test_a_known_input_given_as_json(server):
    code, line = _check(server, "-m", "sleeper:1", "-i", '"0.1"', "-e", "0.1")
    assert (code, line.split(" in ")[0]) == (OK, 'CAIS OK - sleeper:1 answered "0.1"')


@pytest.mark.parametrize(
    "ranges, expected",
    [
        (("-w", "0"), WARNING),  # any time above 0 s is outside 0:0
        (("-w", "@0:100"), WARNING),  # inside the range alerts
        (("-c", "0"), CRITICAL),
        (("-w", "0", "-c", "0"), CRITICAL),  # the worse state wins
        (("-w", "~:100", "-c", "100"), OK),
    ],
)
def test_time_thresholds(server, ranges, expected):
    code, line = _check(server, "-m", "products", *ranges)
    assert code == expected, line
    if expected != OK:
        assert re.search(r'products:1 answered "livro" in \d+ ms \(outside range', line), line


@pytest.mark.parametrize(
    "args, message",
    [
        (("-m", "products", "-e", "game"), 'products:1 answered "livro" instead of "game"'),
        (("-m", "products", "-i", "jogo de tiro", "-e", "livro"), 'answered "game" instead of'),
        (("-m", "nope",), "answered HTTP 404: no model named `nope`"),
        (("-m", "products:7",), "answered HTTP 404: the model `products` has no version `7`"),
        (("-m", "products", "-i", "[1, 2]"), "answered HTTP 422: the model `products` takes text"),
        (("-m", "sleeper", "-i", '"5"', "-t", "0.5"), "within 0.5 s"),
        (("-m", "sleeper", "-i", "5"), "answered HTTP 400: instances must all be strings"),
    ],
)  # fmt: skip
def test_critical(server, args, message):
    code, line = _check(server, *args)
    assert code == CRITICAL, line
    assert message in line


def test_several_models_need_one_named(server):
    code, line = _check(server)
    assert code == UNKNOWN
    assert (
        "serves several models (bare, iris, parts, products, sleeper): name one with `--model`"
        in line
    )


def test_a_single_model_needs_no_option(tmp_path):
    cais.save_model(text_model(), "products", input_example=["jogo"], home=tmp_path)
    process, base = serve("products", home=tmp_path)
    try:
        code, line = _check(base)
        assert code == OK and 'products:1 answered "game"' in line, line
    finally:
        process.terminate()
        process.wait(timeout=30)
    code, line = _check(base)  # the server is gone
    assert code == CRITICAL
    assert line.endswith(f"cannot connect to `{base}/v2`: connection refused"), line


# -- a V2 server that is not cais, and a plain JSON API --------------------------------------


@pytest.fixture(scope="module")
def other():
    """A tiny Starlette app: a V2 server (`echo` answers the length of its text) and a plain
    JSON API (`POST /categoria {"descricao": …} → {"categoria": …}`)."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, PlainTextResponse
    from starlette.routing import Route

    async def server(request):
        return JSONResponse({"name": "tiny", "version": "1"})

    async def metadata(request):
        if request.path_params["name"] != "echo":
            return JSONResponse({"error": "Model not found"}, status_code=404)
        return JSONResponse({"name": "echo", "inputs": [{"name": "text", "datatype": "BYTES"}]})

    async def infer(request):
        tensor = (await request.json())["inputs"][0]
        data = [len(str(v)) for v in tensor["data"]]
        outputs = [{"name": "length", "shape": [len(data)], "datatype": "INT64", "data": data}]
        return JSONResponse({"model_name": "echo", "model_version": "2", "outputs": outputs})

    async def categoria(request):
        body = await request.json()
        return JSONResponse({"categoria": "livro" if "livro" in body["descricao"] else "outro"})

    async def broken(request):
        return JSONResponse({"detail": "the database is down"}, status_code=503)

    async def text(request):
        return PlainTextResponse("hello")

    app = Starlette(
        routes=[
            Route("/v2", server),
            Route("/v2/models/{name}", metadata),
            Route("/v2/models/{name}/infer", infer, methods=["POST"]),
            Route("/categoria", categoria, methods=["POST"]),
            Route("/broken", broken, methods=["POST"]),
            Route("/text", text, methods=["POST"]),
        ]
    )
    port = free_port()
    running = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning"))
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    from tests.support import get_when_up

    base = f"http://127.0.0.1:{port}"
    get_when_up(f"{base}/v2")
    yield base
    running.should_exit = True
    thread.join(timeout=10)


def test_any_v2_server(other):
    code, line = _check(other, "-m", "echo", "-i", "abcd", "-e", "4")
    assert (code, line.split(" in ")[0]) == (OK, "CAIS OK - echo:2 answered 4")
    code, line = _check(other, "-m", "echo", "-i", "abcd", "-e", "5")
    assert (code, line.split(" |")[0]) == (
        CRITICAL,
        'CAIS CRITICAL - echo:2 answered 4 instead of "5"',
    )
    code, line = _check(other, "-m", "nope", "-i", "abcd")
    assert code == CRITICAL and line.endswith("answered HTTP 404: Model not found"), line


@pytest.mark.parametrize(
    "args, message",
    [
        ((), "is no cais server: name the model with `--model`"),
        (("-m", "echo"), "is no cais server: give a known input with `--input`"),
    ],
)
def test_a_v2_server_needs_a_model_and_an_input(other, args, message):
    code, line = _check(other, *args)
    assert code == UNKNOWN and message in line, line


def test_plain_json_api(other):
    body = '{"descricao": "livro de receitas"}'
    code, line = _check(f"{other}/categoria", "--field", "categoria", "-i", body, "-e", "livro")
    assert code == OK and '/categoria answered "livro" in' in line, line
    code, line = _check(f"{other}/categoria", "--path", "categoria", "-i", body, "-e", "game")
    assert code == CRITICAL and 'answered "livro" instead of "game"' in line, line


@pytest.mark.parametrize(
    "path, args, expected, message",
    [
        ("/categoria", ("--field", "label"), CRITICAL, "has no `label`: {\"categoria\": \"livro\"}"),
        ("/broken", ("--field", "x"), CRITICAL, "answered HTTP 503: the database is down"),
        ("/text", ("--field", "x"), CRITICAL, "answered no JSON: hello"),
        ("/nowhere", ("--field", "x"), CRITICAL, "answered HTTP 404: Not Found"),
        ("/categoria", (), CRITICAL, "no V2 server here (for a plain JSON API, give `--field`)"),
    ],
)  # fmt: skip
def test_plain_json_api_failures(other, path, args, expected, message):
    code, line = _check(f"{other}{path}", *args, "-i", '{"descricao": "livro"}')
    assert code == expected and message in line, line


def test_plain_json_api_needs_an_input(other):
    code, line = _check(f"{other}/categoria", "--field", "categoria")
    assert code == UNKNOWN and "a plain JSON API needs a known input" in line, line
