"""Rebuilds after an edit of the code (cais.builders.replay), without an engine: the docker CLI
run is replaced here; tests/integration/test_build.py runs the real one."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cais import _entry
from cais.builders import buildkit, record, replay
from cais.builders.base import BuildResult
from cais.builders.buildkit import BuildKitCLI
from cais.builders.dockerfile import DEFAULT_DOCKERIGNORE
from cais.errors import BuildError
from cais.project import load_project

CLI = BuildKitCLI("/usr/bin/docker", False, "20.10.24")
DOCKERFILE = """FROM python:3.11-slim
COPY . .
LABEL org.opencontainers.image.title="hello" \\
      org.opencontainers.image.created="2020-01-01T00:00:00Z"
CMD ["python", "script.py"]
"""


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for name in record.BUILD_ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    socket = tmp_path / "docker.sock"
    socket.touch()  # only its existence is checked before the (replaced) build
    monkeypatch.setenv("DOCKER_HOST", f"unix://{socket}")
    monkeypatch.setattr(buildkit, "find_buildkit_cli", lambda: CLI)
    monkeypatch.setattr(record, "image_id", {"python:3.11-slim": "sha256:base"}.get)


@pytest.fixture
def project(tmp_path) -> Path:
    folder = tmp_path / "hello"
    folder.mkdir()
    (folder / "script.py").write_text("print('hello')\n")
    (folder / "requirements.txt").write_text("humanize\n")
    os.utime(folder / "script.py", (1_700_000_000, 1_700_000_000))
    os.utime(folder / "requirements.txt", (1_700_000_000, 1_700_000_000))
    return folder


def result(text: str | None = DOCKERFILE, **changes) -> BuildResult:
    fields = dict(
        image_id="sha256:" + "a" * 64,
        tags=("hello:1",),
        builder="buildkit",
        seconds=0.2,
        base_image="python:3.11-slim",
        dockerfile_text=text,
    )
    return BuildResult(**{**fields, **changes})


def keep(project: Path, built: BuildResult = result()) -> None:
    keys = record.fingerprint(project, ("hello:1",))
    replay.keep_recipe(keys.shape, built, load_project(project), CLI)


@pytest.fixture
def builds(monkeypatch) -> list:
    """What the replaced docker CLI was asked to build."""
    asked: list = []

    def build(self, request, progress):
        asked.append(request)
        progress.step("[1/2] COPY . .")
        return result(image_id="sha256:" + "b" * 64, seconds=0.1)

    monkeypatch.setattr(buildkit.BuildKitBuilder, "build", build)
    return asked


def quick(project: Path) -> int | None:
    return _entry.quick_build([str(project), "-t", "hello:1"])


def test_an_edit_of_the_code_runs_the_kept_build_again(project, builds, capsys, monkeypatch):
    keep(project)
    (project / "script.py").write_text("print('hello, edited')\n")
    os.utime(project / "script.py", (1_800_000_000, 1_800_000_000))
    assert quick(project) == 0
    [request] = builds
    assert request.context == project and request.tags == ("hello:1",)
    # The same Dockerfile, but for when the sources last changed.
    assert request.dockerfile_text == DOCKERFILE.replace(
        "2020-01-01T00:00:00Z", "2027-01-15T08:00:00Z"
    )
    assert request.default_ignore == DEFAULT_DOCKERIGNORE and request.dockerfile is None
    out, err = capsys.readouterr()
    assert out == "hello:1\n"
    assert "Built `hello:1` (bbbbbbbbbbbb) with buildkit" in err
    # Now the edited inputs are known to have built that image: a lookup answers next.
    engine = {"hello:1": "sha256:" + "b" * 64, "python:3.11-slim": "sha256:base"}
    monkeypatch.setattr(record, "image_id", engine.get)
    assert quick(project) == 0
    assert len(builds) == 1
    assert "is up to date" in capsys.readouterr().err


def test_a_second_edit_replays_the_first_replay(project, builds):
    keep(project)
    shape = record.fingerprint(project, ("hello:1",)).shape
    (project / "script.py").write_text("one\n")
    os.utime(project / "script.py", (1_750_000_000, 1_750_000_000))
    assert quick(project) == 0
    kept = record.recipe_for(shape)["dockerfile_text"]  # kept anew
    assert 'org.opencontainers.image.created="2025-06-15T15:06:40Z"' in kept
    (project / "script.py").write_text("two\n")
    os.utime(project / "script.py", (1_800_000_000, 1_800_000_000))
    assert quick(project) == 0
    assert "2027-01-15T08:00:00Z" in builds[-1].dockerfile_text


@pytest.mark.parametrize(
    "change",
    ["cais.yaml", "new script", "rename", "dockerignore", "environment", "tags"],
)
def test_a_change_that_can_change_the_dockerfile_runs_the_full_command(
    project, builds, change, monkeypatch
):
    keep(project)
    tags = ["-t", "hello:1"]
    if change == "cais.yaml":
        (project / "cais.yaml").write_text("env: {NAME: you}\n")
    elif change == "new script":
        (project / "other.py").write_text("")
    elif change == "rename":
        (project / "script.py").rename(project / "main.py")
    elif change == "dockerignore":
        (project / ".dockerignore").write_text("data/\n")
    elif change == "environment":
        monkeypatch.setenv("PIP_INDEX_URL", "https://pypi.example/simple")
    elif change == "tags":
        tags = ["-t", "hello:2"]
    assert _entry.quick_build([str(project), *tags]) is None
    assert builds == []


def test_a_projects_own_dockerfile_is_replayed_as_it_is(project, builds):
    own = project / "Dockerfile"
    own.write_text("FROM python:3.11-slim\nCOPY . .\n")
    keep(project, result(text=None, base_image=None))
    (project / "script.py").write_text("print('edited')\n")
    assert quick(project) == 0
    [request] = builds
    assert request.dockerfile == own and request.dockerfile_text is None


@pytest.mark.parametrize(
    "text",
    [DOCKERFILE.replace("org.opencontainers.image.created", "x"), DOCKERFILE + DOCKERFILE],
)
def test_a_dockerfile_without_one_created_label_is_not_kept(project, builds, text):
    keep(project, result(text=text))
    assert record.recipe_for(record.fingerprint(project, ("hello:1",)).shape) is None


def test_nothing_is_replayed_where_it_could_not_run_the_same(project, builds, monkeypatch):
    keep(project)
    (project / "script.py").write_text("print('edited')\n")
    monkeypatch.setattr(buildkit, "find_buildkit_cli", lambda: None)  # the CLI is gone
    assert quick(project) is None
    newer = dataclasses.replace(CLI, version="27.0.1")
    monkeypatch.setattr(buildkit, "find_buildkit_cli", lambda: newer)
    assert quick(project) is None  # another CLI: the full command chooses again
    monkeypatch.setattr(buildkit, "find_buildkit_cli", lambda: CLI)
    Path(os.environ["DOCKER_HOST"].removeprefix("unix://")).unlink()  # the engine stopped
    assert quick(project) is None  # the full command says the engine is not reachable
    assert builds == []


def test_pip_settings_are_read_again_and_never_kept(project, builds, tmp_path, monkeypatch):
    ca = tmp_path / "proxy.pem"
    ca.write_bytes(b"-----BEGIN CERTIFICATE-----\nMIIBproxy\n-----END CERTIFICATE-----\n")
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    keep(project, result(used_pip_settings=True))
    saved = (tmp_path / "cache" / "cais" / "recipes.json").read_text()
    assert "MIIBproxy" not in saved and str(ca) not in saved
    (project / "requirements.txt").write_text("humanize\nsix\n")  # pip runs again
    assert quick(project) == 0
    [request] = builds
    assert b"MIIBproxy" in request.pip.ca_bundle


def test_a_build_without_pip_settings_gets_none_on_replay(project, builds, monkeypatch):
    """A Dockerfile written without secret mounts gets no settings, whatever is set."""
    monkeypatch.setenv("PIP_INDEX_URL", "https://user:token@pypi.example/simple")
    keep(project, result(used_pip_settings=False))
    (project / "script.py").write_text("print('edited')\n")
    assert quick(project) == 0
    [request] = builds
    assert not request.pip


def test_an_interruption_before_the_build_exits_as_the_full_command_would(
    project, monkeypatch, capsys
):
    def interrupted(folder, tags):
        raise KeyboardInterrupt

    monkeypatch.setattr(record, "fingerprint", interrupted)
    assert quick(project) == 130
    assert "interrupted" in capsys.readouterr().err


def test_a_failed_replay_is_reported_as_the_full_command_would(project, monkeypatch, capsys):
    def failing(self, request, progress):
        raise BuildError("The build failed at step `[3/5] COPY . .`", log_tail=["no space left"])

    monkeypatch.setattr(buildkit.BuildKitBuilder, "build", failing)
    keep(project)
    (project / "script.py").write_text("print('edited')\n")
    assert quick(project) == 1
    err = capsys.readouterr().err
    assert "error: The build failed at step `[3/5] COPY . .`" in err and "no space left" in err

    def broken(self, request, progress):
        raise ValueError("odd")

    monkeypatch.setattr(buildkit.BuildKitBuilder, "build", broken)
    assert quick(project) == 2
    assert "cais failed unexpectedly: ValueError: odd" in capsys.readouterr().err


def test_the_replay_starts_the_build_without_the_command_line_libraries(project, tmp_path):
    """The point of the replay: Typer, Pydantic and the Docker SDK are not paid for."""
    keep(project, result(text='LABEL org.opencontainers.image.created="x"'))  # here: it loads
    check = f"""
