"""cais.registry.client.RegistryClient against a small in-memory Distribution registry
served through httpx.MockTransport (the real registries are in tests/integration)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import uuid

import httpx
import pytest

from cais.errors import AuthError, DigestMismatch, NotInRegistry, PlanError, RegistryError
from cais.image.platform import Platform
from cais.registry.client import (
    MANIFEST_TYPES,
    Manifest,
    RegistryClient,
    Transfer,
    _redact,
    registry_errors,
)
from cais.registry.credentials import Credentials

HOST = "reg.example"
USER = Credentials("ana", "s3cret-password")
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def sha(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def basic(credentials: Credentials) -> str:
    pair = f"{credentials.username}:{credentials.password}".encode()
    return f"Basic {base64.b64encode(pair).decode()}"


class FakeRegistry:
    """Enough of the Distribution API for the client: blobs, uploads, mounts, manifests, and
    optionally Basic or Bearer auth. `faults` maps (method, path kind) to answers given first."""

    def __init__(self, *, auth: str | None = None, mounts: bool = True) -> None:
        self.auth = auth
        self.mounts = mounts
        self.blobs: dict[str, dict[str, bytes]] = {}  # repository → digest → content
        self.manifests: dict[str, dict[str, tuple[str, bytes]]] = {}
        self.uploads: dict[str, bytearray] = {}
        self.tokens: dict[str, str] = {}  # token → scope string
        self.requests: list[httpx.Request] = []
        self.token_requests: list[httpx.Request] = []
        self.faults: dict[tuple[str, str], list] = {}
        self.corrupt: set[str] = set()  # digests served with wrong bytes
        self.answer_digest: str | None = None  # a wrong Docker-Content-Digest for manifests

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)

    def client(self, **options) -> RegistryClient:
        self.sleeps: list[float] = []
        options.setdefault("credentials", None)
        return RegistryClient(HOST, transport=self.transport, sleep=self.sleeps.append, **options)

    def put_blob(self, repository: str, data: bytes) -> str:
        self.blobs.setdefault(repository, {})[sha(data)] = data
        return sha(data)

    def fail(self, method: str, kind: str, *answers) -> None:
        self.faults.setdefault((method, kind), []).extend(answers)

    def seen(self, method: str | None = None, kind: str | None = None) -> list[httpx.Request]:
        return [
            r
            for r in self.requests
            if (method is None or r.method == method) and (kind is None or _kind(r) == kind)
        ]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth.example":
            return self._token(request)
        self.requests.append(request)
        body = request.read()  # a streamed body is consumed as a server would
        fault = self.faults.get((request.method, _kind(request)))
        if fault:
            answer = fault.pop(0)
            if isinstance(answer, Exception):
                raise answer
            if callable(answer):
                result = answer(request, body)
                if result is not None:
                    return result
            elif answer is not None:  # None: answer normally this time
                return answer
        denied = self._check_auth(request)
        if denied is not None:
            return denied
        path = request.url.path
        if path == "/v2/":
            return httpx.Response(200, json={})
        repository, kind, rest = _split(path)
        if kind == "blobs" and rest.startswith("uploads"):
            return self._upload(request, repository, rest, body)
        if kind == "blobs":
            return self._blob(request, repository, rest)
        return self._manifest(request, repository, rest, body)

    def _check_auth(self, request: httpx.Request) -> httpx.Response | None:
        given = request.headers.get("authorization")
        if self.auth == "basic" and given != basic(USER):
            return _error(401, "UNAUTHORIZED", {"WWW-Authenticate": 'Basic realm="Registry"'})
        if self.auth == "bearer":
            challenge = 'Bearer realm="https://auth.example/token",service="reg.example"'
            token = (given or "").removeprefix("Bearer ")
            if token not in self.tokens:
                return _error(401, "UNAUTHORIZED", {"WWW-Authenticate": challenge})
            if request.url.path != "/v2/":
                repository = _split(request.url.path)[0]
                needed = "push" if request.method in ("POST", "PUT", "PATCH") else "pull"
                if f"repository:{repository}:" not in self.tokens[token] or (
                    needed == "push" and "push" not in self.tokens[token]
                ):
                    return _error(401, "DENIED", {"WWW-Authenticate": challenge})
        return None

    def _token(self, request: httpx.Request) -> httpx.Response:
        self.token_requests.append(request)
        if request.headers.get("authorization") not in (None, basic(USER)):
            return httpx.Response(401, json={"details": "incorrect username or password"})
        token = uuid.uuid4().hex
        self.tokens[token] = " ".join(request.url.params.get_list("scope"))
        return httpx.Response(200, json={"token": token, "expires_in": 300})

    def _blob(self, request: httpx.Request, repository: str, digest: str) -> httpx.Response:
        data = self.blobs.get(repository, {}).get(digest)
        if data is None:
            return _error(404, "BLOB_UNKNOWN")
        if digest in self.corrupt:
            data = b"not what was asked" + data[18:]
        headers = {"Docker-Content-Digest": digest, "Content-Length": str(len(data))}
        if request.method == "HEAD":
            return httpx.Response(200, headers=headers)
        return httpx.Response(200, headers=headers, content=data)

    def _upload(self, request, repository: str, rest: str, body: bytes) -> httpx.Response:
        params = request.url.params
        if request.method == "POST":
            if "mount" in params:
                source = self.blobs.get(params["from"], {})
                if self.mounts and params["mount"] in source:
                    self.put_blob(repository, source[params["mount"]])
                    return httpx.Response(201, headers={"Location": f"/v2/{repository}/blobs/x"})
            upload_id = uuid.uuid4().hex
            self.uploads[upload_id] = bytearray()
            return self._upload_answer(repository, upload_id, 202)
        upload_id = rest.removeprefix("uploads/")
        if upload_id not in self.uploads:
            return _error(404, "BLOB_UPLOAD_UNKNOWN")
        if request.method == "GET":
            return self._upload_answer(repository, upload_id, 204)
        if request.method == "PATCH":
            start = int(request.headers["content-range"].partition("-")[0])
            if start != len(self.uploads[upload_id]):
                return _error(416, "BLOB_UPLOAD_INVALID")
            self.uploads[upload_id] += body
            return self._upload_answer(repository, upload_id, 202)
        self.uploads[upload_id] += body  # PUT: the last piece, then the check
        data = bytes(self.uploads.pop(upload_id))
        if sha(data) != params["digest"]:
            return _error(400, "DIGEST_INVALID", detail="provided digest did not match")
        self.put_blob(repository, data)
        return httpx.Response(201, headers={"Docker-Content-Digest": sha(data)})

    def _upload_answer(self, repository: str, upload_id: str, status: int) -> httpx.Response:
        held = len(self.uploads[upload_id])
        location = f"https://{HOST}/v2/{repository}/blobs/uploads/{upload_id}?_state=SECRET{held}"
        return httpx.Response(
            status,
            headers={"Location": location, "Range": f"0-{max(held - 1, 0)}"},
        )

    def _manifest(self, request, repository: str, reference: str, body: bytes) -> httpx.Response:
        stored = self.manifests.setdefault(repository, {})
        if request.method == "PUT":
            media_type = request.headers["content-type"]
            stored[reference] = stored[sha(body)] = (media_type, body)
            digest = self.answer_digest or sha(body)
            return httpx.Response(201, headers={"Docker-Content-Digest": digest})
        if reference not in stored:
            return _error(404, "MANIFEST_UNKNOWN")
        media_type, content = stored[reference]
        return httpx.Response(
            200,
            headers={"Content-Type": media_type, "Docker-Content-Digest": sha(content)},
            content=content,
        )


def _kind(request: httpx.Request) -> str:
    if request.url.path == "/v2/":
        return "ping"
    _, kind, rest = _split(request.url.path)
    if kind == "blobs" and rest.startswith("uploads"):
        return "uploads"
    return kind


def _split(path: str) -> tuple[str, str, str]:
    inner = path.removeprefix("/v2/")
    for kind in ("/blobs/", "/manifests/"):
        if kind in inner:
            repository, _, rest = inner.partition(kind)
            return repository, kind.strip("/"), rest
    raise AssertionError(path)


def _error(status: int, code: str, headers: dict | None = None, detail=None) -> httpx.Response:
    body = {"errors": [{"code": code, "message": code.lower().replace("_", " "), "detail": detail}]}
    return httpx.Response(status, json=body, headers=headers)


def opener(data: bytes):
    return lambda: io.BytesIO(data)


# Pushing blobs: skip, upload, chunks, mounts


def test_a_blob_is_uploaded_once_then_skipped():
    registry = FakeRegistry()
    client = registry.client()
    data = b"layer" * 1000
    assert client.push_blob("team/app", sha(data), len(data), opener(data)) is Transfer.UPLOADED
    assert registry.blobs["team/app"][sha(data)] == data
    put = registry.seen("PUT", "uploads")[0]
    assert put.headers["content-length"] == str(len(data))
    assert "transfer-encoding" not in put.headers  # streamed with its length, not chunked
    assert put.url.params["digest"] == sha(data)
    before = len(registry.requests)
    assert client.push_blob("team/app", sha(data), len(data), opener(data)) is Transfer.PRESENT
    assert [r.method for r in registry.requests[before:]] == ["HEAD"]


def test_chunked_upload_sends_ranges_then_an_empty_put():
    registry = FakeRegistry()
    data = bytes(range(256)) * 40  # 10240 bytes
    registry.client().upload_blob("team/app", sha(data), len(data), opener(data), chunk_size=4096)
    patches = registry.seen("PATCH")
    assert [p.headers["content-range"] for p in patches] == ["0-4095", "4096-8191", "8192-10239"]
    put = registry.seen("PUT", "uploads")[0]
    assert put.content == b"" and put.headers["content-length"] == "0"
    assert registry.blobs["team/app"][sha(data)] == data


def test_a_blob_in_another_repository_is_mounted_not_sent():
    registry = FakeRegistry()
    data = b"shared base layer"
    digest = registry.put_blob("team/base", data)
    client = registry.client()
    moved = client.push_blob("team/app", digest, len(data), opener(data), mount_from="team/base")
    assert moved is Transfer.MOUNTED
    post = registry.seen("POST")[0]
    assert dict(post.url.params) == {"mount": digest, "from": "team/base"}
    assert not registry.seen("PUT") and not registry.seen("PATCH")
    assert registry.blobs["team/app"][digest] == data


@pytest.mark.parametrize("chunk_size", [None, 5])
def test_a_registry_that_will_not_mount_gets_an_upload_in_the_upload_it_opened(chunk_size):
    registry = FakeRegistry(mounts=False)
    data = b"shared base layer"
    digest = registry.put_blob("team/base", data)
    moved = registry.client().push_blob(
        "team/app", digest, len(data), opener(data), mount_from="team/base", chunk_size=chunk_size
    )
    assert moved is Transfer.UPLOADED
    assert len(registry.seen("POST")) == 1  # the upload the mount request opened was used
    assert registry.blobs["team/app"][digest] == data


def test_mounting_from_a_repository_without_the_blob_uploads_it():
    registry = FakeRegistry()
    data = b"new"
    moved = registry.client().push_blob(
        "team/app", sha(data), len(data), opener(data), mount_from="team/other"
    )
    assert moved is Transfer.UPLOADED
    assert registry.blobs["team/app"][sha(data)] == data


def test_content_shorter_than_its_size_is_refused():
    registry = FakeRegistry()
    data = b"short"
    with pytest.raises(DigestMismatch, match="ended at byte 5, short of its size 9"):
        registry.client().upload_blob("team/app", sha(data), 9, opener(data))
    assert "team/app" not in registry.blobs


def test_content_that_does_not_match_its_digest_is_refused_by_the_registry():
    registry = FakeRegistry()
    with pytest.raises(DigestMismatch) as caught:
        registry.client().upload_blob("team/app", sha(b"other"), 4, opener(b"mine"))
    assert "DIGEST_INVALID" in caught.value.message
    assert "SECRET" not in caught.value.message  # the upload location's state is left out


# Broken uploads resume where the registry stopped


def test_a_broken_chunked_upload_resumes_from_the_range_the_registry_holds():
    registry = FakeRegistry()
    data = bytes(range(200)) * 50  # 10000 bytes

    def take_then_break(request, body):  # the registry keeps the chunk, the answer is lost
        upload_id = request.url.path.rpartition("/")[2]
        registry.uploads[upload_id] += body
        raise httpx.ReadError("Connection reset by peer", request=request)

    registry.faults[("PATCH", "uploads")] = [None, take_then_break]
    client = registry.client()
    client.upload_blob("team/app", sha(data), len(data), opener(data), chunk_size=4000)
    assert registry.blobs["team/app"][sha(data)] == data
    ranges = [p.headers["content-range"] for p in registry.seen("PATCH")]
    assert ranges == ["0-3999", "4000-7999", "8000-9999"]  # nothing sent twice
    assert [r.method for r in registry.seen(kind="uploads")].count("GET") == 1
    assert registry.sleeps == [0.5]


def test_a_monolithic_upload_broken_by_a_server_error_starts_a_new_upload():
    registry = FakeRegistry()
    data = b"x" * 3000
    registry.fail("PUT", "uploads", _error(503, "UNAVAILABLE"))
    registry.client().upload_blob("team/app", sha(data), len(data), opener(data))
    assert registry.blobs["team/app"][sha(data)] == data
    assert len(registry.seen("POST")) == 2


def test_a_resumed_upload_skips_what_the_registry_holds_in_an_unseekable_stream():
    registry = FakeRegistry()
    data = bytes(range(256)) * 8

    def keep_half(request, body):
        upload_id = request.url.path.rpartition("/")[2]
        registry.uploads[upload_id] += body[:1000]
        raise httpx.WriteError("Broken pipe", request=request)

    registry.fail("PUT", "uploads", keep_half)

    class Pipe(io.RawIOBase):
        def __init__(self):
            self.inner = io.BytesIO(data)

        def readable(self):
            return True

        def readinto(self, buffer):
            chunk = self.inner.read(len(buffer))
            buffer[: len(chunk)] = chunk
            return len(chunk)

    registry.client().upload_blob("team/app", sha(data), len(data), Pipe)
    assert registry.blobs["team/app"][sha(data)] == data
    assert registry.seen("PUT", "uploads")[-1].headers["content-length"] == str(len(data) - 1000)


def test_an_upload_failing_every_time_reports_the_last_failure():
    registry = FakeRegistry()
    registry.fail("PUT", "uploads", *[_error(503, "UNAVAILABLE")] * 3)
    with pytest.raises(RegistryError) as caught:
        registry.client(attempts=3).upload_blob("team/app", sha(b"a"), 1, opener(b"a"))
    assert caught.value.temporary is True
    assert "503 Service Unavailable to PUT" in caught.value.message


# Retries


def test_too_many_requests_waits_as_long_as_retry_after_says():
    registry = FakeRegistry()
    registry.put_blob("team/app", b"a")
    registry.fail("HEAD", "blobs", httpx.Response(429, headers={"Retry-After": "3"}))
    client = registry.client()
    assert client.blob_exists("team/app", sha(b"a")) is True
    assert registry.sleeps == [3.0]


def test_retry_after_as_a_date_and_a_cap():
    registry = FakeRegistry()
    registry.fail(
        "HEAD",
        "blobs",
        httpx.Response(503, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}),
        httpx.Response(429, headers={"Retry-After": "86400"}),
    )
    assert registry.client().blob_exists("team/app", sha(b"a")) is False
    assert registry.sleeps == [0.0, 60.0]  # a date in the past: at once; a day: capped


def test_server_errors_are_retried_with_growing_waits_then_succeed():
    registry = FakeRegistry()
    registry.put_blob("team/app", b"a")
    registry.fail("HEAD", "blobs", httpx.Response(500), httpx.Response(502), httpx.Response(504))
    assert registry.client().blob_exists("team/app", sha(b"a")) is True
    assert registry.sleeps == [0.5, 1.0, 2.0]


def test_a_server_error_that_lasts_is_reported_as_temporary():
    registry = FakeRegistry()
    registry.fail("GET", "manifests", *[httpx.Response(503)] * 5)
    with pytest.raises(RegistryError) as caught:
        registry.client(attempts=5).get_manifest("team/app", "1")
    assert caught.value.temporary is True
    assert len(registry.seen("GET", "manifests")) == 5
    assert registry.sleeps == [0.5, 1.0, 2.0, 4.0]


@pytest.mark.parametrize("status", [400, 404, 405, 409])
def test_client_errors_are_not_retried(status):
    registry = FakeRegistry()
    registry.fail("GET", "manifests", httpx.Response(status))
    with pytest.raises(RegistryError) as caught:
        registry.client().get_manifest("team/app", "1")
    assert caught.value.temporary is False
    assert len(registry.seen("GET", "manifests")) == 1
    assert registry.sleeps == []


@pytest.mark.parametrize("error", [httpx.ReadError, httpx.RemoteProtocolError, httpx.ReadTimeout])
def test_a_broken_connection_is_retried(error):
    registry = FakeRegistry()
    registry.manifests["team/app"] = {"1": (OCI_MANIFEST, b"{}")}
    registry.fail("GET", "manifests", error("Connection reset by peer"))
    assert registry.client().get_manifest("team/app", "1").content == b"{}"
    assert registry.sleeps == [0.5]


def test_a_refused_connection_is_one_sentence_at_once():
    def refuse(request):
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    client = RegistryClient(HOST, credentials=None, transport=httpx.MockTransport(refuse))
    with pytest.raises(RegistryError) as caught:
        client.blob_exists("team/app", sha(b"a"))
    assert caught.value.message == (
        "The registry `reg.example` does not answer at reg.example: [Errno 111] Connection refused"
    )
    assert caught.value.temporary is True
    assert "running" in caught.value.hint


def test_an_untrusted_certificate_says_how_to_trust_it():
    def untrusted(request):
        raise httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED] self-signed", request=request)

    client = RegistryClient(HOST, credentials=None, transport=httpx.MockTransport(untrusted))
    with pytest.raises(RegistryError) as caught:
        client.blob_exists("team/app", sha(b"a"))
    assert "has a certificate cais does not trust" in caught.value.message
    assert "SSL_CERT_FILE" in caught.value.hint


def test_a_loopback_registry_falls_back_to_plain_http():
    seen = []

    def handler(request):
        seen.append(request.url.scheme)
        if request.url.scheme == "https":
            raise httpx.ConnectError("wrong version number", request=request)
        return httpx.Response(404) if request.method == "HEAD" else httpx.Response(200)

    client = RegistryClient(
        "127.0.0.1:5000", credentials=None, transport=httpx.MockTransport(handler)
    )
    assert client.blob_exists("a", sha(b"a")) is False
    assert client.blob_exists("a", sha(b"b")) is False
    assert seen == ["https", "http", "http", "http"]  # the scheme is found once


def test_a_remote_registry_is_never_asked_over_plain_http():
    seen = []

    def handler(request):
        seen.append(request.url.scheme)
        raise httpx.ConnectError("wrong version number", request=request)

    with pytest.raises(RegistryError, match="does not answer"):
        RegistryClient(HOST, credentials=None, transport=httpx.MockTransport(handler)).blob_exists(
            "a", sha(b"a")
        )
    assert seen == ["https"]


# Auth


def test_bearer_tokens_are_asked_per_scope_and_kept():
    registry = FakeRegistry(auth="bearer")
    data = b"blob"
    client = registry.client(credentials=USER)
    client.push_blob("team/app", sha(data), len(data), opener(data))
    client.push_blob("team/app", sha(data), len(data), opener(data))
    assert client.blob_exists("team/app", sha(data))  # a read of its own: pull only
    assert client.blob_exists("team/app", sha(data))
    scopes = [r.url.params.get_list("scope") for r in registry.token_requests]
    assert scopes == [["repository:team/app:pull,push"], ["repository:team/app:pull"]]
    first = registry.token_requests[0]
    assert first.headers["authorization"] == basic(USER)
    assert first.url.params["service"] == "reg.example"
    assert first.url.params["account"] == "ana"
    statuses = [r.headers.get("authorization", "").split(" ")[0] for r in registry.requests]
    assert statuses[0] == ""  # the ping, which tells the scheme
    assert set(statuses[1:]) == {"Bearer"}


def test_a_mount_asks_for_pull_on_the_source_repository():
    registry = FakeRegistry(auth="bearer")
    digest = registry.put_blob("team/base", b"base")
    moved = registry.client(credentials=USER).mount_blob(
        "team/app", digest, "team/base", size=4, opener=opener(b"base")
    )
    assert moved is Transfer.MOUNTED
    assert registry.token_requests[-1].url.params.get_list("scope") == [
        "repository:team/app:pull,push",
        "repository:team/base:pull",
    ]


def test_an_expired_token_is_replaced_once():
    registry = FakeRegistry(auth="bearer")
    registry.put_blob("team/app", b"a")
    client = registry.client(credentials=USER)
    assert client.blob_exists("team/app", sha(b"a"))
    registry.tokens.clear()  # every token expires
    assert client.blob_exists("team/app", sha(b"a"))
    assert len(registry.token_requests) == 2
    assert [r.method for r in registry.requests] == ["GET", "HEAD", "HEAD", "HEAD"]


def test_anonymous_tokens_for_a_public_repository():
    registry = FakeRegistry(auth="bearer")
    registry.manifests["library/python"] = {"3.11": (OCI_MANIFEST, b"{}")}
    manifest = registry.client().get_manifest("library/python", "3.11")
    assert manifest.content == b"{}"
    assert "authorization" not in registry.token_requests[0].headers
    assert "account" not in registry.token_requests[0].url.params


def test_a_token_without_the_scope_is_a_refusal_naming_the_account():
    registry = FakeRegistry(auth="bearer")

    def read_only(request):  # the token service gives pull only
        answer = FakeRegistry._token(registry, request)
        for token in registry.tokens:
            registry.tokens[token] = registry.tokens[token].replace("pull,push", "pull")
        return answer

    registry._token = read_only
    with pytest.raises(AuthError) as caught:
        registry.client(credentials=USER).upload_blob("team/app", sha(b"a"), 1, opener(b"a"))
    assert (
        caught.value.message == "The registry `reg.example` refused to let `ana` push to `team/app`"
    )
    assert "cais login reg.example" in caught.value.hint
    assert len(registry.token_requests) == 2  # one more try with a fresh token, then stop


def test_wrong_credentials_for_a_token_service():
    registry = FakeRegistry(auth="bearer")
    with pytest.raises(AuthError) as caught:
        registry.client(credentials=Credentials("ana", "wrong")).blob_exists("team/app", "sha256:0")
    assert (
        caught.value.message
        == "The registry `reg.example` refused the username or password for `ana`"
    )
    assert "wrong" not in f"{caught.value.message} {caught.value.hint}"


def test_basic_auth_sends_the_credentials_after_the_ping():
    registry = FakeRegistry(auth="basic")
    registry.put_blob("team/app", b"a")
    client = registry.client(credentials=USER)
    assert client.blob_exists("team/app", sha(b"a"))
    assert [r.headers.get("authorization") for r in registry.requests] == [None, basic(USER)]


def test_wrong_basic_credentials_are_one_sentence():
    registry = FakeRegistry(auth="basic")
    with pytest.raises(AuthError) as caught:
        registry.client(credentials=Credentials("ana", "wrong")).blob_exists("team/app", sha(b"a"))
    assert (
        caught.value.message
        == "The registry `reg.example` refused the username or password for `ana`"
    )
    assert len(registry.requests) == 2  # the ping and one refused request: no loop


def test_no_credentials_where_they_are_needed_says_to_log_in():
    registry = FakeRegistry(auth="basic")
    with pytest.raises(AuthError) as caught:
        registry.client().upload_blob("team/app", sha(b"a"), 1, opener(b"a"))
    assert caught.value.message == "The registry `reg.example` needs a login to push to `team/app`"
    assert caught.value.hint == "log in with `cais login reg.example`"


@pytest.mark.parametrize(
    "ask",
    [
        lambda c: c.push_blob("team/app", sha(b"a"), 1, opener(b"a")),
        lambda c: c.blob_exists("team/app", sha(b"a"), push=True),
        lambda c: c.manifest_digest("team/app", "1", push=True),
    ],
    ids=["push_blob", "blob_exists", "manifest_digest"],
)
def test_a_refused_question_of_a_push_names_the_push(ask):
    """A push asks first whether the registry has what it would send: a refusal then says that
    pushing needs a login, not pulling (a token registry answers these anonymously, and
    refuses the upload itself, which names the push already)."""
    registry = FakeRegistry(auth="basic")
    with pytest.raises(AuthError) as caught:
        ask(registry.client(credentials=None))
    assert caught.value.message == "The registry `reg.example` needs a login to push to `team/app`"


def test_docker_hub_is_reached_at_its_api_host_and_logged_in_to_plainly():
    seen = []

    def handler(request):
        seen.append(request.url.host)
        return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="x"'})

    client = RegistryClient("docker.io", credentials=None, transport=httpx.MockTransport(handler))
    with pytest.raises(AuthError) as caught:
        client.get_manifest("library/python", "3.11")
    assert set(seen) == {"registry-1.docker.io"}
    assert caught.value.hint == "log in with `cais login`"


def test_credentials_come_from_the_docker_config_when_the_registry_asks(docker_config):
    auth = base64.b64encode(b"ana:s3cret-password").decode()
    (docker_config / "config.json").write_text(json.dumps({"auths": {HOST: {"auth": auth}}}))
    registry = FakeRegistry(auth="basic")
    registry.put_blob("team/app", b"a")
    client = RegistryClient(HOST, transport=registry.transport)
    assert client.blob_exists("team/app", sha(b"a"))
    assert registry.requests[-1].headers["authorization"] == basic(USER)
    assert "s3cret" not in repr(client)


def test_the_docker_config_is_not_read_for_an_open_registry(docker_config):
    (docker_config / "config.json").write_text("{ broken")
    registry = FakeRegistry()
    registry.put_blob("team/app", b"a")
    assert RegistryClient(HOST, transport=registry.transport).blob_exists("team/app", sha(b"a"))


# Reading manifests and blobs


def index_of(*platforms: dict) -> bytes:
    manifests = [
        {"mediaType": OCI_MANIFEST, "digest": sha(json.dumps(p).encode()), "size": 2, "platform": p}
        for p in platforms
    ]
    return json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}).encode()


AMD64 = {"os": "linux", "architecture": "amd64"}
ARM64 = {"os": "linux", "architecture": "arm64", "variant": "v8"}


def registry_with_index() -> FakeRegistry:
    registry = FakeRegistry()
    index = index_of(AMD64, ARM64)
    stored = {"3.11": (OCI_INDEX, index)}
    for platform in (AMD64, ARM64):
        content = json.dumps(platform).encode()
        stored[sha(content)] = (OCI_MANIFEST, content)
    registry.manifests["library/python"] = stored
    return registry


def test_get_manifest_asks_for_every_manifest_type():
    registry = registry_with_index()
    manifest = registry.client().get_manifest("library/python", "3.11")
    assert manifest.is_index and manifest.media_type == OCI_INDEX
    assert manifest.digest == sha(manifest.content)
    accept = registry.seen("GET", "manifests")[0].headers["accept"]
    assert [t.strip() for t in accept.split(",")] == [t.value for t in MANIFEST_TYPES]


@pytest.mark.parametrize(
    ("platform", "expected"),
    [("linux/amd64", AMD64), ("linux/arm64", ARM64), ("linux/arm64/v8", ARM64)],
)
def test_an_index_is_resolved_to_the_platform(platform, expected):
    registry = registry_with_index()
    manifest = registry.client().get_manifest("library/python", "3.11", platform=platform)
    assert manifest.data == expected
    assert not manifest.is_index
    assert registry.seen("GET", "manifests")[1].url.path.endswith(
        sha(json.dumps(expected).encode())
    )


def test_a_platform_the_index_lacks_is_named_with_those_it_has():
    registry = registry_with_index()
    with pytest.raises(NotInRegistry) as caught:
        registry.client().get_manifest("library/python", "3.11", platform="linux/s390x")
    assert caught.value.message == (
        "`reg.example/library/python:3.11` has no `linux/s390x` variant "
        "(it has `linux/amd64`, `linux/arm64/v8`)"
    )
    assert caught.value.hint == "choose one of those platforms with `--platform`, or another image"


def registry_with(*platforms: dict) -> FakeRegistry:
    registry = FakeRegistry()
    stored = {"1": (OCI_INDEX, index_of(*platforms))}
    for platform in platforms:
        content = json.dumps(platform).encode()
        stored[sha(content)] = (OCI_MANIFEST, content)
    registry.manifests["team/app"] = stored
    return registry


@pytest.mark.parametrize(
    ("entries", "wanted", "index"),
    [
        ([AMD64, ARM64], "linux/arm64/v8", 1),
        ([AMD64, ARM64], "linux/aarch64", 1),  # uname's name for it
        ([{"os": "linux", "architecture": "arm64"}], "linux/arm64/v8", 0),  # no variant is v8
        ([{"os": "linux", "architecture": "arm", "variant": "v7"}], "linux/arm", 0),  # v7
        ([{"os": "linux", "architecture": "arm", "variant": "v7"}], "linux/arm/v6", None),
        ([{"os": "unknown", "architecture": "unknown"}, AMD64], "linux/amd64", 1),
        ([AMD64], "windows/amd64", None),
    ],
)
def test_an_index_entry_is_chosen_as_the_platform_type_matches(entries, wanted, index):
    registry = registry_with(*entries)
    client = registry.client()
    if index is None:
        with pytest.raises(NotInRegistry, match="has no `"):
            client.get_manifest("team/app", "1", platform=wanted)
    else:
        assert client.get_manifest("team/app", "1", platform=wanted).data == entries[index]
        by_type = client.get_manifest("team/app", "1", platform=Platform.parse(wanted))
        assert by_type.data == entries[index]


def test_a_malformed_platform_is_one_sentence():
    with pytest.raises(PlanError, match="`linux` is not of the form OS/ARCH"):
        registry_with_index().client().get_manifest("library/python", "3.11", platform="linux")


@pytest.mark.parametrize(
    ("media_type", "is_index"),
    [
        ("application/vnd.oci.image.index.v1+json", True),
        ("application/vnd.docker.distribution.manifest.list.v2+json", True),
        ("application/vnd.oci.image.manifest.v1+json", False),
        ("application/json", False),  # not a media type cais knows
        ("", False),
    ],
)
def test_a_manifest_is_an_index_by_its_media_type(media_type, is_index):
    assert Manifest(media_type, "sha256:" + "0" * 64, b"{}").is_index is is_index


def test_a_missing_manifest_is_one_sentence():
    with pytest.raises(NotInRegistry) as caught:
        FakeRegistry().client().get_manifest("team/app", "9.9")
    assert (
        caught.value.message
        == "`reg.example/team/app:9.9` does not exist in the registry `reg.example`"
    )


def test_a_manifest_fetched_by_digest_is_checked():
    registry = FakeRegistry()
    wanted = "sha256:" + "0" * 64
    registry.manifests["team/app"] = {wanted: (OCI_MANIFEST, b'{"other": 1}')}
    with pytest.raises(DigestMismatch):
        registry.client().get_manifest("team/app", wanted)


def test_a_blob_is_streamed_to_a_file(tmp_path):
    registry = FakeRegistry()
    data = bytes(range(256)) * 5000
    digest = registry.put_blob("team/app", data)
    target = registry.client().get_blob("team/app", digest, tmp_path / "blob")
    assert target.read_bytes() == data
    assert [p.name for p in tmp_path.iterdir()] == ["blob"]


def test_a_corrupted_blob_is_an_error_and_nothing_is_kept(tmp_path):
    registry = FakeRegistry()
    digest = registry.put_blob("team/app", b"the real content of the layer")
    registry.corrupt.add(digest)
    with pytest.raises(DigestMismatch) as caught:
        registry.client().get_blob("team/app", digest, tmp_path / "blob")
    assert f"`team/app@{digest}` whose digest is `sha256:" in caught.value.message
    assert "nothing was kept" in caught.value.hint
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(DigestMismatch):
        registry.client().read_blob("team/app", digest)


def test_a_download_broken_midway_starts_again(tmp_path):
    registry = FakeRegistry()
    digest = registry.put_blob("team/app", b"layer bytes")

    class Broken(httpx.SyncByteStream):
        def __iter__(self):
            yield b"layer"
            raise httpx.ReadError("Connection reset by peer")

    registry.fail("GET", "blobs", httpx.Response(200, stream=Broken()))
    target = registry.client().get_blob("team/app", digest, tmp_path / "blob")
    assert target.read_bytes() == b"layer bytes"
    assert [p.name for p in tmp_path.iterdir()] == ["blob"]


def test_a_missing_blob_is_not_in_registry(tmp_path):
    with pytest.raises(NotInRegistry) as caught:
        FakeRegistry().client().get_blob("team/app", sha(b"x"), tmp_path / "blob")
    assert "BLOB_UNKNOWN" in caught.value.message
    assert list(tmp_path.iterdir()) == []


def test_a_digest_cais_cannot_check_is_refused(tmp_path):
    with pytest.raises(DigestMismatch, match="is not a digest cais can check"):
        FakeRegistry().client().get_blob("team/app", "md5:abc", tmp_path / "blob")


# Manifests go last, checked


def test_put_manifest_returns_the_digest_the_registry_agrees_on():
    registry = FakeRegistry()
    content = b'{"schemaVersion": 2}'
    digest = registry.client().put_manifest("team/app", "1.0", content, OCI_MANIFEST)
    assert digest == sha(content)
    put = registry.seen("PUT", "manifests")[0]
    assert put.headers["content-type"] == OCI_MANIFEST
    assert registry.manifests["team/app"]["1.0"] == (OCI_MANIFEST, content)


def test_a_registry_reporting_another_manifest_digest_is_an_error():
    registry = FakeRegistry()
    registry.answer_digest = "sha256:" + "1" * 64
    with pytest.raises(DigestMismatch, match="stored the manifest of `reg.example/team/app:1.0`"):
        registry.client().put_manifest("team/app", "1.0", b"{}", OCI_MANIFEST)


def test_a_manifest_put_by_a_digest_it_does_not_have_is_refused_before_sending():
    registry = FakeRegistry()
    with pytest.raises(DigestMismatch):
        registry.client().put_manifest("team/app", "sha256:" + "2" * 64, b"{}", OCI_MANIFEST)
    assert not registry.requests


def test_a_manifest_naming_missing_blobs_keeps_the_registry_diagnostics():
    registry = FakeRegistry()
    registry.fail("PUT", "manifests", _error(400, "MANIFEST_BLOB_UNKNOWN", detail="sha256:abc"))
    with pytest.raises(RegistryError) as caught:
        registry.client().put_manifest("team/app", "1.0", b"{}", OCI_MANIFEST)
    assert caught.value.message.endswith(
        ": MANIFEST_BLOB_UNKNOWN: manifest blob unknown (sha256:abc)"
    )
    assert caught.value.status == 400


# Errors: one boundary, nothing secret


@pytest.mark.parametrize(
    "text",
    [
        "PATCH https://r/v2/a/blobs/uploads/1?_state=eyJhbGciOi&digest=sha256:1",
        "GET https://bucket.s3.amazonaws.com/x?X-Amz-Signature=abc&X-Amz-Credential=AKIA",
        "GET https://auth/token?account=ana&scope=x",
        "GET https://cdn/x?sig=abc",
    ],
)
def test_redact_hides_secrets_in_urls(text):
    redacted = _redact(text)
    for secret in ("eyJhbGciOi", "abc", "AKIA", "ana"):
        assert secret not in redacted
    assert "***" in redacted


def _every_httpx_error() -> list[type[Exception]]:
    found = []
    for value in vars(httpx).values():
        if isinstance(value, type) and issubclass(value, Exception):
            found.append(value)
    return sorted(found, key=lambda c: c.__name__)


@pytest.mark.parametrize("cls", _every_httpx_error(), ids=lambda c: c.__name__)
def test_every_httpx_error_becomes_a_registry_error(cls):
    request = httpx.Request("GET", "https://reg.example/v2/?_state=SECRET")
    if cls is httpx.HTTPStatusError:
        error = cls("x", request=request, response=httpx.Response(502, request=request))
    elif issubclass(cls, httpx.RequestError) or cls in (httpx.HTTPError,):
        error = cls("failed at https://reg.example/v2/?_state=SECRET")
    else:
        error = (
            cls("failed at https://reg.example/v2/?_state=SECRET")
            if cls
            not in (
                httpx.StreamConsumed,
                httpx.StreamClosed,
                httpx.ResponseNotRead,
                httpx.RequestNotRead,
            )
            else cls()
        )
    with pytest.raises(RegistryError) as caught:
        with registry_errors(HOST):
            raise error
    assert caught.value.__cause__ is error
    assert "SECRET" not in caught.value.message
    assert "`reg.example`" in caught.value.message


def test_cais_errors_pass_the_boundary_unchanged():
    original = AuthError("no")
    with pytest.raises(AuthError) as caught:
        with registry_errors(HOST):
            raise original
    assert caught.value is original


def test_a_ca_file_that_cannot_be_read_is_one_sentence(tmp_path):
    with pytest.raises(
        RegistryError, match="The CA certificate file `.*missing.pem` cannot be read"
    ):
        RegistryClient(HOST, ca_bundle=tmp_path / "missing.pem")


def test_get_blob_tells_progress_and_makes_the_folder(tmp_path):
    registry = FakeRegistry()
    data = bytes(range(256)) * 10_000
    digest = registry.put_blob("team/app", data)
    received: list[int] = []
    target = registry.client().get_blob(
        "team/app", digest, tmp_path / "cache" / "blobs" / "layer", progress=received.append
    )
    assert target.read_bytes() == data
    assert sum(received) == len(data)


def test_manifest_digest_is_asked_with_head():
    registry = FakeRegistry()
    client = registry.client()
    assert client.manifest_digest("team/app", "1.0") is None
    digest = client.put_manifest("team/app", "1.0", b'{"schemaVersion": 2}', OCI_MANIFEST)
    assert client.manifest_digest("team/app", "1.0") == digest
    heads = registry.seen("HEAD", "manifests")
    assert len(heads) == 2 and "accept" in heads[0].headers


@pytest.mark.parametrize("size", [0, 1, 2])
@pytest.mark.parametrize("chunk_size", [None, 1])
def test_tiny_and_empty_blobs(size, chunk_size):
    registry = FakeRegistry()
    data = b"z" * size
    registry.client().upload_blob("team/app", sha(data), size, opener(data), chunk_size=chunk_size)
    assert registry.blobs["team/app"][sha(data)] == data
    assert len(registry.seen("PATCH")) == (size if chunk_size else 0)
