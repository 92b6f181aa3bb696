"""cais.registry.auth.verify_login against registries simulated with httpx.MockTransport."""

from __future__ import annotations

import base64

import httpx
import pytest

from cais.errors import AuthError, DigestMismatch, NotInRegistry, RegistryError
from cais.registry.auth import (
    INSECURE_REGISTRIES,
    Challenge,
    api_host,
    is_loopback,
    parse_challenge,
    response_error,
    schemes,
    verify_login,
)
from cais.registry.credentials import Credentials

GOOD = Credentials("ana", "right-password")
BAD = Credentials("ana", "wrong-password")


def basic(creds: Credentials) -> str:
    return "Basic " + base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()


class Registry:
    """A registry's answers, and the requests it saw."""

    def __init__(self, handler) -> None:
        self.handler = handler
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.handler(request)

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)


def test_registry_without_auth():
    registry = Registry(lambda request: httpx.Response(200, json={}))
    verify_login("reg.example", GOOD, transport=registry.transport)
    assert [str(r.url) for r in registry.requests] == ["https://reg.example/v2/"]
    assert "authorization" not in registry.requests[0].headers


def basic_registry(request: httpx.Request) -> httpx.Response:
    if request.headers.get("authorization") == basic(GOOD):
        return httpx.Response(200, json={})
    return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="Registry Realm"'})


def test_basic_auth_accepted():
    registry = Registry(basic_registry)
    verify_login("reg.example:5000", GOOD, transport=registry.transport)
    assert len(registry.requests) == 2
    assert "authorization" not in registry.requests[0].headers
    assert registry.requests[1].headers["authorization"] == basic(GOOD)
    assert str(registry.requests[1].url) == "https://reg.example:5000/v2/"


def test_basic_auth_refused():
    registry = Registry(basic_registry)
    with pytest.raises(AuthError) as caught:
        verify_login("reg.example:5000", BAD, transport=registry.transport)
    error = caught.value
    assert (
        error.message
        == "The registry `reg.example:5000` refused the username or password for `ana`"
    )
    assert "wrong-password" not in f"{error.message} {error.hint} {error!r}"
    assert "access token" in error.hint
    assert isinstance(error, RegistryError)
    assert error.temporary is False


def bearer_registry(token_status: int = 200):
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth.example":
            if request.headers.get("authorization") != basic(GOOD):
                return httpx.Response(401, json={"details": "incorrect username or password"})
            return httpx.Response(token_status, json={"token": "t0k"})
        return httpx.Response(
            401,
            headers={
                "WWW-Authenticate": 'Bearer realm="https://auth.example/token",service="registry.example",'
                'scope="repository:samalba/my-app:pull,push"',
            },
        )

    return Registry(handler)


def test_bearer_token_flow():
    registry = bearer_registry()
    verify_login("registry.example", GOOD, transport=registry.transport)
    probe, token = registry.requests
    assert str(probe.url) == "https://registry.example/v2/"
    assert (token.url.scheme, token.url.host, token.url.path) == ("https", "auth.example", "/token")
    assert dict(token.url.params) == {"account": "ana", "service": "registry.example"}
    assert token.headers["authorization"] == basic(GOOD)


def test_bearer_token_refused():
    registry = bearer_registry()
    with pytest.raises(AuthError) as caught:
        verify_login("registry.example", BAD, transport=registry.transport)
    assert "`ana`" in caught.value.message
    assert "wrong-password" not in caught.value.message


def test_bearer_token_forbidden():
    with pytest.raises(AuthError):
        verify_login(
            "registry.example", GOOD, transport=bearer_registry(token_status=403).transport
        )


def test_bearer_token_service_broken():
    with pytest.raises(RegistryError) as caught:
        verify_login(
            "registry.example", GOOD, transport=bearer_registry(token_status=503).transport
        )
    assert not isinstance(caught.value, AuthError)
    assert caught.value.temporary is True
    assert (
        "answered 503 Service Unavailable to GET https://auth.example/token" in caught.value.message
    )
    assert "account=" not in caught.value.message  # the query is left out


def test_bearer_challenge_without_service():
    def handler(request):
        if request.url.host == "auth.example":
            return httpx.Response(200, json={"token": "t"})
        return httpx.Response(
            401, headers={"WWW-Authenticate": 'Bearer realm="https://auth.example/token"'}
        )

    registry = Registry(handler)
    verify_login("registry.example", GOOD, transport=registry.transport)
    assert dict(registry.requests[1].url.params) == {"account": "ana"}


def test_bearer_challenge_without_realm():
    registry = Registry(
        lambda r: httpx.Response(401, headers={"WWW-Authenticate": 'Bearer service="x"'})
    )
    with pytest.raises(RegistryError, match="sent a token challenge without a realm"):
        verify_login("registry.example", GOOD, transport=registry.transport)


