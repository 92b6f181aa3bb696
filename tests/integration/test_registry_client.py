"""cais.registry.client against the real local registries (CNCF Distribution), open and with
htpasswd auth, and against a tiny HTTP server that serves a corrupted blob."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from cais.errors import AuthError, DigestMismatch, NotInRegistry, RegistryError
from cais.registry.client import RegistryClient, Transfer
from cais.registry.credentials import Credentials
from tests.support import REGISTRY_PASSWORD, REGISTRY_USER, free_port

pytestmark = [pytest.mark.registry]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def sha(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


class Counting(httpx.HTTPTransport):
    """The real transport, keeping (method, path) of every request."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, str]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append((request.method, request.url.path))
        return super().handle_request(request)

    def methods(self) -> list[str]:
        return [method for method, path in self.seen if path != "/v2/"]


@pytest.fixture
def repository() -> str:
    return f"cais-test-{uuid.uuid4().hex[:10]}/app"


def image(layers: list[bytes]) -> tuple[bytes, bytes]:
    """A config and a manifest naming `layers` (random bytes: the registry never looks inside)."""
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}},
        sort_keys=True,
    ).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha(config), "size": len(config)},
        "layers": [
            {"mediaType": OCI_LAYER, "digest": sha(layer), "size": len(layer)} for layer in layers
        ],
    }
    return config, json.dumps(manifest, sort_keys=True).encode()


def push(client: RegistryClient, repository: str, tag: str, blobs: list[bytes], **options):
    config, manifest = image(blobs)
    moved = [
        client.push_blob(repository, sha(blob), len(blob), lambda b=blob: io.BytesIO(b), **options)
        for blob in [config, *blobs]
    ]
    return moved, client.put_manifest(repository, tag, manifest, OCI_MANIFEST)


def test_push_then_pull_gives_the_same_bytes(registry, repository, tmp_path):
    layers = [os.urandom(300_000), os.urandom(1_000)]
    with RegistryClient(registry) as client:
        moved, digest = push(client, repository, "1.0", layers)
        assert moved == [Transfer.UPLOADED] * 3
        manifest = client.get_manifest(repository, "1.0")
        assert manifest.digest == digest
        assert manifest.media_type == OCI_MANIFEST
        assert client.get_manifest(repository, digest).content == manifest.content
        assert client.manifest_digest(repository, "1.0") == digest
        assert client.manifest_digest(repository, "2.0") is None
        for number, layer in enumerate(manifest.data["layers"]):
            target = client.get_blob(repository, layer["digest"], tmp_path / f"layer{number}")
            assert target.read_bytes() == layers[number]
        config = client.read_blob(repository, manifest.data["config"]["digest"])
        assert json.loads(config)["architecture"] == "amd64"


def test_a_second_push_only_asks(registry, repository):
    layers = [os.urandom(100_000), os.urandom(50_000)]
    with RegistryClient(registry) as client:
        push(client, repository, "1", layers)
    counting = Counting()
    with RegistryClient(registry, transport=counting) as client:
        moved, _ = push(client, repository, "2", layers)
    assert moved == [Transfer.PRESENT] * 3
    assert counting.methods() == ["HEAD", "HEAD", "HEAD", "PUT"]  # the manifest's PUT


def test_chunked_upload(registry, repository):
    layer = os.urandom(2_500_000)
    counting = Counting()
    with RegistryClient(registry, transport=counting) as client:
        moved, digest = push(client, repository, "1", [layer], chunk_size=1_000_000)
        assert client.get_manifest(repository, "1").digest == digest
    assert moved == [Transfer.UPLOADED, Transfer.UPLOADED]
    assert counting.methods().count("PATCH") == 1 + 3  # the config, then three chunks


def test_a_blob_in_another_repository_is_mounted(registry, repository):
    layer = os.urandom(200_000)
    other = repository.replace("/app", "/other")
    with RegistryClient(registry) as client:
        push(client, repository, "1", [layer])
    counting = Counting()
    with RegistryClient(registry, transport=counting) as client:
        moved = client.push_blob(
            other, sha(layer), len(layer), lambda: io.BytesIO(layer), mount_from=repository
        )
        assert client.blob_exists(other, sha(layer))
    assert moved is Transfer.MOUNTED
    assert counting.methods() == ["HEAD", "POST", "HEAD"]


