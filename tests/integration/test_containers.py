"""run / ps / logs / stop and doctor against the real Docker Engine."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from tests.support import free_port

pytestmark = pytest.mark.engine


@pytest.fixture
def container_name(engine):
    name = f"cais-test-{uuid.uuid4().hex[:8]}"
    yield name
    try:
        engine.containers.get(name).remove(force=True)
    except Exception:  # noqa: BLE001 - already gone
        pass


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
        assert done.returncode == 1, args
        assert expected in done.stderr, done.stderr


def test_interactive_needs_a_terminal(cais, engine, base_image):
    done = cais("run", "-it", base_image)
    assert done.returncode == 1
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


def test_interactive_session_in_a_real_terminal(engine, base_image):
    """`cais run -it` as a person types into it: tmux gives it a real terminal."""
    import shutil
    import subprocess
    import sys

    from tests.support import unavailable

    if shutil.which("tmux") is None:
        unavailable("tmux is not installed")
    session = f"cais-test-{uuid.uuid4().hex[:8]}"
    command = f"{sys.executable} -m cais run -it --rm {base_image} -- python -q"
    subprocess.run(
        ["tmux", "new-session", "-d", "-s", session, "-x", "120", "-y", "30", command], check=True
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
