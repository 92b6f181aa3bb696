"""The server's pages in a real headless browser (Debian's chromium, driven by Playwright)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time

import httpx
import pytest

from tests.support import unavailable

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
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    import cais

    home = tmp_path_factory.mktemp("home")
    folder = tmp_path_factory.mktemp("project")
    (folder / "cais.yaml").write_text(
        "routes:\n  - path: /predizer_categoria\n    input: descricao\n    output: categoria\n"
    )
    model = make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(TITLES, LABELS)
    cais.save_model(model, "products", input_example=["livro azul"], home=home)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "cais", "serve", "products", "--port", str(port)],
        cwd=folder,
        env={**os.environ, "CAIS_HOME": str(home)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(150):
        try:
            if httpx.get(f"{base}/health/ready", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    yield base
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(scope="module")
def browser():
    chromium = shutil.which("chromium")
    if chromium is None:
        unavailable("Debian's chromium is not installed (scripts/test-infra installs it)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed (pip install -e '.[test]')")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def test_try_page_predicts_what_a_person_types(served, browser, tmp_path):
    page = browser.new_page()
    page.goto(served + "/")
    page.wait_for_selector("#model option", state="attached")
    assert page.locator("#instances").input_value() == "livro azul"  # the recorded example
    page.fill("#instances", "livro de bolo\njogo de luta")
    page.click("#predict")
    page.wait_for_selector("#results:not([hidden]) td.prediction")
    assert page.locator("td.prediction").all_inner_texts() == ["livro", "game"]
    assert "%" in page.locator("#results tbody tr").first.inner_text()  # probabilities shown
    page.screenshot(path=str(tmp_path / "try.png"))


def test_try_page_shows_a_bad_line_as_an_error(served, browser):
    page = browser.new_page()
    page.goto(served + "/")
    page.wait_for_selector("#model option", state="attached")
    page.fill("#instances", "[1, 2")
    page.click("#predict")
    page.wait_for_selector("#error:not([hidden])")
    assert "not valid JSON" in page.locator("#error").inner_text()
    page.fill("#instances", "   ")
    page.click("#predict")
    assert "at least one instance" in page.locator("#error").inner_text()


def test_docs_page_lists_every_route_from_the_openapi_document(served, browser):
    spec = httpx.get(served + "/openapi.json").json()
    page = browser.new_page()
    page.goto(served + "/docs")
    page.wait_for_selector(".op")
    shown = page.locator(".op code.path").all_inner_texts()
    assert shown == list(spec["paths"])
    assert "/predizer_categoria" in shown
    assert "livro azul" in page.locator(".op pre").first.inner_text()
