"""cais.engine.containers: the pure helpers behind `cais run`."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import docker.errors
import pytest
import requests

from cais.engine.containers import (
    Mounts,
    RunOptions,
    _command_error,
    _environment,
    _image_uid,
    _kept,
    _ports,
    _writable_by,
    exec_command,
    interactive_command,
    list_containers,
    parse_env_file,
    parse_publish,
    parse_volume,
    prepare_mounts,
    start_error,
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


def test_a_terminal_is_needed_for_tty_only(monkeypatch):
    monkeypatch.setattr(os, "isatty", lambda fd: False)
    with pytest.raises(CaisError, match="needs a terminal"):
        interactive_command(RunOptions(image="x"), "/usr/bin/docker", Mounts())
    with pytest.raises(CaisError, match="needs a terminal"):
        exec_command("box", ["sh"], "/usr/bin/docker", tty=True)
    # -i alone reads piped input
    assert interactive_command(RunOptions(image="x"), "/d", Mounts(), tty=False) == [
        "/d",
        "run",
        "-i",
        "--init",
        "x",
    ]
    assert exec_command("box", ["cat"], "/d", tty=False) == ["/d", "exec", "-i", "box", "cat"]


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
    mounts = Mounts(user="1000:1000", environment=("HOME=/tmp",))
    assert interactive_command(options, "/usr/bin/docker", mounts) == [
        "/usr/bin/docker",
        "run",
        "-it",
        "--init",
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
        "-e",
        "HOME=/tmp",
        "hello:1",
        "bash",
    ]
    with pytest.raises(ProjectError):
        interactive_command(RunOptions(image="x", publish=["bad"]), "/usr/bin/docker", Mounts())


def test_a_home_given_by_the_user_wins():
    mounts = Mounts(user="1:1", environment=("HOME=/tmp",))
    assert _environment(RunOptions(image="x", env=["HOME=/work"]), mounts) == ["HOME=/work"]
    assert _environment(RunOptions(image="x"), mounts) == ["HOME=/tmp"]


# The engine's words (docker 20.10, runc 1.1) when a container does not start.
_RUNC = "failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: "


@pytest.mark.parametrize(
    ("text", "code", "message"),
    [
        (
            _RUNC + 'exec: "nosuch": executable file not found in $PATH: unknown',
            127,
            "The command `nosuch` does not exist in the image `img:1`",
        ),
        (
            _RUNC + 'exec: "/nope": stat /nope: no such file or directory: unknown',
            127,
            "The command `/nope` does not exist in the image `img:1`",
        ),
        (
            _RUNC + 'exec: "/etc/passwd": permission denied: unknown',
            126,
            "`/etc/passwd` cannot be executed in the image `img:1`",
        ),
        (
            "driver failed programming external connectivity on endpoint x (abc): "
            "Bind for 0.0.0.0:8080 failed: port is already allocated",
            125,
            "The host port `8080` is already in use, so the container from `img:1` could not start",
        ),
        (
            "driver failed programming external connectivity on endpoint x (abc): Error starting "
            "userland proxy: listen tcp4 127.0.0.1:9000: bind: address already in use",
            125,
            "The host port `9000` is already in use, so the container from `img:1` could not start",
        ),
        (
            "error while creating mount source path '/x': mkdir /x: read-only file system",
            125,
            "The container from `img:1` could not start: error while creating mount source path "
            "'/x': mkdir /x: read-only file system",
        ),
    ],
)
def test_start_errors_follow_docker_exit_codes(text, code, message):
    error = start_error(text, RunOptions(image="img:1"))
    assert (error.exit_code, error.message) == (code, message)


@pytest.mark.parametrize(
    ("verb", "where", "hint"),
    [
        ("run", "the image `img:1`", "options go before the image, as in `cais run -p … img:1`"),
        (
            "exec",
            "the container `box`",
            "options go before the container, as in `cais exec -p … box`",
        ),
    ],
)
def test_an_option_taken_as_the_command_says_options_go_first(verb, where, hint):
    name = where.split("`")[1]
    error = _command_error("-p", "executable file not found in $PATH", verb, name)
    assert (error.exit_code, error.message) == (127, f"The command `-p` does not exist in {where}")
    assert error.hint == hint
    # a command that is no option keeps the usual hint
    assert "options go" not in _command_error("pyhton", "not found", verb, name).hint


class FakeContainer:
    name = "rvkept"


@pytest.mark.parametrize(
    "error",
    [
        start_error("Bind for 0.0.0.0:8080 failed: port is already allocated", RunOptions("i")),
        _command_error("nosuch", "executable file not found in $PATH", "run", "i"),
        _command_error("/etc/passwd", "permission denied", "run", "i"),
        start_error("error while creating mount source path '/x'", RunOptions("i")),
    ],
    ids=["busy-port", "127", "126", "other"],
)
@pytest.mark.parametrize("remove", [True, False], ids=["rm", "keep"])
def test_every_start_failure_says_the_container_was_kept_without_rm(error, remove):
    hint = error.hint
    said = _kept(error, FakeContainer(), RunOptions("i", remove=remove)).hint
    kept = "the container `rvkept` was kept: remove it with `cais rm rvkept`"
    assert said == (hint if remove else f"{hint}; {kept}" if hint else kept)


@pytest.mark.parametrize(
    ("args", "command", "settings"),
    [
        (["img:1", "python", "-c", "print(1)"], ["python", "-c", "print(1)"], {}),
        (["img:1", "ls", "-la"], ["ls", "-la"], {}),
        (["img:1", "--", "python", "-c", "print(1)"], ["python", "-c", "print(1)"], {}),
        (["img:1", "sh", "-c", "echo $HOME"], ["sh", "-c", "echo $HOME"], {}),
        (["img:1", "--", "--help"], ["--help"], {}),
        (
            ["--rm", "-e", "NAME=Ana", "-v", "./out:/data", "-p", "8080:80", "img:1", "ls", "-l"],
            ["ls", "-l"],
            {
                "remove": True,
                "env": ["NAME=Ana"],
                "volumes": ["./out:/data"],
                "publish": ["8080:80"],
            },
        ),
        (["-d", "--name", "api", "--", "img:1", "ls"], ["ls"], {"detach": True, "name": "api"}),
        (["img:1"], [], {}),
        # cais's options after the image are the command, as with docker
        (["img:1", "-p", "8080:80"], ["-p", "8080:80"], {"publish": []}),
        (["--rm", "img:1", "-e", "NAME=Ana"], ["-e", "NAME=Ana"], {"remove": True, "env": []}),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else None,
)
def test_run_takes_everything_after_the_image_as_the_command(monkeypatch, args, command, settings):
    from typer.testing import CliRunner

    import cais.cli.containers
    from cais.cli import app

    seen: list[RunOptions] = []
    monkeypatch.setattr(cais.cli.containers, "_run", lambda options, **_: seen.append(options))
    result = CliRunner().invoke(app, ["run", *args])
    assert result.exit_code == 0, result.output
    (options,) = seen
    assert (options.image, options.command) == ("img:1", command)
    for setting, value in settings.items():
        assert getattr(options, setting) == value


class FakeApi:
    """The engine as prepare_mounts and list_containers see it: an image's user, its files."""

    def __init__(self, rows=(), user="", files=None):
        self.rows = list(rows)
        self.user = user
        self.files = files or {}
        self.removed = 0
        self.api = self
        self.images = self

    @property
    def containers(self):  # client.api.containers(...) lists; client.containers.create(...)
        return self

    def __call__(self, all=False):
        return self.rows

    def get(self, image):
        return type("Image", (), {"attrs": {"Config": {"User": self.user}}})()

    def create(self, image, command=None):
        return self

    def get_archive(self, path):
        if path not in self.files:
            response = requests.Response()
            response.status_code = 404
            raise docker.errors.NotFound("no such file", response)
        data = self.files[path].encode()
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as archive:
            info = tarfile.TarInfo(path.rsplit("/", 1)[-1])
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        return [buffer.getvalue()], {}

    def remove(self, force=False):
        self.removed += 1


