"""cais.pysource: web apps, development servers and imports, read from source with ast."""

from __future__ import annotations

import ast

import pytest

from cais.pysource import find_web_app, lists_package, local_servers, program_imports


def app_of(source: str):
    return find_web_app("app.py", ast.parse(source))


@pytest.mark.parametrize(
    ("source", "framework", "attribute"),
    [
        ("from flask import Flask\napp = Flask(__name__)\n", "Flask", "app"),
        ("import flask\napplication = flask.Flask(__name__)\n", "Flask", "application"),
        ("import flask as f\napi: f.Flask = f.Flask('x')\n", "Flask", "api"),
        ("from fastapi import FastAPI\napp = FastAPI(title='t')\n", "FastAPI", "app"),
        ("import fastapi\napi = fastapi.FastAPI()\n", "FastAPI", "api"),
        ("from starlette.applications import Starlette\napp = Starlette()\n", "Starlette", "app"),
        ("from quart import Quart\napp = Quart(__name__)\n", "Quart", "app"),
        # `app` wins among several
        ("from flask import Flask\nadmin = Flask('a')\napp = Flask('b')\n", "Flask", "app"),
    ],
)
def test_an_app_at_the_top_level(source, framework, attribute):
    app = app_of(source)
    assert (app.framework, app.attribute, app.factory) == (framework, attribute, False)
    assert app.server == ("gunicorn" if framework == "Flask" else "uvicorn")
    assert app.module == "app"


@pytest.mark.parametrize("name", ["create_app", "make_app"])
def test_an_application_factory(name):
    source = f"from flask import Flask\ndef {name}(config=None):\n    return Flask(__name__)\n"
    app = app_of(source)
    assert (app.attribute, app.factory, app.line) == (name, True, 2)


@pytest.mark.parametrize(
    "source",
    [
        "print('hello')\n",
        "from flask import Flask\n",  # imported, never made
        "from flask import Flask\ndef create_app(config):\n    return Flask(__name__)\n",
        "from flask import Flask\ndef build():\n    return Flask(__name__)\n",  # not a factory name
        "def create_app():\n    return object()\n",
        "class Flask: pass\napp = Flask()\n",  # not flask's
        "from mylib import Flask\napp = Flask()\n",
    ],
)
def test_no_app(source):
    assert app_of(source) is None


@pytest.mark.parametrize(
    ("source", "line", "host"),
    [
        ("from flask import Flask\napp = Flask(__name__)\napp.run()\n", 3, "127.0.0.1"),
        (
            "from flask import Flask\napp = Flask(__name__)\n"
            "if __name__ == '__main__':\n    app.run(debug=True, port=5000)\n",
            4,
            "127.0.0.1",
        ),
        ("from web import app\napp.run('localhost', 8000)\n", 2, "localhost"),
        ("from web import app\napp.run(host='::1')\n", 2, "::1"),
        ("import uvicorn\nfrom web import api\nuvicorn.run(api)\n", 3, "127.0.0.1"),
        ("from uvicorn import run\nrun('web:app', host='127.0.0.1')\n", 2, "127.0.0.1"),
    ],
)
def test_servers_only_the_container_reaches(source, line, host):
    [server] = local_servers("main.py", ast.parse(source))
    assert (server.line, server.host) == (line, host)
    text = str(server)
    assert text.startswith(f"`main.py` line {line}: `")
    assert 'pass `host="0.0.0.0"`' in text


@pytest.mark.parametrize(
    "source",
    [
        "from web import app\napp.run(host='0.0.0.0')\n",
        "from web import app\napp.run('0.0.0.0', 8000)\n",
        "import os\nfrom web import app\napp.run(host=os.environ['HOST'])\n",  # known at run time
        "from web import app\napp.run(**settings)\n",
        "import uvicorn\nuvicorn.run('web:app', host='0.0.0.0', port=8000)\n",
        "import threading\nthreading.Thread(target=print).run()\n",  # not a server
    ],
)
def test_servers_every_interface_reaches(source):
    assert local_servers("main.py", ast.parse(source)) == []


def test_program_imports_leave_out_the_standard_library_and_the_project(tmp_path, write):
    write(
        tmp_path,
        {
            "main.py": "import os, json\nfrom helpers import tool\nfrom . import x\nimport pkg.sub\n",
            "helpers.py": "import numpy as np\nfrom collections import Counter\n",
            "pkg/__init__.py": "import requests.adapters\n",
            "tests/test_main.py": "import pytest\n",
            "test_helpers.py": "import hypothesis\n",
            ".venv/lib/site.py": "import setuptools\n",
        },
    )
    assert program_imports(tmp_path) == {"numpy": "helpers.py", "requests": "pkg/__init__.py"}


def test_program_imports_of_a_file_that_does_not_parse(tmp_path, write):
    write(tmp_path, {"main.py": "import os\n", "broken.py": "def (:\n"})
    assert program_imports(tmp_path) is None


@pytest.mark.parametrize(
    ("lines", "package", "listed"),
    [
        (["flask", "gunicorn==27.0.1"], "gunicorn", True),
        (["Gunicorn>=20 ; python_version > '3.8'"], "gunicorn", True),
        (["uvicorn[standard]"], "uvicorn", True),
        (["fastapi[standard]==0.115"], "uvicorn", True),
        (["fastapi"], "uvicorn", False),
        (["-r base.txt", "# gunicorn", "--index-url x"], "gunicorn", False),
        (["gunicorn-extras"], "gunicorn", False),
    ],
)
def test_lists_package(tmp_path, lines, package, listed):
    assert lists_package(tuple(lines), package) is listed
    file = tmp_path / "requirements.txt"
    file.write_text("\n".join(lines) + "\n")
    assert lists_package(file, package) is listed
