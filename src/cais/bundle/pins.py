"""Exact versions of a set of packages that install from wheels on a given Python and Linux
platform, as the package index stood on a given date — resolved by uv.

Two callers need this: adopting a model pickled years ago (pin `scikit-learn==0.24.2` and take
the numpy, scipy, joblib … that were current when it came out, on the newest Python they all
have wheels for), and pinning the serving runtime of an image whose Python differs from the one
running cais. `uv pip compile` answers both: `--python-version` and `--python-platform` name
the target, `--exclude-newer` the date, `--only-binary :all:` keeps sdists out (building one in
an image is slow and needs a compiler). The one thing uv cannot tell is when a release came out,
so `release_date` reads it from the same index uv uses (PEP 691 JSON with PEP 700 upload
times, which `--exclude-newer` needs from an index anyway).
"""

from __future__ import annotations

import os
import re
import ssl
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone

from cais.errors import StackError
from cais.uv import PYPI_SIMPLE, Index, environment, reason, uv_binary

__all__ = [
    "GLIBC",
    "PYPI_SIMPLE",
    "Index",
    "Target",
    "choose_python",
    "compile_pins",
    "default_pythons",
    "release_date",
]

# The glibc the target is assumed to have: Debian 11's, the oldest python:X.Y-slim base still
# served. Wheels for a newer glibc would not load there; Debian 12's bases run these too.
GLIBC = (2, 31)
# Docker platform names → the machine names of wheel tags and uv's platforms.
_MACHINES = {"amd64": "x86_64", "arm64": "aarch64", "arm64/v8": "aarch64"}
_SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
_PYTHON = re.compile(r"^3\.\d{1,2}$")
_UV_TIMEOUT = 600
_HINT_NETWORK = (
    "check the network and proxy (HTTPS_PROXY, SSL_CERT_FILE), or point UV_INDEX_URL or "
    "PIP_INDEX_URL at a mirror of PyPI"
)


@dataclass(frozen=True)
class Target:
    """CPython X.Y on manylinux for one machine."""

    python: str
    machine: str = "x86_64"

    def __post_init__(self) -> None:
        if not _PYTHON.match(self.python):
            raise StackError(
                f"`{self.python}` is not a Python version cais can target",
                hint="give it as 3.X, for example 3.11",
            )
        object.__setattr__(self, "machine", _MACHINES.get(self.machine, self.machine))

    @property
    def platform(self) -> str:
        """uv's name for it: `x86_64-manylinux_2_31`."""
        return f"{self.machine}-manylinux_{GLIBC[0]}_{GLIBC[1]}"

    @property
    def where(self) -> str:
        return f"Python {self.python} on linux/{self.machine}"


