"""`cais.server.RUNTIME_IMPORTS`, which a serving image byte-compiles ahead of time, must cover
what serving imports from the server's packages: a module it misses is compiled again by
every worker at every start (the image's user cannot write .pyc files)."""

from __future__ import annotations

import json
import subprocess
import sys

SERVE_AND_REPORT = """
import asyncio, importlib, json, sys
from cais.server import RUNTIME_IMPORTS
for name in RUNTIME_IMPORTS:
    importlib.import_module(name)
before = set(sys.modules)

import uvicorn
import cais.server.__main__, cais.server.routes, cais.server.workers
from cais.server.app import create_app
from cais.server.models import ModelSet
from starlette.concurrency import run_in_threadpool

app = create_app(ModelSet())
config = uvicorn.Config(app, log_level="info")
config.load()
factory = config.get_loop_factory() if hasattr(config, "get_loop_factory") else None
loop = factory() if factory else asyncio.new_event_loop()
loop.run_until_complete(run_in_threadpool(lambda: None))
packages = set(sys.argv[1:])
print(json.dumps(sorted(m for m in set(sys.modules) - before if m.split(".")[0] in packages)))
"""

# The server's own packages (not the model's, nor the test client's).
PACKAGES = [
    "uvicorn", "starlette", "anyio", "pydantic", "pydantic_core", "annotated_types",
    "typing_inspection", "prometheus_client", "joblib", "httptools", "h11", "click",
]  # fmt: skip


def test_runtime_imports_cover_what_serving_imports():
    done = subprocess.run(
        [sys.executable, "-c", SERVE_AND_REPORT, *PACKAGES],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    missed = json.loads(done.stdout.splitlines()[-1])
    assert missed == [], f"add these to RUNTIME_IMPORTS (or a parent of theirs): {missed}"


SERVE_FROM_THE_COPY = """
import sys
sys.path.insert(0, sys.argv[1])
import cais, cais.server.__main__, cais.server.workers, cais.server.batching
from cais.server.app import create_app
from cais.server.models import ModelSet
assert cais.__file__.startswith(sys.argv[1]), cais.__file__
assert cais.Predictor and cais.load_model
create_app(ModelSet())
print("served from the copy")
"""


def test_the_copy_of_cais_in_a_serving_image_holds_what_serving_imports(tmp_path):
    from cais.build import copy_runtime

    copy_runtime(tmp_path / "cais")
    assert not (tmp_path / "cais" / "cli").exists()  # the command line stays out
    assert not (tmp_path / "cais" / "builders").exists()
    assert not (tmp_path / "cais" / "bundle" / "pins.py").exists()
    top = sorted(p.name for p in (tmp_path / "cais").iterdir())
    assert top == ["__init__.py", "bundle", "errors.py", "models.py", "server"]
    assert (tmp_path / "cais" / "server" / "__main__.py").exists()
    done = subprocess.run(
        [sys.executable, "-c", SERVE_FROM_THE_COPY, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "served from the copy"
