"""Fixtures the integration tests share."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.support import text_model


@pytest.fixture(scope="session")
def pushed_model(tmp_path_factory, engine, base_image, registry):
    """A saved model (a unique name), its serving image built by `cais build` and pushed to
    the open registry, so that the engine knows its digest: (reference, environment).
    Built once for the whole run: tests read it, run it and deploy it, and never change it
    (a test that needs to change a model saves one of its own)."""
    import cais as cais_api
    from tests.support import CA_FOLDER, run_cais

    home = tmp_path_factory.mktemp("cais-home")
    name = f"cais-test-{uuid.uuid4().hex[:8]}"
    reference = cais_api.save_model(text_model(), name, input_example=["livro azul"], home=home)
    certs = [a for c in sorted(CA_FOLDER.glob("*.crt")) for a in ("--ca-cert", str(c))]
    env = {"CAIS_HOME": str(home)}
    built = run_cais("build", reference, *certs, env=env)
    assert built.returncode == 0, built.stderr
    pushed = f"{registry}/{name}:1"
    engine.images.get(reference).tag(f"{registry}/{name}", tag="1")
    for line in engine.api.push(f"{registry}/{name}", tag="1", stream=True, decode=True):
        assert "error" not in line, line
    yield reference, env
    for tag in (reference, pushed):
        try:
            engine.images.remove(tag, force=True)
        except Exception:  # noqa: BLE001 - best-effort cleanup
            pass


@pytest.fixture(scope="session")
def proxy(ca_certs) -> list[str]:
    """`--ca-cert` options for the proxy's CA certificates, through which uv reaches PyPI."""
    if not ca_certs:
        pytest.skip("no proxy CA on this machine: neither uv nor pip in a build can reach PyPI")
    return [arg for cert in ca_certs for arg in ("--ca-cert", str(cert))]


@pytest.fixture(scope="session")
def layer_cache(tmp_path_factory) -> Path:
    """One `CAIS_CACHE` for the run's OCI builds that prove nothing about the cache: the first
    build of a stack fills it, the next builds of that stack read its layers instead of
    installing and compiling them again (the blob store writes atomically, so builds at the same
    time may share it). A test about what the cache holds, or a cold build, keeps its own."""
    return tmp_path_factory.mktemp("layer-cache")
