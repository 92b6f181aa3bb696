"""cais.bundle.pins: uv resolving against a small package index served here (the JSON simple
API of PEP 691 with PEP 700 upload times, and real wheels), so every case is exact."""

from __future__ import annotations

import io
import json
import threading
import zipfile
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from cais.bundle.pins import (
    PYPI_SIMPLE,
    Index,
    Target,
    choose_python,
    compile_pins,
    default_pythons,
    release_date,
)
from cais.errors import StackError
from tests.support import free_port

CP39 = "cp39-cp39-manylinux_2_17_x86_64.manylinux2014_x86_64"
CP311 = "cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64"
ARM39 = "cp39-cp39-manylinux_2_17_aarch64.manylinux2014_aarch64"
PURE = "py3-none-any"

# name → version → (files: (tag, upload time), Requires-Dist). A small history of the
# scikit-learn stack, with the upload times PyPI has for it.
PROJECTS: dict[str, dict[str, tuple[list[tuple[str, str]], list[str]]]] = {
    "scikit-learn": {
        "0.24.2": (
            [(CP39, "2021-04-28T11:18:29Z"), (ARM39, "2021-04-28T12:40:00Z")],
            ["numpy>=1.13.3", "scipy>=0.19.1", "joblib>=0.11", "threadpoolctl>=2.0.0"],
        ),
        "1.3.2": (
            [(CP39, "2023-10-23T10:00:00Z"), (CP311, "2023-10-23T10:05:00Z")],
            ["numpy>=1.17.3", "scipy>=1.5.0", "joblib>=1.1.1", "threadpoolctl>=2.0.0"],
        ),
    },
    "numpy": {
        "1.19.5": ([(CP39, "2021-01-05T00:00:00Z"), (ARM39, "2021-01-05T00:00:00Z")], []),
        "1.20.2": ([(CP39, "2021-03-28T00:00:00Z")], []),  # no aarch64 wheels here
        "1.20.3": ([(CP39, "2021-05-10T00:00:00Z")], []),
        "1.26.0": ([(CP39, "2023-09-16T00:00:00Z"), (CP311, "2023-09-16T00:00:00Z")], []),
    },
    "scipy": {
        "1.6.3": (
            [(CP39, "2021-04-25T00:00:00Z"), (ARM39, "2021-04-25T00:00:00Z")],
            ["numpy>=1.16.5"],
        ),
        "1.7.0": ([(CP39, "2021-06-20T00:00:00Z")], ["numpy>=1.16.5"]),
        "1.11.3": (
            [(CP39, "2023-09-27T00:00:00Z"), (CP311, "2023-09-27T00:00:00Z")],
            ["numpy>=1.21.6"],
        ),
    },
    "joblib": {
        "1.0.1": ([(PURE, "2021-02-09T00:00:00Z")], []),
        "1.3.2": ([(PURE, "2023-08-08T00:00:00Z")], []),
    },
    "threadpoolctl": {
        "2.1.0": ([(PURE, "2020-05-29T00:00:00Z")], []),
        "3.2.0": ([(PURE, "2023-07-13T00:00:00Z")], []),
    },
    "Unidecode": {"1.2.0": ([(PURE, "2021-02-05T00:00:00Z")], [])},
    # Wheels for a glibc newer than the one cais targets only.
    "newglibc": {"1.0": ([("cp39-cp39-manylinux_2_34_x86_64", "2021-01-01T00:00:00Z")], [])},
}


def metadata(name: str, version: str, requires: list[str]) -> bytes:
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    lines += [f"Requires-Dist: {r}" for r in requires]
    return ("\n".join(lines) + "\n").encode()


def wheel(name: str, version: str, tag: str, requires: list[str]) -> tuple[str, bytes]:
    stem = f"{name.replace('-', '_')}-{version}"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(f"{stem}.dist-info/METADATA", metadata(name, version, requires))
        archive.writestr(f"{stem}.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\n")
        archive.writestr(f"{stem}.dist-info/RECORD", "")
    return f"{stem}-{tag}.whl", buffer.getvalue()


