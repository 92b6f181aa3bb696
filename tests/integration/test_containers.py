"""run / ps / logs / stop / rm / exec, tag / rmi and doctor against the real Docker Engine."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid

import httpx
import pytest

from tests.support import (
    assert_ended_quietly,
    free_port,
    run_cais_into_closed_pipe,
    unavailable,
)

pytestmark = pytest.mark.engine


def test_detached_server_with_published_port_ps_logs_stop(
    cais, engine, base_image, container_name, tmp_path
):
    port = free_port()
    env_file = tmp_path / "settings.env"
    env_file.write_text("# a comment\nGREETING=from-env-file\n")
    started = cais(
        "run",
        "-d",
        "--name",
        container_name,
        "-p",
        f"127.0.0.1:{port}:8000",
        "--env-file",
        str(env_file),
        base_image,
        "--",
        "sh",
        "-c",
        "echo $GREETING; exec python -m http.server 8000",
    )
    assert started.returncode == 0, started.stderr
    assert started.stdout.strip() == container_name

    for _ in range(50):
        try:
            response = httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
            break
        except httpx.HTTPError:
            time.sleep(0.2)
    else:
        pytest.fail("the published port never answered")
    assert response.status_code == 200

    listed = cais("ps")
    assert container_name in listed.stdout
    assert f"127.0.0.1:{port}->8000/tcp" in listed.stdout

    logs = cais("logs", container_name)
    assert "from-env-file" in logs.stdout

    stopped = cais("stop", container_name)
    assert stopped.returncode == 0, stopped.stderr
    assert engine.containers.get(container_name).status == "exited"
    assert container_name not in cais("ps").stdout
    assert container_name in cais("ps", "--all").stdout


def test_exit_code_of_the_container_is_ours(cais, engine, base_image):
    done = cais(
        "run", "--rm", base_image, "--", "python", "-c", "import sys; print('bye'); sys.exit(3)"
    )
    assert done.returncode == 3
    assert done.stdout.strip() == "bye"


def test_unknown_containers_are_named_in_the_error(cais, engine):
    for command in (("logs", "cais-no-such-container"), ("stop", "cais-no-such-container")):
        done = cais(*command)
        assert done.returncode == 1
        assert "No container is named `cais-no-such-container`" in done.stderr


def test_bad_run_options_fail_before_anything_starts(cais, engine, base_image):
    for args, expected in (
        (("-p", "80:abc"), "is not a port mapping"),
        (("-v", "relative-without-slash"), "is not a volume"),
        (("-e", "1BAD=x"), "is not an environment variable"),
        (("--env-file", "/nonexistent.env"), "does not exist"),
    ):
        done = cais("run", "--rm", *args, base_image)
        assert done.returncode == 125, args  # docker run's code for its own failures
        assert expected in done.stderr, done.stderr


def test_interactive_needs_a_terminal(cais, engine, base_image):
    done = cais("run", "-it", base_image)
    assert done.returncode == 125
    assert "needs a terminal" in done.stderr


def test_doctor_passes_here_and_names_a_dead_engine(cais, engine, base_image, tmp_path):
    ok = cais("doctor", cwd=tmp_path)
    assert ok.returncode == 0, ok.stdout
    assert "✓ Docker Engine" in ok.stdout
    assert "✓ Base image" in ok.stdout
    dead = cais("doctor", env={"DOCKER_HOST": "unix:///nonexistent.sock"})
    assert dead.returncode == 1
    assert "✗ Docker Engine" in dead.stdout
    assert "not reachable" in dead.stdout


@pytest.mark.parametrize("verb", ["run", "exec"])
def test_interactive_session_in_a_real_terminal(engine, base_image, names, verb):
    """`cais run -it` and `cais exec -it` as a person types into them: tmux gives them a
    real terminal."""
    if shutil.which("tmux") is None:
        unavailable("tmux is not installed")
    session = f"cais-test-{uuid.uuid4().hex[:8]}"
    if verb == "run":
        command = f"{sys.executable} -m cais run -it --rm {base_image} -- python -q"
    else:
        name = names()
        engine.containers.run(base_image, "sleep 1000", name=name, detach=True, init=True)
        command = f"{sys.executable} -m cais exec -it {name} python -q"
    # the tmux server may be older than this test: give the session this test's PYTHONPATH
    environment = ["-e", f"PYTHONPATH={os.environ.get('PYTHONPATH', '')}"]
    subprocess.run(
        ["tmux", "new-session", "-d", "-s", session, *environment, "-x", "120", "-y", "30"]
        + [f"{command}; sleep 30"],
        check=True,
    )

    def screen() -> str:
        return subprocess.run(
            ["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True
        ).stdout

    def wait_for(text: str) -> str:
        for _ in range(100):
            shown = screen()
            if text in shown:
                return shown
            time.sleep(0.2)
        pytest.fail(f"{text!r} never appeared; the screen was:\n{screen()}")

    try:
        wait_for(">>>")
        subprocess.run(
            ["tmux", "send-keys", "-t", session, "print(6 * 7, 'from inside')", "Enter"], check=True
        )
        assert "42 from inside" in wait_for("42 from inside")
        subprocess.run(["tmux", "send-keys", "-t", session, "exit()", "Enter"], check=True)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


# --- helpers for the tests below ---------------------------------------------------------------


def image_of(engine, base_image: str, reference: str, *changes: str) -> str:
    """A new image (its own id) from the base image, with Dockerfile-like `changes`."""
    repository, _, tag = reference.partition(":")
    container = engine.containers.create(base_image, "true")
    try:
        container.commit(repository=repository, tag=tag or "latest", changes=list(changes))
    finally:
        container.remove(force=True)
    return reference


def wait_running(engine, name: str):
    for _ in range(150):
        try:
            container = engine.containers.get(name)
            if container.status == "running":
                return container
        except Exception:  # noqa: BLE001 - not created yet
            pass
        time.sleep(0.1)
    pytest.fail(f"`{name}` never ran")


def exists(engine, name: str) -> bool:
    return bool(engine.containers.list(all=True, filters={"name": f"^/{name}$"}))


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith(("error:", "hint:"))]


@pytest.fixture
def names(engine):
    """Unique container names; every container of them is removed after the test."""
    made: list[str] = []

    def make() -> str:
        made.append(f"cais-test-{uuid.uuid4().hex[:8]}")
        return made[-1]

    yield make
    for name in made:
        try:
            engine.containers.get(name).remove(force=True)
        except Exception:  # noqa: BLE001 - already gone
            pass


@pytest.fixture
def busy_port():
    """A host port something else already listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


