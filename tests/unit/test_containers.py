"""cais.engine.containers: the pure helpers behind `cais run`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cais.engine.containers import (
    RunOptions,
    _environment,
    _writable_by,
    interactive_command,
    parse_env_file,
    parse_publish,
    parse_volume,
)
from cais.errors import CaisError, ProjectError


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("8080:80", ("80/tcp", 8080)),
        ("127.0.0.1:8080:80", ("80/tcp", ("127.0.0.1", 8080))),
        ("80", ("80/tcp", None)),
        ("53:53/udp", ("53/udp", 53)),
        ("9000:9000/sctp", ("9000/sctp", 9000)),
        ("0.0.0.0:1:65535/tcp", ("65535/tcp", ("0.0.0.0", 1))),
    ],
)
def test_parse_publish(spec, expected):
    assert parse_publish(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "`` is not a port mapping"),
        ("http", "`http` is not a port mapping"),
        ("8080:", "`8080:` is not a port mapping"),
        (":80", "`:80` is not a port mapping"),
        ("8080:80/xyz", "`8080:80/xyz` is not a port mapping"),
        ("1:2:3:4", "`1:2:3:4` is not a port mapping"),
        ("8080:http", "`8080:http` is not a port mapping"),
        ("70000:80", "`70000` in `70000:80` is not a port number (1-65535)"),
        ("8080:0", "`0` in `8080:0` is not a port number (1-65535)"),
        ("-1:80", "`-1` in `-1:80` is not a port number (1-65535)"),
    ],
)
def test_bad_publish(spec, message):
    with pytest.raises(ProjectError) as caught:
        parse_publish(spec)
    assert caught.value.message == message


def test_parse_volume_resolves_relative_host_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert parse_volume("./out:/data") == (str(tmp_path / "out"), {"bind": "/data", "mode": "rw"})
    assert parse_volume("../up:/data:ro") == (
        str(tmp_path.parent / "up"),
        {"bind": "/data", "mode": "ro"},
    )
    assert parse_volume("/abs/path:/data:rw") == ("/abs/path", {"bind": "/data", "mode": "rw"})


def test_parse_volume_expands_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert parse_volume("~/models:/models:ro") == (
        str(tmp_path / "models"),
        {"bind": "/models", "mode": "ro"},
    )


def test_parse_volume_keeps_named_volumes():
    assert parse_volume("cache:/root/.cache") == ("cache", {"bind": "/root/.cache", "mode": "rw"})


@pytest.mark.parametrize("spec", ["/data", "out:data", ":/data", "a:/b:ro:x", "", "a:"])
def test_bad_volume(spec):
    with pytest.raises(ProjectError) as caught:
        parse_volume(spec)
    assert caught.value.message == f"`{spec}` is not a volume"
    assert "HOST_FOLDER:/path/in/container" in caught.value.hint


def test_bad_volume_mode():
    with pytest.raises(ProjectError) as caught:
        parse_volume("./a:/b:rx")
    assert caught.value.message == "`rx` in `./a:/b:rx` is not a volume mode"


def test_parse_env_file(tmp_path, monkeypatch):
    monkeypatch.setenv("FROM_HOST", "host value")
    monkeypatch.delenv("NOT_SET", raising=False)
    env_file = tmp_path / ".env"
    env_file.write_text(
        "# settings\n"
        "\n"
        "NAME=Ana\n"
        "  export TOKEN=abc=def\n"
        "EMPTY=\n"
        'QUOTED="kept as is"\n'
        "FROM_HOST\n"
        "NOT_SET\n"
        "   # indented comment\n"
    )
    assert parse_env_file(env_file) == [
        "NAME=Ana",
        "TOKEN=abc=def",
        "EMPTY=",
        'QUOTED="kept as is"',
        "FROM_HOST=host value",
    ]


@pytest.mark.parametrize(
    ("line", "number"), [("1BAD=x", 2), ("WITH SPACE=x", 2), ("=x", 2), ("A-B=1", 2)]
)
def test_parse_env_file_bad_line(tmp_path, line, number):
    env_file = tmp_path / "app.env"
    env_file.write_text(f"GOOD=1\n{line}\nOTHER=2\n")
    with pytest.raises(ProjectError) as caught:
        parse_env_file(env_file)
    assert caught.value.message == f"Line {number} of `{env_file}` is not KEY=VALUE: `{line}`"


def test_parse_env_file_missing(tmp_path):
    with pytest.raises(ProjectError, match="does not exist"):
        parse_env_file(tmp_path / "missing.env")


def test_environment_of_run_options(tmp_path, monkeypatch):
    monkeypatch.setenv("HOST_VAR", "h")
    env_file = tmp_path / "a.env"
    env_file.write_text("A=1\n")
    options = RunOptions(image="x", env=["B=2", "HOST_VAR", "UNSET_VAR_123"], env_files=[env_file])
    assert _environment(options) == ["A=1", "B=2", "HOST_VAR=h"]
    with pytest.raises(ProjectError, match="is not an environment variable"):
        _environment(RunOptions(image="x", env=["1=2"]))


@pytest.fixture
def folder(tmp_path) -> Path:
    path = tmp_path / "mounted"
    path.mkdir()
    return path


def test_writable_by_owner(folder):
    me, group = 4242, 4242
    os.chown(folder, me, group)
    folder.chmod(0o755)
    assert _writable_by(folder, me, group) is True
    folder.chmod(0o555)
    assert _writable_by(folder, me, group) is False


def test_writable_by_group(folder):
    info = os.stat(folder)
    other_uid = info.st_uid + 4242
    folder.chmod(0o775)
    assert _writable_by(folder, other_uid, info.st_gid) is True
    folder.chmod(0o755)
    assert _writable_by(folder, other_uid, info.st_gid) is False


def test_writable_by_others(folder):
    info = os.stat(folder)
    other_uid, other_gid = info.st_uid + 4242, info.st_gid + 4242
    folder.chmod(0o755)
    assert _writable_by(folder, other_uid, other_gid) is False
    folder.chmod(0o757)
    assert _writable_by(folder, other_uid, other_gid) is True
    folder.chmod(0o777)
    assert _writable_by(folder, other_uid, other_gid) is True


def test_root_can_write_any_folder(folder):
    folder.chmod(0o555)
    assert _writable_by(folder, 0, 0) is True


def test_interactive_command_needs_a_terminal(monkeypatch):
    monkeypatch.setattr(os, "isatty", lambda fd: False)
    with pytest.raises(CaisError, match="needs a terminal"):
        interactive_command(RunOptions(image="x"), "/usr/bin/docker", None)


def test_interactive_command(monkeypatch, tmp_path):
    monkeypatch.setattr(os, "isatty", lambda fd: True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOST_VAR", "h")
    options = RunOptions(
        image="hello:1",
        command=["bash"],
        publish=["8080:80"],
        volumes=["./out:/data:ro"],
        env=["A=1", "HOST_VAR"],
        name="box",
        remove=True,
    )
    assert interactive_command(options, "/usr/bin/docker", "1000:1000") == [
        "/usr/bin/docker",
        "run",
        "-it",
        "--rm",
        "--name",
        "box",
        "--user",
        "1000:1000",
        "-p",
        "8080:80",
        "-v",
        f"{tmp_path / 'out'}:/data:ro",
        "-e",
        "A=1",
        "-e",
        "HOST_VAR=h",
        "hello:1",
        "bash",
    ]
    with pytest.raises(ProjectError):
        interactive_command(RunOptions(image="x", publish=["bad"]), "/usr/bin/docker", None)