class FakeIndex:
    """A package index on a local port: `/simple/NAME/` in JSON, the wheels under `/files/`."""

    def __init__(self, projects=PROJECTS, *, upload_times: bool = True, json_api: bool = True):
        self.routes: dict[str, tuple[str, bytes]] = {}
        for name, versions in projects.items():
            files = []
            for version, (uploads, requires) in versions.items():
                for tag, uploaded in uploads:
                    filename, content = wheel(name, version, tag, requires)
                    self.routes[f"/files/{filename}"] = ("application/octet-stream", content)
                    self.routes[f"/files/{filename}.metadata"] = (
                        "text/plain",
                        metadata(name, version, requires),
                    )
                    entry = {"filename": filename, "url": f"/files/{filename}", "hashes": {}}
                    entry["core-metadata"] = True
                    if upload_times:
                        entry["upload-time"] = uploaded
                    files.append(entry)
            document = {"meta": {"api-version": "1.1"}, "name": name, "files": files}
            key = f"/simple/{name.lower()}/"
            if json_api:
                self.routes[key] = ("application/vnd.pypi.simple.v1+json", json.dumps(document))
            else:
                self.routes[key] = ("text/html", b"<html><body></body></html>")
        self.requests: list[str] = []
        routes, requests = self.routes, self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                requests.append(self.path)
                found = routes.get(self.path)
                if found is None:
                    self.send_error(404)
                    return
                kind, body = found
                body = body.encode() if isinstance(body, str) else body
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/simple"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Index:
        self.thread.start()
        return Index(self.url)

    def __exit__(self, *exc_info) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(autouse=True)
def no_uv_retries(monkeypatch):
    monkeypatch.setenv("UV_HTTP_RETRIES", "0")  # a refused connection fails at once


@pytest.fixture(scope="module")
def index():
    with FakeIndex() as index:
        yield index


def when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


PY39 = Target("3.9")


# --- the stack of a date ---------------------------------------------------------------------


def test_a_pinned_release_gets_its_contemporary_stack(index):
    cutoff = release_date("scikit-learn", "0.24.2", index=index)
    stack = compile_pins({"scikit-learn": "0.24.2"}, PY39, cutoff=cutoff, index=index)
    assert stack == {
        "joblib": "1.0.1",
        "numpy": "1.20.2",  # 1.20.3 came out after 0.24.2
        "scikit-learn": "0.24.2",
        "scipy": "1.6.3",
        "threadpoolctl": "2.1.0",
    }


def test_a_release_date_is_its_earliest_upload(index):
    assert release_date("scikit-learn", "0.24.2", index=index) == when("2021-04-28T11:18:29Z")
    assert release_date("Scikit_Learn", "0.24.2", index=index).year == 2021  # any spelling


def test_a_pin_is_taken_whenever_its_files_came_out(index):
    """The cutoff limits what is chosen, not what is pinned: scikit-learn 0.24.2 is kept
    with a cutoff before it, and its dependencies are those of the cutoff."""
    stack = compile_pins(
        {"scikit-learn": "0.24.2"}, PY39, cutoff=when("2021-04-26T00:00:00Z"), index=index
    )
    assert stack["scikit-learn"] == "0.24.2"  # uploaded on April 28th
    assert stack["numpy"] == "1.20.2"
    assert stack["scipy"] == "1.6.3"
    # What is not pinned is held to the date: no scipy had come out by April 1st here.
    with pytest.raises(StackError, match="no versions of scipy"):
        compile_pins({"scikit-learn": "0.24.2"}, PY39, cutoff=when("2021-04-01T00:00:00Z"), index=index)  # fmt: skip
    # A timezone-less cutoff is UTC.
    assert compile_pins({"numpy": None}, PY39, cutoff=datetime(2021, 4, 1), index=index) == {
        "numpy": "1.20.2"
    }


def test_without_a_cutoff_the_newest_release_wins(index):
    stack = compile_pins({"scikit-learn": None}, PY39, index=index)
    assert stack["scikit-learn"] == "1.3.2"
    assert stack["numpy"] == "1.26.0"


def test_the_machine_chooses_the_wheels(index):
    cutoff = when("2021-04-28T11:18:29Z")
    stack = compile_pins({"scikit-learn": "0.24.2"}, Target("3.9", "arm64"), cutoff=cutoff, index=index)  # fmt: skip
    assert stack["numpy"] == "1.19.5"  # 1.20.2 has no aarch64 wheels


def test_the_target_is_named_as_uv_names_platforms():
    assert Target("3.9", "amd64").platform == "x86_64-manylinux_2_31"
    assert Target("3.11", "aarch64").where == "Python 3.11 on linux/aarch64"


def test_names_come_back_as_uv_writes_them(index):
    assert compile_pins({"Unidecode": None}, PY39, index=index) == {"unidecode": "1.2.0"}


# --- when nothing fits ---------------------------------------------------------------------


def test_a_pin_without_a_wheel_for_the_python_is_named(index):
    with pytest.raises(StackError) as caught:
        compile_pins({"scikit-learn": "0.24.2"}, Target("3.11"), index=index)
    message = caught.value.message
    assert message.startswith(
        "`scikit-learn==0.24.2` cannot be installed from wheels on Python 3.11 on linux/x86_64: "
    )
    assert "scikit-learn==0.24.2 has no" in message
    assert "\n" not in message and not message.endswith(".")
    assert "--python" in caught.value.hint