def test_unknown_auth_scheme():
    registry = Registry(
        lambda r: httpx.Response(401, headers={"WWW-Authenticate": "Negotiate abc"})
    )
    with pytest.raises(RegistryError) as caught:
        verify_login("registry.example", GOOD, transport=registry.transport)
    assert (
        caught.value.message
        == "The registry `registry.example` asks for an unknown auth scheme `Negotiate`"
    )


def test_server_error_is_temporary():
    registry = Registry(lambda r: httpx.Response(500))
    with pytest.raises(RegistryError) as caught:
        verify_login("registry.example", GOOD, transport=registry.transport)
    assert type(caught.value) is RegistryError
    assert caught.value.temporary is True
    assert caught.value.message == (
        "The registry `registry.example` answered 500 Internal Server Error to GET https://registry.example/v2/"
    )


def test_not_found_is_not_temporary():
    with pytest.raises(RegistryError) as caught:
        verify_login(
            "registry.example", GOOD, transport=Registry(lambda r: httpx.Response(404)).transport
        )
    assert caught.value.temporary is False
    assert "404 Not Found" in caught.value.message


def refuse(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("[Errno 111] Connection refused", request=request)


def test_unreachable_registry():
    registry = Registry(refuse)
    with pytest.raises(RegistryError) as caught:
        verify_login("registry.example", GOOD, transport=registry.transport)
    error = caught.value
    assert type(error) is RegistryError
    assert error.temporary is True
    assert (
        error.message
        == "The registry `registry.example` does not answer at registry.example: [Errno 111] Connection refused"
    )
    assert "running" in error.hint
    assert isinstance(error.__cause__, httpx.ConnectError)
    assert [r.url.scheme for r in registry.requests] == ["https"]  # no plain HTTP to a remote host


@pytest.mark.parametrize("host", ["127.0.0.1:5000", "localhost:5000", "[::1]:5000", "localhost"])
def test_loopback_registry_tries_https_then_http(host):
    def handler(request):
        if request.url.scheme == "https":
            raise httpx.ConnectError("wrong version number", request=request)
        return basic_registry(request)

    registry = Registry(handler)
    verify_login(host, GOOD, transport=registry.transport)
    assert [r.url.scheme for r in registry.requests] == ["https", "http", "http"]


def test_loopback_registry_answering_nothing():
    registry = Registry(refuse)
    with pytest.raises(RegistryError, match="does not answer"):
        verify_login("127.0.0.1:1", GOOD, transport=registry.transport)
    assert [str(r.url) for r in registry.requests] == [
        "https://127.0.0.1:1/v2/",
        "http://127.0.0.1:1/v2/",
    ]


def test_wrong_password_on_a_loopback_registry_is_not_retried_over_http():
    registry = Registry(basic_registry)
    with pytest.raises(AuthError):
        verify_login("127.0.0.1:5000", BAD, transport=registry.transport)
    assert {r.url.scheme for r in registry.requests} == {"https"}


def test_docker_hub():
    registry = Registry(lambda r: httpx.Response(200))
    verify_login(None, GOOD, transport=registry.transport)
    assert str(registry.requests[0].url) == "https://registry-1.docker.io/v2/"


def test_docker_hub_errors_name_docker_io():
    with pytest.raises(AuthError) as caught:
        verify_login(None, BAD, transport=Registry(basic_registry).transport)
    assert caught.value.message.startswith("The registry `docker.io` refused")


@pytest.mark.parametrize(
    ("registry", "host"),
    [
        (None, "registry-1.docker.io"),
        ("docker.io", "registry-1.docker.io"),
        ("index.docker.io", "registry-1.docker.io"),
        ("https://reg.example:5000/", "reg.example:5000"),
        ("127.0.0.1:5000", "127.0.0.1:5000"),
    ],
)
def test_api_host(registry, host):
    assert api_host(registry) == host


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1:5000", True),
        ("127.1.2.3", True),
        ("localhost", True),
        ("localhost:5000", True),
        ("[::1]:5000", True),
        ("::1", True),
        ("10.0.0.1:5000", False),
        ("reg.example", False),
        ("registry-1.docker.io", False),
    ],
)
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_parse_challenge_with_commas_in_quoted_values():
    challenge = parse_challenge(
        'Bearer realm="https://auth.example/token?a=1,b=2",service="registry.example",'
        'scope="repository:team/app:pull,push"'
    )
    assert challenge == Challenge(
        "Bearer",
        {
            "realm": "https://auth.example/token?a=1,b=2",
            "service": "registry.example",
            "scope": "repository:team/app:pull,push",
        },
    )
    assert challenge.realm == "https://auth.example/token?a=1,b=2"


