"""cais.builders.failures: real logs of failed builds, captured from both builders on Docker
Engine 20.10 (tests/unit/build_logs/), read by each builder and said in one sentence."""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

import docker.errors
import pytest
import requests

from cais.builders.buildkit import _stream
from cais.builders.classic import ClassicBuilder
from cais.builders.failures import build_error
from cais.errors import BuildError
from tests.support import RecordingProgress
from tests.unit.test_classic import FakeClient, request_for

LOGS = Path(__file__).parent / "build_logs"

BASE_IMAGE_HINT = "check its name and tag (`python:` or `base_image:` in cais.yaml"
FROM_SOURCE_HINT = "pin a version that has a wheel for the image's Python and platform"

# case → (message, the lines shown under it, words of the hint)
EXPECTED = {
    "no-such-package": (
        "The package `nosuchpackage-cais-test` was not found on the package index",
        [],
        "check its name in the requirements",
    ),
    "no-such-version": (
        "`requests==0.0.0` matches none of the versions of `requests` on the package index",
        [],
        "the newest is `2.34.2`: change the version of `requests`",
    ),
    "newer-python": (
        "`django==6.0` needs Python >=3.12, which the image does not have",
        [],
        "set `python:` in cais.yaml",
    ),
    "old-pip-no-version": (
        "No distribution of `numpy==2.1.0` was found on the package index",
        [],
        "may need a newer Python",
    ),
    "invalid-requirement": (
        "Line 2 of `requirements.txt` is not a valid requirement: `numpy = 1.0`",
        [],
        "pip says: = is not a valid operator. Did you mean == ?",
    ),
    "untrusted-proxy": (
        "pip cannot reach the package index: its TLS certificate is not trusted "
        "(self-signed certificate in certificate chain)",
        [],
        "`--ca-cert FILE`",
    ),
    "index-unreachable": (
        "pip cannot reach the package index: connection refused",
        [],
        "`--index-url`",
    ),
    "legacy": (
        "`netifaces` must be compiled from source, and the image has no C compiler",
        ["command 'x86_64-linux-gnu-gcc' failed: No such file or directory"],
        FROM_SOURCE_HINT,
    ),
    "wheel": (
        "`netifaces` must be compiled from source, and the image has no C compiler",
        ["[Errno 2] No such file or directory: 'x86_64-linux-gnu-gcc'"],
        FROM_SOURCE_HINT,
    ),
    "metadata": (
        "`psycopg2==2.9.9` could not be built from source: pg_config executable not found",
        [],
        FROM_SOURCE_HINT,
    ),
    "conflict": (
        "The requirements conflict: no version of each satisfies them all",
        ["The user requested idna==2.0", "requests 2.32.3 depends on idna<4 and >=2.5"],
        "change the versions named above",
    ),
    "no-such-image": (
        "The base image `127.0.0.1:5000/nosuch/python:3.11-slim` was not found",
        None,
        BASE_IMAGE_HINT,
    ),
    "no-such-tag": (
        "The base image `127.0.0.1:5000/python:3.99-slim` was not found",
        None,
        BASE_IMAGE_HINT,
    ),
    "private-image": (
        "The registry `127.0.0.1:5001` refused the base image "
        "`127.0.0.1:5001/cais-test-infra/nosuch:latest`: it needs a login",
        None,
        "log in with `cais login 127.0.0.1:5001`",
    ),
    "unreachable-registry": (
        "The base image `nosuch/python:3.11-slim` cannot be pulled: its registry "
        "`registry-1.docker.io` is not reachable",
        None,
        "check the network (or proxy) the Docker Engine uses",
    ),
    "dockerfile-syntax": (
        "Line 2 of the Dockerfile is not valid: unknown instruction: FORM",
        [],
        "fix line 2 of the project's `Dockerfile`",
    ),
    "copy-missing": (
        "`nosuch.txt` is not in the build context",
        [],
        "`COPY nosuch.txt /app/` copies it",
    ),
}


def buildkit_error(case: str) -> BuildError:
    """What the BuildKit builder makes of the captured `docker build --progress=plain`."""
    log = LOGS / f"{case}.buildkit.txt"
    _, error = _stream(
        ["sh", "-c", f"cat {shlex.quote(str(log))}; exit 1"], dict(os.environ), RecordingProgress()
    )
    assert isinstance(error, BuildError)
    return error


