"""Shared fixtures: the real Docker Engine, the two local registries, the base images.

`scripts/test-infra` starts them. A test whose component is missing is skipped with the
reason, except under CI (CI=true), where every component must be there and a missing one
fails the test.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import (
    AUTH_REGISTRY,
    BASE_IMAGE,
    CA_FOLDER,
    REGISTRY,
    engine_tags,
    run_cais,
    unavailable,
)


@pytest.fixture(scope="session")
def engine():
    from cais.engine.client import connect
    from cais.errors import CaisError

    try:
        client = connect(timeout=30)
        client.ping()
    except (CaisError, Exception) as exc:  # noqa: BLE001 - any failure means no engine
        unavailable(f"no Docker Engine: {exc}")
    return client


@pytest.fixture(scope="session")
def base_image(engine) -> str:
    import docker.errors

    try:
        engine.images.get(BASE_IMAGE)
    except docker.errors.ImageNotFound:
        unavailable(f"the base image {BASE_IMAGE} is not in the engine (run scripts/test-infra)")
    return BASE_IMAGE


def _registry_status(host: str) -> int | None:
    try:
        return httpx.get(f"http://{host}/v2/", timeout=5).status_code
    except httpx.HTTPError:
        return None


@pytest.fixture(scope="session")
def registry() -> str:
    if _registry_status(REGISTRY) != 200:
        unavailable(f"no open test registry at {REGISTRY}")
    return REGISTRY


@pytest.fixture(scope="session")
def auth_registry() -> str:
    if _registry_status(AUTH_REGISTRY) != 401:
        unavailable(f"no basic-auth test registry at {AUTH_REGISTRY}")
    return AUTH_REGISTRY


@pytest.fixture
def docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty docker config folder of the test's own, so logins never touch the user's."""
    folder = tmp_path / "docker-config"
    folder.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(folder))
    return folder


@pytest.fixture(scope="session")
def ca_certs() -> list[Path]:
    """The proxy CA certificates of this machine (containers reach PyPI only through it)."""
    return sorted(CA_FOLDER.glob("*.crt"))


@pytest.fixture
def image_name(engine) -> Iterator[str]:
    """A unique image name; every tag of it is removed after the test."""
    name = f"cais-test-{uuid.uuid4().hex[:10]}"
    yield name
    for tag in engine_tags(engine):
        if name in tag:  # only this test's tags: others (the base image) stay
            try:
                engine.images.remove(tag)
            except Exception:  # noqa: BLE001 - best-effort cleanup
                pass


@pytest.fixture
def container_name(engine) -> Iterator[str]:
    """A unique container name; the container is removed after the test."""
    name = f"cais-test-{uuid.uuid4().hex[:8]}"
    yield name
    try:
        engine.containers.get(name).remove(force=True)
    except Exception:  # noqa: BLE001 - already gone
        pass


@pytest.fixture
def cais():
    """Runs the `cais` command as a user would, in a fresh process."""
    return run_cais
