"""cais.bases: Docker Hub's anonymous token flow, on httpx.MockTransport (Docker Hub cannot be
reached from the test machines; the engine and a real registry are in the integration tests)."""

from __future__ import annotations

import httpx
import pytest

from cais.bases import _in_registry

CHALLENGE = 'Bearer realm="https://auth.test/token",service="registry.test"'


def hub(request: httpx.Request, *, token: dict | None, tags: set[str]) -> httpx.Response:
    if request.url.host == "auth.test":
        assert request.url.params["scope"] == "repository:library/python:pull"
        assert request.url.params["service"] == "registry.test"
        return httpx.Response(200, json=token) if token is not None else httpx.Response(500)
    if request.headers.get("authorization") != "Bearer t0ken":
        return httpx.Response(401, headers={"www-authenticate": CHALLENGE})
    assert request.url.path.startswith("/v2/library/python/manifests/")
    assert "manifest.list.v2+json" in request.headers["accept"]
    if request.url.path.rpartition("/")[2] not in tags:
        return httpx.Response(404)
    return httpx.Response(200, headers={"docker-content-digest": "sha256:" + "0" * 64})


@pytest.mark.parametrize("key", ["token", "access_token"])
def test_a_token_from_the_challenge_asks_for_each_tag(key):
    seen = []

    def handler(request):
        seen.append(request.url.host)
        return hub(request, token={key: "t0ken"}, tags={"3.11-slim", "3.9-slim"})

    found = _in_registry(
        "hub.test", ["3.9", "3.10", "3.11"], transport=httpx.MockTransport(handler)
    )
    assert found == {"3.9", "3.11"}
    assert seen.count("auth.test") == 1  # the token serves every tag after it


@pytest.mark.parametrize(
    ("token", "challenge"),
    [(None, CHALLENGE), ({}, CHALLENGE), ({"token": "x"}, 'Basic realm="hub"')],
)
def test_a_registry_that_gives_no_token_has_none(token, challenge):
    def handler(request):
        if request.url.host == "auth.test":
            return hub(request, token=token, tags=set())
        return httpx.Response(401, headers={"www-authenticate": challenge})

    assert _in_registry("hub.test", ["3.11"], transport=httpx.MockTransport(handler)) == set()