class LoseSecondPatch(httpx.HTTPTransport):
    """Sends every request, but loses the answer to the second PATCH: the registry has the
    chunk, the client does not know it."""

    def __init__(self) -> None:
        super().__init__()
        self.patches = 0
        self.seen: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request.method)
        response = super().handle_request(request)
        if request.method == "PATCH":
            self.patches += 1
            if self.patches == 2:
                response.close()
                raise httpx.ReadError("Connection reset by peer", request=request)
        return response


def test_a_chunked_upload_whose_answer_is_lost_still_completes(registry, repository):
    # Distribution keeps the offset in the upload location's signed state, so a location older
    # than the chunks the registry holds is refused and the upload starts again; registries that
    # answer the status request with a Range resume instead (see the unit tests).
    layer = os.urandom(3_000_000)
    transport = LoseSecondPatch()
    with RegistryClient(registry, transport=transport, sleep=lambda s: None) as client:
        client.upload_blob(
            repository, sha(layer), len(layer), lambda: io.BytesIO(layer), chunk_size=1_000_000
        )
    with RegistryClient(registry) as client:
        assert client.blob_exists(repository, sha(layer))
    after_loss = transport.seen[transport.seen.index("PATCH") + 2 :]
    assert after_loss[:2] == ["GET", "POST"]  # asked where the upload stands, then began again
    assert after_loss[2:] == ["PATCH", "PATCH", "PATCH", "PUT"]


CHILD = """
import io, sys
from pathlib import Path
from cais.registry.client import RegistryClient

registry, repository, folder = sys.argv[1:]
folder = Path(folder)

class Stalling(io.RawIOBase):
    # Gives half the big blob, then says so and waits to be killed.
    def __init__(self):
        self.inner = open(folder / "big", "rb")
        self.sent = 0
    def readable(self):
        return True
    def readinto(self, buffer):
        if self.sent > 25_000_000:
            (folder / "halfway").touch()
            import time
            time.sleep(600)
        chunk = self.inner.read(len(buffer))
        buffer[: len(chunk)] = chunk
        self.sent += len(chunk)
        return len(chunk)

with RegistryClient(registry) as client:
    for name in ("config", "small"):
        data = (folder / name).read_bytes()
        client.push_blob(repository, (folder / (name + ".digest")).read_text(), len(data),
                         lambda d=data: io.BytesIO(d))
    size = (folder / "big").stat().st_size
    client.push_blob(repository, (folder / "big.digest").read_text(), size, Stalling)
"""


def test_a_push_killed_halfway_completes_when_run_again(registry, repository, tmp_path):
    big, small = os.urandom(50_000_000), os.urandom(10_000)
    config, manifest = image([small, big])
    for name, data in (("config", config), ("small", small), ("big", big)):
        (tmp_path / name).write_bytes(data)
        (tmp_path / f"{name}.digest").write_text(sha(data))
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, registry, repository, str(tmp_path)],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        for _ in range(600):
            if (tmp_path / "halfway").exists() or child.poll() is not None:
                break
            time.sleep(0.1)
        assert (tmp_path / "halfway").exists(), "the child never reached the big blob"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL

    counting = Counting()
    with RegistryClient(registry, transport=counting) as client:
        with pytest.raises(NotInRegistry):  # the tag never pointed at the incomplete image
            client.get_manifest(repository, "1")
        moved = [
            client.push_blob(repository, sha(data), len(data), lambda d=data: io.BytesIO(d))
            for data in (config, small, big)
        ]
        digest = client.put_manifest(repository, "1", manifest, OCI_MANIFEST)
        assert moved == [Transfer.PRESENT, Transfer.PRESENT, Transfer.UPLOADED]
        pulled = client.get_blob(repository, sha(big), tmp_path / "pulled")
        assert hashlib.sha256(pulled.read_bytes()).hexdigest() == sha(big).partition(":")[2]
        assert client.get_manifest(repository, "1").digest == digest
    assert counting.methods().count("PUT") == 2  # the big blob and the manifest


def test_the_auth_registry_with_the_right_credentials(auth_registry, repository, tmp_path):
    layer = os.urandom(10_000)
    credentials = Credentials(REGISTRY_USER, REGISTRY_PASSWORD)
    with RegistryClient(auth_registry, credentials=credentials) as client:
        moved, digest = push(client, repository, "1", [layer])
        assert moved == [Transfer.UPLOADED] * 2
        assert client.get_manifest(repository, "1").digest == digest