# --- start failures: one sentence, docker's exit codes, --rm cleans up -------------------------


@pytest.mark.parametrize(
    "flags", [("--rm",), (), ("-d", "--rm"), ("-d",)], ids=["rm", "keep", "detached-rm", "detached"]
)
def test_busy_host_port(cais, engine, base_image, names, busy_port, flags):
    name = names()
    remove = "--rm" in flags
    done = cais(
        "run", *flags, "--name", name, "-p", f"127.0.0.1:{busy_port}:80", base_image, "true"
    )
    assert done.returncode == 125, done.stderr
    assert error_lines(done.stderr)[0] == (
        f"error: The host port `{busy_port}` is already in use, so the container from "
        f"`{base_image}` could not start"
    )
    assert "Traceback" not in done.stderr
    # docker keeps a container that did not start, unless --rm asked for it to go
    assert exists(engine, name) is not remove
    if not remove:
        assert engine.containers.get(name).status == "created"
        assert f"`cais rm {name}`" in done.stderr


@pytest.mark.parametrize(
    ("command", "code", "message"),
    [
        (["nosuch-command"], 127, "The command `nosuch-command` does not exist in the image `{}`"),
        (["/no/such/path"], 127, "The command `/no/such/path` does not exist in the image `{}`"),
        (["/etc/passwd"], 126, "`/etc/passwd` cannot be executed in the image `{}`"),
        (["/usr"], 126, "`/usr` cannot be executed in the image `{}`"),
    ],
    ids=["not-on-path", "no-such-file", "not-executable", "a-folder"],
)
@pytest.mark.parametrize("remove", [True, False], ids=["rm", "keep"])
def test_a_command_that_cannot_run(cais, engine, base_image, names, command, code, message, remove):
    name = names()
    flags = ("--rm",) if remove else ()
    done = cais("run", *flags, "--name", name, base_image, "--", *command)
    assert done.returncode == code, done.stderr
    lines = error_lines(done.stderr)
    assert lines[0] == "error: " + message.format(base_image)
    assert "tini" not in done.stderr and "Traceback" not in done.stderr
    assert exists(engine, name) is not remove
    # as for a busy port, a container left behind is said so
    kept = f"the container `{name}` was kept: remove it with `cais rm {name}`"
    assert lines[1].endswith(f"; {kept}") is not remove, lines