def test_parse_challenge_unquoted_spaces_and_case():
    challenge = parse_challenge(
        ' BASIC Realm=https://a/token, service="s" ,error=insufficient_scope'
    )
    assert challenge.scheme == "BASIC"  # as sent; compared lowercased
    assert challenge.params == {
        "realm": "https://a/token",
        "service": "s",
        "error": "insufficient_scope",
    }
    assert parse_challenge("Basic") == Challenge("Basic", {})
    assert parse_challenge("") is None
    assert parse_challenge("   ") is None


@pytest.mark.parametrize(
    ("host", "insecure", "expected"),
    [
        ("reg.example", "", ["https"]),
        ("127.0.0.1:5000", "", ["https", "http"]),
        ("reg.example:5000", "reg.example:5000", ["https", "http"]),
        ("reg.example:5000", "other.example, reg.example:5000 ", ["https", "http"]),
        ("reg.example", "reg.example:5000", ["https"]),  # the port is part of the name
    ],
)
def test_schemes_allow_plain_http_for_loopback_and_marked_registries(
    host, insecure, expected, monkeypatch
):
    monkeypatch.setenv(INSECURE_REGISTRIES, insecure)
    assert schemes(host) == expected


def test_a_registry_marked_insecure_is_logged_in_over_http(monkeypatch):
    monkeypatch.setenv(INSECURE_REGISTRIES, "reg.example:5000")

    def handler(request):
        if request.url.scheme == "https":
            raise httpx.ConnectError("wrong version number", request=request)
        return basic_registry(request)

    registry = Registry(handler)
    verify_login("reg.example:5000", GOOD, transport=registry.transport)
    assert [r.url.scheme for r in registry.requests] == ["https", "http", "http"]


def answer(status: int, body: object = None, method: str = "GET") -> httpx.Response:
    request = httpx.Request(method, "https://reg.example/v2/team/app/blobs/uploads/x?_state=SECRET")
    return httpx.Response(status, json=body, request=request)


def errors_body(*codes: str) -> dict:
    return {"errors": [{"code": code, "message": code.lower(), "detail": "d"} for code in codes]}


@pytest.mark.parametrize(
    ("status", "codes", "cls", "temporary"),
    [
        (404, ("BLOB_UNKNOWN",), NotInRegistry, False),
        (404, (), NotInRegistry, False),
        (400, ("MANIFEST_UNKNOWN",), NotInRegistry, False),
        (400, ("DIGEST_INVALID",), DigestMismatch, False),
        (403, ("DENIED",), AuthError, False),
        (401, ("UNAUTHORIZED",), AuthError, False),
        (400, ("MANIFEST_BLOB_UNKNOWN",), RegistryError, False),
        (408, (), RegistryError, True),
        (429, ("TOOMANYREQUESTS",), RegistryError, True),
        (502, (), RegistryError, True),
    ],
)
def test_response_error_keeps_the_registry_diagnostics(status, codes, cls, temporary):
    error = response_error(answer(status, errors_body(*codes) if codes else None), "reg.example")
    assert type(error) is cls
    assert error.temporary is temporary
    assert error.status == status
    assert error.message.startswith(
        f"The registry `reg.example` answered {status} {httpx.codes.get_reason_phrase(status)} "
        "to GET https://reg.example/v2/team/app/blobs/uploads/x"
    )
    for code in codes:
        assert f"{code}: {code.lower()} (d)" in error.message
    assert "SECRET" not in error.message
    assert "_state" not in error.message


def test_response_error_without_a_json_body():
    request = httpx.Request("PUT", "https://reg.example/v2/a/manifests/1")
    error = response_error(httpx.Response(500, text="<html>oops</html>", request=request), "r")
    assert error.message == (
        "The registry `r` answered 500 Internal Server Error to PUT https://reg.example/v2/a/manifests/1"
    )


@pytest.mark.parametrize(
    "error",
    [
        httpx.DecodingError("invalid gzip"),
        httpx.TooManyRedirects("Exceeded maximum allowed redirects."),
        httpx.LocalProtocolError("illegal header"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_any_httpx_error_of_a_login_check_is_one_sentence(error):
    def handler(request):
        raise error

    with pytest.raises(RegistryError) as caught:
        verify_login("registry.example", GOOD, transport=Registry(handler).transport)
    assert caught.value.message.startswith("The ")
    assert "`registry.example`" in caught.value.message
    assert caught.value.__cause__ is error


def test_a_login_check_on_a_registry_without_auth_ignores_a_broken_docker_config(docker_config):
    (docker_config / "config.json").write_text("{ broken")
    verify_login("reg.example", GOOD, transport=Registry(lambda r: httpx.Response(200)).transport)
