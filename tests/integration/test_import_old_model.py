"""`cais models import`: a pickle made years ago by scikit-learn 0.24.2 on Python 3.9 is adopted,
built into an image with its contemporary stack, and serves the same predictions.

The old pickle is made here, in the python:3.9-slim base image with scikit-learn 0.24.2
installed from PyPI; this Python has a scikit-learn that cannot unpickle it faithfully."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.support import LABELS, TITLES, free_port, post_when_up

pytestmark = pytest.mark.engine

OLD_STACK = ["scikit-learn==0.24.2", "numpy==1.20.3", "scipy==1.6.3", "joblib==1.0.1"]
QUESTIONS = ["livro de bolo", "jogo de luta", "batom rosa"]

MAKE_OLD_MODEL = f"""
import json, joblib, sklearn
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
model = make_pipeline(TfidfVectorizer(), LogisticRegression()).fit({TITLES!r}, {LABELS!r})
joblib.dump(model, "/out/old-model.joblib", compress=3)
json.dump({{"sklearn": sklearn.__version__,
           "predictions": model.predict({QUESTIONS!r}).tolist()}}, open("/out/made.json", "w"))
"""


@pytest.fixture(scope="module")
def old_model(engine, tmp_path_factory) -> tuple[Path, dict]:
    import docker.errors

    out = tmp_path_factory.mktemp("old-model")
    certs = "/usr/local/share/ca-certificates"
    script = (
        "cat /certs/*.crt > /tmp/ca.pem 2>/dev/null; "
        "[ -s /tmp/ca.pem ] && export PIP_CERT=/tmp/ca.pem; "
        f"pip install -q --no-cache-dir --disable-pip-version-check {' '.join(OLD_STACK)} "
        '&& python -c "$MAKE"'
    )
    try:
        engine.containers.run(
            "python:3.9-slim",
            ["sh", "-c", script],
            environment={"MAKE": MAKE_OLD_MODEL},
            volumes={str(out): {"bind": "/out"}, certs: {"bind": "/certs", "mode": "ro"}},
            remove=True,
        )
    except docker.errors.ContainerError as exc:
        pytest.fail(f"making the old model failed: {exc.stderr.decode(errors='replace')[-2000:]}")
    made = json.loads((out / "made.json").read_text())
    assert made["sklearn"] == "0.24.2"
    return out / "old-model.joblib", made


def test_an_old_pickle_is_imported_built_and_served(
    old_model, cais, engine, image_name, ca_certs, tmp_path
):
    file, made = old_model
    # No CAIS_PYTHONS: the Python is chosen among the base images the engine holds.
    env = {"CAIS_HOME": str(tmp_path / "home")}

    # Python 3.11 has no scikit-learn 0.24.2 wheel: asked for, it is refused, nothing saved.
    refused = cais("models", "import", str(file), "--name", "legacy", "--python", "3.11", env=env)
    assert refused.returncode == 1
    assert "scikit-learn" in refused.stderr and "3.11" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert not (tmp_path / "home" / "models" / "legacy").exists()

    imported = cais(
        "models", "import", str(file), "--name", "legacy",
        "--input-example", json.dumps(QUESTIONS[:1]), env=env,
    )  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    assert "scikit-learn 0.24.2" in imported.stderr
    assert "`python:3.9-slim`" in imported.stderr  # one of the base images this site has
    shown = json.loads(cais("models", "show", "legacy:1", env=env).stdout)
    assert shown["python"] == "3.9"
    packages = shown["packages"]
    assert packages["scikit-learn"] == "0.24.2"
    assert packages["numpy"].startswith("1.")  # the numpy 1.x of 2021, not numpy 2
    assert int(packages["numpy"].split(".")[1]) <= 20
    assert packages["scipy"].startswith("1.")
    assert shown["imported"]["sklearn_version"] == "0.24.2"

    tag = f"{image_name}:legacy"
    certs = [a for c in ca_certs for a in ("--ca-cert", str(c))]
    built = cais("build", "legacy:1", "-t", tag, *certs, env=env)
    assert built.returncode == 0, built.stderr
    assert "load legacy:1 in the image and predict its example" in built.stderr
    image = engine.images.get(tag)
    assert "PYTHON_VERSION=3.9" in " ".join(image.attrs["Config"]["Env"])

    port = free_port()
    ran = cais("run", "-d", "--name", image_name, "-p", f"127.0.0.1:{port}:8080", tag)
    assert ran.returncode == 0, ran.stderr
    try:
        answer = post_when_up(f"http://127.0.0.1:{port}/predict", {"instances": QUESTIONS})
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"] == made["predictions"]
        proba = httpx.post(
            f"http://127.0.0.1:{port}/predict?proba=true", json={"instances": QUESTIONS[:1]}
        )
        assert sorted(proba.json()["predictions"][0]) == sorted(set(LABELS))
    finally:
        engine.containers.get(image_name).remove(force=True)
