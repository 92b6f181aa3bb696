"""A registry client over the Distribution API (the OCI distribution spec), on httpx.

It reads manifests (an index resolved to one platform) and blobs (streamed to a file, checked
against their digest on the way in), and writes blobs (skipped when present, mounted from
another repository, uploaded in one request or in chunks, resumed after a broken connection)
and manifests (last, so a tag never names an incomplete image).

Auth follows the registry's `WWW-Authenticate` challenge: none, Basic, or Bearer tokens per
scope (Docker Hub's flow), with the credentials of docker's config file.  Transient failures
(a broken connection, 408, 429, 5xx) are retried with backoff; everything else fails at once.
httpx errors become cais errors in one place, `registry_errors`.
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import enum
import hashlib
import json
import os
import re
import ssl
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import httpx

from cais.errors import (
    AuthError,
    CaisError,
    DigestMismatch,
    NotInRegistry,
    PlanError,
    RegistryError,
)
from cais.image.index import select_manifest
from cais.image.media import MediaType
from cais.image.platform import Platform
from cais.registry import credentials as saved
from cais.registry.auth import (
    Challenge,
    api_host,
    fetch_token,
    parse_challenge,
    refused,
    response_error,
    schemes,
)
from cais.registry.credentials import Credentials
from cais.registry.reference import DOCKER_HUB

__all__ = [
    "MANIFEST_TYPES",
    "Manifest",
    "Opener",
    "RegistryClient",
    "Transfer",
    "registry_errors",
]

# What a manifest request accepts, in this order: an index first, so a multi-platform tag is
# seen as one.
MANIFEST_TYPES = (
    MediaType.OCI_INDEX,
    MediaType.DOCKER_MANIFEST_LIST,
    MediaType.OCI_MANIFEST,
    MediaType.DOCKER_MANIFEST,
)

# Opens the content of a blob from its start; called again for every attempt or resume.  The
# client reads only what it sends, so a stream that counts its reads counts the bytes sent.
Opener = Callable[[], BinaryIO]

_READ_SIZE = 1 << 20
_MAX_WAIT = 60.0  # the longest Retry-After honoured, in seconds
# A refused or unresolvable connection is not retried: nothing listens, and waiting rarely helps.
_TRANSIENT = (
    httpx.ReadError,
    httpx.WriteError,
    httpx.RemoteProtocolError,
    httpx.ReadTimeout,
    httpx.WriteTimeout,
    httpx.PoolTimeout,
)
_SECRET_PARAMS = re.compile(
    r"([?&](?:_state|token|access_token|refresh_token|account|sig|signature|x-amz-[a-z-]+)=)[^&\s]*",
    re.IGNORECASE,
)
_FROM_CONFIG = object()  # credentials not given: read docker's config file when asked


class Transfer(enum.Enum):
    """What pushing a blob took."""

    PRESENT = "present"  # the repository had it: nothing sent
    MOUNTED = "mounted"  # another repository of the registry had it: nothing sent
    UPLOADED = "uploaded"


@dataclass(frozen=True)
class Manifest:
    """A manifest or index as the registry sent it: its exact bytes make its digest."""

    media_type: str
    digest: str
    content: bytes

    @property
    def data(self) -> dict:
        return json.loads(self.content)

    @property
    def is_index(self) -> bool:
        try:
            return MediaType(self.media_type).is_index
        except ValueError:
            return False  # a media type cais does not know is no index it can read

    def __repr__(self) -> str:
        return f"Manifest(media_type={self.media_type!r}, digest={self.digest!r})"


class RegistryClient:
    """A client for one registry (`docker.io`, `ghcr.io`, `127.0.0.1:5000`); threads may share
    it (at worst two of them fetch the same token).

    Parameters:
        registry: the registry as references name it; Docker Hub is `docker.io`.
        credentials: a username and password; by default those docker's config file (or its
            credential helper) holds for the registry, read only when the registry asks;
            None for anonymous access.
        transport: an httpx transport (tests pass `httpx.MockTransport`).
        ca_bundle: a PEM file of extra CA certificates; `SSL_CERT_FILE` is used when not given,
            added to the system's certificates.
        attempts: how many times a transient failure is tried before it is reported.
        backoff: the first wait between attempts, in seconds, doubled each time.
        sleep: how to wait (tests record the waits instead).
    """

    def __init__(
        self,
        registry: str | None,
        *,
        credentials: Credentials | None | object = _FROM_CONFIG,
        transport: httpx.BaseTransport | None = None,
        ca_bundle: str | os.PathLike[str] | None = None,
        timeout: float = 60.0,
        attempts: int = 5,
        backoff: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.registry = registry or DOCKER_HUB
        self._host = api_host(registry)
        self._credentials = credentials
        self._attempts = max(1, attempts)
        self._backoff = backoff
        self._sleep = sleep
        self._base: str | None = None
        self._challenge: Challenge | None = None
        self._tokens: dict[tuple[str, ...], str] = {}
        self._client = httpx.Client(
            transport=transport,
            verify=_ssl_context(ca_bundle) if transport is None else True,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
        )

    def __repr__(self) -> str:
        return f"RegistryClient(registry={self.registry!r})"

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def check_login(self) -> None:
        """Return when the registry accepts the client's credentials (or wants none); raise
        AuthError when it refuses them."""
        with self._errors():
            self._base_url()
            challenge = self._challenge
            if challenge is None:
                return
            if challenge.scheme.lower() == "bearer":
                fetch_token(self._client, challenge, self._saved_credentials(), self.registry)
                return
            response = self._send("GET", f"{self._base_url()}/v2/", ())
            if response.status_code != 200:
                raise self._response_error(response)

    # Reading

    def get_manifest(
        self, repository: str, reference: str, *, platform: Platform | str | None = None
    ) -> Manifest:
        """The manifest `reference` (a tag or digest) names; with `platform` (`os/arch[/variant]`),
        an index is resolved to that platform's manifest."""
        if isinstance(platform, str):
            platform = Platform.parse(platform)
        with self._errors():
            manifest = self._get_manifest(repository, reference)
            if platform is None or not manifest.is_index:
                return manifest
            name = f"`{self._name(repository, reference)}`"
            try:
                chosen = select_manifest(manifest.data, platform, image=name)
            except PlanError as exc:
                raise NotInRegistry(
                    exc.message,
                    hint="choose one of those platforms with `--platform`, or another image",
                ) from None
            return self._get_manifest(repository, chosen["digest"])

    def manifest_digest(self, repository: str, reference: str, *, push: bool = False) -> str | None:
        """The digest of the manifest a tag names (a HEAD request), None when there is none: a
        sink that finds the digest it would put has nothing to do. With `push`, the question is
        asked with the rights a push needs, so a refusal names the push."""
        with self._errors():
            response = self._ask_manifest("HEAD", repository, reference, push=push)
            if response.status_code == 404:
                return None
            if response.status_code != 200:
                raise self._response_error(response)
            return response.headers.get("docker-content-digest")

    def referrers(self, repository: str, digest: str) -> list[dict] | None:
        """The index entries of the manifests whose `subject` is `digest`, from the OCI 1.1
        referrers API (every page of it); None when the registry has no such API (404)."""
        entries: list[dict] = []
        with self._errors():
            first = self._url(repository, "referrers", digest)
            url: str | None = first
            while url is not None:
                response = self._send(
                    "GET",
                    url,
                    _pull(repository),
                    headers={"Accept": MediaType.OCI_INDEX.value},
                    follow=True,
                )
                if response.status_code == 404 and url == first:
                    return None
                if response.status_code != 200:
                    raise self._response_error(response)
                try:
                    page = response.json().get("manifests") or []
                except (ValueError, AttributeError):
                    page = None
                if not isinstance(page, list):
                    raise RegistryError(
                        f"The registry `{self.registry}` answered the referrers of "
                        f"`{self._name(repository, digest)}` with something other than an index",
                        hint="report it to the registry's operators",
                    )
                entries.extend(page)
                following = response.links.get("next", {}).get("url")
                url = str(response.request.url.join(following)) if following else None
        return entries

    def blob_exists(self, repository: str, digest: str, *, push: bool = False) -> bool:
        """Whether the repository holds the blob (a HEAD request; with `push`, as part of one)."""
        scopes = _push(repository) if push else _pull(repository)
        with self._errors():
            response = self._send("HEAD", self._url(repository, "blobs", digest), scopes)
            if response.status_code == 200:
                return True
            if response.status_code == 404:
                return False
            raise self._response_error(response)

    def get_blob(
        self,
        repository: str,
        digest: str,
        destination: str | os.PathLike[str],
        *,
        progress: Callable[[int], None] | None = None,
    ) -> Path:
        """Stream the blob into `destination`, checking its digest on the way; a blob that does
        not match is an error and nothing is kept.  `progress` is told each count of bytes
        received."""
        algorithm = _algorithm(digest)
        target = Path(destination)
        target.parent.mkdir(parents=True, exist_ok=True)
        url = self._url(repository, "blobs", digest)
        with self._errors():
            for attempt in range(self._attempts):
                fd, partial = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
                try:
                    with os.fdopen(fd, "wb") as out:
                        found = self._stream_blob(repository, url, out, algorithm, progress)
                except _TRANSIENT:
                    Path(partial).unlink(missing_ok=True)
                    if attempt + 1 == self._attempts:
                        raise
                    self._sleep(self._wait(attempt))
                    continue
                except BaseException:
                    Path(partial).unlink(missing_ok=True)
                    raise
                if found != digest:
                    Path(partial).unlink(missing_ok=True)
                    raise self._mismatch(repository, digest, found)
                os.replace(partial, target)
                return target
        raise AssertionError("unreachable")  # pragma: no cover

    def read_blob(self, repository: str, digest: str) -> bytes:
        """A small blob (an image config) in memory, checked against its digest."""
        algorithm = _algorithm(digest)
        with self._errors():
            response = self._send(
                "GET", self._url(repository, "blobs", digest), _pull(repository), follow=True
            )
            if response.status_code != 200:
                raise self._response_error(response)
            found = f"{algorithm}:{hashlib.new(algorithm, response.content).hexdigest()}"
            if found != digest:
                raise self._mismatch(repository, digest, found)
            return response.content

    # Writing

    def push_blob(
        self,
        repository: str,
        digest: str,
        size: int,
        opener: Opener,
        *,
        mount_from: str | None = None,
        chunk_size: int | None = None,
    ) -> Transfer:
        """Make the repository hold the blob, sending its content only when it must."""
        if self.blob_exists(repository, digest, push=True):
            return Transfer.PRESENT
        if mount_from and mount_from != repository:
            return self.mount_blob(
                repository, digest, mount_from, size=size, opener=opener, chunk_size=chunk_size
            )
        self.upload_blob(repository, digest, size, opener, chunk_size=chunk_size)
        return Transfer.UPLOADED

    def mount_blob(
        self,
        repository: str,
        digest: str,
        source: str,
        *,
        size: int,
        opener: Opener,
        chunk_size: int | None = None,
    ) -> Transfer:
        """Mount the blob from `source`, another repository of the same registry; when the
        registry opens an upload instead (it lacks the blob, or does not mount), upload into it."""
        scopes = (*_push(repository), *_pull(source))
        url = httpx.URL(self._url(repository, "blobs", "uploads/")).copy_merge_params(
            {"mount": digest, "from": source}
        )
        with self._errors():
            response = self._send("POST", str(url), scopes)
            if response.status_code == 201:
                return Transfer.MOUNTED
            if response.status_code != 202:
                raise self._response_error(response)
            location = self._location(response)
            self._finish_upload(repository, location, digest, size, opener, chunk_size, scopes)
            return Transfer.UPLOADED

    def upload_blob(
        self,
        repository: str,
        digest: str,
        size: int,
        opener: Opener,
        *,
        chunk_size: int | None = None,
    ) -> None:
        """Upload the blob: one streamed PUT by default, PATCH requests of `chunk_size` bytes
        when given.  A broken upload is resumed from what the registry says it holds."""
        with self._errors():
            location = self._start_upload(repository)
            self._finish_upload(
                repository, location, digest, size, opener, chunk_size, _push(repository)
            )

    def put_manifest(self, repository: str, reference: str, content: bytes, media_type: str) -> str:
        """Store a manifest under a tag or its digest; returns its digest, checked against the
        registry's.  Put it after its blobs: the registry then names a complete image."""
        digest = f"sha256:{hashlib.sha256(content).hexdigest()}"
        if reference.startswith("sha256:") and reference != digest:
            raise DigestMismatch(
                f"The manifest for `{self._name(repository, reference)}` has the digest `{digest}`"
            )
        with self._errors():
            response = self._send(
                "PUT",
                self._url(repository, "manifests", reference),
                _push(repository),
                headers={"Content-Type": media_type},
                content=content,
            )
            if response.status_code not in (200, 201):
                raise self._response_error(response)
            answered = response.headers.get("docker-content-digest")
            if answered and answered != digest:
                raise DigestMismatch(
                    f"The registry `{self.registry}` stored the manifest of "
                    f"`{self._name(repository, reference)}` as `{answered}`, not `{digest}`",
                    hint="the registry changed the manifest; use another registry or report it",
                )
            return digest

    # Uploads

    def _start_upload(self, repository: str) -> str:
        response = self._send("POST", self._url(repository, "blobs", "uploads/"), _push(repository))
        if response.status_code != 202:
            raise self._response_error(response)
        return self._location(response)

    def _finish_upload(
        self,
        repository: str,
        location: str,
        digest: str,
        size: int,
        opener: Opener,
        chunk_size: int | None,
        scopes: tuple[str, ...],
    ) -> None:
        offset = 0
        for attempt in range(self._attempts):
            try:
                if chunk_size:
                    while offset < size:
                        length = min(chunk_size, size - offset)
                        location, offset = self._patch(
                            location, opener, offset, length, scopes, size
                        )
                    body = _body(opener, offset, 0, size)
                    length = 0
                else:
                    body = _body(opener, offset, size - offset, size)
                    length = size - offset
                url = httpx.URL(location).copy_merge_params({"digest": digest})
                response = self._send(
                    "PUT",
                    str(url),
                    scopes,
                    headers={
                        "Content-Type": "application/octet-stream",
                        "Content-Length": str(length),
                    },
                    content=body,
                    retry=False,
                )
                if response.status_code in (201, 204):
                    answered = response.headers.get("docker-content-digest")
                    if answered and answered != digest:
                        raise DigestMismatch(
                            f"The registry `{self.registry}` stored the blob `{digest}` of "
                            f"`{repository}` as `{answered}`",
                            hint="the registry changed the content; report it",
                        )
                    return
                if not _temporary(response.status_code) or attempt + 1 == self._attempts:
                    raise self._response_error(response)
                wait = _retry_after(response)
            except _TRANSIENT:
                if attempt + 1 == self._attempts:
                    raise
                wait = None
            except _Temporary as exc:
                if attempt + 1 == self._attempts:
                    raise self._response_error(exc.response) from None
                wait = _retry_after(exc.response)
            self._sleep(self._wait(attempt) if wait is None else wait)
            location, offset = self._resume(repository, location)

    def _patch(
        self,
        location: str,
        opener: Opener,
        offset: int,
        length: int,
        scopes: tuple[str, ...],
        size: int,
    ) -> tuple[str, int]:
        response = self._send(
            "PATCH",
            location,
            scopes,
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Range": f"{offset}-{offset + length - 1}",
                "Content-Length": str(length),
            },
            content=_body(opener, offset, length, size),
            retry=False,
        )
        if response.status_code != 202:
            if _temporary(response.status_code):
                raise _Temporary(response)
            raise self._response_error(response)
        return self._location(response), offset + length

    def _resume(self, repository: str, location: str) -> tuple[str, int]:
        """Where a broken upload goes on: the bytes the registry holds of it, or a new upload
        when the registry forgot it or cannot say."""
        response = self._send("GET", location, _push(repository))
        if response.status_code == 204:
            received = _received(response.headers.get("range"))
            if received:  # "0-0" cannot tell one byte from none: start again instead
                return self._location(response, default=location), received
        elif response.status_code not in (404, 400):
            raise self._response_error(response)
        return self._start_upload(repository), 0

    # Requests

    def _send(
        self,
        method: str,
        url: str,
        scopes: tuple[str, ...],
        *,
        headers: dict[str, str] | None = None,
        content: bytes | Callable[[], Iterator[bytes]] | None = None,
        stream: bool = False,
        follow: bool = False,
        retry: bool = True,
    ) -> httpx.Response:
        """Send with auth, answering one 401 by authenticating again (a token expires), and
        retrying transient failures unless `retry` is False (uploads resume instead)."""
        url = self._absolute(url)
        reauthenticated = False
        attempt = 0
        while True:
            body = content() if callable(content) else content
            request = self._client.build_request(
                method,
                url,
                headers={**(headers or {}), **self._authorization(scopes)},
                content=body,
            )
            try:
                response = self._client.send(request, stream=stream, follow_redirects=follow)
            except _TRANSIENT:
                attempt += 1
                if not retry or attempt >= self._attempts:
                    raise
                self._sleep(self._wait(attempt - 1))
                continue
            if response.status_code in (401, 403):
                response.read()
                if response.status_code == 403 or reauthenticated:
                    response.close()
                    raise self._denied(scopes)
                reauthenticated = True
                self._reauthenticate(response, scopes)
                response.close()
                continue
            if retry and _temporary(response.status_code) and attempt + 1 < self._attempts:
                wait = _retry_after(response)
                response.close()
                self._sleep(self._wait(attempt) if wait is None else wait)
                attempt += 1
                continue
            return response

    def _base_url(self) -> str:
        """`scheme://host`, found once with `GET /v2/`, which also says how to authenticate."""
        if self._base is not None:
            return self._base
        failures: list[httpx.TransportError] = []
        for scheme in schemes(self._host):
            base = f"{scheme}://{self._host}"
            try:
                probe = self._client.get(f"{base}/v2/")
            except httpx.TransportError as exc:  # loopback registries often speak plain HTTP
                failures.append(exc)
                continue
            if probe.status_code == 401:
                self._challenge = parse_challenge(probe.headers.get("www-authenticate", ""))
            elif probe.status_code != 200:
                raise self._response_error(probe)
            self._base = base
            return base
        # An untrusted certificate says more than the plain-HTTP attempt that followed it.
        untrusted = [e for e in failures if "CERTIFICATE_VERIFY_FAILED" in str(e)]
        error = (untrusted or failures)[-1]
        raise _unreachable(self.registry, self._host, error) from error

    def _absolute(self, url: str) -> str:
        return url if "://" in url else f"{self._base_url()}{url}"

    def _url(self, repository: str, kind: str, reference: str) -> str:
        return f"{self._base_url()}/v2/{repository}/{kind}/{reference}"

    def _location(self, response: httpx.Response, default: str | None = None) -> str:
        location = response.headers.get("location") or default
        if not location:
            raise RegistryError(
                f"The registry `{self.registry}` opened an upload without saying where"
            )
        return str(response.request.url.join(location))

    # Auth

    def _authorization(self, scopes: tuple[str, ...]) -> dict[str, str]:
        challenge = self._challenge
        if challenge is None:
            return {}
        scheme = challenge.scheme.lower()
        if scheme == "basic":
            credentials = self._saved_credentials()
            if credentials is None:
                return {}
            pair = f"{credentials.username}:{credentials.password}".encode()
            return {"Authorization": f"Basic {base64.b64encode(pair).decode()}"}
        if scheme == "bearer":
            token = self._tokens.get(scopes)
            if token is None:
                token = fetch_token(
                    self._client, challenge, self._saved_credentials(), self.registry, scopes
                )
                self._tokens[scopes] = token
            return {"Authorization": f"Bearer {token}"}
        raise RegistryError(
            f"The registry `{self.registry}` asks for an unknown auth scheme `{challenge.scheme}`"
        )

    def _reauthenticate(self, response: httpx.Response, scopes: tuple[str, ...]) -> None:
        """Take the challenge of a 401: a new token for a bearer registry; for a Basic one,
        credentials that were sent were refused."""
        challenge = parse_challenge(response.headers.get("www-authenticate", ""))
        if challenge is None:
            raise self._denied(scopes)
        if challenge.scheme.lower() == "basic":
            credentials = self._saved_credentials()
            if credentials is None:
                raise self._denied(scopes)
            if self._challenge == challenge:  # they were sent, and refused
                error = refused(self.registry, credentials)
                error.hint = f"log in again with `{_login(self.registry)}`; {error.hint}"
                raise error
        self._challenge = challenge
        self._tokens.pop(scopes, None)

    def _saved_credentials(self) -> Credentials | None:
        if self._credentials is _FROM_CONFIG:
            self._credentials = saved.get(self.registry)
        return self._credentials  # type: ignore[return-value]

    def _denied(self, scopes: tuple[str, ...]) -> AuthError:
        credentials = self._saved_credentials()
        login = _login(self.registry)
        action = _action(scopes)
        if credentials is None:
            wanted = f" to {action}" if action else ""
            return AuthError(
                f"The registry `{self.registry}` needs a login{wanted}",
                hint=f"log in with `{login}`",
            )
        if action is None:
            return refused(self.registry, credentials)
        verb = action.partition(" `")[0]
        return AuthError(
            f"The registry `{self.registry}` refused to let `{credentials.username}` {action}",
            hint=f"check that this account may {verb} it, or log in with another (`{login}`)",
        )

    # Errors

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        with registry_errors(self.registry, self._host):
            yield

    def _response_error(self, response: httpx.Response) -> RegistryError:
        return response_error(response, self.registry)

    def _mismatch(self, repository: str, expected: str, found: str) -> DigestMismatch:
        return DigestMismatch(
            f"The registry `{self.registry}` sent content for `{repository}@{expected}` "
            f"whose digest is `{found}`",
            hint="nothing was kept; try again, and report the registry if it persists",
        )

    def _wait(self, attempt: int) -> float:
        return min(self._backoff * 2**attempt, 10.0)

    def _name(self, repository: str, reference: str) -> str:
        separator = "@" if ":" in reference else ":"
        return f"{self.registry}/{repository}{separator}{reference}"

    def _ask_manifest(
        self, method: str, repository: str, reference: str, *, push: bool = False
    ) -> httpx.Response:
        return self._send(
            method,
            self._url(repository, "manifests", reference),
            _push(repository) if push else _pull(repository),
            headers={"Accept": ", ".join(t.value for t in MANIFEST_TYPES)},
        )

    def _get_manifest(self, repository: str, reference: str) -> Manifest:
        response = self._ask_manifest("GET", repository, reference)
        if response.status_code == 404:
            raise NotInRegistry(
                f"`{self._name(repository, reference)}` does not exist in the registry "
                f"`{self.registry}`",
                hint="check the name and tag",
                status=404,
            )
        if response.status_code != 200:
            raise self._response_error(response)
        content = response.content
        digest = f"sha256:{hashlib.sha256(content).hexdigest()}"
        answered = response.headers.get("docker-content-digest")
        expected = reference if reference.startswith("sha256:") else answered
        if expected and expected.startswith("sha256:") and expected != digest:
            raise self._mismatch(repository, expected, digest)
        media_type = response.headers.get("content-type", "").partition(";")[0].strip()
        if media_type not in MANIFEST_TYPES:
            try:
                media_type = json.loads(content).get("mediaType") or media_type
            except (ValueError, AttributeError):
                pass
        return Manifest(media_type, digest, content)

    def _stream_blob(
        self,
        repository: str,
        url: str,
        out: BinaryIO,
        algorithm: str,
        progress: Callable[[int], None] | None,
    ) -> str:
        response = self._send("GET", url, _pull(repository), stream=True, follow=True)
        try:
            if response.status_code != 200:
                raise self._response_error(response)
            hasher = hashlib.new(algorithm)
            for chunk in response.iter_bytes(_READ_SIZE):
                hasher.update(chunk)
                out.write(chunk)
                if progress is not None:
                    progress(len(chunk))
            return f"{algorithm}:{hasher.hexdigest()}"
        finally:
            response.close()


class _Temporary(Exception):
    """A transient status inside an upload, which resumes instead of retrying the request."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(response.status_code)
        self.response = response


@contextlib.contextmanager
def registry_errors(registry: str, host: str | None = None) -> Iterator[None]:
    """Translate httpx errors raised inside the block into cais errors, `from` the original."""
    try:
        yield
    except CaisError:
        raise
    except httpx.HTTPError as exc:
        raise _translate(exc, registry, host or api_host(registry)) from exc
    except (httpx.InvalidURL, httpx.CookieConflict, httpx.StreamError) as exc:
        raise RegistryError(
            f"The request to the registry `{registry}` could not be made: {_redact(str(exc))}"
        ) from exc


def _translate(exc: httpx.HTTPError, registry: str, host: str) -> RegistryError:
    text = _redact(str(exc)) or type(exc).__name__
    if isinstance(exc, httpx.HTTPStatusError):
        return response_error(exc.response, registry)
    if isinstance(exc, httpx.TimeoutException):
        return RegistryError(
            f"The registry `{registry}` did not answer in time",
            hint="check the network, then try again",
            temporary=True,
        )
    if isinstance(exc, httpx.ProxyError):
        return RegistryError(
            f"The proxy refused the connection to the registry `{registry}`: {text}",
            hint="check HTTPS_PROXY and NO_PROXY",
            temporary=True,
        )
    if isinstance(exc, httpx.ConnectError):
        return _unreachable(registry, host, exc)
    if isinstance(exc, (httpx.NetworkError, httpx.RemoteProtocolError)):
        return RegistryError(
            f"The connection to the registry `{registry}` broke: {text}",
            hint="try again; an interrupted push goes on where it stopped",
            temporary=True,
        )
    if isinstance(exc, httpx.TooManyRedirects):
        return RegistryError(f"The registry `{registry}` redirected too many times")
    if isinstance(exc, httpx.DecodingError):
        return RegistryError(f"The registry `{registry}` sent an answer cais cannot decode: {text}")
    if isinstance(exc, httpx.UnsupportedProtocol):
        return RegistryError(
            f"The registry `{registry}` sent an address cais cannot follow: {text}"
        )
    return RegistryError(f"The request to the registry `{registry}` failed: {text}")


def _unreachable(registry: str, host: str, exc: Exception | None) -> RegistryError:
    text = _redact(str(exc)) if exc else "no answer"
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return RegistryError(
            f"The registry `{registry}` has a certificate cais does not trust: {text}",
            hint="give its CA certificate with SSL_CERT_FILE, or name a plain-HTTP registry "
            "in CAIS_INSECURE_REGISTRIES",
        )
    return RegistryError(
        f"The registry `{registry}` does not answer at {host}: {text}",
        hint="check the registry's address and that it is running",
        temporary=True,
    )


def _redact(text: str) -> str:
    """Upload locations and signed URLs carry secrets in their query: leave them out."""
    return _SECRET_PARAMS.sub(r"\1***", text)


def _ssl_context(ca_bundle: str | os.PathLike[str] | None) -> ssl.SSLContext:
    """The system's certificates plus the given CA file, else SSL_CERT_FILE (a corporate proxy's
    CA is added there)."""
    context = ssl.create_default_context()
    extra = ca_bundle or os.environ.get("SSL_CERT_FILE")
    if extra:
        try:
            context.load_verify_locations(cafile=os.fspath(extra))
        except (OSError, ssl.SSLError) as exc:
            raise RegistryError(
                f"The CA certificate file `{os.fspath(extra)}` cannot be read: {exc}",
                hint="give a PEM file of CA certificates",
            ) from exc
    if not context.get_ca_certs():
        import certifi  # a Python without a system store (macOS installers)

        context.load_verify_locations(cafile=certifi.where())
    return context


def _login(registry: str) -> str:
    return "cais login" if registry == DOCKER_HUB else f"cais login {registry}"


def _pull(repository: str) -> tuple[str, ...]:
    return (f"repository:{repository}:pull",)


def _push(repository: str) -> tuple[str, ...]:
    return (f"repository:{repository}:pull,push",)


def _action(scopes: tuple[str, ...]) -> str | None:
    """`push to `team/app`` or `pull `team/app`` for a message, from the first scope."""
    if not scopes:
        return None
    _, repository, actions = scopes[0].split(":")
    return f"{'push to' if 'push' in actions else 'pull'} `{repository}`"


def _temporary(status: int) -> bool:
    return status in (408, 429) or status >= 500


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    if value.strip().isdigit():
        seconds = float(value)
    else:
        try:
            moment = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = moment.timestamp() - time.time()
    return max(0.0, min(seconds, _MAX_WAIT))


def _received(header: str | None) -> int | None:
    """The next offset from a `Range: 0-N` header; None when absent or unreadable."""
    if not header:
        return None
    _, _, last = header.partition("-")
    try:
        end = int(last)
    except ValueError:
        return None
    return end + 1 if end > 0 else 0


def _algorithm(digest: str) -> str:
    algorithm, _, value = digest.partition(":")
    if algorithm not in ("sha256", "sha512") or not value:
        raise DigestMismatch(
            f"`{digest}` is not a digest cais can check", hint="digests look like sha256:<64 hex>"
        )
    return algorithm


def _body(opener: Opener, offset: int, length: int, size: int) -> Callable[[], Iterator[bytes]]:
    """A fresh stream of `length` bytes from `offset` for each attempt."""

    def chunks() -> Iterator[bytes]:
        if length == 0:
            return
        with opener() as stream:
            if offset:
                if stream.seekable():
                    stream.seek(offset)
                else:
                    _skip(stream, offset)
            remaining = length
            while remaining:
                chunk = stream.read(min(_READ_SIZE, remaining))
                if not chunk:
                    raise DigestMismatch(
                        f"The content to upload ended at byte {offset + length - remaining}, "
                        f"short of its size {size}"
                    )
                remaining -= len(chunk)
                yield chunk

    return chunks


def _skip(stream: BinaryIO, count: int) -> None:
    while count:
        chunk = stream.read(min(_READ_SIZE, count))
        if not chunk:
            return
        count -= len(chunk)
