"""The shell the journeys run in."""

from __future__ import annotations

import docker.errors
import pytest

from tests.e2e.readme import Shell


@pytest.fixture
def shell(tmp_path, engine, image_name, ca_certs, docker_config):
    """A fresh folder with its own model store and docker config; the proxy's CA reaches the
    builds through `PIP_CERT`, as on a machine behind a corporate proxy."""
    folder = tmp_path / "work"
    folder.mkdir()
    bundle = tmp_path / "ca-bundle.pem"
    bundle.write_text("".join(c.read_text() for c in ca_certs))
    shell = Shell(folder, {"CAIS_HOME": str(tmp_path / "cais-home"), "PIP_CERT": str(bundle)})
    yield shell
    shell.stop()
    # The containers a README line left behind (a `cais run` without --rm), by the image
    # name they were started with: sparse, as other containers may come and go meanwhile.
    for container in engine.containers.list(all=True, sparse=True):
        if image_name in container.attrs.get("Image", ""):
            try:
                container.remove(force=True)
            except docker.errors.APIError:  # gone, or being removed by its own --rm
                try:
                    container.wait(condition="removed", timeout=60)
                except docker.errors.APIError:
                    pass