def test_credentials_from_the_docker_config(auth_registry, repository, docker_config, cais):
    login = cais(
        "login", auth_registry, "-u", REGISTRY_USER, "--password-stdin", input=REGISTRY_PASSWORD
    )
    assert login.returncode == 0, login.stderr
    layer = os.urandom(1_000)
    with RegistryClient(auth_registry) as client:
        assert (
            client.push_blob(repository, sha(layer), len(layer), lambda: io.BytesIO(layer))
            is Transfer.UPLOADED
        )


@pytest.mark.parametrize("password", ["wrong", "", REGISTRY_PASSWORD + "x"])
def test_wrong_credentials_are_one_sentence(auth_registry, repository, password):
    with RegistryClient(auth_registry, credentials=Credentials(REGISTRY_USER, password)) as client:
        with pytest.raises(AuthError) as caught:
            client.blob_exists(repository, sha(b"x"))
    assert caught.value.message == (
        f"The registry `{auth_registry}` refused the username or password for `{REGISTRY_USER}`"
    )
    assert REGISTRY_PASSWORD not in f"{caught.value.message} {caught.value.hint}"


def test_no_credentials_say_to_log_in(auth_registry, repository, docker_config):
    with RegistryClient(auth_registry) as client:
        with pytest.raises(AuthError) as caught:
            client.upload_blob(repository, sha(b"x"), 1, lambda: io.BytesIO(b"x"))
    assert caught.value.message == (
        f"The registry `{auth_registry}` needs a login to push to `{repository}`"
    )
    assert caught.value.hint == f"log in with `cais login {auth_registry}`"


def test_an_unreachable_registry_is_one_sentence(repository):
    address = f"127.0.0.1:{free_port()}"
    with RegistryClient(address) as client:
        with pytest.raises(RegistryError) as caught:
            client.get_manifest(repository, "1")
    assert caught.value.message.startswith(f"The registry `{address}` does not answer at {address}")
    assert "\n" not in caught.value.message
    assert caught.value.temporary is True


def test_the_base_image_stand_in_is_read(registry):
    with RegistryClient(registry) as client:
        manifest = client.get_manifest("python", "3.11-slim", platform="linux/amd64")
        config = json.loads(client.read_blob("python", manifest.data["config"]["digest"]))
        assert (config["os"], config["architecture"]) == ("linux", "amd64")
        assert any(e.startswith("PYTHON_VERSION=3.11") for e in config["config"]["Env"])
        for layer in manifest.data["layers"]:
            assert client.blob_exists("python", layer["digest"])


class _Corrupting(BaseHTTPRequestHandler):
    """A registry answering every blob with bytes other than those its digest names."""

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        body = b"{}" if self.path == "/v2/" else b"these are not the bytes you asked for"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:  # quiet
        pass


@pytest.fixture
def corrupting_registry():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Corrupting)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_corrupted_blob_is_an_error_and_no_file_is_kept(corrupting_registry, tmp_path):
    digest = sha(b"the real layer")
    with RegistryClient(corrupting_registry) as client:
        with pytest.raises(DigestMismatch) as caught:
            client.get_blob("team/app", digest, tmp_path / "layer")
        with pytest.raises(DigestMismatch):
            client.read_blob("team/app", digest)
    assert f"sent content for `team/app@{digest}` whose digest is" in caught.value.message
    assert list(Path(tmp_path).iterdir()) == []


class _Open(BaseHTTPRequestHandler):
    """A registry with no blobs and no auth."""

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def do_HEAD(self) -> None:  # noqa: N802
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def tls_registry(tmp_path):
    """A registry on 127.0.0.1 over HTTPS with a certificate of its own CA: (address, CA file)."""
    cert, key = _self_signed(tmp_path)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Open)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}", cert
    server.shutdown()
    server.server_close()


def _self_signed(folder: Path) -> tuple[Path, Path]:
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cais test registry")])
    start = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "registry.crt", folder / "registry.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def test_a_registry_with_a_private_ca_is_refused_then_trusted(tls_registry, monkeypatch):
    address, ca = tls_registry
    with RegistryClient(address) as client:
        with pytest.raises(RegistryError) as caught:
            client.blob_exists("team/app", sha(b"x"))
    assert caught.value.message.startswith(
        f"The registry `{address}` has a certificate cais does not trust"
    )
    assert "SSL_CERT_FILE" in caught.value.hint

    with RegistryClient(address, ca_bundle=ca) as client:
        assert client.blob_exists("team/app", sha(b"x")) is False
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    with RegistryClient(address) as client:
        assert client.blob_exists("team/app", sha(b"x")) is False
