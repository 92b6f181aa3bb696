"""Build records (cais.builders.record) and the quick answers of `cais build` (cais._entry)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from cais import _entry
from cais.builders import record
from cais.builders.record import BuildRecord, fingerprint, lookup, remember


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    """Records in a folder of this test's own."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for name in record.BUILD_ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "cache" / "cais" / "builds.json"


@pytest.fixture
def project(tmp_path) -> Path:
    folder = tmp_path / "hello"
    (folder / "pkg").mkdir(parents=True)
    (folder / "script.py").write_text("print('hello')\n")
    (folder / "requirements.txt").write_text("humanize\n")
    (folder / "pkg" / "data.txt").write_text("a\n")
    return folder


def test_the_fingerprint_is_stable_while_nothing_changes(project):
    first = fingerprint(project, ("hello:1",))
    assert first and first == fingerprint(project, ("hello:1",))
    assert first == fingerprint(project / "." / "pkg" / "..", ("hello:1",))  # same folder


# Each change, and whether it can change the Dockerfile cais writes (the build's shape).
CHANGES = {
    "edit": False,
    "add": True,  # another script: which one runs may change
    "remove": True,
    "rename": True,
    "mode": False,
    "nested edit": False,
    "symlink": True,
    "symlink target": True,  # cais.yaml links to it
    "same size and time": False,
    "dockerignore": True,
    "tags": True,
    "environment": True,
    "platform": True,
    "ca file": True,
}


