"""cais.engine.client.engine_errors: every Docker SDK error becomes a cais error."""

from __future__ import annotations

import inspect

import docker
import docker.errors
import pytest
import requests
import requests.exceptions

from cais.engine.client import connect, engine_errors, engine_host
from cais.errors import (
    CaisError,
    ContainerNotFound,
    EngineError,
    ImageNotFound,
    PlanError,
    RegistryError,
)


def response(status: int, url: str = "http+docker://localhost/v1.41/x") -> requests.Response:
    resp = requests.Response()
    resp.status_code = status
    resp.reason = {404: "Not Found", 409: "Conflict", 500: "Internal Server Error"}.get(status, "")
    resp.url = url
    return resp


# How to make one of each upstream class; a class missing here fails the test below.
SAMPLES = {
    "APIError": lambda: docker.errors.APIError("boom", response(400), explanation="bad parameter"),
    "BuildError": lambda: docker.errors.BuildError("step failed", build_log=iter([])),
    "ContainerError": lambda: docker.errors.ContainerError(
        "c1", 1, "python x.py", "hello:1", b"Traceback: oops"
    ),
    "ContextAlreadyExists": lambda: docker.errors.ContextAlreadyExists("ctx"),
    "ContextException": lambda: docker.errors.ContextException("context broken"),
    "ContextNotFound": lambda: docker.errors.ContextNotFound("ctx"),
    "DeprecatedMethod": lambda: docker.errors.DeprecatedMethod("old"),
    "DockerException": lambda: docker.errors.DockerException("generic"),
    "ImageLoadError": lambda: docker.errors.ImageLoadError("bad tar"),
    "ImageNotFound": lambda: docker.errors.ImageNotFound(
        "No such image: x", response(404), explanation="No such image: x"
    ),
    "InvalidArgument": lambda: docker.errors.InvalidArgument("bad argument"),
    "InvalidConfigFile": lambda: docker.errors.InvalidConfigFile("bad config"),
    "InvalidRepository": lambda: docker.errors.InvalidRepository("bad repo"),
    "InvalidVersion": lambda: docker.errors.InvalidVersion("bad version"),
    "MissingContextParameter": lambda: docker.errors.MissingContextParameter("host"),
    "NotFound": lambda: docker.errors.NotFound(
        "No such thing", response(404), explanation="No such thing"
    ),
    "NullResource": lambda: docker.errors.NullResource("null"),
    "StreamParseError": lambda: docker.errors.StreamParseError(ValueError("bad json")),
    "TLSParameterError": lambda: docker.errors.TLSParameterError("bad tls"),
}

UPSTREAM = sorted(
    name
    for name, cls in inspect.getmembers(docker.errors, inspect.isclass)
    if issubclass(cls, BaseException) and cls.__module__ == "docker.errors"
)


def test_every_upstream_class_has_a_sample():
    missing = sorted(set(UPSTREAM) - set(SAMPLES))
    assert missing == [], f"new docker.errors classes {missing}: add them to SAMPLES"


@pytest.mark.parametrize("name", UPSTREAM)
def test_every_upstream_class_becomes_a_cais_error(name):
    original = SAMPLES[name]()
    assert type(original).__name__ == name
    with pytest.raises(CaisError) as caught, engine_errors():
        raise original
    assert caught.value.__cause__ is original
    assert caught.value.message
    assert "\n" not in caught.value.message.strip()


@pytest.mark.parametrize(
    "exc",
    [
        requests.exceptions.ConnectionError("Connection aborted"),
        requests.exceptions.Timeout("read timed out"),
        requests.exceptions.ReadTimeout("read timed out"),
        requests.exceptions.ChunkedEncodingError("broken"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_transport_errors_become_engine_errors(exc, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "tcp://10.9.8.7:2375")
    with pytest.raises(EngineError) as caught, engine_errors():
        raise exc
    assert "`tcp://10.9.8.7:2375`" in caught.value.message
    assert caught.value.__cause__ is exc
    if isinstance(exc, requests.exceptions.Timeout):
        assert "did not answer in time" in caught.value.message
    else:
        assert "is not reachable" in caught.value.message
        assert "cais doctor" in caught.value.hint


def test_cais_errors_pass_through():
    original = PlanError("already ours")
    with pytest.raises(PlanError) as caught, engine_errors():
        raise original
    assert caught.value is original


def test_other_exceptions_pass_through():
    with pytest.raises(KeyError), engine_errors():
        raise KeyError("not the engine's")


def test_not_found_with_a_container():
    with pytest.raises(ContainerNotFound) as caught, engine_errors(container="web"):
        raise docker.errors.NotFound("No such container: web", response(404))
    assert caught.value.message == "No container is named `web`"
    assert "cais ps --all" in caught.value.hint


def test_not_found_with_an_image():
    with pytest.raises(ImageNotFound) as caught, engine_errors(image="hello:1"):
        raise docker.errors.NotFound("No such image", response(404))
    assert caught.value.message == "The image `hello:1` does not exist in the Docker Engine"


def test_image_not_found():
    with pytest.raises(ImageNotFound) as caught:
        with engine_errors(image="hello:1", container="web"):
            raise docker.errors.ImageNotFound("No such image: hello:1", response(404))
    assert caught.value.message == "The image `hello:1` does not exist in the Docker Engine"
    assert "cais build" in caught.value.hint


def test_image_not_found_names_the_explanation_without_an_image():
    with pytest.raises(ImageNotFound) as caught, engine_errors():
        raise docker.errors.ImageNotFound("x", response(404), explanation=b"No such image: abc")
    assert "`No such image: abc`" in caught.value.message


def test_not_found_of_something_else():
    with pytest.raises(EngineError) as caught, engine_errors():
        raise docker.errors.NotFound("x", response(404), explanation="network net1 not found")
    assert type(caught.value) is EngineError
    assert caught.value.message == "The Docker Engine did not find it: network net1 not found"


def test_conflict():
    with pytest.raises(EngineError) as caught:
        with engine_errors():
            raise docker.errors.APIError(
                "x",
                response(409),
                explanation='Conflict. The container name "/web" is already in use',
            )
    assert caught.value.message.startswith("The Docker Engine refused: Conflict.")


def test_registry_failure_reported_by_the_engine():
    text = 'Get "https://127.0.0.1:5000/v2/": dial tcp 127.0.0.1:5000: connect: connection refused'
    with pytest.raises(RegistryError) as caught, engine_errors():
        raise docker.errors.APIError("x", response(500), explanation=text)
    assert caught.value.temporary is True
    assert text in caught.value.message


def test_other_server_error():
    with pytest.raises(EngineError) as caught, engine_errors():
        raise docker.errors.APIError("x", response(500), explanation="disk full")
    assert type(caught.value) is EngineError
    assert caught.value.message == "The Docker Engine refused the request: disk full"


def test_unreachable_engine(unreachable_engine):
    assert engine_host() == unreachable_engine
    with pytest.raises(EngineError) as caught:
        connect(timeout=5)
    assert caught.value.message == f"The Docker Engine at `{unreachable_engine}` is not reachable"
    assert "dockerd" in caught.value.hint
    # A missing socket is seen before the SDK tries it (no leaked socket, faster answer).
    assert caught.value.__cause__ is None


def test_default_engine_host(monkeypatch):
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    assert engine_host() == "unix:///var/run/docker.sock"