@pytest.mark.parametrize(
    ("pins", "named"),
    [
        ({"newglibc": None}, "newglibc"),  # a glibc newer than the base images'
        ({"nothere": None}, "nothere"),  # no such package
        ({"numpy": "1.20.2", "scipy": "1.11.3"}, "numpy"),  # conflicting pins
        ({"scipy": "9.9"}, "scipy"),  # no such version
    ],
)
def test_what_cannot_be_installed_is_named(index, pins, named):
    with pytest.raises(StackError) as caught:
        compile_pins(pins, PY39, index=index)
    message = caught.value.message
    assert "cannot be installed from wheels on Python 3.9" in message
    assert f"`{named}" in message.partition(":")[0]  # the packages asked for, first
    assert named in message.partition(":")[2]  # and uv's reason names the culprit


def test_uv_s_explanation_becomes_one_line_without_its_hints_and_warnings():
    from cais.uv import reason

    stderr = """warning: The requested Python version 3.9 is not available
  (3.11.7 will be used to build dependencies)
  × No solution found when resolving dependencies:
  ╰─▶ Because numpy==9 has no wheels and you require numpy==9, we can
      conclude that your requirements are unsatisfiable.

      hint: Wheels are required for `numpy` because building from source is
      disabled for all packages
"""
    assert reason(stderr) == (
        "because numpy==9 has no wheels and you require numpy==9, we can conclude that your "
        "requirements are unsatisfiable"
    )
    network = "error: Request failed after 3 retries\n  cause: Failed to fetch: URL\n"
    assert reason(network) == "Request failed after 3 retries: Failed to fetch: URL"
    assert reason("") == "uv failed without saying why"


@pytest.mark.parametrize("name", ["scikit learn", "numpy>=1", "-r other.txt", ""])
def test_pins_are_package_names(index, name):
    with pytest.raises(StackError, match="is not a package name"):
        compile_pins({name: None}, PY39, index=index)


def test_a_bad_python_is_refused():
    for python in ("3", "three", "3.9.1", "2.7.x"):
        with pytest.raises(StackError, match="not a Python version"):
            Target(python)


# --- choosing the Python ---------------------------------------------------------------------


def test_choose_python_takes_the_newest_that_works(index):
    cutoff = when("2021-04-28T11:18:29Z")
    python, stack = choose_python(
        {"scikit-learn": "0.24.2"}, ["3.9", "3.11", "3.9"], cutoff=cutoff, index=index
    )
    assert python == "3.9" and stack["numpy"] == "1.20.2"
    python, stack = choose_python({"scikit-learn": "1.3.2"}, ["3.9", "3.11"], index=index)
    assert python == "3.11" and stack["scikit-learn"] == "1.3.2"
    python, _ = choose_python({"scikit-learn": "1.3.2"}, ["3.9", "3.10", "3.11"], index=index)
    assert python == "3.11"  # 3.11 sorts after 3.10, as a version


@pytest.mark.parametrize(
    ("pins", "prefer", "chosen"),
    [
        ({"scikit-learn": "1.3.2"}, "3.9", "3.9"),  # preferred over the newer 3.11
        ({"scikit-learn": "1.3.2"}, "3.12", "3.11"),  # not a candidate: the newest wins
        ({"scikit-learn": "1.3.2"}, None, "3.11"),
        ({"scikit-learn": "0.24.2"}, "3.11", "3.9"),  # no wheels there: the next one
    ],
)
def test_choose_python_tries_the_preferred_python_first(index, pins, prefer, chosen):
    python, stack = choose_python(pins, ["3.9", "3.11"], prefer=prefer, index=index)
    assert python == chosen
    assert stack["scikit-learn"] == pins["scikit-learn"]


def test_choose_python_names_every_python_tried(index):
    with pytest.raises(StackError) as caught:
        choose_python({"scikit-learn": "0.24.2"}, ["3.11", "3.12"], index=index)
    message = caught.value.message
    assert message.startswith(
        "No Python among 3.12, 3.11 installs `scikit-learn==0.24.2` from wheels on linux/x86_64"
    )
    assert "(3.12: " in message and "; 3.11: " in message
    assert "CAIS_PYTHONS" in caught.value.hint
    with pytest.raises(StackError, match="No Python version was given"):
        choose_python({"numpy": None}, [], index=index)


def test_an_index_that_does_not_answer_stops_the_search_with_its_cause():
    index = Index(f"http://127.0.0.1:{free_port()}/simple")
    with pytest.raises(StackError) as caught:
        choose_python({"numpy": None}, ["3.9", "3.11"], index=index)
    message = caught.value.message
    assert message.startswith("uv could not resolve for Python 3.11 on linux/x86_64: ")
    assert "Connection refused" in message
    assert "PIP_INDEX_URL" in caught.value.hint