@pytest.mark.parametrize("change", CHANGES)
def test_the_fingerprint_changes_with_any_input(project, change, monkeypatch, tmp_path):
    ca = tmp_path / "proxy.pem"
    ca.write_text("one\n")
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    shared = tmp_path / "shared.yaml"
    shared.write_text("name: hello\n")
    (project / "cais.yaml").symlink_to(shared)
    tags = ("hello:1",)
    before = fingerprint(project, tags)
    script = project / "script.py"
    if change == "edit":
        script.write_text("print('hello!')\n")  # other size, other time
    elif change == "add":
        (project / "extra.py").write_text("")
    elif change == "remove":
        (project / "requirements.txt").unlink()
    elif change == "rename":
        script.rename(project / "main.py")
    elif change == "mode":
        script.chmod(0o755)
    elif change == "nested edit":
        os.utime(project / "pkg" / "data.txt", ns=(0, 1_000_000_000))
    elif change == "symlink":
        (project / "link").symlink_to("script.py")
    elif change == "symlink target":
        shared.write_text("name: hello2\n")
    elif change == "same size and time":  # as cp -p or rsync -a leave it
        stat = script.stat()
        script.write_text("print('HELLO')\n")
        os.utime(script, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    elif change == "tags":
        tags = ("hello:2",)
    elif change == "environment":
        monkeypatch.setenv("PIP_INDEX_URL", "https://pypi.example/simple")
    elif change == "platform":  # the docker CLI builds for another architecture
        monkeypatch.setenv("DOCKER_DEFAULT_PLATFORM", "linux/arm64")
    elif change == "ca file":
        ca.write_text("one and two\n")
    elif change == "dockerignore":
        (project / ".dockerignore").write_text("data/\n")
    after = fingerprint(project, tags)
    assert after.inputs != before.inputs
    assert (after.shape != before.shape) is CHANGES[change]


@pytest.mark.parametrize(
    "name",
    [
        "cais.yaml",
        "pyproject.toml",
        ".python-version",
        ".dockerignore",
        "Dockerfile",
        "uv.lock",
        "poetry.lock",
    ],
)
def test_an_edit_of_a_file_cais_reads_changes_the_shape(project, name):
    (project / name).write_text("one\n")
    before = fingerprint(project, ())
    (project / name).write_text("two, longer\n")
    after = fingerprint(project, ())
    assert after.shape != before.shape and after.inputs != before.inputs
    (project / "requirements.txt").write_text("humanize\nsix\n")  # read by pip, not cais
    assert fingerprint(project, ()).shape == after.shape


def test_names_of_files_cais_reads_are_compared_without_case(project):
    """On macOS and Windows file systems, `Cais.yaml` is the cais.yaml cais opens."""
    (project / "Cais.yaml").write_text("name: one\n")
    before = fingerprint(project, ())
    (project / "Cais.yaml").write_text("name: two\n")
    assert fingerprint(project, ()).shape != before.shape


def test_git_settings_from_the_environment_are_inputs(project, monkeypatch):
    before = fingerprint(project, ())
    monkeypatch.setenv("GIT_DIR", "/elsewhere/.git")  # another repository: another commit
    assert fingerprint(project, ()).shape != before.shape
    monkeypatch.delenv("GIT_DIR")
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    assert fingerprint(project, ()).shape != before.shape
    monkeypatch.delenv("GIT_CONFIG_COUNT")
    monkeypatch.setenv("GIT_EDITOR", "vim")  # changes nothing git answers
    assert fingerprint(project, ()) == before


def test_the_git_commit_is_an_input(project):
    git = project / ".git"
    (git / "refs" / "heads").mkdir(parents=True)
    (git / "HEAD").write_text("ref: refs/heads/main\n")
    (git / "refs" / "heads" / "main").write_text("a" * 40 + "\n")
    before = fingerprint(project, ())
    (git / "objects").mkdir()  # git's own bookkeeping is not an input
    assert fingerprint(project, ()) == before
    (git / "refs" / "heads" / "main").write_text("b" * 39 + "\n")  # a new commit
    assert fingerprint(project, ()) != before
    middle = fingerprint(project, ())
    (git / "HEAD").write_text("ref: refs/heads/other\n")  # another branch checked out
    assert fingerprint(project, ()) != middle


def test_a_git_folder_the_image_would_hold_is_not_followed(project):
    (project / ".git" / "refs").mkdir(parents=True)
    (project / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    assert fingerprint(project, ()) is not None  # cais's own ignore list leaves .git out
    (project / ".dockerignore").write_text("data/\n")  # the project's own does not
    assert fingerprint(project, ()) is None
    (project / ".dockerignore").write_text("data/\n.git\n")
    assert fingerprint(project, ()) is not None
    (project / ".dockerignore").write_text(".git\n!.git/HEAD\n")
    assert fingerprint(project, ()) is None
    (project / ".dockerignore").write_text(".git/\n")
    (project / ".git" / "config").write_text('[includeIf "gitdir:~/work/"]\n\tpath = w\n')
    assert fingerprint(project, ()) is None  # settings in files elsewhere
    (project / ".git" / "config").write_text("[core]\n\tbare = false\n")
    assert fingerprint(project, ()) is not None
    (project / ".git" / "reftable").mkdir()  # refs in git's newer format
    assert fingerprint(project, ()) is None


def test_unusual_folders_are_not_fingerprinted(project, monkeypatch):
    (project / ".git").write_text("gitdir: ../elsewhere\n")  # a worktree: leave it to git
    assert fingerprint(project, ()) is None
    (project / ".git").unlink()
    monkeypatch.setattr(record, "_MAX_ENTRIES", 3)  # too large to scan quickly
    assert fingerprint(project, ()) is None
    assert fingerprint(project / "missing", ()) is None


def engine_with(images: dict[str, str], monkeypatch) -> None:
    monkeypatch.setattr(record, "image_id", images.get)


def built(tags=("hello:1",)) -> BuildRecord:
    return BuildRecord("sha256:img", tags, "python:3.11-slim", "sha256:base", "buildkit")


def test_a_recorded_build_is_up_to_date_while_the_engine_holds_it(monkeypatch):
    engine_with({"hello:1": "sha256:img", "python:3.11-slim": "sha256:base"}, monkeypatch)
    assert lookup("key") is None
    remember("key", built())
    assert lookup("key") == built()


@pytest.mark.parametrize(
    "images",
    [
        {"python:3.11-slim": "sha256:base"},  # the image was removed
        {"hello:1": "sha256:other", "python:3.11-slim": "sha256:base"},  # the tag moved
        {"hello:1": "sha256:img", "hello:latest": "sha256:x", "python:3.11-slim": "sha256:base"},
        {"hello:1": "sha256:img", "python:3.11-slim": "sha256:newer"},  # a new base image
        {"hello:1": "sha256:img"},  # the base image is gone
    ],
)
def test_a_recorded_build_is_stale_when_the_engine_says_otherwise(images, monkeypatch):
    engine_with(images, monkeypatch)
    remember("key", built(("hello:1", "hello:latest")) if "hello:latest" in images else built())
    assert lookup("key") is None


def test_records_survive_a_damaged_file_and_stay_few(cache, monkeypatch):
    engine_with({"hello:1": "sha256:img", "python:3.11-slim": "sha256:base"}, monkeypatch)
    cache.parent.mkdir(parents=True)
    cache.write_text("{not json")
    assert lookup("key") is None
    remember("key", built())
    assert lookup("key") == built()
    cache.write_text(json.dumps({"key": {"image_id": "sha256:img"}}))  # a record cut short
    assert lookup("key") is None
    odd = {**built()._asdict(), "tags": [["hello:1"]]}
    cache.write_text(json.dumps({"key": odd}))  # a record of the wrong shape
    assert lookup("key") is None
    monkeypatch.setattr(record, "_KEPT_RECORDS", 3)
    for number in range(5):
        remember(f"key{number}", built())
    assert list(json.loads(cache.read_text())) == ["key2", "key3", "key4"]


@pytest.fixture
def fake_engine(tmp_path, monkeypatch):
    """A unix socket that answers image inspections as the Docker Engine does."""
    path = tmp_path / "docker.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen()
    asked: list[str] = []

    def answer() -> None:
        while True:
            try:
                connection, _ = server.accept()
            except OSError:
                return
            with connection:
                request = connection.recv(65536).decode()
                target = request.split(" ")[1]
                asked.append(target)
                if target == "/images/hello:1/json":
                    body = json.dumps({"Id": "sha256:abc", "RepoTags": ["hello:1"]}).encode()
                    head = f"HTTP/1.0 200 OK\r\nContent-Length: {len(body)}\r\n\r\n"
                else:
                    body = b'{"message":"No such image"}'
                    head = "HTTP/1.0 404 Not Found\r\n\r\n"
                connection.sendall(head.encode() + body)

    threading.Thread(target=answer, daemon=True).start()
    monkeypatch.setenv("DOCKER_HOST", f"unix://{path}")
    yield asked
    server.close()


def test_image_ids_come_from_the_engine_socket(fake_engine):
    assert record.image_id("hello:1") == "sha256:abc"
    assert record.image_id("127.0.0.1:5000/team/hello:2") is None
    assert fake_engine == ["/images/hello:1/json", "/images/127.0.0.1:5000%2Fteam%2Fhello:2/json"]
    assert record.image_id("hello 1\r\nX: y") is None  # never sent: not a reference
    assert len(fake_engine) == 2


def test_no_engine_means_not_known(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/absent.sock")
    assert record.image_id("hello:1") is None
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:2375")  # not asked: only local sockets
    assert record.image_id("hello:1") is None


@pytest.mark.parametrize(
    ("args", "plain"),
    [
        ([], (".", ())),
        (["DIR"], ("DIR", ())),
        (["DIR", "-t", "a:1", "--tag", "b:2", "--tag=c:3"], ("DIR", ("a:1", "b:2", "c:3"))),
        (["-v", "DIR"], ("DIR", ())),
        (["DIR", "--no-cache"], None),
        (["DIR", "--platform", "linux/arm64"], None),
        (["DIR", "--build-arg", "A=1"], None),
        (["DIR", "--builder", "classic"], None),
        (["DIR", "--ca-cert", "x.pem"], None),
        (["DIR", "-t"], None),
        (["DIR", "other"], None),
        (["products:1"], None),  # a saved model, not a folder
        (["missing"], None),
    ],
)
def test_only_plain_folder_builds_are_looked_up(args, plain, tmp_path, monkeypatch):
    (tmp_path / "DIR").mkdir()
    monkeypatch.chdir(tmp_path)
    found = _entry._plain_build(args)
    verbose = "-v" in args
    assert found == (None if plain is None else (Path(plain[0]), plain[1], verbose))


def test_an_up_to_date_build_says_so_as_a_build_would(project, monkeypatch, capsys):
    engine_with({"hello:1": "sha256:" + "c" * 64, "python:3.11-slim": "sha256:base"}, monkeypatch)
    keys = fingerprint(project, ("hello:1",))
    assert _entry.quick_build([str(project), "-t", "hello:1"]) is None
    remember(keys.inputs, built()._replace(image_id="sha256:" + "c" * 64))
    assert _entry.quick_build([str(project), "-t", "hello:1"]) == 0
    out, err = capsys.readouterr()
    assert out == "hello:1\n"
    assert "`hello:1` (cccccccccccc) is up to date" in err
    (project / "script.py").write_text("print('changed')\n")
    assert _entry.quick_build([str(project), "-t", "hello:1"]) is None  # and no recipe


def test_anything_unexpected_means_the_real_command_runs(monkeypatch, tmp_path):
    def fail(key):
        raise PermissionError("[Errno 13] Permission denied: '/root/project'")

    monkeypatch.setattr(_entry, "_up_to_date", fail)
    assert _entry.quick_build([str(tmp_path)]) is None


def test_the_command_starts_without_the_command_line_libraries(project, cache):
    """The lookup must not pay for Typer, Rich, Pydantic or the Docker SDK."""
    check = (
        "import sys\n"
        "from cais._entry import quick_build\n"
        f"quick_build([{str(project)!r}, '-t', 'hello:1'])\n"
        "heavy = {'typer', 'rich', 'pydantic', 'docker', 'yaml', 'httpx', 'click'}\n"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, env=os.environ, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
