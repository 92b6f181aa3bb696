"""Registry credentials in the docker CLI's own `~/.docker/config.json` (or `$DOCKER_CONFIG`).

The same file and the same credential helpers (`credsStore`, `credHelpers`) as the docker CLI,
so a login made by either tool is seen by the other.  Writes keep every other setting and
replace the file atomically, so an interrupted write never leaves a broken config.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cais.errors import CredentialsError
from cais.registry.reference import DOCKER_HUB_CONFIG_KEY, registry_key

__all__ = ["Credentials", "config_path", "erase", "get", "logged_in_registries", "store"]


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str

    def __repr__(self) -> str:  # never print a secret
        return f"Credentials(username={self.username!r}, password='***')"


def config_path() -> Path:
    folder = os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker"
    return Path(folder) / "config.json"


def _load() -> dict:
    path = config_path()
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, json.JSONDecodeError) as exc:
        raise CredentialsError(
            f"The docker config file `{path}` cannot be read: {exc}",
            hint="fix or move the file, then log in again",
        ) from exc
    if not isinstance(data, dict):
        raise CredentialsError(f"The docker config file `{path}` is not a JSON object")
    return data


def _save(data: dict) -> None:
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".config.json.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, indent="\t")
            out.write("\n")
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except OSError as exc:
        Path(temporary).unlink(missing_ok=True)
        raise CredentialsError(f"The docker config file `{path}` cannot be written: {exc}") from exc


def _helper(data: dict, key: str) -> str | None:
    helpers = data.get("credHelpers") or {}
    return helpers.get(key) or data.get("credsStore") or None


_NOT_FOUND = object()


def _ask_helper(helper: str, verb: str, *args: str) -> Any:
    """Run the credential helper's `verb` (`get`, `store`, `erase`); `_NOT_FOUND` when it holds
    nothing for the registry. The one place its errors become cais's, and the only user of
    the Docker SDK's helper client, which is imported here so that reading a login from the
    file does not pay for the whole SDK."""
    if shutil.which(f"docker-credential-{helper}") is None:
        raise CredentialsError(
            f"The credential helper `docker-credential-{helper}` named in `{config_path()}` "
            "is not installed",
            hint="install it, or remove `credsStore`/`credHelpers` from the config file",
        )
    from docker.credentials import CredentialsNotFound, Store, StoreError

    try:
        return getattr(Store(helper, environment=dict(os.environ)), verb)(*args)
    except CredentialsNotFound:
        return _NOT_FOUND
    except StoreError as exc:
        raise CredentialsError(f"The credential helper `{helper}` failed: {exc}") from exc


def store(registry: str | None, credentials: Credentials) -> str:
    """Save credentials for `registry`; returns where they went (a helper or the file)."""
    key = registry_key(registry)
    data = _load()
    helper = _helper(data, key)
    if helper:
        _ask_helper(helper, "store", key, credentials.username, credentials.password)
        data.setdefault("auths", {})[key] = {}
        _save(data)
        return f"the `{helper}` credential helper"
    token = base64.b64encode(f"{credentials.username}:{credentials.password}".encode()).decode()
    entry = dict(data.setdefault("auths", {}).get(key) or {})
    entry["auth"] = token
    data["auths"][key] = entry
    _save(data)
    return f"`{config_path()}`"


def _login_command(key: str) -> str:
    return "cais login" if key == DOCKER_HUB_CONFIG_KEY else f"cais login {key}"


def get(registry: str | None) -> Credentials | None:
    key = registry_key(registry)
    data = _load()
    helper = _helper(data, key)
    if helper:
        found = _ask_helper(helper, "get", key)
        if found is _NOT_FOUND:
            return None
        return Credentials(found["Username"], found["Secret"])
    entry = (data.get("auths") or {}).get(key) or {}
    if entry.get("auth"):
        try:
            username, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
        except (ValueError, UnicodeDecodeError) as exc:
            raise CredentialsError(
                f"The saved login for `{key}` in `{config_path()}` is corrupt",
                hint=f"log in again with `{_login_command(key)}`",
            ) from exc
        return Credentials(username, password)
    if entry.get("username") and entry.get("password"):
        return Credentials(entry["username"], entry["password"])
    return None


def erase(registry: str | None) -> bool:
    """Forget the credentials of `registry`; False when there were none."""
    key = registry_key(registry)
    data = _load()
    auths = data.get("auths") or {}
    helper = _helper(data, key)
    found = key in auths
    if helper and _ask_helper(helper, "erase", key) is not _NOT_FOUND:
        found = True
    if key in auths:
        del auths[key]
        _save(data)
    return found


def logged_in_registries() -> list[str]:
    return sorted((_load().get("auths") or {}).keys())
