"""The README's web-app journey as a reader types it (tests/e2e/readme.py):
init --template flask → dockerfile → build → run -d -p HOST:8000 → curl → stop; and the
Dockerfile `cais dockerfile` writes, built by a plain `DOCKER_BUILDKIT=1 docker build`."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from cais.builders.buildkit import find_buildkit_cli
from cais.builders.pip_settings import PIP_CA_SECRET, PIP_CONF_SECRET
from tests.e2e.readme import WEB, readme_block, replaced
from tests.support import free_port, get_when_up, unavailable

pytestmark = [pytest.mark.engine, pytest.mark.slow]


def test_flask_journey(shell, engine, base_image, image_name, container_name):
    port = free_port()
    lines = replaced(
        readme_block(WEB),
        [
            (" web:0.1.0", f" {image_name}:0.1.0"),
            ("--name web", f"--name {container_name}"),
            ("cais stop web", f"cais stop {container_name}"),
            ("8080:8000", f"{port}:8000"),
            # A reader types the next line after gunicorn has started; a script must wait.
            (
                "curl 'http://127.0.0.1:8080/",
                f"curl -sS --retry 60 --retry-all-errors --retry-delay 1 'http://127.0.0.1:{port}/",
            ),
        ],
    )
    init, dockerfile, build, run, curl, stop = (shell.run(line) for line in lines)

    assert (shell.folder / "web" / "app.py").is_file()
    assert 'CMD ["gunicorn", "--bind", "0.0.0.0:8000", "app:app"]' in dockerfile.stdout
    assert "EXPOSE 8000" in dockerfile.stdout
    image = f"{image_name}:0.1.0"
    assert build.stdout.strip() == image
    assert "`app.py` defines a Flask app: gunicorn serves it on port 8000" in build.stderr
    assert f"run it: `cais run -p 8000:8000 {image}`" in build.stderr
    assert json.loads(curl.stdout) == {"message": "Hello, Ana!"}
    logs = shell.run(f"cais logs {container_name}")
    assert "Listening at: http://0.0.0.0:8000" in logs.stdout + logs.stderr
    assert engine.containers.get(container_name).status == "exited"


def test_the_dockerfile_cais_writes_builds_with_plain_docker(
    tmp_path, cais, engine, base_image, image_name, ca_certs, container_name
):
    cli = find_buildkit_cli()  # Debian's 20.10 /usr/bin/docker here: `docker build`
    if cli is None:
        unavailable("no docker CLI that can build with BuildKit")
    build = [cli.path, "buildx", "build", "--load"] if cli.buildx else [cli.path, "build"]
    project = tmp_path / "web"
    assert cais("init", str(project), "--template", "flask").returncode == 0
    dockerfile = tmp_path / "Dockerfile"
    secrets: list[str] = []
    options: list[str] = []
    if ca_certs:
        # The proxy's certificates reach pip as BuildKit secrets, as `cais build` passes them.
        bundle = tmp_path / "ca.pem"
        bundle.write_bytes(b"".join(c.read_bytes() for c in ca_certs))
        conf = tmp_path / "pip.conf"
        conf.write_text(f"[global]\ncert = /run/secrets/{PIP_CA_SECRET}\n")
        secrets = [f"id={PIP_CONF_SECRET},src={conf}", f"id={PIP_CA_SECRET},src={bundle}"]
        options = ["--ca-cert", str(ca_certs[0])]
    written = cais("dockerfile", str(project), "-o", str(dockerfile), *options)
    assert written.returncode == 0, written.stderr

    tag = f"{image_name}:plain"
    built = subprocess.run(
        [*build, "-f", str(dockerfile), "-t", tag, "--progress=plain"]
        + [a for s in secrets for a in ("--secret", s)]
        + [str(project)],
        env={**os.environ, "DOCKER_BUILDKIT": "1"},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert built.returncode == 0, built.stderr[-3000:]

    port = free_port()
    engine.containers.run(tag, name=container_name, detach=True, ports={"8000/tcp": port})
    answer = get_when_up(f"http://127.0.0.1:{port}/")
    assert answer.json() == {"message": "Hello, world!"}