import sys
from cais.builders import buildkit, record
from cais.builders.base import BuildResult
cli = buildkit.BuildKitCLI("/usr/bin/docker", False, "20.10.24")
buildkit.find_buildkit_cli = lambda: cli
record.image_id = lambda reference: None
seen = []
def build(self, request, progress):
    seen.extend(sorted({{m.split(".")[0] for m in sys.modules}} & heavy))
    return BuildResult("sha256:" + "b" * 64, ("hello:1",), "buildkit", 0.1)
heavy = {{"typer", "pydantic", "docker", "yaml", "httpx", "click", "packaging"}}
buildkit.BuildKitBuilder.build = build
project = {str(project)!r}
from pathlib import Path
Path(project, "script.py").write_text("edited")
from cais._entry import quick_build
code = quick_build([project, "-t", "hello:1"])
print(code, seen)
"""
    done = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, env=os.environ, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "0 []"


def test_cais_reads_no_other_file_of_a_project_to_write_its_dockerfile(tmp_path):
    """What the shape leaves out must be what cais never reads: the contents of every file but
    SHAPING_FILES (their names still count)."""
    from cais.build import dockerfile_for
    from cais.builders.context import ignore_patterns
    from cais.builders.dockerfile import DEFAULT_DOCKERIGNORE

    folder = tmp_path / "full"
    (folder / "pkg").mkdir(parents=True)
    files = {
        "cais.yaml": "name: full\nentrypoint: main.py\nrequirements: deps/base.txt\n",
        "pyproject.toml": "[project]\nname = 'full'\nrequires-python = '>=3.10'\n",
        ".python-version": "3.11\n",
        ".dockerignore": "data/\n",
        "main.py": "print('hi')\n",
        "app.py": "print('app')\n",
        "setup.py": "from setuptools import setup\nsetup()\n",
        "requirements.txt": "humanize\n",
        "deps/base.txt": "six\n",
        "pkg/__init__.py": "",
        "notes.md": "# notes\n",
    }
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    opened: list[str] = []
    watching = [True]

    def hook(event: str, args: tuple) -> None:
        if watching[0] and event == "open" and isinstance(args[0], str):
            opened.append(args[0])

    sys.addaudithook(hook)  # cannot be removed: it stops watching at the end instead
    try:
        project, _ = dockerfile_for(folder)
        ignore_patterns(project.path, DEFAULT_DOCKERIGNORE)
    finally:
        watching[0] = False
    read = {
        Path(p).resolve().relative_to(folder).as_posix().casefold()
        for p in opened
        if str(folder) in p
    }
    # The requirement file too: a replay reads it again and leaves any that names other
    # files or folders to the full command (replay._plain).
    shaping = record.SHAPING_FILES | {"deps/base.txt"}
    assert read and read <= shaping, read - shaping


@pytest.mark.parametrize(
    ("config", "own"),
    [
        ("entrypoint: script.py\nrequirements: requirements.txt\n", True),
        ("entrypoint: [python, -m, app]\n", True),
        ("entrypoint: linked/run.py\n", False),  # through a linked folder
    ],
)
def test_recipes_are_kept_only_for_projects_naming_their_own_files(project, config, own):
    """The shape follows the project's own entries, not what links or `..` reach."""
    elsewhere = project.parent / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "run.py").write_text("")
    (project / "linked").symlink_to(elsewhere)
    (project.parent / "outside.txt").write_text("six\n")
    (project / "cais.yaml").write_text(config)
    assert replay._names_only_own_files(load_project(project)) is own
    keep(project)
    assert (record.recipe_for(record.fingerprint(project, ("hello:1",)).shape) is not None) is own