def test_a_bad_entrypoint(cais, engine, base_image, image_name, names):
    image = image_of(engine, base_image, f"{image_name}:entry", 'ENTRYPOINT ["/opt/missing"]')
    name = names()
    done = cais("run", "--rm", "--name", name, image)
    assert done.returncode == 127
    assert error_lines(done.stderr)[0] == (
        f"error: The command `/opt/missing` does not exist in the image `{image}`"
    )
    assert not exists(engine, name)


def test_a_detached_run_with_rm_is_removed_when_it_ends(cais, engine, base_image, names):
    name = names()
    started = cais("run", "-d", "--rm", "--name", name, base_image, "sleep", "1000")
    assert started.returncode == 0, started.stderr
    assert engine.containers.get(name).attrs["HostConfig"]["AutoRemove"] is True
    assert cais("stop", name).returncode == 0
    for _ in range(100):
        if not exists(engine, name):
            break
        time.sleep(0.1)
    assert not exists(engine, name)


def test_a_name_already_taken(cais, engine, base_image, names):
    name = names()
    assert cais("run", "--name", name, base_image, "true").returncode == 0
    done = cais("run", "--rm", "--name", name, base_image, "true")
    assert done.returncode == 125
    assert error_lines(done.stderr) == [
        f"error: A container named `{name}` already exists",
        f"hint: remove it with `cais rm {name}`, or choose another `--name`",
    ]


# --- what follows the image is the command, as docker reads it ---------------------------------


@pytest.mark.parametrize(
    ("args", "stdout"),
    [
        (["python", "-c", "print(6 * 7)"], "42\n"),
        (["--", "python", "-c", "print(6 * 7)"], "42\n"),
        (["sh", "-c", 'echo "$HOME"'], "/root\n"),
        (["ls", "-la", "/etc/hostname"], None),
        (["python", "-c", "import sys; print(sys.argv[1:])", "-p", "--rm"], "['-p', '--rm']\n"),
    ],
    ids=["python -c", "after --", "sh -c", "ls -la", "cais options as arguments"],
)
def test_everything_after_the_image_is_the_command(cais, engine, base_image, args, stdout):
    done = cais("run", "--rm", "-e", "NAME=Ana", base_image, *args)
    assert done.returncode == 0, done.stderr
    if stdout is None:  # `ls -la` lists one long line: mode, links, owner, …, name
        assert done.stdout.startswith("-rw-r--r-- 1 root root ") and "/etc/hostname" in done.stdout
    else:
        assert done.stdout == stdout


def test_options_before_the_image_still_reach_the_container(cais, engine, base_image, tmp_path):
    done = cais(
        "run", "--rm", "-e", "NAME=Ana", "-v", f"{tmp_path}:/data", base_image,
        "sh", "-c", 'echo "$NAME" > /data/name; cat /data/name',
    )  # fmt: skip
    assert (done.returncode, done.stdout) == (0, "Ana\n"), done.stderr
    assert (tmp_path / "name").read_text() == "Ana\n"


@pytest.mark.parametrize(
    "after", [["-p", "8080:80"], ["-e", "NAME=Ana"], ["--rm"]], ids=lambda a: " ".join(a)
)
@pytest.mark.parametrize("remove", [True, False], ids=["rm", "keep"])
def test_an_option_after_the_image_is_the_command_and_says_where_options_go(
    cais, engine, base_image, names, after, remove
):
    name = names()
    flags = ("--rm",) if remove else ()
    done = cais("run", *flags, "--name", name, base_image, *after)
    assert done.returncode == 127, done.stderr
    option = after[0]
    hint = f"hint: options go before the image, as in `cais run {option} … {base_image}`"
    if not remove:
        hint += f"; the container `{name}` was kept: remove it with `cais rm {name}`"
    assert error_lines(done.stderr) == [
        f"error: The command `{option}` does not exist in the image `{base_image}`",
        hint,
    ]
    assert exists(engine, name) is not remove