PASSWD = "root:x:0:0:root:/root:/bin/sh\n# a comment\napp:x:1001:1002::/home/app:/bin/sh\nold:x:1000:100::/:/bin/sh\n"
GROUP = "root:x:0:\nstaff:x:50:\n"


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        ("", None),
        ("root", None),
        ("0", None),
        ("0:0", None),
        ("1000:1000", (1000, 1000)),
        ("app", (1001, 1002)),
        ("app:staff", (1001, 50)),
        ("app:77", (1001, 77)),
        ("1000", (1000, 100)),
        ("4242", (4242, 4242)),
        ("ghost", None),
    ],
)
def test_the_images_user(user, expected):
    client = FakeApi(user=user, files={"/etc/passwd": PASSWD, "/etc/group": GROUP})
    assert _image_uid(client, "img") == expected
    assert client.removed in (0, 1, 2)  # every container made to read a file is removed


def test_an_image_without_passwd_keeps_numeric_users():
    assert _image_uid(FakeApi(user="1000"), "img") == (1000, 1000)
    assert _image_uid(FakeApi(user="app"), "img") is None


def test_list_containers_reads_exit_code_health_and_ports():
    rows = [
        {
            "Id": "a" * 64,
            "Names": ["/web"],
            "Image": "hello:1",
            "State": "running",
            "Status": "Up 3 minutes (healthy)",
            "Ports": [
                {"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
                {"IP": "::", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
                {"PrivatePort": 443, "Type": "tcp"},
            ],
            "Created": 1700000000,
        },
        {
            "Id": "b" * 64,
            "Names": ["/job"],
            "Image": "x",
            "State": "exited",
            "Status": "Exited (3) 2 seconds ago",
            "Ports": [],
            "Created": 1,
        },
        {
            "Id": "c" * 64,
            "Names": ["/new"],
            "Image": "x",
            "State": "running",
            "Status": "Up 1 second (health: starting)",
            "Ports": None,
            "Created": 2,
        },
        {
            "Id": "d" * 64,
            "Names": ["/sick"],
            "Image": "x",
            "State": "running",
            "Status": "Up 2 hours (unhealthy)",
            "Created": 3,
        },
    ]
    web, job, new, sick = list_containers(FakeApi(rows), all=True)
    assert (web.id, web.name, web.health, web.exit_code) == ("a" * 12, "web", "healthy", None)
    assert web.ports == "0.0.0.0:8080->80/tcp, 443/tcp"
    assert web.created == "2023-11-14 22:13:20"
    assert (job.exit_code, job.health, job.status) == (3, None, "Exited (3) 2 seconds ago")
    assert (new.health, sick.health) == ("starting", "unhealthy")


def test_ports_of_a_container_without_published_ports():
    assert _ports([]) == ""


@pytest.fixture
def as_root():
    if os.geteuid() != 0:
        pytest.skip("cais hands folders it creates to the image's user only as root")


def test_mounts_of_an_image_without_a_user_only_create_missing_folders(tmp_path, as_root):
    mounts = prepare_mounts(FakeApi(user=""), RunOptions(image="x", volumes=[f"{tmp_path}/a/b:/d"]))
    assert (tmp_path / "a" / "b").is_dir()
    assert mounts.user is None and mounts.environment == ()
    assert mounts.notes == (f"created `{tmp_path}/a/b`",)


def test_a_missing_read_only_source_is_refused(tmp_path):
    with pytest.raises(ProjectError) as caught:
        prepare_mounts(
            FakeApi(user="1000:1000"), RunOptions(image="x", volumes=[f"{tmp_path}/no:/d:ro"])
        )
    assert (
        caught.value.message
        == f"`{tmp_path}/no` does not exist, so there is nothing to mount read-only"
    )
    assert not (tmp_path / "no").exists()


def test_named_volumes_are_left_to_the_engine():
    mounts = prepare_mounts(FakeApi(user="1000:1000"), RunOptions(image="x", volumes=["cache:/c"]))
    assert mounts == Mounts({"cache": {"bind": "/c", "mode": "rw"}})