def classic_error(
    case: str, project: Path, progress: RecordingProgress | None = None
) -> BuildError:
    """What the classic builder makes of the captured Engine API build stream."""
    log = LOGS / f"{case}.classic.jsonl"
    if log.exists():
        chunks = [json.loads(line) for line in log.read_text().splitlines()]
    else:  # the engine refused the request itself: a 400 before any chunk
        chunks = _refused("dockerfile parse error line 2: unknown instruction: FORM")
    with pytest.raises(BuildError) as caught:
        ClassicBuilder(FakeClient(chunks)).build(
            request_for(project), progress or RecordingProgress()
        )
    return caught.value


def _refused(explanation: str):
    response = requests.Response()
    response.status_code = 400
    raise docker.errors.APIError("400 Client Error", response=response, explanation=explanation)
    yield  # a generator, as the SDK's stream is: the error comes when it is read


@pytest.fixture
def project(tmp_path, write):
    return write(tmp_path / "project", {"script.py": "print('hi')\n"})


@pytest.mark.parametrize("builder", ["buildkit", "classic"])
@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_a_failed_build_is_one_sentence(case, builder, project):
    error = buildkit_error(case) if builder == "buildkit" else classic_error(case, project)
    message, shown, hint = EXPECTED[case]
    assert error.message == message
    assert hint in error.hint
    if shown is not None:
        assert error.log_tail == shown
    else:  # the engine's own words, one short line
        assert len(error.log_tail) == 1 and len(error.log_tail[0]) <= 160
    assert "\n" not in error.message and not error.message.endswith(".")


def test_the_failing_step_is_kept():
    error = buildkit_error("no-such-package")
    assert error.step.startswith("[4/5] RUN --mount=type=secret")
    assert buildkit_error("no-such-image").step == (
        "[internal] load metadata for 127.0.0.1:5000/nosuch/python:3.11-slim"
    )


def test_an_unrecognised_step_is_named_short_with_its_code_and_last_lines():
    command = "RUN " + " && ".join(f"echo {n}" for n in range(60)) + " && ./train.sh"
    lines = [f"epoch {n}" for n in range(30)] + ["Segmentation fault"]
    final = [f"The command '/bin/sh -c {command[4:]}' returned a non-zero code: 139"]
    error = build_error(f"[3/3] {command}", lines, final)
    assert error.message.startswith("The step `[3/3] RUN echo 0 && echo 1")
    assert error.message.endswith("…` failed with exit code 139")
    assert len(error.message) < 120
    assert error.log_tail == [f"epoch {n}" for n in range(16, 30)] + ["Segmentation fault"]
    assert "`cais build -v`" in error.hint


def test_a_failure_before_any_step_shows_the_builders_words():
    error = build_error(None, [], ["ERROR: failed to solve: failed to read dockerfile"])
    assert error.message == "The build failed"
    assert error.log_tail == ["ERROR: failed to solve: failed to read dockerfile"]


@pytest.mark.parametrize(
    "lines, package",
    [
        (["  ERROR: Failed building wheel for lxml"], "lxml"),
        (["ERROR: Could not build wheels for pyyaml, which is required to install"], "pyyaml"),
        (["Failed to build installable wheels for some pyproject.toml based projects (a, b)"], "a"),
        (
            ["Collecting cryptography==3.0", "error: metadata-generation-failed"],
            "cryptography==3.0",
        ),
        (
            [
                "Processing ./vendor/tool",
                "Getting requirements to build wheel did not run successfully.",
            ],
            "./vendor/tool",
        ),
    ],
)
def test_the_package_that_does_not_build_is_named(lines, package):
    error = build_error("[2/2] RUN pip install -r requirements.txt", lines)
    assert error.message == f"`{package}` could not be built from source"


def test_the_requirements_pip_could_not_find_are_kept():
    lines = [
        "ERROR: No matching distribution found for torch==9.9",
        "ERROR: No matching distribution found for torch==9.9",
    ]
    assert build_error("[2/2] RUN pip install torch==9.9", lines).packages == ["torch==9.9"]
    assert buildkit_error("newer-python").packages == ["django==6.0"]
    # Not when pip never read the index, nor for other failures.
    assert buildkit_error("untrusted-proxy").packages == []
    assert buildkit_error("wheel").packages == []


def test_a_copy_from_another_stage_is_not_blamed_on_the_context():
    error = build_error("[3/3] COPY --from=build /app/dist /app", ['ERROR: "/app/dist": not found'])
    assert error.message == "The step `[3/3] COPY --from=build /app/dist /app` failed"


def test_the_engines_colour_codes_are_not_shown(project):
    # The engine colours what a step writes to stderr (JSON-escaped in the captured stream).
    assert "\\u001b[91m" in (LOGS / "no-such-version.classic.jsonl").read_text()
    progress = RecordingProgress()
    classic_error("no-such-version", project, progress)
    assert progress.lines and not any("\x1b" in line for line in progress.lines)
