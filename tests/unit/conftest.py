"""Shared fixtures of the unit tests: an isolated environment and test certificates."""

from __future__ import annotations

import datetime
import functools
import importlib.metadata
import itertools
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

# Variables of the machine running the tests that change what cais decides: those that reach
# a build (the docker CLI's, pip's CA and index settings), proxies, colour, git.
_HOST_VARIABLES = (
    "DOCKER_HOST",
    "DOCKER_BUILDKIT",
    "DOCKER_CONTEXT",
    "DOCKER_DEFAULT_PLATFORM",
    "DOCKER_TLS_VERIFY",
    "DOCKER_CERT_PATH",
    "BUILDX_BUILDER",
    "SOURCE_DATE_EPOCH",
    "PIP_CERT",
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "PIP_TRUSTED_HOST",
    "CAIS_PYTHONS",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
    "FORCE_COLOR",
    "TTY_COMPATIBLE",
    "GIT_DIR",
    "GIT_WORK_TREE",
)


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """No test sees the host's docker config, CA variables, proxies or git identity."""
    for name in _HOST_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("DOCKER_CONFIG", str(home / ".docker"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("COLUMNS", "400")  # Rich wraps messages at the terminal width
    monkeypatch.setenv("NO_COLOR", "1")
    return home


_serials = itertools.count(1)


@pytest.fixture(scope="session")
def make_cert() -> Callable[[str], bytes]:
    """make_cert(common_name) -> a self-signed CA certificate in PEM (distinct on each call)."""
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:  # pragma: no cover - fall back to the openssl command
        return _openssl_cert_factory()

    key = ec.generate_private_key(ec.SECP256R1())
    start = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)

    def make(common_name: str) -> bytes:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(next(_serials))
            .not_valid_before(start)
            .not_valid_after(start + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        return cert.public_bytes(serialization.Encoding.PEM)

    return make


def _openssl_cert_factory() -> Callable[[str], bytes]:  # pragma: no cover
    if shutil.which("openssl") is None:
        pytest.skip("neither the cryptography package nor openssl is available")
    import tempfile

    def make(common_name: str) -> bytes:
        with tempfile.TemporaryDirectory() as folder:
            cert, key = Path(folder, "ca.pem"), Path(folder, "ca.key")
            subprocess.run(
                [
                    "openssl",
                    "req",
                    "-x509",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                    "-nodes",
                    "-keyout",
                    str(key),
                    "-out",
                    str(cert),
                    "-days",
                    "3650",
                    "-subj",
                    f"/CN={common_name}",
                    "-set_serial",
                    str(next(_serials)),
                ],
                check=True,
                capture_output=True,
            )
            return cert.read_bytes()

    return make


def write_files(root: Path, files: dict[str, str]) -> Path:
    """Create `files` (relative name → text) under `root`; returns `root`."""
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


@pytest.fixture
def write() -> Callable[[Path, dict[str, str]], Path]:
    """write(root, {"name": "text", ...}) creates files (and folders) under root."""
    return write_files


@pytest.fixture
def unreachable_engine(monkeypatch: pytest.MonkeyPatch):
    """DOCKER_HOST at a socket that does not exist.

    docker-py (7.1, transport/unixconn.py) leaves the socket of a failed connection open, and
    it is freed only when the garbage collector breaks the exception's reference cycle, so
    the test's teardown collects it with that ResourceWarning silenced; otherwise it surfaces
    as an error in whichever test happens to run the collector."""
    import gc
    import warnings

    host = "unix:///nonexistent.sock"
    monkeypatch.setenv("DOCKER_HOST", host)
    yield host
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


_packages_distributions = functools.cache(importlib.metadata.packages_distributions)


@pytest.fixture
def fast_package_scan(monkeypatch: pytest.MonkeyPatch) -> None:
    """packages_distributions() reads every installed file list (about 0.3 s a save); what
    is installed does not change during the tests, so it is scanned once."""
    monkeypatch.setattr(importlib.metadata, "packages_distributions", _packages_distributions)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty model store of the test's own (CAIS_HOME)."""
    folder = tmp_path / "cais-home"
    monkeypatch.setenv("CAIS_HOME", str(folder))
    return folder


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty folder the test types its commands in (the current directory)."""
    folder = tmp_path / "work"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder
