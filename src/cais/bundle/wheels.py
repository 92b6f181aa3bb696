"""Which versions of a set of packages install from wheels on a given Python and Linux
platform, as PyPI stood on a given date.

Two callers need this and pip answers neither: adopting a model pickled years ago (pin
`scikit-learn==0.24.2` and take the numpy, scipy, joblib … that were current when it came out,
on the newest Python they all have wheels for), and pinning the serving runtime for an image
whose Python differs from the one running cais. pip resolves only for the interpreter it runs
on and never "as of" a date, so this module reads PyPI's JSON API itself and chooses, for each
package of the dependency closure, the newest final, non-yanked release that came out on or
before the cutoff, meets every specifier met in the closure and has a wheel for the target.
Sdists never count: building one in an image is slow and needs a compiler.

The resolver is deliberately small: it picks newest-first, re-chooses a package when a
specifier added later rules out its choice, and repeats until nothing changes (bounded). It
does not backtrack into older versions of a package's *parents*, so a stack that only an older
parent could satisfy is reported as a conflict, never returned half-consistent.
"""

from __future__ import annotations

import io
import os
import re
import ssl
import zipfile
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.parser import HeaderParser

import httpx
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import (
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from cais import __version__
from cais.errors import StackError

__all__ = [
    "PYPI_JSON_URL",
    "PackageIndex",
    "Release",
    "ReleaseFile",
    "choose_python",
    "default_pythons",
    "linux_platforms",
    "resolve",
    "supported_tags",
]

PYPI_JSON_URL = "https://pypi.org/pypi"

_DEFAULT_GLIBC = (2, 31)  # Debian 11; the python:*-slim images of today carry newer
# Docker platform names → the machine names wheel tags use.
_MACHINES = {"amd64": "x86_64", "arm64": "aarch64", "arm64/v8": "aarch64"}
# The manylinux policies named before PEP 600, by the glibc they stand for.
_LEGACY_MANYLINUX = {(2, 17): "manylinux2014", (2, 12): "manylinux2010", (2, 5): "manylinux1"}
# Images carry a late patch release; `requires_python = ">=3.8.1"` must accept "3.8".
_LATE_PATCH = 99
_MAX_ROUNDS = 50
_METADATA_TRIES = 3
_RANGE_BLOCK = 64 * 1024
_PYTHON = re.compile(r"^3\.(\d{1,2})(?:\.(\d{1,3}))?$")
_HINT_NETWORK = (
    "check the network and proxy (HTTPS_PROXY, SSL_CERT_FILE), "
    "or point CAIS_PYPI_JSON_URL at a PyPI mirror's JSON API"
)


@dataclass(frozen=True)
class ReleaseFile:
    """One file of a release as PyPI lists it; `tags` is empty for sdists."""

    filename: str
    url: str
    uploaded: datetime
    requires_python: str | None
    yanked: bool
    has_metadata: bool  # PEP 658: the wheel's METADATA is served at url + ".metadata"
    tags: frozenset[Tag]
    size: int | None = None

    @property
    def is_wheel(self) -> bool:
        return bool(self.tags)


@dataclass(frozen=True)
class Release:
    """One version of a project: its files and when it came out (its earliest upload)."""

    version: Version
    text: str  # the version as PyPI spells it
    date: datetime
    files: tuple[ReleaseFile, ...]

    @property
    def yanked(self) -> bool:
        return all(f.yanked for f in self.files)

    @property
    def final(self) -> bool:
        return not self.version.is_prerelease


@dataclass(frozen=True)
class _Project:
    name: str  # display name, from info.name
    releases: dict[Version, Release]


class PackageIndex:
    """PyPI's JSON API, read through one httpx client, every answer kept for the instance's
    life (a resolution asks for the same projects many times, across Pythons too)."""

    def __init__(
        self,
        url: str | None = None,
        *,
        client: httpx.Client | None = None,
        timeout: float = 30.0,
        ca_bundle: bytes = b"",
    ) -> None:
        """`ca_bundle`: PEM certificates to trust instead of the default ones (the build's own,
        for a TLS-intercepting proxy)."""
        self.url = (url or os.environ.get("CAIS_PYPI_JSON_URL") or PYPI_JSON_URL).rstrip("/")
        self._owns_client = client is None
        verify: ssl.SSLContext | bool = True
        if ca_bundle:
            verify = ssl.create_default_context(cadata=ca_bundle.decode("ascii", "replace"))
        self._client = client or httpx.Client(
            verify=verify,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            follow_redirects=True,
            headers={"User-Agent": f"cais/{__version__}", "Accept": "application/json"},
        )
        self._projects: dict[NormalizedName, _Project] = {}
        self._requires: dict[tuple[NormalizedName, Version], list[str]] = {}
        self._version_json = True  # some mirrors serve only the project documents

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> PackageIndex:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def project_name(self, name: str) -> str:
        """The project's name as PyPI displays it (`Scikit_Learn` → `scikit-learn`)."""
        return self._project(name).name

    def releases(self, name: str) -> list[Release]:
        """Final, non-yanked releases with at least one file, oldest first."""
        project = self._project(name)
        return [r for v, r in sorted(project.releases.items()) if r.final and not r.yanked]

    def release(self, name: str, version: str) -> Release:
        """One release, whatever it is (pre-release, yanked): an exact pin may name any."""
        project = self._project(name)
        try:
            found = project.releases.get(Version(version))
        except InvalidVersion:
            found = None
        if found is None:
            raise StackError(
                f"PyPI has no release {version} of {project.name}",
                hint=f"check the version; `pip index versions {project.name}` lists them",
            )
        return found

    def release_date(self, name: str, version: str) -> datetime:
        """When a release came out: the earliest upload of its files (UTC)."""
        return self.release(name, version).date

    def requires(self, name: str, version: str) -> list[str]:
        """The release's Requires-Dist lines, markers and extras included."""
        release = self.release(name, version)
        key = (canonicalize_name(name), release.version)
        if key not in self._requires:
            self._requires[key] = self._fetch_requires(name, release)
        return list(self._requires[key])

    def _project(self, name: str) -> _Project:
        key = canonicalize_name(name)
        if key not in self._projects:
            document = self._get_json(f"{self.url}/{key}/json", name)
            if document is None:
                raise StackError(
                    f"PyPI has no package `{name}`",
                    hint="check the name's spelling (the name pip installs, not the import name)",
                )
            self._projects[key] = _parse_project(document, name, self._base(key))
        return self._projects[key]

    def _base(self, key: str) -> httpx.URL:
        return httpx.URL(f"{self.url}/{key}/json")

    def _fetch_requires(self, name: str, release: Release) -> list[str]:
        key = canonicalize_name(name)
        if self._version_json:
            url = f"{self.url}/{key}/{release.text}/json"
            document = self._get_json(url, name)
            if document is not None:
                info = document.get("info")
                if not isinstance(info, dict):
                    raise _unreadable(name, url)
                lines = info.get("requires_dist")
                if lines is not None:
                    return [str(line) for line in lines]
                # null: no requirements, or PyPI took the metadata from an sdist uploaded
                # first whose PKG-INFO never listed them; the wheels tell which.
                if not any(f.is_wheel for f in release.files):
                    return []
                return self._metadata_requires(name, release, required=False)
            # The project document lists this release, so the mirror lacks the endpoint.
            self._version_json = False
        return self._metadata_requires(name, release)

    def _metadata_requires(
        self, name: str, release: Release, *, required: bool = True
    ) -> list[str]:
        """Requires-Dist from a wheel's METADATA, when there is no per-version JSON: the
        PEP 658 file next to the wheel, else the wheel itself read by byte ranges (indexes
        do not serve the PEP 658 file for every wheel, whatever they announce)."""
        wheels = sorted((f for f in release.files if f.is_wheel), key=lambda f: not f.has_metadata)
        for wheel in wheels[:_METADATA_TRIES]:
            text = self._get_text(wheel.url + ".metadata", name)
            if text is None:
                text = self._metadata_in_wheel(wheel, name)
            if text is None:
                continue
            metadata = HeaderParser().parsestr(text)
            if "Metadata-Version" not in metadata:
                raise _unreadable(name, wheel.url + ".metadata", "wheel metadata")
            return [str(line) for line in metadata.get_all("Requires-Dist") or []]
        if not required:
            return []
        raise StackError(
            f"The package index tells neither by JSON nor by wheel metadata what "
            f"{_label(self.project_name(name), release)} requires",
            hint="point CAIS_PYPI_JSON_URL at an index that serves /NAME/VERSION/json "
            "(https://pypi.org/pypi does)",
        )

    def _metadata_in_wheel(self, wheel: ReleaseFile, name: str) -> str | None:
        if wheel.size is None:
            return None
        try:
            with zipfile.ZipFile(_RemoteFile(self._client, wheel.url, wheel.size)) as archive:
                found = [
                    n
                    for n in archive.namelist()
                    if n.count("/") == 1 and n.endswith(".dist-info/METADATA")
                ]
                if not found:
                    raise _unreadable(name, wheel.url, "a wheel")
                return archive.read(found[0]).decode("utf-8", errors="replace")
        except _NotThere:
            return None
        except httpx.HTTPError as exc:
            raise _unreachable(name, wheel.url, exc) from exc
        except _Refused as exc:
            raise _refused(name, exc.response) from None
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise _unreadable(name, wheel.url, "a wheel") from exc

    def _get(self, url: str, name: str) -> httpx.Response | None:
        """The index's answer at `url`, or None when it answers 404."""
        try:
            response = self._client.get(url)
        except httpx.HTTPError as exc:
            raise _unreachable(name, url, exc) from exc
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise _refused(name, response)
        return response

    def _get_text(self, url: str, name: str) -> str | None:
        """The text at `url`, or None when the index answers 404."""
        response = self._get(url, name)
        return None if response is None else response.text

    def _get_json(self, url: str, name: str) -> dict | None:
        """The JSON document at `url`, or None when the index answers 404."""
        response = self._get(url, name)
        if response is None:
            return None
        try:
            document = response.json()
        except ValueError as exc:
            raise _unreadable(name, url) from exc
        if not isinstance(document, dict):
            raise _unreadable(name, url)
        return document


class _NotThere(Exception):
    pass


class _Refused(Exception):
    def __init__(self, response: httpx.Response) -> None:
        super().__init__(response.status_code)
        self.response = response


class _RemoteFile(io.RawIOBase):
    """A file on an HTTP server read by byte ranges, so zipfile can find one member of a
    large wheel without downloading it (pip's "lazy wheel" does the same)."""

    def __init__(self, client: httpx.Client, url: str, size: int) -> None:
        super().__init__()
        self._client, self._url, self._size = client, url, size
        self._position = 0
        self._chunks: list[tuple[int, bytes]] = []

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer) -> int:
        count = min(len(buffer), self._size - self._position)
        if count <= 0:
            return 0
        buffer[:count] = self._bytes(self._position, self._position + count)
        self._position += count
        return count

    def _bytes(self, start: int, end: int) -> bytes:
        for first, chunk in self._chunks:
            if first <= start and end <= first + len(chunk):
                return chunk[start - first : end - first]
        # Whole blocks: the first read (the end-of-archive record) brings the central
        # directory with it, the next the member's header with its data.
        first = max(0, min(start, self._size - _RANGE_BLOCK))
        last = min(self._size, max(end, first + _RANGE_BLOCK))
        response = self._client.get(self._url, headers={"Range": f"bytes={first}-{last - 1}"})
        if response.status_code == 404:
            raise _NotThere
        if response.status_code == 200:  # no range support: the whole file came
            first, chunk = 0, response.content
        elif response.status_code == 206:
            chunk = response.content
            answered = response.headers.get("content-range", "")
            if not answered.startswith(f"bytes {first}-"):
                raise _Refused(response)
        else:
            raise _Refused(response)
        self._chunks.append((first, chunk))
        if not (first <= start and end <= first + len(chunk)):
            raise EOFError(self._url)
        return chunk[start - first : end - first]


def _unreachable(name: str, url: str, exc: Exception) -> StackError:
    host = httpx.URL(url).host
    return StackError(
        f"The package index at {host} did not answer about {name}: {exc or type(exc).__name__}",
        hint=_HINT_NETWORK,
    )


def _refused(name: str, response: httpx.Response) -> StackError:
    return StackError(
        f"The package index answered {response.status_code} {response.reason_phrase} "
        f"about {name} at {response.request.url}",
        hint=_HINT_NETWORK if response.status_code >= 500 else "check CAIS_PYPI_JSON_URL",
    )


def _unreadable(name: str, url: str, expected: str = "PyPI JSON") -> StackError:
    return StackError(
        f"The package index sent something other than {expected} about {name} at {url}",
        hint="check that CAIS_PYPI_JSON_URL points at a JSON API like https://pypi.org/pypi",
    )


def _parse_time(entry: Mapping) -> datetime | None:
    text = entry.get("upload_time_iso_8601") or entry.get("upload_time")
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _wheel_tags(filename: str) -> frozenset[Tag]:
    if not filename.endswith(".whl"):
        return frozenset()
    try:
        return frozenset(parse_wheel_filename(filename)[3])
    except (InvalidWheelFilename, InvalidVersion):
        return frozenset()


def _parse_project(document: dict, name: str, base: httpx.URL) -> _Project:
    info = document.get("info")
    releases = document.get("releases")
    if not isinstance(info, dict) or not isinstance(releases, dict):
        raise _unreadable(name, str(base))
    parsed: dict[Version, Release] = {}
    for text, entries in releases.items():
        try:
            version = Version(text)
        except InvalidVersion:
            continue  # pre-PEP 440 versions nobody can pin with pip anyway
        files = []
        for entry in entries if isinstance(entries, list) else []:
            if not isinstance(entry, dict):
                continue
            uploaded = _parse_time(entry)
            filename = entry.get("filename")
            if uploaded is None or not isinstance(filename, str):
                continue
            files.append(
                ReleaseFile(
                    filename=filename,
                    url=str(base.join(str(entry.get("url") or filename))),
                    uploaded=uploaded,
                    requires_python=entry.get("requires_python") or None,
                    yanked=bool(entry.get("yanked")),
                    has_metadata=bool(
                        entry.get("core-metadata") or entry.get("data-dist-info-metadata")
                    ),
                    tags=_wheel_tags(filename),
                    size=entry.get("size") if isinstance(entry.get("size"), int) else None,
                )
            )
        if files:
            date = min(f.uploaded for f in files)
            parsed[version] = Release(version, text, date, tuple(files))
    return _Project(name=str(info.get("name") or name), releases=parsed)


def _label(name: str, release: Release) -> str:
    return f"{name} {release.text}"


# --- the target: Python X.Y on Linux ---------------------------------------------------------


def linux_platforms(machine: str = "x86_64", glibc: tuple[int, int] = _DEFAULT_GLIBC) -> list[str]:
    """manylinux platform tags a system with this glibc accepts, best first, with the legacy
    aliases (manylinux2014/2010/1) PyPI still serves old wheels under."""
    arch = _MACHINES.get(machine, machine)
    major, minor = glibc
    if major != 2:
        raise StackError(f"glibc {major}.{minor} is not a glibc cais knows", hint="use 2.X")
    oldest = 5 if arch in ("x86_64", "i686") else 17  # other arches start at manylinux2014
    platforms = []
    for m in range(minor, oldest - 1, -1):
        platforms.append(f"manylinux_2_{m}_{arch}")
        legacy = _LEGACY_MANYLINUX.get((2, m))
        if legacy:
            platforms.append(f"{legacy}_{arch}")
    return platforms


def _parse_python(python: str) -> tuple[int, int, int | None]:
    match = _PYTHON.match(python.strip())
    if not match:
        raise StackError(
            f"`{python}` is not a Python version cais can target",
            hint="give it as 3.X, for example 3.11",
        )
    minor, patch = match.groups()
    return 3, int(minor), int(patch) if patch is not None else None


def supported_tags(
    python: str, machine: str = "x86_64", glibc: tuple[int, int] = _DEFAULT_GLIBC
) -> list[Tag]:
    """Wheel tags CPython X.Y on manylinux accepts, best first (cpXY, abi3, pure)."""
    major, minor, _ = _parse_python(python)
    platforms = linux_platforms(machine, glibc)
    version = (major, minor)
    tags = list(cpython_tags(version, [f"cp{major}{minor}"], platforms))
    tags += compatible_tags(version, f"cp{major}{minor}", platforms)
    return tags


@dataclass(frozen=True)
class _Target:
    python: str  # X.Y
    full: Version
    machine: str
    glibc: tuple[int, int]
    tags: frozenset[Tag]
    environment: dict[str, str]

    @property
    def where(self) -> str:
        where = f"Python {self.python} on linux/{self.machine}"
        if self.glibc != _DEFAULT_GLIBC:
            where += f" with glibc {self.glibc[0]}.{self.glibc[1]}"
        return where

    def allows_python(self, requires_python: str | None) -> bool:
        if not requires_python:
            return True
        try:
            return SpecifierSet(requires_python).contains(self.full, prereleases=True)
        except InvalidSpecifier:
            return True  # as pip does: an unreadable requirement does not exclude

    def installs(self, release: Release, *, yanked_too: bool = False) -> bool:
        return any(
            f.tags & self.tags
            and (yanked_too or not f.yanked)
            and self.allows_python(f.requires_python)
            for f in release.files
        )


def _target(python: str, machine: str, glibc: tuple[int, int]) -> _Target:
    major, minor, patch = _parse_python(python)
    arch = _MACHINES.get(machine, machine)
    full = f"{major}.{minor}.{_LATE_PATCH if patch is None else patch}"
    environment = {
        "implementation_name": "cpython",
        "implementation_version": full,
        "os_name": "posix",
        "platform_machine": arch,
        "platform_release": "",
        "platform_system": "Linux",
        "platform_version": "",
        "python_full_version": full,
        "platform_python_implementation": "CPython",
        "python_version": f"{major}.{minor}",
        "sys_platform": "linux",
    }
    return _Target(
        python=f"{major}.{minor}",
        full=Version(full),
        machine=arch,
        glibc=glibc,
        tags=frozenset(supported_tags(python, arch, glibc)),
        environment=environment,
    )


# --- the resolver ----------------------------------------------------------------------------


@dataclass
class _Need:
    """A package reached this round: the extras asked of it and every specifier met."""

    extras: set[str] = field(default_factory=set)
    # (requirement text, by whom) → specifier; keyed so a re-expansion adds nothing twice
    specs: dict[tuple[str, str], SpecifierSet] = field(default_factory=dict)

    def allows(self, version: Version) -> bool:
        return all(s.contains(version, prereleases=True) for s in self.specs.values())

    def limits(self, name: str = "") -> list[str]:
        """`>=1.16.5 (required by scipy 1.6.3)`, one for each specifier that limits."""
        return [f"{name}{s} (required by {who})" for (_, who), s in self.specs.items() if str(s)]

    def excluding(self, version: Version, name: str) -> list[str]:
        """`scipy 1.7.0 requires numpy<1.21.0`, one for each specifier `version` fails."""
        return [
            f"{who} requires {name}{s}"
            for (_, who), s in self.specs.items()
            if not s.contains(version, prereleases=True)
        ]


@dataclass(frozen=True)
class _Misfit:
    """Why one package cannot be chosen; `wheel` says it is about wheels for this target."""

    subject: str
    detail: str
    wheel: bool

    def sentence(self, target: _Target) -> str:
        if self.wheel:
            return f"{self.subject} has no wheel for {target.where}{self.detail}"
        return self.detail

    def short(self) -> str:
        return f"{self.subject} has no wheel" if self.wheel else self.detail


class _Unfit(Exception):
    def __init__(self, *misfits: _Misfit) -> None:
        super().__init__(*misfits)
        self.misfits = list(misfits)


def _day(moment: datetime) -> str:
    return moment.date().isoformat()


class _Resolver:
    def __init__(
        self,
        index: PackageIndex,
        pins: Mapping[str, str | None],
        target: _Target,
        cutoff: datetime | None,
    ) -> None:
        self.index = index
        self.target = target
        self.cutoff = cutoff
        self.roots: dict[NormalizedName, set[str]] = {}
        self.pins: dict[NormalizedName, str] = {}
        for spelled, version in pins.items():
            try:
                requirement = Requirement(spelled)
            except InvalidRequirement as exc:
                raise StackError(
                    f"`{spelled}` is not a package name", hint="give names like scikit-learn"
                ) from exc
            key = canonicalize_name(requirement.name)
            self.roots.setdefault(key, set()).update(requirement.extras)
            if version is not None:
                if self.pins.get(key, version) != version:
                    raise StackError(
                        f"{requirement.name} is pinned to both {self.pins[key]} and {version}",
                        hint="pin each package once",
                    )
                self.pins[key] = str(version)

    def run(self) -> dict[str, str]:
        choices: dict[NormalizedName, Release] = {}
        for _ in range(_MAX_ROUNDS):
            misfits, changed = self._round(choices)
            if changed:
                continue
            if misfits:
                raise _Unfit(*misfits.values())
            named = ((self.index.project_name(k), r.text) for k, r in choices.items())
            return dict(sorted(named, key=lambda item: item[0].lower()))
        names = ", ".join(sorted(self.index.project_name(k) for k in choices))
        raise _Unfit(
            _Misfit(names, f"no consistent versions settled in {_MAX_ROUNDS} rounds", wheel=False)
        )

    def _round(
        self, choices: dict[NormalizedName, Release]
    ) -> tuple[dict[NormalizedName, _Misfit], bool]:
        """Walk the closure from the roots with the current choices, choosing what has no
        choice yet; then re-choose whatever a specifier met on the way rules out.  Returns
        the packages that cannot be chosen and whether an earlier choice changed."""
        needs = {key: _Need(extras=set(extras)) for key, extras in self.roots.items()}
        misfits: dict[NormalizedName, _Misfit] = {}
        changed = False
        queue = deque(needs)
        while queue:
            key = queue.popleft()
            need = needs[key]
            if key in misfits:
                continue
            current = choices.get(key)
            if current is None or not need.allows(current.version):
                try:
                    choices[key] = self._choose(key, need)
                except _Unfit as unfit:
                    misfits[key] = unfit.misfits[0]
                    choices.pop(key, None)
                    continue
                changed = changed or current is not None
            release = choices[key]
            who = _label(self.index.project_name(key), release)
            for requirement in self._requirements(key, release, need.extras):
                child = canonicalize_name(requirement.name)
                if child not in needs:
                    needs[child] = _Need()
                    queue.append(child)
                elif not requirement.extras <= needs[child].extras:
                    queue.append(child)  # walk it again for what the new extras pull in
                needs[child].extras |= requirement.extras
                needs[child].specs[(str(requirement), who)] = requirement.specifier
        for key in list(choices):
            if key not in needs:
                del choices[key]  # nothing chosen requires it any more
        for key, need in needs.items():
            if key in misfits or need.allows(choices[key].version):
                continue
            try:
                choices[key] = self._choose(key, need)
            except _Unfit as unfit:  # no other choice: walking again would find the same
                misfits[key] = unfit.misfits[0]
                del choices[key]
            else:
                changed = True
        return misfits, changed

    def _requirements(
        self, key: NormalizedName, release: Release, extras: set[str]
    ) -> Iterable[Requirement]:
        """The release's requirements that apply on the target with these extras."""
        for line in self.index.requires(key, release.text):
            try:
                requirement = Requirement(line)
            except InvalidRequirement:
                continue  # as pip does with metadata it cannot read
            marker = requirement.marker
            if marker is None or any(
                marker.evaluate({**self.target.environment, "extra": extra})
                for extra in {"", *extras}
            ):
                yield requirement

    def _choose(self, key: NormalizedName, need: _Need) -> Release:
        name = self.index.project_name(key)
        if key in self.pins:
            release = self.index.release(key, self.pins[key])
            label = _label(name, release)
            if not need.allows(release.version):
                conflicts = ", ".join(need.excluding(release.version, name))
                raise _Unfit(_Misfit(label, f"{label} is pinned, but {conflicts}", wheel=False))
            if not self.target.installs(release, yanked_too=True):  # PEP 592: a pin may
                raise _Unfit(_Misfit(label, "", wheel=True))
            return release
        released = self.index.releases(key)
        when = ""
        if self.cutoff is not None:
            released = [r for r in released if r.date <= self.cutoff]
            when = f" on or before {_day(self.cutoff)}"
        if not released:
            raise _Unfit(_Misfit(name, f"{name} has no release{when}", wheel=False))
        allowed = [r for r in reversed(released) if need.allows(r.version)]
        if not allowed:
            limits = ", ".join(need.limits(name))
            detail = f"no release of {name}{when} satisfies {limits}"
            raise _Unfit(_Misfit(name, detail, wheel=False))
        for release in allowed:
            if self.target.installs(release):
                return release
        limits = ", ".join(need.limits())
        detail = f" in any release{when}" + (f" that satisfies {limits}" if limits else "")
        raise _Unfit(_Misfit(name, detail, wheel=True))


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=timezone.utc)


def _resolve(
    index: PackageIndex,
    pins: Mapping[str, str | None],
    target: _Target,
    cutoff: datetime | None,
) -> dict[str, str]:
    """resolve() raising _Unfit, so choose_python can summarise each Python's misfits."""
    return _Resolver(index, pins, target, _utc(cutoff)).run()


def _stack_error(misfits: list[_Misfit], target: _Target) -> StackError:
    wheels = [m for m in misfits if m.wheel]
    if wheels:
        hint = (
            f"pass --python with another Python ({target.python} may be too new or too old "
            "for these versions), or pin versions that have wheels for it"
        )
    else:
        hint = "change the pins, or pass a later date so newer versions are allowed"
    return StackError("; ".join(m.sentence(target) for m in misfits), hint=hint)


def resolve(
    index: PackageIndex,
    pins: Mapping[str, str | None],
    python: str,
    *,
    cutoff: datetime | None = None,
    machine: str = "x86_64",
    glibc: tuple[int, int] = _DEFAULT_GLIBC,
) -> dict[str, str]:
    """Exact versions of `pins` and their whole dependency closure that install from wheels
    on CPython `python` (X.Y) on manylinux `machine` with `glibc`, as of `cutoff`.

    A pin's version is kept as given (it must still have a wheel); a package pinned to None,
    and every dependency, gets the newest final, non-yanked release out on or before `cutoff`
    (today when None) that meets every specifier in the closure and has a wheel.  Pins may
    carry extras (`uvicorn[standard]`).  Keys of the answer are PyPI's display names.
    Raises StackError naming each package that cannot be had."""
    target = _target(python, machine, glibc)
    try:
        return _resolve(index, pins, target, cutoff)
    except _Unfit as unfit:
        raise _stack_error(unfit.misfits, target) from None


def choose_python(
    index: PackageIndex,
    pins: Mapping[str, str | None],
    pythons: Iterable[str],
    *,
    cutoff: datetime | None = None,
    machine: str = "x86_64",
    glibc: tuple[int, int] = _DEFAULT_GLIBC,
) -> tuple[str, dict[str, str]]:
    """The newest of `pythons` whose resolve() succeeds, and that resolution.

    Only "no wheel / conflict" moves on to the next Python; an index that does not answer
    stops the search (the answer for an older Python would be just as unknown)."""
    by_python = {t.python: t for t in (_target(p, machine, glibc) for p in pythons)}
    targets = sorted(by_python.values(), key=lambda t: t.full, reverse=True)
    if not targets:
        raise StackError("No Python version was given to try", hint="set CAIS_PYTHONS or --python")
    tried: list[str] = []
    for target in targets:
        try:
            return target.python, _resolve(index, pins, target, cutoff)
        except _Unfit as unfit:
            tried.append(f"{target.python}: {', '.join(m.short() for m in unfit.misfits)}")
    names = ", ".join(t.python for t in targets)
    raise StackError(
        f"No Python among {names} installs this stack from wheels on "
        f"linux/{targets[0].machine} ({'; '.join(tried)})",
        hint="pin other versions, or add the Python their wheels were built for "
        "(CAIS_PYTHONS or --python)",
    )


def default_pythons() -> list[str]:
    """The Python X.Y versions to try, newest wins: CAIS_PYTHONS ("3.9,3.11") or a default."""
    text = os.environ.get("CAIS_PYTHONS")
    if text is None:
        from cais.project import KNOWN_PYTHONS

        return list(KNOWN_PYTHONS)
    pythons = [part.strip() for part in text.split(",")]
    for python in pythons:
        match = _PYTHON.match(python)
        if not match or match.group(2) is not None:
            raise StackError(
                f"CAIS_PYTHONS holds `{python}`, which is not a Python version like 3.11",
                hint='set CAIS_PYTHONS to versions separated by commas, e.g. "3.9,3.11"',
            )
    return list(dict.fromkeys(pythons))
