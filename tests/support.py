"""Constants and helpers the tests share (fixtures live in conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REGISTRY = os.environ.get("CAIS_TEST_REGISTRY", "127.0.0.1:5000")
AUTH_REGISTRY = os.environ.get("CAIS_TEST_AUTH_REGISTRY", "127.0.0.1:5001")
REGISTRY_USER = os.environ.get("CAIS_TEST_REGISTRY_USER", "cais")
REGISTRY_PASSWORD = os.environ.get("CAIS_TEST_REGISTRY_PASSWORD", "cais-test-password")
BASE_IMAGE = "python:3.11-slim"
CA_FOLDER = Path("/usr/local/share/ca-certificates")


def unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must have every component (scripts/test-infra starts them)")
    pytest.skip(reason)


def run_cais(
    *args: str,
    input: str | None = None,
    cwd: Path | None = None,
    env: dict | None = None,
    timeout: int = 600,
) -> subprocess.CompletedProcess[str]:
    """Run the `cais` command as a user would, in a fresh process."""
    return subprocess.run(
        [sys.executable, "-m", "cais", *args],
        input=input,
        cwd=cwd,
        env={**os.environ, **(env or {}), "NO_COLOR": "1", "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_cais_into_closed_pipe(
    *args: str, cwd: Path | None = None, env: dict | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `cais ARGS` with stdout a real pipe whose reader is already gone, as in
    `cais ARGS | head -1` once head has exited: every write to stdout fails."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run(
            [sys.executable, "-m", "cais", *args],
            cwd=cwd,
            env={**os.environ, **(env or {}), "NO_COLOR": "1"},
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=300,
        )
    finally:
        os.close(write)


def assert_ended_quietly(done: subprocess.CompletedProcess[str]) -> None:
    """cais ended on a closed pipe as Python's recipe for SIGPIPE says: exit 1, nothing said."""
    assert done.returncode == 1, done.stderr
    for word in ("error", "Traceback", "Exception ignored", "BrokenPipe"):
        assert word not in done.stderr, done.stderr


class RecordingProgress:
    """A BuildProgress that keeps what it was told."""

    def __init__(self) -> None:
        self.steps: list[str] = []
        self.lines: list[str] = []

    def step(self, name: str) -> None:
        self.steps.append(name)

    def log(self, line: str) -> None:
        self.lines.append(line)


def assert_one_error(result, *, code: int = 1) -> str:
    """The command failed with one `error:` sentence (and maybe a hint), no traceback."""
    assert result.exit_code == code, result.output
    output = result.output
    assert output.startswith("error: "), output
    assert "Traceback" not in output
    lines = [line for line in output.splitlines() if line.strip()]
    assert all(line.startswith(("error:", "hint:")) for line in lines), lines
    assert sum(line.startswith("error:") for line in lines) == 1
    return output


# A few product titles and their categories, for small text models.
TITLES = [
    "livro de receitas",
    "boneca de pano",
    "batom vermelho",
    "jogo de corrida",
    "livro infantil",
    "carrinho de brinquedo",
    "base liquida",
    "jogo de tiro",
]
LABELS = ["livro", "brinquedo", "maquiagem", "game"] * 2


def engine_images(engine) -> list[dict]:
    """The engine's listing of every image it holds (`Id`, `RepoTags`, `RepoDigests`), in one
    request. `engine.images.list` inspects each image it listed, and fails when another
    process (a test running beside this one) removes one meanwhile."""
    return engine.api.images(all=True)


def engine_image_ids(engine) -> set[str]:
    """Every image id the engine holds, in one request."""
    return {image["Id"] for image in engine_images(engine)}


def engine_tags(engine) -> set[str]:
    """Every tag the engine holds, in one request."""
    return {tag for image in engine_images(engine) for tag in image.get("RepoTags") or []}


