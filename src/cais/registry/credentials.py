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

from docker.credentials import CredentialsNotFound, Store, StoreError

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


def _store(helper: str) -> Store:
    if shutil.which(f"docker-credential-{helper}") is None:
        raise CredentialsError(
            f"The credential helper `docker-credential-{helper}` named in `{config_path()}` "
            "is not installed",
            hint="install it, or remove `credsStore`/`credHelpers` from the config file",
        )
    return Store(helper, environment=dict(os.environ))


def store(registry: str | None, credentials: Credentials) -> str:
    """Save credentials for `registry`; returns where they went (a helper or the file)."""
    key = registry_key(registry)
    data = _load()
    helper = _helper(data, key)
    if helper:
        try:
            _store(helper).store(key, credentials.username, credentials.password)
        except StoreError as exc:
            raise CredentialsError(f"The credential helper `{helper}` failed: {exc}") from exc
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
        try:
            found = _store(helper).get(key)
        except CredentialsNotFound:
            return None
        except StoreError as exc:
            raise CredentialsError(f"The credential helper `{helper}` failed: {exc}") from exc
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
    if helper:
        try:
            _store(helper).erase(key)
            found = True
        except CredentialsNotFound:
            pass
        except StoreError as exc:
            raise CredentialsError(f"The credential helper `{helper}` failed: {exc}") from exc
    if key in auths:
        del auths[key]
        _save(data)
    return found


def logged_in_registries() -> list[str]:
    return sorted((_load().get("auths") or {}).keys())