# --- release dates ---------------------------------------------------------------------------


def test_release_date_errors_are_one_sentence_each(index):
    cases = [
        (lambda: release_date("nothere", "1.0", index=index), "has no package `nothere`"),
        (lambda: release_date("numpy", "1.0.0", index=index), "has no release 1.0.0 of numpy"),
        (lambda: release_date("numpy", "one", index=index), "`one` is not a version of numpy"),
    ]
    unreachable = Index(f"http://127.0.0.1:{free_port()}/simple")
    cases.append(
        (
            lambda: release_date("numpy", "1.20.2", index=unreachable),
            "The package index at 127.0.0.1 did not answer about numpy",
        )
    )
    for call, says in cases:
        with pytest.raises(StackError, match=says) as caught:
            call()
        assert "\n" not in caught.value.message


def test_an_index_without_json_or_upload_times_says_what_dates_need():
    with FakeIndex(json_api=False) as index, pytest.raises(StackError) as caught:
        release_date("numpy", "1.20.2", index=index)
    assert "without its JSON API about numpy" in caught.value.message
    assert "upload times" in caught.value.hint
    with FakeIndex(upload_times=False) as index, pytest.raises(StackError) as caught:
        release_date("numpy", "1.20.2", index=index)
    assert "does not say when numpy 1.20.2 was uploaded" in caught.value.message


# --- settings ----------------------------------------------------------------------------------


def test_the_index_comes_from_pip_then_uv_settings(monkeypatch, tmp_path, make_cert):
    assert Index.from_settings() == Index(PYPI_SIMPLE)
    monkeypatch.setenv("UV_INDEX_URL", "https://uv.test/simple/")
    assert Index.from_settings().url == "https://uv.test/simple"
    monkeypatch.setenv("UV_DEFAULT_INDEX", "https://default.test/simple")
    assert Index.from_settings().url == "https://default.test/simple"
    monkeypatch.setenv("PIP_INDEX_URL", "https://pip.test/simple")
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "https://extra.test/simple")
    ca = tmp_path / "proxy.pem"
    ca.write_bytes(make_cert("proxy"))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    index = Index.from_settings()
    assert (index.url, index.extra_urls) == (
        "https://pip.test/simple",
        ("https://extra.test/simple",),
    )
    assert ca.read_bytes().strip() in index.ca_bundle
    assert index.host == "pip.test"


def test_uv_gets_the_index_and_ca_bundle_for_the_run_only(monkeypatch):
    from cais.uv import environment

    monkeypatch.setenv("UV_INDEX_URL", "https://other.test/simple")
    index = Index("https://a.test/simple", ("https://b.test/simple",), b"PEM")
    with environment(index) as env:
        bundle = Path(env["SSL_CERT_FILE"])
        assert bundle.read_bytes() == b"PEM"
        assert env["UV_PYTHON_DOWNLOADS"] == "never"
        assert env["UV_DEFAULT_INDEX"] == "https://a.test/simple"
        assert env["UV_INDEX"] == "https://b.test/simple"
        assert "UV_INDEX_URL" not in env  # one answer, not two that conflict
    assert not bundle.exists()


def test_uv_settings_join_pip_s(monkeypatch):
    monkeypatch.setenv("UV_INDEX", "https://one.test/simple https://two.test/simple")
    monkeypatch.setenv("UV_EXTRA_INDEX_URL", "https://two.test/simple")
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "https://pip.test/simple")
    assert Index.from_settings().extra_urls == (
        "https://pip.test/simple",
        "https://one.test/simple",
        "https://two.test/simple",
    )


def test_index_credentials_are_never_shown():
    index = Index(f"http://user:s3cret@127.0.0.1:{free_port()}/simple")
    for call in (
        lambda: release_date("numpy", "1.20.2", index=index),
        lambda: compile_pins({"numpy": None}, PY39, index=index),
    ):
        with pytest.raises(StackError) as caught:
            call()
        assert "s3cret" not in caught.value.message + (caught.value.hint or "")


def test_default_pythons(monkeypatch):
    monkeypatch.delenv("CAIS_PYTHONS", raising=False)
    assert default_pythons() is None
    monkeypatch.setenv("CAIS_PYTHONS", " 3.9, 3.11,3.9 ")
    assert default_pythons() == ["3.9", "3.11"]


@pytest.mark.parametrize("value", ["3.9,three", "3.9.1", "", "3.9,,3.11"])
def test_bad_cais_pythons_are_refused(monkeypatch, value):
    monkeypatch.setenv("CAIS_PYTHONS", value)
    with pytest.raises(StackError, match="CAIS_PYTHONS holds") as caught:
        default_pythons()
    assert "3.9,3.11" in caught.value.hint
