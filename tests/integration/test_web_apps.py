"""Web apps and standard-library programs built on the real engine and run."""

from __future__ import annotations

import pytest

from tests.support import free_port, get_when_up

pytestmark = pytest.mark.engine

FASTAPI_APP = """\
from fastapi import FastAPI


def create_app():
    app = FastAPI()

    @app.get("/items/{number}")
    def item(number: int):
        return {"number": number, "double": 2 * number}

    return app


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(create_app(), factory=False)
"""


def _ca_args(ca_certs) -> list[str]:
    return [a for c in ca_certs for a in ("--ca-cert", str(c))]


# The OCI builder installs the server on the host: its console script must start the image's
# Python.
@pytest.mark.parametrize("builder", ["classic", "oci"])
def test_a_fastapi_factory_without_uvicorn_in_its_requirements(
    tmp_path, cais, engine, base_image, image_name, ca_certs, container_name, builder
):
    project = tmp_path / "api"
    project.mkdir()
    (project / "main.py").write_text(FASTAPI_APP)
    (project / "requirements.txt").write_text("fastapi\n")
    (project / "cais.yaml").write_text('python: "3.11"\nports: [8080]\n')
    tag = f"{image_name}:1"
    # The classic builder installs in a throw-away stage (the journey test builds with
    # BuildKit): the added server must reach the image from there too.
    build = cais("build", str(project), "-t", tag, "--builder", builder, *_ca_args(ca_certs))
    assert build.returncode == 0, build.stderr
    assert f"with {builder}" in build.stderr
    assert "`uvicorn` is not in requirements.txt: the image installs its newest" in build.stderr
    assert f"run it: `cais run -p 8080:8080 {tag}`" in build.stderr
    config = engine.images.get(tag).attrs["Config"]
    assert config["Cmd"] == [
        "uvicorn",
        "main:create_app",
        "--host",
        "0.0.0.0",
        "--port",
        "8080",
        "--factory",
    ]
    assert list(config["ExposedPorts"]) == ["8080/tcp"]

    port = free_port()
    run = cais("run", "-d", "--name", container_name, "-p", f"{port}:8080", tag)
    assert run.returncode == 0, run.stderr
    answer = get_when_up(f"http://127.0.0.1:{port}/items/21")
    assert answer.json() == {"number": 21, "double": 42}


@pytest.mark.parametrize("builder", ["auto", "oci"])
def test_a_script_of_the_standard_library_builds_without_requirements(
    tmp_path, cais, engine, base_image, image_name, builder
):
    project = tmp_path / "plain"
    project.mkdir()
    (project / "script.py").write_text(
        "import json, platform\nprint(json.dumps({'python': platform.python_version()[:4]}))\n"
    )
    (project / "cais.yaml").write_text('python: "3.11"\n')
    tag = f"{image_name}:1"
    build = cais("build", str(project), "-t", tag, "--builder", builder)
    assert build.returncode == 0, build.stderr
    history = " ".join(step["CreatedBy"] for step in engine.images.get(tag).history())
    assert "pip install" not in history
    ran = cais("run", "--rm", tag)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == '{"python": "3.11"}'
