"""The server's pages in a real headless browser (Debian's chromium, driven by Playwright)."""

from __future__ import annotations

import shutil

import httpx
import pytest

from tests.support import serve, text_model, unavailable

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
    import cais

    home = tmp_path_factory.mktemp("home")
    folder = tmp_path_factory.mktemp("project")
    (folder / "cais.yaml").write_text(
        "routes:\n  - path: /predizer_categoria\n    input: descricao\n    output: categoria\n"
    )
    cais.save_model(text_model(), "products", input_example=["livro azul"], home=home)
    process, base = serve("products", home=home, cwd=folder)
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