@pytest.mark.parametrize(
    ("text", "plain"),
    [
        ("humanize\nsix>=1.16 ; python_version >= '3.8'  # a comment\n", True),
        ("", True),
        ("six\n-r base.txt\n", False),
        ("--constraint c.txt\n", False),
        ("./mypkg\n", False),
        ("-e ./mypkg\n", False),
        ("pkg @ file:///srv/pkg\n", False),
        ("file:mypkg\n", False),
        ("libs/pkg-1.0-py3-none-any.whl\n", False),
    ],
)
def test_a_requirement_file_naming_other_files_is_left_to_the_full_command(tmp_path, text, plain):
    (tmp_path / "requirements.txt").write_text(text)
    assert replay._plain(tmp_path / "requirements.txt") is plain


@pytest.mark.parametrize(
    "files",
    [
        {"requirements.txt": "-r base.txt\n", "base.txt": "six\n"},
        {"requirements.txt": "./mypkg\n", "mypkg/setup.py": ""},
    ],
)
def test_no_recipe_for_requirements_with_includes_or_local_packages(project, files, monkeypatch):
    for name, text in files.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(text)
    kept = []
    monkeypatch.setattr(replay, "remember_recipe", lambda shape, recipe: kept.append(recipe))
    replay.keep_recipe("shape", result(), load_project(project), CLI)
    assert kept == []
    (project / "requirements.txt").write_text("six\n")
    replay.keep_recipe("shape", result(), load_project(project), CLI)
    assert kept and kept[0]["requirements"] == "requirements.txt"
