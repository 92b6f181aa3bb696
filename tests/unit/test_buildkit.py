"""cais.builders.buildkit: reading `--progress=plain` output, finding a BuildKit-capable CLI,
and the command the BuildKit builder runs (with a fake docker CLI)."""

from __future__ import annotations

import os
import shlex
import subprocess
import warnings
from pathlib import Path

import pytest

from cais.builders import buildkit
from cais.builders.base import BuildRequest
from cais.builders.buildkit import (
    BuildKitBuilder,
    BuildKitCLI,
    _stream,
    find_buildkit_cli,
)
from cais.builders.dockerfile import PIP_CA_SECRET, PIP_CONF_SECRET
from cais.builders.pip_settings import PipSettings
from cais.errors import BuildError
from tests.support import RecordingProgress

# `_stream` leaves the CLI's output pipe open (see test_stream_closes_the_pipe); the tests of
# what it parses ignore that ResourceWarning so they can check the parsing.


FAILED_BUILD = """\
#0 building with "default" instance using docker driver

#1 [internal] load build definition from Dockerfile
#1 transferring dockerfile: 612B done
#1 DONE 0.0s

#2 [internal] load metadata for docker.io/library/python:3.11-slim
#2 DONE 0.4s

#3 [internal] load .dockerignore
#3 transferring context: 2B done
#3 DONE 0.0s

#4 [1/4] FROM docker.io/library/python:3.11-slim@sha256:0123456789abcdef
#4 CACHED

#5 [internal] load build context
#5 transferring context: 1.20kB done
#5 DONE 0.0s

#6 [2/4] RUN groupadd --gid 1000 app
#6 CACHED

#7 [3/4] COPY requirements.txt ./
#7 DONE 0.1s

#8 [4/4] RUN pip install --no-cache-dir -r requirements.txt
#8 0.512 Collecting rich
#8 0.900 ERROR: Could not find a version that satisfies the requirement nopkg (from versions: none)
#8 0.901 ERROR: No matching distribution found for nopkg
#8 ERROR: process "/bin/sh -c pip install --no-cache-dir -r requirements.txt" did not complete successfully: exit code: 1
------
 > [4/4] RUN pip install --no-cache-dir -r requirements.txt:
0.512 Collecting rich
0.901 ERROR: No matching distribution found for nopkg
------
Dockerfile:22
--------------------
  20 |     COPY requirements.txt ./
  21 | >>> RUN pip install --no-cache-dir -r requirements.txt
--------------------
ERROR: failed to solve: process "/bin/sh -c pip install --no-cache-dir -r requirements.txt" did not complete successfully: exit code: 1
"""

# Debian's docker.io 20.10: `executor failed running` and a vertex reprinted while interleaved.
FAILED_BUILD_20_10 = """\
#1 [internal] load build definition from Dockerfile
#1 sha256:aaa
#1 transferring dockerfile: 32B done
#1 DONE 0.0s

#4 [dependencies 1/3] FROM docker.io/library/python:3.11-slim
#4 DONE 0.0s

#5 [dependencies 2/3] RUN pip install --prefix=/install nopkg
#5 0.400 Collecting nopkg
#6 [internal] load build context
#6 DONE 0.1s

#5 [dependencies 2/3] RUN pip install --prefix=/install nopkg
#5 0.512 ERROR: No matching distribution found for nopkg
#5 ERROR: executor failed running [/bin/sh -c pip install --prefix=/install nopkg]: exit code: 1
------
 > [dependencies 2/3] RUN pip install --prefix=/install nopkg:
------
executor failed running [/bin/sh -c pip install --prefix=/install nopkg]: exit code: 1
error: failed to solve: executor failed running [/bin/sh -c pip install --prefix=/install nopkg]: exit code: 1
"""

