"""cais.registry.credentials: the docker config file and credential helpers."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from cais.errors import CredentialsError
from cais.registry import credentials
from cais.registry.credentials import Credentials, config_path
from cais.registry.reference import DOCKER_HUB_CONFIG_KEY

CREDS = Credentials("ana", "s3cret:with:colons")


@pytest.fixture
def docker_config(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "docker-config"
    monkeypatch.setenv("DOCKER_CONFIG", str(folder))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return folder / "config.json"


def read(path: Path) -> dict:
    return json.loads(path.read_text())


def test_config_path_follows_docker_config(docker_config):
    assert config_path() == docker_config


def test_config_path_defaults_to_home(tmp_path, monkeypatch):
    monkeypatch.delenv("DOCKER_CONFIG")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert config_path() == tmp_path / ".docker" / "config.json"


def test_store_get_erase_round_trip(docker_config):
    where = credentials.store("127.0.0.1:5000", CREDS)
    assert where == f"`{docker_config}`"
    data = read(docker_config)
    token = base64.b64encode(b"ana:s3cret:with:colons").decode()
    assert data == {"auths": {"127.0.0.1:5000": {"auth": token}}}
    assert credentials.get("127.0.0.1:5000") == CREDS
    assert credentials.get("other.example") is None
    assert credentials.logged_in_registries() == ["127.0.0.1:5000"]
    assert credentials.erase("127.0.0.1:5000") is True
    assert credentials.get("127.0.0.1:5000") is None
    assert read(docker_config) == {"auths": {}}
    assert credentials.erase("127.0.0.1:5000") is False


def test_docker_hub_key(docker_config):
    credentials.store(None, CREDS)
    assert list(read(docker_config)["auths"]) == [DOCKER_HUB_CONFIG_KEY]
    assert credentials.get("docker.io") == CREDS
    assert credentials.get("index.docker.io") == CREDS
    assert credentials.erase("registry-1.docker.io") is True


def test_get_without_config_file(docker_config):
    assert credentials.get("127.0.0.1:5000") is None
    assert credentials.erase("127.0.0.1:5000") is False
    assert credentials.logged_in_registries() == []
    assert not docker_config.exists()


def test_other_settings_are_kept(docker_config):
    docker_config.parent.mkdir()
    original = {
        "auths": {
            "ghcr.io": {"auth": "eDp5"},
            "127.0.0.1:5000": {"auth": "b2xkOm9sZA==", "email": "a@b"},
        },
        "proxies": {"default": {"httpProxy": "http://proxy:3128"}},
        "currentContext": "remote",
        "psFormat": "table {{.Names}}",
    }
    docker_config.write_text(json.dumps(original))
    credentials.store("127.0.0.1:5000", CREDS)
    data = read(docker_config)
    assert data["proxies"] == original["proxies"]
    assert data["currentContext"] == "remote"
    assert data["psFormat"] == "table {{.Names}}"
    assert data["auths"]["ghcr.io"] == {"auth": "eDp5"}
    assert data["auths"]["127.0.0.1:5000"]["email"] == "a@b"  # other fields of the entry stay
    assert credentials.get("127.0.0.1:5000") == CREDS
    credentials.erase("127.0.0.1:5000")
    data = read(docker_config)
    assert data["auths"] == {"ghcr.io": {"auth": "eDp5"}}
    assert data["proxies"] == original["proxies"]


def test_file_is_private_and_written_atomically(docker_config):
    credentials.store("127.0.0.1:5000", CREDS)
    assert stat.S_IMODE(docker_config.stat().st_mode) == 0o600
    assert stat.S_IMODE(docker_config.parent.stat().st_mode) == 0o700
    assert [p.name for p in docker_config.parent.iterdir()] == ["config.json"]  # no temporary left
    docker_config.chmod(0o644)
    credentials.store("127.0.0.1:5000", Credentials("bob", "pw"))
    assert stat.S_IMODE(docker_config.stat().st_mode) == 0o600


def test_username_and_password_entries(docker_config):
    docker_config.parent.mkdir()
    docker_config.write_text(
        json.dumps({"auths": {"reg.example": {"username": "u", "password": "p"}}})
    )
    assert credentials.get("reg.example") == Credentials("u", "p")


def test_entry_without_credentials(docker_config):
    docker_config.parent.mkdir()
    docker_config.write_text(json.dumps({"auths": {"reg.example": {}}}))
    assert credentials.get("reg.example") is None
    assert credentials.logged_in_registries() == ["reg.example"]


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '"text"'])
def test_corrupt_config_file(docker_config, text):
    docker_config.parent.mkdir()
    docker_config.write_text(text)
    with pytest.raises(CredentialsError) as caught:
        credentials.get("reg.example")
    assert f"`{docker_config}`" in caught.value.message
    with pytest.raises(CredentialsError):
        credentials.store("reg.example", CREDS)
    assert docker_config.read_text() == text  # left as it was


def test_empty_config_file_is_an_empty_config(docker_config):
    docker_config.parent.mkdir()
    docker_config.write_text("")
    assert credentials.get("reg.example") is None


def test_corrupt_saved_login(docker_config):
    docker_config.parent.mkdir()
    docker_config.write_text(json.dumps({"auths": {"reg.example": {"auth": "!!!not base64"}}}))
    with pytest.raises(CredentialsError) as caught:
        credentials.get("reg.example")
    assert (
        caught.value.message == f"The saved login for `reg.example` in `{docker_config}` is corrupt"
    )
    assert "cais login" in caught.value.hint


def test_repr_hides_the_password():
    text = repr(Credentials("ana", "hunter2"))
    assert text == "Credentials(username='ana', password='***')"
    assert "hunter2" not in text
    assert "hunter2" not in str(Credentials("ana", "hunter2"))


# --- credential helpers ---------------------------------------------------------------------

HELPER = r"""#!/bin/bash
# A docker credential helper keeping one JSON file per server in $FAKE_STORE.
set -euo pipefail
echo "$1" >> "$FAKE_STORE/calls"
input=$(cat)
case "$1" in
  store)
    server=$(printf '%s' "$input" | sed -n 's/.*"ServerURL": *"\([^"]*\)".*/\1/p')
    printf '%s' "$input" > "$FAKE_STORE/$(printf '%s' "$server" | sha256sum | cut -c1-16).json"
    ;;
  get)
    file="$FAKE_STORE/$(printf '%s' "$input" | sha256sum | cut -c1-16).json"
    if [ -f "$file" ]; then cat "$file"; else echo "credentials not found in native keychain"; exit 1; fi
    ;;
  erase)
    file="$FAKE_STORE/$(printf '%s' "$input" | sha256sum | cut -c1-16).json"
    if [ -f "$file" ]; then rm "$file"; else echo "credentials not found in native keychain"; exit 1; fi
    ;;
  *) echo "unknown action $1"; exit 1 ;;
