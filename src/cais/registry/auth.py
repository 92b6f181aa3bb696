"""How a registry wants to be authenticated (the Distribution auth flow), and login checks.

`GET /v2/` says which scheme the registry wants: none, Basic, or a Bearer token service that
takes the credentials as Basic auth and hands out a token for the scopes asked.  The registry
client is built on this module; the login check is one call of it.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass

import httpx

from cais.errors import AuthError, DigestMismatch, NotInRegistry, RegistryError
from cais.registry.credentials import Credentials
from cais.registry.reference import registry_key

__all__ = [
    "INSECURE_REGISTRIES",
    "Challenge",
    "api_host",
    "fetch_token",
    "is_loopback",
    "parse_challenge",
    "refused",
    "response_error",
    "schemes",
    "verify_login",
]

# Registries, `host[:port]` separated by commas, that may be reached over plain HTTP.
INSECURE_REGISTRIES = "CAIS_INSECURE_REGISTRIES"


def api_host(registry: str | None) -> str:
    """The host that serves a registry's API (Docker Hub's differs from its name)."""
    key = registry_key(registry)
    if key.startswith("https://index.docker.io"):
        return "registry-1.docker.io"
    return key


def is_loopback(host: str) -> bool:
    name = host
    if name.startswith("["):  # [::1]:5000
        name = name[1:].partition("]")[0]
    elif name.count(":") == 1:  # 127.0.0.1:5000
        name = name.partition(":")[0]
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def schemes(host: str) -> list[str]:
    """The schemes to try, in order: HTTPS, then plain HTTP for loopback registries and those
    named in CAIS_INSECURE_REGISTRIES (as the docker CLI allows for `insecure-registries`)."""
    insecure = {h.strip() for h in os.environ.get(INSECURE_REGISTRIES, "").split(",") if h.strip()}
    if is_loopback(host) or host in insecure:
        return ["https", "http"]
    return ["https"]


@dataclass(frozen=True)
class Challenge:
    """A `WWW-Authenticate` header, parsed: the scheme as sent (compare it lowercased) and its
    parameters (keys lowercased)."""

    scheme: str
    params: dict[str, str]

    @property
    def realm(self) -> str | None:
        return self.params.get("realm")


def parse_challenge(header: str) -> Challenge | None:
    """`Bearer realm="https://auth",service="registry"` → Challenge; None for no header."""
    scheme, _, params = header.strip().partition(" ")
    if not scheme:
        return None
    fields: dict[str, str] = {}
    rest = params.strip()
    while rest:  # quoted values may hold commas
        key, _, rest = rest.partition("=")
        if rest.startswith('"'):
            value, _, rest = rest[1:].partition('"')
        else:
            value, _, rest = rest.partition(",")
        fields[key.strip().lower()] = value
        rest = rest.lstrip(", ")
    return Challenge(scheme, fields)


def refused(shown: str, credentials: Credentials) -> AuthError:
    return AuthError(
        f"The registry `{shown}` refused the username or password for `{credentials.username}`",
        hint="check them (Docker Hub wants an access token, not the account password, "
        "when two-factor authentication is on)",
    )


def fetch_token(
    client: httpx.Client,
    challenge: Challenge,
    credentials: Credentials | None,
    shown: str,
    scopes: tuple[str, ...] = (),
) -> str:
    """A Bearer token from the challenge's realm for `scopes`, anonymous without credentials."""
    if not challenge.realm:
        raise RegistryError(f"The registry `{shown}` sent a token challenge without a realm")
    query: list[tuple[str, str]] = []
    if credentials is not None:
        query.append(("account", credentials.username))
    if "service" in challenge.params:
        query.append(("service", challenge.params["service"]))
    query.extend(("scope", scope) for scope in scopes)
    auth = (credentials.username, credentials.password) if credentials else None
    answer = client.get(challenge.realm, params=query, auth=auth)
    if answer.status_code in (401, 403):
        if credentials is None:
            raise AuthError(f"The registry `{shown}` refused an anonymous token")
        raise refused(shown, credentials)
    if answer.status_code != 200:
        raise response_error(answer, shown)
    try:
        body = answer.json()
        token = body.get("token") or body.get("access_token")
    except (ValueError, AttributeError):
        token = None
    if not isinstance(token, str) or not token:
        raise RegistryError(f"The token service of the registry `{shown}` sent no token")
    return token


def response_error(response: httpx.Response, shown: str) -> RegistryError:
    """The cais error for an unexpected answer: its status, the request without its query (upload
    locations carry state there), and the registry's own error codes and messages."""
    status = response.status_code
    request = response.request
    message = (
        f"The registry `{shown}` answered {status} {response.reason_phrase} "
        f"to {request.method} {request.url.copy_with(query=None)}"
    )
    errors = _registry_errors(response)
    if errors:
        message += ": " + "; ".join(text for _, text in errors)
    codes = {code for code, _ in errors}
    if "DIGEST_INVALID" in codes:
        return DigestMismatch(message, status=status)
    if status == 404 or codes & {"BLOB_UNKNOWN", "MANIFEST_UNKNOWN", "NAME_UNKNOWN"}:
        return NotInRegistry(message, status=status)
    if status in (401, 403) or codes & {"UNAUTHORIZED", "DENIED"}:
        return AuthError(message, status=status)
    return RegistryError(message, temporary=status in (408, 429) or status >= 500, status=status)


def _registry_errors(response: httpx.Response) -> list[tuple[str, str]]:
    """(code, `CODE: message (detail)`) for each error of a Distribution error body."""
    try:
        response.read()
        errors = response.json().get("errors")
    except (ValueError, AttributeError, httpx.StreamError):
        return []
    if not isinstance(errors, list):
        return []
    found = []
    for error in errors:
        if not isinstance(error, dict):
            continue
        code = str(error.get("code") or "UNKNOWN")
        text = f"{code}: {error.get('message') or ''}".rstrip(": ")
        detail = error.get("detail")
        if detail and isinstance(detail, (str, int, float)):
            text += f" ({detail})"
        found.append((code, text))
    return found


def verify_login(
    registry: str | None,
    credentials: Credentials,
    *,
    transport: httpx.BaseTransport | None = None,
    timeout: float = 15.0,
) -> None:
    """Raise AuthError when the registry refuses the credentials, RegistryError when it
    cannot be asked; return quietly when they work."""
    from cais.registry.client import RegistryClient  # the client is built on this module

    with RegistryClient(
        registry, credentials=credentials, transport=transport, timeout=timeout
    ) as client:
        client.check_login()