class _Unresolvable(Exception):
    """uv found no versions that fit (as opposed to failing to ask)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _arguments(pins: Mapping[str, str | None], target: Target, cutoff: datetime | None) -> list:
    arguments = [
        "pip",
        "compile",
        "-",
        "--quiet",
        "--no-header",
        "--no-annotate",
        "--only-binary",
        ":all:",
        "--python-version",
        target.python,
        # The interpreter uv would build with, had it anything to build: named, so uv does
        # not query every Python on PATH (measured 1.7 s of a 2.4 s run here).
        "--python",
        sys.executable,
        "--python-platform",
        target.platform,
    ]
    if cutoff is not None:
        arguments += ["--exclude-newer", _utc(cutoff).strftime("%Y-%m-%dT%H:%M:%SZ")]
        for name, version in pins.items():
            if version:  # an exact pin is taken whenever it came out
                arguments += ["--exclude-newer-package", f"{_name(name)}=false"]
    return arguments


def _name(requirement: str) -> str:
    return re.split(r"[\[\s]", requirement, maxsplit=1)[0]


def _requirements(pins: Mapping[str, str | None]) -> str:
    lines = []
    for name, version in pins.items():
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9._,-]+\])?", name):
            raise StackError(f"`{name}` is not a package name", hint="give names like scikit-learn")
        lines.append(f"{name}=={version}" if version else name)
    return "\n".join(lines) + "\n"


def _compile(
    pins: Mapping[str, str | None], target: Target, cutoff: datetime | None, index: Index
) -> dict[str, str]:
    """compile_pins() raising _Unresolvable, so choose_python can move on to another Python."""
    command = [uv_binary(), *_arguments(pins, target, cutoff)]
    with environment(index) as env:
        try:
            done = subprocess.run(
                command,
                input=_requirements(pins),
                capture_output=True,
                text=True,
                env=env,
                cwd=tempfile.gettempdir(),  # no project's uv settings apply
                timeout=_UV_TIMEOUT,
            )
        except subprocess.TimeoutExpired as exc:
            raise StackError(
                f"uv did not finish resolving for {target.where} in {_UV_TIMEOUT} s",
                hint=_HINT_NETWORK,
            ) from exc
    if done.returncode != 0:
        why = reason(done.stderr)
        if "No solution found" in done.stderr:
            raise _Unresolvable(why)
        raise StackError(f"uv could not resolve for {target.where}: {why}", hint=_HINT_NETWORK)
    return _parse_pins(done.stdout)


def _parse_pins(text: str) -> dict[str, str]:
    from packaging.requirements import InvalidRequirement, Requirement

    pins = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            requirement = Requirement(line)
            (specifier,) = requirement.specifier
        except (InvalidRequirement, ValueError) as exc:
            raise StackError(f"uv answered `{line}`, which is not an exact pin") from exc
        pins[requirement.name] = specifier.version
    return dict(sorted(pins.items(), key=lambda item: item[0].lower()))


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def compile_pins(
    pins: Mapping[str, str | None],
    target: Target,
    *,
    cutoff: datetime | None = None,
    index: Index | None = None,
) -> dict[str, str]:
    """Exact versions of `pins` and their whole dependency closure that install from wheels
    on `target`, as of `cutoff`.

    A pin's version is kept as given, whenever it came out; a package pinned to None, and
    every dependency, gets the newest release uploaded before `cutoff` (today when None).
    Pins may carry extras (`uvicorn[standard]`). Raises StackError naming what cannot be had."""
    try:
        return _compile(pins, target, cutoff, index or Index.from_settings())
    except _Unresolvable as unfit:
        raise StackError(
            f"{_named(pins)} cannot be installed from wheels on {target.where}: {unfit.reason}",
            hint=f"pass --python with another Python ({target.python} may be too new or too "
            "old for these versions), or pin versions that have wheels for it",
        ) from None


def _named(pins: Mapping[str, str | None]) -> str:
    return ", ".join(f"`{n}=={v}`" if v else f"`{n}`" for n, v in pins.items())


def choose_python(
    pins: Mapping[str, str | None],
    pythons: Iterable[str],
    *,
    machine: str = "x86_64",
    cutoff: datetime | None = None,
    index: Index | None = None,
    prefer: str | None = None,
) -> tuple[str, dict[str, str]]:
    """The newest of `pythons` for which compile_pins() succeeds, and its pins; `prefer`, when
    it is one of `pythons`, is tried first (the Python whose installed packages are pinned).

    Only "nothing fits" moves on to the next Python; an index that does not answer stops the
    search (the answer for an older Python would be just as unknown)."""
    targets = sorted(
        {Target(p, machine) for p in pythons},
        key=lambda t: (t.python == prefer, tuple(int(x) for x in t.python.split("."))),
        reverse=True,
    )
    if not targets:
        raise StackError("No Python version was given to try", hint="set CAIS_PYTHONS or --python")
    index = index or Index.from_settings()
    tried = []
    for target in targets:
        try:
            return target.python, _compile(pins, target, cutoff, index)
        except _Unresolvable as unfit:
            tried.append(f"{target.python}: {unfit.reason}")
    names = ", ".join(t.python for t in targets)
    raise StackError(
        f"No Python among {names} installs {_named(pins)} from wheels on "
        f"linux/{targets[0].machine} ({'; '.join(tried)})",
        hint="pin other versions, or add the Python their wheels were built for "
        "(CAIS_PYTHONS or --python)",
    )


def release_date(name: str, version: str, *, index: Index | None = None) -> datetime:
    """When `name` `version` came out: the earliest upload of its files, as the index's
    JSON simple API (PEP 691, PEP 700) lists them."""
    import httpx
    from packaging.utils import canonicalize_name

    index = index or Index.from_settings()
    url = f"{index.url}/{canonicalize_name(name)}/"
    verify: ssl.SSLContext | bool = True
    if index.ca_bundle:
        verify = ssl.create_default_context(cadata=index.ca_bundle.decode("ascii", "replace"))
    try:
        with httpx.Client(verify=verify, timeout=30, follow_redirects=True) as client:
            response = client.get(url, headers={"Accept": _SIMPLE_JSON})
    except httpx.HTTPError as exc:
        raise StackError(
            f"The package index at {index.host} did not answer about {name}: "
            f"{exc or type(exc).__name__}",
            hint=_HINT_NETWORK,
        ) from exc
    if response.status_code == 404:
        raise StackError(
            f"The package index at {index.host} has no package `{name}`",
            hint="check the name's spelling (the name pip installs, not the import name)",
        )
    if response.status_code != 200 or _SIMPLE_JSON not in response.headers.get("content-type", ""):
        raise StackError(
            f"The package index at {index.host} answered {response.status_code} "
            f"{response.reason_phrase or ''} without its JSON API about {name}".replace("  ", " "),
            hint="pinning by date needs an index with the JSON simple API and upload times, "
            "as pypi.org serves (UV_INDEX_URL or PIP_INDEX_URL)",
        )
    return _earliest_upload(response.json(), name, version, index.host)


def _earliest_upload(document: object, name: str, version: str, host: str) -> datetime:
    from packaging.utils import (
        InvalidSdistFilename,
        InvalidWheelFilename,
        parse_sdist_filename,
        parse_wheel_filename,
    )
    from packaging.version import InvalidVersion, Version

    try:
        wanted = Version(version)
    except InvalidVersion as exc:
        raise StackError(f"`{version}` is not a version of {name}") from exc
    files = document.get("files") if isinstance(document, dict) else None
    uploads = []
    for entry in files if isinstance(files, list) else []:
        filename = entry.get("filename", "") if isinstance(entry, dict) else ""
        try:
            if filename.endswith(".whl"):
                found = parse_wheel_filename(filename)[1]
            else:
                found = parse_sdist_filename(filename)[1]
        except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
            continue
        if found == wanted:
            uploads.append(entry.get("upload-time"))
    if not uploads:
        raise StackError(
            f"The package index at {host} has no release {version} of {name}",
            hint=f"check the version; `pip index versions {name}` lists them",
        )
    try:
        return min(datetime.fromisoformat(u.replace("Z", "+00:00")) for u in uploads)
    except (AttributeError, TypeError, ValueError):
        raise StackError(
            f"The package index at {host} does not say when {name} {version} was uploaded",
            hint="pinning by date needs an index that serves upload times (PEP 700), as "
            "pypi.org does (UV_INDEX_URL or PIP_INDEX_URL), or exact pins for every package",
        ) from None


def default_pythons(environ: Mapping[str, str] | None = None) -> list[str] | None:
    """The Python X.Y versions CAIS_PYTHONS names ("3.9,3.11"), or None when it is not set."""
    text = (os.environ if environ is None else environ).get("CAIS_PYTHONS")
    if text is None:
        return None
    pythons = [part.strip() for part in text.split(",")]
    for python in pythons:
        if not _PYTHON.match(python):
            raise StackError(
                f"CAIS_PYTHONS holds `{python}`, which is not a Python version like 3.11",
                hint='set CAIS_PYTHONS to versions separated by commas, e.g. "3.9,3.11"',
            )
    return list(dict.fromkeys(pythons))
