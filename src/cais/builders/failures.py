"""Why a build failed, in one sentence.

Pure functions over what a failed build printed: the failing step's lines and the builder's
closing error. pip's messages (no such package or version, a package that does not build
from source, conflicting pins, an index it cannot reach) and the engine's (a base image that
cannot be pulled, a Dockerfile that does not parse, a COPY of a missing file) become one
sentence naming the package, image or file, a hint, and the few lines that say so. Anything
else is reported as the failing step with its last lines. Both builders call `build_error`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from cais.errors import BuildError

__all__ = ["build_error"]

_SHOWN = 15  # last lines of a step shown under a failure that is not recognised
# How the builders restate a failed RUN: the whole command again, then its exit code.
_EXIT = re.compile(
    r"(?:executor failed running \[.*\]|process \".*\" did not complete successfully"
    r"|The command '.*' returned a non-zero code): (?:exit code: )?(\d+)$"
)
_NOISE = re.compile(r"^(?:Removing intermediate container |\[notice\] |sha256:[0-9a-f]{64}$)")

# pip's words for a requirement the index cannot satisfy.
_NO_DISTRIBUTION = re.compile(r"No matching distribution found for (\S+)")
_NO_VERSION = re.compile(
    r"Could not find a version that satisfies the requirement (\S+)(?: \(from versions: ([^)]*)\))?"
)
_IGNORED = re.compile(
    r"Ignored the following versions that require a different python version: (.*)"
)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*")
_RELEASE = re.compile(r"^\d+(?:\.\d+)*$")
_INVALID = re.compile(r"Invalid requirement: '(.*)' \(from line (\d+) of (\S+)\)")
_PIP_HINT = re.compile(r"^Hint: (.*)")
# pip retries an index that does not answer, and its warnings say why.
_UNTRUSTED = re.compile(r"CERTIFICATE_VERIFY_FAILED|SSLError")
_UNTRUSTED_WHY = re.compile(r"certificate verify failed: ([^(')]+)")
_UNREACHABLE_INDEX = re.compile(
    r"(Connection refused|Temporary failure in name resolution|Name or service not known"
    r"|No route to host|timed out|ProxyError)"
)

# How pip names a package whose build from source failed (pip 20 to 25).
_FAILED_BUILDS = tuple(
    map(
        re.compile,
        (
            r"Failed building wheel for (\S+)",
            r"Failed to build installable wheels for some pyproject\.toml based projects \((.*)\)",
            r"Could not build wheels for (\S+?),",
            r"Running setup\.py install for (\S+?):? (?:did not run successfully|finished with "
            r"status 'error')",
        ),
    )
)
_METADATA_FAILED = re.compile(
    r"error: metadata-generation-failed|Getting requirements to build wheel did not run successfully"
    r"|Preparing metadata \([^)]*\): finished with status 'error'"
)
# The package pip was at, and the error its build backend printed last.
_COLLECTING = re.compile(r"^(?:Collecting|Processing) (\S+)")
_OUTPUT_START = re.compile(r"╰─> \[\d+ lines? of output\]")
_CAUSE = re.compile(r"^(?:error|Error|ERROR|fatal error)\b:?\s*(.*)")
_COMPILER = re.compile(
    r"(?:gcc|g\+\+|clang|\bcc)'?:? .*(?:No such file|not found)"
    r"|No such file or directory: '[^']*(?:gcc|g\+\+|clang|cc)'"
)

# The engine's words for a base image it cannot pull, a bad Dockerfile, a missing file.
_FROM_STEP = re.compile(r"(?:load metadata for |^(?:\[[^\]]*\] )?FROM (?:--\S+ )*)(\S+)", re.I)
_IMAGE_NOT_FOUND = re.compile(
    r"not found|manifest unknown|pull access denied|repository does not exist"
)
_IMAGE_NEEDS_LOGIN = re.compile(
    r"401 Unauthorized|no basic auth credentials|authentication required|unauthorized:", re.I
)
_REGISTRY_HOST = re.compile(r"https?://([^/\s\"]+)/v2/")
_REGISTRY_UNREACHABLE = re.compile(
    r"no such host|connection refused|i/o timeout|TLS handshake timeout|network is unreachable"
    r"|dial tcp",
    re.I,
)
_PARSE_ERROR = re.compile(r"dockerfile parse error (?:on )?line (\d+): (.*)", re.I)
_COPY_STEP = re.compile(r"^(?:\[[^\]]*\] )?(?:COPY|ADD)\b", re.I)
_MISSING_SOURCE = (
    re.compile(r"\"/?([^\"]+)\"?:? not found"),
    re.compile(r"stat (\S+): file does not exist"),
)


def build_error(step: str | None, lines: Sequence[str], final: Sequence[str] = ()) -> BuildError:
    """The error for a build that failed at `step` (None: before any step) after printing
    `lines` (the step's output, oldest first); `final` is the builder's closing message."""
    lines = _clean(lines)
    final = [line for line in _clean(final) if line not in lines]
    for recognise in _RECOGNISERS:
        error = recognise(step, [*lines, *final])
        if error is not None:
            error.step = step
            return error
    # The engine's restatement of the failed command is left out: the message has its code.
    shown = [line for line in lines or final if not _EXIT.search(line)][-_SHOWN:]
    code = _search(_EXIT, [*lines, *final])
    if step is None:
        message = "The build failed"
    elif code is not None:
        message = f"The step `{_shorten(step)}` failed with exit code {code.group(1)}"
    else:
        message = f"The step `{_shorten(step)}` failed"
    where = "the step" if step else "what they name"
    return BuildError(
        message,
        step=step,
        log_tail=shown,
        hint=f"the last lines are above (`cais build -v` shows them all): fix {where}, then "
        "run `cais build` again",
    )


def _missing_packages(lines: Sequence[str]) -> list[str]:
    """The requirements pip found no distribution for, as pip wrote them."""
    return sorted({m.group(1) for m in map(_NO_DISTRIBUTION.search, lines) if m})


def _clean(lines: Sequence[str]) -> list[str]:
    cleaned = []
    for line in lines:
        line = line.rstrip()
        if line.startswith("ERROR: ") and _EXIT.search(line):
            line = line.removeprefix("ERROR: ")
        if line.strip() and not _NOISE.match(line.strip()):
            cleaned.append(line)
    return cleaned


def _search(pattern: re.Pattern[str], lines: Sequence[str]) -> re.Match[str] | None:
    """The last line's match of `pattern`."""
    return next((m for m in map(pattern.search, reversed(lines)) if m), None)


def _first(pattern: re.Pattern[str], lines: Sequence[str]) -> str | None:
    """The first line that matches `pattern`, without a builder's `ERROR: ` prefix."""
    found = next((line for line in lines if pattern.search(line)), None)
    return found.strip().removeprefix("ERROR: ") if found else None


def _pip_not_found(step: str | None, lines: list[str]) -> BuildError | None:
    missing = _missing_packages(lines)
    if not missing:
        return None
    # "No matching distribution" after retries means pip never read the index.
    attempts = [line for line in lines if "Retrying" in line or "Could not fetch URL" in line]
    if _search(_UNTRUSTED, attempts):
        why = _search(_UNTRUSTED_WHY, attempts)
        detail = f" ({why.group(1).strip()})" if why else ""
        return BuildError(
            f"pip cannot reach the package index: its TLS certificate is not trusted{detail}",
            hint="behind a proxy that inspects TLS, pass its CA certificate with `--ca-cert FILE` "
            "(or set `PIP_CERT`); a project's own Dockerfile must give it to pip itself",
        )
    cause = _search(_UNREACHABLE_INDEX, attempts)
    if cause:
        return BuildError(
            f"pip cannot reach the package index: {cause.group(1).lower()}",
            hint="check the index address (`--index-url`, `PIP_INDEX_URL`) and that the "
            "network or proxy lets containers reach it",
        )
    error = _not_on_the_index(missing[0], lines)
    error.packages = missing
    return error


def _not_on_the_index(requirement: str, lines: list[str]) -> BuildError:
    name = _NAME.match(requirement)
    package = name.group(0) if name else requirement
    versions_match = _search(_NO_VERSION, lines)
    versions = versions_match.group(2) if versions_match else None
    ignored = _search(_IGNORED, lines)
    pinned = requirement[len(package) :].lstrip("=<>!~ ")
    needs = (
        re.search(rf"(?:^|; ){re.escape(pinned)} Requires-Python ([^;]+)", ignored.group(1))
        if ignored and pinned
        else None
    )
    if needs:
        return BuildError(
            f"`{requirement}` needs Python {needs.group(1).strip()}, which the image does not have",
            hint=f"pin a version of `{package}` that supports the image's Python, or set "
            "`python:` in cais.yaml to one it supports",
        )
    if versions is None or versions.strip() == "none":
        if ignored:
            return BuildError(
                f"No version of `{package}` supports the image's Python",
                log_tail=[_short_line(ignored.group(0))],
                hint="set `python:` in cais.yaml to a version the package supports",
            )
        if versions is None and pinned:
            return BuildError(
                f"No distribution of `{requirement}` was found on the package index",
                hint=f"check the name and version of `{package}` in the requirements; the "
                "version may need a newer Python than the image's",
            )
        return BuildError(
            f"The package `{package}` was not found on the package index",
            hint="check its name in the requirements; a private package needs its own index "
            "(`--index-url URL`)",
        )
    releases = [v.strip() for v in versions.split(",") if _RELEASE.match(v.strip())]
    newest = f"the newest is `{releases[-1]}`: " if releases else ""
    return BuildError(
        f"`{requirement}` matches none of the versions of `{package}` on the package index",
        hint=f"{newest}change the version of `{package}` in the requirements",
    )


def _pip_build_failed(step: str | None, lines: list[str]) -> BuildError | None:
    package = None
    for pattern in _FAILED_BUILDS:
        found = _search(pattern, lines)
        if found:
            package = found.group(1).split(",")[0].strip()
            break
    if package is None and any("legacy-install-failure" in line for line in lines):
        arrows = [line.strip() for line in lines if line.strip().startswith("╰─> ")]
        package = arrows[-1].removeprefix("╰─> ").strip() if arrows else None
    if package is None:
        failed = next((i for i, line in enumerate(lines) if _METADATA_FAILED.search(line)), None)
        if failed is None:
            return None
        collecting = _search(_COLLECTING, [line.strip() for line in lines[:failed]])
        package = collecting.group(1) if collecting else "a package"
    cause = _build_cause(lines)
    named = f"`{package}`" if package != "a package" else package
    shown: list[str] = []
    if cause and _COMPILER.search(cause):
        message = f"{named} must be compiled from source, and the image has no C compiler"
        shown = [cause]
    elif cause:
        message = f"{named} could not be built from source: {cause}"
    else:
        message = f"{named} could not be built from source"
    return BuildError(
        message[0].upper() + message[1:],
        log_tail=shown,
        hint="pin a version that has a wheel for the image's Python and platform, or use a "
        "`base_image:` with the build tools and libraries it needs",
    )


def _build_cause(lines: list[str]) -> str | None:
    """The last error line of the build backend's own output, without its prefix."""
    inside = False
    cause = None
    for line in lines:
        text = line.strip()
        if _OUTPUT_START.search(text):
            inside = True
        elif text == "[end of output]":
            inside = False
        elif inside:
            found = _CAUSE.match(text)
            if found and found.group(1):
                cause = found.group(1).rstrip(".")
    return cause


def _pip_invalid_requirement(step: str | None, lines: list[str]) -> BuildError | None:
    found = _search(_INVALID, lines)
    if found is None:
        return None
    requirement, number, file = found.groups()
    advice = _search(_PIP_HINT, [line.strip() for line in lines])
    return BuildError(
        f"Line {number} of `{file.rsplit('/', 1)[-1]}` is not a valid requirement: `{requirement}`",
        hint=f"pip says: {advice.group(1)}"
        if advice
        else "write it as `name`, `name==1.2.3` or `name>=1.2`",
    )


def _pip_conflict(step: str | None, lines: list[str]) -> BuildError | None:
    if not any(
        "ResolutionImpossible" in line or "conflicting dependencies" in line for line in lines
    ):
        return None
    causes = []
    collecting = False
    for line in lines:
        text = line.strip()
        if text == "The conflict is caused by:":
            collecting = True
        elif collecting and line.startswith((" ", "\t")) and text:
            causes.append(text)
        elif collecting:
            collecting = False
    return BuildError(
        "The requirements conflict: no version of each satisfies them all",
        log_tail=causes,
        hint="change the versions named above so they agree (or leave one unpinned and let pip "
        "choose)",
    )


def _base_image(step: str | None, lines: list[str]) -> BuildError | None:
    found = _FROM_STEP.search(step or "")
    if found is None or not lines:
        return None
    image = re.sub(r"^docker\.io/(?:library/)?", "", found.group(1))
    refused = _first(_IMAGE_NEEDS_LOGIN, lines)
    if refused:
        registry = _registry_of(image)
        login = "cais login" if registry == "docker.io" else f"cais login {registry}"
        return BuildError(
            f"The registry `{registry}` refused the base image `{image}`: it needs a login",
            log_tail=[_short_line(refused)],
            hint=f"log in with `{login}` (the Docker Engine uses the same credentials), then "
            "build again",
        )
    unreachable = _first(_REGISTRY_UNREACHABLE, lines)
    not_found = _first(_IMAGE_NOT_FOUND, lines)
    if unreachable and not not_found:
        host = _search(_REGISTRY_HOST, lines)
        where = f"its registry `{host.group(1)}`" if host else "its registry"
        return BuildError(
            f"The base image `{image}` cannot be pulled: {where} is not reachable",
            log_tail=[_short_line(unreachable)],
            hint="check the network (or proxy) the Docker Engine uses, or name an image the "
            "engine has or can reach (`base_image:` in cais.yaml, or FROM in a Dockerfile)",
        )
    if not_found:
        return BuildError(
            f"The base image `{image}` was not found",
            log_tail=[_short_line(not_found)],
            hint="check its name and tag (`python:` or `base_image:` in cais.yaml, or FROM in the "
            "project's Dockerfile); a private image needs `cais login REGISTRY` first",
        )
    return None


def _registry_of(image: str) -> str:
    """The registry of an image reference, as `cais login` takes it."""
    first, _, rest = image.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


def _dockerfile_syntax(step: str | None, lines: list[str]) -> BuildError | None:
    found = _search(_PARSE_ERROR, lines)
    if found is None:
        return None
    line, problem = found.groups()
    return BuildError(
        f"Line {line} of the Dockerfile is not valid: {problem.strip()}",
        hint=f"fix line {line} of the project's `Dockerfile`, then run `cais build` again",
    )


def _copy_missing(step: str | None, lines: list[str]) -> BuildError | None:
    if step is None or not _COPY_STEP.search(step) or "--from=" in step:
        return None  # (a COPY from another stage or image reads no context)
    for pattern in _MISSING_SOURCE:
        found = _search(pattern, lines)
        if found:
            instruction = re.sub(r"^\[[^\]]*\] ", "", step)
            return BuildError(
                f"`{found.group(1)}` is not in the build context",
                hint=f"`{_shorten(instruction)}` copies it: check the name, and that "
                "`.dockerignore` does not leave it out",
            )
    return None


_RECOGNISERS: tuple[Callable[[str | None, list[str]], BuildError | None], ...] = (
    _base_image,
    _dockerfile_syntax,
    _copy_missing,
    _pip_invalid_requirement,
    _pip_conflict,
    _pip_build_failed,
    _pip_not_found,
)


def _shorten(text: str, width: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _short_line(text: str, width: int = 160) -> str:
    return _shorten(text.strip(), width)
