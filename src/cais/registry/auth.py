"""Check credentials against a registry before they are saved (the Distribution auth flow).

`GET /v2/` says which scheme the registry wants: none, Basic, or a Bearer token service that
takes the credentials as Basic auth and hands out a token.
"""

from __future__ import annotations

import ipaddress

import httpx

from cais.errors import AuthError, RegistryError
from cais.registry.credentials import Credentials
from cais.registry.reference import DOCKER_HUB, registry_key

__all__ = ["api_host", "verify_login"]


def api_host(registry: str | None) -> str:
    """The host that serves a registry's API (Docker Hub's differs from its name)."""
    key = registry_key(registry)
    if key.startswith("https://index.docker.io"):
        return "registry-1.docker.io"
    return key


def _is_loopback(host: str) -> bool:
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


def verify_login(
    registry: str | None,
    credentials: Credentials,
    *,
    transport: httpx.BaseTransport | None = None,
    timeout: float = 15.0,
) -> None:
    """Raise AuthError when the registry refuses the credentials, RegistryError when it
    cannot be asked; return quietly when they work."""
    host = api_host(registry)
    shown = registry or DOCKER_HUB
    schemes = ["https", "http"] if _is_loopback(host) else ["https"]
    with httpx.Client(transport=transport, timeout=timeout, follow_redirects=True) as client:
        last_error: Exception | None = None
        for scheme in schemes:
            try:
                _check(client, f"{scheme}://{host}", credentials, shown)
                return
            except httpx.TransportError as exc:  # loopback registries often speak plain HTTP
                last_error = exc
        raise RegistryError(
            f"The registry `{shown}` does not answer at {host}: {last_error}",
            hint="check the registry's address and that it is running",
            temporary=True,
        ) from last_error


def _check(client: httpx.Client, base: str, credentials: Credentials, shown: str) -> None:
    probe = client.get(f"{base}/v2/")
    if probe.status_code == 200:
        return
    if probe.status_code != 401:
        raise _unexpected(probe, shown)
    challenge = probe.headers.get("www-authenticate", "")
    scheme, _, params = challenge.partition(" ")
    basic = (credentials.username, credentials.password)
    if scheme.lower() == "basic":
        answer = client.get(f"{base}/v2/", auth=basic)
    elif scheme.lower() == "bearer":
        fields = _parse_challenge(params)
        if "realm" not in fields:
            raise RegistryError(f"The registry `{shown}` sent a token challenge without a realm")
        query = {"account": credentials.username}
        if "service" in fields:
            query["service"] = fields["service"]
        answer = client.get(fields["realm"], params=query, auth=basic)
    else:
        raise RegistryError(f"The registry `{shown}` asks for an unknown auth scheme `{scheme}`")
    if answer.status_code in (401, 403):
        raise AuthError(
            f"The registry `{shown}` refused the username or password for `{credentials.username}`",
            hint="check them (Docker Hub wants an access token, not the account password, "
            "when two-factor authentication is on)",
        )
    if answer.status_code != 200:
        raise _unexpected(answer, shown)


def _unexpected(response: httpx.Response, shown: str) -> RegistryError:
    return RegistryError(
        f"The registry `{shown}` answered {response.status_code} {response.reason_phrase} "
        f"to {response.request.method} {response.request.url.copy_with(query=None)}",
        temporary=response.status_code >= 500,
    )


def _parse_challenge(params: str) -> dict[str, str]:
    """`realm="https://auth",service="registry"` → a dict (values may hold commas)."""
    fields: dict[str, str] = {}
    rest = params.strip()
    while rest:
        key, _, rest = rest.partition("=")
        if rest.startswith('"'):
            value, _, rest = rest[1:].partition('"')
        else:
            value, _, rest = rest.partition(",")
        fields[key.strip().lower()] = value
        rest = rest.lstrip(", ")
    return fields