esac
"""


@pytest.fixture
def helper(tmp_path, monkeypatch, docker_config) -> Path:
    """`docker-credential-fake` on PATH and `credsStore: fake` in config.json."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "docker-credential-fake"
    script.write_text(HELPER)
    script.chmod(0o755)
    store_dir = tmp_path / "store"
    store_dir.mkdir()
    monkeypatch.setenv("FAKE_STORE", str(store_dir))
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    docker_config.parent.mkdir()
    docker_config.write_text(json.dumps({"credsStore": "fake", "auths": {}}))
    return store_dir


def test_store_get_erase_through_a_credential_helper(helper, docker_config):
    assert credentials.store("127.0.0.1:5000", CREDS) == "the `fake` credential helper"
    stored = list(helper.glob("*.json"))
    assert len(stored) == 1
    assert json.loads(stored[0].read_text()) == {
        "ServerURL": "127.0.0.1:5000",
        "Username": "ana",
        "Secret": "s3cret:with:colons",
    }
    data = read(docker_config)
    assert data == {"credsStore": "fake", "auths": {"127.0.0.1:5000": {}}}
    assert '"auth"' not in docker_config.read_text()
    assert "s3cret" not in docker_config.read_text()
    assert credentials.get("127.0.0.1:5000") == CREDS
    assert credentials.get("other.example") is None  # "credentials not found" → None
    assert credentials.erase("127.0.0.1:5000") is True
    assert list(helper.glob("*.json")) == []
    assert read(docker_config)["auths"] == {}
    assert credentials.erase("127.0.0.1:5000") is False
    calls = (helper / "calls").read_text().split()
    assert calls == ["store", "get", "get", "erase", "erase"]


def test_registry_specific_helper(helper, docker_config):
    docker_config.write_text(json.dumps({"credHelpers": {"reg.example": "fake"}}))
    credentials.store("reg.example", CREDS)
    credentials.store("plain.example", Credentials("bob", "pw"))
    data = read(docker_config)
    assert data["auths"]["reg.example"] == {}
    assert "auth" in data["auths"]["plain.example"]
    assert (helper / "calls").read_text().split() == ["store"]
    assert credentials.get("reg.example") == CREDS


def test_failing_helper(helper, tmp_path):
    (tmp_path / "bin" / "docker-credential-fake").write_text(
        "#!/bin/sh\necho 'keychain is locked'\nexit 3\n"
    )
    with pytest.raises(CredentialsError) as caught:
        credentials.get("127.0.0.1:5000")
    assert "The credential helper `fake` failed" in caught.value.message
    assert "keychain is locked" in caught.value.message
    with pytest.raises(CredentialsError, match="failed"):
        credentials.store("127.0.0.1:5000", CREDS)
    with pytest.raises(CredentialsError, match="failed"):
        credentials.erase("127.0.0.1:5000")


@pytest.mark.filterwarnings("ignore:docker-credential-missing not installed:UserWarning")
def test_helper_that_is_not_installed(docker_config, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    docker_config.parent.mkdir()
    docker_config.write_text(json.dumps({"credsStore": "missing"}))
    with pytest.raises(CredentialsError) as caught:
        credentials.store("reg.example", CREDS)
    assert caught.value.message == (
        f"The credential helper `docker-credential-missing` named in `{docker_config}` is not installed"
    )
    assert "credsStore" in caught.value.hint
    assert "install it" in caught.value.hint
    with pytest.raises(CredentialsError, match="is not installed"):
        credentials.get("reg.example")
    assert read(docker_config) == {"credsStore": "missing"}


def test_helper_that_is_not_installed_warns_nothing(docker_config, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    docker_config.parent.mkdir()
    docker_config.write_text(json.dumps({"credsStore": "missing"}))
    with pytest.raises(CredentialsError):
        credentials.get("reg.example")


def test_a_login_in_the_file_is_read_without_the_docker_sdk(docker_config):
    """Only a credential helper needs the Docker SDK's helper client: a push that reads its
    login from the file does not pay for importing the SDK."""
    credentials.store("127.0.0.1:5001", CREDS)
    check = (
        "import sys\n"
        "from cais.registry import client, credentials\n"
        "assert credentials.get('127.0.0.1:5001').username == 'ana'\n"
        "print('docker' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, env=os.environ, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