SUCCESSFUL_BUILD = """\
#1 [internal] load build definition from Dockerfile
#1 DONE 0.0s

#2 [1/3] FROM docker.io/library/python:3.11-slim
#2 DONE 0.0s

#3 [2/3] RUN pip install -r requirements.txt
#3 0.300 Collecting rich
#3 1.250 Successfully installed rich-13.7.1
#3 DONE 1.4s

#4 [3/3] COPY . .
#4 DONE 0.0s

#5 exporting to image
#5 exporting layers 0.1s done
#5 writing image sha256:feedface done
#5 DONE 0.1s
"""

EARLY_FAILURE = """\
#1 [internal] load build definition from Dockerfile
#1 DONE 0.0s
ERROR: failed to solve: failed to read dockerfile: open Dockerfile: no such file or directory
"""


def run_transcript(
    tmp_path: Path, transcript: str, exit_code: int
) -> tuple[int, BuildError, RecordingProgress]:
    file = tmp_path / "transcript.txt"
    file.write_text(transcript)
    progress = RecordingProgress()
    code, error = _stream(
        ["sh", "-c", f"cat {shlex.quote(str(file))}; exit {exit_code}"], dict(os.environ), progress
    )
    return code, error, progress


def test_failed_build(tmp_path):
    code, error, progress = run_transcript(tmp_path, FAILED_BUILD, 1)
    assert code == 1
    assert progress.steps == [
        "[1/4] FROM docker.io/library/python:3.11-slim@sha256:0123456789abcdef",
        "[2/4] RUN groupadd --gid 1000 app",
        "[3/4] COPY requirements.txt ./",
        "[4/4] RUN pip install --no-cache-dir -r requirements.txt",
    ]
    assert progress.lines == [
        "Collecting rich",
        "ERROR: Could not find a version that satisfies the requirement nopkg (from versions: none)",
        "ERROR: No matching distribution found for nopkg",
    ]
    assert isinstance(error, BuildError)
    assert error.step == "[4/4] RUN pip install --no-cache-dir -r requirements.txt"
    # The failing step's lines go to the recogniser (tests/unit/test_failures.py).
    assert error.message == "The package `nopkg` was not found on the package index"
    assert "requirements" in error.hint


def test_failed_build_of_an_older_cli_with_stages_and_interleaving(tmp_path):
    code, error, progress = run_transcript(tmp_path, FAILED_BUILD_20_10, 1)
    assert code == 1
    assert progress.steps == [
        "[dependencies 1/3] FROM docker.io/library/python:3.11-slim",
        "[dependencies 2/3] RUN pip install --prefix=/install nopkg",
    ]
    assert error.step == "[dependencies 2/3] RUN pip install --prefix=/install nopkg"
    assert error.message == "The package `nopkg` was not found on the package index"


def test_an_unrecognised_failure_shows_the_last_15_lines(tmp_path):
    lines = (
        ["#3 [2/2] RUN ./noisy.sh"]
        + [f"#3 {n}.000 line {n}" for n in range(1, 41)]
        + ["#3 ERROR: boom"]
    )
    _, error, progress = run_transcript(tmp_path, "\n".join(lines) + "\n", 1)
    assert len(progress.lines) == 40
    assert error.message == "The step `[2/2] RUN ./noisy.sh` failed"
    assert len(error.log_tail) == 15
    assert error.log_tail[0] == "line 27"
    assert error.log_tail[-1] == "ERROR: boom"


def test_failure_outside_any_step(tmp_path):
    code, error, progress = run_transcript(tmp_path, EARLY_FAILURE, 1)
    assert code == 1
    assert progress.steps == []
    assert error.step is None
    assert error.message == "The build failed"
    assert error.log_tail == [
        "ERROR: failed to solve: failed to read dockerfile: open Dockerfile: no such file or directory"
    ]


def test_successful_build(tmp_path):
    code, _, progress = run_transcript(tmp_path, SUCCESSFUL_BUILD, 0)
    assert code == 0
    assert progress.steps == [
        "[1/3] FROM docker.io/library/python:3.11-slim",
        "[2/3] RUN pip install -r requirements.txt",
        "[3/3] COPY . .",
    ]
    assert progress.lines == ["Collecting rich", "Successfully installed rich-13.7.1"]