# --- a reader that stops early (`| head -1`) ends cais quietly -----------------------------------


@pytest.mark.parametrize("remove", [True, False], ids=["rm", "keep"])
def test_a_run_whose_reader_stops_ends_quietly_and_stops_its_container(
    engine, base_image, names, remove
):
    name = names()
    flags = ["--rm"] if remove else []
    program = "for i in range(10**7): print(i)"
    with subprocess.Popen(
        [sys.executable, "-m", "cais", "run", *flags, "--name", name, base_image]
        + ["python", "-c", program],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stdout.readline() == "0\n"
        process.stdout.close()  # as `head -1` exits
        stderr = process.stderr.read()
        process.wait(timeout=120)
    assert_ended_quietly(subprocess.CompletedProcess(process.args, process.returncode, "", stderr))
    if remove:
        assert not exists(engine, name)
    else:
        assert engine.containers.get(name).status == "exited"


def test_ps_images_and_logs_f_into_a_closed_pipe(cais, engine, base_image, names):
    name = names()
    script = "echo first; echo to-err >&2; sleep 1000"  # logs -f would follow it for ever
    assert cais("run", "-d", "--name", name, base_image, "sh", "-c", script).returncode == 0
    # `logs -f` first: it waits for the first line, which `logs` then has to print
    for args in (["logs", "-f", name], ["logs", name], ["ps", "-a"], ["images"]):
        assert_ended_quietly(run_cais_into_closed_pipe(*args))
    assert engine.containers.get(name).status == "running"  # only a run stops its container


# --- signals, input, streams ---------------------------------------------------------------------


def test_stop_reaches_the_program_through_the_init_process(cais, engine, base_image, names):
    """`sleep` as PID 1 ignores SIGTERM and dies of SIGKILL after the timeout (137); with an
    init process as PID 1 the signal reaches it (143)."""
    name = names()
    assert cais("run", "-d", "--name", name, base_image, "sleep", "1000").returncode == 0
    stopped = cais("stop", name)
    assert stopped.returncode == 0, stopped.stderr
    state = engine.containers.get(name).attrs["State"]
    assert (state["Status"], state["ExitCode"]) == ("exited", 143)


@pytest.mark.parametrize("remove", [True, False], ids=["rm", "keep"])
def test_ctrl_c_stops_an_attached_run(engine, base_image, names, remove):

    name = names()
    flags = ["--rm"] if remove else []
    with subprocess.Popen(
        [sys.executable, "-m", "cais", "run", *flags, "--name", name, base_image, "sleep", "1000"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        # As from a terminal: a suite started in the background (`pytest … &`) passes SIGINT
        # on ignored, and Python then never raises KeyboardInterrupt.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    ) as process:
        try:
            wait_running(engine, name)
            process.send_signal(signal.SIGINT)
            _, stderr = process.communicate(timeout=120)
        finally:
            process.kill()
    assert process.returncode == 130, stderr
    if remove:
        assert not exists(engine, name)
    else:
        state = engine.containers.get(name).attrs["State"]
        assert (state["Status"], state["ExitCode"]) == ("exited", 143)


def test_piped_input_with_i(cais, engine, base_image):
    done = cais("run", "-i", "--rm", base_image, "cat", input="x\nsecond line\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "x\nsecond line\n"


def test_stdout_and_stderr_stay_apart(cais, engine, base_image):
    done = cais(
        "run", "--rm", base_image, "--", "sh", "-c", "echo to-out; echo to-err >&2; echo more-out"
    )
    assert done.returncode == 0
    assert done.stdout == "to-out\nmore-out\n"
    assert "to-err" in done.stderr
    assert "to-out" not in done.stderr


@pytest.mark.parametrize("follow", [False, True], ids=["logs", "logs-f"])
def test_logs_keep_stdout_and_stderr_apart_and_in_order(cais, engine, base_image, names, follow):

    name = names()
    # the pauses only keep the three lines apart in the log's own times
    script = "echo o1; sleep 0.2; echo e1 >&2; sleep 0.2; echo o2"
    assert cais("run", "--name", name, base_image, "--", "sh", "-c", script).returncode == 0
    flags = ("-f",) if follow else ()
    apart = cais("logs", *flags, name)
    assert apart.returncode == 0, apart.stderr
    assert (apart.stdout, apart.stderr) == ("o1\no2\n", "e1\n")
    together = subprocess.run(
        [sys.executable, "-m", "cais", "logs", name],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert together.stdout == "o1\ne1\no2\n"


def test_logs_f_follows_until_the_container_stops(cais, engine, base_image, names):
    name = names()
    script = "echo first; echo err >&2; while [ ! -e /tmp/go ]; do sleep 0.1; done; echo last"
    assert cais("run", "-d", "--name", name, base_image, "--", "sh", "-c", script).returncode == 0

    with subprocess.Popen(
        [sys.executable, "-m", "cais", "logs", "-f", name],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as follower:
        assert follower.stdout.readline() == "first\n"
        engine.containers.get(name).exec_run(["touch", "/tmp/go"])
        rest, err = follower.communicate(timeout=60)
    assert follower.returncode == 0, err
    assert rest == "last\n"
    assert err == "err\n"


# --- stop, rm, exec over names -------------------------------------------------------------------


def test_stop_goes_on_past_a_failure(cais, engine, base_image, names):
    first, second = names(), names()
    for name in (first, second):
        assert cais("run", "-d", "--name", name, base_image, "sleep", "1000").returncode == 0
    done = cais("stop", first, "cais-no-such-container", second)
    assert done.returncode == 1
    assert f"✓ Stopped `{first}`" in done.stderr
    assert f"✓ Stopped `{second}`" in done.stderr
    assert "error: No container is named `cais-no-such-container`" in done.stderr
    assert {engine.containers.get(n).status for n in (first, second)} == {"exited"}


def test_rm(cais, engine, base_image, names):
    running, exited = names(), names()
    assert cais("run", "-d", "--name", running, base_image, "sleep", "1000").returncode == 0
    assert cais("run", "--name", exited, base_image, "true").returncode == 0
    refused = cais("rm", running, exited, "cais-no-such-container")
    assert refused.returncode == 1
    assert error_lines(refused.stderr)[:2] == [
        f"error: The container `{running}` is running",
        f"hint: stop it first with `cais stop {running}`, or remove it anyway with "
        f"`cais rm -f {running}`",
    ]
    assert f"✓ Removed `{exited}`" in refused.stderr
    assert "No container is named `cais-no-such-container`" in refused.stderr
    assert exists(engine, running) and not exists(engine, exited)
    forced = cais("rm", "-f", running)
    assert forced.returncode == 0, forced.stderr
    assert not exists(engine, running)


def test_exec(cais, engine, base_image, names):
    name = names()
    assert cais("run", "-d", "--name", name, base_image, "sleep", "1000").returncode == 0
    done = cais("exec", name, "--", "sh", "-c", "echo out; echo err >&2; exit 5")
    assert (done.returncode, done.stdout) == (5, "out\n")
    assert "err" in done.stderr
    # what follows the name is the command, its options included, as with `docker exec`
    options = cais("exec", name, "python", "-c", "print(6 * 7)")
    assert (options.returncode, options.stdout) == (0, "42\n")
    piped = cais("exec", "-i", name, "cat", input="through the pipe\n")
    assert (piped.returncode, piped.stdout) == (0, "through the pipe\n")
    missing = cais("exec", name, "nosuch-command")
    assert missing.returncode == 127
    assert error_lines(missing.stderr)[0] == (
        f"error: The command `nosuch-command` does not exist in the container `{name}`"
    )
    assert cais("stop", name).returncode == 0
    for flags in ((), ("-i",)):
        stopped = cais("exec", *flags, name, "true")
        assert stopped.returncode == 1
        assert error_lines(stopped.stderr)[0] == f"error: The container `{name}` is not running"


# --- images: tag, rmi ---------------------------------------------------------------------------


def test_tag_and_rmi_go_on_past_failures(cais, engine, base_image, image_name):
    for tag in ("a", "b"):
        tagged = cais("tag", base_image, f"{image_name}:{tag}")
        assert tagged.returncode == 0, tagged.stderr
        assert tagged.stdout.strip() == f"{image_name}:{tag}"
    done = cais("rmi", f"{image_name}:a", "Capital:1", f"{image_name}:missing", f"{image_name}:b")
    assert done.returncode == 1
    assert f"✓ Removed `{image_name}:a`" in done.stderr
    assert f"✓ Removed `{image_name}:b`" in done.stderr
    assert "error: `Capital:1` has capital letters, and image names are lowercase" in done.stderr
    assert f"error: The image `{image_name}:missing` does not exist" in done.stderr
    assert not engine.images.list(name=image_name)
    assert engine.images.get(base_image)  # the source image stays


def test_tag_of_a_missing_image(cais, engine, image_name):
    done = cais("tag", f"{image_name}:nothing", f"{image_name}:new")
    assert done.returncode == 1
    assert error_lines(done.stderr)[0] == (
        f"error: The image `{image_name}:nothing` does not exist in the Docker Engine"
    )


def test_rmi_of_an_image_in_use_says_which_container(cais, engine, base_image, image_name, names):
    image = image_of(engine, base_image, f"{image_name}:used", "LABEL cais.test=in-use")
    name = names()
    assert cais("run", "-d", "--name", name, image, "sleep", "1000").returncode == 0
    running = cais("rmi", image)
    assert running.returncode == 1
    assert error_lines(running.stderr) == [
        f"error: The image `{image}` is used by the container `{name}`",
        f"hint: stop and remove it first with `cais rm -f {name}`",
    ]
    assert cais("stop", name).returncode == 0
    stopped = cais("rmi", image)
    assert error_lines(stopped.stderr)[1] == (
        f"hint: remove it first with `cais rm {name}`, or untag the image anyway with "
        f"`cais rmi --force {image}`"
    )
    assert cais("rm", name).returncode == 0
    assert cais("rmi", image).returncode == 0


def test_rmi_of_an_image_others_are_built_on(cais, engine, base_image, image_name):
    parent = image_of(engine, base_image, f"{image_name}:parent", "LABEL layer=parent")
    image_of(engine, parent, f"{image_name}:child", "LABEL layer=child")
    parent_id = engine.images.get(parent).short_id.removeprefix("sha256:")
    done = cais("rmi", parent_id)
    assert done.returncode == 1
    (line,) = error_lines(done.stderr)
    assert line.startswith(f"error: The image `{parent_id}` cannot be removed: ")
    assert "child" in line
    assert engine.images.get(parent)


# --- ps and images for people and scripts ---------------------------------------------------------


def test_ps_shows_exit_codes_health_and_uptime(cais, engine, base_image, names):

    exited, checking, up = names(), names(), names()
    assert cais("run", "--name", exited, base_image, "--", "sh", "-c", "exit 3").returncode == 3
    engine.containers.run(
        base_image,
        "sleep 1000",
        name=checking,
        detach=True,
        healthcheck={"test": ["CMD", "true"], "interval": 600 * 10**9},
    )
    assert cais("run", "-d", "--name", up, base_image, "sleep", "1000").returncode == 0

    table = cais("ps", "-a")
    row = {line.split()[0]: line for line in table.stdout.splitlines() if line.strip()}
    assert "Exited (3)" in row[exited]
    assert "Up " in row[up]
    assert "(health: starting)" in row[checking]

    listed = json.loads(cais("ps", "-a", "--format", "json").stdout)
    mine = {item["name"]: item for item in listed}
    assert set(mine[up]) == {
        "id",
        "name",
        "image",
        "state",
        "status",
        "exit_code",
        "health",
        "ports",
        "created",
    }
    assert (mine[exited]["state"], mine[exited]["exit_code"]) == ("exited", 3)
    assert (mine[up]["state"], mine[up]["exit_code"], mine[up]["health"]) == ("running", None, None)
    assert mine[checking]["health"] == "starting"

    ids = cais("ps", "-q").stdout.split()
    assert mine[up]["id"] in ids and mine[exited]["id"] not in ids
    assert mine[exited]["id"] in cais("ps", "-a", "-q").stdout.split()


def test_images_for_scripts(cais, engine, base_image):

    listed = json.loads(cais("images", "--format", "json").stdout)
    (base,) = [image for image in listed if base_image in image["tags"]]
    assert set(base) == {"id", "tags", "size", "created"}
    assert base["size"] > 0
    assert base["id"] in cais("images", "-q").stdout.split()