def text_model():
    """A fitted TF-IDF + logistic regression pipeline on TITLES."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    return make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(TITLES, LABELS)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post_when_up(url: str, body: object, *, tries: int = 150):
    """POST `body` as JSON to a server that is still starting (a new container): the first
    answer it gives, or fail the test."""
    import httpx

    return _first_answer(lambda: httpx.post(url, json=body, timeout=2), url, tries)


def get_when_up(url: str, *, tries: int = 150):
    """GET `url` of a server that is still starting: the first answer, or fail the test."""
    import httpx

    return _first_answer(lambda: httpx.get(url, timeout=2), url, tries)


def _first_answer(send, url: str, tries: int):
    import time

    import httpx

    for _ in range(tries):
        try:
            return send()
        except httpx.HTTPError:
            time.sleep(0.2)
    pytest.fail(f"{url} never answered")


def wait_until_ready(base: str, *, tries: int = 150) -> None:
    """Poll `base`/health/ready until it answers 200, or fail the test."""
    import time

    import httpx

    for _ in range(tries):
        try:
            if httpx.get(f"{base}/health/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    pytest.fail(f"{base} never became ready")


def serve(*references: str, home: Path, cwd: Path | None = None, options: tuple[str, ...] = ()):
    """Start `cais serve` on a free port; returns (process, base URL) once it is ready."""
    port = free_port()
    command = ["cais", "serve", *references, "--port", str(port), *options]
    return start_server(command, port, env={"CAIS_HOME": str(home), "NO_COLOR": "1"}, cwd=cwd)


def start_server(module_args: list[str], port: int, *, env: dict, cwd: Path | None = None):
    """Run `python -m MODULE_ARGS…` (a server on `port`); returns (process, base URL) once it
    is ready, or kills it."""
    process = subprocess.Popen(
        [sys.executable, "-m", *module_args],
        cwd=cwd,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(base)
    except BaseException:
        process.kill()
        process.wait()
        raise
    return process, base


def serving_models(home: Path, *more: str):
    """A ModelSet of every form of input the server knows, saved with input examples:
    `products` (text; versions 1 and 2), `iris` (rows of 4 numbers), `grid` (2×3 arrays of
    numbers per instance) and `parts` (a table: objects with `size` and `weight`), then the
    `more` references (saved in `home` by the caller)."""
    import functools

    import numpy as np
    import pandas as pd
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    import cais
    from cais.server.models import ModelSet

    text = text_model()
    cais.save_model(text, "products", input_example=["livro azul"], home=home)
    cais.save_model(text, "products", input_example=["jogo"], home=home)  # version 2
    iris = load_iris()
    table = LogisticRegression(max_iter=500).fit(iris.data, iris.target)
    cais.save_model(table, "iris", input_example=iris.data[:2], home=home)
    grids = np.arange(48, dtype=float).reshape(8, 2, 3) % 7
    flatten = FunctionTransformer(functools.partial(np.reshape, shape=(-1, 6)))
    grid = make_pipeline(flatten, LogisticRegression()).fit(grids, [0, 1] * 4)
    cais.save_model(grid, "grid", input_example=grids[:2], home=home)
    parts = pd.DataFrame({"size": [1.0, 2.0, 3.0, 4.0], "weight": [10.0, 9.0, 2.0, 1.0]})
    part = LogisticRegression().fit(parts, ["big", "big", "small", "small"])
    cais.save_model(part, "parts", input_example=parts[:2], home=home)
    return ModelSet.load(["products:1", "products:2", "iris", "grid", "parts", *more], home=home)


SLEEPER = '''
import time
from pathlib import Path

import cais


class Sleeper(cais.Predictor):
    """Answers each text `SECONDS` or `SECONDS MARKER` after that many seconds; a marker file
    is written first, so a test knows the request is in flight."""

    def predict(self, batch):
        for text in batch:
            seconds, _, marker = text.partition(" ")
            if marker:
                Path(marker).write_text("")
            time.sleep(float(seconds))
        return list(batch)
'''


def save_sleeper(home: Path, name: str = "sleeper") -> None:
    """Save a model that answers after as many seconds as its input says (example: `0`)."""
    code = home / f"{name}-code"
    code.mkdir(parents=True, exist_ok=True)
    (code / "sleeper.py").write_text(SLEEPER)
    saved = subprocess.run(
        [sys.executable, "-c", f"import cais, sleeper; cais.save_model(sleeper.Sleeper(), {name!r}, input_example=['0'])"],
        cwd=code,
        env={**os.environ, "CAIS_HOME": str(home)},
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert saved.returncode == 0, saved.stderr