def test_auth_vertex_is_not_a_step(tmp_path):
    transcript = (
        "#3 [auth] library/python:pull token for registry-1.docker.io\n"
        "#3 DONE 0.0s\n"
        "#4 [1/2] FROM docker.io/library/python:3.11-slim\n"
        "#4 DONE 0.1s\n"
    )
    _, _, progress = run_transcript(tmp_path, transcript, 0)
    assert progress.steps == ["[1/2] FROM docker.io/library/python:3.11-slim"]


def test_stream_closes_the_pipe(tmp_path):
    import gc

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, _, _ = run_transcript(tmp_path, SUCCESSFUL_BUILD, 0)
        gc.collect()
    assert code == 0
    leaks = [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert leaks == []


def test_cli_that_cannot_start(tmp_path):
    with pytest.raises(BuildError) as caught:
        _stream([str(tmp_path / "no-docker"), "build"], dict(os.environ), RecordingProgress())
    assert f"The docker CLI `{tmp_path / 'no-docker'}` could not be started" in caught.value.message


# --- find_buildkit_cli ----------------------------------------------------------------------


def fake_docker(
    folder: Path, name: str, version_line: str, *, buildx: bool, log: Path | None = None
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    record = f'echo "$*" >> {shlex.quote(str(log))}\n' if log else ""
    answer = (
        'echo "github.com/docker/buildx v0.14.0 abc"; exit 0'
        if buildx
        else 'echo "unknown command: docker buildx" >&2; exit 1'
    )
    path.write_text(
        "#!/bin/sh\n"
        + record
        + 'case "$1" in\n'
        + f'  --version) echo "{version_line}" ;;\n'
        + f'  buildx) [ "$2" = version ] && {{ {answer}; }} ;;\n'
        + "  *) exit 1 ;;\n"
        + "esac\n"
    )
    path.chmod(0o755)
    return path


class _Delegate:
    """A stand-in module: the given attributes, everything else from the real module."""

    def __init__(self, real, **overrides) -> None:
        self._real = real
        self.__dict__.update(overrides)

    def __getattr__(self, name):
        return getattr(self._real, name)


@pytest.fixture
def candidates(monkeypatch):
    """Control the three places find_buildkit_cli looks: `which docker`, /usr/bin/docker and
    /usr/local/bin/docker (both exist on some machines, so they are redirected or hidden)."""

    def set_candidates(
        which: Path | None, usr_bin: Path | None = None, usr_local: Path | None = None
    ):
        fixed = {"/usr/bin/docker": usr_bin, "/usr/local/bin/docker": usr_local}

        def access(path, mode):
            if path in fixed:
                return fixed[path] is not None
            return os.access(path, mode)

        def realpath(path):
            if path in fixed and fixed[path] is not None:
                return os.path.realpath(fixed[path])
            return os.path.realpath(path)

        def run(args, *a, **kw):
            if args and args[0] in fixed and fixed[args[0]] is not None:
                args = [str(fixed[args[0]]), *args[1:]]
            return subprocess.run(args, *a, **kw)

        monkeypatch.setattr(buildkit.shutil, "which", lambda name: str(which) if which else None)
        monkeypatch.setattr(
            buildkit, "os", _Delegate(os, access=access, path=_Delegate(os.path, realpath=realpath))
        )
        monkeypatch.setattr(buildkit, "subprocess", _Delegate(subprocess, run=run))

    return set_candidates


def test_cli_with_buildx(tmp_path, candidates):
    docker = fake_docker(
        tmp_path / "bin", "docker", "Docker version 28.2.2, build e6534b4", buildx=True
    )
    candidates(docker)
    cli = find_buildkit_cli()
    assert cli == BuildKitCLI(str(docker), True, "28.2.2")
    assert cli.command() == [str(docker), "buildx", "build", "--load"]


def test_old_cli_has_buildkit_built_in(tmp_path, candidates):
    docker = fake_docker(
        tmp_path / "bin", "docker", "Docker version 20.10.24+dfsg1, build 297e128", buildx=False
    )
    candidates(docker)
    cli = find_buildkit_cli()
    assert cli == BuildKitCLI(str(docker), False, "20.10.24+dfsg1")
    assert cli.command() == [str(docker), "build"]


def test_new_cli_without_buildx_is_passed_over(tmp_path, candidates):
    new = fake_docker(tmp_path / "new", "docker", "Docker version 28.2.2, build x", buildx=False)
    old = fake_docker(
        tmp_path / "old", "docker", "Docker version 20.10.24+dfsg1, build y", buildx=False
    )
    candidates(new, usr_bin=old)
    cli = find_buildkit_cli()
    assert cli is not None
    assert (cli.path, cli.buildx, cli.version) == ("/usr/bin/docker", False, "20.10.24+dfsg1")


def test_none_found(tmp_path, candidates):
    new = fake_docker(tmp_path / "new", "docker", "Docker version 28.2.2, build x", buildx=False)
    candidates(new)
    assert find_buildkit_cli() is None


def test_nothing_installed(candidates):
    candidates(None)
    assert find_buildkit_cli() is None


def test_cli_without_a_version_is_passed_over(tmp_path, candidates):
    broken = fake_docker(tmp_path / "broken", "docker", "command not understood", buildx=True)
    old = fake_docker(tmp_path / "old", "docker", "Docker version 20.10.5, build z", buildx=False)
    candidates(broken, usr_local=old)
    cli = find_buildkit_cli()
    assert cli is not None
    assert (cli.path, cli.version) == ("/usr/local/bin/docker", "20.10.5")


def test_not_executable_is_passed_over(tmp_path, candidates):
    docker = fake_docker(tmp_path / "bin", "docker", "Docker version 28.2.2, build x", buildx=True)
    docker.chmod(0o644)
    candidates(docker)
    assert find_buildkit_cli() is None


def test_the_same_cli_is_asked_once(tmp_path, candidates):
    log = tmp_path / "calls.log"
    new = fake_docker(
        tmp_path / "new", "docker", "Docker version 28.2.2, build x", buildx=False, log=log
    )
    link = tmp_path / "link" / "docker"
    link.parent.mkdir()
    link.symlink_to(new)
    candidates(link, usr_bin=new, usr_local=new)
    assert find_buildkit_cli() is None
    assert log.read_text().splitlines() == ["--version", "buildx version"]


def test_the_answer_is_kept_while_the_clis_are_unchanged(tmp_path, candidates, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("CAIS_CACHE", str(cache))
    log = tmp_path / "calls.log"
    docker = fake_docker(
        tmp_path / "bin", "docker", "Docker version 28.2.2, build x", buildx=True, log=log
    )
    candidates(docker)
    found = find_buildkit_cli()
    assert found == BuildKitCLI(str(docker), True, "28.2.2")
    assert find_buildkit_cli() == found
    assert len(log.read_text().splitlines()) == 2  # asked once
    (cache / "docker-cli.json").write_text("{half")  # a cache cut short is asked again
    assert find_buildkit_cli() == found
    assert len(log.read_text().splitlines()) == 4
    os.utime(docker, ns=(0, 0))  # another CLI in the same place
    assert find_buildkit_cli() == found
    assert len(log.read_text().splitlines()) == 6


def test_a_cache_that_cannot_be_written_leaves_nothing_behind(tmp_path, candidates, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("CAIS_CACHE", str(cache))
    (cache / "docker-cli.json").mkdir(parents=True)  # the rename onto it fails
    docker = fake_docker(tmp_path / "bin", "docker", "Docker version 28.2.2, build x", buildx=True)
    candidates(docker)
    assert find_buildkit_cli() == BuildKitCLI(str(docker), True, "28.2.2")
    assert [p.name for p in cache.iterdir()] == ["docker-cli.json"]


# --- the BuildKit builder with a fake CLI -------------------------------------------------


FAKE_BUILD = """\
#!/bin/sh
# Records its arguments and the files it was given, then acts like a successful build.
out={out}
printf '%s\\n' "$@" > "$out/args"
while [ $# -gt 0 ]; do
  case "$1" in
    --iidfile) echo "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" > "$2"; shift ;;
    -f) cp "$2" "$out/Dockerfile"; [ -f "$2.dockerignore" ] && cp "$2.dockerignore" "$out/dockerignore"; shift ;;
    --secret) src="${{2##*src=}}"; cp "$src" "$out/$(basename "$src")"; ls -ld "$(dirname "$src")" | cut -c1-10 > "$out/mode"; shift ;;
  esac
  shift
done
echo "#1 [1/2] FROM docker.io/library/python:3.11-slim"
echo "#2 [2/2] COPY . ."
echo "#2 0.100 copied"
env | grep '^DOCKER_BUILDKIT=' > "$out/env"
"""


@pytest.fixture
def fake_cli(tmp_path):
    out = tmp_path / "recorded"
    out.mkdir()
    script = tmp_path / "bin" / "docker"
    script.parent.mkdir()
    script.write_text(FAKE_BUILD.format(out=shlex.quote(str(out))))
    script.chmod(0o755)
    return script, out


def test_builder_command_line(tmp_path, fake_cli, write, make_cert):
    script, out = fake_cli
    context = write(tmp_path / "project", {"script.py": ""})
    pip = PipSettings(
        ca_bundle=make_cert("proxy"),
        ca_sources=("proxy.pem",),
        index_url="https://i.example/simple",
    )
    request = BuildRequest(
        context=context,
        tags=("hello:1.0", "hello:latest"),
        dockerfile_text="FROM python:3.11-slim\nCOPY . .\n",
        platform="linux/arm64",
        build_args={"A": "1 2"},
        no_cache=True,
        pip=pip,
        default_ignore=".git\n",
    )
    progress = RecordingProgress()
    result = BuildKitBuilder(BuildKitCLI(str(script), True, "28.2.2")).build(request, progress)
    assert (
        result.image_id == "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    )
    assert result.tags == ("hello:1.0", "hello:latest")
    assert result.builder == "buildkit"
    assert result.seconds >= 0
    assert progress.steps == ["[1/2] FROM docker.io/library/python:3.11-slim", "[2/2] COPY . ."]
    args = (out / "args").read_text().splitlines()
    assert args[:4] == ["buildx", "build", "--load", "--progress=plain"]
    assert args[-1] == str(context)
    pairs = list(zip(args, args[1:], strict=False))
    assert ("-t", "hello:1.0") in pairs and ("-t", "hello:latest") in pairs
    assert ("--platform", "linux/arm64") in pairs
    assert ("--build-arg", "A=1 2") in pairs
    assert "--no-cache" in args
    secrets = [value for flag, value in pairs if flag == "--secret"]
    assert [s.split(",")[0] for s in secrets] == [f"id={PIP_CONF_SECRET}", f"id={PIP_CA_SECRET}"]
    assert (out / "Dockerfile").read_text() == "FROM python:3.11-slim\nCOPY . .\n"
    # <Dockerfile>.dockerignore beside it: the patterns and the ignore file itself
    assert (out / "dockerignore").read_text() == ".git\n.dockerignore\n"
    assert (out / PIP_CA_SECRET).read_bytes() == pip.ca_bundle
    assert (out / PIP_CONF_SECRET).read_text() == pip.pip_conf(f"/run/secrets/{PIP_CA_SECRET}")
    assert (out / "mode").read_text().strip() == "drwx------"  # the secrets' folder is private
    assert (out / "env").read_text().strip() == "DOCKER_BUILDKIT=1"
    # The scratch folder with the secrets is gone after the build.
    scratch = Path(secrets[0].split("src=")[1]).parent
    assert not scratch.exists()


def test_builder_without_pip_settings_and_with_own_dockerignore(tmp_path, fake_cli, write):
    script, out = fake_cli
    context = write(tmp_path / "project", {"script.py": "", ".dockerignore": "data\n"})
    request = BuildRequest(
        context=context,
        tags=("hello:1",),
        dockerfile_text="FROM scratch\n",
        default_ignore=".git\n",
    )
    BuildKitBuilder(BuildKitCLI(str(script), False, "20.10.24")).build(request, RecordingProgress())
    args = (out / "args").read_text().splitlines()
    assert args[:2] == ["build", "--progress=plain"]
    assert "--secret" not in args and "--platform" not in args and "--no-cache" not in args
    # The project's own patterns win over cais's defaults.
    assert (out / "dockerignore").read_text() == "data\n.dockerignore\n"


def test_builder_with_the_projects_own_dockerfile(tmp_path, fake_cli, write):
    script, out = fake_cli
    context = write(tmp_path / "project", {"Dockerfile": "FROM scratch\n"})
    request = BuildRequest(
        context=context,
        tags=("own:1",),
        dockerfile=context / "Dockerfile",
        pip=PipSettings(index_url="https://i.example/simple"),
    )
    BuildKitBuilder(BuildKitCLI(str(script), True, "28.2.2")).build(request, RecordingProgress())
    args = (out / "args").read_text().splitlines()
    pairs = list(zip(args, args[1:], strict=False))
    assert ("-f", str(context / "Dockerfile")) in pairs
    # the same secrets as for a Dockerfile cais writes (build_project gives them only to a
    # Dockerfile that mounts them)
    secrets = [value.split(",")[0] for flag, value in pairs if flag == "--secret"]
    assert secrets == [f"id={PIP_CONF_SECRET}", f"id={PIP_CA_SECRET}"]


def test_builder_failure_raises_the_build_error(tmp_path, write):
    transcript = tmp_path / "t.txt"
    transcript.write_text(FAILED_BUILD)
    script = tmp_path / "docker"
    script.write_text(f"#!/bin/sh\ncat {shlex.quote(str(transcript))}\nexit 1\n")
    script.chmod(0o755)
    context = write(tmp_path / "project", {"script.py": ""})
    request = BuildRequest(context=context, tags=("x:1",), dockerfile_text="FROM scratch\n")
    with pytest.raises(BuildError) as caught:
        BuildKitBuilder(BuildKitCLI(str(script), True, "28.2.2")).build(
            request, RecordingProgress()
        )
    assert caught.value.step == "[4/4] RUN pip install --no-cache-dir -r requirements.txt"
    assert caught.value.message == "The package `nopkg` was not found on the package index"


def test_the_answer_is_cached_until_a_cli_changes(tmp_path, monkeypatch):
    fake = tmp_path / "docker"
    fake.write_text(
        "#!/bin/sh\n[ \"$1\" = buildx ] && exit 1\necho 'Docker version 20.10.24, build x'\n"
    )
    fake.chmod(0o755)
    monkeypatch.setattr(buildkit.shutil, "which", lambda name: str(fake))
    monkeypatch.setattr(buildkit.os, "access", lambda path, mode: str(path) == str(fake))
    probes = []
    real_probe = buildkit._probe
    monkeypatch.setattr(buildkit, "_probe", lambda c: probes.append(c) or real_probe(c))

    first = buildkit.find_buildkit_cli()
    second = buildkit.find_buildkit_cli()
    assert first == second == buildkit.BuildKitCLI(str(fake), False, "20.10.24")
    assert len(probes) == 1  # the second answer came from the cache

    fake.write_text("#!/bin/sh\necho 'Docker version 28.2.2, build y'\nexit 0\n")
    os.utime(fake, ns=(1, 1))
    third = buildkit.find_buildkit_cli()
    assert len(probes) == 2  # the CLI changed: asked again
    assert third == buildkit.BuildKitCLI(str(fake), True, "28.2.2")  # `buildx version` exits 0
